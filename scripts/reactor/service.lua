-- reactor.service: serve a protocol script (what `reactord SCRIPT` does).
--
-- A script runs in an environment of its own and returns a protocol class,
-- or a factory-like table {protocol = Class, port = N, listen = {...}, ...}.
-- Each load is a *generation*: the script and every module it requires from
-- its own folder are loaded fresh, into that generation's environment, and
-- checked before anything changes; so a reload is all new or all old
-- (reactor.reload moves the live connections).
local core = require "reactor.core"
local protocol = require "reactor.protocol"
local basic = require "reactor.basic"
local endpoints = require "reactor.endpoints"
local reload = require "reactor.reload"
local log = require "reactor.log"

local Protocol = protocol.Protocol
local toport = endpoints.toport
local M = {}

local services = {} -- served in this state, in order
M.loading = 0 -- > 0 while a script's top level runs (M.load)
local states = {} -- reactor.state(name)

--- A table that persists across reloads, by name: module-level state that
--- must survive a new version lives here (upvalues of old closures do not).
function M.state(name)
  if type(name) ~= "string" then
    error(("bad argument #1 to 'state' (name must be a string, got %s)"):format(type(name)), 2)
  end
  local s = states[name]
  if not s then
    s = {}
    states[name] = s
  end
  return s
end

--- "127.0.0.1:1060", or "[::1]:1060" for IPv6: how reactord prints an address.
function M.hostport(host, port)
  if host:find(":", 1, true) then return ("[%s]:%d"):format(host, port) end
  return ("%s:%d"):format(host, port)
end
local hostport = M.hostport

--{=====================================================================
-- Checking what a script returned
--======================================================================

-- `the string "http"`, `the number 99999`, `nil`, `a table`
local function itis(v)
  if v == nil then return "it is nil" end
  if type(v) == "string" then return ("it is the string %q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if type(v) == "number" or type(v) == "boolean" then return ("it is the %s %s"):format(type(v), tostring(v)) end
  return "it is a " .. type(v)
end

-- The main listener's limits and every `listen` entry's: name -> kind.
local LIMITS = { "idleTimeout", "maxConnections", "highWater", "lowWater", "maxOutput", "backlog" }

local function checklimits(path, t, prefix)
  for _, k in ipairs(LIMITS) do
    local v = rawget(t, k)
    if v ~= nil and rawget(t, "udp") == true then
      return nil, ("%s: '%s%s' is for TCP listeners; a udp port has no connections to limit (remove it, or drop 'udp')")
        :format(path, prefix, k)
    end
    if v ~= nil then
      local ok
      if k == "idleTimeout" then ok = type(v) == "number" and v >= 0
      else ok = math.type(v) == "integer" and v >= 0 end
      if not ok then
        return nil, ("%s: '%s%s' must be %s (%s)"):format(path, prefix, k,
          k == "idleTimeout" and "a number of seconds >= 0" or "an integer >= 0", itis(v))
      end
    end
  end
  return true
end

local function checkudp(path, t, prefix)
  local v = rawget(t, "udp")
  if v ~= nil and type(v) ~= "boolean" then
    return nil, ("%s: '%sudp' must be true (a UDP port) or false (TCP) (%s)"):format(path, prefix, itis(v))
  end
  return true
end

-- port, host, udp, listen and the limits, as declared by the script.
local function checkspec(path, spec)
  local port, host = rawget(spec, "port"), rawget(spec, "host")
  local ok, why = checkudp(path, spec, "")
  if not ok then return nil, why end
  if port ~= nil and not toport(port, 0) then
    return nil, ("%s: 'port' must be an integer 0..65535 (%s)"):format(path, itis(port))
  end
  if host ~= nil and (type(host) ~= "string" or host == "") then
    return nil, ("%s: 'host' must be an address string such as \"127.0.0.1\" or \"::1\" (%s)"):format(path, itis(host))
  end
  ok, why = checklimits(path, spec, "")
  if not ok then return nil, why end
  local listen = rawget(spec, "listen")
  if listen == nil then return true end
  if type(listen) ~= "table" then
    return nil, ("%s: 'listen' must be a list of ports or {port = N, host = ..., udp = true} tables (%s)")
      :format(path, itis(listen))
  end
  for i, l in ipairs(listen) do
    local name = ("listen[%d]"):format(i)
    if type(l) == "table" then
      if not toport(l.port, 0) then
        return nil, ("%s: '%s.port' must be an integer 0..65535 (%s)"):format(path, name, itis(l.port))
      end
      if l.host ~= nil and (type(l.host) ~= "string" or l.host == "") then
        return nil, ("%s: '%s.host' must be an address string (%s)"):format(path, name, itis(l.host))
      end
      ok, why = checkudp(path, l, name .. ".")
      if not ok then return nil, why end
      ok, why = checklimits(path, l, name .. ".")
      if not ok then return nil, why end
    elseif not toport(l, 0) then
      return nil, ("%s: '%s' must be a port (an integer 0..65535) or {port = N, host = ...} (%s)")
        :format(path, name, itis(l))
    end
  end
  return true
end

-- Which kinds of port a script declares: tcp, udp (either may be true).
local function portkinds(spec)
  local k = { tcp = rawget(spec, "udp") ~= true, udp = rawget(spec, "udp") == true }
  local listen = rawget(spec, "listen")
  for _, l in ipairs(type(listen) == "table" and listen or {}) do
    if type(l) == "table" and l.udp == true then k.udp = true else k.tcp = true end
  end
  return k
end

-- Does the class do anything? Inherited no-ops do not count. A TCP port
-- needs one of the stream callbacks, a udp port datagramReceived.
local function checkclass(path, class, need)
  for _, name in ipairs { "connectionMade", "dataReceived", "connectionLost", "lineReceived", "stringReceived",
    "migrate", "datagramReceived", "startProtocol", "stopProtocol", "connectionRefused" } do
    local f = rawget(class, name)
    if f ~= nil and type(f) ~= "function" then
      return nil, ("%s: '%s' must be a function (it is %s)"):format(path, name, type(f))
    end
  end
  if getmetatable(class) == nil then setmetatable(class, { __index = Protocol }) end
  local LR = basic.LineReceiver
  local lines = type(class.delimiter) == "string" and class.lineReceived ~= LR.lineReceived
  local strings = type(class.delimiter) == "userdata" and type(rawget(class, "stringReceived")) == "function"
  local data = class.dataReceived ~= Protocol.dataReceived and class.dataReceived ~= LR.dataReceived
  local made = class.connectionMade ~= Protocol.connectionMade
  if need.tcp and not (lines or strings or data or made) then
    local hint = ""
    if type(class.datagramReceived) == "function" then
      hint = need.udp and " (a TCP port is declared too: mark each UDP one with udp = true)"
        or " (it has datagramReceived: add udp = true to serve it over UDP)"
    end
    return nil, ("%s: the protocol defines none of connectionMade, dataReceived, lineReceived%s")
      :format(path, hint)
  end
  if need.udp and type(class.datagramReceived) ~= "function" then
    return nil, ("%s: the protocol has no datagramReceived(data, host, port), which a udp port calls")
      :format(path)
  end
  return true
end

--{=====================================================================
-- "did you mean": keys that are near a name the runtime uses
--======================================================================

-- name -> the types a value of that name may have
local CALLBACKS = {} -- the protocol methods reactord calls
for _, k in ipairs { "connectionMade", "dataReceived", "connectionLost", "lineReceived", "rawDataReceived",
  "lineLengthExceeded", "stringReceived", "lengthLimitExceeded", "migrate", "pauseProducing",
  "resumeProducing", "readConnectionLost", "timeoutConnection", "shutdownRequested", "datagramReceived",
  "startProtocol", "stopProtocol", "connectionRefused" } do CALLBACKS[k] = "function" end
local CLASS_FIELDS = { delimiter = "string userdata", MAX_LENGTH = "number", flowControl = "string" }
local OTHER_CLASS = { sendLine = true, setRawMode = true, setLineMode = true, extend = true, version = true,
  sendString = true, clearLineBuffer = true }
local FACTORY = {
  protocol = "table", port = "number string", host = "string", listen = "table number",
  idleTimeout = "number", maxConnections = "number", highWater = "number", lowWater = "number",
  maxOutput = "number", backlog = "number", udp = "boolean",
  startFactory = "function", stopFactory = "function", buildProtocol = "function",
}

local function distance(a, b) -- Levenshtein, with an early way out
  if math.abs(#a - #b) > 2 then return 3 end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, #b do
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == b:byte(j) and 0 or 1))
    end
    prev = cur
  end
  return prev[#b]
end

-- is k the known name, misspelled? The same letters in another case, a typo
-- or two (one for short names), or, for a value that is not a function, a
-- start of it ("prot"; a method named so is more likely a helper of its own)
local function near(k, name, v)
  local a, b = k:lower(), name:lower()
  if a == b then return true end
  if distance(a, b) <= (#b <= 5 and 1 or 2) then return true end
  return type(v) ~= "function" and #a >= 4 and #a < #b and b:sub(1, #a) == a
end

local function defined_at(path, v)
  if type(v) == "function" then
    local info = debug.getinfo(v, "S")
    if info.what == "Lua" and info.linedefined > 0 then
      local src = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
      return src .. ":" .. info.linedefined
    end
  end
  return path
end

-- Warn about each key of t that is none of the names in the `known` tables
-- but near one of them whose kind fits its value.
local function spelling(path, t, what, ...)
  local known = { ... }
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      local exact = false
      for _, names in ipairs(known) do if names[k] then exact = true end end
      if not exact then
        for _, names in ipairs(known) do
          for name, kinds in pairs(names) do
            if type(kinds) == "string" and kinds:find(type(v), 1, true) and near(k, name, v) then
              log.warn(defined_at(path, v), ("'%s' is not a %s reactord knows; did you mean '%s'?")
                :format(k, what, name))
              goto next
            end
          end
        end
      end
    end
    ::next::
  end
end

local function spellcheck(path, spec, class)
  if spec ~= class then
    spelling(path, spec, "factory field", FACTORY)
    spelling(path, class, "protocol callback", CALLBACKS, CLASS_FIELDS, OTHER_CLASS)
  else
    spelling(path, class, "protocol callback or script field", CALLBACKS, CLASS_FIELDS, OTHER_CLASS, FACTORY)
  end
  for i, l in ipairs(type(rawget(spec, "listen")) == "table" and spec.listen or {}) do
    if type(l) == "table" then
      spelling(path .. (": listen[%d]"):format(i), l, "listener field",
        { port = "number string", host = "string", udp = "boolean" }, FACTORY)
    end
  end
end

--{=====================================================================
-- Loading a generation
--======================================================================

-- require for the script's environment: its own folder first, loaded fresh
-- for each generation; other modules as usual. A module found nowhere is
-- blamed on the require call's line, with the folder among the places tried
-- (`return require "x"` is a tail call, which leaves no line: then on the
-- file that was running it).
local function requirer(dir, env, files)
  local ownpath = dir .. "/?.lua;" .. dir .. "/?/init.lua"
  local loaded = {}
  local running = files[1] -- the file whose top level runs
  return function(name)
    if type(name) ~= "string" then
      error(("bad argument #1 to 'require' (string expected, got %s)"):format(type(name)), 2)
    end
    local v = loaded[name]
    if v ~= nil then return v end
    local file = package.searchpath(name, ownpath)
    if not file then
      local ok, r = pcall(require, name)
      if ok then return r end
      local nf = ("module '%s' not found:"):format(name)
      if type(r) == "string" and r:sub(1, #nf) == nf then
        local own, base = {}, dir .. "/" .. name:gsub("%.", "/")
        for _, f in ipairs { base .. ".lua", base .. "/init.lua" } do
          local line = ("\n\tno file '%s'"):format(f)
          if not r:find(line, 1, true) then own[#own + 1] = line end
        end
        local msg = nf .. table.concat(own) .. r:sub(#nf + 1)
        if debug.getinfo(1, "t").istailcall and running then error(running .. ": " .. msg, 0) end
        error(msg, 2)
      end
      error(r, 0) -- the module was found, and failed: its own message says where
    end
    local chunk, err = loadfile(file, "t", env)
    if not chunk then error(err, 0) end
    files[#files + 1] = file
    loaded[name] = true -- a require cycle sees true, as with require
    local outer = running
    running = file
    local r = chunk(name, file)
    running = outer
    if r == nil then r = true end
    loaded[name] = r
    return r
  end
end

--- Load one generation of the script at path, changing nothing: the script
--- runs, and what it returns is checked (warnings are logged).
--- -> {spec=, class=, files={path, module files...}} | nil, "file:line: message"
function M.load(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local env = setmetatable({}, { __index = _G })
  local files = { path }
  env.require = requirer(dir, env, files)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  M.loading = M.loading + 1 -- reactor.serve(port, fn) describes, not listens
  local ok, ret = xpcall(chunk, core.traceback)
  M.loading = M.loading - 1
  if not ok then return nil, core.errorMessage(ret) end
  if type(ret) ~= "table" then
    return nil, ("%s: the script must return a protocol table or {protocol = ...} (it returned %s)")
      :format(path, type(ret))
  end
  local class = ret
  if rawget(ret, "protocol") ~= nil then class = ret.protocol end
  if type(class) ~= "table" then
    return nil, ("%s: 'protocol' must be a table (it is %s)"):format(path, type(class))
  end
  spellcheck(path, ret, class)
  local valid, why = checkspec(path, ret)
  if valid then valid, why = checkclass(path, class, portkinds(ret)) end
  if not valid then return nil, why end
  return { spec = ret, class = class, files = files }
end

-- The factory that serves gen: the spec itself, or one made for its class.
local function factory(gen)
  if gen.spec == gen.class then return protocol.asFactory({ protocol = gen.class }) end
  return protocol.asFactory(gen.spec)
end

--- Check a script without serving it: what the daemon does before it
--- listens (load, check, build the factory). -> the spec, or nil, "file:line: message"
function M.check(path)
  local gen, err = M.load(path)
  if not gen then return nil, err end
  factory(gen)
  return gen.spec
end

-- The ports a generation declares: the main one (the command line's
-- host/port win over the script's; the script's `udp = true` makes it a UDP
-- port) and any in `listen`.
local function declared(spec, opts)
  local host = opts.host or rawget(spec, "host") or "127.0.0.1"
  local main = { host = host, port = toport(opts.port or rawget(spec, "port") or 1060, 0),
    udp = rawget(spec, "udp") == true }
  local list = { main }
  if not main.udp then -- the main listener's limits: the command line's, else the script's
    for _, k in ipairs(LIMITS) do
      local v = opts[k]
      if v == nil or v == 0 then v = rawget(spec, k) end
      main[k] = v
    end
  end
  for _, l in ipairs(rawget(spec, "listen") or {}) do
    if type(l) ~= "table" then l = { port = l } end
    local d = { host = l.host or host, port = toport(l.port, 0), udp = l.udp == true }
    for _, k in ipairs(LIMITS) do d[k] = l[k] end
    list[#list + 1] = d
  end
  -- keyed by role, kind and declared address: the main listener on port 0
  -- and an extra one declared as 0 are two listeners
  for i, l in ipairs(list) do
    l.key = (i == 1 and "main|" or "") .. (l.udp and "udp|" or "") .. l.host .. "|" .. tostring(l.port)
  end
  return list
end

--- How reactord names a port in its lines: "127.0.0.1:1060", "udp 127.0.0.1:1060".
function M.portname(addr)
  return (addr.type == "UDP" and "udp " or "") .. hostport(addr.host, addr.port)
end

--{=====================================================================
-- Service: one served script
--======================================================================

local Service = {}
Service.__index = Service

function Service:_load()
  return M.load(self.path)
end

local function closeall(opened)
  for _, l in pairs(opened) do endpoints.close(l) end
end

-- "in startFactory: app.lua:4: no database"
local function startfailed(f, err, name)
  local msg = core.errorMessage(err)
  if not msg:find("^[^\n]-:%d+:") then
    local at = defined_at(nil, f[name])
    if at then msg = ("(%s) %s"):format(at, msg) end
  end
  return ("in %s: %s"):format(name, msg)
end

-- factory.ports (and service.ports): the address of every port the service
-- listens on, main first, then `listen` in order, as getHost() gives them;
-- the same table, refilled whenever a port opens or closes.
function Service:_publish(spec, opened)
  local ports = rawget(self.factory, "ports")
  if type(ports) ~= "table" then
    ports = {}
    rawset(self.factory, "ports", ports)
  end
  for i = #ports, 1, -1 do ports[i] = nil end
  local seen = {}
  for _, l in ipairs(declared(spec, self.opts)) do
    local port = self.listeners[l.key] or (opened and opened[l.key])
    if port and not seen[port] then
      seen[port] = true
      ports[#ports + 1] = port:getHost()
    end
  end
  self.ports = ports
end

-- Bind one declared port. A UDP port's protocol object (one per port, with
-- self.factory, as a connection's) gets its class only in _startUDP: no
-- code of the script runs before startFactory, and a port a reload opens
-- runs the new class from its first datagram.
function Service:_bind(l)
  if l.udp then
    if self.opts.listenUDP then return self.opts.listenUDP(l) end
    local proto = { factory = self.factory }
    local port, msg, code = endpoints.bind(core.listenUDP, l.port, proto, l.host)
    if port then self._udp[port] = proto end
    return port, msg, code
  end
  local o = { interface = l.host, key = l.key }
  for _, k in ipairs(LIMITS) do o[k] = l[k] end
  -- opts.listenTCP: how a worker gets its socket from the master (reactor.daemon)
  return endpoints.bind(self.opts.listenTCP or core.listenTCP, l.port, self.factory, o)
end

-- Open what gen declares and is not open yet, then count each in the
-- factory (startFactory runs with the first port of all, factory.ports
-- already set). On failure nothing stays open.
function Service:_open(gen)
  local opened = {}
  for _, l in ipairs(declared(gen.spec, self.opts)) do
    if not self.listeners[l.key] and not opened[l.key] then
      local listener, msg = self:_bind(l)
      if not listener then
        closeall(opened)
        return nil, ("cannot listen on %s%s: %s"):format(l.udp and "udp " or "", hostport(l.host, l.port),
          (msg:gsub(" %(.*%)$", "")))
      end
      opened[l.key] = listener
    end
  end
  self:_publish(gen.spec, opened)
  for _, listener in pairs(opened) do
    local ok, err = endpoints.start(listener, self.factory)
    if not ok then
      closeall(opened)
      self:_publish(gen.spec)
      return nil, startfailed(self.factory, err, "startFactory")
    end
  end
  for _, listener in pairs(opened) do
    if not endpoints.isUDP(listener) then self._ports[listener] = true end
  end
  return opened
end

-- The UDP ports just opened get the current class, then startProtocol().
-- -> true | nil, "in startProtocol: file:line: message"
function Service:_startUDP(opened)
  for _, port in pairs(opened) do
    local proto = self._udp[port]
    if proto and getmetatable(proto) == nil then
      setmetatable(proto, self.factory._instance_mt)
      if proto.startProtocol then
        local ok, err = xpcall(proto.startProtocol, core.traceback, proto)
        if not ok then -- not started, so not stopped: no stopProtocol when it closes
          local msg = startfailed(proto, err, "startProtocol")
          setmetatable(proto, nil)
          return nil, msg
        end
      end
    end
  end
  return true
end

-- The ports just opened join the service, in declared order (their
-- `listening on` lines too).
function Service:_join(spec, opened)
  for _, l in ipairs(declared(spec, self.opts)) do
    local port = opened[l.key]
    if port then
      opened[l.key] = nil
      self.listeners[l.key] = port
      if self.opts.onListen then self.opts.onListen(port:getHost()) end
    end
  end
end

function Service:_drop(key)
  local port = self.listeners[key]
  self.listeners[key] = nil
  self._udp[port] = nil
  endpoints.close(port)
end

function Service:_adopt(gen, opened)
  local ok, err = self:_startUDP(opened) -- after commit: the new class's
  if not ok then log.log("error " .. err) end -- committed already: logged, and the port stays
  local keep = {}
  for _, l in ipairs(declared(gen.spec, self.opts)) do keep[l.key] = true end
  self:_join(gen.spec, opened)
  for key in pairs(self.listeners) do
    if not keep[key] then self:_drop(key) end -- dropped by the new version: its connections stay
  end
  self:_publish(gen.spec)
end

--- The open connections of this service (its listeners', closed ones' included).
function Service:liveConnections()
  local open = {}
  for _, l in pairs(self.listeners) do open[l] = true end
  local n = 0
  for l in pairs(self._ports) do
    local c = l:stats().connections
    if c == 0 and not open[l] then self._ports[l] = nil end -- closed, and nothing left
    n = n + c
  end
  return n
end

--- Reload the script: true, or nil and "file:line: message" (nothing changed).
function Service:reload()
  return reload.run(self)
end

--- The files this generation was loaded from (the script and its own modules).
function Service:files()
  return self.gen.files
end

--- Stop listening (stopFactory runs with the last port, stopProtocol with
--- each UDP port); live connections stay until they end.
function Service:close()
  if self.closed then return end
  self.closed = true
  for key in pairs(self.listeners) do self:_drop(key) end
  self:_publish(self.gen.spec)
  for i, s in ipairs(services) do
    if s == self then table.remove(services, i) break end
  end
end

--- serve(path [, {host=, port=, onListen=fn(addr)}]) -> Service | nil, message
function M.serve(path, opts)
  opts = opts or {}
  local gen, err = M.load(path)
  if not gen then return nil, err end
  local self = setmetatable({
    path = path, opts = opts, factory = factory(gen), listeners = {},
    _ports = {}, -- every TCP listener opened, until it is closed and its connections are gone
    _udp = {}, -- UDP port -> its protocol object
  }, Service)
  reload.init(self, gen)
  local opened, lerr = self:_open(gen)
  if not opened then return nil, lerr end
  local ok, serr = self:_startUDP(opened)
  if not ok then
    closeall(opened)
    self:_publish(gen.spec)
    return nil, serr
  end
  self:_join(gen.spec, opened) -- the main listener first, so its line is the first one printed
  services[#services + 1] = self
  return self
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
