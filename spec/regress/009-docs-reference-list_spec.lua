-- Issue 9: the docs spec was a substring search of the whole README, so a
-- name that lost its entry in the API reference still passed wherever the
-- word appeared in other prose (`setTimeout`, `write`, `log`), and an entry for a
-- function that no longer exists was never noticed. spec/unit/docs_spec.lua
-- now checks the reference's own list both ways (spec/helpers/docs.lua); these
-- specs feed it a README with one entry taken out, renamed or made up.
local reactor = require "reactor"
local D = require "spec.helpers.docs"

describe("issue 9: the docs check reads the API reference's own list", function()
  local readme = D.read("README.md")
  local provided = D.provided()

  -- README with the first line containing `marker` replaced by `by`
  local function edit(marker, by)
    local a = assert(readme:find(marker, 1, true), "README.md no longer has " .. marker)
    local line_start = readme:sub(1, a):match(".*()\n") or 1
    local line_end = readme:find("\n", a, true)
    return readme:sub(1, line_start) .. by .. readme:sub(line_end)
  end

  local function has(list, prefix)
    for _, entry in ipairs(list) do
      if entry:sub(1, #prefix + 1) == prefix .. " " then return true end
    end
    return false
  end

  it("passes the README as it is", function()
    local missing, stale = D.check(readme, reactor, provided)
    assert.are.same({}, missing)
    assert.are.same({}, stale)
  end)

  it("fails when an entry is taken out, though the word is still elsewhere in the README", function()
    local doctored = edit("| `setTimeout(seconds", "")
    assert.truthy(doctored:find("setTimeout", 1, true)) -- what fooled the old substring check
    local missing = D.check(doctored, reactor, provided)
    assert.are.equal(1, #missing, table.concat(missing, "\n"))
    assert.matches("^setTimeout %(luaL_Reg in .*bindings/.*%.c%)$", missing[1])
  end)

  it("fails when a function of the module loses its entry", function()
    local missing = D.check(edit("| `reactor.stdio(protocol)` |", ""), reactor, provided)
    assert.is_true(has(missing, "reactor.stdio"), table.concat(missing, "\n"))
    assert.is_true(has(missing, "stdio"), table.concat(missing, "\n")) -- also a luaL_Reg name
  end)

  it("fails when a Transport method's entry is taken out", function()
    local missing = D.check(edit("| `loseWriteConnection()` |", ""), reactor, provided)
    assert.are.equal(1, #missing, table.concat(missing, "\n"))
    assert.matches("^loseWriteConnection %(luaL_Reg in .*bindings/.*%.c%)$", missing[1])
  end)

  it("fails on an entry for something the runtime does not have", function()
    local _, stale = D.check(edit("| `bufferSize()` |", "| `bufferedAmount()` | bytes queued |"), reactor, provided)
    assert.is_true(has(stale, "bufferedAmount"), table.concat(stale, "\n"))
    local made_up = edit("`reactor.running()`, `reactor.now()`", "| `reactor.listenSSL(port, factory)` | |")
    local _, stale2 = D.check(made_up, reactor, provided)
    assert.is_true(has(stale2, "reactor.listenSSL"), table.concat(stale2, "\n"))
  end)
end)
