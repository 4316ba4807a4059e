-- reactor.testing (issue 10, part 4): the real C transport over a socketpair,
-- and core's virtual clock under callLater, LoopingCall and transport
-- timeouts, driven synchronously from plain `it` blocks.
local reactor = require "reactor"
local testing = require "reactor.testing"
local H = require "spec.helpers"

local THIS = "spec/unit/testing_spec.lua"

-- the line of the first line of this file holding `marker`
local SOURCE = H.read_file(THIS)
local function line(marker) return H.line_of(SOURCE, marker) end

-- every test leaves nothing behind: its connections closed, real time back
local function release()
  local k = reactor.core._testing()._installed()
  if k then k:uninstall() end
  reactor.core.abortAll()
  testing.flush()
end

-- an error raised by fn(...), as text
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("testing.connect", function()
  after_each(function() H.assert_clean(release) end)

  it("runs the real transport: what the protocol writes, clear, pause, close and its reason", function()
    local Echo = reactor.LineReceiver:extend()
    function Echo:connectionMade() self:sendLine("hello " .. self.transport:getPeer().host) end
    function Echo:lineReceived(l)
      if l == "pause" then return self.transport:pauseReading() end
      if l == "bye" then return self.transport:loseConnection() end
      self:sendLine("echo " .. l)
    end
    local proto, tr = testing.connect(Echo)
    assert.are.equal("hello 127.0.0.1\r\n", tr:value())
    tr:clear()
    tr:feed("one\r\ntwo\r\n")
    assert.are.equal("echo one\r\necho two\r\n", tr:value())
    assert.are.equal(proto.transport, tr.transport)
    assert.is_false(tr:paused())
    tr:clear()
    tr:feed("pause\r\nheld\r\n")
    local paused, why = tr:paused()
    assert.is_true(paused)
    assert.are.equal("reading", why)
    assert.are.equal("", tr:value()) -- "held" waits for resumeReading, as over a socket
    proto.transport:resumeReading()
    assert.are.equal("echo held\r\n", tr:value())
    assert.is_false(tr:closed())
    assert.is_nil(tr:reason())
    tr:feed("bye\r\n")
    assert.is_true(tr:closed())
    assert.are.equal("done", tr:reason().type)
  end)

  it("takes a factory too, and tells connectionLost of the peer's hang-up", function()
    local lost
    local P = reactor.Protocol:extend()
    function P:dataReceived(d) self.transport:write(self.factory.prefix .. d) end
    function P:connectionLost(reason) lost = reason.type end
    local _, tr = testing.connect(reactor.Factory { protocol = P, prefix = "> " })
    tr:feed("x")
    assert.are.equal("> x", tr:value())
    tr:hangup()
    assert.is_true(tr:closed())
    assert.are.equal("done", lost) -- the protocol's own connectionLost ran, once
  end)

  it("half-closes the peer's end (tr:eof): readConnectionLost may still write; later bytes are lost", function()
    local P = reactor.Protocol:extend()
    function P:dataReceived(d) self.got = (self.got or "") .. d end
    function P:readConnectionLost()
      self.transport:write("you said " .. self.got)
      self.transport:loseConnection()
    end
    local proto, tr = testing.connect(P)
    tr:feed("abc", 2)
    tr:eof()
    assert.are.equal("you said abc", tr:value())
    assert.is_true(tr:closed())
    assert.are.equal("done", tr:reason().type)
    tr:feed("more") -- after the protocol closed: lost, as on a network
    assert.are.equal("abc", proto.got)
    tr:hangup()
    local err = raised(function() tr:feed("x") end)
    assert.matches("tr:feed: the test's end is closed", err, 1, true)
  end)

  it("blames the caller's line for a bad argument, in the public names", function()
    local err = raised(testing.connect, 42)
    assert.are.equal("reactor.testing.connect: expected a protocol, a factory or a stream handler function, got number 42",
      (err:gsub("^[^:]*:%d+: ", "")))
    err = raised(function() testing.connect(42) end)
    assert.matches(THIS .. ":" .. line("testing.connect(42) end") .. ":", err, 1, true)
    local _, tr = testing.connect(reactor.Protocol:extend())
    err = raised(function() tr:feed("x", "sometimes") end)
    assert.matches(THIS .. ":" .. line('tr:feed("x", "sometimes")') .. ": reactor.testing: tr:feed: split must be",
      err, 1, true)
    tr:hangup()
  end)
end)

describe("tr:feed's splits", function()
  after_each(function() H.assert_clean(release) end)

  local lines = { "alpha", "", "beta gamma", ("x"):rep(100), "last" }
  local stream = table.concat(lines, "\r\n") .. "\r\n"
  local strings = { "", "a", ("y"):rep(300), "\0\1\2\3", "z" }
  local framed = {}
  for i, s in ipairs(strings) do framed[i] = (">s4"):pack(s) end
  framed = table.concat(framed)

  local function collect(class, method, bytes, split)
    local got = {}
    local P = class:extend()
    P[method] = function(_, s) got[#got + 1] = s end
    local _, tr = testing.connect(P)
    tr:feed(bytes, split)
    tr:hangup()
    return got
  end

  for _, split in ipairs { false, "every", 1, 3, 7, "random", { random = 12345 } } do
    local name = split == false and "whole" or type(split) == "table" and "{random = 12345}" or tostring(split)
    it("gives LineReceiver and Int32StringReceiver the same frames: " .. name, function()
      local got = collect(reactor.LineReceiver, "lineReceived", stream, split or nil)
      assert.are.same(lines, got)
      got = collect(reactor.Int32StringReceiver, "stringReceived", framed, split or nil)
      assert.are.same(strings, got)
    end)
  end

  it("delivers each piece in a read of its own: 'every' is one byte per read, n is n bytes", function()
    local sizes = {}
    local P = reactor.Protocol:extend()
    function P:dataReceived(d) sizes[#sizes + 1] = #d end
    local _, tr = testing.connect(P)
    tr:feed("abcdef", "every")
    assert.are.same({ 1, 1, 1, 1, 1, 1 }, sizes)
    sizes = {}
    tr:feed("abcdefg", 3)
    assert.are.same({ 3, 3, 1 }, sizes)
    sizes = {}
    tr:feed(("r"):rep(200), { random = 7 })
    local again = sizes
    sizes = {}
    tr:feed(("r"):rep(200), { random = 7 })
    assert.are.same(again, sizes) -- a seed replays its splits
    assert.is_true(#sizes > 1)
    tr:hangup()
  end)
end)

describe("testing.clock", function()
  after_each(function() H.assert_clean(release) end)

  it("fires each timer at its own deadline, in order, with reactor.now() at that deadline", function()
    local clock <close> = testing.clock()
    local seen = {}
    local function at(tag) return function() seen[#seen + 1] = { tag, reactor.now() } end end
    reactor.callLater(3, at("c"))
    reactor.callLater(1, function()
      at("a")()
      reactor.callLater(1.5, at("b")) -- chained: due at 2.5, inside the same advance
    end)
    reactor.callLater(1, at("a2")) -- a tie: in the order they were started
    reactor.callLater(11, at("late"))
    clock:advance(10)
    assert.are.same({ { "a", 1 }, { "a2", 1 }, { "b", 2.5 }, { "c", 3 } }, seen)
    assert.are.equal(10, reactor.now())
    assert.are.equal(11, clock:next())
    clock:advance(1)
    assert.are.equal("late", seen[5][1])
    assert.are.equal(11, seen[5][2])
    assert.is_nil(clock:next())
  end)

  it("runs a callLater(0) made while advancing in the next round, after the timers already due", function()
    local clock <close> = testing.clock()
    local order = {}
    reactor.callLater(1, function()
      order[#order + 1] = "first"
      reactor.callLater(0, function() order[#order + 1] = "zero, at " .. reactor.now() end)
    end)
    reactor.callLater(1, function() order[#order + 1] = "second" end)
    clock:advance(1)
    assert.are.same({ "first", "second", "zero, at 1.0" }, order)
  end)

  it("fails a callLater(0) that schedules itself, naming it, instead of hanging", function()
    local clock <close> = testing.clock()
    local n, runaway = 0, true
    local function again()
      n = n + 1
      if runaway then reactor.callLater(0, again) end
    end
    reactor.callLater(1, again)
    local err = raised(function() clock:advance(5) end)
    assert.matches(THIS .. ":" .. line("raised(function() clock:advance(5) end)") .. ": reactor.testing: clock:advance:"
      .. " timers kept starting timers for the same instant at t=1", err, 1, true)
    assert.matches("the next is the function at " .. THIS .. ":" .. line("local function again()"), err, 1, true)
    assert.are.equal(1000, n)
    assert.are.equal(1, clock:now()) -- time stopped where it stuck
    runaway = false
    clock:advance(1) -- the last one ends it
    assert.is_nil(clock:next())
  end)

  it("runs LoopingCall on its grid, at each beat's own time", function()
    local clock <close> = testing.clock(100)
    local beats = {}
    local lc = reactor.LoopingCall(function() beats[#beats + 1] = reactor.now() end)
    lc:start(2)
    clock:advance(7)
    assert.are.same({ 100, 102, 104, 106 }, beats)
    lc:stop()
    clock:advance(10)
    assert.are.equal(4, #beats)
  end)

  it("runs a transport's idle timeout (setTimeout) on virtual time; a read restarts it", function()
    local clock <close> = testing.clock()
    local closed_at
    local P = reactor.Protocol:extend()
    function P:connectionMade() self.transport:setTimeout(30) end
    function P:connectionLost() closed_at = reactor.now() end
    local _, tr = testing.connect(P)
    clock:advance(29)
    assert.is_false(tr:closed())
    tr:feed("still here")
    clock:advance(29) -- 58: 29 s since the read
    assert.is_false(tr:closed())
    clock:advance(1.5)
    assert.is_true(tr:closed())
    assert.are.equal("timeout", tr:reason().type)
    assert.are.equal(59, closed_at) -- at its deadline: 30 s after the read at 29
  end)

  it("moves timers started on real time over, and back when it is closed", function()
    local fired = false
    local call = reactor.callLater(1000, function() fired = true end)
    do
      local clock <close> = testing.clock()
      assert.are.equal(0, reactor.now())
      assert.near(1000, clock:next(), 1e-6)
      clock:advance(400)
      assert.is_false(fired)
    end -- real time again: 600 s left
    assert.is_nil(reactor.core._testing()._installed())
    assert.is_true(call:active())
    assert.near(600, call:getTime() - reactor.now(), 1)
    call:cancel()
  end)

  it("refuses a second clock while one is installed, at the caller's line", function()
    local clock <close> = testing.clock()
    local err = raised(function() testing.clock() end)
    assert.matches(THIS .. ":" .. line("raised(function() testing.clock() end)")
      .. ": reactor.testing.clock: a virtual clock is already installed", err, 1, true)
    err = raised(function() clock:advance(-1) end)
    assert.matches("clock:advance: dt must be a number of seconds >= 0, got number -1", err, 1, true)
  end)

  it("autojump: reactor.run() runs an hour of timers at once, each at its deadline", function()
    local clock <close> = testing.clock()
    clock:autojump()
    local beats = 0
    local lc = reactor.LoopingCall(function() beats = beats + 1 end)
    lc:start(60, false)
    local stopped_at
    reactor.callLater(3600, function()
      stopped_at = reactor.now()
      lc:stop()
      reactor.stop()
    end)
    reactor.run()
    assert.are.equal(3600, stopped_at)
    assert.are.equal(59, beats) -- the beat due at 3600 was started at 3540, after the stop: a tie, in start order
  end)

  it("run_until jumps to each deadline and gives up after virtual_timeout", function()
    local clock <close> = testing.clock()
    local done = false
    reactor.callLater(45, function() done = true end)
    assert.is_true(testing.run_until(function() return done end))
    assert.are.equal(45, clock:now())
    local t = reactor.callLater(100, function() end)
    local err = raised(function() testing.run_until(function() return false end, { virtual_timeout = 30 }) end)
    assert.matches(THIS .. ":" .. line("{ virtual_timeout = 30 }) end)") .. ": reactor.testing: testing.run_until:"
      .. " the condition is still false after 30 virtual seconds", err, 1, true)
    t:cancel()
    err = raised(function() testing.run_until(function() return false end) end)
    assert.matches("nothing is left to happen", err, 1, true)
  end)
end)

describe("testing.pair", function()
  after_each(function() H.assert_clean(release) end)

  it("connects a server and a client protocol; pump:flush moves bytes both ways until quiet", function()
    local Server = reactor.LineReceiver:extend()
    function Server:lineReceived(l) self:sendLine(l:upper()) end
    local Client = reactor.LineReceiver:extend()
    function Client:connectionMade() self.got = {}; self:sendLine("hi"); self:sendLine("there") end
    function Client:lineReceived(l)
      self.got[#self.got + 1] = l
      if #self.got == 2 then self.transport:loseConnection() end
    end
    local lost = {}
    local cf = reactor.ClientFactory {
      protocol = Client,
      clientConnectionLost = function(_, connector, reason)
        lost[#lost + 1] = reason.type .. " " .. connector:getDestination().port
      end,
    }
    local client, server, pump = testing.pair(Server, cf)
    assert.are.equal(server.transport:getPeer().port, client.transport:getHost().port)
    assert.is_true(pump:flush())
    assert.are.same({ "HI", "THERE" }, client.got)
    assert.are.same({ "done 1060" }, lost)
  end)

  it("fails pump:flush, naming both protocols, when they never settle", function()
    local Ping = reactor.Protocol:extend()
    function Ping:connectionMade() self.transport:write("ping") end
    function Ping:dataReceived(d) self.transport:write(d) end
    local Pong = reactor.Protocol:extend()
    function Pong:dataReceived(d) self.transport:write(d) end
    local _, _, pump = testing.pair(Pong, Ping)
    local err = raised(function() pump:flush() end)
    assert.matches(THIS .. ":" .. line("raised(function() pump:flush() end)") .. ": reactor.testing: pump:flush: client"
      .. " (the protocol whose dataReceived is at " .. THIS .. ":" .. line("function Ping:dataReceived") .. ")"
      .. " and server (the protocol whose dataReceived is at " .. THIS .. ":" .. line("function Pong:dataReceived")
      .. ") never settled", err, 1, true)
    reactor.core.abortAll() -- they never stop on their own
    testing.flush()
  end)

  it("runs 100 virtual clients through one virtual hour of timers", function()
    local clock <close> = testing.clock()
    -- the server ticks each client every 10 s; each client counts its ticks
    -- and, every 5 minutes, says how many it has seen so far
    local Server = reactor.LineReceiver:extend()
    function Server:connectionMade()
      self.lc = reactor.LoopingCall(function() self:sendLine("tick") end)
      self.lc:start(10, false)
      self.reports = {}
    end
    function Server:lineReceived(l) self.reports[#self.reports + 1] = tonumber(l) end
    function Server:connectionLost() self.lc:stop() end
    local Client = reactor.LineReceiver:extend()
    function Client:connectionMade()
      self.ticks = 0
      self.lc = reactor.LoopingCall(function() self:sendLine(tostring(self.ticks)) end)
      self.lc:start(300, false)
    end
    function Client:lineReceived() self.ticks = self.ticks + 1 end
    function Client:connectionLost() self.lc:stop() end
    local pairs_ = {}
    for i = 1, 100 do
      local client, server = testing.pair(Server, Client)
      pairs_[i] = { client = client, server = server }
    end
    clock:advance(3600)
    for _, p in ipairs(pairs_) do
      assert.are.equal(360, p.client.ticks)
      -- at 300 s the server's tick and the client's report share the instant:
      -- the report was started first (at 0 s, the tick at 290 s), so it fires
      -- first and counts 29 ticks, not 30
      local want = {}
      for k = 1, 12 do want[k] = 30 * k - 1 end
      assert.are.same(want, p.server.reports)
    end
    for _, p in ipairs(pairs_) do p.client.transport:loseConnection() end
    testing.flush()
  end)
end)

describe("tasks and streams under reactor.testing", function()
  after_each(function() H.assert_clean(release) end)

  -- testing.connect and testing.pair take a stream handler as reactor.serve does
  local function served(handler) return handler end

  it("runs reactor.sleep and reactor.timeout on virtual time", function()
    local clock <close> = testing.clock()
    local woke = {}
    reactor.spawn(function()
      for _ = 1, 60 do
        reactor.sleep(60)
        woke[#woke + 1] = reactor.now()
      end
    end)
    local result
    reactor.spawn(function()
      result = table.pack(reactor.timeout(5, function() reactor.sleep(10) end))
    end)
    clock:advance(3600)
    assert.are.equal(60, #woke)
    assert.are.equal(60, woke[1])
    assert.are.equal(3600, woke[60])
    assert.are.same({ n = 2, nil, "timeout" }, result)
  end)

  it("runs a stream's handler over testing.connect, its timeouts on virtual time", function()
    local clock <close> = testing.clock()
    local timedout
    local _, tr = testing.connect(served(function(s)
      s:settimeout(30)
      while true do
        local l, err = s:readline()
        if not l then timedout = err; break end
        s:write(l:upper() .. "\n")
      end
    end))
    tr:feed("hello\nthere\n", "every")
    assert.are.equal("HELLO\nTHERE\n", tr:value())
    clock:advance(29)
    assert.is_nil(timedout)
    clock:advance(1)
    assert.are.equal("timeout", timedout)
    assert.is_true(tr:closed()) -- the handler returned: its stream closed
  end)

  it("runs a client task and a served one on loopback, synchronously, with run_until", function()
    local clock <close> = testing.clock()
    local l = assert(reactor.serve({ port = 0 }, function(s)
      reactor.sleep(120) -- virtual: run_until jumps over it
      s:write("late hello\n")
    end))
    local port = l:getHost().port
    local got
    reactor.spawn(function()
      local s = assert(reactor.connect("127.0.0.1", port))
      got = s:readline()
      s:close()
    end)
    assert.is_true(testing.run_until(function() return got ~= nil end, { virtual_timeout = 300 }))
    assert.are.equal("late hello", got)
    assert.are.equal(120, clock:now())
    l:stopListening()
    testing.flush()
  end)
end)
