-- reactor.http: an HTTP/1.1 server with a router, on core's strict parser.
--
-- The heads are parsed in C from the connection's read buffer (lhttp.c:
-- reactor.core.framing.http): every whole request in a read is handed to
-- requestReceived in one pass, its headers (a table of lower-case names,
-- made when the handler first reads req.headers) and
-- its body decoded (Content-Length or chunked; above maxBody, read in parts
-- with req:read, see "Request bodies in parts"). Each request's handler runs
-- as a task (it may reactor.sleep, connect, gather); the responses leave in
-- request order, each as soon as it and all before it are done, so the ones
-- ready after one read batch leave in one write (the core coalesces).
--
--   local http = require "reactor.http"
--   local app = http.app()
--   app:get("/hello/{name}", function(req) return "hello, " .. http.escape(req.params.name) end)
--   return app:serve(8080)
--
-- A handler gets req and returns [status,] [headers,] body: a string body
-- alone is a 200; status is an integer; headers a table {Name = "value"}.
local core = require "reactor.core"
local task = require "reactor.task"
-- task.lua's slots of a task's hot fields
local CO <const>, WAITING <const>, STREAMS <const> = 1, 2, 6
assert(task.CO == CO and task.WAITING == WAITING and task.STREAMS == STREAMS)
local protocol = require "reactor.protocol"
local endpoints = require "reactor.endpoints"
local log = require "reactor.log"

local M = {}

local concat = table.concat
local byte, char, gsub, find, sub, format = string.byte, string.char, string.gsub, string.find,
  string.sub, string.format
local tonumber, type, tostring, next, setmetatable, rawset, rawget =
  tonumber, type, tostring, next, setmetatable, rawset, rawget
local spawn = task.spawnnamed

M.MAX_PIPELINE = 64 -- requests in flight on one connection before reading pauses

--{=====================================================================
-- Text: escaping, decoding
--======================================================================

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- escape(s) -> s with & < > " ' as HTML entities (for text and attribute values).
function M.escape(s)
  if type(s) ~= "string" then
    if type(s) ~= "number" then
      error(("bad argument #1 to 'escape' (expected a string, got %s)"):format(type(s)), 2)
    end
    s = tostring(s)
  end
  return (gsub(s, "[&<>\"']", ESC))
end

local function hex(h)
  return char(tonumber(h, 16))
end

--- decode(s) -> s with each %XX decoded, or nil if a % is not followed by two hex digits.
function M.decode(s)
  if not find(s, "%", 1, true) then return s end
  if find(s, "%%%X") or find(s, "%%.%X") or find(s, "%%.?$") then return nil end
  return (gsub(s, "%%(%x%x)", hex))
end
local decode = M.decode

local function formdecode(s)
  if find(s, "+", 1, true) then s = gsub(s, "+", " ") end
  return decode(s)
end

--- parsequery("a=1&b=x+y") -> {a = "1", b = "x y"} (a repeated name keeps its last value;
--- a name without "=" is ""), or nil if it holds a bad %-escape.
function M.parsequery(q)
  local t = {}
  if q == nil or q == "" then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = formdecode(k), formdecode(v)
    if not k or not v then return nil end
    t[k] = v
  end
  return t
end

--{=====================================================================
-- Responses
--======================================================================

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other", [304] = "Not Modified",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [417] = "Expectation Failed", [422] = "Unprocessable Content",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}
M.reasons = REASONS

local build = core._httpbuild -- lhttp.c: the checks and the bytes (and the Date field), in one C call

--- The bytes of a response from a handler's [status,] [headers,] body
--- -> bytes, close (a handler's Connection: close) | nil, why
local function response(a, b, c, head, close)
  return build(a, b, c, head, close) -- (build tells the three apart)
end

--{=====================================================================
-- The router
--======================================================================

-- an app is a factory too (its protocol serves its routes), so a daemon
-- script may `return app`
local App = setmetatable({}, { __index = protocol.Factory })
App.__index = App
App.__name = "reactor.http.App"

-- "/hello/{name}" -> {"hello", {"name"}}; literal segments as sent (decoded)
local function compile(pattern)
  local segs = {}
  for seg in pattern:sub(2):gmatch("([^/]*)/?") do
    segs[#segs + 1] = seg
  end
  -- gmatch gives a trailing empty match: drop it unless the pattern ends with "/"
  if segs[#segs] == "" and sub(pattern, -1) ~= "/" then segs[#segs] = nil end
  if pattern == "/" then segs = { "" } end
  local names = {}
  for i, seg in ipairs(segs) do
    local name = seg:match("^{([%a_][%w_]*)}$")
    if name then
      if names[name] then return nil, ("parameter {%s} appears twice"):format(name) end
      names[name] = true
      segs[i] = { name }
    elseif find(seg, "[{}]") then
      return nil, ("bad segment %q (a parameter is a whole segment, {name})"):format(seg)
    else
      local d = decode(seg)
      if not d then return nil, ("bad %%-escape in %q"):format(seg) end
      segs[i] = d
    end
  end
  return segs
end

local function split(path)
  local segs = {}
  for seg in path:sub(2):gmatch("([^/]*)/?") do
    local d = decode(seg)
    if not d then return nil end
    segs[#segs + 1] = d
  end
  if segs[#segs] == "" and sub(path, -1) ~= "/" then segs[#segs] = nil end
  if path == "/" then segs = { "" } end
  return segs
end

local function matches(route, segs)
  local rs = route.segs
  if #rs ~= #segs then return nil end
  local params
  for i = 1, #rs do
    local r, s = rs[i], segs[i]
    if type(r) == "table" then
      if s == "" then return nil end
      params = params or {}
      params[r[1]] = s
    elseif r ~= s then
      return nil
    end
  end
  return params or {}
end

local function show(v)
  if type(v) == "string" then return ("string %q"):format(v) end
  return type(v)
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function addroute(app, method, pattern, handler, fname, level)
  if type(method) ~= "string" or not find(method, "^[%w!#$%%&'*+.^_`|~-]+$") then
    error(("bad argument #1 to '%s' (expected a method such as \"GET\", got %s)"):format(fname, show(method)),
      level + 1)
  end
  local argn = fname == "route" and 2 or 1
  if type(pattern) ~= "string" or sub(pattern, 1, 1) ~= "/" then
    error(("bad argument #%d to '%s' (expected a path pattern starting with \"/\", such as \"/hello/{name}\", got %s)")
      :format(argn, fname, show(pattern)), level + 1)
  end
  if not callable(handler) then
    error(("bad argument #%d to '%s' (expected a handler function(req), got %s)")
      :format(argn + 1, fname, show(handler)), level + 1)
  end
  local segs, why = compile(pattern)
  if not segs then
    error(("bad argument #%d to '%s' (%s)"):format(argn, fname, why), level + 1)
  end
  local routes = app._routes
  routes[#routes + 1] = { method = method, pattern = pattern, segs = segs, handler = handler }
  -- a literal pattern with no parameter route before it: found by a lookup
  -- (the linear scan would find the same first match)
  local static = app._static
  if not app._params and not find(pattern, "%", 1, true) then
    local byp = static[pattern]
    if not byp then
      byp = {}
      static[pattern] = byp
    end
    if byp[method] == nil then byp[method] = handler end
  end
  for _, seg in ipairs(segs) do
    if type(seg) == "table" then app._params = true end
  end
end

--- app:route(method, pattern, handler) -> app. pattern: "/", "/a/b", "/hello/{name}"
--- ({name} is one whole non-empty segment, %-decoded into req.params.name).
function App:route(method, pattern, handler)
  addroute(self, method, pattern, handler, "route", 2)
  return self -- not a tail call: the error level counts this frame
end

-- app:get / post / put / delete(pattern, handler) -> app
for name, method in pairs { get = "GET", post = "POST", put = "PUT", delete = "DELETE" } do
  App[name] = function(self, pattern, handler)
    addroute(self, method, pattern, handler, name, 2)
    return self -- not a tail call: the error level counts this frame
  end
end

--- app:match(method, path) -> handler, params | nil, 404 | nil, 405, "GET, HEAD"
--- (a HEAD is served by the GET route; path is the raw path, %-escapes in it).
function App:match(method, path)
  local byp = self._static[path]
  if byp then
    local h = byp[method] or (method == "HEAD" and byp.GET)
    if h then return h, {} end
  end
  local segs = split(path)
  if not segs then return nil, 400 end
  local allow
  local routes = self._routes
  for i = 1, #routes do
    local r = routes[i]
    local params = matches(r, segs)
    if params then
      local m = r.method
      if m == method or (method == "HEAD" and m == "GET") then return r.handler, params end
      allow = allow or {}
      allow[m] = true
      if m == "GET" then allow.HEAD = true end
    end
  end
  if not allow then return nil, 404 end
  local list = {}
  for m in pairs(allow) do list[#list + 1] = m end
  table.sort(list)
  return nil, 405, concat(list, ", ")
end

--- app:methods() -> "GET, HEAD, POST": every method a route has (HEAD with GET), sorted.
function App:methods()
  local set, list = {}, {}
  for _, r in ipairs(self._routes) do
    set[r.method] = true
    if r.method == "GET" then set.HEAD = true end
  end
  for m in pairs(set) do list[#list + 1] = m end
  table.sort(list)
  return concat(list, ", ")
end

--{=====================================================================
-- The connection: requests in, responses out in order
--======================================================================

-- the traceback at the error, the user's frames only (as reactor.task logs)
local function msgh(err)
  local tb = debug.traceback(tostring(err), 2)
  local out = {}
  for line in tb:gmatch("[^\n]+") do
    if not (line:find("^%s+%[C%]") or line:find("^%s+reactor/") or line:find("^%s+%.%.%.[^\n]*reactor/")) then
      out[#out + 1] = line
    end
  end
  tb = concat(out, "\n")
  if type(err) == "string" and find(err, "^script timeout") then
    -- the watchdog stops the whole callback, this task's caller too: say
    -- here, where the stack still shows the line that spun
    log.callbackError("an http handler", tb)
  end
  return tb
end

local function errorbody(status)
  return format("%d %s\n", status, REASONS[status] or "Error")
end

local function flush(self)
  local q, head = self.q, self.head
  local tr = self.transport
  while true do
    local r = q[head]
    if not r then
      local sq = self.sq -- a streamed response, now first: its writes may go
      if sq and sq[head] then
        self.head = head
        return sq[head]:_turn()
      end
      break
    end
    q[head], self.tasks[head] = nil, nil
    head = head + 1
    if not self.lost then tr:write(r) end
    if self.closeat == head - 1 then
      self.head = head
      if not self.lost then tr:loseConnection() end
      return
    end
  end
  if head == self.tail then -- empty: slots start again at 1 (array keys); idle from now on
    head, self.tail = 1, 1
    self.served = true -- the idle timeout counts from about now (timeoutConnection)
  end
  self.head = head
  if self.paused and self.tail - head < M.MAX_PIPELINE // 2 and not self.closeat then
    self.paused = false
    tr:resumeReading()
  end
end

local function respond(self, slot, bytes, close)
  self.q[slot] = bytes
  if close and (not self.closeat or slot < self.closeat) then self.closeat = slot end
  if slot == self.head then flush(self) end
end

--{=====================================================================
-- Streamed responses: res = req:respond(status, headers); res:write(part)...; res:finish()
--======================================================================

-- A streamed response holds its slot in the connection's queue (q[slot] is
-- the response itself, a table) until it finishes. Its head and parts go
-- straight to the transport, and only while the slot is the first due:
-- a write before that waits (the handler's task suspends) until the
-- responses before it are out, and a write above the transport's high
-- water mark waits until the client has read enough (pauseProducing /
-- resumeProducing below). The responses behind it wait in the queue as
-- usual and leave after its last part.
local TASK = "the reactor.http request task" -- how the log names one (its errors are the handler's)
local Res = {}
local CONNS = setmetatable({}, { __mode = "k" }) -- transport -> its connection (req:respond finds it)
Res.__index = Res
Res.__name = "reactor.http response"
local need, prepare, await, wake = task.need, task.prepare, task.await, task.wake

local function releasewait(self)
  self.wt, self.wn = false, false
end

-- wait until woken (its turn, the client read enough, the client went)
local function waitres(self, what)
  local t = need(what, 3)
  if self.wt then return nil, "busy" end -- another task waits on this response
  self.wt, self.wn = t, prepare(t)
  return await(t, releasewait, self)
end

local function wakeres(self, ...)
  local t, n = self.wt, self.wn
  if not t then return end
  self.wt, self.wn = false, false
  return wake(t, n, ...)
end

function Res:_turn() -- flush: the slot is the first due
  wakeres(self, true)
end

function Res:_lost() -- the connection is gone
  self.lost = true
  wakeres(self, nil, "closed")
end

local function lower(k)
  return type(k) == "string" and k:lower()
end

--- req:respond([status,] [headers]) -> res: the response is streamed in parts:
--- res:write(part) ... res:finish([part]). Sent chunked, or with a
--- Content-Length when headers give one (then exactly that many bytes).
local function reqrespond(req, status, headers)
  if getmetatable(req) ~= M._REQ then
    error("req:respond(): call it with ':' on the request a handler gets", 2)
  end
  local t = task.current()
  local c = CONNS[rawget(req, "transport")]
  local s -- its slot: the one its task runs for, else the one being dispatched now (a first step)
  if c and t then
    for slot, tt in pairs(c.tasks) do
      if tt == t then s = slot end
    end
    -- not found: a handler's first step runs inside requestReceived, right
    -- after its slot was taken (the last one), before its task is listed
    local last = c.tail - 1
    if not s and rawget(t, "where") == TASK and c.q[last] == false and not c.tasks[last]
      and not (c.sq and c.sq[last]) then
      s = last
    end
  end
  if not s then
    error("req:respond() must be called from the request's own handler task", 2)
  end
  if rawget(req, "_res") then error("req:respond(): this request's response has begun already", 2) end
  if type(status) == "table" and headers == nil then status, headers = 200, status end
  if status == nil then status = 200 end
  if math.type(status) ~= "integer" or status < 200 or status > 999 then
    error(("bad argument #1 to 'respond' (expected a final status 200..999, got %s)"):format(show(status)), 2)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error(("bad argument #2 to 'respond' (expected a headers table {Name = \"value\"}, got %s)")
      :format(show(headers)), 2)
  end
  local slot = s
  local close = c.closeslot == slot
  local cl
  for k, v in pairs(headers or {}) do
    if lower(k) == "content-length" then
      cl = math.tointeger(tonumber(v))
      if not cl or cl < 0 or not find(tostring(v), "^%d+$") then
        error(("bad argument #2 to 'respond' (Content-Length must be a number of bytes, got %s)"):format(show(v)), 2)
      end
    end
  end
  local nobody = status == 204 or status == 304
  local framing = nobody and "none" or cl and "length" or req.version == "1.1" and "chunked" or "close"
  if framing == "close" then close = true end -- an HTTP/1.0 client: the end of the body is the end of the connection
  -- the head as build makes it for a 1-byte body, its Content-Length then replaced
  local bytes, why = build(status, headers, "-", true, close)
  if not bytes then error(("bad argument #2 to 'respond' (%s)"):format(why), 2) end
  close = why
  if not nobody then
    local i, j = find(bytes, "\r\nContent-Length: 1\r\n", 1, true)
    local field = framing == "length" and format("\r\nContent-Length: %d\r\n", cl)
      or framing == "chunked" and "\r\nTransfer-Encoding: chunked\r\n" or "\r\n"
    bytes = sub(bytes, 1, i - 1) .. field .. sub(bytes, j + 1)
  end
  local res = setmetatable({ conn = c, slot = slot, close = close, framing = framing, left = cl,
    headbytes = bytes, nobody = nobody or req.method == "HEAD", finished = false, lost = c.lost,
    wt = false, wn = false }, Res)
  rawset(req, "_res", res)
  local sq = c.sq
  if not sq then
    sq = {}
    c.sq = sq
  end
  sq[slot] = res
  if not c.lost and not c.tasks[slot] then c.tasks[slot] = t end -- (a handler that has not waited yet)
  return res
end

local function checkres(self, fname)
  if getmetatable(self) ~= Res then
    error(("res:%s(): call it with ':' on the response req:respond() returned"):format(fname), 3)
  end
end

-- the part as a string, or an error at the caller's line
local function part(data, fname)
  local ty = type(data)
  if ty == "string" then return data end
  if ty == "number" then return tostring(data) end
  error(("bad argument #1 to '%s' (expected a string, got %s)"):format(fname, ty), 3)
end

-- wait until the slot is due; then the head goes out if it has not -> true | nil, why
local function myturn(self, what)
  local c = self.conn
  while not self.lost and c.head ~= self.slot do
    local ok, why = waitres(self, what)
    if not ok then return nil, why end
  end
  if self.lost then return nil, "closed" end
  local hb = self.headbytes
  if hb then
    self.headbytes = false
    c.transport:write(hb)
  end
  return true
end

--- res:write(part) -> true | nil, "closed" (the client went: stop producing).
--- Waits (the handler's task suspends) while responses before this one are
--- due, and while the connection's output is above its high water mark.
function Res:write(data)
  checkres(self, "write")
  data = part(data, "write")
  if self.finished then error("res:write(): the response is finished (res:finish() was called)", 2) end
  if self.lost then return nil, "closed" end
  local n = #data
  if self.framing == "length" then
    if n > self.left then
      error(("res:write(): %d bytes over the Content-Length (%d bytes left)"):format(n, self.left), 2)
    end
    self.left = self.left - n
  end
  local ok, why = myturn(self, "res:write()")
  if not ok then return nil, why end
  if n > 0 and not self.nobody then
    local tr = self.conn.transport
    if self.framing == "chunked" then
      tr:write(format("%x\r\n", n))
      tr:write(data)
      tr:write("\r\n")
    else
      tr:write(data)
    end
  end
  local c = self.conn
  -- the write that crossed the high water mark said pauseProducing: wait
  -- until the client has read the output down to the low one
  while c.wpaused and not self.lost do
    ok, why = waitres(self, "res:write()")
    if not ok then return nil, why end
  end
  if self.lost then return nil, "closed" end
  return true
end

--- res:finish([part]) -> true | nil, why: the last part (if any), then the
--- end of the body; the responses behind it may leave. A handler that
--- returns without finishing finishes here.
function Res:finish(data)
  checkres(self, "finish")
  if data ~= nil then
    data = part(data, "finish")
    if data ~= "" then
      local ok, why = self:write(data)
      if not ok then
        self.finished = true
        return nil, why
      end
    end
  end
  if self.finished then return true end
  self.finished = true
  if self.lost then return nil, "closed" end
  local c, slot = self.conn, self.slot
  if self.framing == "length" and self.left > 0 then -- the client would wait for the rest: it is cut off
    log.log(("http: a streamed response ended %d bytes short of its Content-Length: connection closed")
      :format(self.left))
    c.sq[slot] = nil
    respond(c, slot, self.headbytes or "", true)
    return nil, ("%d bytes short of the Content-Length"):format(self.left)
  end
  local last = self.framing == "chunked" and not self.nobody and "0\r\n\r\n" or ""
  local hb = self.headbytes
  if hb then last = hb .. last end -- never sent: as a whole response, queued in its slot
  self.headbytes = false
  if c.tasks[slot] == task.current() then c.tasks[slot] = nil end -- (its slot may be reused from now on)
  c.sq[slot] = nil
  respond(c, slot, last, self.close or self.framing == "close")
  return true
end

-- the handler returned (ok) or failed
function Res:_done(ok)
  if self.finished or self.lost then return end
  if ok then return self:finish() end
  self.finished = true
  local c, slot = self.conn, self.slot
  c.sq[slot] = nil
  if self.headbytes then -- nothing sent yet: a 500, as for any handler
    respond(c, slot, (build(500, nil, errorbody(500), self.nobody, true)), true)
  else -- parts are out: the body is left unfinished and the connection closes (the client sees it cut)
    respond(c, slot, "", true)
  end
end

--{=====================================================================
-- Request bodies in parts: req:read([n]), req:readall([max])
--======================================================================

-- A body above maxBody (up to maxStreamBody) is not req.body: requestReceived
-- gets body false as soon as the head is whole, and lhttp.c hands the body's
-- data to bodyReceived as it reads it. The parts wait in the request's queue
-- (req._bs: parts at integer keys first..last) for the handler's req:read;
-- with BODY_HIGH bytes queued, reading stops until the handler has taken them
-- down to BODY_LOW. A handler that returns before the body's end has its
-- response sent with Connection: close and nothing more is read.
local BODY_HIGH, BODY_LOW = 256 * 1024, 64 * 1024

local function bodycancel(bs) -- the reader's task was cancelled, or woken
  bs.wt, bs.wn = false, false
  local tm = bs.timer
  if tm then
    bs.timer = false
    tm:cancel()
  end
end

local function bodywake(bs, ...)
  local t, n = bs.wt, bs.wn
  if not t then return end
  bodycancel(bs)
  wake(t, n, ...)
end

local function bodytimeout(bs)
  bs.timer = false
  bodywake(bs, nil, "timeout")
end

local function checkn(n, fname, what)
  if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
    error(("bad argument #1 to '%s' (expected %s, got %s)"):format(fname, what, show(n)), 3)
  end
end

--- req:read([n]) -> the next part of the body (at most n bytes), nil at its end,
--- or nil, why ("closed": the client went; "timeout": nothing for requestTimeout
--- seconds; the parser's reason for a bad chunked body). A whole body (req.body)
--- is read the same way.
local function reqread(req, n)
  if getmetatable(req) ~= M._REQ then
    error("req:read(): call it with ':' on the request a handler gets", 2)
  end
  checkn(n, "read", "a byte count >= 1, or nothing")
  if n == 0 then error("bad argument #1 to 'read' (expected a byte count >= 1, or nothing, got 0)", 2) end
  local bs = rawget(req, "_bs")
  if not bs then -- a whole body: req.body, from where the last read ended
    local body, pos = rawget(req, "body") or "", rawget(req, "_rpos") or 1
    if pos > #body then return nil end
    local last = n and pos + n - 1 or #body
    rawset(req, "_rpos", last + 1)
    if pos == 1 and last >= #body then return body end
    return sub(body, pos, last)
  end
  while true do
    local i = bs.first
    local piece = bs[i]
    if piece then
      if n and #piece > n then
        bs[i] = sub(piece, n + 1)
        piece = sub(piece, 1, n)
      else
        bs[i] = nil
        bs.first = i + 1
      end
      local q = bs.queued - #piece
      bs.queued = q
      if bs.paused and q < BODY_LOW then
        bs.paused = false
        local c = bs.conn
        if not c.paused and not c.lost then c.transport:resumeReading() end
      end
      return piece
    end
    if bs.ended then
      if bs.err then return nil, bs.err end
      return nil
    end
    local c = bs.conn
    if c.lost then return nil, "closed" end
    if bs.wt then return nil, "busy" end -- another task reads this body
    local t = need("req:read()", 2)
    bs.wt, bs.wn = t, prepare(t)
    local after = c._requesttimeout
    if after then bs.timer = core.callLater(after, bodytimeout, bs) end
    local ok, why = await(t, bodycancel, bs)
    if not ok then return nil, why end
  end
end

--- req:readall([max]) -> the rest of the body as one string (at most max bytes,
--- else nil, "the body is above MAX bytes"), or nil, why as req:read gives it.
local function reqreadall(req, max)
  if getmetatable(req) ~= M._REQ then
    error("req:readall(): call it with ':' on the request a handler gets", 2)
  end
  checkn(max, "readall", "a byte count >= 0, or nothing")
  local parts, total = {}, 0
  while true do
    local piece, why = reqread(req)
    if not piece then
      if why then return nil, why end
      return concat(parts)
    end
    total = total + #piece
    if max and total > max then return nil, ("the body is above %d bytes"):format(max) end
    parts[#parts + 1] = piece
  end
end

-- a handler's [status,] [headers,] body with Connection: close added (as build tells them apart)
local function closing(a, b, c)
  local status, headers, body = a, b, c
  if math.type(a) ~= "integer" then
    status = 200
    if type(a) == "table" then headers, body = a, b else headers, body = nil, a end
  elseif type(b) ~= "table" and b ~= nil then
    headers, body = nil, b
  end
  local h = { Connection = "close" }
  if type(headers) == "table" then
    for k, v in pairs(headers) do
      if not (type(k) == "string" and k:lower() == "connection") then h[k] = v end
    end
  end
  return status, h, body
end

-- the handler is done (or failed) before its streamed body's end: nothing
-- more is read, and the connection closes after its response
local function abandon(req)
  local bs = rawget(req, "_bs")
  if bs.ended or bs.abandoned then return false end
  bs.abandoned = true
  for i = bs.first, bs.last do bs[i] = nil end
  bs.queued = 0
  local conn = bs.conn
  if not conn.paused then
    conn.paused = true
    if not conn.lost then conn.transport:pauseReading() end
  end
  if not conn.closeat or bs.slot < conn.closeat then conn.closeat = bs.slot end
  return true
end

local ABANDON = { __close = function(g) if g[1] then abandon(g[1]) end end } -- (an error too)

-- the handler of a request with a streamed body (abandon above)
local function streamed(handler)
  return function(req)
    local guard <close> = setmetatable({ req }, ABANDON)
    local a, b, c = handler(req)
    guard[1] = false
    if not abandon(req) then return a, b, c end
    local res = rawget(req, "_res")
    if res then -- req:respond: its last part closes
      res.close = true
      return a, b, c
    end
    return closing(a, b, c)
  end
end


-- Request tasks are kept for the next request when they are done (a task
-- and its coroutine made per request cost more than the rest of the
-- request): an idle one parks in a yield of its own (waiting on nothing, so
-- no waker can resume it) and the next request resumes it with its job
-- (task._step: the resume wake would make). At most MAX_IDLE wait; one
-- that is cancelled (its client went) or stopped by the watchdog is dead,
-- and skipped. idle[1..nidle] are the idle ones; the slots above may still
-- hold tasks taken since (at most MAX_IDLE, overwritten as the pool refills).
local idle, nidle = {}, 0
local MAX_IDLE = 64
local WAIT, step, yield = task.WAIT, task._step, coroutine.yield
local active = task.active

-- A request task: each request's handler, then its response, which goes
-- straight to the transport when nothing is due before it (build writes
-- it: no string, no queue), else waits in the queue for those before it.
local function worker(self, slot, handler, req, close)
  local t = task.current()
  while true do
    do -- the request (its locals end here: an idle task keeps none of them)
      local ok, a, b, c = xpcall(handler, msgh, req)
      local tasks = self.tasks
      -- done: a cancel of this connection no longer concerns its task (the slot
      -- is another request's if a streamed response finished before)
      if tasks[slot] == t then tasks[slot] = nil end
      local res = self.sq and rawget(req, "_res")
      if res then -- req:respond: the response is (being) streamed
        if not ok then log.callbackError(("the http handler for %s %s"):format(req.method, req.path), a) end
        res:_done(ok)
      else
        local head = req.method == "HEAD"
        local tr = slot == self.head and not self.closeat and not self.lost and self.transport or nil
        local bytes, why
        if ok then
          bytes, why = build(a, b, c, head, close, nil, tr) -- [status,] [headers,] body, told apart in C
          if bytes then
            close = why
          else
            log.log(("error in the http handler for %s %s: %s"):format(req.method, req.path, why))
          end
        else
          log.callbackError(("the http handler for %s %s"):format(req.method, req.path), a)
        end
        if not bytes then bytes = build(500, nil, errorbody(500), head, close, nil, tr) end
        if tr then -- written: what flush does for its slot
          self.q[slot] = nil
          local h = slot + 1
          if close then
            self.head, self.closeat = h, slot
            tr:loseConnection()
          elseif h == self.tail and not self.paused then -- the queue is empty (as flush would find it)
            self.head, self.tail, self.served = 1, 1, true
          else
            self.head = h
            flush(self)
          end
        else
          respond(self, slot, bytes, close)
        end
      end
    end
    -- the streams the handler opened close with its request, as they would with its task
    if t[STREAMS] then task.closeowned(t) end
    if nidle >= MAX_IDLE then return end
    -- an idle task keeps nothing of its last request alive
    self, handler, req = nil, nil, nil -- luacheck: ignore 311
    nidle = nidle + 1
    idle[nidle] = t
    self, slot, handler, req, close = yield(WAIT)
  end
end

-- run the request in an idle task, or a new one -> the task (requestReceived
-- has the common case inline)
local function dispatch(self, slot, handler, req, close)
  while nidle > 0 do
    local t = idle[nidle] -- (left in its slot: storing into a nil slot costs a new-key set)
    nidle = nidle - 1
    if t[CO] and not t[WAITING] and not active(t) then
      step(t, self, slot, handler, req, close)
      return t
    end
  end
  return spawn(TASK, worker, self, slot, handler, req, close)
end

-- a request's empty query and params tables, and its headers table, made
-- when first read (lhttp.c hands the headers over as their raw lines: a
-- handler that never reads req.headers costs no table)
local httpheaders = core._httpheaders
local REQ = {
  __name = "reactor.http request",
  __index = function(req, k)
    if k == "respond" then return reqrespond end
    if k == "read" then return reqread end
    if k == "readall" then return reqreadall end
    if k == "body" then
      if rawget(req, "_bs") then
        error("req.body: this request's body is above the app's maxBody, so it is not read whole: " ..
          "read it in parts with req:read([n]), or whole with req:readall([max])", 2)
      end
      return "" -- (requestReceived leaves out what it can: each field is a hash slot per request)
    end
    if k == "target" then return rawget(req, "path") end -- a target that is its path
    if k == "version" then return "1.1" end
    if k == "query" or k == "params" then
      local t = {}
      rawset(req, k, t)
      return t
    end
    if k == "headers" then -- made from the head's field lines when first read
      local t = httpheaders(rawget(req, "_hdr") or "")
      rawset(req, k, t)
      return t
    end
  end,
}
local parsequery = M.parsequery
M._REQ = REQ

local function Conn(app)
  local C = setmetatable({}, { __index = protocol.Protocol })
  C.__index = C
  C.delimiter = core.framing.http
  C.app = app

  function C:connectionMade()
    self.q, self.tasks, self.head, self.tail = {}, {}, 1, 1
    self.closeat, self.paused, self.lost = false, false, false
    self.served, self.headtimer, self.wpaused = false, false, false
    self.closeslot, self.sq = false, false -- (req:respond's)
    self.bodybs = false -- the request whose body is being read in parts (bodyReceived)
    CONNS[self.transport] = self
    local ka = C._keepalive -- seconds an idle connection is kept, or false
    if ka then self.transport:setTimeout(ka) end
  end

  -- nothing read for keepAliveTimeout: a connection with a request in
  -- flight, or one answered since the last check, is kept (the transport's
  -- clock starts again); so an idle one closes keepAliveTimeout to twice that
  -- after its last byte or answer, at no cost per request
  function C:timeoutConnection()
    if self.head ~= self.tail then return end
    if self.served then
      self.served = false
      return
    end
    self.transport:loseConnection()
  end

  -- slot for the next response
  local function take(self)
    local slot = self.tail
    self.tail = slot + 1
    self.q[slot] = false
    if slot - self.head + 1 >= M.MAX_PIPELINE and not self.paused then
      self.paused = true
      self.transport:pauseReading()
    end
    return slot
  end

  local function refuse(self, status, close, extra)
    if close and not self.paused then -- nothing after it is read
      self.paused = true
      self.transport:pauseReading()
    end
    local slot = take(self)
    respond(self, slot, (response(status, extra, errorbody(status), false, close)), close)
  end

  function C:requestReceived(method, target, headers, body, minor, keepalive, path, query)
    local ht = self.headtimer
    if ht then
      self.headtimer = false
      ht:cancel()
    end
    local close = not keepalive
    if close and body ~= false then -- nothing after it is read (after a streamed body: bodyReceived)
      self.paused = true
      self.transport:pauseReading()
    end
    if not path then -- not "/path?query" (lhttp.c split that one)
      if target == "*" and method == "OPTIONS" then -- the server as a whole: what it allows
        local slot = take(self)
        local bytes = response(200, { Allow = self.app:methods() }, "", false, close)
        return respond(self, slot, bytes, close)
      end
      local p = target:match("^[hH][tT][tT][pP][sS]?://[^/?]*(.*)$")
      if not p then return refuse(self, 400, true) end
      if p == "" or byte(p) == 63 then p = "/" .. p end
      local q = find(p, "?", 1, true)
      if q then path, query = sub(p, 1, q - 1), sub(p, q + 1) else path, query = p, "" end
    end
    local router = self.app -- (the reloaded script's, after a reload)
    local byp = router._static[path] -- a literal route: no split, no params (as app:match)
    local handler = byp and (byp[method] or (method == "HEAD" and byp.GET))
    local params, allow, q
    if not handler then
      handler, params, allow = router:match(method, path)
      if not handler then
        return refuse(self, params, close or params == 400, allow and { Allow = allow } or nil)
      end
      if next(params) == nil then params = nil end
    end
    if query ~= "" then
      q = parsequery(query)
      if not q then return refuse(self, 400, true) end
    end
    -- an empty query or params table is made when it is first read (REQ)
    -- four fields, so four hash slots (a request of the common kind: no query,
    -- no body, HTTP/1.1); REQ answers the rest
    local tr = self.transport
    local req = setmetatable({ method = method, path = path, _hdr = headers, transport = tr }, REQ)
    if target ~= path then req.target = target end
    if body ~= "" and body then req.body = body end
    if minor == 0 then req.version = "1.0" end
    if q then req.query = q end
    if params then req.params = params end
    -- its slot for the response (take, inline)
    local slot, queue = self.tail, self.q
    self.tail = slot + 1
    queue[slot] = false
    if slot - self.head + 1 >= M.MAX_PIPELINE and not self.paused then
      self.paused = true
      tr:pauseReading()
    end
    if close then self.closeslot = slot end -- (req:respond's)
    if body == false then -- its body comes in parts (bodyReceived), for req:read
      local bs = { conn = self, slot = slot, first = 1, last = 0, queued = 0, ended = false, err = false,
        wt = false, wn = false, timer = false, paused = false, closeafter = close, abandoned = false }
      rawset(req, "_bs", bs)
      self.bodybs = bs
      handler = streamed(handler)
    end
    local t -- the request's task: an idle one (dispatch, inline), or a new one
    if nidle > 0 then
      t = idle[nidle] -- (left in its slot, as dispatch does)
      nidle = nidle - 1
      -- (it parked itself in its yield: suspended there, waiting on nothing)
      if t[CO] and not t[WAITING] then
        step(t, self, slot, handler, req, close)
      else
        t = dispatch(self, slot, handler, req, close)
      end
    else
      t = spawn(TASK, worker, self, slot, handler, req, close)
    end
    if queue[slot] == false then self.tasks[slot] = t end -- still running: cancelled if the client goes
  end

  -- a part of a streamed body (lhttp.c), or its end (data nil; why if it was bad)
  function C:bodyReceived(data, why)
    local bs = self.bodybs
    if not bs then return end
    if data then
      if bs.abandoned then -- the handler is done: nothing more is read
        self.paused = true
        return self.transport:pauseReading()
      end
      local i = bs.last + 1
      bs.last, bs[i] = i, data
      local q = bs.queued + #data
      bs.queued = q
      if q >= BODY_HIGH then -- the handler does not keep up: wait for its reads
        bs.paused = true
        self.transport:pauseReading()
      end
      return bodywake(bs, true)
    end
    bs.ended, bs.err = true, why or false
    self.bodybs = false
    if bs.closeafter and not self.paused then -- Connection: close: nothing after it is read
      self.paused = true
      self.transport:pauseReading()
    end
    bodywake(bs, true)
  end

  -- a head with Expect: 100-continue waits for its body: ask for it now,
  -- unless responses are still due before it (the client then sends the
  -- body after its own wait, as RFC 9110 lets it)
  function C:continueRequested()
    if self.head == self.tail and not self.closeat then
      self.transport:write("HTTP/1.1 100 Continue\r\n\r\n")
    end
  end

  -- a request's head (or body) spans reads: it must be whole within
  -- requestTimeout seconds (slowloris), else 408 and close
  local function expired(self)
    self.headtimer = false
    if self.lost or self.closeat then return end
    self.paused = true
    self.transport:pauseReading()
    refuse(self, 408, true)
  end

  function C:headStarted()
    local after = C._requesttimeout
    if after and not self.headtimer then self.headtimer = core.callLater(after, expired, self) end
  end

  function C:badRequest(status, why) -- luacheck: ignore why
    self.paused = true
    refuse(self, status, true)
  end

  -- the output is above its high water mark: a streamed response's writes
  -- wait (and reading stops, the core's default) until it is below the low one
  function C:pauseProducing()
    self.wpaused = true
  end

  function C:resumeProducing()
    self.wpaused = false
    local sq = self.sq
    local r = sq and sq[self.head]
    if r then r:_turn() end
  end

  function C:connectionLost()
    self.lost = true
    local ht = self.headtimer
    if ht then
      self.headtimer = false
      ht:cancel()
    end
    -- a handler streaming its response is told at its next write (nil,
    -- "closed"), and it finishes as it likes; the others are cancelled
    local sq, bs = self.sq, self.bodybs
    self.bodybs = false
    for slot, t in pairs(self.tasks) do
      local r = sq and sq[slot]
      if r then
        r:_lost()
      elseif not (bs and bs.slot == slot) then -- (a handler reading its body is told: nil, "closed")
        t:cancel()
      end
    end
    if bs then bodywake(bs, nil, "closed") end
  end

  return C
end

--- http.app([{maxBody =, maxStreamBody =, maxRequestLine =, maxHeaderBytes =, maxHeaders =, maxChunkExt =,
--- keepAliveTimeout = 60, requestTimeout = 30}]) -> an app: routes, and the protocol that serves them (with
--- those limits; a connection with no request in flight closes after keepAliveTimeout
--- seconds without a byte from its client, never while a handler runs; a request
--- whose head or body spans reads must be whole within requestTimeout seconds, else 408).
function M.app(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'app' (expected an options table, got %s)"):format(show(opts)), 2)
  end
  local app = setmetatable({ _routes = {}, _static = {}, _params = false }, App)
  app.protocol = Conn(app)
  -- the parser's defaults (and lhttp.c's lookup ends here), the headers raw (REQ)
  app.protocol._httplimits = core._httplimits({}, true)
  app.protocol._keepalive, app.protocol._requesttimeout = 60, 30
  if opts then
    local rt = opts.requestTimeout
    if rt ~= nil and rt ~= false and (type(rt) ~= "number" or rt <= 0) then
      error(("bad argument #1 to 'app' (requestTimeout must be a number of seconds > 0 or false, got %s)")
        :format(show(rt)), 2)
    end
    if rt ~= nil then app.protocol._requesttimeout = rt end
    local ka = opts.keepAliveTimeout
    if ka ~= nil and ka ~= false and (type(ka) ~= "number" or ka <= 0) then
      error(("bad argument #1 to 'app' (keepAliveTimeout must be a number of seconds > 0 or false, got %s)")
        :format(show(ka)), 2)
    end
    if ka ~= nil then app.protocol._keepalive = ka end
    local ok, lim = pcall(core._httplimits, opts, true)
    if not ok then error(("bad argument #1 to 'app' (%s)"):format(lim), 2) end
    app.protocol._httplimits = lim
  end
  return app
end
M.router = M.app

--- app:serve(port | {port =, host =}) -> the listener; in a daemon script
--- (return app:serve(8080)) what the script returns.
function App:serve(where)
  local opts = type(where) == "table" and where or { port = where }
  local port = endpoints.toport(opts.port == nil and 0 or opts.port, 0)
  if not port then
    error(("bad argument #1 to 'serve' (expected a port 0..65535 or {port =, host =}, got %s)")
      :format(show(type(where) == "table" and opts.port or where)), 2)
  end
  if opts.host ~= nil and (type(opts.host) ~= "string" or opts.host == "") then
    error(("bad argument #1 to 'serve' (host must be an address string, got %s)"):format(show(opts.host)), 2)
  end
  local spec = { protocol = self.protocol, port = port, host = opts.host, idleTimeout = opts.idleTimeout,
    maxConnections = opts.maxConnections }
  if (require("reactor.service").loading or 0) > 0 then return spec end
  local f = protocol.asFactory({ protocol = self.protocol, idleTimeout = opts.idleTimeout,
    maxConnections = opts.maxConnections })
  return endpoints.listenTCP(port, f, { interface = opts.host })
end

--- http.serve(app, port | opts): app:serve(...)
function M.serve(app, where)
  if getmetatable(app) ~= App then
    error(("bad argument #1 to 'serve' (expected an app from http.app(), got %s)"):format(show(app)), 2)
  end
  return app:serve(where)
end

M.get, M.request = require("reactor.httpclient").get, require("reactor.httpclient").request -- the client

return M
