-- Issue 9: in the daemon, coroutine.resume (which is reactor.core._resume,
-- scripts/reactor/daemon.lua's watch_coroutines) returned the wrong number
-- of results: `coroutine.resume(co, 1, 2)` gave nothing instead of
-- `true, 3`, `coroutine.resume(co, 10)` gave `20` instead of `true, 20`, and
-- `coroutine.wrap(function(x) return x, "y" end)(5)` gave only `"y"`
-- (bindings/lcall.c counted its results after the arguments had moved).
local H = require "spec.helpers"

-- every value, typed, so that a missing `true` or a lost result shows
local function show(...)
  local t = table.pack(...)
  local out = {}
  for i = 1, t.n do
    local v = t[i]
    out[i] = type(v) == "string" and ("%q"):format(v) or tostring(v)
  end
  return "[" .. table.concat(out, ", ") .. "]"
end

describe("issue 9: coroutine results through core._resume", function()
  after_each(function() H.cleanup() end)

  it("core._resume returns true and every result, as coroutine.resume does", function()
    local resume = require("reactor").core._resume
    local add = coroutine.create(function(a, b) return a + b end)
    assert.are.equal("[true, 3]", show(resume(add, 1, 2)))
    local double = coroutine.create(function(x)
      local y = coroutine.yield(x * 2)
      return y, "done"
    end)
    assert.are.equal("[true, 20]", show(resume(double, 10)))
    assert.are.equal('[true, 7, "done"]', show(resume(double, 7)))
    assert.are.equal('[false, "cannot resume dead coroutine"]', show(resume(double)))
    local none = coroutine.create(function() end)
    assert.are.equal("[true]", show(resume(none, 1, 2, 3)))
    local fails = coroutine.create(function(a) error("bad " .. a, 0) end)
    assert.are.equal('[false, "bad x"]', show(resume(fails, "x")))
  end)

  it("a daemon script's coroutine.resume and coroutine.wrap give what plain Lua gives", function()
    local script = H.write_script [[
local function show(...)
  local t = table.pack(...)
  local out = {}
  for i = 1, t.n do
    local v = t[i]
    out[i] = type(v) == "string" and ("%q"):format(v) or tostring(v)
  end
  return "[" .. table.concat(out, ", ") .. "]"
end
local P = {}
function P:connectionMade()
  local w = self.transport
  w:write("same resume: " .. tostring(coroutine.resume == require("reactor").core._resume) .. "\n")
  local add = coroutine.create(function(a, b) return a + b end)
  w:write("add: " .. show(coroutine.resume(add, 1, 2)) .. "\n")
  local double = coroutine.create(function(x) coroutine.yield(x * 2) end)
  w:write("yield: " .. show(coroutine.resume(double, 10)) .. "\n")
  w:write("wrap: " .. show(coroutine.wrap(function(x) return x, "y" end)(5)) .. "\n")
  w:write("end\n")
end
return { protocol = P }
]]
    local d = H.start_daemon { script = script }
    local s = assert(H.connect(d.port))
    local got, err, partial = H.read_until(s, "end\n")
    s:close()
    assert(got, tostring(err) .. ": " .. tostring(partial) .. "\n" .. d:stderr())
    -- the daemon does install core._resume, so this is the function under test
    assert.matches("same resume: true\n", got, 1, true)
    assert.matches("add: [true, 3]\n", got, 1, true)
    assert.matches("yield: [true, 20]\n", got, 1, true)
    assert.matches('wrap: [5, "y"]\n', got, 1, true)
    local code, how = d:stop("TERM")
    assert.are.equal("exit 0", how .. " " .. tostring(code), d:stderr())
  end)
end)
