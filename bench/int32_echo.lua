-- int32_echo.lua: the Int32StringReceiver echo that bench/batteries.sh measures
-- against bench/raw_int32_echo.c (callback style).
--
--   reactord bench/int32_echo.lua -p 0
--
-- Every frame (a 4-byte big-endian length, then that many bytes) comes back as
-- it came: stringReceived gets the frame's bytes, sendString frames them again.
local reactor = require "reactor"

local Echo = reactor.Int32StringReceiver:extend()

function Echo:stringReceived(s)
  self:sendString(s)
end

return { protocol = Echo, port = 8000 }
