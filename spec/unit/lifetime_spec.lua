-- Lifetimes: Lua's garbage collector and libev never free or use an object
-- the other still needs. Each test forces full collections at the moments
-- that matter.
local reactor = require "reactor"
local H = require "spec.helpers"

local function gc()
  collectgarbage()
  collectgarbage()
end

describe("lifetimes", function()
  after_each(H.assert_clean)

  it("an open connection nobody in Lua references keeps working (it is pinned)", function()
    local got = {}
    local S = {}
    function S:connectionMade()
      self.transport = nil -- drop the only reference Lua code holds
      self.factory = nil
    end
    function S:dataReceived(d)
      gc() -- mid-callback, with the transport unreferenced by Lua code
      got[#got + 1] = d
    end
    function S:connectionLost() reactor.stop() end
    local l = assert(reactor.listenTCP(0, { protocol = S }))
    local C = {}
    function C:connectionMade()
      gc()
      self.transport:write("a")
      reactor.callLater(0.01, function()
        gc()
        self.transport:write("b")
        self.transport:loseConnection()
      end)
    end
    local port = l:getHost().port
    l = nil -- luacheck: ignore 311 (drop the ref: the listener too is pinned while it listens)
    gc()
    reactor.connectTCP("127.0.0.1", port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    assert.are.equal("ab", table.concat(got))
  end)

  it("a stopped listener lives until the last connection it accepted is lost", function()
    -- an accepted transport reaches its listener (its factory, its count) by a
    -- C pointer, not a reference Lua sees: the listener stays pinned for it
    local weak = setmetatable({}, { __mode = "k" })
    local function count()
      local n = 0
      for _ in pairs(weak) do n = n + 1 end
      return n
    end
    local function stop() -- in a function of its own: no stack slot keeps it
      local ls = next(weak)
      return ls:stopListening(), ls:stats().connections
    end
    local seen = {}
    local S = {}
    function S:connectionLost() reactor.stop() end
    local l = assert(reactor.listenTCP(0, { protocol = S }))
    weak[l] = true
    local port = l:getHost().port
    l = nil -- luacheck: ignore 311 (only the weak table has it now)
    local C = {}
    function C:connectionMade()
      reactor.callLater(0.05, function() -- the server has accepted by then
        seen.stopped, seen.open = stop()
        gc()
        seen.alive = count()
        self.transport:loseConnection()
      end)
    end
    reactor.connectTCP("127.0.0.1", port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    assert.is_true(seen.stopped)
    assert.are.equal(1, seen.open)
    assert.are.equal(1, seen.alive) -- its open connection held it
    gc()
    assert.are.equal(0, count()) -- and let go of it once lost
  end)

  it("a transport kept after close is a harmless shell, closed twice or used", function()
    local kept, lost = nil, 0
    local S = {}
    function S:connectionMade()
      kept = self.transport
      assert.is_true(self.transport:abortConnection())
      assert.is_false(self.transport:abortConnection()) -- closed twice
      assert.is_false(self.transport:loseConnection())
      self.transport:write("into the void") -- no-op
    end
    function S:connectionLost() lost = lost + 1 reactor.stop() end
    local l = assert(reactor.listenTCP(0, { protocol = S }))
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = {} })
    H.run_loop(10)
    gc()
    assert.are.equal(1, lost)
    assert.matches("closed", tostring(kept))
    kept:write("still harmless")
    assert.is_false(kept:loseConnection())
    assert.are.equal("127.0.0.1", kept:getPeer().host) -- cached address
    -- write's fast type check: anything but a transport is a type error
    local timer = reactor.callLater(1, function() end)
    for _, wrong in ipairs { {}, "x", 1, io.stdout, timer, reactor.core } do
      local ok, err = pcall(kept.write, wrong, "x")
      assert.is_false(ok)
      assert.matches("reactor.Transport expected", err)
    end
    timer:cancel()
  end)

  it("connectionLost never runs inside the callback that closed the connection", function()
    local order = {}
    local S = {}
    function S:connectionMade()
      order[#order + 1] = "before abort"
      self.transport:abortConnection()
      order[#order + 1] = "after abort"
    end
    function S:connectionLost() order[#order + 1] = "lost" reactor.stop() end
    local l = assert(reactor.listenTCP(0, { protocol = S }))
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = {} })
    H.run_loop(10)
    assert.are.same({ "before abort", "after abort", "lost" }, order)
  end)

  it("a cancelled or fired DelayedCall is collectable and cancel is idempotent", function()
    local fired = 0
    local d1 = reactor.callLater(0, function() fired = fired + 1 reactor.stop() end)
    local d2 = reactor.callLater(60, function() fired = fired + 100 end)
    assert.is_true(d2:cancel())
    assert.is_false(d2:cancel())
    d2 = nil -- luacheck: ignore
    gc()
    reactor.run()
    assert.are.equal(1, fired)
    assert.is_false(d1:cancel())
    assert.is_false(d1:active())
  end)

  it("a LoopingCall stopped by reactor.stop() can be started again", function()
    local n = 0
    local lc = reactor.LoopingCall(function() n = n + 1 if n == 2 then reactor.stop() end end)
    lc:start(0.001)
    H.run_reactor()
    assert.has_no_error(function() lc:start(0.001) end) -- its pending beat was cancelled
    assert.is_true(lc.running)
    lc:stop()
    assert.is_false(lc.running)
    assert.has_error(function() lc:stop() end)
  end)

  it("lua_close stops the watchdog thread before the loop is freed", function()
    -- A probe whose __gc is set before the reactor loads is finalized after
    -- the loop's (Lua runs finalizers in reverse order of marking): by then
    -- the watchdog thread must have been joined, or it would read freed memory.
    local out, ok, how, code = H.run_lua [[
local function threads()
  for line in io.lines("/proc/self/status") do
    local n = line:match("^Threads:%s*(%d+)")
    if n then return tonumber(n) end
  end
end
local probe = setmetatable({}, { __gc = function() io.write("after close: ", threads(), "\n") end })
local reactor = require "reactor"
reactor.core.setLimits { scriptTimeout = 0.5 }
reactor.callLater(0, reactor.stop)
reactor.run()
io.write("after run: ", threads(), "\n")
os.exit(0, true)
]]
    assert.are.same({ true, "exit", 0 }, { ok, how, code })
    assert.are.equal("after run: 2\nafter close: 1\n", out)
  end)

  it("lua_close with open connections, timers and listeners frees everything", function()
    -- a child lua5.4 closes its state with everything open: it must exit
    -- cleanly (under ASan, leaks and use-after-free fail this test)
    local _, ok, how, code = H.run_lua [[
local reactor = require "reactor"
local l = assert(reactor.listenTCP(0, { protocol = { dataReceived = function() end } }))
reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = {
  connectionMade = function(self) self.transport:write("x") reactor.callLater(0.01, reactor.stop) end } })
reactor.callLater(3600, function() end)
reactor.run()
-- run again so connections are open when the state closes
reactor.connectTCP("127.0.0.1", assert(reactor.listenTCP(0, { protocol = {} })):getHost().port,
  reactor.ClientFactory { protocol = { connectionMade = function() os.exit(0, true) end } })
reactor.callLater(3600, function() end)
reactor.run()
]]
    assert.are.same({ true, "exit", 0 }, { ok, how, code })
  end)
end)
