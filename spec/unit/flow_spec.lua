-- In-process specs of the robustness features of the reactor module: flow
-- control (water marks, pauseProducing/resumeProducing, the hard output cap),
-- pauseReading/resumeReading, half-close (loseWriteConnection,
-- readConnectionLost), idle timeouts (setTimeout, timeoutConnection, the
-- listener's idleTimeout) and connection limits (maxConnections).
--
-- Same rules as reactor_spec.lua:
--  * callbacks only record what happened; assertions run after reactor.run()
--    returns;
--  * every reactor.run() is guarded by a 10 s deadline (H.run_loop);
--  * every loop in a test is bounded in count;
--  * no sleeps: order is learnt from the events themselves (a round trip on
--    a second connection, the peer's own callbacks);
--  * after every test reactor.core._stats() is back to zero.

local reactor = require "reactor"
local H = require "spec.helpers"

local KiB, MiB = 1024, 1024 * 1024

local stats = H.live

local track

local run_loop = H.run_loop

-- listenTCP on a free port of 127.0.0.1, with listener options
local function listen(factory, opts)
  opts = opts or {}
  opts.interface = opts.interface or "127.0.0.1"
  local l, msg, code = reactor.listenTCP(0, factory, opts)
  assert(l, tostring(msg) .. " " .. tostring(code))
  track.listeners[#track.listeners + 1] = l
  return l, l:getHost().port
end

local function remember(transport)
  track.transports[#track.transports + 1] = transport
end

local function looping(fn)
  local lc = reactor.LoopingCall(fn)
  track.loops[#track.loops + 1] = lc
  return lc
end

-- a client factory whose failures are recorded and stop the loop
local function connect(port, C, failed)
  local f = reactor.ClientFactory {
    protocol = C,
    clientConnectionFailed = function(_, _, reason)
      failed[#failed + 1] = reason
      reactor.stop()
    end,
  }
  return reactor.connectTCP("127.0.0.1", port, f)
end

-- call fn once, after the returned function has been called n times
local function countdown(n, fn)
  local left = n
  return function()
    left = left - 1
    if left == 0 then fn() end
  end
end

local function force_cleanup()
  for _, lc in ipairs(track.loops) do pcall(function() if lc.running then lc:stop() end end) end
  for _, l in ipairs(track.listeners) do pcall(l.stopListening, l) end
  for _, t in ipairs(track.transports) do pcall(t.abortConnection, t) end
  local n = 0
  local function poll()
    n = n + 1
    if stats().connections == 0 or n > 1000 then reactor.stop() else reactor.callLater(0, poll) end
  end
  reactor.callLater(0, poll)
  pcall(run_loop, 5)
end

-- 1 MiB of numbered lines, so a lost or reordered piece shows
local CHUNK
do
  local t = {}
  for i = 1, 1024 do t[i] = string.format("%10d", i) .. string.rep(".", 1013) .. "\n" end
  CHUNK = table.concat(t)
  assert(#CHUNK == MiB)
end

-- one connection to a server of protocol S (its connectionMade, if any, runs
-- once the transport is tracked) from a client that sends nothing and keeps
-- what it gets; returns what both sides saw: slost, clost, got
local function idle_client(S, opts)
  local rec = {}
  local failed = {}
  local l, port
  local finish = countdown(2, function()
    l:stopListening()
    reactor.stop()
  end)
  local made = S.connectionMade
  function S:connectionMade()
    remember(self.transport)
    if made then made(self) end
  end
  function S:connectionLost(r)
    rec.slost = r
    finish()
  end
  local got = {}
  local C = {}
  function C:connectionMade() remember(self.transport) end
  function C:dataReceived(d) got[#got + 1] = d end
  function C:connectionLost(r)
    rec.clost = r
    finish()
  end
  l, port = listen(reactor.Factory { protocol = S }, opts)
  connect(port, C, failed)
  run_loop()
  assert.are.same({}, failed)
  rec.got = table.concat(got)
  return rec
end

describe("flow control and limits", function()
  before_each(function()
    track = { listeners = {}, transports = {}, loops = {} }
  end)

  after_each(function() H.assert_clean(force_cleanup) end)

  describe("water marks", function()
    -- The server produces 1 MiB per tick for a client that has paused
    -- reading, until pauseProducing tells it to stop: the kernel takes a few
    -- MiB, then the rest stays queued above the high water mark.
    -- While paused the client sends "ping". `manual` selects
    -- flowControl = "manual" on the server's protocol. `on_pause(client)`
    -- is what happens in the server's pauseProducing.
    local function backed_up(manual, on_pause, on_ping)
      local ev, got = {}, {}
      local rec = {}
      local failed = {}
      local client
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      if manual then S.flowControl = "manual" end
      local function maybe_close(self)
        if rec.resumed and rec.pinged then self.transport:loseConnection() end
      end
      function S:connectionMade() remember(self.transport) end
      function S:dataReceived(d)
        if d == "go" then
          -- a producer that obeys: 1 MiB per tick until pauseProducing (the
          -- kernel's socket buffers take a few MiB first), at most 64 ticks
          rec.ticks = 0
          self.lc = looping(function()
            rec.ticks = rec.ticks + 1
            self.transport:write(CHUNK)
            if rec.ticks == 1 then rec.queued = self.transport:bufferSize() end -- nothing has left yet
            if rec.ticks == 64 then self.lc:stop() end
          end)
          self.lc:start(0.001)
        else
          ev[#ev + 1] = "data:" .. d
          rec.pinged = true
          if on_ping then on_ping(client) end
          maybe_close(self)
        end
      end
      -- pauseProducing comes from inside the write that crosses the high
      -- mark (Twisted's way), so while the kernel still takes whole MiBs the
      -- flush drains the queue and resumeProducing follows at once. A pause
      -- that is still on at the loop's next turn (the kernel is full) is the
      -- one the test is about: the client is told then, once.
      function S:pauseProducing()
        if self.lc.running then self.lc:stop() end
        ev[#ev + 1] = "(pause)"
        if rec.told then return end
        local at = #ev
        reactor.callLater(0, function()
          if ev[at + 1] or self.transport:bufferSize() <= 16 * KiB then return end -- it was absorbed
          rec.told = true
          ev[at] = "pause"
          rec.at_pause = self.transport:bufferSize()
          on_pause(client)
        end)
      end
      function S:resumeProducing()
        rec.at_resume = math.max(rec.at_resume or 0, self.transport:bufferSize())
        if not rec.told then
          ev[#ev + 1] = "(resume)"
          if rec.ticks < 64 then self.lc:start(0.001) end -- a producer that obeys goes on
          return
        end
        ev[#ev + 1] = "resume"
        rec.resumed = true
        maybe_close(self)
      end
      function S:connectionLost(reason)
        rec.slost = reason
        if self.lc and self.lc.running then self.lc:stop() end
        if client then client.transport:resumeReading() end -- let it see the end, whatever happened
        finish()
      end
      local C = {}
      function C:connectionMade()
        client = self
        remember(self.transport)
        self.transport:pauseReading()
        self.transport:write("go")
      end
      function C:dataReceived(d) got[#got + 1] = d end
      function C:connectionLost(reason)
        rec.clost = reason
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      local before = 0 -- the crossings the kernel absorbed come first, in pairs
      while ev[before + 1] == "(pause)" and ev[before + 2] == "(resume)" do before = before + 2 end
      rec.absorbed = before / 2
      return { table.unpack(ev, before + 1) }, table.concat(got), rec
    end

    it("pauseProducing once above the high mark, resumeProducing once at the low mark; reading stops meanwhile", function()
      local ev, got, rec = backed_up(false, function(client)
        client.transport:write("ping") -- the server must not read this while paused
        client.transport:resumeReading()
      end)
      assert.are.equal(MiB, rec.queued)
      assert.is_true(rec.ticks < 64, "never paused")
      -- the server saw "ping" only after it resumed: it had stopped reading
      assert.are.same({ "pause", "resume", "data:ping" }, ev)
      assert.is_true(rec.at_pause > 64 * KiB, "bufferSize at pause: " .. tostring(rec.at_pause))
      assert.is_true(rec.at_resume <= 16 * KiB, "bufferSize at resume: " .. tostring(rec.at_resume))
      assert.are.equal(rec.ticks * MiB, #got)
      assert.is_true(got == CHUNK:rep(rec.ticks), "the data differs")
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("with flowControl = \"manual\" the protocol keeps reading while paused", function()
      local ev, got, rec = backed_up(true, function(client)
        client.transport:write("ping") -- read at once: the server did not stop reading
      end, function(client)
        client.transport:resumeReading()
      end)
      assert.is_true(rec.ticks < 64, "never paused")
      assert.are.same({ "pause", "data:ping", "resume" }, ev)
      assert.is_true(rec.at_pause > 64 * KiB, "bufferSize at pause: " .. tostring(rec.at_pause))
      assert.is_true(rec.at_resume <= 16 * KiB, "bufferSize at resume: " .. tostring(rec.at_resume))
      assert.are.equal(rec.ticks * MiB, #got)
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("setWriteLimits raises the marks: 16 MiB queued under a 32 MiB high mark causes no pause", function()
      -- 16 MiB queued at once: far above the default high mark (64 KiB),
      -- below the raised one: no pause, and no abort at the default cap
      local pauses, lost = 0, nil
      local failed = {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        self.transport:setWriteLimits { high = 32 * MiB, low = 8 * MiB, max = 64 * MiB }
        for _ = 1, 16 do self.transport:write(CHUNK) end
        self.transport:loseConnection()
      end
      function S:pauseProducing() pauses = pauses + 1 end
      function S:connectionLost(r)
        lost = r
        finish()
      end
      local got = 0
      local C = {}
      function C:connectionMade() remember(self.transport) end
      function C:dataReceived(d) got = got + #d end
      function C:connectionLost() finish() end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.are.equal(0, pauses)
      assert.are.equal(16 * MiB, got)
      assert.are.equal("done", lost.type)
    end)

    it("pauseProducing comes from inside the write that crosses the high mark (as Twisted's write)", function()
      -- a callback that writes in a loop learns at once, not after it returns
      local seen, pauses, failed = {}, 0, {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        self.transport:setWriteLimits { high = 16 * KiB, low = 4 * KiB }
        for _ = 1, 4 do
          self.transport:write(CHUNK:sub(1, 8 * KiB))
          seen[#seen + 1] = pauses
        end
        self.transport:loseConnection()
      end
      function S:pauseProducing() pauses = pauses + 1 end
      function S:connectionLost() finish() end
      local got = 0
      local C = {}
      function C:connectionMade() remember(self.transport) end
      function C:dataReceived(d) got = got + #d end
      function C:connectionLost() finish() end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      -- 8, 16 (at the mark, not above), 24 (above: paused), 32 KiB queued
      assert.are.same({ 0, 0, 1, 1 }, seen)
      assert.are.equal(32 * KiB, got)
    end)

    it("setWriteLimits rejects low > high", function()
      local ok, err
      local failed = {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        ok, err = pcall(self.transport.setWriteLimits, self.transport, { high = 10, low = 20 })
        self.transport:loseConnection()
      end
      function S:connectionLost() finish() end
      local C = {}
      function C:connectionMade() remember(self.transport) end
      function C:connectionLost() finish() end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.is_false(ok)
      assert.matches("low must not exceed high", err, 1, true)
    end)
  end)

  describe("the hard output cap", function()
    it("aborts a connection whose peer does not read while the protocol ignores pauseProducing", function()
      local rec = { ticks = 0, pauses = 0 }
      local failed = {}
      local client
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local PIECE = CHUNK:sub(1, 64 * KiB)
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        self.transport:setWriteLimits { high = 16 * KiB, low = 4 * KiB, max = 256 * KiB }
      end
      function S:dataReceived()
        -- a producer that ignores pauseProducing: 64 KiB per tick, at most
        -- 1000 ticks (64 MiB) before it gives up on its own
        self.lc = looping(function()
          rec.ticks = rec.ticks + 1
          if rec.ticks > 1000 then
            self.lc:stop()
            self.transport:loseConnection()
            return
          end
          self.transport:write(PIECE)
        end)
        self.lc:start(0.001)
      end
      function S:pauseProducing() rec.pauses = rec.pauses + 1 end
      function S:connectionLost(reason)
        rec.slost = reason
        rec.size_after = self.transport:bufferSize()
        if self.lc and self.lc.running then self.lc:stop() end
        client.transport:resumeReading() -- let the client see the end
        finish()
      end
      local C = {}
      function C:connectionMade()
        client = self
        remember(self.transport)
        self.transport:pauseReading()
        self.transport:write("go")
      end
      function C:connectionLost(reason)
        rec.clost = reason
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.is_true(rec.ticks <= 1000, "the producer was never stopped")
      assert.are.equal("aborted", rec.slost.type)
      assert.matches("output buffer limit exceeded", rec.slost.message, 1, true)
      assert.matches("262144", rec.slost.message, 1, true)
      -- told at every crossing (the kernel absorbs the first MiBs), and ignored
      assert.is_true(rec.pauses >= 1, "never told to pause")
      assert.are.equal(0, rec.size_after)
      assert.is_truthy(rec.clost)
    end)
  end)

  describe("big writes", function()
    -- A write of 4 KiB or more is queued by reference (the string pinned
    -- until it has left, not copied): the bytes, their order among small
    -- writes and the pin's release are what a user could get wrong here.
    it("go out whole and in order among small writes, and are let go once sent or dropped", function()
      local held
      local BIG = CHUNK:sub(1, 300 * KiB)
      local S = {}
      function S:connectionMade()
        local big2 = BIG:reverse() -- a string only the queue holds after this call
        self.transport:write("<")
        self.transport:write(BIG)
        self.transport:write("|")
        self.transport:writeSequence { big2, ">" }
        held = reactor.core._stats().borrowed -- nothing has left before the callback returns
        self.transport:loseConnection()
      end
      local got = idle_client(S).got
      assert.are.equal(2, held)
      assert.are.equal(2 * #BIG + 3, #got)
      assert.is_true(got == "<" .. BIG .. "|" .. BIG:reverse() .. ">", "the bytes came back changed or out of order")
      assert.are.equal(0, reactor.core._stats().borrowed)
      -- pinned means held in the registry (strings never leave weak tables)
      local big2 = BIG:reverse()
      for _, v in pairs(debug.getregistry()) do
        assert.is_false(v == big2, "a sent string is still pinned in the registry")
      end
    end)

    it("a big write whose pauseProducing aborts the connection is let go once", function()
      local rec = {}
      local S = {}
      function S:connectionMade()
        self.transport:setWriteLimits { high = 16 * KiB, low = 4 * KiB }
        self.transport:write(CHUNK) -- crosses the high mark: pauseProducing, from inside the write
        rec.after = reactor.core._stats().borrowed
      end
      function S:pauseProducing()
        rec.paused = true
        self.transport:abortConnection()
      end
      rec.slost = idle_client(S).slost.type
      assert.are.same({ paused = true, after = 0, slost = "aborted" }, rec)
    end)

    it("a big write still queued when the connection is aborted is let go at once", function()
      local rec = {}
      local S = {}
      function S:connectionMade()
        self.transport:write(CHUNK)
        rec.before = reactor.core._stats().borrowed
        self.transport:abortConnection()
        rec.after = reactor.core._stats().borrowed
        self.transport:write(CHUNK) -- closed: a no-op, nothing pinned
        rec.closed = reactor.core._stats().borrowed
      end
      rec.slost = idle_client(S).slost.type
      assert.are.same({ before = 1, after = 0, closed = 0, slost = "aborted" }, rec)
    end)
  end)

  describe("listener options", function()
    it("maxOutput and highWater apply to every accepted connection: writes past them in one callback abort it", function()
      -- 4 KiB, 4 KiB, 4 KiB in one callback: after the first the queue is
      -- above highWater (1 KiB); the third would take it past maxOutput (8 KiB)
      local sizes = {}
      local S = {}
      function S:connectionMade()
        for i = 1, 3 do
          self.transport:write(string.rep(tostring(i), 4 * KiB))
          sizes[i] = self.transport:bufferSize()
        end
      end
      local rec = idle_client(S, { highWater = KiB, lowWater = 512, maxOutput = 8 * KiB })
      assert.are.same({ 4 * KiB, 8 * KiB, 0 }, sizes) -- then aborted: the queue was dropped
      assert.are.equal("aborted", rec.slost.type)
      assert.matches("output buffer limit exceeded (8192 bytes queued)", rec.slost.message, 1, true)
      assert.are.equal("", rec.got) -- nothing had left yet
      assert.is_truthy(rec.clost)
    end)

    it("highWater / lowWater set where pauseProducing and resumeProducing come", function()
      local ev, rec = {}, { ticks = 0 }
      local failed = {}
      local client
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade() remember(self.transport) end
      function S:dataReceived()
        self.lc = looping(function()
          rec.ticks = rec.ticks + 1
          self.transport:write(CHUNK)
          if rec.ticks == 64 then self.lc:stop() end
        end)
        self.lc:start(0.001)
      end
      function S:pauseProducing()
        ev[#ev + 1] = "pause"
        self.lc:stop()
        rec.at_pause = self.transport:bufferSize()
        client.transport:resumeReading()
      end
      function S:resumeProducing()
        ev[#ev + 1] = "resume"
        rec.at_resume = self.transport:bufferSize()
        self.transport:loseConnection()
      end
      function S:connectionLost(r)
        rec.slost = r
        if self.lc and self.lc.running then self.lc:stop() end
        client.transport:resumeReading()
        finish()
      end
      local got = 0
      local C = {}
      function C:connectionMade()
        client = self
        remember(self.transport)
        self.transport:pauseReading()
        self.transport:write("go")
      end
      function C:dataReceived(d) got = got + #d end
      function C:connectionLost() finish() end
      l, port = listen(reactor.Factory { protocol = S },
        { highWater = 2 * MiB, lowWater = MiB, maxOutput = 16 * MiB })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.are.same({ "pause", "resume" }, ev)
      assert.is_true(rec.at_pause > 2 * MiB, "bufferSize at pause: " .. tostring(rec.at_pause))
      assert.is_true(rec.at_resume <= MiB, "bufferSize at resume: " .. tostring(rec.at_resume))
      assert.are.equal(rec.ticks * MiB, got)
      assert.are.equal("done", rec.slost.type)
    end)
  end)

  describe("pauseReading / resumeReading", function()
    it("no dataReceived while reading is paused; the data comes after resumeReading", function()
      -- A connects; the server pauses reading A and says "ready"; A sends
      -- "hello" and then opens B. B's round trip (echoed "probe") proves the
      -- server went on serving while A's bytes waited; then the server
      -- resumes reading A.
      local ev = {}
      local failed = {}
      local first
      local l, port
      local finish = countdown(4, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        if not first then
          first = self
          self.transport:pauseReading()
          self.transport:write("ready")
        end
      end
      function S:dataReceived(d)
        if self == first then
          ev[#ev + 1] = "A:" .. d
          self.transport:loseConnection()
        else
          self.transport:write(d)
        end
      end
      function S:connectionLost() finish() end
      local B = {}
      function B:connectionMade()
        remember(self.transport)
        self.transport:write("probe")
      end
      function B:dataReceived(d)
        ev[#ev + 1] = "B:" .. d
        ev[#ev + 1] = "resume"
        first.transport:resumeReading()
        self.transport:loseConnection()
      end
      function B:connectionLost() finish() end
      local A = {}
      function A:connectionMade() remember(self.transport) end
      function A:dataReceived(d)
        if d == "ready" then
          self.transport:write("hello")
          connect(port, B, failed)
        end
      end
      function A:connectionLost() finish() end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, A, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.are.same({ "B:probe", "resume", "A:hello" }, ev)
    end)
  end)

  describe("half-close", function()
    it("the client's loseWriteConnection: the server gets readConnectionLost, answers, the client reads it", function()
      local rec = { rcl = 0 }
      local got = {}
      local failed = {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade() remember(self.transport) end
      function S:dataReceived(d) rec.question = (rec.question or "") .. d end
      function S:readConnectionLost()
        rec.rcl = rec.rcl + 1
        -- the connection stays open for writing
        self.transport:write("answer to " .. tostring(rec.question))
        self.transport:loseConnection()
      end
      function S:connectionLost(r)
        rec.slost = r
        finish()
      end
      local C = {}
      function C:connectionMade()
        remember(self.transport)
        self.transport:write("question")
        rec.lwc = self.transport:loseWriteConnection()
        rec.lwc2 = self.transport:loseWriteConnection()
        self.transport:write("late") -- after the half-close: a silent no-op
      end
      function C:dataReceived(d) got[#got + 1] = d end
      function C:connectionLost(r)
        rec.clost = r
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.is_true(rec.lwc)
      assert.is_false(rec.lwc2)
      assert.are.equal("question", rec.question)
      assert.are.equal(1, rec.rcl)
      assert.are.equal("answer to question", table.concat(got))
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("the server's loseWriteConnection: the client gets readConnectionLost, replies, the server reads it", function()
      local rec = { rcl = 0 }
      local sgot, cgot = {}, {}
      local failed = {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      -- the server has no readConnectionLost: the client's FIN finishes it
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        self.transport:write("hello")
        rec.lwc = self.transport:loseWriteConnection()
      end
      function S:dataReceived(d) sgot[#sgot + 1] = d end
      function S:connectionLost(r)
        rec.slost = r
        finish()
      end
      local C = {}
      function C:connectionMade() remember(self.transport) end
      function C:dataReceived(d) cgot[#cgot + 1] = d end
      function C:readConnectionLost()
        rec.rcl = rec.rcl + 1
        rec.before_eof = table.concat(cgot)
        self.transport:write("reply after your EOF")
        self.transport:loseConnection()
      end
      function C:connectionLost(r)
        rec.clost = r
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.is_true(rec.lwc)
      assert.are.equal(1, rec.rcl)
      assert.are.equal("hello", rec.before_eof)
      assert.are.equal("reply after your EOF", table.concat(sgot))
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("without readConnectionLost the peer's FIN finishes the connection (done), output flushed", function()
      local rec = {}
      local got = {}
      local failed = {}
      local l, port
      local finish = countdown(2, function()
        l:stopListening()
        reactor.stop()
      end)
      local S = {}
      function S:connectionMade() remember(self.transport) end
      function S:dataReceived(d) self.transport:write("echo:" .. d) end
      function S:connectionLost(r)
        rec.slost = r
        finish()
      end
      local C = {}
      function C:connectionMade()
        remember(self.transport)
        self.transport:write("x")
        self.transport:loseWriteConnection()
      end
      function C:dataReceived(d) got[#got + 1] = d end
      function C:connectionLost(r)
        rec.clost = r
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S })
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      assert.are.equal("echo:x", table.concat(got))
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)
  end)

  describe("timeouts", function()
    it("setTimeout returns the previous timeout; timeoutConnection is called when nothing was read", function()
      local prev = {}
      local calls = 0
      local S = {}
      function S:connectionMade()
        prev[1] = self.transport:setTimeout(30)
        prev[2] = self.transport:setTimeout(0.1)
      end
      function S:timeoutConnection()
        calls = calls + 1
        prev[3] = self.transport:setTimeout(nil) -- off: it is not called again
        self.transport:write("bye")
        self.transport:loseConnection()
      end
      local rec = idle_client(S)
      assert.is_nil(prev[1])
      assert.are.equal(30, prev[2])
      assert.are.equal(0.1, prev[3])
      assert.are.equal(1, calls)
      assert.are.equal("bye", rec.got)
      assert.are.equal("done", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("without timeoutConnection the connection closes with reason \"timeout\"", function()
      local S = {}
      function S:connectionMade() self.transport:setTimeout(0.1) end
      local rec = idle_client(S)
      assert.are.equal("timeout", rec.slost.type)
      assert.are.equal("string", type(rec.slost.message))
      assert.are.equal("", rec.got)
      assert.are.equal("done", rec.clost.type) -- the client sees an EOF
    end)

    it("the listener's idleTimeout applies to every connection it accepts", function()
      local rec = idle_client({}, { idleTimeout = 0.1 })
      assert.are.equal("timeout", rec.slost.type)
      assert.are.equal("done", rec.clost.type)
    end)

    it("a timeoutConnection that keeps the connection open is called again after another idle period", function()
      -- timeoutConnection that does not close: the clock starts again
      local calls = 0
      local S = {}
      function S:connectionMade() self.transport:setTimeout(0.05) end
      function S:timeoutConnection()
        calls = calls + 1
        if calls == 3 then self.transport:loseConnection() end
      end
      local rec = idle_client(S)
      assert.are.equal(3, calls)
      assert.are.equal("done", rec.slost.type)
    end)
  end)

  describe("connection limits", function()
    -- c1 and c2 fill a listener that takes `max` = 2; c3 is accepted and
    -- closed at once; after c1 leaves, c4 is served.
    local function over_the_limit(listen_opts)
      local rec = { smade = 0, slost = 0, c3 = {}, echo = {} }
      local failed = {}
      local l, port
      local refused0 = reactor.core._stats().refused
      local clients = {}
      local finish = countdown(3 + 4, function()
        rec.lstats = l:stats()
        l:stopListening()
        reactor.stop()
      end)
      local C = {}
      function C:connectionMade() remember(self.transport) end
      function C:connectionLost() finish() end
      local C3 = {}
      function C3:connectionMade() remember(self.transport) end
      function C3:dataReceived(d) rec.c3[#rec.c3 + 1] = d end
      function C3:connectionLost(r)
        rec.c3lost = r
        rec.at_refusal = l:stats()
        rec.core_refused = reactor.core._stats().refused - refused0
        clients[1].transport:loseConnection() -- c1 leaves
        finish()
      end
      local C4 = {}
      function C4:connectionMade()
        remember(self.transport)
        self.transport:write("ping")
      end
      function C4:dataReceived(d)
        rec.echo[#rec.echo + 1] = d
        self.transport:loseConnection()
        clients[2].transport:loseConnection()
      end
      function C4:connectionLost() finish() end
      local S = {}
      function S:connectionMade()
        remember(self.transport)
        rec.smade = rec.smade + 1
        clients[#clients + 1] = self
        if rec.smade == 2 then connect(port, C3, failed) end
      end
      function S:dataReceived(d) self.transport:write(d) end
      function S:connectionLost()
        rec.slost = rec.slost + 1
        if rec.slost == 1 then connect(port, C4, failed) end -- c1's end frees a place
        finish()
      end
      l, port = listen(reactor.Factory { protocol = S }, listen_opts)
      connect(port, C, failed)
      connect(port, C, failed)
      run_loop()
      assert.are.same({}, failed)
      return rec
    end

    it("a listener's maxConnections refuses the (n+1)th: accepted, closed at once, counted", function()
      local rec = over_the_limit { maxConnections = 2 }
      assert.are.equal(3, rec.smade) -- c1, c2, c4; never c3
      assert.are.same({}, rec.c3)
      assert.are.equal("done", rec.c3lost.type) -- an EOF, not a hang
      assert.are.equal(1, rec.at_refusal.refused)
      assert.are.equal(2, rec.at_refusal.connections)
      assert.are.equal(1, rec.core_refused)
      assert.are.same({ "ping" }, rec.echo) -- still served after the refusal
      assert.are.equal(1, rec.lstats.refused)
      assert.are.equal(0, rec.lstats.connections)
    end)

    it("reactor.core.setLimits{maxConnections=} caps the open connections of the whole reactor", function()
      -- client and server live in one reactor, so both ends count: when c3
      -- arrives the reactor holds c1, c2 (both ends) and c3's client end = 5;
      -- when c4 arrives c1's server end is gone: at most 4
      reactor.core.setLimits { maxConnections = 5 }
      local ok, rec = pcall(over_the_limit, {})
      reactor.core.setLimits { maxConnections = 0 }
      assert(ok, rec)
      assert.are.equal(3, rec.smade)
      assert.are.same({}, rec.c3)
      assert.are.equal(1, rec.at_refusal.refused)
      assert.are.equal(1, rec.core_refused)
      assert.are.same({ "ping" }, rec.echo)
    end)
  end)
end)
