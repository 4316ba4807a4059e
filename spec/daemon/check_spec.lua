-- `reactord --check` runs what the daemon runs before it listens (issue 9):
-- a bad port fails it, naming the script and the field; a misspelled
-- callback is a warning (with "did you mean") that does not fail it; and a
-- startFactory that fails stops the daemon before any "listening on" line.
local H = require "spec.helpers"

local function script(fields, extra)
  return H.write_script(([[
local P = {}
function P:dataReceived(d) self.transport:write(d) end
%s
return { protocol = P, %s }
]]):format(extra or "", fields))
end

describe("reactord --check", function()
  after_each(H.cleanup)

  for _, case in ipairs {
    { 'port = "http"', [['port' must be an integer 0..65535 (it is the string "http")]] },
    { "port = 99999", "'port' must be an integer 0..65535 (it is the number 99999)" },
    { "port = 8000.5", "'port' must be an integer 0..65535 (it is the number 8000.5)" },
    { "listen = { 8001, { port = -1 } }", "'listen[2].port' must be an integer 0..65535 (it is the number -1)" },
  } do
    it("fails on " .. case[1] .. ", as serving it would", function()
      local path = script(case[1])
      local want = "reactord: " .. path .. ": " .. case[2] .. "\n"
      local code, out, err = H.run_daemon { "--check", path }
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.are.equal(want, err)
      code, out, err = H.run_daemon { path, "-p", "0" }
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.are.equal(want, err)
    end)
  end

  it("warns about a misspelled callback, with its line, and passes", function()
    local path = script("", "function P:connectionlost(reason)\nend")
    local code, out, err = H.run_daemon { "--check", path }
    assert.are.equal(0, code, err)
    assert.are.equal("reactord: " .. path .. ": ok\n", out)
    assert.are.equal("reactord: " .. path .. ":3: warning: 'connectionlost' is not a protocol callback reactord knows;"
      .. " did you mean 'connectionLost'?\n", err)
  end)

  it("warns about a misspelled factory key", function()
    local path = script("protocl = P")
    local code, _, err = H.run_daemon { "--check", path }
    assert.are.equal(0, code, err)
    assert.are.equal("reactord: " .. path .. ": warning: 'protocl' is not a factory field reactord knows;"
      .. " did you mean 'protocol'?\n", err)
  end)
end)

describe("reactord with a startFactory that fails", function()
  after_each(H.cleanup)

  it("says 'in startFactory' with the file:line, prints no listening line, exits 1", function()
    local path = H.write_script([[
local F = { protocol = { dataReceived = function() end } }
function F:startFactory()
  error("no database")
end
return F
]])
    local code, out, err = H.run_daemon { path, "-p", "0" }
    assert.are.equal(1, code, err)
    assert.are.equal("", out)
    assert.are.equal("reactord: in startFactory: " .. path .. ":3: no database\n", err)
  end)
end)
