-- Issue 9: the first line on stdout is `reactord: listening on HOST:PORT`
-- (documented as always first; tests and scripts wait for it), even when
-- the script prints at its top level, which runs before anything listens.
-- What the script printed is not lost: it follows the listening line.
local H = require "spec.helpers"

describe("the daemon's first stdout line", function()
  after_each(H.cleanup)

  it("is the listening line when the script prints at its top level", function()
    local script = H.write_script([[
print("loading the zen table")
io.write("two\n")
io.stdout:write("three\n")
local P = {}
function P:connectionMade()
  print("a connection") -- after the listening line: printed as it happens
  self.transport:loseConnection()
end
return { protocol = P }
]])
    local d = H.start_daemon { script = script } -- raises unless line one is the listening line
    assert.matches("^reactord: listening on 127%.0%.0%.1:%d+$", d.first_line)
    assert.are.equal("loading the zen table", d.handle:read("l"))
    assert.are.equal("two", d.handle:read("l"))
    assert.are.equal("three", d.handle:read("l"))
    local s = H.connect(d.port)
    assert.is_true(H.sees_eof(s))
    s:close()
    assert.are.equal("a connection", d.handle:read("l"))
  end)

  it("is the listening line of every port, before what the script printed", function()
    local script = H.write_script([[
print("hello from the top level")
return { protocol = { connectionMade = function() end }, listen = { 0 } }
]])
    local d = H.start_daemon { script = script }
    assert.matches("^reactord: listening on ", d.handle:read("l"))
    assert.are.equal("hello from the top level", d.handle:read("l"))
  end)

  it("lets what a broken script printed out, with its error on stderr", function()
    local script = H.write_script('print("before the error")\nerror("broken on purpose")\n')
    local code, out, err = H.run_daemon { script, "-p", "0" }
    assert.are.equal(1, code)
    assert.are.equal("before the error\n", out)
    assert.matches("broken on purpose", err, 1, true)
  end)
end)
