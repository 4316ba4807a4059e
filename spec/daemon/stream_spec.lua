-- A daemon script that returns reactor.serve(port, fn) (issue 10 part 2):
-- served by the real daemon, hot reload (new connections run the new
-- handler, a running task keeps the code it started with), and the watchdog
-- stopping a task that spins, with the log naming the user's line.
local H = require "spec.helpers"

local function script(version)
  return ([[
local reactor = require "reactor"
return reactor.serve(1060, function(s)
  s:write("hello from %s\n")
  while true do
    local line = s:readline()
    if not line then return end
    if line == "spin" then
      while true do end -- SPIN
    end
    s:write("%s " .. line .. "\n")
  end
end)
]]):format(version, version)
end

describe("a daemon script returning reactor.serve(port, fn)", function()
  after_each(function() H.cleanup() end)

  it("a bad argument in `return reactor.serve(...)` (a tail call) is blamed on the script's line", function()
    local path = H.write_script('local reactor = require "reactor"\nreturn reactor.serve(1060, 42)\n')
    local code, out, err = H.run_daemon { "--check", path }
    assert.are.equal(1, code, out)
    assert.matches(path:gsub("%p", "%%%0") .. ":2: bad argument #2 to 'serve' %(expected a function%(stream%) to run "
      .. "for each connection, got number 42%)", err)
  end)

  it("serves each connection in a task; a reload reaches new connections, not running tasks", function()
    local dir = H.tmpdir()
    local path = dir .. "/app.lua"
    H.write_file(path, script("v1"))
    local d = H.start_logged_daemon { script = path }
    local old = H.connect(d.port)
    assert.are.equal("hello from v1\n", H.read_until(old, "\n"))
    H.send_all(old, "a\n")
    assert.are.equal("v1 a\n", H.read_until(old, "\n"))
    H.save_by_rename(path, script("v2"))
    assert(d:signal("HUP"))
    assert.matches("^reactord: reloaded .* %(generation 2%): 1 live connection moves to it",
      (d:wait_line("^reactord: reload")))
    local new = H.connect(d.port)
    assert.are.equal("hello from v2\n", H.read_until(new, "\n"))
    H.send_all(new, "b\n")
    assert.are.equal("v2 b\n", H.read_until(new, "\n"))
    -- the task that was running goes on with the code it started with
    H.send_all(old, "c\n")
    assert.are.equal("v1 c\n", H.read_until(old, "\n"))
    old:close()
    new:close()
  end)

  it("on SIGTERM a task waiting for its next request is told the stream closed, at once", function()
    local dir = H.tmpdir()
    local path = dir .. "/app.lua"
    H.write_file(path, script("v1"))
    local d = H.start_logged_daemon { script = path, args = { "--grace", "60" } }
    local idle = H.connect(d.port)
    assert.are.equal("hello from v1\n", H.read_until(idle, "\n"))
    assert(d:signal("TERM"))
    local line, skipped = d:wait_line("^reactord: stopped")
    assert(line, table.concat(skipped or {}, "\n"))
    for _, l in ipairs(skipped) do assert.not_matches("grace period over", l) end -- not aborted after 60 s
    assert.is_true(H.sees_eof(idle))
    idle:close()
  end)

  it("the watchdog stops a task that spins, logs the user's line, and the others are served", function()
    local dir = H.tmpdir()
    local path = dir .. "/app.lua"
    local src = script("v1")
    H.write_file(path, src)
    local d = H.start_logged_daemon { script = path, args = { "--script-timeout", "0.2" } }
    local spinner, other = H.connect(d.port), H.connect(d.port)
    assert.are.equal("hello from v1\n", H.read_until(spinner, "\n"))
    assert.are.equal("hello from v1\n", H.read_until(other, "\n"))
    H.send_all(spinner, "spin\n")
    local line = d:wait_line("script timeout")
    assert.matches("^reactord: error in dataReceived: script timeout: a callback ran longer than 0%.2", line)
    local at = d:wait_line("app%.lua")
    assert.matches(("app%%.lua:%d: in function"):format(H.line_of(src, "SPIN")), at)
    assert.is_true(H.sees_eof(spinner))
    H.send_all(other, "still\n")
    assert.are.equal("v1 still\n", H.read_until(other, "\n"))
    spinner:close()
    other:close()
  end)

  it("a task the watchdog stops while resumed by its read wakes its joiner with the reason", function()
    local src = [[
local reactor = require "reactor"
local task = require "reactor.task"
local spinner
return reactor.serve(1060, function(s)
  local line = s:readline()
  if line == "spin" then
    spinner = task.current()
    s:write("spinning\n")
    while s:readline() do -- the next line comes in a read that resumes this task
      while true do end -- SPIN
    end
  elseif line == "join" then
    local ok, err = spinner:join()
    s:write(tostring(ok) .. " " .. tostring(err) .. "\n")
  end
end)
]]
    local path = H.write_script(src)
    local d = H.start_logged_daemon { script = path, args = { "--script-timeout", "0.2" } }
    local spinner, joiner = H.connect(d.port), H.connect(d.port)
    H.send_all(spinner, "spin\n")
    assert.are.equal("spinning\n", H.read_until(spinner, "\n"))
    H.send_all(joiner, "join\n")
    H.send_all(spinner, "go\n")
    local line, why, skipped = d:wait_line("script timeout")
    assert(line, tostring(why) .. "\n" .. table.concat(skipped or {}, "\n"))
    assert.is_true(H.sees_eof(spinner))
    assert.are.equal("false script timeout: the task was stopped by the watchdog\n", H.read_until(joiner, "\n"))
    spinner:close()
    joiner:close()
  end)

  it("the memory limit stops a task that eats memory, logs where, and the others are served", function()
    local src = [[
local reactor = require "reactor"
return reactor.serve(1060, function(s)
  while true do
    local line = s:readline()
    if not line then return end
    if line == "eat" then
      local t = {}
      for i = 1, 1e7 do t[i] = string.rep("x", 65536) .. i end -- EAT
    end
    s:write("ok " .. line .. "\n")
  end
end)
]]
    local path = H.write_script(src)
    local d = H.start_logged_daemon { script = path, args = { "--max-memory", "64", "--script-timeout", "0" } }
    local eater, other = H.connect(d.port), H.connect(d.port)
    H.send_all(eater, "eat\n")
    local line = d:wait_line("not enough memory")
    assert.matches("^reactord: error in the reactor.serve handler at .*:2, peer 127%.0%.0%.1:%d+: not enough memory", line)
    assert.matches((":%d: in function"):format(H.line_of(src, "EAT")), (d:wait_line("in function")))
    assert.is_true(H.sees_eof(eater))
    H.send_all(other, "still\n")
    assert.are.equal("ok still\n", H.read_until(other, "\n"))
    eater:close()
    other:close()
  end)
end)
