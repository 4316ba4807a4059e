-- Issue 9: the deadline guard of spec.helpers' run_reactor could never fire.
-- It checked `guard:active()` after run(), but reactor.stop cancels every
-- pending call (the guard's included) and a call that fired is inactive too,
-- so a run that only ended because the guard stopped it passed.
local reactor = require "reactor"
local H = require "spec.helpers"

describe("issue 9: the run_reactor / run_loop deadline guard", function()
  after_each(H.assert_clean)

  -- a run that never ends by itself: a listener nobody stops
  local function hanging_run(runner)
    assert(reactor.listenTCP(0, { protocol = {} }, "127.0.0.1"))
    return pcall(runner, 0.05)
  end

  for _, name in ipairs { "run_reactor", "run_loop" } do
    it(name .. " fails a run that only its deadline stopped", function()
      local ok, err = hanging_run(H[name])
      assert.is_false(ok, name .. " passed a run that hit its deadline")
      assert.matches("hit its 0.05 s deadline", tostring(err), 1, true)
      assert.is_false(reactor.running())
    end)

    it(name .. " passes a run that stops before its deadline", function()
      local stopped = false
      reactor.callLater(0, function()
        stopped = true
        reactor.stop()
      end)
      assert.has_no.errors(function() H[name](10) end)
      assert.is_true(stopped)
    end)
  end

  it("passes on the error of a run() that raised, and leaves no guard behind", function()
    -- a run() inside a run: the inner one raises "already running"
    local inner
    reactor.callLater(0, function()
      inner = { pcall(H.run_loop, 10) }
      reactor.stop()
    end)
    H.run_loop(10)
    assert.is_false(inner[1])
    assert.matches("already running", tostring(inner[2]))
  end)
end)
