-- tstamp.lua: seed 002's TCP time-stamp server.
--
--   reactord examples/tstamp.lua          serves it on 127.0.0.1:21111
--   lua5.4 examples/tstamp_client.lua     its interactive client
--
-- Each message is answered "[<ctime>] <message>": the local time as
-- Python's time.ctime() writes it ("Sat Feb 24 10:29:28 2018", the day
-- padded with a space), then the message as it came. (The seed, run under
-- Python 3, sends "[b'Sat Feb 24 ...'] b'hello'", bytes objects formatted
-- with %s; its own transcript shows what was meant, and that is what this
-- sends.) A message is what one read brings, as the seed's recv(1024).
local Tstamp = {}

local function ctime()
  return os.date("%a %b %e %H:%M:%S %Y")
end

function Tstamp:dataReceived(message)
  self.transport:write(("[%s] %s"):format(ctime(), message))
end

return { protocol = Tstamp, port = 21111 }
