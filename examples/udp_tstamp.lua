-- udp_tstamp.lua: seed 002's UDP time-stamp server.
--
--   reactord examples/udp_tstamp.lua      serves it on udp 127.0.0.1:21111
--   lua5.4 examples/udp_tstamp_client.lua its interactive client
--
-- Each datagram is answered, to its sender, with "[<ctime>] <datagram>" (as
-- tstamp.lua). The seed's server stops when any client sends a lone space:
-- this one answers that datagram like any other, because no remote peer
-- should be able to stop a server. Stop it as the operator does: SIGTERM or
-- SIGINT (stopProtocol runs, then the daemon exits 0). Edit the script and
-- send SIGHUP: the next datagram runs the new code.
local Tstamp = {}

local function ctime()
  return os.date("%a %b %e %H:%M:%S %Y")
end

function Tstamp:datagramReceived(data, host, port)
  self.transport:write(("[%s] %s"):format(ctime(), data), host, port)
end

return { protocol = Tstamp, udp = true, port = 21111 }
