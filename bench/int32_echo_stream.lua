-- int32_echo_stream.lua: bench/int32_echo.lua written with coroutine streams
-- (readexactly), for bench/batteries.sh.
--
--   reactord bench/int32_echo_stream.lua -p 0
--
-- Every frame (a 4-byte big-endian length, then that many bytes) comes back as
-- it came. A length past MAX_LENGTH (Int32StringReceiver's 99999) closes the
-- connection, as the callback version does.
local reactor = require "reactor"

local MAX_LENGTH = 99999

return reactor.serve(8000, function(s)
  while true do
    local head = s:readexactly(4)
    if not head then break end
    local n = (">I4"):unpack(head)
    if n > MAX_LENGTH then break end
    local body = n > 0 and s:readexactly(n) or ""
    if not body then break end
    s:write(head)
    s:write(body)
  end
  s:close()
end)
