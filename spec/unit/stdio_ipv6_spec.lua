-- stdio as a transport, and IPv6 / dual stack listeners.
local reactor = require "reactor"
local H = require "spec.helpers"

describe("reactor.stdio", function()
  it("talks over stdin/stdout and sees stdin's EOF as connectionLost", function()
    local out, ok = H.run_lua([[
local reactor = require "reactor"
local Up = reactor.LineReceiver:extend { delimiter = "\n" }
function Up:connectionMade() self:sendLine("hello") end
function Up:lineReceived(line) self:sendLine(line:upper()) end
function Up:connectionLost(reason) io.stderr:write("lost:", reason.type) reactor.stop() end
reactor.stdio(Up)
reactor.run()
]], { stdin = "printf 'one\\ntwo\\n'", stderr = true })
    assert.is_true(ok)
    assert.are.equal("hello\nONE\nTWO\nlost:done", out)
  end)
end)

describe("IPv6", function()
  after_each(H.assert_clean)

  local function roundtrip(host, port)
    local got, peer
    local C = {}
    function C:connectionMade() self.transport:write("v6?") end
    function C:dataReceived(d)
      got, peer = d, self.transport:getPeer()
      self.transport:loseConnection()
    end
    function C:connectionLost() reactor.stop() end
    reactor.connectTCP(host, port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    return got, peer
  end

  it("listens and connects on ::1", function()
    local seen
    local S = {}
    function S:connectionMade() seen = self.transport:getPeer().host end
    function S:dataReceived(d) self.transport:write(d) end
    local l = assert(reactor.listenTCP(0, { protocol = S }, "::1"))
    assert.are.equal("::1", l:getHost().host)
    local got, peer = roundtrip("::1", l:getHost().port)
    assert.are.equal("v6?", got)
    assert.are.equal("::1", peer.host)
    assert.are.equal("::1", seen)
  end)

  it("a listener on :: is dual stack: IPv4 clients reach it", function()
    local seen
    local S = {}
    function S:connectionMade() seen = self.transport:getPeer().host end
    function S:dataReceived(d) self.transport:write(d) end
    local l = assert(reactor.listenTCP(0, { protocol = S }, "::"))
    local got = roundtrip("127.0.0.1", l:getHost().port)
    assert.are.equal("v6?", got)
    assert.are.equal("::ffff:127.0.0.1", seen)
  end)
end)
