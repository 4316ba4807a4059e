-- twisted_echo.lua: seed 003's Twisted TCP server (TWServProtocol), with
-- callbacks, as it is written there.
--
--   reactord examples/twisted_echo.lua    serves it on 127.0.0.1:12345
--   lua5.4 examples/twisted_echo_client.lua
--
-- The seed's server echoes what it receives behind a time stamp:
-- "[<ctime>] <data>" (as tstamp.lua), and prints who connected. Twisted's
-- Protocol / Factory split is reactord's: the table returned is the factory,
-- each connection gets its own instance of the protocol class.
-- Its coroutine-streams twin is twisted_echo_stream.lua.
local reactor = require "reactor"

local TWServProtocol = reactor.Protocol:extend()

function TWServProtocol:connectionMade()
  self.client = self.transport:getPeer().host
  io.stdout:write("...connected from: ", self.client, "\n")
  io.stdout:flush()
end

function TWServProtocol:dataReceived(data)
  self.transport:write(("[%s] %s"):format(os.date("%a %b %e %H:%M:%S %Y"), data))
end

return reactor.Factory { protocol = TWServProtocol, port = 12345 }
