-- Issue 9: the watchdog thread read "the coroutine resumed now" and then
-- set its hook on it, with nothing to stop the loop's thread from finishing
-- that coroutine, returning, and collecting it in between: a hook written
-- into freed memory (bindings/lcall.c before the fix; lwatchdog.c now holds
-- a lock across both, and core._resume cannot finish meanwhile).
--
-- A bounded stress run of exactly that: callbacks that spin creating,
-- resuming (core._resume, the daemon's coroutine.resume and wrap) and
-- collecting short coroutines, until the watchdog stops them, while another
-- client's callbacks resume short coroutines normally. The window is a few
-- instructions wide, so this cannot fail on demand; under ASan (make test)
-- a hook set on a freed coroutine is a heap-use-after-free that kills the
-- daemon, which every check below would see. REGRESS_ROUNDS=N runs more.
local H = require "spec.helpers"

local ROUNDS = tonumber(os.getenv("REGRESS_ROUNDS")) or 40

local SCRIPT = [[
-- no arguments to resume: this spec is about the watchdog, not about the
-- result count that 009-binding-resume_spec covers
local function short()
  local s = 0
  for i = 1, 100 do s = s + i end
  return s
end
local P = {}
function P:dataReceived(data)
  if data == "spin" then -- stopped by the watchdog
    self.spinner = true
    while true do
      local co = coroutine.create(short)
      coroutine.resume(co)
      co = nil
      coroutine.wrap(short)()
      collectgarbage("step", 1) -- finished coroutines are freed as we go
    end
  elseif data == "burst" then
    local sum = 0
    for _ = 1, 50 do
      local ok, v = coroutine.resume(coroutine.create(short))
      assert(ok, v)
      sum = sum + v + coroutine.wrap(short)()
    end
    self.transport:write("burst " .. sum .. "\n")
  end
end
function P:connectionLost(reason)
  if self.spinner then io.stderr:write("spinner lost: ", reason.type, "\n") end
end
return { protocol = P }
]]

describe("issue 9: the watchdog and coroutines that just finished", function()
  after_each(function() H.cleanup() end)

  it(("stops " .. ROUNDS .. " spinning callbacks full of short coroutines; the daemon serves on, and exits cleanly"), function()
    local d = H.start_logged_daemon { script = H.write_script(SCRIPT), args = { "--script-timeout", "0.1" } }
    local b = assert(H.connect(d.port))
    for round = 1, ROUNDS do
      local a = assert(H.connect(d.port))
      assert(H.send_all(a, "spin"))
      local got, why = H.read_to_eof(a) -- the daemon closes it, or the socket's deadline
      a:close()
      assert.are.equal("", got)
      assert.is_true(why == "closed" or why == "connection reset by peer", "round " .. round .. ": " .. why .. "\n" .. d:stderr())
      local line = d:wait_line("error in dataReceived")
      assert(line, "round " .. round .. ": no error logged\n" .. d:stderr())
      assert.matches("script timeout: a callback ran longer than", line, 1, true)
      assert(d:wait_line("^spinner lost: error$"), "round " .. round .. "\n" .. d:stderr())
      assert(H.send_all(b, "burst"))
      assert.are.equal("burst 505000", b:receive("*l"), "round " .. round .. "\n" .. d:stderr())
    end
    b:close()
    local code, how = d:stop("TERM")
    local log = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), log)
    assert.is_nil(log:find("AddressSanitizer", 1, true), log)
    assert.are.equal(ROUNDS, H.count(log, "script timeout: a callback ran longer than"), log)
  end)
end)
