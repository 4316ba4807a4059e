-- Hot reload of the real daemon (issue 4): SIGHUP and --watch under live
-- connections, failed reloads, state that survives, migrate, timers by name.
--
-- Synchronisation is by observed events only: the daemon's stderr is merged
-- into its stdout pipe (H.start_logged_daemon), so "the reload has happened"
-- is a blocking read of its `reactord: reloaded ...` line; "the daemon has
-- handled everything before X" is an answer on a socket, or a marker line the
-- test script prints from inside the daemon. No test sleeps; every read has a
-- deadline (socket timeout, or the daemon's `timeout` ending the pipe).

local H = require "spec.helpers"

-- pattern-escape a literal
local function lit(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local RELOADED = "^reactord: reloaded "
local FAILED = "^reactord: reload failed, still serving generation "

-- A zen-like LineReceiver (delimiter "?"): question q is answered
-- "<letter>:<q>." with no newline, so an answer's length is known from its
-- question whatever version answers it. `mark X?` is answered "M:mark X."
-- after `mark_delay` seconds (daemon time), just after the daemon printed
-- "test: mark X" on stderr: a barrier ordering the daemon's log against its
-- answers. `extra` is Lua spliced in before the return (e.g. a require).
local function zen(letter, rev, opts)
  opts = opts or {}
  return ([[
-- revision %d
local reactor = require "reactor"
%s
local Zen = reactor.LineReceiver:extend { delimiter = "?", MAX_LENGTH = 4096 }

function Zen:lineReceived(q)
  local tag = q:match("^mark (.*)$")
  if tag then
    reactor.callLater(%s, function()
      io.stderr:write("test: mark ", tag, "\n")
      io.stderr:flush()
      self.transport:write("M:" .. q .. ".")
    end)
    return
  end
  self.transport:write(%s .. ":" .. q .. ".")
end

return { port = 1060, protocol = Zen, %s }
]]):format(rev or 0, opts.extra or "", tostring(opts.mark_delay or 0),
    opts.answer or ("%q"):format(letter), opts.fields or "")
end

local function answer(letter, q) return letter .. ":" .. q .. "." end

-- ask on one socket, return the answer's letter (or nil, what came instead)
local function ask(sock, q)
  local ok, err = H.send_all(sock, q .. "?")
  if not ok then return nil, "send: " .. tostring(err) end
  local n = #answer("X", q)
  local got, rerr, partial = H.read_exact(sock, n)
  if not got then return nil, ("read: %s (partial %q)"):format(rerr, partial or "") end
  if got:sub(2) ~= ":" .. q .. "." then return nil, "wrong answer: " .. got end
  return got:sub(1, 1)
end

local function assert_asks(sock, q, letter, d)
  local got, why = ask(sock, q)
  assert.are.equal(letter, got, ("%s -> %s\ndaemon output:\n%s"):format(q, tostring(why or got), d:stderr()))
end

-- barrier: ask `mark tag`, read its answer; then read the daemon's lines up
-- to "test: mark tag". Returns the lines printed before the marker.
local function barrier(d, sock, tag)
  local q = "mark " .. tag
  assert.is_true(H.send_all(sock, q .. "?"))
  local got, err = H.read_exact(sock, #answer("M", q))
  assert.are.equal(answer("M", q), got, tostring(err))
  local line, skipped = d:wait_line("^test: mark " .. lit(tag) .. "$")
  assert(line, "no marker line; daemon output:\n" .. d:stderr())
  return skipped
end

local function count(lines, pattern)
  local n = 0
  for _, l in ipairs(lines) do
    if l:find(pattern) then n = n + 1 end
  end
  return n
end

local function reloaded_line(path, gen, live)
  return RELOADED .. lit(("%s (generation %d): %d live %s to it, ")
    :format(path, gen, live, live == 1 and "connection moves" or "connections move")) .. "%d+%.%d+ ms$"
end

describe("hot reload (daemon)", function()
  local d, socks

  before_each(function()
    d, socks = nil, {}
  end)

  after_each(function()
    for _, s in ipairs(socks) do s:close() end
    if not d then
      H.remove_tmpdirs()
      return H.cleanup()
    end
    -- clients are gone: a clean SIGTERM shutdown exits 0
    local code, how = d:stop("TERM")
    local out = d:stderr()
    H.cleanup()
    H.remove_tmpdirs()
    assert.are.equal("exit 0", how .. " " .. tostring(code), "daemon output:\n" .. out)
  end)

  local function connect(n)
    for i = 1, n do
      local s, err = H.connect(d.port)
      assert(s, "client " .. i .. ": " .. tostring(err))
      socks[#socks + 1] = s
    end
    return socks
  end

  ------------------------------------------------------------------ 1
  it("reloads 50 times while 200 clients ask: no drop, each question answered once, "
    .. "by the old or new version, and by the new one once the reload is logged", function()
    local N, RELOADS = 200, 50
    local dir = H.tmpdir()
    local path = dir .. "/zen.lua"
    local function letter(gen) return gen % 2 == 1 and "A" or "B" end
    H.write_file(path, zen(letter(1), 1))
    d = H.start_logged_daemon { script = path }
    connect(N)
    -- one round trip each: every connection is accepted (and counted live)
    for i = 1, N do assert_asks(socks[i], ("c%d hello"):format(i), "A", d) end

    local problems = {}
    local function problem(s)
      if #problems < 20 then problems[#problems + 1] = s end
    end
    local overlap = 0 -- questions sent before the log line and answered by the new version

    local function send_all(round, phase)
      for i = 1, N do
        local ok, err = H.send_all(socks[i], ("c%d r%d %s?"):format(i, round, phase))
        if not ok then problem(("client %d round %d %s: send %s"):format(i, round, phase, err)) end
      end
    end

    for k = 1, RELOADS do
      local old, new = letter(k), letter(k + 1)
      H.write_file(path, zen(new, k + 1))
      send_all(k, "pre")   -- in flight when the signal arrives
      assert.is_true(d:signal("HUP"))
      send_all(k, "mid")   -- sent after the signal, before the reload is seen
      local line, skipped = d:wait_line("^reactord: reload")
      assert(line, "no reload line after SIGHUP " .. k .. "; daemon output:\n" .. d:stderr())
      assert.are.same({}, skipped)
      assert.matches(reloaded_line(path, k + 1, N), line)
      send_all(k, "post")  -- sent after the reload was logged: new version only
      for i = 1, N do
        local seen_new = false
        for _, phase in ipairs { "pre", "mid", "post" } do
          local q = ("c%d r%d %s"):format(i, k, phase)
          local got, err = H.read_exact(socks[i], #answer("X", q))
          local l = got and got:sub(1, 1)
          if not got then
            problem(("client %d: %s: %s"):format(i, q, err))
          elseif got:sub(2) ~= ":" .. q .. "." then
            problem(("client %d: %s answered %q"):format(i, q, got))
          elseif phase == "post" and l ~= new then
            problem(("client %d: %s (after the reload line) answered by %s"):format(i, q, got))
          elseif l ~= old and l ~= new then
            problem(("client %d: %s answered %q"):format(i, q, got))
          elseif l == old and seen_new then
            problem(("client %d: %s answered by the old version after the new one"):format(i, q))
          end
          if l == new then
            seen_new = true
            if phase ~= "post" then overlap = overlap + 1 end
          end
        end
      end
      assert.are.same({}, problems, "round " .. k)
    end

    -- nothing extra arrived: the next bytes on every connection are exactly
    -- the answer to one more question, from the last version
    for i = 1, N do
      local got, why = ask(socks[i], ("c%d final"):format(i))
      if got ~= letter(RELOADS + 1) then problem(("client %d final: %s"):format(i, tostring(why or got))) end
    end
    assert.are.same({}, problems)
    assert.is_true(d:alive())
    -- informational: how many questions raced a reload and met the new code
    print(("\n  [reload x%d, %d clients: %d of %d pre/mid questions answered by the new version]")
      :format(RELOADS, N, overlap, RELOADS * N * 2))
  end)

  ------------------------------------------------------------------ 2
  describe("a failed reload changes nothing", function()
    local dir, path, helper
    local HELPER_OK = 'return { letter = "A" }\n'
    local MAIN = zen(nil, 1, { extra = 'local helper = require "rhelper"', answer = "helper.letter" })

    before_each(function()
      dir = H.tmpdir()
      path, helper = dir .. "/main.lua", dir .. "/rhelper.lua"
      H.write_file(helper, HELPER_OK)
      H.write_file(path, MAIN)
    end)

    -- start, break the files with `files`, SIGHUP under load from 4 clients;
    -- the log line must be `expect` (a pattern); the old version keeps answering
    local function fails_cleanly(files, expect)
      d = H.start_logged_daemon { script = path }
      connect(4)
      for i, s in ipairs(socks) do assert_asks(s, "c" .. i .. " before", "A", d) end
      for f, src in pairs(files) do H.write_file(f, src) end
      for round = 1, 3 do
        for i, s in ipairs(socks) do assert.is_true(H.send_all(s, ("c%d r%d pre?"):format(i, round))) end
        assert.is_true(d:signal("HUP"))
        for i, s in ipairs(socks) do assert.is_true(H.send_all(s, ("c%d r%d mid?"):format(i, round))) end
        local line, skipped = d:wait_line("^reactord: reload")
        assert(line, "no reload line; daemon output:\n" .. d:stderr())
        assert.are.same({}, skipped)
        assert.matches(FAILED .. "1: " .. expect, line)
        for i, s in ipairs(socks) do
          for _, phase in ipairs { "pre", "mid" } do
            local q = ("c%d r%d %s"):format(i, round, phase)
            local got, err = H.read_exact(s, #answer("A", q))
            assert.are.equal(answer("A", q), got, tostring(err) .. "\n" .. d:stderr())
          end
          assert_asks(s, ("c%d r%d post"):format(i, round), "A", d)
        end
      end
      -- the same connections then move to a good new version: generation 2
      H.write_file(helper, 'return { letter = "B" }\n')
      H.write_file(path, MAIN)
      assert.is_true(d:signal("HUP"))
      local line = d:wait_line("^reactord: reload")
      assert.matches(reloaded_line(path, 2, #socks), line)
      for i, s in ipairs(socks) do assert_asks(s, "c" .. i .. " after", "B", d) end
      assert.are.equal(3, count(d.log, FAILED))
      return line
    end

    it("syntax error in the script: names file:line", function()
      local src = MAIN:gsub("function Zen:lineReceived%(q%)", "function Zen:lineReceived(q) local x = = 1")
      local n = H.line_of(src, "local x = = 1")
      fails_cleanly({ [path] = src }, lit(path .. ":" .. n .. ":") .. " unexpected symbol near '='$")
    end)

    it("runtime error in the script's top level: names file:line", function()
      local src = MAIN:gsub("\nreturn {", '\nerror("top level fails at revision 2") -- BOOM\nreturn {')
      local n = H.line_of(src, "-- BOOM")
      fails_cleanly({ [path] = src }, lit(path .. ":" .. n .. ": top level fails at revision 2") .. "$")
    end)

    it("a protocol with no callbacks: names the file", function()
      local src = 'local helper = require "rhelper"\n'
        .. "return { port = 1060, protocol = { connectionLost = function() end } }\n"
      fails_cleanly({ [path] = src },
        lit(path .. ": the protocol defines none of connectionMade, dataReceived, lineReceived") .. "$")
    end)

    it("syntax error in a module the script requires: names the module's file:line", function()
      local src = '-- helper, broken\nlocal t = {\n  letter = "B" "C",\n}\nreturn t\n'
      fails_cleanly({ [helper] = src }, lit(helper .. ":3:") .. " .+$")
    end)

    it("runtime error in a module the script requires: names the module's file:line", function()
      local src = 'local t = { letter = "B" }\nlocal missing = nil\nt.x = missing.field\nreturn t\n'
      fails_cleanly({ [helper] = src }, lit(helper .. ":3: attempt to index a nil value (local 'missing')") .. "$")
    end)
  end)

  ------------------------------------------------------------------ 3
  describe("state across a reload", function()
    -- a chat-style LineReceiver ("\n"): nick in self, rooms in the factory,
    -- migrations counted in reactor.state, a timer scheduled by method name
    local function chat(v, opts)
      opts = opts or {}
      return ([[
local reactor = require "reactor"
local V = %q
local Chat = reactor.LineReceiver:extend { delimiter = "\n", version = %s }

function Chat:connectionMade() self.nick = "anon" end

function Chat:lineReceived(line)
  local cmd, arg = line:match("^(%%S+)%%s*(.*)$")
  local h = self["cmd_" .. tostring(cmd)]
  if h then return h(self, arg) end
  self:sendLine(V .. " unknown " .. line)
end

function Chat:cmd_nick(n) self.nick = n self:sendLine(V .. " nick " .. n) end
function Chat:cmd_join(room)
  table.insert(self.factory.rooms, room)
  self:sendLine(V .. " joined " .. room)
end
function Chat:cmd_whoami() self:sendLine(V .. " you are " .. self.nick) end
function Chat:cmd_rooms() self:sendLine(V .. " rooms " .. table.concat(self.factory.rooms, ",")) end
function Chat:cmd_factory()
  local f = self.factory
  self:sendLine(V .. " motd=" .. tostring(f.motd) .. " topic=" .. tostring(f.topic) .. " " .. f:describe())
end
function Chat:cmd_migrations()
  self:sendLine(V .. " migrations " .. tostring(reactor.state("reload_spec.chat").migrations or 0))
end
-- a timer by method name: self.tick is looked up when it fires
function Chat:cmd_later()
  self.timer = reactor.callLater(3600, self, "tick")
  self:sendLine(V .. " scheduled")
end
-- a timer with a plain function: keeps the code it was made with
function Chat:cmd_laterfn()
  self.timerfn = reactor.callLater(3600, function() self:sendLine(V .. " closure tick") end)
  self:sendLine(V .. " scheduled fn")
end
function Chat:cmd_fire(which)
  local t = which == "fn" and self.timerfn or self.timer
  self:sendLine(V .. " firing " .. tostring(t:reset(0)))
end
function Chat:tick() self:sendLine(V .. " tick " .. self.nick) end
function Chat:cmd_ping() self:sendLine(V .. " pong") end
%s
return {
  port = 1060, protocol = Chat, rooms = {}, motd = "motd " .. V, %s
  describe = function() return "describe " .. V end,
}
]]):format(v, opts.version and ("%q"):format(opts.version) or "nil", opts.migrate and [[
function Chat:migrate(old)
  local st = reactor.state("reload_spec.chat")
  st.migrations = (st.migrations or 0) + 1
  self.migrated = (self.migrated or 0) + 1
  self:sendLine(V .. " migrated from " .. tostring(old) .. " (" .. self.migrated .. ")")
end
]] or "", opts.topic and ("topic = %q,"):format(opts.topic) or "")
    end

    local function line(s)
      local l, err = s:receive("*l")
      return l or ("<" .. tostring(err) .. ">")
    end

    -- send a line, read `n` reply lines
    local function say(s, msg, n)
      assert.is_true(H.send_all(s, msg .. "\n"))
      local got = {}
      for i = 1, n or 1 do got[i] = line(s) end
      return got
    end

    it("keeps self and factory fields, runs migrate once per connection, "
      .. "and a timer by method name runs the new code once", function()
      local dir = H.tmpdir()
      local path = dir .. "/chat.lua"
      H.write_file(path, chat("v1"))
      d = H.start_logged_daemon { script = path }
      connect(2)
      local alice, bob = socks[1], socks[2]
      assert.are.same({ "v1 nick alice" }, say(alice, "nick alice"))
      assert.are.same({ "v1 joined lobby" }, say(alice, "join lobby"))
      assert.are.same({ "v1 nick bob" }, say(bob, "nick bob"))
      assert.are.same({ "v1 joined garden" }, say(bob, "join garden"))
      assert.are.same({ "v1 scheduled" }, say(alice, "later"))
      assert.are.same({ "v1 scheduled fn" }, say(alice, "laterfn"))

      H.write_file(path, chat("v2", { migrate = true, version = "two", topic = "topic v2" }))
      assert.is_true(d:signal("HUP"))
      assert.matches(reloaded_line(path, 2, 2), (d:wait_line("^reactord: reload")))

      -- first event under v2: migrate (old version = generation 1), then the command
      assert.are.same({ "v2 migrated from 1 (1)", "v2 you are alice" }, say(alice, "whoami", 2))
      assert.are.same({ "v2 you are alice" }, say(alice, "whoami"))
      assert.are.same({ "v2 rooms lobby,garden" }, say(alice, "rooms"))
      -- existing factory fields keep their values, new ones are added, functions replaced
      assert.are.same({ "v2 motd=motd v1 topic=topic v2 describe v2" }, say(alice, "factory"))
      -- the timer scheduled under v1 by method name runs v2's tick, once
      assert.are.same({ "v2 firing true", "v2 tick alice" }, say(alice, "fire", 2))
      assert.are.same({ "v2 pong" }, say(alice, "ping"))
      -- the plain-function timer keeps v1's code
      assert.are.same({ "v2 firing true", "v1 closure tick" }, say(alice, "fire fn", 2))
      assert.are.same({ "v2 pong" }, say(alice, "ping"))
      assert.are.same({ "v2 migrations 1" }, say(alice, "migrations"))
      -- bob migrates at his own first event, once
      assert.are.same({ "v2 migrated from 1 (1)", "v2 you are bob" }, say(bob, "whoami", 2))
      assert.are.same({ "v2 rooms lobby,garden" }, say(bob, "rooms"))
      assert.are.same({ "v2 migrations 2" }, say(bob, "migrations"))
      -- a connection made under v2 has nothing to migrate
      connect(1)
      local carol = socks[3]
      assert.are.same({ "v2 you are anon" }, say(carol, "whoami"))
      assert.are.same({ "v2 migrations 2" }, say(carol, "migrations"))

      -- v3: old_version is v2's `version` field; state still there
      H.write_file(path, chat("v3", { migrate = true, topic = "topic v3" }))
      assert.is_true(d:signal("HUP"))
      assert.matches(reloaded_line(path, 3, 3), (d:wait_line("^reactord: reload")))
      assert.are.same({ "v3 migrated from two (2)", "v3 you are alice" }, say(alice, "whoami", 2))
      assert.are.same({ "v3 migrated from two (1)", "v3 rooms lobby,garden" }, say(carol, "rooms", 2))
      assert.are.same({ "v3 migrations 4" }, say(carol, "migrations"))
      assert.are.same({ "v3 migrated from two (2)", "v3 motd=motd v1 topic=topic v2 describe v3" },
        say(bob, "factory", 2))
      assert.are.same({ "v3 migrations 5" }, say(bob, "migrations"))
      assert.are.same({ "v3 pong" }, say(bob, "ping"))
    end)

    it("an error in migrate closes that connection only", function()
      local dir = H.tmpdir()
      local path = dir .. "/chat.lua"
      H.write_file(path, chat("v1"))
      d = H.start_logged_daemon { script = path }
      connect(2)
      local alice, bob = socks[1], socks[2]
      assert.are.same({ "v1 nick alice" }, say(alice, "nick alice"))
      assert.are.same({ "v1 nick bob" }, say(bob, "nick bob"))
      local src = chat("v2"):gsub("\nreturn {", [[

function Chat:migrate(old)
  if self.nick == "bob" then error("cannot migrate bob") end -- MIGRATE FAILS
end
return {]])
      local n = H.line_of(src, "-- MIGRATE FAILS")
      H.write_file(path, src)
      assert.is_true(d:signal("HUP"))
      assert.matches(reloaded_line(path, 2, 2), (d:wait_line("^reactord: reload")))
      assert.is_true(H.send_all(bob, "whoami\n"))
      local eof, why = H.sees_eof(bob)
      assert.is_true(eof, why)
      local logged = d:wait_line("^reactord: error in migrate")
      assert.matches(lit(path .. ":" .. n .. ": cannot migrate bob"), logged)
      assert.are.same({ "v2 you are alice" }, say(alice, "whoami"))
    end)
  end)

  ------------------------------------------------------------------ listeners
  describe("listeners follow the script", function()
    it("a reload that adds a listener opens it and prints its line; one that drops it closes it", function()
      local path = H.tmpdir() .. "/zen.lua"
      local extra = H.free_port()
      H.write_file(path, zen("A", 1))
      d = H.start_logged_daemon { script = path }
      connect(1)
      assert_asks(socks[1], "one", "A", d)
      H.write_file(path, zen("B", 2, { fields = ("listen = { %d }"):format(extra) }))
      assert.is_true(d:signal("HUP"))
      local line, before = d:wait_line("^reactord: reload")
      assert.are.same({ "reactord: listening on 127.0.0.1:" .. extra }, before)
      assert.matches(reloaded_line(path, 2, 1), line)
      local e = assert(H.connect(extra))
      socks[#socks + 1] = e
      assert_asks(e, "extra", "B", d)
      assert_asks(socks[1], "main", "B", d)
      -- dropped: closed, and the connection made through it stays
      H.write_file(path, zen("C", 3))
      assert.is_true(d:signal("HUP"))
      line, before = d:wait_line("^reactord: reload")
      assert.are.same({}, before)
      assert.matches(reloaded_line(path, 3, 2), line)
      local s, err = H.connect(extra)
      if s then s:close() end
      assert.is_nil(s)
      assert.are.equal("connection refused", err)
      assert_asks(e, "kept", "C", d)
      assert_asks(socks[1], "main", "C", d)
    end)

    it("under -p 0, a reload that adds `listen = {0}` opens a second listener", function()
      local path = H.tmpdir() .. "/zen.lua"
      H.write_file(path, zen("A", 1))
      d = H.start_logged_daemon { script = path } -- -p 0
      H.write_file(path, zen("B", 2, { fields = "listen = { 0 }" }))
      assert.is_true(d:signal("HUP"))
      local line, before = d:wait_line("^reactord: reload")
      assert.matches(reloaded_line(path, 2, 0), line)
      assert.are.equal(1, #before, "a `listening on` line before the reload line")
      local port = tonumber(before[1]:match("^reactord: listening on 127%.0%.0%.1:(%d+)$"))
      assert.is_number(port)
      assert.are_not.equal(d.port, port)
      local e = assert(H.connect(port))
      socks[#socks + 1] = e
      assert_asks(e, "extra", "B", d)
    end)
  end)

  ------------------------------------------------------------------ 4
  describe("--watch", function()
    local dir, path

    before_each(function()
      dir = H.tmpdir()
      path = dir .. "/zen.lua"
    end)

    it("reloads on an editor-style save (write a temp file, rename it over the script)", function()
      H.write_file(path, zen("A", 1))
      d = H.start_logged_daemon { script = path, args = { "--watch" } }
      connect(1)
      local s = socks[1]
      assert_asks(s, "one", "A", d)
      H.save_by_rename(path, zen("B", 2))
      local line, skipped = d:wait_line("^reactord: reload")
      assert.are.same({}, skipped)
      assert.matches(reloaded_line(path, 2, 1), line)
      assert_asks(s, "two", "B", d)
      -- and it is still watching (the renamed-over file is a new inode)
      H.save_by_rename(path, zen("C", 3))
      assert.matches(reloaded_line(path, 3, 1), (d:wait_line("^reactord: reload")))
      assert_asks(s, "three", "C", d)
    end)

    it("reloads when a module the script requires is saved", function()
      local helper = dir .. "/whelper.lua"
      H.write_file(helper, 'return { letter = "A" }\n')
      H.write_file(path, zen(nil, 1, { extra = 'local helper = require "whelper"', answer = "helper.letter" }))
      d = H.start_logged_daemon { script = path, args = { "--watch" } }
      connect(1)
      assert_asks(socks[1], "one", "A", d)
      H.save_by_rename(helper, 'return { letter = "B" }\n')
      assert.matches(reloaded_line(path, 2, 1), (d:wait_line("^reactord: reload")))
      assert_asks(socks[1], "two", "B", d)
    end)

    it("a burst of saves is one reload, of the last version", function()
      -- The daemon is stopped (SIGSTOP) while the five saves are made, so all
      -- of their inotify events are queued before it reads any: the burst is
      -- a burst whatever the scheduling. Then SIGCONT.
      H.write_file(path, zen("A", 1, { mark_delay = 0.3 }))
      d = H.start_logged_daemon { script = path, args = { "--watch" } }
      connect(1)
      local s = socks[1]
      assert_asks(s, "before", "A", d)
      assert.is_true(d:signal("STOP"))
      local state
      for _ = 1, 1000 do -- the stop is asynchronous: observe it in /proc
        state = d:proc_state()
        if state == "T" or state == "t" then break end
      end
      assert.matches("^[Tt]$", tostring(state))
      for i, l in ipairs { "B", "C", "D", "E", "F" } do
        H.save_by_rename(path, zen(l, 1 + i, { mark_delay = 0.3 }))
      end
      assert.is_true(d:signal("CONT"))
      local line, skipped = d:wait_line("^reactord: reload")
      assert.are.same({}, skipped)
      assert.matches(reloaded_line(path, 2, 1), line)
      assert_asks(s, "after", "F", d)
      -- barrier: a marker the daemon prints from a 0.3 s timer, started
      -- after the reload; a second reload of this burst (the settle timer
      -- is 0.05 s) would be logged before it
      local before = barrier(d, s, "burst")
      assert.are.same({}, before)
      assert.are.equal(1, count(d.log, RELOADED))
      assert.are.equal(0, count(d.log, FAILED))
      assert_asks(s, "last", "F", d)
    end)

    it("a broken save is reported once, keeps the old code, and the next save recovers", function()
      H.write_file(path, zen("A", 1, { mark_delay = 0.3 }))
      d = H.start_logged_daemon { script = path, args = { "--watch" } }
      connect(1)
      local s = socks[1]
      assert_asks(s, "before", "A", d)
      local broken = "-- revision 2\nreturn {\n"
      H.save_by_rename(path, broken)
      local line, skipped = d:wait_line("^reactord: reload")
      assert.are.same({}, skipped)
      assert.matches(FAILED .. "1: " .. lit(path .. ":3:") .. " .+$", line)
      assert_asks(s, "still", "A", d)
      -- barrier: a marker printed from a 0.3 s daemon timer started after
      -- the failure; the file has not changed since, so no other reload
      -- attempt may be logged before it
      local before = barrier(d, s, "broken")
      assert.are.same({}, before, "lines logged after the failed reload, with no new save")
      H.save_by_rename(path, zen("B", 3, { mark_delay = 0.3 }))
      local ok = d:wait_line(RELOADED)
      assert.matches(reloaded_line(path, 2, 1), ok)
      assert_asks(s, "fixed", "B", d)
      assert.are.equal(1, count(d.log, FAILED))
    end)
  end)
end)
