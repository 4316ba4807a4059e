-- reactor.http over reactor.testing: the real C transport and core's parser
-- on a socketpair, the virtual clock under the handlers' sleeps.
local reactor = require "reactor"
local testing = require "reactor.testing"
local http = require "reactor.http"
local H = require "spec.helpers"

local THIS = "spec/unit/http_spec.lua"
local SOURCE = H.read_file(THIS)

-- every test's connections: the peer hangs up after it, and what the server
-- held must then be released (its tasks cancelled, its transports gone)
local opened = {}
local function connect(class)
  local proto, tr = testing.connect(class)
  opened[#opened + 1] = tr
  return proto, tr
end

local function hangup()
  for _, tr in ipairs(opened) do
    if not tr:closed() then tr:hangup() end
  end
  opened = {}
  testing.flush()
  local k = reactor.core._testing()._installed()
  if k then k:uninstall() end
end

local function release()
  reactor.core.abortAll()
  testing.flush()
end

-- every response in s: {status=, headers=, body=} (lower-case names; a HEAD's
-- Content-Length is not followed by a body: heads lists which ones)
local function responses(s, heads)
  heads = heads or {}
  local out, pos = {}, 1
  while pos <= #s do
    local e = s:find("\r\n\r\n", pos, true)
    assert(e, "an unfinished head: " .. s:sub(pos))
    local head = s:sub(pos, e + 1)
    local r = { status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) ")), headers = {}, head = head }
    for k, v in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do r.headers[k:lower()] = v end
    pos = e + 4
    local n = heads[#out + 1] and 0 or tonumber(r.headers["content-length"] or 0)
    r.body = s:sub(pos, pos + n - 1)
    pos = pos + n
    out[#out + 1] = r
  end
  return out
end

local function req(method, path, extra, body)
  return ("%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n%s"):format(method, path, extra or "", body or "")
end

local function bodies(rs)
  local t = {}
  for i, r in ipairs(rs) do t[i] = r.status .. " " .. r.body end
  return t
end

describe("reactor.http router", function()
  after_each(function()
    hangup()
    H.assert_clean(release)
  end)

  local app = http.app()
  app:get("/", function() return "index" end)
  app:get("/hello/{name}", function(r) return "hello " .. r.params.name end)
  app:get("/a/{x}/b/{y}", function(r) return r.params.x .. "," .. r.params.y end)
  app:post("/hello/{name}", function(r) return 201, "made " .. r.params.name end)
  app:route("PUT", "/thing", function(r) return "put " .. r.body end)
  app:get("/q", function(r)
    local keys = {}
    for k, v in pairs(r.query) do keys[#keys + 1] = k .. "=" .. v end
    table.sort(keys)
    return table.concat(keys, ";")
  end)
  app:get("/h", function(r) return r.headers["x-thing"] .. "|" .. r.headers["accept"] end)

  it("matches literal paths and {parameters}, percent-decoded", function()
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/") .. req("GET", "/hello/w%20o%2Frld") .. req("GET", "/a/1/b/2") ..
      req("POST", "/hello/z") .. req("PUT", "/thing", "Content-Length: 3\r\n", "abc"))
    testing.flush()
    assert.same({ "200 index", "200 hello w o/rld", "200 1,2", "201 made z", "200 put abc" },
      bodies(responses(tr:value())))
  end)

  it("makes req.headers from the head's field lines when a handler first reads it", function()
    local a = http.app()
    local seen = {}
    a:get("/all", function(r)
      local first = r.headers
      assert(first == r.headers, "req.headers is made once per request")
      local keys = {}
      for k, v in pairs(r.headers) do keys[#keys + 1] = k .. "=[" .. v .. "]" end
      table.sort(keys)
      seen[#seen + 1] = table.concat(keys, " ")
      return "ok"
    end)
    a:get("/none", function() return "untouched" end)
    local _, tr = connect(a.protocol)
    local many = {}
    for i = 1, 40 do many[#many + 1] = ("X-N%d: %d\r\n"):format(i, i) end
    tr:feed(req("GET", "/all", "X-Pad:  \t spaced\t  \r\nX-Empty:\r\nX-E2: \r\nCookie: a=1\r\ncookie: b=2\r\n") ..
      req("GET", "/none", "X-Unread: 1\r\n") ..
      ("GET /all HTTP/1.1\r\n\r\n") .. -- HTTP/1.1 without Host is a 400 and the end of the connection
      "")
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ 200, 200, 400 }, { rs[1].status, rs[2].status, rs[3].status })
    assert.equal("cookie=[a=1, b=2] host=[t] x-e2=[] x-empty=[] x-pad=[spaced]", seen[1])
    local _, tr2 = connect(a.protocol)
    tr2:feed(req("GET", "/all", table.concat(many)))
    testing.flush()
    assert.equal(200, responses(tr2:value())[1].status)
    assert.equal(41, select(2, seen[2]:gsub("=%[", "")))
    assert.truthy(seen[2]:find("x-n40=[40]", 1, true))
  end)

  it("parses the query string and gives lower-case header names", function()
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/q?a=1&b=x+y&c=%26&d") ..
      req("GET", "/h", "X-Thing: one\r\nACCEPT: a\r\nAccept: b\r\n"))
    testing.flush()
    assert.same({ "200 a=1;b=x y;c=&;d=", "200 one|a, b" }, bodies(responses(tr:value())))
  end)

  it("gives an empty query and params table to a request without them, its own each time", function()
    local seen = {}
    local a = http.app()
    a:get("/e", function(r)
      r.query.mine, r.params.mine = #seen, #seen -- a handler may write into them
      seen[#seen + 1] = { r.query, r.params }
      local n = 0
      for _ in pairs(r.query) do n = n + 1 end
      for _ in pairs(r.params) do n = n + 1 end
      return r.method .. " " .. n .. " " .. tostring(r.query ~= r.params)
    end)
    local _, tr = connect(a.protocol)
    tr:feed(req("GET", "/e") .. req("GET", "/e") .. req("HEAD", "/e"))
    testing.flush()
    local b = bodies(responses(tr:value(), { false, false, true }))
    assert.same({ "200 GET 2 true", "200 GET 2 true", "200 " }, b)
    assert.equal(3, #seen)
    assert.are_not.equal(seen[1][1], seen[2][1])
    assert.are_not.equal(seen[1][2], seen[2][2])
    assert.same({ mine = 0 }, seen[1][1])
    assert.same({ mine = 1 }, seen[2][2])
  end)

  it("gives every request its method, target, path, version, body and transport, however few fields it holds", function()
    local seen = {}
    local a = http.app()
    local function show(r)
      seen[#seen + 1] = table.concat({ r.method, r.target, r.path, r.version, "[" .. r.body .. "]",
        tostring(r.transport == rawget(r, "transport") and r.transport ~= nil) }, " ")
      return "ok"
    end
    a:get("/v", show)
    a:post("/v", show)
    local _, tr = connect(a.protocol)
    tr:feed(req("GET", "/v") .. req("GET", "/v?x=1") ..
      "POST /v HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi" ..
      req("GET", "http://t/v?y") .. req("GET", "/v", "Connection: close\r\n"))
    testing.flush()
    assert.same({ "GET /v /v 1.1 [] true", "GET /v?x=1 /v 1.1 [] true", "POST /v /v 1.0 [hi] true",
      "GET http://t/v?y /v 1.1 [] true", "GET /v /v 1.1 [] true" }, seen)
  end)

  it("dates each response with the current second in IMF-fixdate, in English whatever the locale", function()
    local a = http.app()
    a:get("/", function() return "x" end)
    local _, tr = connect(a.protocol)
    local before = os.time()
    tr:feed(req("GET", "/"))
    testing.flush()
    local after = os.time()
    local d = responses(tr:value())[1].headers.date
    local wd, day, mon, y, h, m, s = d:match("^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    assert.truthy(wd, d)
    local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
      Nov = 11, Dec = 12 }
    local got = { wd, tonumber(day), months[mon], tonumber(y), tonumber(h), tonumber(m), tonumber(s) }
    local ok = false
    for t = before, after do -- the second it was made in lies between the two readings
      local u = os.date("!*t", t)
      local names = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
      ok = ok or table.concat({ names[u.wday], u.day, u.month, u.year, u.hour, u.min, u.sec }, " ") ==
        table.concat(got, " ")
    end
    assert.truthy(ok, d)
  end)

  it("takes a handler's [status,] [headers,] body in every shape", function()
    local a = http.app()
    a:get("/1", function() return "text" end)
    a:get("/2", function() return 201, "made" end)
    a:get("/3", function() return 302, { Location = "/" }, "" end)
    a:get("/4", function() return { ["X-K"] = "v" }, "with headers" end)
    a:get("/5", function() return 42 end) -- an integer alone is a status (not a final one: 500)
    a:get("/6", function() return 1.5 end) -- a float is a body
    a:get("/7", function() return 204, nil, nil end)
    a:get("/8", function() end)
    a:get("/9", function() return 200, nil, "after nil" end)
    a:get("/10", function() return 200, {}, {} end) -- a table body: 500
    local _, tr = connect(a.protocol)
    for i = 1, 10 do tr:feed(req("GET", "/" .. i)) end
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ "200 text", "201 made", "302 ", "200 with headers", "500 500 Internal Server Error\n", "200 1.5", "204 ", "200 ",
      "200 after nil", "500 500 Internal Server Error\n" }, bodies(rs))
    assert.equal("/", rs[3].headers["location"])
    assert.equal("v", rs[4].headers["x-k"])
  end)

  it("answers 404, and 405 with Allow for a path with other methods", function()
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/nope") .. req("GET", "/hello") .. req("DELETE", "/hello/x") .. req("GET", "/thing"))
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ 404, 404, 405, 405 }, { rs[1].status, rs[2].status, rs[3].status, rs[4].status })
    assert.equal("GET, HEAD, POST", rs[3].headers["allow"])
    assert.equal("405 Method Not Allowed\n", rs[3].body)
    assert.equal("404 Not Found\n", rs[1].body)
    assert.equal("PUT", rs[4].headers["allow"])
    assert.is_false(tr:closed())
  end)

  it("answers OPTIONS * with every method the app routes", function()
    local _, tr = connect(app.protocol)
    tr:feed("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n" .. "GET * HTTP/1.1\r\nHost: t\r\n\r\n")
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ 200, "GET, HEAD, POST, PUT" }, { rs[1].status, rs[1].headers["allow"] })
    assert.equal(400, rs[2].status)
  end)

  it("serves HEAD from the GET route, with its Content-Length and no body", function()
    local _, tr = connect(app.protocol)
    tr:feed(req("HEAD", "/hello/abc") .. req("GET", "/"))
    testing.flush()
    local rs = responses(tr:value(), { true })
    assert.equal(200, rs[1].status)
    assert.equal("9", rs[1].headers["content-length"])
    assert.equal("", rs[1].body)
    assert.equal("200 index", rs[2].status .. " " .. rs[2].body)
  end)

  it("reports a bad route at the caller's line", function()
    local ok, err = pcall(function() app:get("hello", function() end) end) -- bad pattern line
    assert.is_false(ok)
    assert.equal(THIS .. ":" .. H.line_of(SOURCE, "bad pattern line") ..
      ": bad argument #1 to 'get' (expected a path pattern starting with \"/\", such as \"/hello/{name}\", " ..
      "got string \"hello\")", err)
    ok, err = pcall(function() app:route("GET", "/x", 42) end) -- bad handler line
    assert.is_false(ok)
    assert.equal(THIS .. ":" .. H.line_of(SOURCE, "bad handler line") ..
      ": bad argument #3 to 'route' (expected a handler function(req), got number)", err)
    ok, err = pcall(function() app:get("/x/{a}/{a}", print) end) -- twice line
    assert.is_false(ok)
    assert.equal(THIS .. ":" .. H.line_of(SOURCE, "twice line") ..
      ": bad argument #1 to 'get' (parameter {a} appears twice)", err)
  end)
end)

describe("reactor.http connections", function()
  after_each(function()
    hangup()
    H.assert_clean(release)
  end)

  it("answers pipelined requests in order when the first handler sleeps longest", function()
    local clock <close> = testing.clock()
    local app = http.app()
    app:get("/sleep/{s}", function(r)
      reactor.sleep(tonumber(r.params.s))
      return "slept " .. r.params.s
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/sleep/3") .. req("GET", "/sleep/1") .. req("GET", "/sleep/0") .. req("GET", "/sleep/2"))
    testing.flush()
    assert.equal("", tr:value())
    clock:advance(2.5)
    testing.flush()
    assert.equal("", tr:value()) -- the first is not done: nothing may leave
    clock:advance(0.5)
    testing.flush()
    assert.same({ "200 slept 3", "200 slept 1", "200 slept 0", "200 slept 2" }, bodies(responses(tr:value())))
    assert.is_false(tr:closed())
  end)

  it("stops reading at 64 requests in flight and answers all of 150 pipelined ones, in order", function()
    local clock <close> = testing.clock()
    local app = http.app()
    local running, peak = 0, 0
    app:get("/n/{i}", function(r)
      running = running + 1
      peak = math.max(peak, running)
      reactor.sleep(1)
      running = running - 1
      return r.params.i
    end)
    local _, tr = connect(app.protocol)
    local all, want = {}, {}
    for i = 1, 150 do
      all[i] = req("GET", "/n/" .. i)
      want[i] = "200 " .. i
    end
    tr:feed(table.concat(all))
    testing.flush()
    assert.equal(64, running) -- the rest wait in the read buffer
    assert.is_true((tr:paused()))
    testing.run_until(function() return #responses(tr:value()) == 150 end)
    assert.same(want, bodies(responses(tr:value())))
    assert.equal(64, peak)
    -- rounds of 1 s sleeps: 64 start at 0; at 1 s, reading resumes below 32
    -- in flight and refills to 64 (33 more), and so on: 64, 33, 33, 20
    assert.equal(4, clock:now())
    assert.is_false((tr:paused()))
  end)

  it("answers a bad request with its status and Connection: close, after the good ones", function()
    local cases = {
      { "GET / HTTP/1.1\r\nHost: t\r\nX: \rx\r\n\r\n", 400 },
      { "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
      { "GET / HTTP/1.1\r\nHost: t\r\n fold\r\n\r\n", 400 },
      { "GET / HTTP/1.1\nHost: t\r\n\r\n", 400 },
      { "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501 },
      { "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505 },
      { "GET nothing HTTP/1.1\r\nHost: t\r\n\r\n", 400 }, -- not origin or absolute form
      { "GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400 }, -- a bad %-escape
      { "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeXX0\r\n\r\n", 400 },
    }
    local app = http.app()
    local calls = 0
    app:route("GET", "/", function() calls = calls + 1 return "ok" end)
    app:route("POST", "/", function() calls = calls + 1 return "ok" end)
    for _, c in ipairs(cases) do
      local _, tr = connect(app.protocol)
      tr:feed(req("GET", "/") .. c[1] .. req("GET", "/"))
      testing.flush()
      local rs = responses(tr:value())
      assert.equal(2, #rs, c[1])
      assert.equal("200 ok", rs[1].status .. " " .. rs[1].body)
      assert.equal(c[2], rs[2].status, c[1])
      assert.equal(("%d %s\n"):format(c[2], http.reasons[c[2]]), rs[2].body)
      assert.equal("close", rs[2].headers["connection"])
      assert.is_true(tr:closed())
    end
    assert.equal(#cases, calls) -- the request after the bad one never ran
  end)

  it("answers 500 for a handler error, logs it with file:line, and serves the next request", function()
    local logged = {}
    local log = reactor.core.log
    reactor.core.log = function(msg) logged[#logged + 1] = msg end
    local app = http.app()
    app:get("/boom", function() error("kaboom") end) -- the failing line
    app:get("/bad", function() return 200, { ["X-A"] = "a\r\nInjected: yes" }, "x" end)
    app:get("/ok", function() return "fine" end)
    app:get("/interim", function() return 101, "no" end)
    app:get("/huge", function() return 200, { ["X-Big"] = ("b"):rep(9000) }, "x" end)
    local _, tr = connect(app.protocol)
    local _, other = connect(app.protocol)
    tr:feed(req("GET", "/boom") .. req("GET", "/bad") .. req("GET", "/interim") .. req("GET", "/huge") ..
      req("GET", "/ok"))
    other:feed(req("GET", "/ok"))
    testing.flush()
    reactor.core.log = log
    local rs = responses(tr:value())
    assert.same({ 500, 500, 500, 500, 200 }, { rs[1].status, rs[2].status, rs[3].status, rs[4].status,
      rs[5].status })
    assert.equal("fine", rs[5].body)
    assert.is_nil(rs[1].body:find("kaboom")) -- no traceback to the client
    assert.is_nil(tr:value():find("Injected"))
    assert.matches("^error in the http handler for GET /boom: " .. THIS:gsub("%p", "%%%0") .. ":" ..
      H.line_of(SOURCE, "the failing line") .. ": kaboom", logged[1])
    assert.matches("bad value for response header X%-A", logged[2])
    assert.matches("GET /interim: status 101 is not a final status %(200%.%.999%)$", logged[3])
    assert.matches("GET /huge: the response's header fields are over 8192 bytes$", logged[4])
    assert.equal("200 fine", bodies(responses(other:value()))[1])
    assert.is_false(tr:closed())
  end)

  it("sends a big body whole, behind its header fields, on a connection that stays open", function()
    local app = http.app()
    local body = {}
    for i = 1, 2000 do body[i] = string.format("%8d\n", i) end
    body = table.concat(body) -- 18,000 bytes, each line numbered: a lost piece shows
    app:get("/big", function() return 200, { ["Content-Type"] = "text/plain" }, body end)
    app:get("/small", function() return "after" end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/big") .. req("GET", "/small") .. req("GET", "/big"))
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ 200, 200, 200 }, { rs[1].status, rs[2].status, rs[3].status })
    assert.is_true(rs[1].body == body and rs[3].body == body, "a big body came back changed")
    assert.equal("after", rs[2].body)
    assert.equal(0, reactor.core._stats().borrowed)
    assert.is_false(tr:closed())
  end)

  it("decodes a chunked request body, however the bytes arrive", function()
    local app = http.app()
    app:post("/echo", function(r) return r.body end)
    for _, split in ipairs { "every", 7, "random" } do
      local _, tr = connect(app.protocol)
      tr:feed(req("POST", "/echo", "Transfer-Encoding: chunked\r\n",
        "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n") ..
        req("POST", "/echo", "Content-Length: 2\r\n", "hi"), split)
      testing.flush()
      assert.same({ "200 abc0123456789abcdef", "200 hi" }, bodies(responses(tr:value())))
    end
  end)

  it("answers Expect: 100-continue with 100 Continue once, then the response when the body came", function()
    local app = http.app()
    app:post("/up", function(r) return "got " .. #r.body end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/up", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
    testing.flush()
    assert.equal("HTTP/1.1 100 Continue\r\n\r\n", tr:value())
    tr:clear()
    tr:feed("ab")
    testing.flush()
    assert.equal("", tr:value()) -- not twice
    tr:feed("cde")
    testing.flush()
    assert.same({ "200 got 5" }, bodies(responses(tr:value())))
  end)

  it("does not send 100 Continue while an earlier response is still due", function()
    local clock <close> = testing.clock()
    local app = http.app()
    app:get("/slow", function() reactor.sleep(1) return "slow" end)
    app:post("/up", function(r) return "got " .. #r.body end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/slow") .. req("POST", "/up", "Content-Length: 2\r\nExpect: 100-continue\r\n"))
    testing.flush()
    clock:advance(1)
    testing.flush()
    tr:feed("hi")
    testing.flush()
    assert.same({ "200 slow", "200 got 2" }, bodies(responses(tr:value())))
  end)

  it("answers a head sent a byte at a time (parsed again only when a line ends)", function()
    local app = http.app()
    app:get("/", function(r) return r.headers["x-long"] end)
    local _, tr = connect(app.protocol)
    local long = ("v"):rep(3000)
    tr:feed(req("GET", "/", "X-Long: " .. long .. "\r\n"), "every")
    testing.flush()
    assert.same({ "200 " .. long }, bodies(responses(tr:value())))
  end)

  it("closes after Connection: close and after an HTTP/1.0 request without keep-alive", function()
    local app = http.app()
    app:get("/", function() return "x" end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/", "Connection: close\r\n") .. req("GET", "/"))
    testing.flush()
    local rs = responses(tr:value())
    assert.equal(1, #rs)
    assert.equal("close", rs[1].headers["connection"])
    assert.is_true(tr:closed())
    local _, tr2 = connect(app.protocol)
    tr2:feed("GET / HTTP/1.0\r\n\r\n")
    testing.flush()
    assert.equal("close", responses(tr2:value())[1].headers["connection"])
    assert.is_true(tr2:closed())
    local _, tr3 = connect(app.protocol)
    tr3:feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    testing.flush()
    assert.equal("keep-alive", responses(tr3:value())[1].headers["connection"])
    assert.is_false(tr3:closed())
  end)

  it("cancels the handlers still running when the connection is lost", function()
    local clock <close> = testing.clock()
    local app = http.app()
    local finished = false
    app:get("/", function()
      reactor.sleep(5)
      finished = true
      return "late"
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/"))
    testing.flush()
    tr:hangup()
    testing.flush()
    clock:advance(10)
    testing.flush()
    assert.is_false(finished)
  end)

  it("takes its limits from http.app{...}", function()
    local app = http.app { maxBody = 4, maxStreamBody = 4, maxHeaders = 2, maxRequestLine = 30 }
    app:post("/", function(r) return r.body end)
    local cases = {
      { req("POST", "/", "Content-Length: 4\r\n", "abcd"), 200 },
      { req("POST", "/", "Content-Length: 5\r\n", "abcde"), 413 },
      { req("POST", "/", "Transfer-Encoding: chunked\r\n", "5\r\nabcde\r\n0\r\n\r\n"), 413 },
      { req("POST", "/", "A: 1\r\nB: 2\r\n"), 431 },
      { req("POST", "/" .. ("x"):rep(30)), 414 },
    }
    for _, c in ipairs(cases) do
      local _, tr = connect(app.protocol)
      tr:feed(c[1])
      testing.flush()
      assert.equal(c[2], responses(tr:value())[1].status, c[1])
    end
    local ok, err = pcall(http.app, { maxBody = 0 }) -- a bad limit
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'app' %(maxBody must be an integer 1%.%.%d+ %(got number%)%)$", err)
  end)

  it("closes the streams a handler opened once its request is answered", function()
    local ended = false
    local l = assert(reactor.serve({ port = 0, host = "127.0.0.1" }, function(s)
      while s:read(100) do end
      ended = true
    end))
    local port = l:getHost().port
    local app = http.app()
    app:get("/", function()
      local s = assert(reactor.connect("127.0.0.1", port))
      s:write("x")
      return "ok"
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("GET", "/") .. req("GET", "/"))
    testing.run_until(function() return ended end)
    assert.same({ "200 ok", "200 ok" }, bodies(responses(tr:value())))
    l:stopListening()
  end)

  it("closes a connection idle for keepAliveTimeout (up to twice that after an answer), never while a handler runs", function()
    local clock <close> = testing.clock()
    local app = http.app { keepAliveTimeout = 5 }
    app:get("/", function() return "x" end)
    app:get("/slow", function() reactor.sleep(30) return "slow" end)
    local _, idle = connect(app.protocol)
    clock:advance(4.9)
    assert.is_false(idle:closed())
    clock:advance(0.2)
    testing.flush()
    assert.is_true(idle:closed()) -- never asked anything: closed after 5 s
    local _, tr = connect(app.protocol)
    clock:advance(4.9)
    tr:feed(req("GET", "/")) -- a byte read: the idle time starts again
    testing.flush()
    clock:advance(4.9)
    assert.is_false(tr:closed())
    tr:feed(req("GET", "/slow"))
    testing.flush()
    clock:advance(30) -- a handler runs: not idle
    testing.flush()
    assert.is_false(tr:closed())
    assert.same({ "200 x", "200 slow" }, bodies(responses(tr:value())))
    clock:advance(4.9)
    assert.is_false(tr:closed())
    clock:advance(5.2)
    testing.flush()
    assert.is_true(tr:closed())
    local ok, err = pcall(http.app, { keepAliveTimeout = -1 })
    assert.is_false(ok)
    assert.matches("keepAliveTimeout must be a number of seconds > 0 or false, got number", err)
  end)

  it("answers 408 and closes when a request is not whole within requestTimeout (slowloris)", function()
    local clock <close> = testing.clock()
    local app = http.app { requestTimeout = 10, keepAliveTimeout = false }
    app:post("/", function(r) return "got " .. r.body end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", "Content-Length: 3\r\n", "ab")) -- whole once it is answered in time
    clock:advance(9)
    tr:feed("c")
    testing.flush()
    clock:advance(5) -- the timer went with the request
    assert.same({ "200 got abc" }, bodies(responses(tr:value())))
    tr:clear()
    local head = req("GET", "/", "X-Slow: 1\r\n")
    for i = 1, #head - 1 do -- a byte every 0.3 s: a read resets an idle timer, not this one
      tr:feed(head:sub(i, i))
      clock:advance(0.3)
    end
    testing.flush()
    local rs = responses(tr:value())
    assert.same({ 408 }, { rs[1].status })
    assert.equal("close", rs[1].headers["connection"])
    assert.is_true(tr:closed())
    local ok, err = pcall(http.app, { requestTimeout = "soon" })
    assert.is_false(ok)
    assert.matches("requestTimeout must be a number of seconds > 0 or false, got string \"soon\"", err)
  end)

  it("frames requests for a protocol of one's own (reactor.core.framing.http, requestReceived only)", function()
    local got = {}
    local Bare = reactor.Protocol:extend {
      delimiter = reactor.core.framing.http,
      requestReceived = function(self, method, target, headers, body, minor, keepalive)
        got[#got + 1] = { method, target, headers.host, body, minor, keepalive }
        self.transport:write("ok")
      end,
    }
    local _, tr = connect(Bare)
    tr:feed(req("POST", "/x?y", "Content-Length: 2\r\n", "hi") .. "GET / HTTP/1.0\r\n\r\nGET / HT", "every")
    testing.flush()
    assert.same({ { "POST", "/x?y", "t", "hi", 1, true }, { "GET", "/", nil, "", 0, false } }, got)
    assert.is_false(tr:closed()) -- an unfinished head: no headStarted needed
    tr:feed("TP/1.1\r\n\r\n") -- a bad one (no Host): without badRequest, it just closes
    testing.flush()
    assert.is_true(tr:closed())
    assert.equal(2, #got)
  end)

  it("hands requestReceived an origin-form target's path and query, split in C", function()
    local got = {}
    local Bare = reactor.Protocol:extend {
      delimiter = reactor.core.framing.http,
      requestReceived = function(self, _, target, _, _, _, _, path, query)
        got[#got + 1] = { target, path or "nil", query or "nil" }
        self.transport:write("ok")
      end,
    }
    local _, tr = connect(Bare)
    tr:feed(req("GET", "/x?y=1?z") .. req("GET", "/a/b") .. req("GET", "/?") .. req("GET", "http://h/p?q") ..
      "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    testing.flush()
    assert.same({ { "/x?y=1?z", "/x", "y=1?z" }, { "/a/b", "/a/b", "" }, { "/?", "/", "" },
      { "http://h/p?q", "nil", "nil" }, { "*", "nil", "nil" } }, got)
  end)

  it("escapes HTML", function()
    assert.equal("&lt;a href=&quot;x&quot;&gt;&amp;&#39;", http.escape("<a href=\"x\">&'"))
    assert.equal("42", http.escape(42))
  end)
end)
