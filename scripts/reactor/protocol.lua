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

return { Protocol = Protocol, Factory = Factory, ClientFactory = ClientFactory }
