-- examples/chat.lua and examples/chat_client.lua (seed 001's select chat
-- room and its client), run as a user runs them. The room's assertions run
-- twice, over two ways in (issue 10's parity check for reactor.testing):
--   - the real daemon on loopback, port 0; members are raw sockets speaking
--     the frames (a 4-byte big-endian length, then the text);
--   - in this process, examples/chat.lua's factory under testing.pair, each
--     member an Int32StringReceiver on the real C transport over a
--     socketpair, with the daemon's addresses (127.0.0.1).
-- The interactive client is a lua5.4 program whose stdin is a pipe the spec
-- writes to and whose stdout it reads.
local H = require "spec.helpers"

local function frame(s) return (">s4"):pack(s) end

-- the next frame from `sock` (its text), or nil, err
local function recv(sock)
  local head, err = sock:receive(4)
  if not head then return nil, err end
  local n = (">I4"):unpack(head)
  if n == 0 then return "" end
  return sock:receive(n)
end

local function send(sock, s) assert(H.send_all(sock, frame(s))) end

-- connect and say the name -> the socket and the room's answer
local function join(port, name)
  local s = assert(H.connect(port))
  send(s, "NAME: " .. name)
  return s, recv(s)
end

--{=====================================================================
-- Two ways into a room. room.connect() -> a member: send(text), recv() ->
-- the next frame's text (nil, why if none comes), close(), sees_eof(),
-- port() (its own port, as the room sees it), stop_reading() (it never reads
-- again); room.wait_line(p) -> the room's first line of output (its stdout
-- and the reactor's log records, in order) matching p, and the lines before
-- it; room.log_prefix: what the reactor's records begin with there;
-- room.stop() -> exit status
--======================================================================

local daemon = { name = "the daemon over loopback" }

function daemon.start(opts)
  local d = ((opts or {}).logged and H.start_logged_daemon or H.start_daemon) { script = "examples/chat.lua" }
  local room = { log_prefix = "reactord: " }
  function room.connect()
    local s = assert(H.connect(d.port))
    return {
      send = function(text) send(s, text) end,
      recv = function() return recv(s) end,
      close = function() s:close() end,
      sees_eof = function() return H.sees_eof(s) end,
      port = function() return tonumber((select(2, s:getsockname()))) end,
      stop_reading = function() end, -- a raw socket reads only when asked
    }
  end
  function room.wait_line(pattern) return d:wait_line(pattern) end
  function room.stop() return (d:stop()) end
  return room
end

local inproc = { name = "testing.pair in-process" }

function inproc.start()
  local reactor = require "reactor"
  local testing = require "reactor.testing"
  -- the script as the daemon loads it, with its stdout kept for wait_line,
  -- and the reactor's log records in the same list, in order
  local out = {}
  reactor.core._testing()._log(out)
  local stdout = {}
  function stdout.write(self, ...)
    for _, v in ipairs { ... } do out[#out + 1] = tostring(v) end
    return self
  end
  function stdout.flush(self) return self end
  local env = setmetatable({ io = setmetatable({ stdout = stdout }, { __index = io }) }, { __index = _G })
  local factory = assert(loadfile("examples/chat.lua", "t", env))()
  local Member = reactor.Int32StringReceiver:extend()
  function Member:connectionMade() self.frames = {} end
  function Member:stringReceived(text) self.frames[#self.frames + 1] = text end
  function Member:connectionLost(reason) self.lost = reason end
  local room = { log_prefix = "" }
  function room.connect()
    local client, _, pump = testing.pair(factory, Member)
    return {
      send = function(text) client:sendString(text) end,
      recv = function()
        pump:flush()
        if #client.frames == 0 then return nil, "nothing came (the room is quiet)" end
        return table.remove(client.frames, 1)
      end,
      close = function() client.transport:loseConnection(); pump:flush() end,
      sees_eof = function() pump:flush(); return client.lost ~= nil end,
      port = function() return client.transport:getHost().port end,
      stop_reading = function() client.transport:pauseReading() end,
    }
  end
  function room.wait_line(pattern)
    testing.flush()
    local lines = {}
    for _, piece in ipairs(out) do
      for _, l in ipairs(H.lines(piece)) do lines[#lines + 1] = l end
    end
    for i, l in ipairs(lines) do
      if l:find(pattern) then return l, { table.unpack(lines, 1, i - 1) } end
    end
    return nil, "no such line", lines
  end
  function room.stop()
    reactor.core.abortAll()
    testing.flush()
    reactor.core._testing()._log(nil)
    H.assert_clean()
    return 0
  end
  return room
end

local function joined(room, name)
  local m = room.connect()
  m.send("NAME: " .. name)
  return m, m.recv()
end

for _, way in ipairs { daemon, inproc } do
  describe("examples/chat.lua, " .. way.name, function()
    after_each(H.cleanup)

    it("answers a name with the client's address and tells the others who came (N = members)", function()
      local room = way.start()
      local a, answer = joined(room, "alice")
      assert.are.equal("CLIENT: 127.0.0.1", answer)
      local b, banswer = joined(room, "bob")
      assert.are.equal("CLIENT: 127.0.0.1", banswer)
      assert.are.equal("\n(Connected: New client (2) from bob@127.0.0.1)", a.recv())
      local c = joined(room, "carol")
      assert.are.equal("\n(Connected: New client (3) from carol@127.0.0.1)", a.recv())
      assert.are.equal("\n(Connected: New client (3) from carol@127.0.0.1)", b.recv())
      for _, m in ipairs { a, b, c } do m.close() end
      assert.are.equal(0, room.stop())
    end)

    it("relays a message to every other member, never to its sender, and says who left", function()
      local room = way.start()
      local a = joined(room, "alice")
      local b = joined(room, "bob")
      a.recv() -- bob came
      local c = joined(room, "carol")
      a.recv(); b.recv() -- carol came
      a.send("hi")
      assert.are.equal("\n#[alice@127.0.0.1]>>hi", b.recv())
      assert.are.equal("\n#[alice@127.0.0.1]>>hi", c.recv())
      b.send("") -- nothing to say: not relayed
      b.send("héllo, ünïcode")
      -- alice's next frame is bob's: no echo of her "hi", nothing for the empty frame
      assert.are.equal("\n#[bob@127.0.0.1]>>héllo, ünïcode", a.recv())
      assert.are.equal("\n#[bob@127.0.0.1]>>héllo, ünïcode", c.recv())
      c.close()
      assert.are.equal("\n(Now hung up: Client from carol@127.0.0.1)", a.recv())
      assert.are.equal("\n(Now hung up: Client from carol@127.0.0.1)", b.recv())
      -- the count follows the members: alice and bob, and now dave
      local e = joined(room, "dave")
      assert.are.equal("\n(Connected: New client (3) from dave@127.0.0.1)", a.recv())
      assert.are.equal("\n(Connected: New client (3) from dave@127.0.0.1)", b.recv())
      e.send("bye")
      assert.are.equal("\n#[dave@127.0.0.1]>>bye", a.recv())
      assert.are.equal("\n#[dave@127.0.0.1]>>bye", b.recv())
      e.close()
      assert.are.equal("\n(Now hung up: Client from dave@127.0.0.1)", a.recv())
      assert.are.equal("\n(Now hung up: Client from dave@127.0.0.1)", b.recv())
      a.close()
      assert.are.equal("\n(Now hung up: Client from alice@127.0.0.1)", b.recv())
      b.close()
      assert.are.equal(0, room.stop())
    end)

    it("never echoes to the sender: its next frame is someone else's", function()
      local room = way.start()
      local a = joined(room, "alice")
      local b = joined(room, "bob")
      a.recv() -- bob came
      for n = 1, 5 do a.send("from alice " .. n) end
      for n = 1, 5 do assert.are.equal("\n#[alice@127.0.0.1]>>from alice " .. n, b.recv()) end
      b.send("from bob")
      assert.are.equal("\n#[bob@127.0.0.1]>>from bob", a.recv()) -- not one of her own five
      a.close(); b.close()
      assert.are.equal(0, room.stop())
    end)

    it("refuses a frame before NAME, an empty, an over-long or a control-character name: ERROR, then closed", function()
      local room = way.start()
      local a = joined(room, "alice")
      local HINT = ' (the first frame must be "NAME: <name>", a name of 1 to 32 bytes)'
      local cases = {
        { "hello", "ERROR: say your name first" .. HINT },
        { "NAME: ", "ERROR: the name is empty" .. HINT },
        { "NAME: " .. ("x"):rep(33), "ERROR: the name is 33 bytes; at most 32" .. HINT },
        { "NAME: eve\n#[alice@127.0.0.1]>>", "ERROR: the name must be UTF-8 text without control characters" .. HINT },
        { "NAME: \255\254", "ERROR: the name must be UTF-8 text without control characters" .. HINT },
      }
      for _, case in ipairs(cases) do
        local m = room.connect()
        m.send(case[1])
        assert.are.equal(case[2], m.recv())
        assert.is_true(m.sees_eof())
        m.close()
      end
      -- a name of exactly 32 bytes is fine, and the room heard of nobody else
      local b, answer = joined(room, ("x"):rep(32))
      assert.are.equal("CLIENT: 127.0.0.1", answer)
      assert.are.equal("\n(Connected: New client (2) from " .. ("x"):rep(32) .. "@127.0.0.1)", a.recv())
      a.close(); b.close()
      assert.are.equal(0, room.stop())
    end)

    it("drops a member that never reads once 256 KiB are queued for it (logged); the others go on chatting", function()
      local room = way.start { logged = true }
      local talker = joined(room, "talker")
      local watcher = joined(room, "watcher")
      talker.recv() -- watcher came
      local slow = room.connect()
      slow.send("NAME: slow") -- and never reads a byte from here on
      slow.stop_reading()
      local slowport = slow.port()
      assert.are.equal("\n(Connected: New client (3) from slow@127.0.0.1)", talker.recv())
      assert.are.equal("\n(Connected: New client (3) from slow@127.0.0.1)", watcher.recv())
      local msg = ("m"):rep(16 * 1024)
      local relayed = "\n#[talker@127.0.0.1]>>" .. msg
      local MAX = 2000 -- 32 MiB: far past the cap and any socket buffers
      local NOTICE = "\n(Now hung up: Client from slow@127.0.0.1)"
      local sent, dropped = 0, false
      while sent < MAX and not dropped do
        talker.send(msg)
        sent = sent + 1
        -- the room never waits for slow: each message reaches the watcher; the
        -- notice comes right behind the message that passed slow's cap, so it
        -- is the frame before this message's
        local f = watcher.recv()
        if f == NOTICE then
          dropped = true
          f = watcher.recv()
        end
        assert.are.equal(relayed, f)
      end
      assert.is_true(dropped, "slow was never dropped after " .. sent .. " messages")
      if os.getenv("CHAT_SPEC_VERBOSE") then io.stderr:write("slow dropped after ", sent, " messages of 16 KiB\n") end
      -- the core logs why, then the room's connectionLost prints the hang-up
      -- (read in that order: the log is in the same pipe, written first)
      local line, before = room.wait_line(("^Chat server: 127%%.0%%.0%%.1:%d hung up"):format(slowport))
      assert.are.equal(("Chat server: 127.0.0.1:%d hung up (aborted)"):format(slowport), line)
      assert.are.equal(("%saborted 127.0.0.1:%d: more than 262144 bytes of output queued for a peer that does not read")
        :format(room.log_prefix, slowport), before[#before])
      -- the rest of the room goes on: two members, and a newcomer counts 3
      talker.send("still here?")
      assert.are.equal("\n#[talker@127.0.0.1]>>still here?", watcher.recv())
      local n = joined(room, "newcomer")
      assert.are.equal("\n(Connected: New client (3) from newcomer@127.0.0.1)", watcher.recv())
      for _, m in ipairs { slow, talker, watcher, n } do m.close() end
      assert.are.equal(0, room.stop())
    end)
  end)
end

describe("examples/chat.lua", function()
  after_each(H.cleanup)

  it("serves on the seed's port 8800 when the command line names none", function()
    local code, out = H.run_daemon { "--check", "examples/chat.lua" }
    assert.are.equal(0, code)
    assert.are.equal("reactord: examples/chat.lua: ok\n", out)
    assert.matches("port = 8800", H.read_file("examples/chat.lua"), 1, true)
  end)
end)

-- examples/chat_client.lua with its stdin a FIFO the spec writes to, line by
-- line, and its stdout a pipe the spec reads exactly as many bytes as it
-- expects (blocking; the client runs under `timeout`, so a read cannot hang)
local function start_client(...)
  local fifo = H.tmpdir() .. "/stdin"
  assert(os.execute("mkfifo " .. H.quote(fifo)))
  local errf = H.tmpname()
  local args = { "timeout", "20", "lua5.4", "examples/chat_client.lua", ... }
  for i, a in ipairs(args) do args[i] = H.quote(a) end
  local out = assert(io.popen(table.concat(args, " ") .. " <" .. H.quote(fifo) .. " 2>" .. H.quote(errf), "r"))
  local inp = assert(io.open(fifo, "w")) -- meets the shell opening it to read
  local cl = { out = out, inp = inp, errf = errf }
  function cl.type(line) assert(inp:write(line)); assert(inp:flush()) end
  function cl.expect(text) assert.are.equal(text, out:read(#text)) end
  -- end stdin; -> exit code, the rest of stdout, stderr
  function cl.finish()
    if io.type(inp) == "file" then inp:close() end
    local rest = out:read("a")
    local _, _, code = out:close()
    return code, rest, H.read_file(errf)
  end
  return cl
end

-- the client with `input` (a file) on its stdin -> exit code, stdout, stderr
local function run_client(input, ...)
  local inf, errf = H.tmpname(), H.tmpname()
  H.write_file(inf, input)
  local args = { "timeout", "20", "lua5.4", "examples/chat_client.lua", ... }
  for i, a in ipairs(args) do args[i] = H.quote(a) end
  local p = io.popen(table.concat(args, " ") .. " <" .. H.quote(inf) .. " 2>" .. H.quote(errf))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, H.read_file(errf)
end

describe("examples/chat_client.lua", function()
  after_each(function() H.cleanup(); H.remove_tmpdirs() end)

  it("joins as NAME, prompts '[NAME@address]> ', sends what is typed and prints what the room says", function()
    local d = H.start_daemon { script = "examples/chat.lua" }
    local a = join(d.port, "alice")
    local PROMPT = "[carol@127.0.0.1]> "
    local cl = start_client("-p", d.port, "carol")
    cl.expect("Now connected to chat server@ port " .. d.port .. "\n" .. PROMPT)
    assert.are.equal("\n(Connected: New client (2) from carol@127.0.0.1)", recv(a))
    cl.type("  hi there  \n") -- stripped, as the seed's readline().strip()
    assert.are.equal("\n#[carol@127.0.0.1]>>hi there", recv(a))
    cl.expect(PROMPT)
    cl.type("\n") -- nothing to send: only the prompt again
    cl.expect(PROMPT)
    send(a, "hello carol")
    cl.expect("\n#[alice@127.0.0.1]>>hello carol\n" .. PROMPT)
    local b = join(d.port, "bob")
    cl.expect("\n(Connected: New client (3) from bob@127.0.0.1)\n" .. PROMPT)
    assert.are.equal("\n(Connected: New client (3) from bob@127.0.0.1)", recv(a))
    local code, rest, err = cl.finish() -- the end of stdin leaves the room
    assert.are.equal("\n(Now hung up: Client from carol@127.0.0.1)", recv(a))
    assert.are.equal("\n(Now hung up: Client from carol@127.0.0.1)", recv(b))
    assert.are.equal(0, code, err)
    assert.are.equal("", rest)
    assert.are.equal("", err)
    a:close(); b:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("sends lines piped in before the room answered, in order, then leaves at the end of stdin", function()
    local d = H.start_daemon { script = "examples/chat.lua" }
    local a = join(d.port, "alice")
    local code, out, err = run_client("one\n\ntwo", "-p", d.port, "dave", "127.0.0.1")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    local P = "[dave@127.0.0.1]> "
    assert.are.equal("Now connected to chat server@ port " .. d.port .. "\n" .. P .. P .. P .. P, out)
    assert.are.equal("\n(Connected: New client (2) from dave@127.0.0.1)", recv(a))
    assert.are.equal("\n#[dave@127.0.0.1]>>one", recv(a))
    assert.are.equal("\n#[dave@127.0.0.1]>>two", recv(a))
    assert.are.equal("\n(Now hung up: Client from dave@127.0.0.1)", recv(a))
    a:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("says why when the room closes (the daemon stops), and exits 1", function()
    local d = H.start_daemon { script = "examples/chat.lua" }
    local PROMPT = "[carol@127.0.0.1]> "
    local cl = start_client("-p", d.port, "carol")
    cl.expect("Now connected to chat server@ port " .. d.port .. "\n" .. PROMPT)
    assert.are.equal(0, (d:stop())) -- SIGTERM: the room closes every member
    assert.is_nil(d:stderr():find("grace period over", 1, true), d:stderr()) -- at once, not aborted
    local code, rest, err = cl.finish()
    assert.are.equal(1, code)
    assert.are.equal("\n", rest)
    assert.are.equal("chat_client: the room closed the connection (done)\n", err)
  end)

  it("says why when the room refuses the name, and exits 1", function()
    local d = H.start_daemon { script = "examples/chat.lua" }
    local code, out, err = run_client("", "-p", d.port, ("x"):rep(33))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("chat_client: the room refused the name: the name is 33 bytes; at most 32"
      .. ' (the first frame must be "NAME: <name>", a name of 1 to 32 bytes)\n', err)
    assert.are.equal(0, (d:stop()))
  end)

  it("says why when nobody listens, and exits 1", function()
    local code, out, err = run_client("hello\n", "-p", "1", "alice")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("chat_client: cannot connect to 127.0.0.1:1: ECONNREFUSED: connection refused\n", err)
  end)

  it("asks for NAME, and rejects a bad flag, with a usage line (exit 2)", function()
    local USAGE = "usage: chat_client.lua [-p PORT] NAME [HOST]\n"
    local code, _, err = run_client("", "-p", "8800")
    assert.are.equal(2, code)
    assert.are.equal("chat_client: NAME is missing\n" .. USAGE, err)
    code, _, err = run_client("", "--name=alice")
    assert.are.equal(2, code)
    assert.are.equal("chat_client: unknown option --name=alice\n" .. USAGE, err)
  end)
end)
