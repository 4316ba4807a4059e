-- game.lua: the MUD's game logic (examples/mud/mud.c is the host). The
-- world (rooms, items, who is where, who carries what) lives in C and is
-- reached through world.*; a player's connection is `p` (p.id, p.name once
-- named). Edit this file while players are connected: the host reloads it
-- at its next tick and the players' next line runs the new code, in the
-- room and with the inventory they had.
--
-- The first line a player sends is the name they play under; then:
--   look, go <exit> (or just the exit: north, n, ...), say <text> (or 'text),
--   take <item>, drop <item>, inventory (i), who, quit
-- the host's (mud.c): the world's functions, and the connection of each player id
local world, sessions = rawget(_G, "world"), rawget(_G, "sessions")
local game = {}
rawset(_G, "game", game) -- the host's connections call the global game.* at each event

local SHORT = { n = "north", s = "south", e = "east", w = "west", u = "up", d = "down" }

local function send(p, text)
  p.transport:write(text .. "\r\n")
end

-- text to everyone in p's room but p
local function tell_room(p, text)
  for _, id in ipairs(world.roommates(p.id)) do
    local q = sessions[id]
    if q then send(q, text) end
  end
end

local function list(t)
  return #t > 0 and table.concat(t, ", ") or "nothing"
end

local commands = {}

function commands.look(p)
  local room = world.look(p.id)
  send(p, ("== %s ==\r\n%s\r\nExits: %s\r\nYou see: %s\r\nHere: %s"):format(
    room.name, room.desc, list(room.exits), list(room.items), list(room.players)))
end
commands.l = commands.look

function commands.go(p, exit)
  exit = SHORT[exit] or exit
  if exit == "" then return send(p, "Go where?") end
  local exits = world.look(p.id).exits
  local known = false
  for _, e in ipairs(exits) do known = known or e == exit end
  if not known then return send(p, "You cannot go " .. exit .. " (exits: " .. list(exits) .. ").") end
  tell_room(p, p.name .. " goes " .. exit .. ".")
  assert(world.go(p.id, exit))
  send(p, "You go " .. exit .. ".")
  commands.look(p)
  tell_room(p, p.name .. " arrives.")
end

function commands.say(p, text)
  if text == "" then return send(p, "Say what?") end
  tell_room(p, p.name .. " says: " .. text)
  send(p, "You say: " .. text)
end

function commands.take(p, item)
  if item == "" then return send(p, "Take what?") end
  local ok, why = world.take(p.id, item)
  if not ok then return send(p, "You cannot take " .. item .. ": " .. why .. ".") end
  send(p, "You take the " .. item .. ".")
  tell_room(p, p.name .. " takes the " .. item .. ".")
end

function commands.drop(p, item)
  if item == "" then return send(p, "Drop what?") end
  local ok, why = world.drop(p.id, item)
  if not ok then return send(p, "You cannot drop " .. item .. ": " .. why .. ".") end
  send(p, "You drop the " .. item .. ".")
  tell_room(p, p.name .. " drops the " .. item .. ".")
end

function commands.inventory(p)
  send(p, "You carry: " .. list(world.inventory(p.id)))
end
commands.i = commands.inventory

function commands.who(p)
  local lines = {}
  for _, w in ipairs(world.who()) do lines[#lines + 1] = w.name .. " (" .. w.room .. ")" end
  send(p, "Players: " .. table.concat(lines, ", "))
end

function commands.quit(p)
  send(p, "Goodbye.")
  p.transport:loseConnection()
end

function game.connected(p)
  send(p, "Welcome to the MUD! What is your name?")
end

local function named(p, name)
  if not name:match("^%a[%w_]*$") or #name > 24 then
    return send(p, "A name is a letter, then letters, digits or _ (24 at most). What is your name?")
  end
  local id, why = world.join(name)
  if not id then return send(p, "You cannot be " .. name .. ": " .. why .. ". What is your name?") end
  p.id, p.name = id, name
  sessions[id] = p
  send(p, "Hello, " .. name .. ".")
  commands.look(p)
  tell_room(p, name .. " arrives.")
end

function game.line(p, line)
  line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
  if not p.id then return named(p, line) end
  if line == "" then return end
  if line:sub(1, 1) == "'" then return commands.say(p, line:sub(2)) end
  local verb, rest = line:match("^(%S+)%s*(.*)$")
  verb = verb:lower()
  local f = commands[verb]
  if f then return f(p, rest) end
  if SHORT[verb] or verb == "north" or verb == "south" or verb == "east" or verb == "west"
    or verb == "up" or verb == "down" then
    return commands.go(p, verb)
  end
  send(p, "I do not know how to " .. verb .. ". Try: look, go <exit>, say, take, drop, inventory, who, quit.")
end

function game.lost(p)
  if not p.id then return end
  tell_room(p, p.name .. " leaves.")
  world.leave(p.id)
  sessions[p.id] = nil
  p.id = nil
end
