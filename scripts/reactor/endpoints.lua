-- reactor.endpoints: where connections come from. listenTCP / listenUNIX
-- (ports), connectTCP / connectUNIX (the Connector), stdio. Each checks its
-- arguments and blames the caller's line with the public name; the sockets
-- themselves are reactor.core's.
--
-- Ports and their factory are paired as in Twisted (Factory.doStart /
-- doStop): startFactory runs when the factory's first port opens,
-- stopFactory when its last one closes, counted in factory.numPorts.
local core = require "reactor.core"
local protocol = require "reactor.protocol"
local log = require "reactor.log"

local asFactory = protocol.asFactory
local M = {}

--{=====================================================================
-- Arguments
--======================================================================

-- `string "http"`, `number 99999`, `nil`: a value as an argument error shows it
local function show(v)
  if type(v) == "string" then return ("string %q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if type(v) == "number" or type(v) == "boolean" then return type(v) .. " " .. tostring(v) end
  return type(v)
end

-- raise "bad argument #n to 'fname' (msg)" at the line that called fname
-- (from a checker that fname calls: depth 2)
local function argerror(n, fname, msg, depth)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 2 + (depth or 1))
end

--- The port number v names (an integer, or a string of one) if it is in min..65535.
function M.toport(v, min)
  if type(v) ~= "number" and type(v) ~= "string" then return nil end
  local n = math.tointeger(type(v) == "string" and tonumber(v) or v)
  if n and n >= (min or 0) and n <= 65535 then return n end
  return nil
end
local toport = M.toport

local function checkfactory(v, n, fname)
  if type(v) ~= "table" then argerror(n, fname, "expected a protocol or a factory table, got " .. show(v), 2) end
end

local function checkpath(v, fname) -- a Unix socket's path, argument #1
  if type(v) ~= "string" or v == "" then
    argerror(1, fname, "path must be a non-empty string, got " .. show(v), 2)
  end
end

local function checktimeout(v, n, fname)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    argerror(n, fname, "timeout must be a number of seconds, got " .. show(v), 2)
  end
end

--{=====================================================================
-- Ports: startFactory with the first, stopFactory with the last
--======================================================================

local started = setmetatable({}, { __mode = "k" }) -- listener -> factory, while it counts

local function doStart(f)
  local n = rawget(f, "numPorts") or 0
  if n == 0 and f.startFactory then
    local ok, err = pcall(f.startFactory, f)
    if not ok then return false, err end
  end
  rawset(f, "numPorts", n + 1)
  return true
end

local function doStop(f)
  local n = (rawget(f, "numPorts") or 1) - 1
  rawset(f, "numPorts", n)
  if n == 0 and f.stopFactory then
    local ok, err = xpcall(f.stopFactory, core.traceback, f)
    if not ok then log.callbackError("stopFactory", err) end
  end
end

-- stopListening and __close are C's (a Listener's, a UDP port's); the
-- pairing wraps them once per kind of port. A UDP port's stopListening runs
-- its protocol's stopProtocol, which may raise: the port is counted out all
-- the same, then the error goes on to the caller.
local closes = {} -- metatable -> C's own stopListening

local function counted_out(l)
  local f = started[l]
  if f then
    started[l] = nil
    doStop(f)
  end
end

local function patch(listener)
  local mt = getmetatable(listener)
  if closes[mt] then return end
  local close = mt.__index.stopListening
  closes[mt] = close
  local function stopListening(l)
    local ok, closed = pcall(close, l)
    counted_out(l)
    if not ok then error(closed, 0) end
    return closed
  end
  mt.__index.stopListening = stopListening
  mt.__close = stopListening
end

--- Is l a UDP port (reactor.listenUDP's), rather than a Listener?
function M.isUDP(l)
  local mt = getmetatable(l)
  return type(mt) == "table" and mt.__name == "reactor.UDPPort"
end

--- Close a port from the runtime's own code (reactor.stop, the daemon's
--- shutdown, a reload that drops it): an error in stopProtocol is logged
--- with the user's frames, never raised into the code that is stopping.
function M.close(l)
  local close = closes[getmetatable(l)] or l.stopListening
  local ok, err = xpcall(close, core.traceback, l)
  counted_out(l)
  if not ok then log.callbackError("stopProtocol", err) end
end

--- Open a port for factory without starting it (serve binds all, then starts).
--- -> listener | nil, msg, code
function M.bind(open, where, factory, opts)
  local l, msg, code = open(where, factory, opts)
  if l then patch(l) end
  return l, msg, code
end

--- Count a bound port in its factory (startFactory if it is the first).
--- -> true | false, error value (the port is then closed)
function M.start(l, factory)
  local ok, err = doStart(factory)
  if not ok then
    l:stopListening()
    return false, err
  end
  started[l] = factory
  return true
end

local function listen(open, where, factory, opts)
  local l, msg, code = M.bind(open, where, factory, opts)
  if not l then return nil, msg, code end
  local ok, err = M.start(l, factory)
  if not ok then error(err, 0) end -- startFactory's own error, as it raised it
  return l
end

--- listenTCP(port, factory [, interface | opts]) -> Listener | nil, msg, code
function M.listenTCP(port, factory, opts)
  local p = toport(port, 0)
  if not p then argerror(1, "listenTCP", "port must be an integer 0..65535, got " .. show(port)) end
  checkfactory(factory, 2, "listenTCP")
  local t = type(opts)
  if t ~= "nil" and t ~= "string" and t ~= "table" then
    argerror(3, "listenTCP", "expected an interface string or an options table, got " .. show(opts))
  end
  return listen(core.listenTCP, p, asFactory(factory, false, 2), opts)
end

--- listenUNIX(path, factory [, opts]) -> Listener | nil, msg, code
function M.listenUNIX(path, factory, opts)
  checkpath(path, "listenUNIX")
  checkfactory(factory, 2, "listenUNIX")
  if opts ~= nil and type(opts) ~= "table" then
    argerror(3, "listenUNIX", "expected an options table, got " .. show(opts))
  end
  return listen(core.listenUNIX, path, asFactory(factory, false, 2), opts)
end

--- Close every port the pairing counts (then stopFactory runs), and stop.
function M.stop()
  if core.running() then
    for l in pairs(started) do M.close(l) end
  end
  return core.stop()
end

--{=====================================================================
-- stdio
--======================================================================

--- stdio(protocol) -> transport: the protocol object talks over stdin/stdout
--- (Twisted's StandardIO); a class is made into an instance first.
function M.stdio(proto)
  if type(proto) ~= "table" then argerror(1, "stdio", "expected a protocol object or class, got " .. show(proto)) end
  local f = { buildProtocol = function() return proto end }
  if rawget(proto, "dataReceived") or rawget(proto, "lineReceived") then -- a class
    f.buildProtocol = function() return setmetatable({}, { __index = proto }) end
  end
  if getmetatable(proto) == nil then setmetatable(proto, { __index = protocol.Protocol }) end
  return core.stdio(f)
end

--{=====================================================================
-- Connector (Twisted's): one outgoing connection, and its retries
--======================================================================

local Connector = {}
Connector.__index = Connector
M.Connector = Connector

function Connector:getDestination()
  if self.path then return { type = "UNIX", name = self.path } end
  return { type = "TCP", host = self.host, port = self.port }
end

--- Drop the connection, or stop trying to make it.
function Connector:disconnect()
  if self.lookup then
    self.lookup:cancel()
    self.lookup = nil
  end
  if self.transport then self.transport:abortConnection() end
end

local function isnumeric(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

local function failed(self, msg)
  -- reported from the loop, never from inside connectTCP/connect
  core.callLater(0, function()
    local f = self.factory
    if f.clientConnectionFailed then f:clientConnectionFailed(self, { type = "error", message = msg }) end
  end)
end

function Connector:_connect(addr)
  local t, msg = core.connectTCP(addr, self.port, self.factory, self, self.timeout)
  self.transport = t
  if not t then failed(self, msg) end
end

--- (Re)start connecting; failures go to factory:clientConnectionFailed.
--- A name is looked up off the loop thread (/etc/hosts, then DNS).
function Connector:connect()
  self.transport = nil
  local f = self.factory
  if f.startedConnecting then f:startedConnecting(self) end
  if self.path then
    local t, msg = core.connectUNIX(self.path, f, self, self.timeout)
    self.transport = t
    if not t then failed(self, msg) end
  elseif isnumeric(self.host) then
    self:_connect(self.host)
  else
    local lookup, msg = core.resolve(self.host, function(addrs, err)
      self.lookup = nil
      if addrs then self:_connect(addrs[1]) else failed(self, err) end
    end)
    self.lookup = lookup
    if not lookup then failed(self, msg) end
  end
  return self
end

--- connectTCP(host, port, factory [, timeout = 30]) -> Connector
function M.connectTCP(host, port, factory, timeout)
  if type(host) ~= "string" then
    local swapped = toport(host, 1) and type(port) == "string"
    argerror(1, "connectTCP", ("host must be a string, got %s%s"):format(show(host),
      swapped and "; the order is connectTCP(host, port, factory)" or ""))
  end
  local p = toport(port, 1)
  if not p then argerror(2, "connectTCP", "port must be an integer 1..65535, got " .. show(port)) end
  checkfactory(factory, 3, "connectTCP")
  checktimeout(timeout, 4, "connectTCP")
  local c = setmetatable({ host = host, port = p, factory = asFactory(factory, true, 2), timeout = timeout }, Connector)
  return c:connect()
end

--- connectUNIX(path, factory [, timeout = 30]) -> Connector
function M.connectUNIX(path, factory, timeout)
  checkpath(path, "connectUNIX")
  checkfactory(factory, 2, "connectUNIX")
  checktimeout(timeout, 3, "connectUNIX")
  local c = setmetatable({ path = path, factory = asFactory(factory, true, 2), timeout = timeout }, Connector)
  return c:connect()
end

return M
