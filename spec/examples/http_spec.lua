-- examples/http_hello.lua (seed 001's epoll web server) and examples/web.lua
-- (seed 004's aiohttp routes), run as a user runs them: the real daemon on
-- loopback, talked to with raw (pipelined) requests and Python's http.client.
local H = require "spec.helpers"

-- one response from s: status, headers (lower-case names), body, the raw head
-- (head: the answer to a HEAD, whose Content-Length has no body after it)
local function response(s, head_only)
  local head, err = H.read_until(s, "\r\n\r\n", 65536)
  if not head then return nil, err end
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) [^\r\n]*\r\n"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do headers[k:lower()] = v end
  local n = tonumber(headers["content-length"] or 0)
  local body = n > 0 and not head_only and assert(H.read_exact(s, n)) or ""
  return status, headers, body, head
end

local function get(path, host)
  return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"):format(path, host or "127.0.0.1")
end

-- python3 running src with PORT set; -> exit code, stdout, stderr
local function python(src, port)
  local f, out, err = H.tmpname(), H.tmpname(), H.tmpname()
  H.write_file(f, src)
  -- python3 and the shell are not the code under test: not under the sanitizers' preload
  local cmd = "exec env -u LD_PRELOAD timeout 20 python3 %s %d >%s 2>%s"
  local _, how, code = os.execute(cmd:format(H.quote(f), port, H.quote(out), H.quote(err)))
  return how == "exit" and code or -1, H.read_file(out), H.read_file(err)
end

describe("examples/http_hello.lua", function()
  after_each(H.cleanup)

  it("answers GET / with 'Hello from Epoll Server', keep-alive, correct HTTP", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/")))
    local status, headers, body, head = response(s)
    assert.equal(200, status)
    assert.equal("Hello from Epoll Server", body)
    assert.equal("23", headers["content-length"])
    assert.equal("text/plain", headers["content-type"])
    assert.equal("keep-alive", headers["connection"])
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", headers["date"])
    assert.is_nil(head:find("[^\r]\n")) -- no bare LF
    -- the same connection serves the next one
    assert(H.send_all(s, get("/")))
    assert.equal(200, (response(s)))
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("answers pipelined requests in order, in one go, and closes after Connection: close", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/") .. "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" .. get("/nowhere") ..
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" ..
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" .. get("/")))
    local st, _, body = response(s)
    assert.same({ 200, "Hello from Epoll Server" }, { st, body })
    local h
    -- HEAD: the GET's headers, no body
    local head
    st, h, body, head = response(s, true)
    assert.equal(200, st)
    assert.equal("23", h["content-length"])
    assert.equal("", body)
    assert.truthy(head:find("\r\n\r\n$"))
    assert.equal(404, (response(s)))
    st, h = response(s)
    assert.equal(405, st)
    assert.equal("GET, HEAD", h["allow"])
    st, h, body = response(s)
    assert.same({ 200, "close", "Hello from Epoll Server" }, { st, h["connection"], body })
    -- the request after Connection: close is not answered: the connection ends
    local rest, why = H.read_to_eof(s)
    assert.equal("", rest)
    assert.equal("closed", why)
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("answers a bad request with its status and closes", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local cases = {
      { "GET / HTTP/1.1\r\n\r\n", 400 }, -- no Host
      { "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n", 400 }, -- space before the colon
      { "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
      { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
      { "GET /" .. ("a"):rep(9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414 },
      { "GET / HTTP/1.1\r\nHost: x\r\nX: " .. ("b"):rep(33000) .. "\r\n\r\n", 431 },
      { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000000\r\n\r\n", 413 }, -- above maxStreamBody
    }
    for _, c in ipairs(cases) do
      local s = assert(H.connect(d.port))
      assert(H.send_all(s, get("/") .. c[1]))
      assert.equal(200, (response(s))) -- the good one before it is answered
      local st, h = response(s)
      assert.equal(c[2], st, c[1]:sub(1, 60))
      assert.equal("close", h["connection"])
      local _, why = H.read_to_eof(s)
      assert.equal("closed", why)
      s:close()
    end
    assert.equal(0, (d:stop()))
  end)

  it("serves Python's http.client over one keep-alive connection", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local code, out, err = python([[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
socks = set()
for i in range(5):
    c.request("GET", "/")
    r = c.getresponse()
    socks.add(id(c.sock))
    print(r.status, r.getheader("Content-Type"), r.read().decode())
c.request("HEAD", "/")
r = c.getresponse()
print(r.status, r.getheader("Content-Length"), repr(r.read()))
print("connections:", len(socks))
]], d.port)
    assert.equal(0, code, err)
    assert.equal(("200 text/plain Hello from Epoll Server\n"):rep(5) .. "200 23 b''\nconnections: 1\n", out)
    assert.equal(0, (d:stop()))
  end)
end)

describe("a daemon script that returns its app", function()
  after_each(H.cleanup)

  it("is served on the command line's port", function()
    local script = H.write_script([[
local http = require "reactor.http"
local app = http.app()
app:get("/", function(req) return "x=" .. (req.query.x or "?") end)
return app
]])
    local d = H.start_daemon { script = script }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/?x=1") .. get("/?x=%41")))
    assert.same({ 200, "x=1" }, { (function(st, _, b) return st, b end)(response(s)) })
    assert.same({ 200, "x=A" }, { (function(st, _, b) return st, b end)(response(s)) })
    s:close()
    assert.equal(0, (d:stop()))
  end)
end)

describe("hot reload of an app", function()
  after_each(H.cleanup)

  it("serves the new routes on a kept-alive connection; a request in flight finishes on its old code", function()
    local function version(v)
      return ([[
local reactor = require "reactor"
local http = require "reactor.http"
local app = http.app()
app:get("/v", function() return "VERSION" end)
app:get("/slow", function()
  io.stdout:write("slow started\n")
  io.stdout:flush()
  reactor.sleep(0.5)
  return "slow VERSION"
end)
return app
]]):gsub("VERSION", v)
    end
    local path = H.write_script(version("one"))
    local d = H.start_logged_daemon { script = path }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/v")))
    assert.same({ 200, "one" }, { (function(st, _, b) return st, b end)(response(s)) })
    local s2 = assert(H.connect(d.port))
    assert(H.send_all(s2, get("/slow")))
    assert.truthy(d:wait_line("^slow started$")) -- in flight before the reload
    H.write_file(path, version("two"))
    assert.is_true(d:signal("HUP"))
    assert.truthy(d:wait_line("^reactord: reloaded "))
    assert(H.send_all(s, get("/v")))
    assert.same({ 200, "two" }, { (function(st, _, b) return st, b end)(response(s)) })
    assert.same({ 200, "slow one" }, { (function(st, _, b) return st, b end)(response(s2)) })
    s:close()
    s2:close()
    assert.equal(0, (d:stop()))
  end)
end)

describe("a handler that spins", function()
  after_each(H.cleanup)

  it("is stopped by the script timeout, logged at its line; its connection closes, the others are served", function()
    local script = H.write_script([[
local http = require "reactor.http"
local app = http.app()
app:get("/spin", function() while true do end end)
app:get("/", function() return "ok" end)
return app
]])
    local d = H.start_logged_daemon { script = script, args = { "--script-timeout", "0.3" } }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/spin")))
    assert.truthy(d:wait_line("^reactord: error in an http handler: script timeout"))
    assert.truthy(d:wait_line("^%s+" .. script:gsub("%p", "%%%0") .. ":3: in function", 3)) -- the line that spun
    local rest, why = H.read_to_eof(s)
    assert.same({ "", "closed" }, { rest, why })
    s:close()
    local s2 = assert(H.connect(d.port))
    assert(H.send_all(s2, get("/")))
    assert.same({ 200, "ok" }, { (function(st, _, b) return st, b end)(response(s2)) })
    s2:close()
    assert.equal(0, (d:stop()))
  end)
end)

describe("examples/web.lua", function()
  after_each(H.cleanup)

  it("serves / and /hello/{name} (HTML-escaped) after an asynchronous sleep", function()
    local d = H.start_daemon { script = "examples/web.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, get("/") .. get("/hello/world") .. get("/hello/%3Cb%3E%26") .. get("/hello/")))
    local st, h, body = response(s)
    assert.same({ 200, "<h1>Index</h1>" }, { st, body })
    assert.equal("text/html; charset=utf-8", h["content-type"])
    st, h, body = response(s)
    assert.same({ 200, "<h1>hello, world!</h1>", "keep-alive" }, { st, body, h["connection"] })
    st, h, body = response(s)
    assert.equal("text/html; charset=utf-8", h["content-type"])
    assert.same({ 200, "<h1>hello, &lt;b&gt;&amp;!</h1>" }, { st, body })
    assert.equal(404, (response(s))) -- an empty {name} does not match
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("has 20 concurrent requests sleeping at once, each answered", function()
    local d = H.start_daemon { script = "examples/web.lua" }
    local socks = {}
    for i = 1, 20 do
      socks[i] = assert(H.connect(d.port))
      assert(H.send_all(socks[i], get("/hello/" .. i)))
    end
    local peak = 0
    for i = 1, 20 do
      local st, h, body = response(socks[i])
      assert.same({ 200, ("<h1>hello, %d!</h1>"):format(i) }, { st, body })
      peak = math.max(peak, tonumber(h["x-in-flight"]))
      socks[i]:close()
    end
    assert.equal(20, peak) -- all 20 slept in the same 0.5 s, not one after the other
    assert.equal(0, (d:stop()))
  end)

  it("answers pipelined requests in order on one connection, all sleeping at once", function()
    local d = H.start_daemon { script = "examples/web.lua" }
    local s = assert(H.connect(d.port))
    local reqs = {}
    for i = 1, 20 do reqs[i] = get("/hello/p" .. i) end
    assert(H.send_all(s, table.concat(reqs)))
    local peak = 0
    for i = 1, 20 do
      local st, h, body = response(s)
      assert.same({ 200, ("<h1>hello, p%d!</h1>"):format(i) }, { st, body })
      peak = math.max(peak, tonumber(h["x-in-flight"]))
    end
    assert.equal(20, peak)
    s:close()
    assert.equal(0, (d:stop()))
  end)
end)
