-- reactor.protocol: Twisted's Protocol / Factory / ClientFactory.
--
-- A protocol class is a plain table of methods. A factory owns one
-- metatable for all of its connections, whose __index is the class: the C
-- side looks each callback up on the instance at every event, so swapping
-- that one __index (hot reload) reaches every live connection.

local Protocol = {}
Protocol.__index = Protocol

--- Make a subclass: `local Echo = reactor.Protocol:extend()`.
function Protocol:extend(class)
  class = class or {}
  return setmetatable(class, { __index = self })
end

function Protocol:connectionMade() end
function Protocol:dataReceived(data) end -- luacheck: ignore
function Protocol:connectionLost(reason) end -- luacheck: ignore

local Factory = {}
Factory.__index = Factory

local function inherit(class, base)
  if getmetatable(class) == nil then setmetatable(class, { __index = base }) end
  return class
end

--- Factory{protocol = Class, ...shared state}: one per listener.
function Factory.new(fields)
  assert(type(fields) == "table", "Factory: expected a table")
  local self = fields
  if getmetatable(self) == nil then setmetatable(self, Factory) end
  assert(type(self.protocol) == "table", "Factory: field 'protocol' must be a protocol table")
  inherit(self.protocol, Protocol)
  self._instance_mt = { __index = self.protocol }
  return self
end

function Factory.forProtocol(class, fields)
  fields = fields or {}
  fields.protocol = class
  return Factory.new(fields)
end

--- Called for every new connection; returning nil refuses it.
function Factory:buildProtocol(addr) -- luacheck: ignore addr
  return setmetatable({ factory = self }, self._instance_mt)
end

function Factory:startFactory() end
function Factory:stopFactory() end

setmetatable(Factory, { __call = function(_, fields) return Factory.new(fields) end })

local ClientFactory = setmetatable({}, { __index = Factory })
ClientFactory.__index = ClientFactory

function ClientFactory.new(fields)
  setmetatable(fields, ClientFactory)
  return Factory.new(fields)
end

function ClientFactory:startedConnecting(connector) end -- luacheck: ignore
function ClientFactory:clientConnectionFailed(connector, reason) end -- luacheck: ignore
function ClientFactory:clientConnectionLost(connector, reason) end -- luacheck: ignore

getmetatable(ClientFactory).__call = function(_, fields) return ClientFactory.new(fields) end

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

function ReconnectingClientFactory.new(fields)
  setmetatable(fields, ReconnectingClientFactory)
  Factory.new(fields)
  fields:resetDelay()
  return fields
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
  local core = require "reactor.core"
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
  return ReconnectingClientFactory.new(fields)
end

return {
  Protocol = Protocol,
  Factory = Factory,
  ClientFactory = ClientFactory,
  ReconnectingClientFactory = ReconnectingClientFactory,
}
