-- twisted_echo_stream.lua: seed 003's Twisted echo server, written with
-- coroutine streams: the twin of twisted_echo.lua, same wire behaviour.
--
--   reactord examples/twisted_echo_stream.lua    serves it on 127.0.0.1:12345
--   lua5.4 examples/twisted_echo_stream_client.lua
--
-- Each connection runs the function below in a task of its own; it reads
-- what arrives (read gives whatever is there, as dataReceived would) and
-- answers "[<ctime>] <data>". Returning closes the connection.
local reactor = require "reactor"

return reactor.serve(12345, function(s)
  io.stdout:write("...connected from: ", s:getPeer().host, "\n")
  io.stdout:flush()
  while true do
    local data = s:read(65536)
    if not data then return end -- the peer went: nil, "closed"
    s:write(("[%s] %s"):format(os.date("%a %b %e %H:%M:%S %Y"), data))
  end
end)
