-- Issue 9: a callback that hit the daemon's memory limit was logged as
-- "error in lineReceived: not enough memory": no file:line, no word of
-- --max-memory. The record must name where the callback is defined and the
-- flag; the daemon goes on serving.
local H = require "spec.helpers"

local SCRIPT = [[
local P = {}
function P:dataReceived(data) -- DEFINED
  if data:find("eat", 1, true) then
    local t = {}
    for i = 1, 1e7 do t[i] = string.rep("x", 65536) .. i end -- 640 GiB: the limit comes first
  end
  self.transport:write("echo:" .. data .. "\n")
end
function P:connectionLost(reason) io.stderr:write("lost: ", reason.type, "\n") end
return { protocol = P }
]]

describe("issue 9: the memory limit in the daemon", function()
  after_each(function() H.cleanup() end)

  it("names the callback's file:line and --max-memory, and the daemon serves on", function()
    local script = H.write_script(SCRIPT)
    -- only the memory guard: under ASan the loop may be slow enough to meet the time one first
    local d = H.start_logged_daemon { script = script, args = { "--max-memory", "64", "--script-timeout", "0" } }
    local a = assert(H.connect(d.port))
    assert(H.send_all(a, "eat"))
    local line, why = d:wait_line("not enough memory")
    assert(line, tostring(why) .. "\n" .. d:stderr())
    assert.matches("^reactord: error in dataReceived: ", line)
    assert.matches(script:gsub("%p", "%%%0") .. ":" .. H.line_of(SCRIPT, "-- DEFINED") .. "%f[%D]", line)
    assert.matches("--max-memory", line, 1, true)
    local got = H.read_to_eof(a)
    a:close()
    assert.are.equal("", got)
    -- another client is served
    local b = assert(H.connect(d.port))
    assert(H.send_all(b, "hello"))
    assert.are.equal("echo:hello", b:receive("*l"))
    b:close()
    local code, how = d:stop("TERM")
    assert.are.equal("exit 0", how .. " " .. tostring(code), d:stderr())
  end)
end)
