-- examples/mud (issue 13): the C host mud.c with the Lua game logic
-- game.lua, run as a user runs it: port 0, players over loopback sockets
-- sending lines. Each spec runs its own MUD on a copy of game.lua in a
-- temporary folder, so the reload spec can edit it.
local H = require "spec.helpers"

local function mud_binary()
  local build = os.getenv("REACTOR_BUILD")
  return (build and build ~= "" and build or "build") .. "/mud"
end

local function copy(from, to)
  local f = assert(io.open(from, "rb"))
  local s = f:read("a")
  f:close()
  f = assert(io.open(to, "wb"))
  f:write(s)
  f:close()
  return s
end

-- start() -> mud: mud.port, mud.game (its game.lua), mud:line() (its next stdout line), mud:stop()
local function start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. H.quote(dir)))
  local game = dir .. "/game.lua"
  copy("examples/mud/game.lua", game)
  local err = dir .. "/stderr"
  local wrapper = H.wrapper()
  local cmd = ("timeout --foreground %d %s%s -p 0 -g %s 2>%s"):format(H.DEADLINE,
    wrapper and (wrapper .. " ") or "", H.quote(mud_binary()), H.quote(game), H.quote(err))
  local handle = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = assert(tonumber(handle:read("l")))
  local first = handle:read("l")
  local port = first and first:match("^mud listening on 127%.0%.0%.1:(%d+)$")
  assert(port, ("the MUD did not say where it listens (got %q)"):format(tostring(first)))
  local mud = { port = tonumber(port), game = game, dir = dir }
  function mud.line() return handle:read("l") end
  function mud.stop()
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    local _, how, code = handle:close()
    local f = io.open(err, "rb")
    mud.stderr = f and f:read("a") or ""
    if f then f:close() end
    os.execute("rm -rf " .. H.quote(dir))
    return how, code
  end
  return mud
end

-- a player: join(port, name) -> p; p.send(line); p.expect(pattern) -> the
-- matching line (fails after the socket timeout); p.lines: all seen
local function join(port, name)
  local s = assert(H.connect(port))
  s:settimeout(H.SOCKET_TIMEOUT)
  local p = { lines = {} }
  function p.send(line) assert(H.send_all(s, line .. "\n")) end
  function p.raw(bytes) assert(H.send_all(s, bytes)) end
  function p.expect(pattern)
    for _ = 1, 1000 do
      local l, e = s:receive("*l")
      assert(l, ("%s: waiting for %q: %s; saw:\n%s"):format(name, pattern, tostring(e), table.concat(p.lines, "\n")))
      l = l:gsub("\r$", "")
      p.lines[#p.lines + 1] = l
      if l:find(pattern) then return l end
    end
    error("no line matched " .. pattern)
  end
  function p.close() s:close() end
  function p.eof()
    for _ = 1, 1000 do
      local l, e = s:receive("*l")
      if not l then return e == "closed" end
    end
  end
  p.expect("What is your name%?")
  p.send(name)
  p.expect("^Hello, " .. name .. "%.$")
  p.expect("^Here: ")
  return p
end

describe("examples/mud", function()
  local mud
  after_each(function()
    if mud then
      local how, code = mud.stop()
      assert.are.same({ "exit", 0 }, { how, code }, mud.stderr)
      mud = nil
    end
  end)

  it("three players move, speak, see each other and take an item", function()
    mud = start()
    local alice = join(mud.port, "alice")
    local bob = join(mud.port, "bob")
    alice.expect("^bob arrives%.$")
    local carol = join(mud.port, "carol")
    alice.expect("^carol arrives%.$")
    bob.expect("^carol arrives%.$")

    alice.send("say hello all")
    bob.expect("^alice says: hello all$")
    carol.expect("^alice says: hello all$")
    alice.expect("^You say: hello all$")

    bob.send("go north")
    bob.expect("^== Library ==$")
    alice.expect("^bob goes north%.$")
    carol.expect("^bob goes north%.$")

    carol.send("take lamp")
    carol.expect("^You take the lamp%.$")
    alice.expect("^carol takes the lamp%.$")
    carol.send("inventory")
    carol.expect("^You carry: lamp$")

    alice.send("look")
    alice.expect("^You see: nothing$")
    alice.expect("^Here: carol$")
    alice.send("who")
    assert.are.equal("Players: alice (Great Hall), bob (Library), carol (Great Hall)",
      alice.expect("^Players: "))

    bob.send("say anyone?") -- alone in the library: nobody hears it
    bob.expect("^You say: anyone%?$")
    carol.send("go north")
    bob.expect("^carol arrives%.$")
    alice.send("quit")
    alice.expect("^Goodbye%.$")
    assert.is_true(alice.eof())
    carol.send("drop lamp")
    bob.expect("^carol drops the lamp%.$")
    bob.send("look")
    bob.expect("^You see: lamp, book$")
    bob.close()
    carol.close()
  end)

  it("reloads game.lua under connected players, keeping their rooms and inventories", function()
    mud = start()
    local alice = join(mud.port, "alice")
    alice.send("take lamp")
    alice.expect("^You take the lamp%.$")
    alice.send("go east")
    alice.expect("^== Garden ==$")
    local bob = join(mud.port, "bob")

    local src = copy(mud.game, mud.game .. ".orig")
    local f = assert(io.open(mud.game, "wb"))
    f:write((src:gsub('"You carry: "', '"Your pack holds: "')))
    f:close()
    assert.are.equal("mud: reloaded " .. mud.game, mud.line())

    alice.send("inventory")
    alice.expect("^Your pack holds: lamp$")
    alice.send("look")
    alice.expect("^== Garden ==$")
    alice.send("who")
    alice.expect("^Players: alice %(Garden%), bob %(Great Hall%)$")

    -- a broken file changes nothing
    f = assert(io.open(mud.game, "wb"))
    f:write("function game.line( broken\n")
    f:close()
    assert.matches("^mud: .*game%.lua:%d+: .*%(the old game logic goes on%)$", mud.line())
    bob.send("inventory")
    bob.expect("^Your pack holds: nothing$")
    alice.close()
    bob.close()
  end)

  it("a player who disconnects mid-command leaves cleanly, and the world goes on", function()
    mud = start()
    local alice = join(mud.port, "alice")
    local bob = join(mud.port, "bob")
    alice.expect("^bob arrives%.$")
    bob.raw("say this never ends") -- no newline: an unfinished command
    bob.close()
    alice.expect("^bob leaves%.$")
    for _, l in ipairs(alice.lines) do assert.is_nil(l:find("this never ends", 1, true)) end

    -- a whole command, then gone at once: it runs, then the leaving
    local carol = join(mud.port, "carol")
    alice.expect("^carol arrives%.$")
    carol.raw("take lamp\n")
    carol.close()
    alice.expect("^carol takes the lamp%.$")
    alice.expect("^carol leaves%.$")
    alice.send("look") -- what carol carried stays in the room
    alice.expect("^You see: lamp$")
    local bob2 = join(mud.port, "bob") -- the name is free again
    alice.expect("^bob arrives%.$")
    bob2.send("who")
    bob2.expect("^Players: alice %(Great Hall%), bob %(Great Hall%)$")
    alice.close()
    bob2.close()
  end)

  it("refuses a bad flag with what it expected, exit 2", function()
    for _, case in ipairs {
      { "-s x", "mud: bad spin 'x': expected milliseconds 0..99" },
      { "-s 100", "mud: bad spin '100': expected milliseconds 0..99" },
      { "-t -3", "mud: bad tick count '-3': expected an integer >= 0" },
      { "-p 70000", "mud: bad port '70000': expected 0..65535" },
    } do
      local h = assert(io.popen(H.quote(mud_binary()) .. " " .. case[1] .. " 2>&1", "r"))
      local out = h:read("a")
      local _, how, code = h:close()
      assert.are.same({ "exit", 2 }, { how, code }, case[1])
      assert.are.equal(case[2] .. "\n", out)
    end
  end)
end)
