-- Tasks (issue 10 part 2): reactor.spawn, task:join / cancel, reactor.sleep,
-- gather and timeout, in-process. The rules under test are the ones the
-- coroutine libraries get wrong: a wake-up resumes a task exactly once,
-- cancel runs <close>, an error ends only its task and is logged with the
-- user's file:line, a wait outside a task says so. Each reactor.run() is
-- under H.run_loop's deadline; waits use short virtual-free timers only for
-- ordering (never asserted on their duration).
local reactor = require "reactor"
local H = require "spec.helpers"

local THIS = "spec/unit/task_spec.lua"

local logged
local real_log

before_each(function()
  logged = {}
  real_log = reactor.core.log
  reactor.core.log = function(msg) logged[#logged + 1] = msg end
end)

after_each(function()
  reactor.core.log = real_log
  H.assert_clean()
end)

-- run fn as a task under the reactor, then stop; -> what fn returned
local function intask(fn)
  local out
  reactor.callLater(0, function() -- from a callback, once the reactor runs
    reactor.spawn(function()
      out = table.pack(fn())
      reactor.stop()
    end)
  end)
  H.run_loop()
  return table.unpack(out, 1, out.n)
end

describe("reactor.spawn", function()
  it("runs the function at once, up to its first wait, and join gives its results", function()
    local order = {}
    intask(function()
      local t = reactor.spawn(function(a, b)
        order[#order + 1] = "child starts with " .. a .. b
        reactor.sleep(0)
        order[#order + 1] = "child ends"
        return a + b, "sum"
      end, 1, 2)
      order[#order + 1] = "parent goes on"
      assert.is_false(t:done())
      local ok, v, w = t:join()
      assert.is_true(ok)
      assert.are.equal(3, v)
      assert.are.equal("sum", w)
      assert.is_true(t:done())
      -- joining a finished task gives the same again, without waiting
      assert.are.same({ true, 3, "sum" }, { t:join() })
    end)
    assert.are.same({ "child starts with 12", "parent goes on", "child ends" }, order)
  end)

  it("an error ends only that task: join gives false and the message at the user's line", function()
    local line = debug.getinfo(1, "l").currentline + 4
    local ok, err, after = intask(function()
      local t = reactor.spawn(function()
        reactor.sleep(0)
        error("boom")
      end)
      local ok, err = t:join()
      return ok, err, "the joiner goes on"
    end)
    assert.is_false(ok)
    assert.are.equal(("%s:%d: boom"):format(THIS, line), err)
    assert.are.equal("the joiner goes on", after)
    assert.are.same({}, logged) -- someone joined: the error is theirs, not the log's
  end)

  it("an error nobody waits for is logged with file:line and a traceback of the user's frames", function()
    local line = debug.getinfo(1, "l").currentline + 2
    intask(function()
      reactor.spawn(function() error("nobody joins me") end)
      reactor.sleep(0)
    end)
    assert.are.equal(1, #logged)
    assert.matches("^error in task spawned at " .. THIS:gsub("%p", "%%%0") .. ":" .. line .. ": "
      .. THIS:gsub("%p", "%%%0") .. ":" .. line .. ": nobody joins me\nstack traceback:", logged[1])
    assert.not_matches("reactor/task.lua", logged[1])
  end)

  it("refuses what is not a function, at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() reactor.spawn(42) end)
    assert.is_false(ok)
    assert.are.equal(("%s:%d: bad argument #1 to 'spawn' (expected a function, got number)"):format(THIS, line), err)
  end)

  it("a bare coroutine.yield in a task fails it with a message that says what to do", function()
    local ok, err = intask(function()
      local t = reactor.spawn(function() coroutine.yield("oops") end)
      return t:join()
    end)
    assert.is_false(ok)
    assert.matches("coroutine.yield%(%) in a task's own body", err)
    assert.matches("^" .. THIS:gsub("%p", "%%%0") .. ":%d+:", err)
  end)
end)

describe("waiting outside a task", function()
  it("reactor.sleep at the top level raises an error naming the call and the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() reactor.sleep(1) end)
    assert.is_false(ok)
    assert.are.equal(("%s:%d: reactor.sleep waits, so it must run in a task: call it inside " ..
      "reactor.spawn(fn) or a reactor.serve handler"):format(THIS, line), err)
    assert.are.equal(0, H.live().timers)
  end)

  it("a wait from a coroutine of the user's own inside a task is refused, not lost", function()
    local ok, err = intask(function()
      local gen = coroutine.wrap(function() reactor.sleep(0) end)
      return pcall(gen)
    end)
    assert.is_false(ok)
    assert.matches("reactor.sleep called from a coroutine of your own inside a task", err)
  end)

  it("task:join outside a task on an unfinished task says so", function()
    reactor.callLater(0, reactor.spawn, function()
      local t = reactor.spawn(function() reactor.sleep(0) end)
      local ok, err = pcall(function() return t:join() end)
      assert.is_true(ok, err) -- inside a task: fine
      reactor.stop()
    end)
    local t2 = reactor.spawn(function() reactor.sleep(0) end)
    local ok, err = pcall(t2.join, t2)
    assert.is_false(ok)
    assert.matches("task:join%(%) waits, so it must run in a task", err)
    H.run_loop()
  end)
end)

describe("task:cancel", function()
  it("closes a waiting task: its <close> variables run, its timer is cancelled, join says cancelled", function()
    local closed = {}
    local ok, err, stillwaiting = intask(function()
      local t = reactor.spawn(function()
        local _guard <close> = -- luacheck: ignore 211 (held for its __close)
          setmetatable({}, { __close = function() table.insert(closed, "guard") end })
        reactor.sleep(3600)
        closed[#closed + 1] = "never"
      end)
      assert.is_true(t:cancel())
      assert.is_false(t:cancel()) -- twice: harmless
      local a, b = t:join()
      return a, b, t:done()
    end)
    assert.is_false(ok)
    assert.are.equal("cancelled", err)
    assert.is_true(stillwaiting)
    assert.are.same({ "guard" }, closed)
  end)

  it("a task that cancels itself stops at its next wait", function()
    local steps = {}
    intask(function()
      local t
      t = reactor.spawn(function()
        reactor.sleep(0)
        t:cancel()
        steps[#steps + 1] = "runs on until it waits"
        reactor.sleep(0)
        steps[#steps + 1] = "never"
      end)
      local ok, err = t:join()
      steps[#steps + 1] = tostring(ok) .. " " .. err
    end)
    assert.are.same({ "runs on until it waits", "false cancelled" }, steps)
  end)
end)

describe("reactor.gather", function()
  it("waits for all and gives the first result of each, in argument order", function()
    local ok, a, b, c = intask(function()
      local slow = reactor.spawn(function() reactor.sleep(0.02) return "slow" end)
      return reactor.gather(slow, function() return "at once" end, function() reactor.sleep(0) return 3 end)
    end)
    assert.is_true(ok)
    assert.are.same({ "slow", "at once", 3 }, { a, b, c })
  end)

  it("the first error cancels the others (their <close> runs) and is returned", function()
    local closed = false
    local ok, err = intask(function()
      return reactor.gather(function()
        local _g <close> = setmetatable({}, { __close = function() closed = true end }) -- luacheck: ignore 211 (held for its __close)
        reactor.sleep(3600)
      end, function()
        reactor.sleep(0)
        error("second fails", 0)
      end)
    end)
    assert.is_false(ok)
    assert.are.equal("second fails", err)
    assert.is_true(closed)
    assert.are.same({}, logged)
  end)

  it("{settle = true} waits for all and gives each one's join", function()
    local ok, r1, r2 = intask(function()
      return reactor.gather({ settle = true }, function() error("x", 0) end, function()
        reactor.sleep(0)
        return "fine"
      end)
    end)
    assert.is_true(ok)
    assert.are.same({ false, "x", n = 2 }, r1)
    assert.are.same({ true, "fine", n = 2 }, r2)
  end)

  it("cancelling the gathering task cancels what it gathers", function()
    local closed = 0
    intask(function()
      local g = reactor.spawn(function()
        local function child()
          local _c <close> = setmetatable({}, { __close = function() closed = closed + 1 end }) -- luacheck: ignore 211 (held for its __close)
          reactor.sleep(3600)
        end
        reactor.gather(child, child)
      end)
      g:cancel()
    end)
    assert.are.equal(2, closed)
  end)

  it("refuses what is neither a task nor a function", function()
    local ok, err = intask(function() return pcall(reactor.gather, "x") end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'gather' %(expected a task or a function, got string%)", err)
  end)
end)

describe("reactor.timeout", function()
  it("gives nil, 'timeout' and cancels the work (its <close> runs)", function()
    local closed = false
    local a, b = intask(function()
      return reactor.timeout(0.01, function()
        local _g <close> = setmetatable({}, { __close = function() closed = true end }) -- luacheck: ignore 211 (held for its __close)
        reactor.sleep(3600)
      end)
    end)
    assert.is_nil(a)
    assert.are.equal("timeout", b)
    assert.is_true(closed)
  end)

  it("gives true and the results when the work is done in time, false and the error when it fails", function()
    local r = { intask(function()
      local x = { reactor.timeout(5, function(v) reactor.sleep(0) return v, "b" end, "a") }
      local y = { reactor.timeout(5, function() error("bad", 0) end) }
      return x, y
    end) }
    assert.are.same({ true, "a", "b" }, r[1])
    assert.are.same({ false, "bad" }, r[2])
  end)

  it("a timed-out sleep never wakes its task later (a wake-up resumes exactly once)", function()
    local after = {}
    intask(function()
      assert.are.same({ nil, "timeout" }, { reactor.timeout(0.005, function() reactor.sleep(0.02) end) })
      -- the cancelled child's timer must not resume anything while this one sleeps
      reactor.sleep(0.04)
      after[#after + 1] = "woke once"
    end)
    assert.are.same({ "woke once" }, after)
  end)
end)
