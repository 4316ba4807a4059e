-- Hostile peers and hostile scripts against the real daemon: a peer that
-- never reads, a pipelining peer that never reads, endless and random bytes,
-- slowloris, 10,000 idle connections, a connect+reset flood, descriptor
-- exhaustion (`ulimit -n 64`), a callback that never returns, one that eats
-- memory. In every case: the daemon stays up, stays small, serves the others.
--
-- No sleeps: waits are blocking reads with deadlines (socket timeouts), and
-- order is learnt from what the daemon sends (a watcher connection is told
-- when another one is lost; a log line is flushed before the connection it
-- is about is closed). Every daemon runs under `timeout` (spec.helpers).

local H = require "spec.helpers"
local socket = require "socket"

local MiB = 1024 * 1024
local RSS_LIMIT_MB = 200 -- what "stays bounded" means here (the daemon idles at a few MiB)

local Q1, A1 = "Beautiful is better than?", "Ugly."
local Q2, A2 = "Explicit is better than?", "Implicit."
local Q3, A3 = "Simple is better than?", "Complex."
local UNKNOWN = "Error: unknown zphorism"

-- ask on `sock`, return what came back (or "<err> partial")
local function ask(sock, q, a)
  local ok, err = H.send_all(sock, q)
  if not ok then return "<send: " .. tostring(err) .. ">" end
  local got, rerr, partial = H.read_exact(sock, #a)
  return got or ("<" .. tostring(rerr) .. "> " .. tostring(partial))
end

-- a fresh client is answered
local function assert_serves(d, why)
  local s = assert(H.connect(d.port))
  local got = ask(s, Q3, A3)
  s:close()
  assert.are.equal(A3, got, (why or "a new client") .. "; daemon stderr:\n" .. d:stderr())
end

local count = H.count

describe("the daemon under hostile clients", function()
  local d

  before_each(function() d = nil end)

  after_each(function()
    -- every test ends with a clean SIGTERM shutdown: exit 0
    if not d then return H.cleanup() end
    local code, how = d:stop("TERM")
    local err = d:stderr()
    H.cleanup()
    assert.are.equal("exit 0", tostring(how) .. " " .. tostring(code), "daemon stderr:\n" .. err)
  end)

  describe("a peer that never reads", function()
    -- `flood` writes 1 MiB per tick (at most 1024 ticks = 1 GiB) and ignores
    -- pauseProducing; `watch` connections are told when a flooder is lost.
    local HOG = [[
local reactor = require "reactor"
local MIB = string.rep("x", 1024 * 1024)
local Hog = {}
function Hog:dataReceived(data)
  if data:find("watch", 1, true) then
    self.factory.watchers[self] = true
    self.transport:write("watching\n")
  elseif data:find("flood", 1, true) and not self.lc then
    self.flooding, self.ticks, self.pauses = true, 0, 0
    self.lc = reactor.LoopingCall(function()
      self.ticks = self.ticks + 1
      self.transport:write(MIB)
      if self.ticks >= 1024 then
        self.lc:stop()
        self.transport:loseConnection()
      end
    end)
    self.lc:start(0.001)
  elseif data:find("ping", 1, true) then
    self.transport:write("pong\n")
  end
end
function Hog:pauseProducing() self.pauses = (self.pauses or 0) + 1 end
function Hog:connectionLost(reason)
  self.factory.watchers[self] = nil
  if self.lc and self.lc.running then self.lc:stop() end
  if self.flooding then
    local line = ("flooder lost: %s after %d MiB, %d pause(s): %s\n")
      :format(reason.type, self.ticks, self.pauses, reason.message)
    for w in pairs(self.factory.watchers) do w.transport:write(line) end
  end
end
return { protocol = Hog, watchers = {} }
]]

    it("is aborted at the output cap while the script writes 1 GiB; memory stays bounded; others are served", function()
      d = H.start_daemon { script = H.write_script(HOG) }
      local w = assert(H.connect(d.port, nil, 30))
      assert(H.send_all(w, "watch"))
      assert.are.equal("watching", w:receive("*l"))
      local f = assert(H.connect(d.port))
      local fport = tonumber((select(2, f:getsockname())))
      assert(H.send_all(f, "flood")) -- and never read
      local line, err = w:receive("*l") -- the flooder's end, with a deadline
      assert(line, "no news of the flooder: " .. tostring(err) .. "; daemon stderr:\n" .. d:stderr())
      local kind, mib, pauses, message = line:match("^flooder lost: (%a+) after (%d+) MiB, (%d+) pause%(s%): (.*)$")
      assert(kind, line)
      assert.are.equal("aborted", kind, line)
      assert.matches("output buffer limit exceeded", message, 1, true)
      assert.is_true(tonumber(mib) < 1024, line)
      assert.matches(("reactord: aborted 127.0.0.1:%d: more than 4194304 bytes of output queued for a peer that does not read")
        :format(fport), d:stderr(), 1, true)
      local peak = H.peak_rss_mb(d.pid)
      assert.is_true(peak < RSS_LIMIT_MB, ("peak RSS %.1f MiB"):format(peak))
      -- the watcher and a new client are served
      assert(H.send_all(w, "ping"))
      assert.are.equal("pong", w:receive("*l"))
      local n = assert(H.connect(d.port))
      assert(H.send_all(n, "ping"))
      assert.are.equal("pong", n:receive("*l"))
      n:close()
      w:close()
      f:close()
      -- the script was told (at each crossing of the high mark: the kernel
      -- took the first MiBs), and chose to ignore it
      assert.is_true(tonumber(pauses) >= 1, "pauseProducing calls: " .. line)
    end)

    it("pipelining zen questions without reading: the daemon stops reading it, stays small, serves others", function()
      d = H.start_daemon { script = "examples/zen.lua" }
      local c = assert(H.connect(d.port))
      local chunk = Q1:rep(2621) -- ~64 KiB of whole questions
      local sent, why = H.send_until_stalled(c, chunk, 256 * MiB, 1)
      -- the daemon took its fill, then stopped reading this peer (it was
      -- not aborted: the send would have failed)
      assert.are.equal("stalled", why, ("after %d bytes; daemon stderr:\n%s"):format(sent, d:stderr()))
      assert.is_true(H.rss_mb(d.pid) < RSS_LIMIT_MB, ("RSS %.1f MiB"):format(H.rss_mb(d.pid)))
      assert_serves(d, "a client next to the stalled one")
      -- now read: every question sent is answered, in order, none lost
      local n = sent // #Q1
      c:settimeout(H.SOCKET_TIMEOUT)
      local got, err, partial = c:receive(n * #A1)
      got = got or partial
      assert.are.equal(n * #A1, #got, tostring(err))
      assert.is_true(got == A1:rep(n), "answers differ")
      -- and the connection still works: finish the question cut in the middle
      local rest = #Q1 - sent % #Q1
      assert.are.equal(A1, ask(c, Q1:sub(-rest), A1))
      c:close()
      assert.is_true(H.peak_rss_mb(d.pid) < RSS_LIMIT_MB, ("peak RSS %.1f MiB"):format(H.peak_rss_mb(d.pid)))
      assert.is_nil(d:stderr():find("aborted", 1, true), d:stderr())
    end)
  end)

  describe("zen and junk", function()
    before_each(function()
      d = H.start_daemon { script = "examples/zen.lua" }
    end)

    it("endless bytes without a '?' are cut off with 'Error: question too long', then EOF", function()
      local s = assert(H.connect(d.port))
      local chunk = string.rep("x", 4096)
      local sent = 0
      local serr
      for _ = 1, 64 * 1024 do -- at most 256 MiB
        local ok, err = s:send(chunk)
        if not ok then
          serr = err
          break
        end
        sent = sent + #chunk
      end
      assert.is_truthy(serr, "the daemon took 256 MiB of one question")
      local got, why = H.read_to_eof(s)
      s:close()
      assert.are.equal("Error: question too long", got)
      assert.is_true(why == "closed" or why == "connection reset by peer", why)
      assert_serves(d)
    end)

    it("random bytes get one error per '?' and leave the connection usable", function()
      -- a fixed seed: the same bytes every run; a '?' at least every 4000
      -- bytes so no question passes MAX_LENGTH (4096)
      math.randomseed(20240611)
      local bytes, run = {}, 0
      for i = 1, 256 * 1024 do
        local b = math.random(0, 255)
        run = b == 63 and 0 or run + 1
        if run >= 4000 then
          b, run = 63, 0
        end
        bytes[i] = string.char(b)
      end
      local junk = table.concat(bytes) .. "?" -- ends the last question
      local questions = count(junk, "?")
      local s = assert(H.connect(d.port))
      local i = 1
      for _ = 1, #junk do -- pieces of random sizes
        if i > #junk then break end
        local n = math.random(1, 4096)
        assert(H.send_all(s, junk:sub(i, i + n - 1)))
        i = i + n
      end
      local want = UNKNOWN:rep(questions)
      local got, err, partial = s:receive(#want)
      got = got or partial
      assert.are.equal(#want, #got, tostring(err))
      assert.is_true(got == want, "answers differ")
      assert.are.equal(A2, ask(s, Q2, A2))
      s:close()
      assert_serves(d)
    end)

    it("a flood of connect + reset (SO_LINGER 0) leaks nothing and the next client is served", function()
      local c = assert(H.connect(d.port))
      assert.are.equal(A1, ask(c, Q1, A1))
      local fds_before = H.fd_count(d.pid)
      for i = 1, 2000 do
        local s = assert(H.connect(d.port))
        if i % 2 == 0 then assert(H.send_all(s, "Beautiful is")) end -- half a question
        assert(s:setoption("linger", { on = true, timeout = 0 }))
        s:close() -- RST
      end
      -- two round trips: the daemon has handled every reset before the second
      assert.are.equal(A2, ask(c, Q2, A2))
      assert.are.equal(A3, ask(c, Q3, A3))
      assert.are.equal(fds_before, H.fd_count(d.pid), "the daemon's descriptors")
      c:close()
      assert_serves(d)
      assert.is_nil(d:stderr():find("error", 1, true), d:stderr())
    end)
  end)

  it("slowloris: with --idle-timeout 1 silent and half-sent connections are closed (EOF)", function()
    d = H.start_daemon { script = "examples/zen.lua", args = { "--idle-timeout", "1" } }
    local slow = {}
    for i = 1, 20 do
      slow[i] = assert(H.connect(d.port))
      if i % 2 == 0 then assert(H.send_all(slow[i], "Beautiful is bet")) end -- and then nothing
    end
    local c = assert(H.connect(d.port))
    assert.are.equal(A1, ask(c, Q1, A1)) -- a live client is served meanwhile
    for i = 1, 20 do
      local got, why = H.read_to_eof(slow[i]) -- deadline: the socket timeout
      slow[i]:close()
      assert.are.equal("", got, "slow client " .. i)
      assert.are.equal("closed", why, "slow client " .. i)
    end
    c:close()
    assert_serves(d)
  end)

  it("holds 10,000 idle connections and answers each of them", function()
    local want = 10000
    local soft = H.nofile_limits()
    -- this process needs one descriptor per connection, plus a few
    local n = math.min(want, soft - 200)
    if n < 100 then
      pending(("needs more open files than this process may have (ulimit -n %s)"):format(tostring(soft)))
      return
    end
    if n < want then -- the largest this process can hold (raise `ulimit -n` for 10,000)
      io.stderr:write(("\nhostile_spec: %d idle connections (this process's open-file limit is %d), not %d\n")
        :format(n, soft, want))
    end
    d = H.start_daemon_ulimit(n + 100, { script = "examples/zen.lua" })
    local socks = {}
    local ok, err = pcall(function()
      for i = 1, n do
        socks[i] = assert(H.connect(d.port))
      end
      assert.is_true(H.rss_mb(d.pid) < RSS_LIMIT_MB, ("RSS %.1f MiB with %d connections"):format(H.rss_mb(d.pid), n))
      assert_serves(d, "a client next to " .. n .. " idle ones")
      -- every one of them is alive: ask all, then read all
      for i = 1, n do assert(H.send_all(socks[i], Q1)) end
      for i = 1, n do
        local got, e = H.read_exact(socks[i], #A1)
        if got ~= A1 then -- the first wrong one fails the test (no wait per socket)
          assert.are.equal(A1, got, "connection " .. i .. " of " .. n .. ": " .. tostring(e))
        end
      end
    end)
    for i = 1, #socks do socks[i]:close() end
    assert(ok, err)
    assert_serves(d, "a client after " .. n .. " left")
  end)

  it("with ulimit -n 64 and 200 clients: refuses the excess, does not spin, serves again once they leave", function()
    d = H.start_daemon_ulimit(64, { script = "examples/zen.lua" })
    local socks, served, refused = {}, {}, 0
    for i = 1, 200 do
      socks[i] = assert(H.connect(d.port)) -- the kernel completes it; the daemon decides
    end
    for i = 1, 200 do
      local s = socks[i]
      local got = ask(s, Q1, A1)
      if got == A1 then
        served[#served + 1] = s
      else
        -- turned away: EOF or reset, never a hang (the first timeout fails the test)
        assert.is_truthy(got:match("^<closed>") or got:match("^<connection reset by peer>")
          or got:match("^<send: "), "client " .. i .. ": " .. got .. "; daemon stderr:\n" .. d:stderr())
        refused = refused + 1
        s:close()
      end
    end
    assert.is_true(#served >= 1, "none served")
    assert.is_true(refused >= 1, "none refused: the limit did not bite")
    assert.are.equal(200, #served + refused)
    -- while the clients it holds wait, the daemon does not spin on its full
    -- descriptor table: one more client is turned away, then a 1 s wait
    local extra = assert(H.connect(d.port))
    local eof = H.sees_eof(extra)
    extra:close()
    assert.is_true(eof, "a client over the limit is closed")
    local cpu0, t0 = H.cpu_seconds(d.pid), socket.gettime()
    served[1]:settimeout(1)
    local data, err = served[1]:receive(1) -- nothing comes: a 1 s deadline
    local cpu, wall = H.cpu_seconds(d.pid) - cpu0, socket.gettime() - t0
    served[1]:settimeout(H.SOCKET_TIMEOUT)
    assert.is_nil(data)
    assert.are.equal("timeout", err)
    assert.is_true(cpu < 0.25 * wall, ("daemon used %.2f s CPU in %.2f s"):format(cpu, wall))
    -- all but one leave; a round trip on that one lets the daemon see the others go
    for i = 2, #served do served[i]:close() end
    assert.are.equal(A2, ask(served[1], Q2, A2))
    local answered, tries = nil, 0
    for _ = 1, 20 do
      tries = tries + 1
      local s = assert(H.connect(d.port))
      answered = ask(s, Q3, A3)
      s:close()
      if answered == A3 then break end
    end
    served[1]:close()
    assert.are.equal(A3, answered, "after " .. tries .. " tries; daemon stderr:\n" .. d:stderr())
    assert.are.equal(1, tries)
  end)

  describe("hostile scripts", function()
    local GUARD = [[
local reactor = require "reactor"
local P = {}
function P:dataReceived(data)
  if data:find("cowrapspin", 1, true) then -- spinning inside a coroutine
    coroutine.wrap(function() while true do end end)()
  elseif data:find("coresumespin", 1, true) then -- resuming one forever
    local co = coroutine.create(function() while true do coroutine.yield() end end)
    while true do coroutine.resume(co) end
  elseif data:find("pcallspin", 1, true) then
    while true do pcall(function() while true do end end) end
  elseif data:find("spin", 1, true) then
    while true do end
  elseif data:find("eat", 1, true) then
    local t = {}
    for i = 1, 1e7 do t[i] = string.rep("x", 65536) .. i end -- 640 GiB: the limit comes first
  elseif data:find("mem", 1, true) then
    self.transport:write(reactor.core._stats().memory .. "\n")
  else
    self.transport:write("echo:" .. data .. "\n")
  end
end
function P:connectionLost(reason)
  io.stderr:write("lost ", reason.type, ": ", tostring(reason.message), "\n")
end
return { protocol = P }
]]

    local function echo(s, word)
      assert(H.send_all(s, word))
      return s:receive("*l")
    end

    it("a callback that loops forever (also inside pcall or a coroutine) is stopped; its connection closes; others are served", function()
      d = H.start_daemon { script = H.write_script(GUARD), args = { "--script-timeout", "0.5" } }
      local b = assert(H.connect(d.port))
      assert.are.equal("echo:hello", echo(b, "hello"))
      for round, cmd in ipairs { "spin", "pcallspin", "cowrapspin", "coresumespin" } do
        local a = assert(H.connect(d.port))
        assert(H.send_all(a, cmd))
        local got, why = H.read_to_eof(a) -- deadline: the socket timeout (10 s)
        a:close()
        assert.are.equal("", got)
        assert.is_true(why == "closed" or why == "connection reset by peer", why)
        -- the error is logged before the connection closes
        local err = d:stderr()
        assert.are.equal(round, count(err, "reactord: error in dataReceived: script timeout: a callback ran longer than"), err)
        assert.are.equal("echo:still " .. round, echo(b, "still " .. round))
        -- connectionLost ran by the time the daemon answered b
        err = d:stderr()
        assert.are.equal(round, count(err, "lost error: script timeout: a callback ran longer than"), err)
      end
      -- a spinner and a good client writing at once usually land in one
      -- batch of reads under one lua_pcall: the batch goes on after the stop
      local a = assert(H.connect(d.port))
      assert(H.send_all(a, "spin"))
      assert(H.send_all(b, "same batch"))
      assert.are.equal("echo:same batch", b:receive("*l"))
      local got = H.read_to_eof(a)
      a:close()
      assert.are.equal("", got)
      b:close()
      local n = assert(H.connect(d.port))
      assert.are.equal("echo:new", echo(n, "new"))
      n:close()
    end)

    it("a callback that allocates without bound fails with 'not enough memory'; Lua memory comes back", function()
      -- only the memory guard: under ASan the loop is slow enough to meet the time one first
      d = H.start_daemon { script = H.write_script(GUARD), args = { "--max-memory", "64", "--script-timeout", "0" } }
      local b = assert(H.connect(d.port))
      local before = tonumber(echo(b, "mem"))
      assert.is_truthy(before)
      local a = assert(H.connect(d.port))
      assert(H.send_all(a, "eat"))
      local got, why = H.read_to_eof(a)
      a:close()
      assert.are.equal("", got)
      assert.is_true(why == "closed" or why == "connection reset by peer", why)
      local err = d:stderr()
      assert.matches("reactord: error in dataReceived: not enough memory", err, 1, true)
      local after = tonumber(echo(b, "mem"))
      -- connectionLost ran by the time the daemon answered b
      assert.matches("lost error: not enough memory", d:stderr(), 1, true)
      assert.is_true(after < before + 4 * MiB, ("Lua memory %d bytes before, %d after"):format(before, after))
      assert.are.equal("echo:still here", echo(b, "still here"))
      b:close()
      local n = assert(H.connect(d.port))
      assert.are.equal("echo:new", echo(n, "new"))
      n:close()
    end)
  end)
end)
