-- reactor: the module scripts and the daemon use. The C half is
-- reactor.core; this file adds Twisted's classes and the Lua-side helpers.
local core = require "reactor.core"
local protocol = require "reactor.protocol"
local service = require "reactor.service"

local reactor = {
  core = core,
  version = core.version,
  Protocol = protocol.Protocol,
  Factory = protocol.Factory,
  ClientFactory = protocol.ClientFactory,
  ReconnectingClientFactory = protocol.ReconnectingClientFactory,
  callLater = core.callLater,
  run = core.run,
  stop = core.stop,
  running = core.running,
  now = core.now,
  onSignal = core.onSignal,
  listenUDP = core.listenUDP,
}
reactor.LoopingCall = require("reactor.loopingcall")(core)
reactor.LineReceiver = require("reactor.basic").LineReceiver

local function asfactory(f)
  if getmetatable(f) == nil and f.protocol == nil then
    -- a bare protocol class: serve it with a default factory
    return protocol.Factory.forProtocol(f)
  end
  if f._instance_mt == nil then protocol.Factory.new(f) end
  return f
end

local function listen(open, where, factory, opts)
  assert(type(factory) == "table", "listen: factory must be a table")
  factory = asfactory(factory)
  local listener, msg, code = open(where, factory, opts)
  if not listener then return nil, msg, code end
  factory:startFactory()
  return listener
end

--- listenTCP(port, factory [, interface | opts]) -> Listener | nil, msg, code
function reactor.listenTCP(port, factory, opts)
  return listen(core.listenTCP, port, factory, opts)
end

--- listenUNIX(path, factory [, opts]) -> Listener | nil, msg, code
function reactor.listenUNIX(path, factory, opts)
  return listen(core.listenUNIX, path, factory, opts)
end

--- stdio(protocol) -> transport: the protocol object talks over stdin/stdout
--- (Twisted's StandardIO); a class is made into an instance first.
function reactor.stdio(proto)
  assert(type(proto) == "table", "stdio: expected a protocol object or class")
  local f = { buildProtocol = function() return proto end }
  if rawget(proto, "dataReceived") or rawget(proto, "lineReceived") then -- a class
    f.buildProtocol = function() return setmetatable({}, { __index = proto }) end
  end
  if getmetatable(proto) == nil then setmetatable(proto, { __index = protocol.Protocol }) end
  return core.stdio(f)
end

local Connector = {}
Connector.__index = Connector

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
    self.factory:clientConnectionFailed(self, { type = "error", message = msg })
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
  self.factory:startedConnecting(self)
  if self.path then
    local t, msg = core.connectUNIX(self.path, self.factory, self, self.timeout)
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

local function clientfactory(factory)
  assert(type(factory) == "table", "connect: factory must be a table")
  if getmetatable(factory) == nil and factory.protocol == nil then
    return protocol.ClientFactory.new({ protocol = factory })
  elseif factory._instance_mt == nil then
    protocol.Factory.new(factory)
  end
  return factory
end

--- connectTCP(host, port, factory [, timeout = 30]) -> Connector
function reactor.connectTCP(host, port, factory, timeout)
  factory = clientfactory(factory)
  local c = setmetatable({ host = host, port = port, factory = factory, timeout = timeout }, Connector)
  return c:connect()
end

--- connectUNIX(path, factory [, timeout = 30]) -> Connector
function reactor.connectUNIX(path, factory, timeout)
  factory = clientfactory(factory)
  local c = setmetatable({ path = path, factory = factory, timeout = timeout }, Connector)
  return c:connect()
end

reactor.serve = service.serve
reactor.reload = service.reload
reactor.state = service.state
--- Check a script without serving it: the factory-like spec, or nil, "file:line: message".
function reactor.check(path)
  local gen, err = service.load(path)
  if not gen then return nil, err end
  return gen.spec
end

return reactor
