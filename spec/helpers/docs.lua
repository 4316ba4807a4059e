-- spec/helpers/docs.lua: the README's "Lua API reference" against the code,
-- both ways (luv's .ci/docscov.sh, made to check the reference's own list).
--
-- The reference's list is every name the section writes in a code span as a
-- call (`write(data)`, `setLimits{...}`, `lc:start(...)`) or as `reactor.NAME`.
--   missing: a luaL_Reg name of the binding, or a key of `require "reactor"`
--            or of reactor.core, that the list does not hold (a key of the
--            module must be listed as `reactor.NAME`);
--   stale:   a listed `reactor.NAME` that the module does not export, or a
--            listed call that nothing in the runtime registers, defines or
--            names (C in bindings/: luaL_Reg entries and the string literals
--            it looks callbacks up by, such as "pauseProducing"; Lua in
--            scripts/: every `.name`, `:name` and "name" outside comments,
--            which is how it defines methods and looks callbacks up, such
--            as `p.shutdownRequested`), nor Lua itself (tostring).
-- Names that start with "_" are internal and need no entry.
local M = {}

-- names in the reference that stand for the user's own function
M.PLACEHOLDERS = { fn = true, method = true }

local KEYWORDS = {}
for k in ("and break do else elseif end false for function goto if in local nil not or repeat return then"
  .. " true until while"):gmatch("%a+") do
  KEYWORDS[k] = true
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- files under `dir` whose names end in `ext`, sorted
local function files(dir, ext)
  local list = {}
  local p = assert(io.popen("find " .. dir .. " -type f -name '*" .. ext .. "' | sort"))
  for line in p:lines() do list[#list + 1] = line:gsub("^%./", "") end
  p:close()
  return list
end

local function internal(name) return name:sub(1, 1) == "_" end

--- The text of the README's "## Lua API reference" section (up to the next "## ").
function M.section(readme)
  local a = readme:find("\n## Lua API reference\n", 1, true)
  assert(a, "README.md has no '## Lua API reference' section")
  local b = readme:find("\n## ", a + 1, true) or #readme + 1
  return readme:sub(a, b - 1)
end

--- The reference's list: {calls = set of names, reactor = set of NAME in `reactor.NAME`}.
function M.listed(section)
  local calls, reactor = {}, {}
  section = section:gsub("\n```.-\n```", "\n") -- an example's code is not the list (its fences would pair with spans)
  for span in section:gmatch("`([^`]+)`") do
    for at, name in span:gmatch("()reactor%.([%a_][%w_]*)") do
      -- not a file name such as `build/reactor.so`
      if not span:sub(at - 1, at - 1):match("[%w_/.]") then reactor[name] = true end
    end
    -- a name right before "(" or "{" (no space: `Transport (closed)` is not a call)
    for name in span:gmatch("([%a_][%w_]*)[%({]") do
      if not KEYWORDS[name] and not M.PLACEHOLDERS[name] then calls[name] = true end
    end
  end
  return { calls = calls, reactor = reactor }
end

--- What the runtime provides: {reg = {name = "file"}, names = set of every
--- name it registers, defines or calls}. `root` is the repository (default ".").
function M.provided(root)
  root = root or "."
  local reg, names = {}, {}
  for _, file in ipairs(files(root .. "/bindings", ".c")) do
    local src = read(file):gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
    for block in src:gmatch("luaL_Reg%s+[%w_]+%s*%[%s*%]%s*=%s*(%b{})") do
      for name in block:gmatch('{%s*"([%w_]+)"%s*,') do
        reg[name] = file
        names[name] = true
      end
    end
    for name in src:gmatch('"([%a_][%w_]*)"') do names[name] = true end
  end
  for _, file in ipairs(files(root .. "/scripts", ".lua")) do
    local src = read(file):gsub("%-%-[^\n]*", " ")
    for name in src:gmatch("[.:]([%a_][%w_]*)") do names[name] = true end
    for name in src:gmatch('"([%a_][%w_]*)"') do names[name] = true end
  end
  return { reg = reg, names = names }
end

-- sorted keys of a set
local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

--- Compare the reference in `readme` (text) with the runtime: returns the
--- sorted lists missing and stale (each entry says where the name comes from).
-- `reactor` is the loaded module (require "reactor"); `provided` is M.provided().
function M.check(readme, reactor, provided)
  local listed = M.listed(M.section(readme))
  local missing, stale = {}, {}
  -- both ways for the module's own names
  for name in pairs(reactor) do
    if not internal(name) and not listed.reactor[name] then
      missing[#missing + 1] = "reactor." .. name .. " (a key of require \"reactor\")"
    end
  end
  for name in pairs(listed.reactor) do
    if reactor[name] == nil then
      stale[#stale + 1] = "reactor." .. name .. " (not exported by require \"reactor\")"
    end
  end
  -- the C half: every registered function, every key of reactor.core
  for name, file in pairs(provided.reg) do
    if not internal(name) and not listed.calls[name] and not listed.reactor[name] then
      missing[#missing + 1] = name .. " (luaL_Reg in " .. file .. ")"
    end
  end
  for name in pairs(reactor.core) do
    if not internal(name) and not listed.calls[name] and not listed.reactor[name] then
      missing[#missing + 1] = name .. " (a key of reactor.core)"
    end
  end
  for name in pairs(listed.calls) do
    if not provided.names[name] and reactor[name] == nil and reactor.core[name] == nil
      and _G[name] == nil and string[name] == nil then
      stale[#stale + 1] = name .. " (nothing in bindings/ or scripts/ registers, defines or calls it)"
    end
  end
  table.sort(missing)
  table.sort(stale)
  return missing, stale, listed
end

M.sorted = sorted
M.read = read

return M
