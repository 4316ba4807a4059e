-- issue 9: reactor.listenTCP(0, reactor.LineReceiver:extend{...}) raised
-- "Factory: field 'protocol' must be a protocol table": a class made with
-- :extend (it has a metatable) was taken for a factory. It serves wherever
-- a bare protocol table does.
local reactor = require "reactor"
local H = require "spec.helpers"

local function ask(server_proto, question)
  local l = assert(reactor.listenTCP(0, server_proto))
  local got
  local C = {}
  function C:connectionMade() self.transport:write(question) end
  function C:dataReceived(d)
    got = d
    self.transport:loseConnection()
  end
  function C.connectionLost() reactor.stop() end
  reactor.connectTCP("127.0.0.1", l:getHost().port, C)
  H.run_loop()
  l:stopListening()
  return got
end

describe("issue 9: a class made with :extend", function()
  after_each(H.assert_clean)

  it("LineReceiver:extend{...} is served by listenTCP", function()
    local Up = reactor.LineReceiver:extend { delimiter = "\n" }
    function Up:lineReceived(line) self:sendLine(line:upper()) end
    assert.are.equal("HELLO\n", ask(Up, "hello\n"))
  end)

  it("Protocol:extend() is served by listenTCP, and connects as a client", function()
    local Echo = reactor.Protocol:extend()
    function Echo:dataReceived(d) self.transport:write(d) end
    assert.are.equal("ping", ask(Echo, "ping"))
  end)

  it("Factory{protocol = ...} still serves, with its shared state", function()
    local P = reactor.Protocol:extend()
    function P:dataReceived() self.transport:write(self.factory.greeting) end
    assert.are.equal("hi", ask(reactor.Factory { protocol = P, greeting = "hi" }, "x"))
  end)
end)
