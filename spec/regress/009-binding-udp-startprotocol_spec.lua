-- Issue 9: listenUDP called startProtocol without protection, so an error
-- there left the UDP port open and pinned (and counted among the TCP
-- listeners). Now the caller gets the error, naming startProtocol and the
-- line that raised it, and nothing stays open: core._stats().udp (UDP
-- ports, counted apart from listeners) is 0 and the port can be bound again.
local reactor = require "reactor"
local socket = require "socket"
local H = require "spec.helpers"

-- a UDP port on 127.0.0.1 that nobody holds (bound, then released)
local function free_udp_port()
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  local _, port = u:getsockname()
  u:close()
  return tonumber(port)
end

-- can anyone bind 127.0.0.1:port over UDP now?
local function bindable(port)
  local u = assert(socket.udp())
  local ok, err = u:setsockname("127.0.0.1", port)
  u:close()
  return ok == 1, err
end

describe("issue 9: listenUDP with a startProtocol that raises", function()
  after_each(H.assert_clean)

  it("raises to the caller, naming startProtocol and the user's file:line", function()
    local src = debug.getinfo(1, "S").short_src
    local raised_at
    local P = {}
    function P:startProtocol() raised_at = debug.getinfo(1, "l").currentline; error("no config for this port") end
    local ok, err = pcall(reactor.listenUDP, free_udp_port(), P)
    assert.is_false(ok, "listenUDP returned instead of raising")
    err = tostring(err)
    assert.matches("startProtocol", err, 1, true)
    assert.matches(("%s:%d: no config for this port"):format(src, raised_at), err, 1, true)
  end)

  it("leaves nothing open: the port can be bound again and core._stats().udp is 0", function()
    local P = {}
    function P:startProtocol() error("no config for this port") end
    local port = free_udp_port()
    assert.is_false((pcall(reactor.listenUDP, port, P)))
    assert.is_true(bindable(port), "the UDP port is still held")
    local s = reactor.core._stats()
    assert.are.equal(0, s.udp, "a UDP port is still counted open")
    assert.are.equal(0, s.listeners)
    -- the reactor itself can listen there again; a UDP port is not a TCP listener
    local again = assert(reactor.listenUDP(port, {}))
    assert.are.equal(1, reactor.core._stats().udp)
    assert.are.equal(0, reactor.core._stats().listeners)
    assert.is_true(again:stopListening())
    assert.are.equal(0, reactor.core._stats().udp)
  end)
end)
