-- reactor.stream: coroutine streams (asyncio's StreamReader/Writer in one),
-- over the same C transport the callbacks use.
--
-- A stream is the protocol object of its connection: dataReceived appends
-- the read to a buffer and wakes the one reader, if what it waits for has
-- come; the task's write goes straight to transport:write (coalesced by the
-- core until the callback that woke the task returns). Failures are values:
-- nil, "closed" | "timeout" | "busy" | "too long" | a message.
--
-- The buffer is the string the read arrived in, an offset into it, and
-- (only while a frame is incomplete) a list of the reads that followed:
-- they are joined once, when the frame is complete, and readuntil searches
-- only the new bytes (plus the few a separator may straddle), so a line
-- that arrives a byte at a time costs O(length), not O(length^2).
local core = require "reactor.core"
local task = require "reactor.task"
local protocol = require "reactor.protocol"
local endpoints = require "reactor.endpoints"

local find, sub, concat = string.find, string.sub, table.concat
local need, prepare, await, wake = task.need, task.prepare, task.await, task.wake

local M = {}

local DEFAULT_LIMIT = 64 * 1024

local Stream = setmetatable({}, { __index = protocol.Protocol })
Stream.__index = Stream
Stream.__name = "reactor.Stream"
M.Stream = Stream

-- Every field the hot path reads lives on the instance, false when unset:
-- a nil would be looked up through the class chain (and, after a reload,
-- the migrator) at every read.
local function init(self, limit)
  self.buf, self.pos, self.avail, self.parts, self.window = "", 1, 0, false, ""
  self.limit = limit or DEFAULT_LIMIT
  self.rtask, self.rn, self.rop, self.rarg = false, false, false, false
  self.wtask, self.wn, self.wpaused, self.paused = false, false, false, false
  self.eof, self.lost, self.closed, self.timeout = false, false, false, false
  self.connecting = rawget(self, "connecting") or false
end

function Stream:__tostring()
  local t = rawget(self, "transport")
  return ("stream (%s)"):format(t and tostring(t) or "not connected")
end

--{=====================================================================
-- The buffer
--======================================================================

local function join(self)
  local parts = self.parts
  if parts then
    self.buf = sub(self.buf, self.pos) .. concat(parts)
    self.pos, self.parts = 1, false
  end
end

-- the first n buffered bytes (n <= avail), consumed
local function take(self, n)
  join(self)
  local buf, pos = self.buf, self.pos
  local s
  if pos == 1 and n == #buf then
    s = buf
  else
    s = sub(buf, pos, pos + n - 1)
  end
  pos = pos + n
  if pos > #buf then
    self.buf, self.pos = "", 1
  else
    self.pos = pos
  end
  local avail = self.avail - n
  self.avail = avail
  if self.paused and avail < self.limit then
    self.paused = false
    local t = rawget(self, "transport")
    if t then t:resumeReading() end
  end
  return s
end

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

-- Satisfy a read from the buffer if it can be: -> true, results..., or
-- nothing. `sepat` is where a separator already found begins (readuntil).
local function try(self, op, arg, sepat)
  local avail = self.avail
  if op == "some" then
    if avail > 0 then return true, take(self, avail < arg and avail or arg) end
    if ended(self) then return true, nil, gone(self) end
  elseif op == "exact" then
    if avail >= arg then return true, take(self, arg) end
    if ended(self) then return true, nil, gone(self), take(self, avail) end
  else -- "until" / "line": arg is the separator
    local at = sepat
    if not at and not self.parts then
      local i = find(self.buf, arg, self.pos, true)
      if i then at = i - self.pos + 1 end
    elseif not at then
      join(self)
      local i = find(self.buf, arg, self.pos, true)
      if i then at = i - self.pos + 1 end
    end
    if at then
      if at - 1 > self.limit then return true, nil, "too long" end
      local s = take(self, at - 1)
      take(self, #arg)
      if op == "line" and sub(s, -1) == "\r" then s = sub(s, 1, -2) end
      return true, s
    end
    if avail - #arg + 1 > self.limit then return true, nil, "too long" end
    if ended(self) then
      if op == "line" and avail > 0 then
        local s = take(self, avail)
        if sub(s, -1) == "\r" then s = sub(s, 1, -2) end
        return true, s
      end
      return true, nil, gone(self), take(self, avail)
    end
    -- not found: what the next read must be searched with
    self.window = #arg > 1 and sub(self.buf, -(#arg - 1)) or ""
  end
end

--{=====================================================================
-- The reader and the writer: one of each at a time
--======================================================================

local function wakereader(self, ...)
  local t, n = self.rtask, self.rn
  self.rtask, self.rn, self.rop, self.rarg = false, false, false, false
  return wake(t, n, ...)
end

local function wakewriter(self, ...)
  local t, n = self.wtask, self.wn
  self.wtask, self.wn = false, false
  return wake(t, n, ...)
end

local function releasereader(self)
  self.rtask, self.rn, self.rop, self.rarg = false, false, false, false
end

local function releasewriter(self)
  self.wtask, self.wn = false, false
end

-- settimeout's timer: one per direction, reused; it fires at the earliest
-- deadline it was armed for and checks whether a wait is still past its own
local function expired(self, dir)
  local now = core.now()
  if dir == "r" then
    local d = self.rdeadline
    if self.rtask and d then
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
  if self.rtask then return nil, "busy" end
  self.rtask, self.rn, self.rop, self.rarg = t, prepare(t), op, arg
  if self.paused then -- paused at the limit with nobody reading; now somebody is
    self.paused = false
    self.transport:resumeReading()
  end
  arm(self, "r")
  return await(t, releasereader, self)
end

local function checkstream(self, name)
  if getmetatable(self) == nil or self.avail == nil then
    error(("stream:%s(): call it with ':' on a stream (reactor.connect or a reactor.serve handler's)")
      :format(name), 3)
  end
end

local function checkcount(n, name)
  if math.type(n) ~= "integer" or n < 0 then
    error(("bad argument #1 to '%s' (expected a byte count, an integer >= 0, got %s)")
      :format(name, type(n) == "number" and tostring(n) or type(n)), 3)
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
  local ok, a, b = try(self, "some", n)
  if ok then return a, b end
  return waitread(self, t, "some", n)
end

--- readexactly(n) -> n bytes | nil, why, the partial bytes (at the end of the stream)
function Stream:readexactly(n)
  checkstream(self, "readexactly")
  checkcount(n, "readexactly")
  local t = need("stream:readexactly()", 2)
  local ok, a, b, c = try(self, "exact", n)
  if ok then return a, b, c end
  return waitread(self, t, "exact", n)
end

--- readuntil(sep) -> the bytes before sep (sep is consumed) | nil, why, partial
function Stream:readuntil(sep)
  checkstream(self, "readuntil")
  if type(sep) ~= "string" or sep == "" then
    error(("bad argument #1 to 'readuntil' (expected a non-empty separator string, got %s)")
      :format(type(sep) == "string" and "an empty string" or type(sep)), 2)
  end
  local t = need("stream:readuntil()", 2)
  local ok, a, b, c = try(self, "until", sep)
  if ok then return a, b, c end
  return waitread(self, t, "until", sep)
end

--- readline() -> a line without its "\n" (or "\r\n"); the last line may
--- lack its newline at the end of the stream | nil, why
function Stream:readline()
  checkstream(self, "readline")
  local t = need("stream:readline()", 2)
  local ok, a, b, c = try(self, "line", "\n")
  if ok then return a, b, c end
  return waitread(self, t, "line", "\n")
end

--- write(data) -> true | nil, why. Waits (in a task) only above the high
--- water mark, until the peer has read enough.
function Stream:write(data)
  checkstream(self, "write")
  if type(data) ~= "string" then
    if type(data) ~= "number" then
      error(("bad argument #1 to 'write' (expected a string, got %s)"):format(type(data)), 2)
    end
    data = tostring(data)
  end
  if self.closed or self.lost then return nil, gone(self) end
  if self.wtask then return nil, "busy" end -- another task waits to write
  self.transport:write(data)
  if self.wpaused then
    local t = task.current()
    if t and coroutine.running() == t.co then return self:drain() end
  end
  return true
end

--- drain() -> true once the output is below the high water mark | nil, why
function Stream:drain()
  checkstream(self, "drain")
  local t = need("stream:drain()", 2)
  if self.closed or self.lost then return nil, gone(self) end
  if not self.wpaused then return true end
  if self.wtask then return nil, "busy" end
  self.wtask, self.wn = t, prepare(t)
  arm(self, "w")
  return await(t, releasewriter, self)
end

--- close(): what is written is still sent; a waiting reader or writer gets
--- nil, "closed". Closing twice is harmless.
function Stream:close()
  if self.closed then return false end
  self.closed = true
  local t = rawget(self, "transport")
  if t then t:loseConnection() end
  if self.rtask then wakereader(self, nil, "closed") end
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
  self.timeout = (s and s > 0) and s or nil
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
  if self.avail == nil then init(self, self.limit) end
  local c = self.connecting
  if c then
    self.connecting = false
    return wake(c[1], c[2], self)
  end
  local handler = self.handler
  if handler then task.spawnfor(self, handler) end
end

function Stream:dataReceived(data)
  local avail = self.avail
  local n = #data
  if avail == 0 then
    self.buf, self.pos = data, 1
  else
    local parts = self.parts
    if parts then
      parts[#parts + 1] = data
    else
      self.parts = { data }
    end
  end
  avail = avail + n
  self.avail = avail
  local op = self.rop
  if op then
    local sepat
    if op == "until" or op == "line" then -- search the new bytes only
      local sep = self.rarg
      local w = self.window or ""
      local s = #w > 0 and w .. data or data
      local i = find(s, sep, 1, true)
      if i then
        sepat = avail - n - #w + i
      else
        self.window = #sep > 1 and sub(s, -(#sep - 1)) or ""
        if avail - #sep + 1 <= self.limit then goto hold end
      end
    elseif op == "exact" and avail < self.rarg then
      goto hold
    end
    do
      local ok, a, b, c = try(self, op, self.rarg, sepat)
      if ok then return wakereader(self, a, b, c) end
    end
  end
  ::hold::
  if avail >= self.limit and not self.paused and not (self.rop == "exact" and avail < self.rarg) then
    self.paused = true
    self.transport:pauseReading()
  end
end

-- the peer's FIN: a reader gets what is left, then nil, "closed"; writing goes on
function Stream:readConnectionLost()
  self.eof = true
  if self.rop then
    local ok, a, b, c = try(self, self.rop, self.rarg)
    if ok then wakereader(self, a, b, c) end
  end
  return true
end

function Stream:connectionLost(reason)
  task.reap() -- a task the watchdog stopped ends before its stream does
  self.lost = reason or { type = "done" }
  local c = self.connecting
  if c then -- lost before it was made
    self.connecting = false
    wake(c[1], c[2], nil, gone(self))
  end
  if self.rop then wakereader(self, select(2, try(self, self.rop, self.rarg))) end
  if self.wtask then wakewriter(self, nil, gone(self)) end
  if self.rtimer then self.rtimer:cancel() end
  if self.wtimer then self.wtimer:cancel() end
end

function Stream:pauseProducing()
  self.wpaused = true
end

function Stream:resumeProducing()
  self.wpaused = false
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

local function checklimit(opts, fname)
  local l = opts.limit
  if l ~= nil and (math.type(l) ~= "integer" or l < 1) then
    error(("bad argument to '%s' (opts.limit must be a byte count >= 1, got %s)"):format(fname, show(l)), 3)
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
function M.serve(where, fn)
  if type(where) == "string" and not endpoints.toport(where, 0) then
    return require("reactor.service").serve(where, fn)
  end
  local opts = type(where) == "table" and where or { port = where }
  local port = endpoints.toport(opts.port, 0)
  if not port then
    error(("bad argument #1 to 'serve' (expected a port 0..65535, an options table with port, " ..
      "or a script path, got %s)"):format(show(type(where) == "table" and opts.port or where)), 2)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'serve' (expected a function(stream) to run for each connection, got %s)")
      :format(show(fn)), 2)
  end
  if opts.host ~= nil and (type(opts.host) ~= "string" or opts.host == "") then
    error(("bad argument #1 to 'serve' (host must be an address string, got %s)"):format(show(opts.host)), 2)
  end
  checklimit(opts, "serve")
  local class = setmetatable({ handler = fn, limit = opts.limit }, Stream)
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

return M
