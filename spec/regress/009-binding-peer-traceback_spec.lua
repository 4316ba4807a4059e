-- Issue 9: a callback error in the daemon did not say which connection it
-- was about, and its traceback went on through the runtime's own frames
-- down to "[C]: in ?", "in function 'reactor.run'" and reactor/daemon.lua.
-- Now the record names the peer and the traceback stops at the user's frames.
local H = require "spec.helpers"

local SCRIPT = [[
local function check(data)
  if data:find("bad", 1, true) then error("bad request: " .. data) end -- RAISES
end
local P = {}
function P:dataReceived(data)
  check(data) -- CALLS
  self.transport:write("ok\n")
end
function P:connectionLost(reason) io.stderr:write("lost: ", reason.type, "\n") end
return { protocol = P }
]]

-- serve SCRIPT, send "bad" from one client; returns the record's first
-- line, the whole record (with its traceback), the client's port, the
-- script's path and the loss line the script printed afterwards
local function provoke()
  local script = H.write_script(SCRIPT)
  local d = H.start_logged_daemon { script = script }
  local s = assert(H.connect(d.port))
  local _, local_port = s:getsockname()
  assert(H.send_all(s, "bad"))
  local head, why = d:wait_line("error in dataReceived")
  assert(head, tostring(why) .. "\n" .. d:stderr())
  -- the traceback is logged before the connection is lost
  local lost, traceback = d:wait_line("^lost: ")
  assert(lost, tostring(traceback) .. "\n" .. d:stderr())
  s:close()
  local code, how = d:stop("TERM")
  assert.are.equal("exit 0", how .. " " .. tostring(code), d:stderr())
  return head, head .. "\n" .. table.concat(traceback, "\n"), tonumber(local_port), script, lost
end

describe("issue 9: a callback error in the daemon", function()
  after_each(function() H.cleanup() end)

  it("names the connection's peer, and the user's file:line", function()
    local head, _, local_port, script, lost = provoke()
    assert.matches(("(peer 127.0.0.1:%d)"):format(local_port), head, 1, true)
    assert.matches(script .. ":" .. H.line_of(SCRIPT, "-- RAISES") .. ": bad request: bad", head, 1, true)
    assert.are.equal("lost: error", lost)
  end)

  it("has a traceback that stops at the user's frames", function()
    local _, record, _, script = provoke()
    assert.matches("stack traceback:", record, 1, true)
    assert.matches(script .. ":" .. H.line_of(SCRIPT, "-- CALLS") .. ":", record, 1, true)
    assert.is_nil(record:find("[C]: in ?", 1, true), record)
    assert.is_nil(record:find("reactor/daemon.lua", 1, true), record)
    assert.is_nil(record:find("in function 'reactor.run'", 1, true), record)
  end)
end)
