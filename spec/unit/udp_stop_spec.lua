-- reactor.stop() ends a UDP port as it ends a connection: the protocol's
-- stopProtocol runs once, and an error in it is logged (callback name,
-- file:line), never raised out of run() (issue 10, part 3).
local reactor = require "reactor"
local H = require "spec.helpers"

describe("reactor.stop() and UDP ports", function()
  after_each(H.assert_clean)

  it("calls stopProtocol once on every open port", function()
    local stops = 0
    local a = { stopProtocol = function() stops = stops + 1 end }
    local b = { stopProtocol = function() stops = stops + 10 end }
    assert(reactor.listenUDP(0, a))
    assert(reactor.listenUDP(0, b))
    reactor.callLater(0, reactor.stop)
    H.run_loop()
    assert.are.equal(11, stops)
    assert.matches("closed", tostring(a.transport))
    assert.is_false(a.transport:stopListening()) -- already closed: no second stopProtocol
    assert.are.equal(11, stops)
  end)

  it("logs an error in stopProtocol and goes on stopping", function()
    local out, ok = H.run_lua([[
local reactor = require "reactor"
local stops = 0
assert(reactor.listenUDP(0, { stopProtocol = function() error("cannot flush") end }))
assert(reactor.listenUDP(0, { stopProtocol = function() stops = stops + 1 end }))
reactor.callLater(0, reactor.stop)
reactor.run()
print("stops " .. stops .. ", open " .. reactor.core._stats().udp)
]], { stderr = true })
    assert.is_true(ok, out)
    assert.matches("reactor: error in stopProtocol: [^\n]*%.lua:4: cannot flush\n", out)
    assert.matches("\nstops 1, open 0\n$", out)
  end)
end)
