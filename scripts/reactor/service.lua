-- reactor.service: load a protocol script the way the daemon serves it.
-- The script runs in an environment of its own (globals it sets stay in it)
-- and returns a protocol class or a factory-like table {protocol = ...}.
local M = {}

local CALLBACKS = { "connectionMade", "dataReceived", "connectionLost", "lineReceived" }

local function first_line(msg)
  msg = tostring(msg)
  return (msg:match("^(.-)\nstack traceback:") or msg)
end

--- load(path) -> factory-like table | nil, "file:line: message"
function M.load(path)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, ret = xpcall(chunk, debug.traceback)
  if not ok then return nil, first_line(ret) end
  if type(ret) ~= "table" then
    return nil, ("%s: the script must return a protocol table or {protocol = ...} (it returned %s)")
      :format(path, type(ret))
  end
  local class = ret.protocol or ret
  if type(class) ~= "table" then
    return nil, ("%s: 'protocol' must be a table (it is %s)"):format(path, type(class))
  end
  local has = false
  for _, name in ipairs(CALLBACKS) do
    local f = rawget(class, name)
    if f ~= nil and type(f) ~= "function" then
      return nil, ("%s: '%s' must be a function (it is %s)"):format(path, name, type(f))
    end
    has = has or f ~= nil
  end
  if not has and getmetatable(class) == nil then
    return nil, ("%s: the protocol defines none of %s"):format(path, table.concat(CALLBACKS, ", "))
  end
  return require("reactor").asFactory(ret)
end

return M
