-- issue 9: reactor.connectTCP(host, port, {protocol = P}), and the same with
-- a plain reactor.Factory{...}, raised "attempt to call a nil value (method
-- 'startedConnecting')". They are made client factories, as listenTCP does
-- for a bare table.
local reactor = require "reactor"
local H = require "spec.helpers"

local Echo = {}
function Echo:dataReceived(d) self.transport:write(d) end

-- connect with `factory(P)` to an echo server; what came back
local function roundtrip(make)
  local l = assert(reactor.listenTCP(0, Echo))
  local got
  local P = {}
  function P:connectionMade() self.transport:write("ping") end
  function P:dataReceived(d)
    got = d
    self.transport:loseConnection()
  end
  function P.connectionLost() reactor.stop() end
  local f = make(P)
  reactor.connectTCP("127.0.0.1", l:getHost().port, f)
  H.run_loop()
  l:stopListening()
  return got, f
end

describe("issue 9: connectTCP with a factory that is not a ClientFactory", function()
  after_each(H.assert_clean)

  it("a bare {protocol = P} connects", function()
    local got, f = roundtrip(function(P) return { protocol = P } end)
    assert.are.equal("ping", got)
    assert.is_function(f.clientConnectionFailed)
  end)

  it("a plain reactor.Factory{protocol = P} connects", function()
    local got, f = roundtrip(function(P) return reactor.Factory { protocol = P } end)
    assert.are.equal("ping", got)
    assert.is_function(f.startedConnecting)
  end)

  it("a refused connection reaches a bare factory's clientConnectionFailed", function()
    local l = assert(reactor.listenTCP(0, Echo))
    local port = l:getHost().port
    l:stopListening()
    local reason
    local f = { protocol = {} }
    function f.clientConnectionFailed(_, _, r)
      reason = r
      reactor.stop()
    end
    reactor.connectTCP("127.0.0.1", port, f)
    H.run_loop()
    assert.are.equal("refused", reason.type)
  end)
end)
