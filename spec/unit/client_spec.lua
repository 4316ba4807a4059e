-- Outgoing connections: names looked up off the loop, refused, timed out,
-- and ReconnectingClientFactory. Loopback only.
local socket = require "socket"
local reactor = require "reactor"
local H = require "spec.helpers"

local Echo = {}
function Echo:dataReceived(d) self.transport:write(d) end

describe("connectTCP", function()
  after_each(H.assert_clean)

  it("connects to a name from /etc/hosts (looked up off the loop)", function()
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local got
    local C = {}
    function C:connectionMade() self.transport:write("ping") end
    function C:dataReceived(d)
      got = d
      self.transport:loseConnection()
    end
    function C:connectionLost() reactor.stop() end
    reactor.connectTCP("localhost", l:getHost().port, reactor.ClientFactory { protocol = C })
    H.run_reactor()
    l:stopListening()
    assert.are.equal("ping", got)
  end)

  it("reports a refused connection to clientConnectionFailed", function()
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local port = l:getHost().port
    l:stopListening() -- nobody listens there now
    local reasons, made = {}, 0
    local f = reactor.ClientFactory { protocol = { connectionMade = function() made = made + 1 end } }
    function f:clientConnectionFailed(connector, reason)
      reasons[#reasons + 1] = reason
      assert.are.equal(port, connector:getDestination().port)
      reactor.stop()
    end
    reactor.connectTCP("127.0.0.1", port, f)
    H.run_reactor()
    assert.are.equal(0, made)
    assert.are.equal(1, #reasons)
    assert.are.equal("refused", reasons[1].type)
    assert.matches("ECONNREFUSED", reasons[1].message)
  end)

  it("times out against a listener whose backlog is full", function()
    local srv = assert(socket.tcp())
    assert(srv:bind("127.0.0.1", 0))
    assert(srv:listen(1))
    local _, port = srv:getsockname()
    local fillers = {}
    for i = 1, 8 do -- fill the accept queue; later SYNs are dropped
      fillers[i] = socket.tcp()
      fillers[i]:settimeout(0)
      fillers[i]:connect("127.0.0.1", port)
    end
    local reason
    local f = reactor.ClientFactory { protocol = {} }
    function f:clientConnectionFailed(_, r)
      reason = r
      reactor.stop()
    end
    reactor.connectTCP("127.0.0.1", port, f, 0.2)
    H.run_reactor()
    for _, c in ipairs(fillers) do c:close() end
    srv:close()
    assert.are.equal("timeout", reason and reason.type)
  end)

  it("reports a name that cannot be looked up", function()
    local reason
    local f = reactor.ClientFactory { protocol = {} }
    function f:clientConnectionFailed(_, r)
      reason = r
      reactor.stop()
    end
    reactor.connectTCP("", 80, f)
    H.run_reactor()
    assert.matches("ENOTFOUND", reason.message)
  end)

  it("a lookup cancelled by disconnect() never calls back", function()
    local called = false
    local f = reactor.ClientFactory { protocol = {} }
    function f:clientConnectionFailed() called = true end
    local c = reactor.connectTCP("localhost", 9, f)
    c:disconnect()
    reactor.callLater(0.05, reactor.stop) -- the worker's answer arrives and is dropped
    reactor.run()
    assert.is_false(called)
  end)
end)

describe("ReconnectingClientFactory", function()
  after_each(H.assert_clean)

  it("retries with backoff until the server is there, then stops when told", function()
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local port = l:getHost().port
    l:stopListening()
    local failures, made, delays = 0, 0, {}
    local C = {}
    function C:connectionMade()
      made = made + 1
      self.factory:resetDelay()
      self.factory:stopTrying() -- and drops this connection
    end
    function C:connectionLost() reactor.stop() end
    local f = reactor.ReconnectingClientFactory { protocol = C, initialDelay = 0.001, factor = 2, jitter = 0 }
    local failed = f.clientConnectionFailed
    function f:clientConnectionFailed(connector, reason)
      failures = failures + 1
      if failures == 3 then l = assert(reactor.listenTCP(port, { protocol = Echo })) end
      failed(self, connector, reason)
      delays[#delays + 1] = self.delay
    end
    reactor.connectTCP("127.0.0.1", port, f)
    H.run_reactor()
    l:stopListening()
    assert.are.equal(3, failures)
    assert.are.equal(1, made)
    assert.are.same({ 0.002, 0.004, 0.008 }, delays) -- doubled at each failure
    assert.are.equal(0.001, f.delay) -- resetDelay() once connected
  end)
end)
