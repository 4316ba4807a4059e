-- http.get and http.request (reactor.httpclient) over real loopback
-- sockets, in-process: against an http.app, and against raw stream servers
-- that send exactly the bytes a case needs (chunked, until-close, 1xx, bad
-- heads, silence). What is asserted is what the calling task gets back.
local reactor = require "reactor"
local http = require "reactor.http"
local client = require "reactor.httpclient"
local H = require "spec.helpers"

local THIS = "spec/unit/httpclient_spec.lua"

after_each(function()
  client.closeidle()
  H.assert_clean()
end)

-- run fn(port) as a task against listener l (stopped after) -> fn's results
local function against(l, fn)
  local port = l:getHost().port
  local out
  reactor.callLater(0, reactor.spawn, function()
    out = table.pack(pcall(fn, port))
    client.closeidle()
    l:stopListening()
    reactor.sleep(0) -- the handlers see their connections close
    reactor.stop()
  end)
  H.run_loop()
  if l:getHost() then l:stopListening() end
  assert(out[1], out[2])
  return table.unpack(out, 2, out.n)
end

-- a raw server: for each request head read, reply(head, n) gives the bytes
-- to send (n counts the requests on this connection), or false to close.
-- stats.conns counts connections.
local function raw(reply, stats)
  stats = stats or {}
  stats.conns = 0
  return assert(reactor.serve({ port = 0, host = "127.0.0.1" }, function(s)
    stats.conns = stats.conns + 1
    local n = 0
    while true do
      local head = s:readuntil("\r\n\r\n")
      if not head then return end
      n = n + 1
      local cl = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)"))
      local body = cl and cl > 0 and s:readexactly(cl) or ""
      local out = reply(head, n, body)
      if not out then return end
      s:write(out)
    end
  end)), stats
end

local function url(port, path)
  return ("http://127.0.0.1:%d%s"):format(port, path or "/")
end

describe("http.get and http.request", function()
  it("gets a response from an http.app: status, reason, lower-case headers, body", function()
    local app = http.app()
    app:get("/hello/{name}", function(r) return 200, { ["X-Thing"] = "a" }, "hello " .. r.params.name end)
    local res = against(assert(app:serve { port = 0, host = "127.0.0.1" }), function(port)
      return assert(http.get(url(port, "/hello/bob")))
    end)
    assert.equal(200, res.status)
    assert.equal("OK", res.reason)
    assert.equal("hello bob", res.body)
    assert.equal("a", res.headers["x-thing"])
    assert.equal("9", res.headers["content-length"])
    assert.equal("1.1", res.version)
  end)

  it("reuses a kept-alive connection per host:port, and keeps it idle between requests", function()
    local l, stats = raw(function(_, n) return ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d"):format(n) end)
    local got = { against(l, function(port)
      local a = assert(http.get(url(port))).body
      local idle = client.idle("127.0.0.1", port)
      local b = assert(http.get(url(port))).body
      local c = assert(http.request { method = "POST", url = url(port), body = "xyz" }).body
      return a, idle, b, c
    end) }
    assert.same({ "1", 1, "2", "3" }, got) -- the 2nd and 3rd request on the same connection
    assert.equal(1, stats.conns)
  end)

  it("decodes a chunked body (with trailers), and reuses the connection after it", function()
    local l, stats = raw(function(_, n)
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n,\r\n" ..
        ("6\r\n world\r\n0\r\nX-T: %d\r\n\r\n"):format(n)
    end)
    local a, b = against(l, function(port)
      return assert(http.get(url(port))).body, assert(http.get(url(port))).body
    end)
    assert.equal("hello, world", a)
    assert.equal("hello, world", b)
    assert.equal(1, stats.conns)
  end)

  it("skips 100 Continue, gives HEAD, 204 and 304 no body", function()
    local l = raw(function(head)
      local path = head:match("^%u+ (%S+)")
      if path == "/c" then
        return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
      elseif path == "/204" then
        return "HTTP/1.1 204 No Content\r\n\r\n"
      elseif path == "/304" then
        return "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
      end
      return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" .. (head:match("^HEAD") and "" or "hello")
    end)
    local got = { against(l, function(port)
      local c = assert(http.request { method = "POST", url = url(port, "/c"), body = "b" })
      local h = assert(http.request { method = "HEAD", url = url(port, "/") })
      local n = assert(http.get(url(port, "/204")))
      local m = assert(http.get(url(port, "/304")))
      local g = assert(http.get(url(port, "/")))
      return c.status, c.body, h.status, h.body, h.headers["content-length"], n.status, n.body, m.status,
        m.body, g.body
    end) }
    assert.same({ 201, "ok", 200, "", "5", 204, "", 304, "", "hello" }, got)
  end)

  it("sends the headers given, Host and Content-Length of its own", function()
    local seen
    local l = raw(function(head, _, body)
      seen = head .. "|" .. body
      return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    end)
    against(l, function(port)
      return assert(http.request { method = "PUT", url = url(port, "/p?q=1"), headers = { ["X-A"] = "1" },
        body = "data" })
    end)
    assert.matches("^PUT /p%?q=1 HTTP/1%.1\r\n", seen)
    assert.matches("\r\nHost: 127%.0%.0%.1:%d+\r\n", seen)
    assert.matches("\r\nX%-A: 1\r\n", seen)
    assert.matches("\r\nContent%-Length: 4|data$", seen)
  end)

  it("a server that does not answer in time: nil, 'timeout'", function()
    local l = raw(function() reactor.sleep(5) return false end)
    local res, err = against(l, function(port)
      return http.get(url(port), { timeout = 0.05 })
    end)
    assert.is_nil(res)
    assert.equal("timeout", err)
  end)

  it("a refused connection: nil and a message naming host:port", function()
    local l = raw(function() return false end)
    local port = l:getHost().port
    l:stopListening()
    local res, err
    reactor.callLater(0, reactor.spawn, function()
      res, err = http.get(url(port))
      reactor.stop()
    end)
    H.run_loop()
    assert.is_nil(res)
    assert.matches("^cannot connect to 127%.0%.0%.1:" .. port .. ": .*refused", err)
  end)

  for _, c in ipairs {
    { "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "whitespace before a colon" },
    { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "Content%-Length with Transfer%-Encoding" },
    { "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF" },
    { "HTTP/2 200\r\n\r\n", "HTTP version" },
    { "SSH-2.0-OpenSSH\r\n", "status line" },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunked body" },
  } do
    it("a bad response is an error, not a response: " .. c[2], function()
      local l = raw(function() return c[1] end)
      local res, err = against(l, function(port) return http.get(url(port)) end)
      assert.is_nil(res)
      assert.matches("^bad response from 127%.0%.0%.1:%d+: .*" .. c[2], err)
    end)
  end

  it("a connection closed before the whole body: an error saying how much came", function()
    local l = assert(reactor.serve({ port = 0, host = "127.0.0.1" }, function(s)
      s:readuntil("\r\n\r\n")
      s:write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
      s:drain()
    end))
    local res, err = against(l, function(port) return http.get(url(port)) end)
    assert.is_nil(res)
    assert.matches("closed the connection after 3 of 10 body bytes", err)
  end)

  it("a body until the close, when the server closes", function()
    local l = assert(reactor.serve({ port = 0, host = "127.0.0.1" }, function(s)
      s:readuntil("\r\n\r\n")
      s:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ")
      s:write("it")
      s:drain()
    end))
    local res, idle = against(l, function(port)
      local r = http.get(url(port))
      return r, client.idle("127.0.0.1", port)
    end)
    assert.equal("all of it", res.body)
    assert.equal(0, idle) -- not kept
  end)

  it("a kept-alive connection the server closed meanwhile: the GET goes on a new one", function()
    local l, stats = raw(function(_, n)
      if n == 1 then return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" end
      return false
    end)
    local a, b = against(l, function(port)
      local r1 = assert(http.get(url(port))).body
      local r2 = assert(http.get(url(port))).body
      return r1, r2
    end)
    assert.equal("a", a)
    assert.equal("a", b)
    assert.equal(2, stats.conns)
  end)

  it("https and other schemes, and bad URLs, are errors as values", function()
    local got = {}
    reactor.callLater(0, reactor.spawn, function()
      got[1] = select(2, http.get("https://example.com/"))
      got[2] = select(2, http.get("ftp://example.com/"))
      got[3] = select(2, http.get("example.com/"))
      got[4] = select(2, http.get("http:///x"))
      got[5] = select(2, http.get("http://h:99999/"))
      reactor.stop()
    end)
    H.run_loop()
    assert.equal("https is not supported yet (http:// only): https://example.com/", got[1])
    assert.matches("unsupported URL scheme \"ftp\"", got[2])
    assert.matches("^bad URL \"example.com/\" %(expected http://host%[:port%]/path%)", got[3])
    assert.matches("no host", got[4])
    assert.matches("port out of 1%.%.65535", got[5])
  end)

  it("misuse raises at the caller's line, in the API's names", function()
    local ok, err = pcall(http.get, "http://x/")
    assert.is_false(ok)
    assert.matches("http.get waits, so it must run in a task", err)
    local errs = {}
    reactor.callLater(0, reactor.spawn, function()
      errs[1] = select(2, pcall(function() http.get(42) end)) -- line A
      errs[2] = select(2, pcall(function() http.request { url = "http://x/", headers = { ["a b"] = "1" } } end))
      errs[3] = select(2, pcall(function() http.request { url = "http://x/", headers = { A = "x\r\nB: y" } } end))
      errs[4] = select(2, pcall(function() http.request { url = "http://x/", timeout = -1 } end))
      reactor.stop()
    end)
    H.run_loop()
    local line = H.line_of(H.read_file(THIS), "-- line A")
    assert.matches(THIS .. ":" .. line .. ": bad argument #1 to 'get' %(expected a URL string", errs[1])
    assert.matches(THIS .. ":%d+: bad argument to 'request' %(header name must be a token", errs[2])
    assert.matches(THIS .. ":%d+: bad argument to 'request' %(header A must be a string without control bytes", errs[3])
    assert.matches(THIS .. ":%d+: bad argument to 'request' %(timeout must be a number of seconds > 0", errs[4])
  end)
end)
