-- mud_players.lua PORT [PLAYERS=100] [SECONDS=20]: scripted MUD players
-- (bench/embed.sh). Each joins, then sends one command a second (look, say,
-- go, take, drop, who, inventory, in turn), and everything the MUD sends
-- is read. Bounded: it stops after SECONDS.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "usage: mud_players.lua PORT [PLAYERS] [SECONDS]")
local n = tonumber(arg[2]) or 100
local seconds = tonumber(arg[3]) or 20
local script = { "look", "say hello", "go north", "take book", "go south", "drop book", "who", "inventory",
                 "go east", "say here", "go west" }

local players, socks = {}, {}
for i = 1, n do
  local s = assert(socket.connect("127.0.0.1", port))
  s:settimeout(0)
  s:send("p" .. i .. "\n")
  players[i] = { s = s, step = i % #script, next = socket.gettime() + (i % 10) / 10 }
  socks[i] = s
end
local bytes, sent = 0, 0
local stop = socket.gettime() + seconds
while socket.gettime() < stop do
  local readable = socket.select(socks, nil, 0.01)
  for _, s in ipairs(readable) do
    local data, _, partial = s:receive(65536)
    bytes = bytes + #(data or partial or "")
  end
  local t = socket.gettime()
  for _, p in ipairs(players) do
    if t >= p.next then
      p.step = p.step % #script + 1
      p.s:send(script[p.step] .. "\n")
      sent = sent + 1
      p.next = p.next + 1
    end
  end
end
for _, s in ipairs(socks) do s:close() end
print(("players %d: %d commands sent, %d bytes received in %g s"):format(n, sent, bytes, seconds))
