-- reactor.onSignal: the handler runs from the loop, not in signal context.
local reactor = require "reactor"
local H = require "spec.helpers"

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

describe("onSignal", function()
  it("runs the handler from the loop with the signal's name; nil removes it", function()
    local got = {}
    reactor.onSignal("SIGUSR1", function(name)
      got[#got + 1] = name
      reactor.stop()
    end)
    reactor.callLater(0, function() os.execute("kill -USR1 " .. mypid()) end)
    H.run_loop(10)
    assert.are.same({ "SIGUSR1" }, got)
    reactor.onSignal("USR1", nil) -- the short name works too
    assert.has_error(function() reactor.onSignal("SIGBOGUS", function() end) end)
    assert.has_error(function() reactor.onSignal("SIGUSR2", 42) end)
  end)

  it("a handler that raises is logged and the loop goes on", function()
    local ran, after = 0, false
    reactor.onSignal("SIGUSR2", function()
      ran = ran + 1
      reactor.callLater(0, function() after = true reactor.stop() end)
      error("handler broke")
    end)
    reactor.callLater(0, function() os.execute("kill -USR2 " .. mypid()) end)
    finally(function() reactor.onSignal("SIGUSR2", nil) end) -- also when the run fails
    H.run_loop(10)
    assert.are.equal(1, ran)
    assert.is_true(after) -- the loop went on after the error
  end)
end)
