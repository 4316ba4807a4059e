-- reactor.reload: a served script's generations, and moving live
-- connections from one to the next (a UDP port's protocol object moves the
-- same way, at its next datagram).
--
-- Committing a generation swaps one thing per factory: its instance
-- metatable. Connections of older generations keep their old metatable,
-- whose __index becomes a migrator: at the connection's next lookup (its
-- next event, at the latest) it moves the instance to the new metatable and
-- runs the new class's migrate(self, old_version) once. A reload therefore
-- costs the same at 10 or 100,000 connections.
local core = require "reactor.core"
local log = require "reactor.log"
local endpoints = require "reactor.endpoints"

local M = {}

--- The bookkeeping of a service's generations: the first is `gen`.
function M.init(service, gen)
  service.gen = gen
  service.generation = 1
  service._old = setmetatable({}, { __mode = "k" }) -- older generations' metatables still in use
end

local function migrator(old_version, newmt, newclass)
  return function(self, key)
    setmetatable(self, newmt)
    local migrate = newclass.migrate
    if migrate then
      local ok, err = xpcall(migrate, core.traceback, self, old_version)
      if not ok then -- like any callback error: this connection only
        log.callbackError("migrate", err)
        local t = rawget(self, "transport")
        -- a UDP port's object has no connection to fail: it goes on, under the new class
        if t and not endpoints.isUDP(t) then core.failConnection(t, core.errorMessage(err)) end
      end
    end
    return newclass[key]
  end
end

--- Make gen's class the one every connection of the service's factory runs.
function M.commit(service, gen)
  local f, class = service.factory, gen.class
  local spec = gen.spec
  if spec ~= class then -- new shared state and new methods; live state is kept
    for k, v in pairs(spec) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and k ~= "protocol" then
        if type(v) == "function" or rawget(f, k) == nil then f[k] = v end
      end
    end
  end
  local oldmt, oldclass = f._instance_mt, f.protocol
  local version = rawget(oldclass, "version") or service.generation
  service._old[oldmt] = version
  local newmt = { __index = class }
  for mt, v in pairs(service._old) do mt.__index = migrator(v, newmt, class) end
  f._instance_mt = newmt
  f.protocol = class
  service.gen = gen
  service.generation = service.generation + 1
end

--- Reload service's script: true, or nil and "file:line: message" (nothing changed).
--- The service loads (service:_load), opens and starts what the new version
--- adds (service:_open), and takes over the listeners (service:_adopt).
function M.run(service)
  local t0 = core.now()
  local gen, err = service:_load()
  local opened
  if gen then opened, err = service:_open(gen) end
  if not opened then
    log.log(("reload failed, still serving generation %d: %s"):format(service.generation, err))
    return nil, err
  end
  M.commit(service, gen)
  service:_adopt(gen, opened)
  local live = service:liveConnections()
  log.log(("reloaded %s (generation %d): %d live %s to it, %.2f ms")
    :format(service.path, service.generation, live, live == 1 and "connection moves" or "connections move",
      (core.now() - t0) * 1000))
  if service.onReload then service.onReload(service) end
  return true
end

return M
