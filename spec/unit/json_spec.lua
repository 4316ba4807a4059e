-- reactor.json: lua-cjson 2.1.0's traps for Lua 5.4, each a case (what
-- cjson alone gives is in the comment), and the errors a user sees.
require "reactor" -- installs the reactor.* modules (package.preload)
local json = require "reactor.json"

local THIS = "spec/unit/json_spec.lua"

describe("reactor.json", function()
  describe("integers decode as integers", function()
    for _, c in ipairs {
      { "1", 1 },
      { "-7", -7 },
      { "0", 0 },
      { "9007199254740993", 9007199254740993 }, -- cjson: 9.007199254741e+15 (a float, the 3 lost)
      { "9223372036854775807", math.maxinteger },
      { "-9223372036854775808", math.mininteger },
    } do
      it(c[1], function()
        local v = json.decode(c[1])
        assert.equal("integer", math.type(v))
        assert.equal(c[2], v)
      end)
    end
    it("a number with a fraction or an exponent, or past 64 bits, is a float", function()
      for _, s in ipairs { "1.0", "1e2", "1.5E-3", "9223372036854775808", "-0.0" } do
        assert.equal("float", math.type(json.decode(s)), s)
      end
      assert.equal(1 / -math.huge, json.decode("-0.0")) -- the sign kept
      assert.equal("-0.0", json.encode(json.decode("-0.0")))
    end)
    it("inside arrays and objects too", function()
      local v = json.decode('{"id": 12345678901234567, "l": [1, 2, 3]}')
      assert.equal("integer", math.type(v.id))
      assert.equal(12345678901234567, v.id)
      assert.equal("integer", math.type(v.l[3]))
    end)
  end)

  describe("numbers encode with full precision", function()
    for _, c in ipairs {
      { math.maxinteger, "9223372036854775807" }, -- cjson: 9.2233720368548e+18
      { math.mininteger, "-9223372036854775808" },
      { 9007199254740993, "9007199254740993" }, -- cjson: 9.007199254741e+15
      { 0.1, "0.1" },
      { 0.1 + 0.2, "0.30000000000000004" }, -- cjson: 0.3
      { 1 / 3, "0.3333333333333333" }, -- cjson: 0.33333333333333
      { 2.0, "2.0" }, -- a float stays a float
      { 2 ^ 53, "9007199254740992.0" }, -- cjson: 9.007199254741e+15
      { 1e300, "1e+300" },
      { 42, "42" },
    } do
      it(("%s -> %s"):format(tostring(c[1]), c[2]), function()
        assert.equal(c[2], json.encode(c[1]))
      end)
    end
    it("every float reads back the same float", function()
      for _, x in ipairs { 0.1, 1 / 3, math.pi, 1e-300, 5e-324, 1.7976931348623157e308, 123456.789e3 } do
        local back = json.decode(json.encode(x))
        assert.equal("float", math.type(back))
        assert.equal(x, back)
      end
    end)
  end)

  describe("[] and {} are told apart", function()
    it("decoded arrays re-encode as arrays, empty or not; empty objects as objects", function()
      local v = json.decode('{"a": [], "o": {}, "l": [1, [], {}]}')
      assert.is_true(json.isarray(v.a))
      assert.is_false(json.isarray(v.o))
      assert.equal("[]", json.encode(v.a)) -- cjson: {} (both are empty tables)
      assert.equal("{}", json.encode(v.o))
      assert.equal('[1,[],{}]', json.encode(v.l))
    end)
    it("json.array(t) and json.empty_array encode as arrays; a plain empty table as an object", function()
      assert.equal("[]", json.encode(json.array {}))
      assert.equal("[]", json.encode(json.empty_array))
      assert.equal('{"l":[]}', json.encode { l = json.empty_array })
      assert.equal("{}", json.encode {})
      assert.equal("[1,2]", json.encode(json.array { 1, 2 }))
      assert.equal("[1,2,3]", json.encode { 1, 2, 3 }) -- a plain sequence is an array
      local ok, err = pcall(function() json.empty_array[1] = 1 end)
      assert.is_false(ok)
      assert.matches("json.empty_array is read%-only", err)
    end)
    it("a table with holes or other keys is an object (integer keys as strings)", function()
      assert.equal('{"1":1,"3":3}', json.encode { [1] = 1, [3] = 3 })
      local v = json.decode(json.encode { [1] = "a", x = "b" })
      assert.same({ ["1"] = "a", x = "b" }, v)
    end)
  end)

  it("null, booleans and strings (escapes decoded by cjson)", function()
    local v = json.decode('{"n": null, "t": true, "f": false, "s": "a\\u00e9\\ud83d\\ude00\\n\\"\\/"}')
    assert.equal(json.null, v.n)
    assert.is_true(v.t)
    assert.is_false(v.f)
    assert.equal('a\u{e9}\u{1f600}\n"/', v.s)
    assert.same(v, json.decode(json.encode(v)))
    assert.equal("null", json.encode(json.null))
  end)

  describe("bad JSON is nil and where", function()
    for _, c in ipairs {
      { "", "byte 1: unexpected end" },
      { "[1,]", "byte 4: unexpected character" },
      { '{"a" 1}', "byte 6: expected ':'" },
      { '{"a":1,}', "byte 8: expected a string key" },
      { "01", "byte 1: a number with a leading zero" },
      { "1.", "byte 2: a bad number" },
      { "[1] x", "byte 5: text after the value" },
      { '"a\\x"', "byte 1: a bad escape" },
      { '"\t"', "byte 1: a control byte in a string" },
      { "tru", "byte 1: unexpected character" },
      { "[", "byte 2: unexpected end" },
      { '"abc', "byte 1: unterminated string" },
      { ("["):rep(1001) .. ("]"):rep(1001), "byte 1001: nested too deep" },
    } do
      it(("%q"):format(c[1]:sub(1, 20)), function()
        local v, err = json.decode(c[1])
        assert.is_nil(v)
        assert.equal("bad JSON at " .. c[2], err:sub(1, #("bad JSON at " .. c[2])))
      end)
    end
  end)

  it("what JSON cannot hold raises at the caller's line", function()
    local cyc = {}
    cyc.self = cyc
    for _, c in ipairs {
      { 0 / 0, "cannot encode %-?nan in JSON" },
      { math.huge, "cannot encode inf in JSON" },
      { { f = print }, "cannot encode a function in JSON" },
      { { [true] = 1 }, "cannot encode a table key of type boolean" },
      { cyc, "nested too deep to encode %(a cycle%?%)" },
    } do
      local ok, err = pcall(json.encode, c[1])
      assert.is_false(ok)
      assert.matches("json.encode: " .. c[2], err)
    end
    local ok, err = pcall(function() json.encode(print) end) -- here
    assert.is_false(ok)
    assert.matches("^" .. THIS:gsub("%p", "%%%0") .. ":%d+: json.encode: cannot encode a function", err)
    ok, err = pcall(function() json.decode(42) end)
    assert.is_false(ok)
    assert.matches("^" .. THIS:gsub("%p", "%%%0") .. ":%d+: bad argument #1 to 'decode' %(expected a string, got number%)", err)
  end)
end)
