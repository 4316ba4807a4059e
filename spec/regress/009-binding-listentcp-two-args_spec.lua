-- Issue 9: core.listenTCP called with exactly two arguments (no interface,
-- no options) worked only by the luck of the stack layout: the new
-- listener's own userdata sat where the options would be. Both the core
-- function and reactor.listenTCP must work with two arguments, with the
-- defaults (127.0.0.1).
local reactor = require "reactor"
local H = require "spec.helpers"

-- listen with `listen(factory)`, one client says ping, the server answers pong
local function roundtrip(listen)
  local S = {}
  function S:dataReceived(data) if data == "ping" then self.transport:write("pong") end end
  local l = assert(listen(reactor.Factory { protocol = S }))
  local host = l:getHost()
  local got = {}
  local C = {}
  function C:connectionMade() self.transport:write("ping") end
  function C:dataReceived(data)
    got[#got + 1] = data
    if table.concat(got) == "pong" then self.transport:loseConnection() end
  end
  function C:connectionLost() reactor.stop() end
  reactor.connectTCP("127.0.0.1", host.port, reactor.ClientFactory { protocol = C })
  H.run_loop()
  l:stopListening()
  return table.concat(got), host
end

describe("issue 9: listenTCP with two arguments", function()
  after_each(H.assert_clean)

  it("reactor.core.listenTCP(0, factory) listens on 127.0.0.1 and serves", function()
    local got, host = roundtrip(function(f) return reactor.core.listenTCP(0, f) end)
    assert.are.equal("pong", got)
    assert.are.equal("127.0.0.1", host.host)
  end)

  it("reactor.listenTCP(0, factory) listens on 127.0.0.1 and serves", function()
    local got, host = roundtrip(function(f) return reactor.listenTCP(0, f) end)
    assert.are.equal("pong", got)
    assert.are.equal("127.0.0.1", host.host)
  end)

  it("select('#', ...) is exactly 2 on the way in", function()
    -- guards the spec itself: the core function really got two arguments
    local n
    local l = (function(...) n = select("#", ...) return reactor.core.listenTCP(...) end)(0, reactor.Factory { protocol = {} })
    assert.are.equal(2, n)
    assert.is_true(assert(l):stopListening())
  end)
end)
