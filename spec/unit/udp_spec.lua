-- reactor.listenUDP: Twisted's DatagramProtocol, loopback only.
local reactor = require "reactor"
local H = require "spec.helpers"

describe("listenUDP", function()
  after_each(H.assert_clean)

  it("echoes datagrams whole, with the sender's address", function()
    local server = { seen = {} }
    function server:datagramReceived(data, host, port)
      self.seen[#self.seen + 1] = { data, host }
      self.transport:write(data:upper(), host, port)
    end
    local sp = assert(reactor.listenUDP(0, server))
    local got = {}
    local client = {}
    function client:startProtocol() self.started = true end
    function client:datagramReceived(data) got[#got + 1] = data
      if #got == 2 then reactor.stop() end
    end
    local cp = assert(reactor.listenUDP(0, client))
    assert.is_true(client.started)
    assert.are.equal(cp, client.transport)
    local port = sp:getHost().port
    cp:write("one", "127.0.0.1", port)
    cp:write("two", "127.0.0.1", port)
    H.run_reactor()
    sp:stopListening()
    cp:stopListening()
    table.sort(got)
    assert.are.same({ "ONE", "TWO" }, got)
    assert.are.equal("127.0.0.1", server.seen[1][2])
    assert.are.equal("UDP", sp:getHost().type)
  end)

  it("a connected socket hears connectionRefused from a closed port", function()
    local closed = assert(reactor.listenUDP(0, {}))
    local port = closed:getHost().port
    closed:stopListening()
    local refused = 0
    local p = {}
    function p:connectionRefused()
      refused = refused + 1
      reactor.stop()
    end
    local u = assert(reactor.listenUDP(0, p))
    assert.is_true(u:connect("127.0.0.1", port))
    u:write("anyone?")
    H.run_reactor()
    u:stopListening()
    assert.are.equal(1, refused)
  end)

  it("rejects names and bad ports with a clear error; a port in use fails cleanly", function()
    local u = assert(reactor.listenUDP(0, {}))
    assert.has_error(function() u:write("x", "localhost", 9) end)
    assert.has_error(function() u:write("x") end) -- not connected
    local again, msg, code = reactor.listenUDP(u:getHost().port, {})
    assert.is_nil(again)
    assert.are.equal("EADDRINUSE", code)
    assert.matches("address already in use", msg)
    local stopped = 0
    local p = { stopProtocol = function() stopped = stopped + 1 end }
    local v = assert(reactor.listenUDP(0, p))
    assert.is_true(v:stopListening())
    assert.is_false(v:stopListening())
    assert.are.equal(1, stopped)
    u:stopListening()
    assert.matches("closed", tostring(u))
  end)
end)
