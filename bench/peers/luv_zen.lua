-- luv_zen: the zen protocol on luv (libuv for Lua 5.4), a peer for bench/peers.sh.
--   lua5.4 bench/peers/luv_zen.lua [-p PORT] [HOST]
-- First stdout line: "luv_zen: listening on HOST:PORT". SIGTERM/SIGINT stop it.
local uv = require "luv"

local answers = {
  ["Beautiful is better than"] = "Ugly.",
  ["Explicit is better than"] = "Implicit.",
  ["Simple is better than"] = "Complex.",
}
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
  local part = ""
  c:read_start(function(err, data)
    if err or not data then c:close(); return end
    local out, s, start = {}, part .. data, 1
    for q, stop in s:gmatch("([^?]*)%?()") do
      out[#out + 1] = answers[q] or "Error: unknown zphorism"
      start = stop
    end
    part = s:sub(start)
    if #part > 4096 then c:close(); return end
    if #out > 0 then c:write(table.concat(out)) end
  end)
end))
io.stdout:write(("luv_zen: listening on %s:%d\n"):format(host, server:getsockname().port))
io.stdout:flush()
for _, name in ipairs { "sigterm", "sigint" } do
  local sig = uv.new_signal()
  sig:start(name, function() uv.stop() end)
end
uv.run()
