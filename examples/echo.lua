-- echo.lua: a plain echo server, the smallest protocol there is.
--
--   reactord examples/echo.lua            serves it on 127.0.0.1:8000
--   reactord examples/echo.lua -p 0       any free port (the first line says which)
--
-- Every byte a client sends comes back, in order, however the network split
-- it. A client that sends without reading is paused at the high water mark
-- (flow control in the core), so it cannot grow the server's memory.
local Echo = {}

function Echo:dataReceived(data)
  self.transport:write(data)
end

return { protocol = Echo, port = 8000 }
