-- reactor.protocol: Twisted's Protocol / Factory / ClientFactory.
--
-- A protocol class is a plain table of methods. A factory owns one
-- metatable for all of its connections, whose __index is the class: the C
-- side looks each callback up on the instance at every event, so swapping
-- that one __index (hot reload) reaches every live connection.

local core = require "reactor.core"

local Protocol = {}
Protocol.__index = Protocol

--- Make a subclass: `local Echo = reactor.Protocol:extend()`.
function Protocol:extend(class)
  class = class or {}
  return setmetatable(class, { __index = self })
end

function Protocol:connectionMade() end -- luacheck: ignore self
function Protocol:dataReceived(data) end -- luacheck: ignore
function Protocol:connectionLost(reason) end -- luacheck: ignore
-- these two do nothing, so C does not call them (nor make the reason table
-- for a connectionLost no one overrides)
core._noops(Protocol.connectionMade, Protocol.connectionLost)

local Factory = {}
Factory.__index = Factory

local function inherit(class, base)
  if getmetatable(class) == nil then setmetatable(class, { __index = base }) end
  return class
end

-- Factory.new's work; level is where a bad table is blamed, counted from
-- init's caller (1), so the callers below return (init(...)): a tail call
-- would take their frame off the stack.
local function init(self, level)
  if type(self) ~= "table" then error("Factory: expected a table, got " .. type(self), level + 1) end
  if getmetatable(self) == nil then setmetatable(self, Factory) end
  local class = self.protocol
  if class == nil and self.buildProtocol ~= Factory.buildProtocol then
    return self -- builds its protocols itself (Twisted allows that too)
  end
  if type(class) ~= "table" then
    error(("Factory: field 'protocol' must be a protocol table (it is %s)"):format(type(class)), level + 1)
  end
  inherit(class, Protocol)
  self._instance_mt = { __index = class }
  return self
end

--- Factory{protocol = Class, ...shared state}: one per listener.
function Factory.new(fields)
  return (init(fields, 2))
end

function Factory.forProtocol(class, fields)
  fields = fields or {}
  fields.protocol = class
  return (init(fields, 2))
end

--- Called for every new connection; returning nil refuses it.
function Factory:buildProtocol(addr) -- luacheck: ignore addr
  -- (transport is set by C before connectionMade: a slot made here, not a
  -- rehash of the table then)
  return setmetatable({ factory = self, transport = false }, self._instance_mt)
end
-- it ignores addr, so C passes it nil instead of building a table per
-- connection for the garbage collector (issue 12)
core._addrless(Factory.buildProtocol)

function Factory:startFactory() end -- luacheck: ignore self
function Factory:stopFactory() end -- luacheck: ignore self

setmetatable(Factory, { __call = function(_, fields) return (init(fields, 2)) end })

local ClientFactory = setmetatable({}, { __index = Factory })
ClientFactory.__index = ClientFactory

function ClientFactory.new(fields)
  if type(fields) == "table" then setmetatable(fields, ClientFactory) end
  return (init(fields, 2))
end

function ClientFactory:startedConnecting(connector) end -- luacheck: ignore
function ClientFactory:clientConnectionFailed(connector, reason) end -- luacheck: ignore
function ClientFactory:clientConnectionLost(connector, reason) end -- luacheck: ignore

getmetatable(ClientFactory).__call = function(_, fields)
  if type(fields) == "table" then setmetatable(fields, ClientFactory) end
  return (init(fields, 2))
end

-- ReconnectingClientFactory (Twisted's): after a failed or lost connection,
-- try again with exponential backoff and jitter, until stopTrying(). Call
-- self.factory:resetDelay() once a connection is known good.
local ReconnectingClientFactory = setmetatable({
  initialDelay = 1.0,
  maxDelay = 3600,
  factor = 2.7182818284590451,
  jitter = 0.11962656472,
  maxRetries = nil,
}, { __index = ClientFactory })
ReconnectingClientFactory.__index = ReconnectingClientFactory

local function newReconnecting(fields, level)
  if type(fields) == "table" then setmetatable(fields, ReconnectingClientFactory) end
  init(fields, level + 1)
  fields:resetDelay()
  return fields
end

function ReconnectingClientFactory.new(fields)
  return (newReconnecting(fields, 2))
end

function ReconnectingClientFactory:resetDelay()
  self.delay = self.initialDelay
  self.retries = 0
  self.continueTrying = true
end

--- Schedule the next attempt; nothing once stopTrying() ran or maxRetries is spent.
function ReconnectingClientFactory:retry(connector)
  connector = connector or self.connector
  if not self.continueTrying or not connector then return end
  self.retries = self.retries + 1
  if self.maxRetries and self.retries > self.maxRetries then return end
  self.delay = math.min(self.delay * self.factor, self.maxDelay)
  if self.jitter and self.jitter > 0 then
    self.delay = self.delay * (1 + (math.random() * 2 - 1) * self.jitter)
  end
  self._retry = core.callLater(self.delay, function()
    self._retry = nil
    if self.continueTrying then connector:connect() end
  end)
end

function ReconnectingClientFactory:clientConnectionFailed(connector, reason) -- luacheck: ignore reason
  self.connector = connector
  self:retry(connector)
end

function ReconnectingClientFactory:clientConnectionLost(connector, reason) -- luacheck: ignore reason
  self.connector = connector
  self:retry(connector)
end

--- No more attempts: the pending one is cancelled.
function ReconnectingClientFactory:stopTrying()
  self.continueTrying = false
  if self._retry then
    self._retry:cancel()
    self._retry = nil
  end
  if self.connector then self.connector:disconnect() end
end

getmetatable(ReconnectingClientFactory).__call = function(_, fields)
  return (newReconnecting(fields, 2))
end

--[[ The one way a table becomes what listenTCP, connectTCP and serve need.
A factory is a table with `protocol` or `buildProtocol` (its own or
inherited); anything else is a protocol class (a bare table of callbacks,
or one made with :extend), served by a new factory. For a client, a plain
factory (no metatable, or reactor.Factory's) becomes a ClientFactory, so
that the Connector's startedConnecting / clientConnection* calls reach it. ]]
local function isfactory(t)
  return t.protocol ~= nil or t.buildProtocol ~= nil
end

local function asFactory(t, client, level)
  level = (level or 1) + 1
  if not isfactory(t) then
    return (init(setmetatable({ protocol = t }, client and ClientFactory or Factory), level))
  end
  local mt = getmetatable(t)
  if client and (mt == nil or mt == Factory) then
    setmetatable(t, ClientFactory)
  end
  if rawget(t, "_instance_mt") == nil then init(t, level) end
  return t
end

return {
  asFactory = asFactory,
  isFactory = isfactory,
  Protocol = Protocol,
  Factory = Factory,
  ClientFactory = ClientFactory,
  ReconnectingClientFactory = ReconnectingClientFactory,
}
