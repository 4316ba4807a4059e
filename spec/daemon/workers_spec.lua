-- --workers and reactor.worker (issue 12, parts 1 and 5). This build serves
-- one process only: --workers 1 (the default) serves, a count above one is
-- refused with a clear error rather than half-served, and bad counts are
-- refused at the command line. The master/worker set is NOT built yet.

local H = require "spec.helpers"

-- exactly one line on stderr, starting "reactord: "
local function one_line(err)
  local lines = H.lines(err)
  assert.are.equal(1, #lines, "stderr should be one line:\n" .. err)
  assert.matches("^reactord: ", lines[1])
  return lines[1]
end

describe("reactord --workers", function()
  after_each(function() H.cleanup() end)

  for _, bad in ipairs { "0", "x", "-1", "1.5", "" } do
    it("refuses --workers '" .. bad .. "' with what to give instead", function()
      local code, out, err = H.run_daemon { H.binary(), "--workers", bad, "examples/zen.lua" }
      assert.are.equal(2, code)
      assert.are.equal("", out)
      local line = one_line(err)
      assert.matches("bad %-%-workers '" .. bad:gsub("%p", "%%%0") .. "'", line)
      assert.matches("1%.%.1024, or auto", line)
    end)
  end

  it("refuses a count above one (not built yet) instead of serving one process", function()
    local code, out, err = H.run_daemon { H.binary(), "--workers", "2", "examples/zen.lua" }
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("%-%-workers 2: this build serves one process only", one_line(err))
  end)

  it("serves with --workers 1, and the script sees reactor.worker = 1 of 1", function()
    local path = H.write_script [[
local reactor = require "reactor"
local W = {}
function W:dataReceived()
  local w = reactor.worker
  self.transport:write(("%d/%d %d"):format(w.id, w.count, reactor.getpid()))
end
return W
]]
    local d = H.start_daemon { script = path, args = { "--workers", "1" } }
    local s = assert(H.connect(d.port))
    assert.is_true(H.send_all(s, "?"))
    local got = assert(s:receive(#"1/1 " + #tostring(d.pid)))
    s:close()
    assert.are.equal("1/1 " .. d.pid, got)
    assert.are.equal(0, (d:stop()))
  end)
end)
