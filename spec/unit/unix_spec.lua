-- Unix stream sockets: listenUNIX / connectUNIX, stale and live socket files.
local unix = require "socket.unix"
local reactor = require "reactor"
local H = require "spec.helpers"

local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".sock"
end

local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return os.execute("test -S " .. p) == true
end

local Echo = {}
function Echo:dataReceived(d) self.transport:write(d) end

local function exchange(path)
  local got
  local C = {}
  function C:connectionMade() self.transport:write("over unix") end
  function C:dataReceived(d)
    got = d
    self.transport:loseConnection()
  end
  function C:connectionLost() reactor.stop() end
  reactor.connectUNIX(path, reactor.ClientFactory { protocol = C })
  H.run_loop(10)
  return got
end

describe("Unix sockets", function()
  after_each(H.assert_clean)

  it("serves a client and removes its socket file when it stops", function()
    local path = tmppath()
    local l = assert(reactor.listenUNIX(path, { protocol = Echo }))
    assert.are.same({ type = "UNIX", name = path }, l:getHost())
    assert.is_true(exists(path))
    assert.are.equal("over unix", exchange(path)) -- reactor.stop() closes listeners
    assert.is_false(l:stopListening())
    assert.is_false(exists(path))
    l = assert(reactor.listenUNIX(path, { protocol = Echo }))
    assert.is_true(l:stopListening())
    assert.is_false(exists(path))
  end)

  it("replaces a stale socket file left by a crashed run", function()
    local path = tmppath()
    local dead = assert(unix())
    assert(dead:bind(path)) -- bound, never listening, then gone: a stale file
    dead:close()
    assert.is_true(exists(path))
    local l = assert(reactor.listenUNIX(path, { protocol = Echo }))
    assert.are.equal("over unix", exchange(path))
    l:stopListening()
  end)

  it("does not steal a live socket, nor remove a file that is not a socket", function()
    local path = tmppath()
    local live = assert(unix())
    assert(live:bind(path))
    assert(live:listen(4))
    local l, msg, code = reactor.listenUNIX(path, { protocol = Echo })
    assert.is_nil(l)
    assert.are.equal("EADDRINUSE", code)
    assert.matches(path, msg, 1, true)
    live:close()
    os.remove(path)
    local f = assert(io.open(path, "w"))
    f:write("precious")
    f:close()
    l, msg, code = reactor.listenUNIX(path, { protocol = Echo })
    assert.is_nil(l)
    assert.are.equal("EADDRINUSE", code, msg)
    f = assert(io.open(path))
    assert.are.equal("precious", f:read("a"))
    f:close()
    os.remove(path)
  end)

  it("reports a missing socket to clientConnectionFailed", function()
    local reason
    local f = reactor.ClientFactory { protocol = {} }
    local kind
    function f:clientConnectionFailed(connector, r)
      reason, kind = r, connector:getDestination().type
      reactor.stop()
    end
    reactor.connectUNIX(tmppath(), f)
    H.run_loop(10)
    assert.are.equal("UNIX", kind)
    assert.truthy(reason)
    assert.matches("ENOENT", reason.message)
  end)
end)
