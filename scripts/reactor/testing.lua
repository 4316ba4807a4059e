-- reactor.testing: test a protocol without the network, inside a plain busted
-- `it` block, synchronously. Not a Lua imitation of a transport (Twisted's
-- fakes drift from its real ones: its #2578, #9819, #5962): a test's
-- connection is the real C Transport over a socketpair, and time is core's
-- virtual clock under callLater, LoopingCall, transport timeouts and
-- reactor.sleep.
--
--   local testing = require "reactor.testing"
--   local proto, tr = testing.connect(Echo)       -- Echo's side of a connection
--   tr:feed("hello\r\n", "every")                  -- one byte per read
--   assert.equal("hello\r\n", tr:value())          -- what Echo wrote
--
--   local client, server, pump = testing.pair(ServerFactory, ClientFactory)
--   pump:flush()                                   -- until neither has more to say
--
--   local clock <close> = testing.clock()          -- virtual time until closed
--   clock:advance(3600)                            -- an hour of timers, at once
--
-- os.time() and os.clock() are not virtual: use reactor.now().
local core = require "reactor.core"
local protocol = require "reactor.protocol"

local T = core._testing()
local M = {}

local SERVER = { host = "127.0.0.1", port = 1060 } -- a test connection's server end
local lastport = 50000 -- each connection's client end gets a port of its own

local function nextport()
  lastport = lastport < 65535 and lastport + 1 or 50001
  return lastport
end

-- `string "x"`, `number 42`, `nil`: a value as an error shows it
local function show(v)
  if type(v) == "string" then return ("string %q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if type(v) == "number" or type(v) == "boolean" then return type(v) .. " " .. tostring(v) end
  return type(v)
end

-- The protocol as an error names it: its __tostring, else where its class
-- defines its first callback ("the protocol whose dataReceived is at x.lua:12").
local CALLBACKS = { "dataReceived", "lineReceived", "stringReceived", "rawDataReceived", "connectionMade" }
local function describe(p)
  if type(p) ~= "table" then return "no protocol (the factory built none)" end
  local mt = getmetatable(p)
  if mt and mt.__tostring then return tostring(p) end
  local class = mt and mt.__index
  while type(class) == "table" do
    for _, name in ipairs(CALLBACKS) do
      local f = rawget(class, name)
      if type(f) == "function" then
        local info = debug.getinfo(f, "S")
        return ("the protocol whose %s is at %s:%d"):format(name, info.short_src, info.linedefined)
      end
    end
    local cmt = getmetatable(class)
    class = cmt and cmt.__index
  end
  return tostring(p)
end

-- The kit runs the loop itself; from a callback it runs, that would nest.
local running = false
local function guarded(level, name, fn, ...)
  if running then
    error(("reactor.testing: %s from a callback the kit is running; call it from the test itself"):format(name),
      level + 1)
  end
  running = true
  local ok, a, b, c = pcall(fn, ...)
  running = false
  if not ok then error(a, 0) end
  return a, b, c
end

-- Why the loop never went quiet, as one sentence.
local function stuck(kind, nxt, t)
  local at = t and (" at t=%g"):format(t) or ""
  if kind == "timers" then
    return ("timers kept starting timers for the same instant%s (1000 rounds: a callLater(0) that schedules"
      .. " itself?); the next is %s"):format(at, nxt or "a transport's timer")
  end
  return ("the loop never went quiet%s: protocols still exchanging bytes (or calls made for now)"
    .. " after 10000 rounds"):format(at)
end

local function clocknow()
  local k = T._installed()
  return k and k:now()
end

-- Run the loop without waiting until quiet; raise what `name` says otherwise.
local function flush(level, name, who)
  local ok, kind, nxt = guarded(level + 1, name, T.flush)
  if not ok then
    local prefix = who and who .. " never settled: " or ""
    error(("reactor.testing: %s: %s%s"):format(name, prefix, stuck(kind, nxt, clocknow())), level + 1)
  end
end

--- flush(): run the loop until nothing is left to do now (no I/O ready, no
--- timer due): a connection made with listenTCP/connectTCP in-process too.
function M.flush()
  flush(2, "testing.flush")
end

-- What a listener would give the conns of this factory.
local function limits(f)
  return { highWater = f.highWater, lowWater = f.lowWater, maxOutput = f.maxOutput, idleTimeout = f.idleTimeout }
end

-- A protocol, a factory, or a function: a stream handler, served as
-- reactor.serve(port, fn) would serve it (fn(stream) in a task).
local function checkfactory(v, fname, n)
  if type(v) == "function" then return require("reactor.stream").protocol(v) end
  if type(v) ~= "table" then
    error(("reactor.testing.%s: expected a protocol, a factory or a stream handler function%s, got %s")
      :format(fname, n and (" (argument #%d)"):format(n) or "", show(v)), 3)
  end
  return v
end

--{=====================================================================
-- connect: one protocol, the test on the other end of its connection
--======================================================================

local Tr = {}
Tr.__index = Tr

-- Move bytes until the transport has nothing more for us: run the loop,
-- deliver what feed left undelivered (the socket was full), read what it
-- wrote; again while anything moved.
function Tr:_pump(level, name)
  for _ = 1, 100000 do
    flush(level + 1, name)
    local moved = false
    while self._pending do
      local n = self._sock:_send(self._pending, self._from)
      if not n then self._pending = nil; break end -- the transport is gone: the rest is lost, as on a network
      if n == 0 then break end
      moved = true
      self._from = self._from + n
      if self._from > #self._pending then self._pending = nil end
    end
    if moved then flush(level + 1, name) end
    local data = self._sock:_recv()
    if data ~= "" then
      self._out[#self._out + 1] = data
      moved = true
    end
    if not moved then return end
  end
  error(("reactor.testing: %s: %s never stopped writing"):format(name, describe(self.protocol)), level + 1)
end

--- value() -> every byte the protocol has written so far (since clear()).
function Tr:value()
  self:_pump(2, "tr:value")
  local s = table.concat(self._out)
  self._out = { s }
  return s
end

--- clear(): forget what was written so far.
function Tr:clear()
  self:_pump(2, "tr:clear")
  self._out = {}
end

--- closed() -> whether the connection is closed (connectionLost has run).
function Tr:closed()
  self:_pump(2, "tr:closed")
  return (T._state(self.transport)) == "closed" -- reported too: the pump settled
end

--- reason() -> the reason connectionLost got ({type=, message=}), or nil while open.
function Tr:reason()
  self:_pump(2, "tr:reason")
  return self._reason
end

--- paused() -> whether the transport stopped reading: the protocol's
--- pauseReading(), or flow control (its output is above the high water mark);
--- then which, "reading" or "flow".
function Tr:paused()
  self:_pump(2, "tr:paused")
  local _, user, flow = T._state(self.transport)
  if user then return true, "reading" end
  if flow then return true, "flow" end
  return false
end

-- A tiny generator of its own (a 64-bit LCG), so that a seed replays the same
-- splits and the user's math.random is left alone.
local function lcg(seed)
  local s = math.tointeger(seed) or 1
  return function(n)
    s = s * 6364136223846793005 + 1442695040888963407
    return 1 + ((s >> 33) % n)
  end
end

local seeds = 0
-- bytes -> the chunks `split` cuts them into
local function chunks(bytes, split, level)
  local out = {}
  local size
  if split == nil then
    return { bytes }
  elseif split == "every" then
    size = function() return 1 end
  elseif math.type(split) == "integer" and split > 0 then
    size = function() return split end
  elseif split == "random" or (type(split) == "table" and math.type(split.random) == "integer") then
    local seed = type(split) == "table" and split.random
    if not seed then
      seeds = seeds + 1
      seed = os.time() * 1000 + seeds
    end
    local r = lcg(seed)
    local most = math.max(1, math.min(#bytes, 32))
    size = function() return r(most) end
    out.seed = seed
  else
    error(('reactor.testing: tr:feed: split must be "every", "random", {random = seed} or a chunk size > 0,'
      .. " got %s"):format(show(split)), level + 1)
  end
  local i = 1
  while i <= #bytes do
    local n = size()
    out[#out + 1] = bytes:sub(i, i + n - 1)
    i = i + n
  end
  return out
end

--- feed(bytes [, split]): deliver bytes to the protocol as the network would,
--- each piece in a read of its own: whole (no split), one byte per read
--- ("every": so every position between two bytes is a read boundary), in
--- chunks of n bytes (a number), or at random places ("random", or
--- {random = seed} to replay; tr.seed says the last one used). Bytes the
--- protocol does not read (it paused) wait in the socket, as on a network.
function Tr:feed(bytes, split)
  if type(bytes) ~= "string" then
    error(("reactor.testing: tr:feed: bytes must be a string, got %s"):format(show(bytes)), 2)
  end
  local pieces = chunks(bytes, split, 2)
  if pieces.seed then self.seed = pieces.seed end
  if self._sock:_closed() then
    error("reactor.testing: tr:feed: the test's end is closed (tr:hangup())", 2)
  end
  -- once the protocol has closed, bytes are lost, as on a network
  for _, piece in ipairs(pieces) do
    if self._pending then -- the socket is full: after what is already waiting
      self._pending = self._pending:sub(self._from) .. piece
      self._from = 1
    else
      self._pending, self._from = piece, 1
    end
    self:_pump(2, "tr:feed")
  end
  return self
end

--- eof(): the peer half-closes (its FIN): readConnectionLost, or the end.
function Tr:eof()
  self._sock:_shutdown()
  self:_pump(2, "tr:eof")
end

--- hangup(): the peer goes away; the protocol's connectionLost follows.
function Tr:hangup()
  self:_pump(2, "tr:hangup")
  self._sock:_close()
  flush(2, "tr:hangup")
end

function Tr:__tostring()
  return ("reactor.testing transport (%s)"):format((T._state(self.transport)))
end

-- Record the reason connectionLost gets, calling the protocol's own (looked
-- up at that moment: a reload reaches it).
local function watch(proto, on_lost)
  rawset(proto, "connectionLost", function(self, reason)
    on_lost(reason)
    rawset(self, "connectionLost", nil)
    local own = self.connectionLost
    if own then return own(self, reason) end
  end)
end

--- connect(factory_or_protocol) -> proto, tr: the protocol on one end of a
--- real connection (its transport is the C one), the test on the other.
function M.connect(f)
  f = checkfactory(f, "connect")
  local factory = protocol.asFactory(f, false, 2)
  local mine, theirs = T._socketpair()
  local transport, proto = T._adopt(mine, factory, "127.0.0.1", nextport(), SERVER.host, SERVER.port, nil,
    limits(factory))
  local tr = setmetatable({ _sock = theirs, transport = transport, protocol = proto, _out = {} }, Tr)
  if proto then watch(proto, function(reason) tr._reason = reason end) end
  return proto, tr
end

--{=====================================================================
-- pair: a server and a client protocol connected to each other
--======================================================================

local Pump = {}
Pump.__index = Pump

function Pump:_who()
  return ("client (%s) and server (%s)"):format(describe(self.client), describe(self.server))
end

--- flush(): move bytes both ways (and run what is due now) until quiet;
--- raises, naming both protocols, if they never settle.
function Pump:flush()
  flush(2, "pump:flush", self:_who())
  return true
end

--- run_until(cond [, opts]): see testing.run_until.
function Pump:run_until(cond, opts)
  return (M._run_until(cond, opts, 2, "pump:run_until", self:_who()))
end

function M.pair(serverFactory, clientFactory)
  serverFactory = checkfactory(serverFactory, "pair", 1)
  clientFactory = checkfactory(clientFactory, "pair", 2)
  local sf = protocol.asFactory(serverFactory, false, 2)
  local cf = protocol.asFactory(clientFactory, true, 2)
  local s, c = T._socketpair()
  local port = nextport()
  local pump = setmetatable({}, Pump)
  local connector = {
    getDestination = function() return { type = "TCP", host = SERVER.host, port = SERVER.port } end,
    disconnect = function() if pump.clientTransport then pump.clientTransport:loseConnection() end end,
    stopConnecting = function() end,
    connect = function() core.log("reactor.testing: a pair's connector does not connect again") end,
  }
  if cf.startedConnecting then cf:startedConnecting(connector) end
  pump.serverTransport, pump.server = T._adopt(s, sf, "127.0.0.1", port, SERVER.host, SERVER.port, nil, limits(sf))
  pump.clientTransport, pump.client = T._adopt(c, cf, SERVER.host, SERVER.port, "127.0.0.1", port, connector,
    limits(cf))
  connector.transport = pump.clientTransport
  return pump.client, pump.server, pump
end

--{=====================================================================
-- run_until, and the clock
--======================================================================

function M._run_until(cond, opts, level, name, who)
  if type(cond) ~= "function" then
    error(("reactor.testing: %s: expected a function, got %s"):format(name, show(cond)), level + 1)
  end
  opts = opts or {}
  local k = T._installed()
  local vlimit = opts.virtual_timeout or 60
  local rlimit = opts.timeout or 10
  local start = k and k:now() or T._realtime()
  while true do
    if cond() then return true end
    flush(level + 1, name, who)
    if cond() then return true end
    if k then
      local nxt = k:next()
      if not nxt then
        error(("reactor.testing: %s: the condition is still false and nothing is left to happen (no timer, no bytes"
          .. " moving)"):format(name), level + 1)
      end
      if nxt > start + vlimit then
        error(("reactor.testing: %s: the condition is still false after %g virtual seconds (virtual_timeout)")
          :format(name, vlimit), level + 1)
      end
      local ok, kind, what = guarded(level + 1, name, k._advance_to, k, nxt)
      if not ok then error(("reactor.testing: %s: %s"):format(name, stuck(kind, what, k:now())), level + 1) end
    else
      local left = start + rlimit - T._realtime()
      if left <= 0 then
        error(("reactor.testing: %s: the condition is still false after %g s (timeout; with testing.clock(),"
          .. " time would be virtual)"):format(name, rlimit), level + 1)
      end
      guarded(level + 1, name, T._wait, left)
    end
  end
end

--- run_until(cond [, {virtual_timeout = 60, timeout = 10}]): run the loop
--- until cond() is true: tasks and streams too, inside a plain busted `it`.
--- Under testing.clock(), whenever nothing is left to do now, time jumps to
--- the next deadline (at most virtual_timeout virtual seconds in all);
--- otherwise it waits for events, at most timeout real seconds.
function M.run_until(cond, opts)
  return (M._run_until(cond, opts, 2, "testing.run_until"))
end

local Clock = {}
Clock.__index = Clock

--- advance(dt): move time forward dt seconds, firing each timer due on the
--- way at its own deadline, in order, with reactor.now() at that deadline; a
--- callLater(0) made meanwhile runs in the next round, after the I/O.
function Clock:advance(dt)
  if type(dt) ~= "number" or dt ~= dt or dt < 0 then
    error(("reactor.testing: clock:advance: dt must be a number of seconds >= 0, got %s"):format(show(dt)), 2)
  end
  local k = self._k
  if T._installed() ~= k then error("reactor.testing: clock:advance: this clock was uninstalled", 2) end
  local ok, kind, nxt = guarded(2, "clock:advance", k._advance_to, k, k:now() + dt)
  if not ok then error(("reactor.testing: clock:advance: %s"):format(stuck(kind, nxt, k:now())), 2) end
  return self
end

--- now() -> the virtual time (reactor.now() while installed).
function Clock:now() return self._k:now() end

--- next() -> the next deadline, or nil when no timer is started.
function Clock:next() return self._k:next() end

--- pending() -> started timers.
function Clock:pending() return self._k:pending() end

--- autojump([on = true]): whenever the loop has nothing to do (every task waits
--- on a timer), time jumps to the next deadline: reactor.run() then runs an
--- hour of timers at once (Trio's MockClock).
function Clock:autojump(on)
  self._k:autojump(on == nil or on)
  return self
end

--- uninstall(): back to real time; started timers keep the time they had left.
function Clock:uninstall()
  return self._k:uninstall()
end
Clock.__close = Clock.uninstall

function Clock:__tostring()
  return ("reactor.testing clock (t=%g%s)"):format(self._k:now(), T._installed() == self._k and "" or ", uninstalled")
end

--- clock([start = 0]) -> the clock, installed: reactor.now() is start.
function M.clock(start)
  if start ~= nil and type(start) ~= "number" then
    error(("reactor.testing.clock: start must be a number of seconds, got %s"):format(show(start)), 2)
  end
  if T._installed() then
    error("reactor.testing.clock: a virtual clock is already installed; uninstall it first"
      .. " (clock:uninstall(), or make it a <close> variable)", 2)
  end
  local k = T.clock(start or 0)
  assert(k:_install())
  return setmetatable({ _k = k }, Clock)
end

return M
