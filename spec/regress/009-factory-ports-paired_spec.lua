-- issue 9: startFactory ran at every listen (twice for two ports),
-- stopFactory once. As in Twisted, startFactory runs when the factory's
-- first port opens and stopFactory when its last one closes.
local reactor = require "reactor"
local H = require "spec.helpers"

local function counting()
  local f = reactor.Factory { protocol = { dataReceived = function() end } }
  f.started, f.stopped = 0, 0
  function f:startFactory() self.started = self.started + 1 end
  function f:stopFactory() self.stopped = self.stopped + 1 end
  return f
end

describe("issue 9: startFactory / stopFactory pair with the ports", function()
  after_each(H.assert_clean)

  it("two ports: one startFactory; stopFactory when the second closes", function()
    local f = counting()
    local a = assert(reactor.listenTCP(0, f))
    local b = assert(reactor.listenTCP(0, f))
    assert.are.equal(1, f.started)
    a:stopListening()
    assert.are.equal(0, f.stopped)
    b:stopListening()
    assert.are.equal(1, f.stopped)
    b:stopListening() -- closed already: nothing more
    assert.are.equal(1, f.stopped)
    -- a new port starts it again
    local c = assert(reactor.listenTCP(0, f))
    assert.are.equal(2, f.started)
    c:stopListening()
    assert.are.equal(2, f.stopped)
  end)

  it("reactor.stop() closes the ports: stopFactory runs once", function()
    local f = counting()
    assert(reactor.listenTCP(0, f))
    assert(reactor.listenTCP(0, f))
    reactor.callLater(0, reactor.stop)
    H.run_loop()
    assert.are.equal(1, f.started)
    assert.are.equal(1, f.stopped)
  end)

  it("a failing startFactory leaves no port open, and raises its own error", function()
    local f = reactor.Factory { protocol = { dataReceived = function() end } }
    function f.startFactory() error("no database", 0) end
    local ok, err = pcall(reactor.listenTCP, 0, f)
    assert.is_false(ok)
    assert.are.equal("no database", err)
    assert.are.equal(0, H.live().listeners)
  end)
end)
