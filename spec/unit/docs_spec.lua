-- The README's "Lua API reference" and the code agree, both ways (luv's
-- .ci/docscov.sh, made to read the reference's own list; spec/helpers/docs.lua
-- says what counts): every luaL_Reg name of the binding and every key of
-- `require "reactor"` and reactor.core has an entry, and every entry names
-- something the runtime has. An undocumented or stale name fails the build.
local reactor = require "reactor"
local D = require "spec.helpers.docs"

describe("README's Lua API reference", function()
  local readme = D.read("README.md")
  local provided = D.provided()

  it("lists every function the binding registers and the module exports", function()
    local missing = D.check(readme, reactor, provided)
    assert.are.same({}, missing,
      "add these to README.md's Lua API reference:\n" .. table.concat(missing, "\n"))
  end)

  it("lists nothing the runtime does not have", function()
    local _, stale = D.check(readme, reactor, provided)
    assert.are.same({}, stale,
      "remove or rename these in README.md's Lua API reference:\n" .. table.concat(stale, "\n"))
  end)

  it("reads the binding's registrations (the check has something to check)", function()
    -- a scan that found nothing would pass the two checks above
    for _, name in ipairs { "listenTCP", "write", "loseConnection", "cancel", "stopListening", "resolve" } do
      assert.is_string(provided.reg[name], name .. " not found in any luaL_Reg of bindings/")
    end
  end)
end)
