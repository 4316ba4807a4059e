-- Every name the C binding registers for Lua (luaL_Reg tables) is in the
-- README's API reference (luv's .ci/docscov.sh): an undocumented function
-- fails the build.
describe("README", function()
  it("documents every function and method the binding registers", function()
    local readme = assert(io.open("README.md")):read("a")
    local missing = {}
    for file in io.popen("ls bindings/*.c"):lines() do
      local src = assert(io.open(file)):read("a")
      for name in src:gmatch('{%s*"([%w_]+)"%s*,%s*[%w_]+%s*}') do
        local internal = name:sub(1, 1) == "_" or name == "version"
        if not internal and not readme:find(name, 1, true) then
          missing[#missing + 1] = file .. ": " .. name
        end
      end
    end
    assert.are.same({}, missing)
  end)
end)
