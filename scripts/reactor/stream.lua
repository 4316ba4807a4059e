-- reactor.stream: coroutine streams (asyncio's StreamReader/Writer in one),
-- over the same C transport the callbacks use, and the same read buffer.
--
-- A stream is the protocol object of its connection. Its delimiter is
-- reactor.core.framing.stream, so the core feeds each read to the
-- connection's framer (as for LineReceiver) and calls readReady(); the
-- bytes stay in C until a read takes them (transport:_pull: a separator
-- search that resumes where it stopped, or a count), so a read copies
-- nothing into Lua but the frame it returns, and only what is left over
-- when a read's callback returns is copied, once. A write goes straight to
-- transport:write (coalesced by the core until the callback that woke the
-- task returns). Failures are values: nil, "closed" | "timeout" | "busy" |
-- "too long" | a message.
local core = require "reactor.core"
local task = require "reactor.task"
local protocol = require "reactor.protocol"
local endpoints = require "reactor.endpoints"

local sub, byte = string.sub, string.byte
local need, prepare, await, wake, wake1 = task.need, task.prepare, task.await, task.wake, task.wake1
local R, WAIT = task.R, task.WAIT -- R[CURRENT]: the running task
local CURRENT <const> = 1
-- A stream's reader task is in its array part, where the C wait and wake
-- (lstream.c, RDL_S_RTASK) reach it without a string key: s[RTASK], false
-- when nobody reads; the rest of the reader's state (rn, rop, rarg) by name
local RTASK <const> = 1
-- task.lua's slots of a task's hot fields
local CO <const>, WAITING <const>, CLEANUP <const>, CLEANOBJ <const> = 1, 2, 3, 4
assert(task.CO == CO and task.WAITING == WAITING and task.CLEANUP == CLEANUP and task.CLEANOBJ == CLEANOBJ)
local running, yield = coroutine.running, coroutine.yield
local pull = core._pull -- transport:_pull, without the method lookup

local PULL_UNTIL, PULL_LINE, PULL_EXACT, PULL_SOME, PULL_ALL = 1, 2, 3, 4, 5

local M = {}

local DEFAULT_LIMIT = 64 * 1024

local Stream = setmetatable({}, { __index = protocol.Protocol })
Stream.__index = Stream
Stream.__name = "reactor.Stream"
Stream.delimiter = core.framing.stream
M.Stream = Stream

-- Every field the hot path reads lives on the instance, false when unset:
-- a nil would be looked up through the class chain (and, after a reload,
-- the migrator) at every read.
local function init(self, limit)
  self.limit = limit or DEFAULT_LIMIT
  self[RTASK], self.rn, self.rop, self.rarg = false, false, false, false
  self.wtask, self.wn, self.wpaused, self.paused = false, false, false, false
  self.eof, self.lost, self.closed, self.timeout = false, false, false, false
  self.shutting = false -- the daemon is stopping: the next wait to read closes the stream
  self.sep = false -- the last separator readuntil checked
  self.connecting = rawget(self, "connecting") or false
  self.inited = true
end

function Stream:__tostring()
  local t = rawget(self, "transport")
  return ("stream (%s)"):format(t and tostring(t) or "not connected")
end

--{=====================================================================
-- Reads: what the bytes held can give, now
--======================================================================

-- why a read cannot be satisfied any more
local function gone(self)
  if self.closed then return "closed" end
  local r = self.lost
  if r and r.type ~= "done" then return r.message or r.type end
  return "closed"
end

local function ended(self)
  return self.eof or self.lost or self.closed
end

-- Satisfy a read from the bytes held if it can be: -> true, results..., or nothing.
local function try(self, op, arg)
  local tr = self.transport
  if op == "some" then
    local s = tr:_pull(PULL_SOME, arg)
    if s then return true, s end
    if ended(self) then return true, nil, gone(self) end
  elseif op == "exact" then
    local s = tr:_pull(PULL_EXACT, arg)
    if s then return true, s end
    if ended(self) then return true, nil, gone(self), tr:_pull(PULL_ALL) or "" end
  else -- "until" / "line": arg is the separator
    local s = tr:_pull(op == "line" and PULL_LINE or PULL_UNTIL, arg, self.limit)
    if s then return true, s end
    if s == false then return true, nil, "too long" end
    if ended(self) then
      local rest = tr:_pull(PULL_ALL)
      if op == "line" and rest and rest ~= "" then -- the last line, without its newline
        if byte(rest, -1) == 13 then rest = sub(rest, 1, -2) end
        return true, rest
      end
      return true, nil, gone(self), rest or ""
    end
  end
end

--{=====================================================================
-- The reader and the writer: one of each at a time
--======================================================================

-- The reader: its task, wait number, op and argument. A reader that waits
-- in C (lstream.c's cwait, or waitnow) has only rtask here: the rest is in
-- the transport, which the read that takes its frame consults without Lua.
local function reader(self)
  local t = self[RTASK]
  if t and not self.rop then return t, core._streamwaiter(self.transport) end
  return t, self.rn, self.rop, self.rarg
end

local function wakereader(self, ...)
  local t, n = reader(self)
  self[RTASK], self.rn, self.rop, self.rarg = false, false, false, false
  core._streamset(self.transport, nil, nil, false)
  return wake(t, n, ...)
end

-- may write go straight to the transport? (write's fast path reads the
-- flag in the transport, in C)
local function setwfast(self, v)
  local tr = rawget(self, "transport")
  if tr then core._streamset(tr, nil, v) end
end

-- may readuntil/readline wait in C (lstream.c, cwait)? Only where the Lua
-- wait would do nothing but wait: no EOF, not lost, closed or stopping, not
-- paused (the Lua wait resumes reading), no timeout (the Lua wait arms it).
local function setrfast(self)
  local tr = rawget(self, "transport")
  if tr then
    core._streamset(tr, nil, nil, nil,
      not (self.eof or self.lost or self.closed or self.shutting or self.paused or self.timeout))
  end
end

local function flowing(self)
  setwfast(self, not (self.closed or self.lost or self.wpaused or self.wtask) and rawget(self, "transport") ~= nil)
end

local function wakewriter(self, ...)
  local t, n = self.wtask, self.wn
  self.wtask, self.wn = false, false
  flowing(self)
  return wake(t, n, ...)
end

-- a cancel's cleanup of t's read (task.lua's kill): t may have stopped
-- reading this stream since (a wake in C leaves t[CLEANUP] set for the next
-- wait), and then the reader is somebody else's, or nobody's
local function releasereader(self, t)
  if self[RTASK] ~= t then return end
  self[RTASK], self.rn, self.rop, self.rarg = false, false, false, false
  local tr = rawget(self, "transport")
  if tr then core._streamset(tr, nil, nil, false) end
end

local function releasewriter(self)
  self.wtask, self.wn = false, false
  flowing(self)
end

-- settimeout's timer: one per direction, reused; it fires at the earliest
-- deadline it was armed for and checks whether a wait is still past its own
local function expired(self, dir)
  local now = core.now()
  if dir == "r" then
    local d = self.rdeadline
    if self[RTASK] and d then
      if now >= d then return wakereader(self, nil, "timeout") end
      self.rtimer = core.callLater(d - now, expired, self, "r")
    end
  else
    local d = self.wdeadline
    if self.wtask and d then
      if now >= d then return wakewriter(self, nil, "timeout") end
      self.wtimer = core.callLater(d - now, expired, self, "w")
    end
  end
end

local function arm(self, dir)
  local s = self.timeout
  if not s then return end
  local deadline = core.now() + s
  local key = dir == "r" and "rtimer" or "wtimer"
  self[dir == "r" and "rdeadline" or "wdeadline"] = deadline
  local tm = self[key]
  if tm and tm:active() then
    if tm:getTime() <= deadline then return end
    tm:cancel()
  end
  self[key] = core.callLater(s, expired, self, dir)
end

local function waitread(self, t, op, arg)
  if self[RTASK] then return nil, "busy" end
  if self.shutting then -- the daemon is stopping: no next request
    self:close()
    return nil, "closed"
  end
  self[RTASK], self.rn, self.rop, self.rarg = t, prepare(t), op, arg
  core._streamset(self.transport, nil, nil, true) -- other tasks' reads: "busy", through Lua
  if self.paused then -- paused at the limit with nobody reading; now somebody is
    self.paused = false
    self.transport:resumeReading()
    setrfast(self)
  end
  if self.timeout then arm(self, "r") end
  return await(t, releasereader, self)
end

-- what a read gives: the bytes alone, or nil, why [, the partial bytes]
-- (no trailing nils: print(s:read(10)) shows what came)
local function results(a, b, c)
  if a ~= nil then return a end
  if c ~= nil then return nil, b, c end
  return nil, b
end

-- (up: the levels between the method the user called and this check's caller)
local function checkstream(self, name, up)
  if type(self) ~= "table" or self.inited == nil or not rawget(self, "transport") then
    error(("stream:%s(): call it with ':' on a stream (reactor.connect or a reactor.serve handler's)")
      :format(name), 3 + (up or 0))
  end
end

local function checkcount(n, name, up)
  if math.type(n) ~= "integer" or n < 0 then
    error(("bad argument #1 to '%s' (expected a byte count, an integer >= 0, got %s)")
      :format(name, type(n) == "number" and tostring(n) or type(n)), 3 + (up or 0))
  end
end

--{=====================================================================
-- The stream's API
--======================================================================

--- read(n) -> up to n bytes, as soon as any are there | nil, why
function Stream:read(n)
  checkstream(self, "read")
  checkcount(n, "read")
  local t = need("stream:read()", 2)
  if n == 0 then return "" end
  if self[RTASK] then return nil, "busy" end -- one reader at a time
  local ok, a, b = try(self, "some", n)
  if ok then return results(a, b) end
  return waitread(self, t, "some", n)
end

-- readuntil, readline, readexactly and write are C closures (lstream.c)
-- that answer at once when they can, and call these otherwise: the caller
-- is then one level further up (the closure is in between).

--- readexactly(n) -> n bytes | nil, why, the partial bytes (at the end of the stream)
local function readexactly(self, n)
  checkstream(self, "readexactly", 1)
  checkcount(n, "readexactly", 1)
  local t = need("stream:readexactly()", 3)
  if self[RTASK] then return nil, "busy" end -- one reader at a time
  local ok, a, b, c = try(self, "exact", n)
  if ok then return results(a, b, c) end
  return waitread(self, t, "exact", n)
end

-- The wait at the end of a batch, without the checks: the closure found
-- nothing (pulled nil) for a separator checked before, inside the task.
-- (Every other way in passes pulled: what the closure's pull gave, or true
-- when it did not pull, e.g. when the framer held another separator after
-- a readline; then the bytes held are looked at first, by try.)
-- (waitread with task.prepare and task.await inlined and its checks left to
-- the caller: going through waitread costs 16 % more at one request per
-- read, 13,521 against 11,641 instructions, measured.)
local function waitnow(self, t, op)
  -- task.prepare and task.await, inline; the wait's number is C's, and the
  -- read that brings the frame takes it in C (the separator is the framer's)
  t[WAITING] = core._streamwait(self.transport, op == "line")
  self[RTASK] = t
  if self.paused then
    self.paused = false
    self.transport:resumeReading()
    setrfast(self)
  end
  if self.timeout then arm(self, "r") end
  t[CLEANUP], t[CLEANOBJ] = releasereader, self
  return yield(WAIT)
end

--- readuntil(sep) -> the bytes before sep (sep is consumed) | nil, why, partial
local function readuntil(self, sep, pulled)
  local t = R[CURRENT]
  if pulled == nil and sep == self.sep and t and not self[RTASK]
    and not (self.eof or self.lost or self.closed or self.shutting)
    and running() == t[CO] and rawget(self, "transport") then
    return waitnow(self, t, "until")
  end
  checkstream(self, "readuntil", 1)
  if type(sep) ~= "string" or sep == "" then
    error(("bad argument #1 to 'readuntil' (expected a non-empty separator string, got %s)")
      :format(type(sep) == "string" and "an empty string" or type(sep)), 3)
  end
  t = need("stream:readuntil()", 3)
  self.sep = sep
  if self[RTASK] then return nil, "busy" end -- one reader at a time
  local ok, a, b, c = try(self, "until", sep)
  if ok then return results(a, b, c) end
  return waitread(self, t, "until", sep)
end

--- readline() -> a line without its "\n" (or "\r\n"); the last line may
--- lack its newline at the end of the stream | nil, why
local function readline(self, pulled)
  local t = R[CURRENT]
  if pulled == nil and t and not self[RTASK] and not (self.eof or self.lost or self.closed or self.shutting)
    and running() == t[CO] and rawget(self, "transport") and self.inited then
    return waitnow(self, t, "line")
  end
  checkstream(self, "readline", 1)
  t = need("stream:readline()", 3)
  if self[RTASK] then return nil, "busy" end -- one reader at a time
  local ok, a, b, c = try(self, "line", "\n")
  if ok then return results(a, b, c) end
  return waitread(self, t, "line", "\n")
end

--- write(data) -> true | nil, why. Waits (in a task) only above the high
--- water mark, until the peer has read enough.
local function write(self, data)
  checkstream(self, "write", 1)
  if type(data) ~= "string" then
    if type(data) ~= "number" then
      error(("bad argument #1 to 'write' (expected a string, got %s)"):format(type(data)), 3)
    end
    data = tostring(data)
  end
  if self.closed or self.lost then return nil, gone(self) end
  if self.wtask then return nil, "busy" end -- another task waits to write
  self.transport:write(data)
  if self.wpaused then
    local t = task.current()
    if t and coroutine.running() == t[CO] then return self:drain() end
  end
  return true
end

Stream.readuntil, Stream.readline, Stream.readexactly, Stream.write =
  core._streamfast(readuntil, readline, readexactly, write)

--- drain() -> true once the output is below the high water mark | nil, why
function Stream:drain()
  checkstream(self, "drain")
  local t = need("stream:drain()", 2)
  if self.closed or self.lost then return nil, gone(self) end
  if not self.wpaused then return true end
  if self.wtask then return nil, "busy" end
  self.wtask, self.wn = t, prepare(t)
  setwfast(self, false)
  arm(self, "w")
  return await(t, releasewriter, self)
end

--- close(): what is written is still sent; a waiting reader or writer gets
--- nil, "closed". Closing twice is harmless.
function Stream:close()
  if self.closed then return false end
  self.closed = true
  setwfast(self, false)
  setrfast(self)
  local t = rawget(self, "transport")
  if t then t:loseConnection() end
  if self[RTASK] then wakereader(self, nil, "closed") end
  if self.wtask then wakewriter(self, nil, "closed") end
  return true
end

--- settimeout(s): each later wait of a read, drain or write gives up after
--- s seconds with nil, "timeout" (the stream stays usable); nil or 0: none.
function Stream:settimeout(s)
  checkstream(self, "settimeout")
  if s ~= nil and (type(s) ~= "number" or s ~= s or s < 0) then
    error(("bad argument #1 to 'settimeout' (expected a number of seconds >= 0 or nil, got %s)")
      :format(type(s)), 2)
  end
  self.timeout = (s and s > 0) and s or false
  setrfast(self) -- (a reader waiting now waits on: the timeout is for later waits)
end

function Stream:getPeer()
  return self.transport:getPeer()
end

function Stream:getHost()
  return self.transport:getHost()
end

--- The task that owns the stream ended: the stream closes with it.
function Stream:_ended()
  self:close()
end

--{=====================================================================
-- The protocol half: what the transport calls
--======================================================================

function Stream:connectionMade()
  if not self.inited then init(self, self.limit) end
  -- this stream's own fast paths, closures over its transport (lstream.c)
  local tr = self.transport
  self.readuntil, self.readline, self.readexactly, self.write =
    core._streambind(tr, readuntil, readline, readexactly, write, releasereader)
  core._streamset(tr, self.limit, false)
  flowing(self)
  setrfast(self)
  local c = self.connecting
  if c then
    self.connecting = false
    return wake(c[1], c[2], self)
  end
  local handler = self.handler
  if handler then task.spawnfor(self, handler) end
end

-- a read arrived (the core holds its bytes): wake the reader if what it
-- waits for is there; with nobody reading, stop reading at the limit.
-- frame: the one a waitnow reader waits for, taken in C (ldispatch.c)
function Stream:readReady(frame)
  if frame then -- wakereader(self, frame), inline; C has cleared the reader flag
    local t, n = reader(self)
    self[RTASK], self.rn, self.rop, self.rarg = false, false, false, false
    core._streamset(self.transport, nil, nil, false)
    return wake1(t, n, frame)
  end
  local t, n, op, arg = reader(self)
  if op == "until" or op == "line" then -- the common case, without try's dispatch
    local s = pull(self.transport, op == "line" and PULL_LINE or PULL_UNTIL, arg, self.limit)
    if s then -- wakereader(self, s), inline
      self[RTASK], self.rn, self.rop, self.rarg = false, false, false, false
      core._streamset(self.transport, nil, nil, false)
      return wake(t, n, s)
    end
    if s == false then return wakereader(self, nil, "too long") end
    return -- a reader waits: keep reading (past the limit, its pull says "too long")
  elseif op then
    local ok, a, b, c = try(self, op, arg)
    if ok then return wakereader(self, results(a, b, c)) end
    return -- (an exact read may need more than the limit)
  end
  if not self.paused and self.transport:_pending() >= self.limit then
    self.paused = true
    self.transport:pauseReading()
    setrfast(self)
  end
end

-- the peer's FIN: a reader gets what is left, then nil, "closed"; writing goes on
function Stream:readConnectionLost()
  self.eof = true
  setrfast(self)
  local t, _, op, arg = reader(self)
  if t then
    local ok, a, b, c = try(self, op, arg)
    if ok then wakereader(self, results(a, b, c)) end
  end
  return true
end

function Stream:connectionLost(reason)
  task.reap() -- a task the watchdog stopped ends before its stream does
  self.lost = reason or { type = "done" }
  setwfast(self, false)
  setrfast(self)
  local c = self.connecting
  if c then -- lost before it was made
    self.connecting = false
    wake(c[1], c[2], nil, gone(self))
  end
  if self[RTASK] then wakereader(self, nil, gone(self)) end
  if self.wtask then wakewriter(self, nil, gone(self)) end
  if self.rtimer then self.rtimer:cancel() end
  if self.wtimer then self.wtimer:cancel() end
end

-- The daemon is stopping (SIGTERM, reactord's grace period): a task that
-- waits for its next request is told the stream closed, at once; one in
-- the middle of a request finishes it, and its next wait to read closes.
function Stream:shutdownRequested(deadline) -- luacheck: ignore deadline
  self.shutting = true
  setrfast(self)
  if self[RTASK] then self:close() end
end

function Stream:pauseProducing()
  self.wpaused = true
  setwfast(self, false)
end

function Stream:resumeProducing()
  self.wpaused = false
  flowing(self)
  if self.wtask then wakewriter(self, true) end
end

--{=====================================================================
-- reactor.connect, reactor.serve
--======================================================================

local function show(v)
  if type(v) == "string" then return ("string %q"):format(v) end
  if type(v) == "number" then return "number " .. tostring(v) end
  return type(v)
end

local function checklimit(opts, fname, up)
  local l = opts.limit
  if l ~= nil and (math.type(l) ~= "integer" or l < 1) then
    error(("bad argument to '%s' (opts.limit must be a byte count >= 1, got %s)"):format(fname, show(l)), 3 + (up or 0))
  end
end

local function cancelconnect(connector)
  connector:disconnect()
end

--- connect(host, port [, {timeout = 30, limit = 64 KiB}]) -> stream | nil, why.
--- In a task; a name is looked up off the loop. The stream closes when the task ends.
function M.connect(host, port, opts)
  local t = need("reactor.connect", 2)
  if type(host) ~= "string" or host == "" then
    error(("bad argument #1 to 'connect' (host must be a string, got %s)"):format(show(host)), 2)
  end
  if not endpoints.toport(port, 1) then
    error(("bad argument #2 to 'connect' (port must be an integer 1..65535, got %s)"):format(show(port)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'connect' (expected an options table, got %s)"):format(show(opts)), 2)
  end
  opts = opts or {}
  checklimit(opts, "connect")
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(("bad argument to 'connect' (opts.timeout must be a number of seconds, got %s)"):format(show(timeout)), 2)
  end
  local s = setmetatable({}, Stream)
  init(s, opts.limit)
  s.connecting = { t, prepare(t) }
  local failed = function(_, _, reason)
    local c = s.connecting
    if c then
      s.connecting = false
      wake(c[1], c[2], nil, reason and reason.message or "connection failed")
    end
  end
  local f = { buildProtocol = function() return s end, clientConnectionFailed = failed }
  local connector = endpoints.connectTCP(host, port, f, timeout)
  local ok, err = await(t, cancelconnect, connector)
  if not ok then return nil, err end
  task.own(t, s)
  return s
end

--- stdio() -> a stream over stdin and stdout (reads from stdin, writes to
--- stdout; stdin's end is the stream's end, stdout stays writable).
function M.stdio()
  local s = setmetatable({}, Stream)
  init(s)
  endpoints.stdio(s)
  return s
end

--- protocol(fn [, limit]) -> the protocol class of a stream server whose
--- connections each run fn(stream) in a task (what serve listens with;
--- reactor.testing.connect(fn) uses it too).
function M.protocol(fn, limit)
  -- the class holds the stream's methods itself: a method call then looks
  -- in the instance and the class only, never further up a chain
  local class = setmetatable({}, getmetatable(Stream))
  for k, v in pairs(Stream) do class[k] = v end
  class.__index, class.handler, class.limit = nil, fn, limit
  return class
end

-- is a daemon script being loaded (reactor.service.load)? Then serve
-- describes what to serve instead of listening.
local function loading()
  return (require("reactor.service").loading or 0) > 0
end

local LISTEN_OPTS = { "idleTimeout", "maxConnections", "highWater", "lowWater", "maxOutput", "backlog" }

--- serve(port | {port =, host =, limit =, ...}, fn): fn(stream) runs in a
--- task of its own for each connection; the stream closes when it returns.
--- -> the listener; in a daemon script, what the script returns.
--- (serve(path [, opts]), a script path, serves a protocol script.)
--- A daemon script writes `return reactor.serve(1060, fn)`, a tail call,
--- which takes the script's line off the stack; so serve is called through
--- a C function (core._untail), which keeps it, and blames one level up.
local function serve(where, fn)
  if type(where) == "string" and not endpoints.toport(where, 0) then
    return require("reactor.service").serve(where, fn)
  end
  local opts = type(where) == "table" and where or { port = where }
  local port = endpoints.toport(opts.port, 0)
  if not port then
    error(("bad argument #1 to 'serve' (expected a port 0..65535, an options table with port, " ..
      "or a script path, got %s)"):format(show(type(where) == "table" and opts.port or where)), 3)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'serve' (expected a function(stream) to run for each connection, got %s)")
      :format(show(fn)), 3)
  end
  if opts.host ~= nil and (type(opts.host) ~= "string" or opts.host == "") then
    error(("bad argument #1 to 'serve' (host must be an address string, got %s)"):format(show(opts.host)), 3)
  end
  checklimit(opts, "serve", 1)
  local class = M.protocol(fn, opts.limit)
  local spec = { protocol = class, port = port, host = opts.host }
  for _, k in ipairs(LISTEN_OPTS) do spec[k] = opts[k] end
  if loading() then return spec end
  local listenopts = { interface = opts.host }
  local f = protocol.asFactory({ protocol = class,
    idleTimeout = opts.idleTimeout, maxConnections = opts.maxConnections, highWater = opts.highWater,
    lowWater = opts.lowWater, maxOutput = opts.maxOutput })
  local l, msg = endpoints.listenTCP(port, f, listenopts)
  if not l then return nil, msg end
  return l
end
M.serve = core._untail(serve)

return M
