-- Streamed HTTP responses (req:respond / res:write / res:finish) and the
-- request body limit, over the real daemon on loopback: examples/http_stream.lua
-- and throwaway scripts that report what the server saw.
local H = require "spec.helpers"

-- a response head from s -> status, headers (lower-case names), the raw head
local function head(s)
  local h, err = H.read_until(s, "\r\n\r\n", 65536)
  if not h then return nil, err end
  local headers = {}
  for k, v in h:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do headers[k:lower()] = v end
  return tonumber(h:match("^HTTP/1%.1 (%d%d%d) ")), headers, h
end

-- a chunked body from s -> the parts (as sent), or nil, why
local function chunks(s)
  local parts = {}
  for _ = 1, 100000 do
    local line, err = H.read_until(s, "\r\n", 64)
    if not line then return nil, err, parts end
    local n = tonumber(line:match("^(%x+)\r\n$"), 16)
    if not n then return nil, "bad chunk size line " .. line end
    if n == 0 then
      assert.equal("\r\n", H.read_exact(s, 2))
      return parts
    end
    local data = assert(H.read_exact(s, n))
    assert.equal("\r\n", H.read_exact(s, 2))
    parts[#parts + 1] = data
  end
  return nil, "too many chunks"
end

-- one whole response with a Content-Length -> status, headers, body
local function response(s)
  local st, h = head(s)
  if not st then return nil, h end
  local n = tonumber(h["content-length"] or 0)
  return st, h, n > 0 and assert(H.read_exact(s, n)) or ""
end

local function get(path, extra)
  return ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"):format(path, extra or "")
end

describe("examples/http_stream.lua", function()
  after_each(H.cleanup)

  it("streams /count/3 chunked, and the request pipelined behind it leaves after its last part", function()
    local d = H.start_daemon { script = "examples/http_stream.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/count/3") .. get("/") .. get("/count/0")))
    local st, h = head(s)
    assert.equal(200, st)
    assert.equal("chunked", h["transfer-encoding"])
    assert.is_nil(h["content-length"])
    assert.equal("keep-alive", h["connection"])
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", h["date"])
    assert.same({ "line 1\n", "line 2\n", "line 3\n" }, (chunks(s)))
    local st2, _, body = response(s)
    assert.same({ 200, "try /count/5 or /bytes/1000000\n" }, { st2, body })
    st, h = head(s)
    assert.same({ 200, "chunked" }, { st, h["transfer-encoding"] })
    assert.same({}, (chunks(s)))
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("sends /bytes/N with its Content-Length, not chunked; HEAD gets the head and no body", function()
    local d = H.start_daemon { script = "examples/http_stream.lua" }
    local s = assert(H.connect(d.port))
    local n = 100000 -- six 16 KB parts and a short one
    assert(H.send_all(s, get("/bytes/" .. n) .. ("HEAD /count/2 HTTP/1.1\r\nHost: x\r\n\r\n") .. get("/")))
    local st, h, body = response(s)
    assert.equal(200, st)
    assert.equal(tostring(n), h["content-length"])
    assert.is_nil(h["transfer-encoding"])
    assert.equal(("0123456789abcdef"):rep(1024):rep(7):sub(1, n), body)
    -- HEAD: the GET's head (chunked), no body at all: the next response follows at once
    local hs
    st, h, hs = head(s)
    assert.same({ 200, "chunked" }, { st, h["transfer-encoding"] })
    assert.truthy(hs:find("\r\n\r\n$"))
    st, h, body = response(s)
    assert.same({ 200, "try /count/5 or /bytes/1000000\n", "keep-alive" }, { st, body, h["connection"] })
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("ends the body at the end of the connection for an HTTP/1.0 client (no chunked)", function()
    local d = H.start_daemon { script = "examples/http_stream.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "GET /count/2 HTTP/1.0\r\n\r\n"))
    local st, h = head(s)
    assert.same({ 200, "close" }, { st, h["connection"] })
    assert.is_nil(h["transfer-encoding"])
    assert.is_nil(h["content-length"])
    local rest, why = H.read_to_eof(s)
    assert.same({ "line 1\nline 2\n", "closed" }, { rest, why })
    s:close()
    assert.equal(0, (d:stop()))
  end)
end)

describe("reactor.http streamed responses", function()
  after_each(H.cleanup)

  local SCRIPT = [[
local http = require "reactor.http"
local reactor = require "reactor"
local app = http.app { maxBody = 1000, maxStreamBody = 1000 }
local HIGH, PART = 65536, ("x"):rep(16384)
local seen = { maxbefore = 0, crossings = 0, writes = 0 }
local lost -- what a write said once the client went
app:get("/big/{n}", function(req)
  local tr = req.transport
  tr:setWriteLimits { high = HIGH, low = 16384 }
  local res = req:respond(200, {})
  for i = 1, tonumber(req.params.n) do
    local before = tr:bufferSize()
    if before > seen.maxbefore then seen.maxbefore = before end
    if before + #PART > HIGH then seen.crossings = seen.crossings + 1 end
    seen.inwrite = true
    assert(res:write(PART))
    seen.inwrite = false
    seen.writes = i
  end
  res:finish()
end)
app:get("/stats", function()
  return ("%d %d %d"):format(seen.maxbefore, seen.crossings, seen.writes)
end)
app:get("/stalled", function() -- waits (bounded) until /big's handler waits inside a write, for good
  local last, still = -1, 0
  for _ = 1, 3000 do
    if seen.inwrite and seen.writes == last then still = still + 1 else still = 0 end
    last = seen.writes
    if still >= 20 then return ("stalled after %d writes"):format(seen.writes) end
    reactor.sleep(0.01)
  end
  return 504, "never stalled"
end)
app:get("/forever", function(req)
  local res = req:respond(200, {})
  while true do
    local ok, why = res:write(PART)
    if not ok then lost = why; return end
  end
end)
app:get("/lost", function() -- waits (bounded) for /forever's handler to hear its client went
  for _ = 1, 1000 do
    if lost then return lost end
    reactor.sleep(0.01)
  end
  return 504, "never told"
end)
app:get("/slow", function() reactor.sleep(0.05) return "slow" end)
app:get("/parts", function(req)
  local res = req:respond(201, { ["X-Kind"] = "parts" })
  for i = 1, 3 do
    assert(res:write("p" .. i))
    reactor.sleep(0.01)
  end
  res:finish("end")
end)
app:get("/fast", function() return "fast" end)
app:get("/fail-before", function(req)
  req:respond(200, {})
  error("broke before any part")
end)
app:get("/fail-after", function(req)
  local res = req:respond(200, {})
  res:write("half")
  error("broke after a part")
end)
app:get("/short", function(req)
  local res = req:respond(200, { ["Content-Length"] = 10 })
  res:write("abc")
  return nil
end)
app:get("/over", function(req)
  local res = req:respond(200, { ["Content-Length"] = 2 })
  local ok, err = pcall(res.write, res, "abc")
  res:finish("ab")
  return ok, err -- (ignored: the response is streamed)
end)
app:get("/badstatus", function(req)
  local ok, err = pcall(function() local r = req:respond(99) return r end) -- MARK
  return 200, tostring(ok) .. " " .. err
end)
app:post("/upload", function(req) return "got " .. #req.body end)
return app:serve(0)
]]

  local function daemon()
    local path = H.write_script(SCRIPT)
    return H.start_daemon { script = path }, path
  end

  it("a slow client: writes wait above the high water mark, the server holds at most that much", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    local parts = 1536 -- 24 MB: more than the kernel's socket buffers can hold
    assert(H.send_all(s, get("/big/" .. parts)))
    -- nothing read yet: the handler must come to wait inside a write
    local s2 = assert(H.connect(d.port))
    assert(H.send_all(s2, get("/stalled")))
    local st2, _, said = response(s2)
    assert.equal(200, st2, said)
    local stalled = tonumber(said:match("^stalled after (%d+) writes$"))
    assert.is_true(stalled < parts) -- far from all 24 MB
    s2:close()
    local st, h = head(s)
    assert.same({ 200, "chunked" }, { st, h["transfer-encoding"] })
    -- read slowly: 4 KB at a time
    local total, guard = 0, 0
    while true do
      guard = guard + 1
      assert(guard < 200000, "too many reads")
      local line = assert(H.read_until(s, "\r\n", 64))
      local n = tonumber(line:match("^(%x+)\r\n$"), 16)
      if n == 0 then break end
      local got = 0
      while got < n do
        local data = assert(s:receive(math.min(4096, n - got)))
        got = got + #data
      end
      assert.equal("\r\n", H.read_exact(s, 2))
      total = total + n
    end
    assert.equal("\r\n", H.read_exact(s, 2))
    assert.equal(parts * 16384, total)
    assert(H.send_all(s, get("/stats")))
    local _, _, body = response(s)
    local maxbefore, crossings, writes = body:match("^(%d+) (%d+) (%d+)$")
    assert.equal(parts, tonumber(writes))
    assert.is_true(tonumber(crossings) > 0) -- flow control was needed
    -- before each write, what the server held was never above the high mark
    assert.is_true(tonumber(maxbefore) <= 65536, "buffered " .. maxbefore)
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("a stream behind a slow response waits its turn; the one behind it leaves after it", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/slow") .. get("/parts") .. get("/fast")))
    local st, _, body = response(s)
    assert.same({ 200, "slow" }, { st, body })
    local h
    st, h = head(s)
    assert.same({ 201, "parts", "chunked" }, { st, h["x-kind"], h["transfer-encoding"] })
    assert.same({ "p1", "p2", "p3", "end" }, (chunks(s)))
    st, _, body = response(s)
    assert.same({ 200, "fast" }, { st, body })
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("a client that goes mid-stream: the handler's next write says nil, \"closed\"", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/forever")))
    assert.equal(200, (head(s)))
    assert(H.read_exact(s, 50000))
    s:close()
    local s2 = assert(H.connect(d.port))
    assert(H.send_all(s2, get("/lost")))
    local st, _, body = response(s2)
    assert.same({ 200, "closed" }, { st, body })
    s2:close()
    assert.equal(0, (d:stop()))
  end)

  it("a handler that fails: a 500 before any part; after one, the body is cut and the connection closes", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/fail-before") .. get("/fast")))
    local st, h, body = response(s)
    assert.same({ 500, "close" }, { st, h["connection"] })
    assert.equal("500 Internal Server Error\n", body)
    assert.is_true(H.sees_eof(s))
    s:close()
    s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/fail-after") .. get("/fast")))
    st, h = head(s)
    assert.same({ 200, "chunked" }, { st, h["transfer-encoding"] })
    local rest, why = H.read_to_eof(s)
    assert.same({ "4\r\nhalf\r\n", "closed" }, { rest, why }) -- no last chunk: the client sees it cut
    s:close()
    d:stop()
    local err = H.read_file(d.errfile)
    assert.matches("broke before any part", err)
    assert.matches("broke after a part", err)
  end)

  it("a Content-Length is kept: short closes the connection, over is an error at the write", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/short")))
    local st, h = head(s)
    assert.same({ 200, "10" }, { st, h["content-length"] })
    local rest, why = H.read_to_eof(s)
    assert.same({ "abc", "closed" }, { rest, why })
    s:close()
    s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/over") .. get("/fast")))
    local body
    st, h, body = response(s)
    assert.same({ 200, "2", "ab" }, { st, h["content-length"], body })
    st, h, body = response(s)
    assert.same({ 200, "fast", "4" }, { st, body, h["content-length"] })
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("req:respond with a bad status is an error at the caller's line", function()
    local d, path = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/badstatus")))
    local _, _, body = response(s)
    local line = H.line_of(SCRIPT, "MARK")
    assert.equal(("false %s:%d: bad argument #1 to 'respond' (expected a final status 200..999, got number)")
      :format(path, line), body)
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("a body over maxBody is 413 and the connection closes (Content-Length and chunked); one under is whole", function()
    local d = daemon()
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 999\r\n\r\n" .. ("a"):rep(999)))
    local st, _, body = response(s)
    assert.same({ 200, "got 999" }, { st, body })
    assert(H.send_all(s, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"))
    local h
    st, h = response(s)
    assert.same({ 413, "close" }, { st, h["connection"] })
    assert.is_true(H.sees_eof(s))
    s:close()
    s = assert(H.connect(d.port))
    assert(H.send_all(s, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "200\r\n" .. ("b"):rep(512) .. "\r\n" .. "200\r\n" .. ("b"):rep(512) .. "\r\n0\r\n\r\n"))
    st, h = response(s)
    assert.same({ 413, "close" }, { st, h["connection"] })
    assert.is_true(H.sees_eof(s))
    s:close()
    assert.equal(0, (d:stop()))
  end)
end)
