-- cqueues_zen: the zen protocol on cqueues (a coroutine per connection, the
-- library's own socket buffering), a peer for bench/peers.sh.
--   lua5.4 bench/peers/cqueues_zen.lua [-p PORT] [HOST]
-- First stdout line: "cqueues_zen: listening on HOST:PORT". SIGTERM stops it (default action).
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

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

local cq = cqueues.new()
local srv = socket.listen { host = host, port = port, reuseaddr = true, backlog = 4096 }
srv:listen()
local _, _, bound = srv:localname()
io.stdout:write(("cqueues_zen: listening on %s:%d\n"):format(host, bound))
io.stdout:flush()

cq:wrap(function()
  for c in srv:clients() do
    cq:wrap(function()
      c:setmode("b", "bn") -- binary, no output buffering: each write goes out at once
      c:onerror(function(_, _, code) return code end) -- a reset is a value (nil), not an error that ends the server
      local part = ""
      while true do
        local data = c:read(-4096) -- whatever has arrived, up to 4 KiB
        if not data then break end
        local out, s, start = {}, part .. data, 1
        for q, stop in s:gmatch("([^?]*)%?()") do
          out[#out + 1] = answers[q] or "Error: unknown zphorism"
          start = stop
        end
        part = s:sub(start)
        if #part > 4096 then break end
        if #out > 0 and not c:write(table.concat(out)) then break end
      end
      c:close()
    end)
  end
end)
-- an error in one connection's coroutine ends that connection only: cq:loop
-- reports it and is called again (as the other peers' servers keep serving)
while true do
  local ok, err = cq:loop()
  if ok then break end
  io.stderr:write(("%s: %s\n"):format(arg[0], tostring(err)))
end
