-- examples/zen.lua and examples/zen_client.lua, as a user runs them.
local h = require "spec.helpers"

local function client(port, ...)
  local args = { "lua5.4", "examples/zen_client.lua", "-p", tostring(port), ... }
  for i, a in ipairs(args) do args[i] = h.quote(a) end
  local p = io.popen(table.concat(args, " ") .. " 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

describe("examples/zen_client.lua", function()
  local d
  before_each(function() d = h.start_daemon { script = "examples/zen.lua" } end)
  after_each(function() if d then d:stop() end end)

  it("asks all three aphorisms on one connection and prints each answer", function()
    local code, out = client(d.port, "127.0.0.1")
    assert.are.equal(0, code)
    local seen = {}
    for q, a in out:gmatch("([^\n\t]+\\?)\t([^\n]+)\n") do seen[q] = a end
    assert.are.same(h.ZEN_ANSWERS, seen)
  end)

  it("-e hangs up mid-question and the server serves the next client", function()
    local code = client(d.port, "-e", "127.0.0.1")
    assert.are.equal(0, code)
    code = client(d.port, "localhost") -- a name from /etc/hosts works too
    assert.are.equal(0, code)
  end)

  it("says why when nobody listens", function()
    local code, out = client(1, "127.0.0.1")
    assert.are.equal(1, code)
    assert.matches("zen_client: cannot connect to 127.0.0.1:1: ECONNREFUSED", out, 1, true)
  end)

  it("rejects a bad flag with a usage line", function()
    local code, out = client(d.port, "--bogus", "127.0.0.1")
    assert.are.equal(2, code)
    assert.matches("unknown option --bogus", out, 1, true)
  end)
end)
