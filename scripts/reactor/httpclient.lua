-- reactor.httpclient: an HTTP/1.1 client for tasks, on reactor.connect
-- streams and core's strict response parser (rd_http_parse_response, via
-- core._httpresponse; chunked bodies via core._httpdechunk). Attached to
-- reactor.http as http.get and http.request.
--
--   local http = require "reactor.http"
--   reactor.spawn(function()
--     local res, err = http.get("http://127.0.0.1:8800/")
--     if res then print(res.status, res.headers["content-type"], res.body) end
--   end)
--
-- A response is {status=, reason=, headers= (lower-case names, repeats
-- joined with ", "), body=, version= ("1.1"), fields= (the header fields
-- as sent: {name, value} pairs in order, case kept)}; a failure is nil and a message:
-- "timeout", or what went wrong and with which host. Connections are kept
-- alive and reused per host:port (at most MAX_IDLE idle ones each, closed
-- after IDLE_TIMEOUT seconds unused); a connection belongs to the task
-- using it only while a request is in flight, so a task that ends (or is
-- cancelled) mid-request closes it, and an idle one belongs to no task.
-- http:// only: an https:// URL is an error saying so.
local core = require "reactor.core"
local task = require "reactor.task"
local stream = require "reactor.stream"

local concat, remove = table.concat, table.remove
local find, sub, lower, format = string.find, string.sub, string.lower, string.format
local now = core.now
local parsehead, dechunk = core._httpresponse, core._httpdechunk

local M = {}

M.MAX_IDLE = 4          -- idle connections kept per host:port
M.IDLE_TIMEOUT = 30     -- seconds an idle connection is kept
M.TIMEOUT = 30          -- seconds for a whole request, by default
M.MAX_BODY = 64 << 20   -- response body bytes, by default
local READ = 64 * 1024

local pools = {} -- "host:port" -> { {s = stream, timer = DelayedCall}, ... } (last in, first out)

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  return type(v)
end

--{=====================================================================
-- URLs
--======================================================================

--- parseurl(url) -> {host=, port=, target=, authority=} | nil, why
local function parseurl(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, format("bad URL %s (expected http://host[:port]/path)", show(url)) end
  scheme = lower(scheme)
  if scheme == "https" then
    return nil, format("https is not supported yet (http:// only): %s", url)
  elseif scheme ~= "http" then
    return nil, format("unsupported URL scheme %q in %s (http:// only)", scheme, url)
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif sub(target, 1, 1) == "?" then target = "/" .. target end
  if find(target, "[%z\1-\32\127]") then
    return nil, format("bad URL %s (a space or control byte in the path: percent-encode it)", show(url))
  end
  if find(authority, "@", 1, true) then
    return nil, format("bad URL %s (user:password@ is not supported)", show(url))
  end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$") -- [v6]:port
  if not host then host, port = authority:match("^([%w.-]+):?(%d*)$") end
  if not host or host == "" then return nil, format("bad URL %s (no host)", show(url)) end
  port = port == "" and 80 or tonumber(port)
  if port < 1 or port > 65535 then return nil, format("bad URL %s (port out of 1..65535)", show(url)) end
  return { host = host, port = port, target = target, authority = authority }
end
M.parseurl = parseurl

--{=====================================================================
-- The pool
--======================================================================

local function unusable(s)
  return s.closed or s.eof or s.lost or (s.transport and s.transport:_pending() > 0)
end

-- an idle connection for key, owned by t from now on
local function checkout(key, t)
  local pool = pools[key]
  while pool and #pool > 0 do
    local e = remove(pool)
    e.timer:cancel()
    if not unusable(e.s) then
      task.own(t, e.s)
      return e.s
    end
    e.s:close()
  end
  return nil
end

-- s, owned by t, goes back to key's pool and to no task
local function checkin(key, t, s)
  task.disown(t, s)
  local pool = pools[key]
  if not pool then
    pool = {}
    pools[key] = pool
  end
  if #pool >= M.MAX_IDLE then
    local old = remove(pool, 1)
    old.timer:cancel()
    old.s:close()
  end
  local e = { s = s }
  e.timer = core.callLater(M.IDLE_TIMEOUT, function()
    for i = 1, #pool do
      if pool[i] == e then
        remove(pool, i)
        break
      end
    end
    s:close()
  end)
  pool[#pool + 1] = e
end

--- closeidle(): close every idle connection (the pool is emptied).
function M.closeidle()
  for key, pool in pairs(pools) do
    for i = 1, #pool do
      pool[i].timer:cancel()
      pool[i].s:close()
    end
    pools[key] = nil
  end
end

--- idle(host, port) -> how many idle connections are kept for host:port
function M.idle(host, port)
  local pool = pools[host .. ":" .. port]
  return pool and #pool or 0
end

--{=====================================================================
-- One exchange
--======================================================================

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }

-- read more bytes before the deadline -> bytes | nil, why
local function more(s, deadline)
  local left = deadline - now()
  if left <= 0 then return nil, "timeout" end
  s:settimeout(left)
  return s:read(READ)
end

-- the response on s to the request just written -> response, keepalive | nil, why, nothing came
local function receive(s, ishead, deadline, maxbody, where)
  local buf = ""
  local headlen, status, reason, headers, framing, cl, ka, minor, fields
  while true do
    local data, why = more(s, deadline)
    if not data then
      if why == "timeout" then return nil, why end
      if buf == "" then return nil, format("%s closed the connection before responding", where), true end
      return nil, format("%s closed the connection in the response head", where)
    end
    buf = buf .. data
    headlen, status, reason, headers, framing, cl, ka, minor, fields = parsehead(buf, ishead, maxbody)
    if not headlen then return nil, format("bad response from %s: %s", where, status) end
    if headlen > 0 then break end
  end
  local body = sub(buf, headlen + 1)
  if framing == "none" then
    if body ~= "" then ka = false end -- bytes nobody asked for: do not reuse
    body = ""
  elseif framing == "length" then
    local parts, have = { body }, #body
    while have < cl do
      local data, why = more(s, deadline)
      if not data then
        if why == "timeout" then return nil, why end
        return nil, format("%s closed the connection after %d of %d body bytes", where, have, cl)
      end
      parts[#parts + 1] = data
      have = have + #data
    end
    body = concat(parts)
    if have > cl then
      body, ka = sub(body, 1, cl), false
    end
  elseif framing == "chunked" then
    while true do
      local used, decoded = dechunk(body, maxbody)
      if not used then return nil, format("bad response from %s: %s", where, decoded) end
      if used > 0 then
        if used < #body then ka = false end
        body = decoded
        break
      end
      local data, why = more(s, deadline)
      if not data then
        if why == "timeout" then return nil, why end
        return nil, format("%s closed the connection in a chunked body", where)
      end
      body = body .. data
    end
  else -- "close": every byte until the end
    local parts, have = { body }, #body
    while true do
      local data, why = more(s, deadline)
      if not data then
        if why == "timeout" then return nil, why end
        if why ~= "closed" then return nil, format("%s: %s in the body", where, why) end
        break
      end
      have = have + #data
      if have > maxbody then return nil, format("response body from %s above maxBody (%d bytes)", where, maxbody) end
      parts[#parts + 1] = data
    end
    body, ka = concat(parts), false
  end
  return { status = status, reason = reason, headers = headers, body = body, version = "1." .. minor,
    fields = fields }, ka
end

local function checkname(name, fname)
  if type(name) ~= "string" or not find(name, "^[!#$%%&'*+.^_`|~%w-]+$") then
    error(format("bad argument to '%s' (header name must be a token, got %s)", fname, show(name)), 5)
  end
end

-- the request's bytes
local function build(method, u, headers, body, fname)
  local lines = { format("%s %s HTTP/1.1\r\n", method, u.target) }
  local have = {}
  if headers then
    for name, value in pairs(headers) do
      checkname(name, fname)
      if type(value) == "number" then value = tostring(value) end
      if type(value) ~= "string" or find(value, "[%z\1-\8\10-\31\127]") then
        error(format("bad argument to '%s' (header %s must be a string without control bytes, got %s)",
          fname, name, show(value)), 4)
      end
      local l = lower(name)
      if l == "transfer-encoding" or l == "connection" and lower(value) ~= "close" then
        error(format("bad argument to '%s' (header %s is the client's own: leave it out)", fname, name), 4)
      end
      have[l] = true
      lines[#lines + 1] = name .. ": " .. value .. "\r\n"
    end
  end
  if not have.host then lines[#lines + 1] = "Host: " .. u.authority .. "\r\n" end
  if not have["user-agent"] then lines[#lines + 1] = "User-Agent: reactord\r\n" end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    if have["content-length"] then
      error(format("bad argument to '%s' (Content-Length is the client's own: leave it out)", fname), 4)
    end
    lines[#lines + 1] = format("Content-Length: %d\r\n", body and #body or 0)
  end
  lines[#lines + 1] = "\r\n"
  if body then lines[#lines + 1] = body end
  return concat(lines), have.connection
end

local function checkopts(o, fname)
  local method = o.method or "GET"
  if type(method) ~= "string" or not find(method, "^[!#$%%&'*+.^_`|~%w-]+$") then
    error(format("bad argument to '%s' (method must be a token such as \"GET\", got %s)", fname, show(method)), 3)
  end
  if type(o.url) ~= "string" then
    error(format("bad argument to '%s' (url must be a string such as \"http://host/path\", got %s)",
      fname, show(o.url)), 3)
  end
  if o.headers ~= nil and type(o.headers) ~= "table" then
    error(format("bad argument to '%s' (headers must be a table {Name = \"value\"}, got %s)", fname,
      show(o.headers)), 3)
  end
  if o.body ~= nil and type(o.body) ~= "string" then
    error(format("bad argument to '%s' (body must be a string, got %s)", fname, show(o.body)), 3)
  end
  local timeout = o.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0) then
    error(format("bad argument to '%s' (timeout must be a number of seconds > 0, got %s)", fname,
      show(timeout)), 3)
  end
  local maxbody = o.maxBody
  if maxbody ~= nil and (math.type(maxbody) ~= "integer" or maxbody < 0) then
    error(format("bad argument to '%s' (maxBody must be a byte count, got %s)", fname, show(maxbody)), 3)
  end
  return method
end

local function perform(t, o, method, fname)
  local u, err = parseurl(o.url)
  if not u then return nil, err end
  local bytes, closing = build(method, u, o.headers, o.body, fname)
  local deadline = now() + (o.timeout or M.TIMEOUT)
  local maxbody = o.maxBody or M.MAX_BODY
  local key = u.host .. ":" .. u.port
  local where = key
  local ishead = method == "HEAD"
  for attempt = 1, 2 do
    local s = checkout(key, t)
    local reused = s ~= nil
    if not s then
      local left = deadline - now()
      if left <= 0 then return nil, "timeout" end
      local why
      s, why = stream.connect(u.host, u.port, { timeout = left })
      if not s then
        if why == "timeout" or now() >= deadline then return nil, "timeout" end
        return nil, format("cannot connect to %s: %s", where, why)
      end
    end
    local ok, why = s:write(bytes)
    local res, ka, nothing
    if ok then
      res, ka, nothing = receive(s, ishead, deadline, maxbody, where)
    else
      res, ka, nothing = nil, format("%s: %s while sending the request", where, why), true
    end
    if res then
      if ka and not closing then
        checkin(key, t, s)
      else
        s:close()
      end
      return res
    end
    s:close()
    -- a kept-alive connection the server closed meanwhile: once more on a new one
    if not (reused and nothing and IDEMPOTENT[method] and attempt == 1) then return nil, ka end
  end
end

--- request{method=, url=, headers=, body=, timeout=, maxBody=} -> response | nil, why
function M.request(o)
  if type(o) ~= "table" then
    error(format("bad argument #1 to 'request' (expected a table {method=, url=, ...}, got %s)", show(o)), 2)
  end
  local t = task.need("http.request", 2)
  local method = checkopts(o, "request")
  local res, err = perform(t, o, method, "request") -- not a tail call: build's errors count this frame
  return res, err
end

--- get(url [, {headers=, timeout=, maxBody=}]) -> response | nil, why
function M.get(url, opts)
  if type(url) ~= "string" then
    error(format("bad argument #1 to 'get' (expected a URL string such as \"http://host/path\", got %s)",
      show(url)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #2 to 'get' (expected an options table, got %s)", show(opts)), 2)
  end
  local t = task.need("http.get", 2)
  local o = { url = url, method = "GET" }
  if opts then
    o.headers, o.timeout, o.maxBody = opts.headers, opts.timeout, opts.maxBody
  end
  checkopts(o, "get")
  local res, err = perform(t, o, "GET", "get")
  return res, err
end

return M
