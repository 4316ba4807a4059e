-- pid_echo.lua: seed 001's ForkingMixIn / ThreadingMixIn echo servers.
--
--   reactord examples/pid_echo.lua        serves it on 127.0.0.1:8001
--
-- The seed answers a message with "received <pid> : <message>", the pid of
-- the process that handled it (a child per connection under ForkingMixIn, a
-- thread's name under ThreadingMixIn). reactor.getpid() is the pid of the
-- process serving the connection: its worker's. Without --workers one
-- process serves all (reactor.worker = {id = 1, count = 1}); under
-- `reactord --workers N` connections spread over N pids. A message is what
-- one read brings (the seed's recv(1024)); unlike the seed, which answers
-- once and hangs up, a connection may send as many as it likes.
local reactor = require "reactor"

local PidEcho = {}

function PidEcho:dataReceived(message)
  self.transport:write(("received %d : %s"):format(reactor.getpid(), message))
end

return { protocol = PidEcho, port = 8001 }
