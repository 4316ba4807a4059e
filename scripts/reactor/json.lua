-- reactor.json: JSON for Lua 5.4 over Debian's lua-cjson (2.1.0), without
-- its traps:
--   * integers decode as integers (cjson gives floats: 1 -> 1.0, and
--     9007199254740993 loses its last digit); a number with a fraction or
--     an exponent is a float, an integer too big for 64 bits too;
--   * numbers encode with full precision (cjson stops at 14 digits, so
--     math.maxinteger became 9.2233720368548e+18 and 0.1 + 0.2 became 0.3):
--     integers in full, floats in the fewest digits that read back the same
--     float, with ".0" when they would look like an integer;
--   * [] and {} are told apart: a decoded array has the metatable
--     json.array_mt (so it encodes as an array again, empty or not),
--     json.array(t) marks a table of yours, json.empty_array is [];
--     an empty plain table is {}; a plain table whose keys are 1..n is an
--     array, else an object (string keys; integer keys written as strings).
-- null decodes as json.null (cjson.null) and json.null encodes as null.
-- Strings are escaped and unescaped by cjson (\uXXXX, surrogate pairs).
--
--   local json = require "reactor.json"
--   json.encode { id = 9007199254740993, tags = json.array {} }  --> {"id":9007199254740993,"tags":[]}
--   local v = assert(json.decode('{"n": 1, "l": []}'))            --> v.n == 1 (an integer), v.l is an array
--
-- json.decode(text) -> value | nil, "bad JSON at byte N: what" (input is data:
-- a failure is a value); json.encode(value) -> text, and raises for what
-- JSON cannot hold (NaN, inf, a function, a cycle, a mixed table) at the
-- caller's line.
local cjson = require "cjson"

local byte, find, sub, format, concat = string.byte, string.find, string.sub, string.format, table.concat
local tointeger, mtype, huge = math.tointeger, math.type, math.huge
local getmetatable, setmetatable, next, type, tostring, tonumber = getmetatable, setmetatable, next, type,
  tostring, tonumber
local cdecode, cencode = cjson.decode, cjson.encode

local M = {}

M.null = cjson.null
M.array_mt = { __name = "reactor.json.array" }
M.empty_array = setmetatable({}, { __name = "reactor.json.empty_array", __newindex = function()
  error("json.empty_array is read-only (use json.array({}) for an array to fill)", 2)
end })
local array_mt, empty_array, null = M.array_mt, M.empty_array, M.null
local MAX_DEPTH = 1000

--- json.array(t) -> t marked as an array (encodes as [...] even when empty)
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then
    error(format("bad argument #1 to 'array' (expected a table, got %s)", type(t)), 2)
  end
  return setmetatable(t, array_mt)
end

--- json.isarray(t) -> whether t encodes as an array
function M.isarray(t)
  local mt = getmetatable(t)
  return mt == array_mt or t == empty_array
end

--{=====================================================================
-- Decoding
--======================================================================

local decode_value

local function fail(pos, what)
  error({ json = format("bad JSON at byte %d: %s", pos, what) }, 0)
end

local function skip(s, i)
  local _, e = find(s, "^[ \t\r\n]*", i)
  return e + 1
end

local function decode_string(s, i)
  -- i at the opening quote: the string runs to the first quote not escaped
  local j = i + 1
  while true do
    local q = find(s, '["\\]', j)
    if not q then fail(i, "unterminated string") end
    if byte(s, q) == 34 then -- '"'
      local raw = sub(s, i, q)
      if find(raw, "[%z\1-\31]") then fail(i, "a control byte in a string") end
      if not find(raw, "\\", 1, true) then return sub(s, i + 1, q - 1), q + 1 end
      local ok, v = pcall(cdecode, raw)
      if not ok then fail(i, "a bad escape in a string") end
      return v, q + 1
    end
    j = q + 2 -- a backslash: skip the byte it escapes
  end
end

local function decode_number(s, i)
  local _, e = find(s, "^-?%d+", i)
  if not e then fail(i, "unexpected character") end
  local ds = sub(s, i, e)
  if find(ds, "^-?0%d") then fail(i, "a number with a leading zero") end
  local _, fe = find(s, "^%.%d+", e + 1)
  local _, xe = find(s, "^[eE][+-]?%d+", (fe or e) + 1)
  if not fe and not xe then
    if find(s, "^[.eE]", e + 1) then fail(e + 1, "a bad number") end
    local n = tointeger(tonumber(ds)) -- nil when it does not fit 64 bits: a float then
    return n or tonumber(ds), e + 1
  end
  local last = xe or fe
  if find(s, "^[.eE]", last + 1) then fail(last + 1, "a bad number") end
  return tonumber(sub(s, i, last)), last + 1 -- a fraction or an exponent: a float (and -0.0 stays -0.0)
end

local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", null } }

function decode_value(s, i, depth)
  i = skip(s, i)
  local c = byte(s, i)
  if c == 34 then return decode_string(s, i) end
  if c == 123 then -- {
    if depth >= MAX_DEPTH then fail(i, "nested too deep") end
    local t = {}
    i = skip(s, i + 1)
    if byte(s, i) == 125 then return t, i + 1 end
    while true do
      if byte(s, i) ~= 34 then fail(i, "expected a string key") end
      local k
      k, i = decode_string(s, i)
      i = skip(s, i)
      if byte(s, i) ~= 58 then fail(i, "expected ':'") end
      t[k], i = decode_value(s, i + 1, depth + 1)
      i = skip(s, i)
      c = byte(s, i)
      if c == 125 then return t, i + 1 end
      if c ~= 44 then fail(i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  end
  if c == 91 then -- [
    if depth >= MAX_DEPTH then fail(i, "nested too deep") end
    local t, n = setmetatable({}, array_mt), 0
    i = skip(s, i + 1)
    if byte(s, i) == 93 then return t, i + 1 end
    while true do
      n = n + 1
      t[n], i = decode_value(s, i, depth + 1)
      i = skip(s, i)
      c = byte(s, i)
      if c == 93 then return t, i + 1 end
      if c ~= 44 then fail(i, "expected ',' or ']'") end
      i = i + 1
    end
  end
  local lit = c and LITERALS[sub(s, i, i)]
  if lit then
    if sub(s, i, i + #lit[1] - 1) ~= lit[1] then fail(i, "unexpected character") end
    return lit[2], i + #lit[1]
  end
  if c == nil then fail(i, "unexpected end") end
  return decode_number(s, i)
end

--- json.decode(text) -> value | nil, why
function M.decode(s)
  if type(s) ~= "string" then
    error(format("bad argument #1 to 'decode' (expected a string, got %s)", type(s)), 2)
  end
  local ok, v, i = pcall(decode_value, s, 1, 0)
  if not ok then
    if type(v) == "table" and v.json then return nil, v.json end
    error(v, 0)
  end
  i = skip(s, i)
  if i <= #s then return nil, format("bad JSON at byte %d: text after the value", i) end
  return v
end

--{=====================================================================
-- Encoding
--======================================================================

local function number(x)
  if mtype(x) == "integer" then return format("%d", x) end
  if x ~= x or x == huge or x == -huge then
    error({ json = format("cannot encode %s in JSON", tostring(x)) }, 0)
  end
  local s = format("%.15g", x)
  if tonumber(s) ~= x then
    s = format("%.16g", x)
    if tonumber(s) ~= x then s = format("%.17g", x) end
  end
  if not find(s, "[.eEn]") then s = s .. ".0" end -- a float stays a float
  return s
end

local encode_value

local function encode_table(t, out, n, depth)
  if depth >= MAX_DEPTH then error({ json = "nested too deep to encode (a cycle?)" }, 0) end
  local mt = getmetatable(t)
  local len = #t
  local isarray = mt == array_mt or t == empty_array
  if not isarray and next(t) ~= nil then
    -- a plain table: an array when its keys are exactly 1..#t
    local count = 0
    for k in next, t do
      count = count + 1
      if mtype(k) ~= "integer" or k < 1 or k > len then
        count = -1
        break
      end
    end
    isarray = count == len
  end
  if isarray then
    n = n + 1
    out[n] = "["
    for i = 1, len do
      if i > 1 then
        n = n + 1
        out[n] = ","
      end
      n = encode_value(t[i], out, n, depth + 1)
    end
    n = n + 1
    out[n] = "]"
    return n
  end
  n = n + 1
  out[n] = "{"
  local first = true
  for k, v in next, t do
    local tk = type(k)
    if tk == "number" and mtype(k) == "integer" then
      k = tostring(k)
    elseif tk ~= "string" then
      error({ json = format("cannot encode a table key of type %s in JSON (keys are strings)", tk) }, 0)
    end
    if not first then
      n = n + 1
      out[n] = ","
    end
    first = false
    n = n + 1
    out[n] = cencode(k)
    n = n + 1
    out[n] = ":"
    n = encode_value(v, out, n, depth + 1)
  end
  n = n + 1
  out[n] = "}"
  return n
end

function encode_value(v, out, n, depth)
  local tv = type(v)
  n = n + 1
  if tv == "string" then
    out[n] = cencode(v)
  elseif tv == "number" then
    out[n] = number(v)
  elseif tv == "boolean" then
    out[n] = v and "true" or "false"
  elseif v == null or v == nil then
    out[n] = "null"
  elseif tv == "table" then
    return encode_table(v, out, n - 1, depth)
  else
    error({ json = format("cannot encode a %s in JSON", tv) }, 0)
  end
  return n
end

--- json.encode(value) -> text (raises for what JSON cannot hold)
function M.encode(v)
  local out = {}
  local ok, n = pcall(encode_value, v, out, 0, 0)
  if not ok then
    if type(n) == "table" and n.json then error("json.encode: " .. n.json, 2) end
    error(n, 0)
  end
  return concat(out, "", 1, n)
end

return M
