-- luv_echo: an echo server on luv (libuv for Lua 5.4), a peer for bench/peers.sh (-m echo).
--   lua5.4 bench/peers/luv_echo.lua [-p PORT] [HOST]
-- First stdout line: "luv_echo: listening on HOST:PORT". SIGTERM/SIGINT stop it.
local uv = require "luv"

local port, host = 1060, "127.0.0.1"
local i = 1
while arg[i] do
  if arg[i] == "-p" then port = tonumber(arg[i + 1]); i = i + 1 else host = arg[i] end
  i = i + 1
end

local server = uv.new_tcp()
assert(server:bind(host, port))
assert(server:listen(4096, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:nodelay(true)
  c:read_start(function(err, data)
    if err or not data then c:close(); return end
    c:write(data)
  end)
end))
io.stdout:write(("luv_echo: listening on %s:%d\n"):format(host, server:getsockname().port))
io.stdout:flush()
for _, name in ipairs { "sigterm", "sigint" } do
  local sig = uv.new_signal()
  sig:start(name, function() uv.stop() end)
end
uv.run()
