-- The daemon's Lua state runs the generational collector (bindings/daemon/
-- main.c): a server's per-read garbage dies young. A script sees which
-- collector it runs under, and may switch to the incremental one.
local H = require "spec.helpers"

describe("reactord's garbage collector", function()
  after_each(H.cleanup)

  it("is Lua's generational one when a script starts, and the script may switch it", function()
    local path = H.write_script([[
local was = collectgarbage("incremental")
io.stderr:write("collector was ", was, ", now ", collectgarbage("incremental"), "\n")
local P = {}
function P:dataReceived(d) self.transport:write(d) end
return { protocol = P, port = 0 }
]])
    local code, out, err = H.run_daemon { "--check", path }
    assert.are.equal(0, code, err)
    assert.are.equal("reactord: " .. path .. ": ok\n", out)
    assert.are.equal("collector was generational, now incremental\n", err)
  end)
end)
