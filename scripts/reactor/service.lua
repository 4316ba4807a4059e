-- reactor.service: serve a protocol script, and reload it under live
-- connections.
--
-- A script runs in an environment of its own and returns a protocol class,
-- or a factory-like table {protocol = Class, port = N, listen = {...}, ...}.
-- Each load is a *generation*: the script and every module it requires from
-- its own folder are loaded fresh, into that generation's environment, and
-- checked before anything changes; so a reload is all new or all old.
--
-- Committing a generation swaps one thing per factory: its instance
-- metatable. Connections of older generations keep their old metatable,
-- whose __index becomes a migrator: at the connection's next lookup (its
-- next event, at the latest) it moves the instance to the new metatable and
-- runs the new class's migrate(self, old_version) once. A reload therefore
-- costs the same at 10 or 100,000 connections.
local core = require "reactor.core"
local protocol = require "reactor.protocol"
local basic = require "reactor.basic"

local Protocol, Factory = protocol.Protocol, protocol.Factory
local M = {}

local services = {} -- served in this state, in order
local states = {} -- reactor.state(name)

--- A table that persists across reloads, by name: module-level state that
--- must survive a new version lives here (upvalues of old closures do not).
function M.state(name)
  assert(type(name) == "string", "state: name must be a string")
  local s = states[name]
  if not s then
    s = {}
    states[name] = s
  end
  return s
end

local function first_line(msg)
  msg = tostring(msg)
  return (msg:match("^(.-)\nstack traceback:") or msg)
end

local function log(msg)
  io.stderr:write("reactord: ", msg, "\n")
  io.stderr:flush()
end

local function inherit(class)
  if getmetatable(class) == nil then setmetatable(class, { __index = Protocol }) end
  return class
end

-- Does the class do anything? Inherited no-ops do not count.
local function check_class(path, class)
  for _, name in ipairs { "connectionMade", "dataReceived", "connectionLost", "lineReceived", "migrate" } do
    local f = rawget(class, name)
    if f ~= nil and type(f) ~= "function" then
      return nil, ("%s: '%s' must be a function (it is %s)"):format(path, name, type(f))
    end
  end
  inherit(class)
  local LR = basic.LineReceiver
  local lines = type(class.delimiter) == "string" and class.lineReceived ~= LR.lineReceived
  local data = class.dataReceived ~= Protocol.dataReceived and class.dataReceived ~= LR.dataReceived
  local made = class.connectionMade ~= Protocol.connectionMade
  if not (lines or data or made) then
    return nil, ("%s: the protocol defines none of connectionMade, dataReceived, lineReceived")
      :format(path)
  end
  return true
end

--- Load one generation of the script at path, changing nothing.
--- -> {spec=, class=, files={path, module files...}} | nil, "file:line: message"
function M.load(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local ownpath = dir .. "/?.lua;" .. dir .. "/?/init.lua"
  local env = setmetatable({}, { __index = _G })
  local files, loaded = { path }, {}
  -- the script's own modules load fresh for each generation; others as usual
  function env.require(name)
    local v = loaded[name]
    if v ~= nil then return v end
    local file = type(name) == "string" and package.searchpath(name, ownpath)
    if not file then return require(name) end
    local chunk, err = loadfile(file, "t", env)
    if not chunk then error(err, 0) end
    files[#files + 1] = file
    loaded[name] = true -- a require cycle sees true, as with require
    local r = chunk(name, file)
    if r == nil then r = true end
    loaded[name] = r
    return r
  end
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, ret = xpcall(chunk, debug.traceback)
  if not ok then return nil, first_line(ret) end
  if type(ret) ~= "table" then
    return nil, ("%s: the script must return a protocol table or {protocol = ...} (it returned %s)")
      :format(path, type(ret))
  end
  local class = ret
  if rawget(ret, "protocol") ~= nil then class = ret.protocol end
  if type(class) ~= "table" then
    return nil, ("%s: 'protocol' must be a table (it is %s)"):format(path, type(class))
  end
  local valid, why = check_class(path, class)
  if not valid then return nil, why end
  return { spec = ret, class = class, files = files }
end

-- The listeners a generation declares: the main one (the command line's
-- host/port win over the script's) and any in `listen`.
local LIMITS = { "idleTimeout", "maxConnections", "highWater", "lowWater", "maxOutput", "backlog" }

local function declared(spec, opts)
  local host = opts.host or rawget(spec, "host") or "127.0.0.1"
  local list = { { host = host, port = opts.port or rawget(spec, "port") or 1060 } }
  -- the main listener's limits: the command line's, else the script's
  for _, k in ipairs(LIMITS) do
    local v = opts[k]
    if v == nil or v == 0 then v = rawget(spec, k) end
    list[1][k] = v
  end
  for _, l in ipairs(rawget(spec, "listen") or {}) do
    if type(l) == "number" then l = { port = l } end
    local d = { host = l.host or host, port = l.port }
    for _, k in ipairs(LIMITS) do d[k] = l[k] end
    list[#list + 1] = d
  end
  -- keyed by role and declared address: the main listener on port 0 and an
  -- extra one declared as 0 are two listeners
  for i, l in ipairs(list) do l.key = (i == 1 and "main|" or "") .. l.host .. "|" .. tostring(l.port) end
  return list
end

--- "127.0.0.1:1060", or "[::1]:1060" for IPv6: how reactord prints an address.
function M.hostport(host, port)
  if host:find(":", 1, true) then return ("[%s]:%d"):format(host, port) end
  return ("%s:%d"):format(host, port)
end
local hostport = M.hostport

local Service = {}
Service.__index = Service

-- Open what gen declares and is not open yet. On failure nothing stays open.
function Service:_open(gen)
  local opened = {}
  for _, l in ipairs(declared(gen.spec, self.opts)) do
    if not self.listeners[l.key] and not opened[l.key] then
      local o = { interface = l.host }
      for _, k in ipairs(LIMITS) do o[k] = l[k] end
      local listener, msg = core.listenTCP(l.port, self.factory, o)
      if not listener then
        for _, o in pairs(opened) do o:stopListening() end
        return nil, ("cannot listen on %s: %s"):format(hostport(l.host, l.port), (msg:gsub(" %(.*%)$", "")))
      end
      opened[l.key] = listener
    end
  end
  return opened
end

function Service:_adopt(gen, opened)
  local keep = {}
  for _, l in ipairs(declared(gen.spec, self.opts)) do keep[l.key] = true end
  for key, listener in pairs(opened) do
    self.listeners[key] = listener
    if self.opts.onListen then self.opts.onListen(listener:getHost()) end
  end
  for key, listener in pairs(self.listeners) do
    if not keep[key] then -- dropped by the new version: its connections stay
      listener:stopListening()
      self.listeners[key] = nil
    end
  end
end

local function migrator(old_version, newmt, newclass)
  return function(self, key)
    setmetatable(self, newmt)
    local migrate = newclass.migrate
    if migrate then
      local ok, err = xpcall(migrate, debug.traceback, self, old_version)
      if not ok then -- like any callback error: this connection only
        log("error in migrate: " .. err)
        local t = rawget(self, "transport")
        if t then core.failConnection(t, first_line(err)) end
      end
    end
    return newclass[key]
  end
end

-- Make gen's class the one every connection of the factory runs.
function Service:_commit(gen)
  local f, class = self.factory, gen.class
  local spec = gen.spec
  if spec ~= class then -- new shared state and new methods; live state is kept
    for k, v in pairs(spec) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and k ~= "protocol" then
        if type(v) == "function" or rawget(f, k) == nil then f[k] = v end
      end
    end
  end
  local oldmt, oldclass = f._instance_mt, f.protocol
  local version = rawget(oldclass, "version") or self.generation
  self._old[oldmt] = version
  local newmt = { __index = class }
  for mt, v in pairs(self._old) do mt.__index = migrator(v, newmt, class) end
  f._instance_mt = newmt
  f.protocol = class
  self.gen = gen
  self.generation = self.generation + 1
end

--- serve(path [, {host=, port=, onListen=fn(addr)}]) -> Service | nil, message
function M.serve(path, opts)
  opts = opts or {}
  local gen, err = M.load(path)
  if not gen then return nil, err end
  local spec = gen.spec
  local factory
  if spec == gen.class then
    factory = Factory.forProtocol(gen.class)
  else
    factory = spec
    if getmetatable(factory) == nil then setmetatable(factory, Factory) end
    Factory.new(factory)
  end
  local self = setmetatable({
    path = path, opts = opts, gen = gen, generation = 1, factory = factory, listeners = {},
    _old = setmetatable({}, { __mode = "k" }), -- older generations' metatables still in use
  }, Service)
  local opened, lerr = self:_open(gen)
  if not opened then return nil, lerr end
  -- the main listener first, so its line is the first one printed
  local main = declared(spec, opts)[1].key
  if opened[main] then
    self.listeners[main] = opened[main]
    if opts.onListen then opts.onListen(opened[main]:getHost()) end
    opened[main] = nil
  end
  self:_adopt(gen, opened)
  factory:startFactory()
  services[#services + 1] = self
  return self
end

--- Reload the script: true, or nil and "file:line: message" (nothing changed).
function Service:reload()
  local t0 = core.now()
  local gen, err = M.load(self.path)
  if not gen then
    log(("reload failed, still serving generation %d: %s"):format(self.generation, err))
    return nil, err
  end
  local opened, lerr = self:_open(gen)
  if not opened then
    log(("reload failed, still serving generation %d: %s"):format(self.generation, lerr))
    return nil, lerr
  end
  self:_commit(gen)
  self:_adopt(gen, opened)
  local live = core._stats().connections
  log(("reloaded %s (generation %d): %d live connection%s move to it, %.2f ms")
    :format(self.path, self.generation, live, live == 1 and "" or "s", (core.now() - t0) * 1000))
  if self.onReload then self.onReload(self) end
  return true
end

--- The files this generation was loaded from (the script and its own modules).
function Service:files()
  return self.gen.files
end

--- Stop listening; live connections stay until they end.
function Service:close()
  if self.closed then return end
  self.closed = true
  for key, l in pairs(self.listeners) do
    l:stopListening()
    self.listeners[key] = nil
  end
  for i, s in ipairs(services) do
    if s == self then table.remove(services, i) break end
  end
  self.factory:stopFactory()
end

--- Reload every served script. true, or nil and the first failure.
function M.reload()
  if #services == 0 then return nil, "nothing to reload: no script is being served" end
  local ok, first = true, nil
  for _, s in ipairs(services) do
    local r, err = s:reload()
    if not r and ok then ok, first = nil, err end
  end
  if ok then return true end
  return nil, first
end

return M
