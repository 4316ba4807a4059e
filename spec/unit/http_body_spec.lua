-- reactor.http request bodies above maxBody, read in parts (req:read,
-- req:readall): lhttp.c's streamed body mode over reactor.testing (the real
-- C transport and parser on a socketpair), with hostile bodies as a table.
local reactor = require "reactor"
local testing = require "reactor.testing"
local http = require "reactor.http"
local H = require "spec.helpers"

local THIS = "spec/unit/http_body_spec.lua"

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
end

local function release()
  reactor.core.abortAll()
  testing.flush()
end

-- every response in s: {status=, headers=, body=}
local function responses(s)
  local out, pos = {}, 1
  while pos <= #s do
    local e = s:find("\r\n\r\n", pos, true)
    assert(e, "an unfinished head: " .. s:sub(pos))
    local head = s:sub(pos, e + 1)
    local r = { status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) ")), headers = {} }
    for k, v in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do r.headers[k:lower()] = v end
    pos = e + 4
    local n = tonumber(r.headers["content-length"] or 0)
    r.body = s:sub(pos, pos + n - 1)
    pos = pos + n
    out[#out + 1] = r
  end
  return out
end

local function req(method, path, extra, body)
  return ("%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n%s"):format(method, path, extra or "", body or "")
end

local function chunked(...)
  local t = {}
  for _, c in ipairs { ... } do t[#t + 1] = ("%x\r\n%s\r\n"):format(#c, c) end
  return table.concat(t) .. "0\r\n\r\n"
end

local function cl(body) return "Content-Length: " .. #body .. "\r\n" end
local TE = "Transfer-Encoding: chunked\r\n"

-- an app whose bodies above 8 bytes are streamed, up to 64; /read reads the
-- body in parts and answers "parts:body", or 400 "error: why"
local function app_under_test(seen)
  local app = http.app { maxBody = 8, maxStreamBody = 64 }
  app:post("/read", function(r)
    local parts = {}
    while true do
      local piece, why = r:read(seen and seen.n or nil)
      if not piece then
        if seen then seen.why = why end
        if why then return 400, "error: " .. why end
        break
      end
      parts[#parts + 1] = piece
    end
    return #parts .. ":" .. table.concat(parts)
  end)
  app:post("/whole", function(r) return "whole:" .. r.body end)
  app:post("/ignore", function() return "ignored" end)
  app:post("/fail", function(r)
    r:read()
    error("the handler fails") -- (logged)
  end)
  return app
end

describe("reactor.http streamed request bodies", function()
  after_each(function()
    hangup()
    H.assert_clean(release)
  end)

  local body40 = ("0123456789"):rep(4)
  -- input, expected {status .. " " .. body} of every response, and whether the connection closes
  local cases = {
    { "a Content-Length body above maxBody, read in parts",
      req("POST", "/read", cl(body40), body40), { "200 " .. body40 }, false },
    { "a chunked body above maxBody",
      req("POST", "/read", TE, chunked("0123456", "789abcdef", ("z"):rep(20))),
      { "200 0123456789abcdef" .. ("z"):rep(20) }, false },
    { "a body up to maxBody is req.body, as before",
      req("POST", "/whole", cl("12345678"), "12345678"), { "200 whole:12345678" }, false },
    { "a pipelined request after a streamed body is parsed after it",
      req("POST", "/read", cl(body40), body40) .. req("POST", "/whole", cl("ok"), "ok") ..
        req("POST", "/read", TE, chunked(body40)) .. req("POST", "/whole", TE, chunked("a", "b")),
      { "200 " .. body40, "200 whole:ok", "200 " .. body40, "200 whole:ab" }, false },
    { "Content-Length above maxStreamBody: 413",
      req("POST", "/read", "Content-Length: 65\r\n", ("x"):rep(65)), { "413 413 Content Too Large\n" }, true },
    { "a chunked body above maxStreamBody: the handler's read fails, then 413",
      req("POST", "/read", TE, chunked(("x"):rep(40), ("y"):rep(40))),
      { "400 error: chunked body above the body limit", "413 413 Content Too Large\n" }, true },
    { "a chunk size of 17 hex digits, after streaming began: 400",
      req("POST", "/read", TE, "a\r\n0123456789\r\n00000000000000001\r\nx\r\n0\r\n\r\n"),
      { "400 error: chunk size longer than 16 hex digits", "400 400 Bad Request\n" }, true },
    { "a chunk size of 17 hex digits, as the first chunk: 400",
      req("POST", "/read", TE, "00000000000000001\r\nx\r\n0\r\n\r\n"), { "400 400 Bad Request\n" }, true },
    { "chunk data not followed by CRLF: 400",
      req("POST", "/read", TE, "10\r\n0123456789abcdefXX\r\n0\r\n\r\n"),
      { "400 error: chunk data not followed by CRLF", "400 400 Bad Request\n" }, true },
    { "a huge chunk extension after streaming began: 413",
      req("POST", "/read", TE, "a\r\n0123456789\r\n1;" .. ("e"):rep(5000) .. "\r\nx\r\n0\r\n\r\n"),
      { "400 error: chunk extensions too long", "413 413 Content Too Large\n" }, true },
    { "a handler that does not read its body: Connection: close, nothing after it is read",
      req("POST", "/ignore", cl(body40), body40) .. req("POST", "/whole", cl("ok"), "ok"),
      { "200 ignored" }, true },
    { "a streamed body with Connection: close: read to its end, answered, then closed",
      req("POST", "/read", "Connection: close\r\n" .. cl(body40), body40) .. req("POST", "/whole", cl("ok"), "ok"),
      { "200 " .. body40 }, true },
    { "a handler that fails before its body's end: 500, nothing after it is read",
      req("POST", "/fail", cl(body40), body40) .. req("POST", "/whole", cl("ok"), "ok"),
      { "500 500 Internal Server Error\n" }, true },
  }

  for _, c in ipairs(cases) do
    local name, input, want, closes = c[1], c[2], c[3], c[4]
    it(name .. ", however the bytes arrive", function()
      for _, split in ipairs { false, "every", 7, "random" } do
        local _, tr = connect(app_under_test().protocol)
        tr:feed(input, split or nil)
        testing.flush()
        local got = {}
        for i, r in ipairs(responses(tr:value())) do
          local b = r.body:gsub("^%d+:", "") -- the part count depends on the split
          got[i] = r.status .. " " .. b
          if i == #want and closes and r.status ~= 500 then assert.equal("close", r.headers.connection, name) end
        end
        assert.same(want, got, ("%s, split %s"):format(name, tostring(split)))
        assert.equal(closes, tr:closed(), name)
      end
    end)
  end

  it("hands each read's data as it comes: req:read(n) gives at most n bytes", function()
    local seen = { n = 3 }
    local _, tr = connect(app_under_test(seen).protocol)
    tr:feed(req("POST", "/read", cl(body40), body40))
    testing.flush()
    local r = responses(tr:value())[1]
    assert.equal("14:" .. body40, r.body) -- 13 parts of 3, one of 1
  end)

  it("gives the handler the head before the body, and its parts as they arrive", function()
    local app = http.app { maxBody = 8, maxStreamBody = 64 }
    local log = {}
    app:post("/", function(r)
      log[#log + 1] = "head"
      while true do
        local piece = r:read()
        if not piece then break end
        log[#log + 1] = piece
      end
      return "done"
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", "Content-Length: 20\r\n"))
    testing.flush()
    assert.same({ "head" }, log)
    tr:feed("0123456789")
    testing.flush()
    assert.same({ "head", "0123456789" }, log)
    assert.equal("", tr:value())
    tr:feed("abcdefghij")
    testing.flush()
    assert.same({ "head", "0123456789", "abcdefghij" }, log)
    assert.same({ "done" }, (function()
      local t = {}
      for i, x in ipairs(responses(tr:value())) do t[i] = x.body end
      return t
    end)())
  end)

  it("tells a handler reading its body that the client went: nil, \"closed\"", function()
    local seen = {}
    local _, tr = connect(app_under_test(seen).protocol)
    tr:feed(req("POST", "/read", "Content-Length: 40\r\n", "0123456789"))
    testing.flush()
    tr:hangup()
    testing.flush()
    assert.equal("closed", seen.why)
  end)

  it("times a read out after requestTimeout seconds without a byte: nil, \"timeout\"", function()
    local clock <close> = testing.clock()
    local seen = {}
    local app = http.app { maxBody = 8, maxStreamBody = 64, requestTimeout = 5 }
    app:post("/", function(r)
      seen.first = r:read()
      seen.second, seen.why = r:read()
      return "late"
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", "Content-Length: 40\r\n", "0123456789"))
    testing.flush()
    clock:advance(4.9)
    testing.flush()
    assert.is_nil(seen.why)
    clock:advance(0.2)
    testing.flush()
    assert.same({ first = "0123456789", why = "timeout" }, seen)
  end)

  it("stops reading while the handler does not read, and goes on when it does", function()
    local clock <close> = testing.clock()
    local app = http.app { maxBody = 8, maxStreamBody = 4 * 1024 * 1024 }
    local total = 0
    app:post("/", function(r)
      reactor.sleep(1) -- not reading yet
      while true do
        local piece = r:read()
        if not piece then break end
        total = total + #piece
      end
      return "got " .. total
    end)
    local size = 2 * 1024 * 1024
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", "Content-Length: " .. size .. "\r\n", ("x"):rep(size)))
    testing.flush()
    assert.same({ true, "reading" }, { tr:paused() }) -- the queue is full: the rest waits in the socket
    assert.equal("", tr:value())
    clock:advance(1)
    testing.run_until(function() return tr:value() ~= "" end)
    assert.equal("got " .. size, responses(tr:value())[1].body)
    assert.is_false(tr:paused())
  end)

  it("sends 100 Continue for a streamed body with Expect: 100-continue", function()
    local _, tr = connect(app_under_test().protocol)
    tr:feed(req("POST", "/read", "Content-Length: 40\r\nExpect: 100-continue\r\n"))
    testing.flush()
    assert.equal("HTTP/1.1 100 Continue\r\n\r\n", tr:value())
    tr:clear()
    tr:feed(body40)
    testing.flush()
    assert.equal("1:" .. body40, responses(tr:value())[1].body)
  end)

  it("raises at the handler's line when it reads req.body of a streamed body", function()
    local app = http.app { maxBody = 8, maxStreamBody = 64 }
    local err
    app:post("/", function(r)
      local ok, e = pcall(function() return r.body end) -- the line reported
      err = not ok and e
      return r:readall()
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", cl(body40), body40))
    testing.flush()
    assert.equal(body40, responses(tr:value())[1].body)
    assert.matches(THIS:gsub("%p", "%%%0") .. ":%d+: req%.body: this request's body is above the app's maxBody", err)
    assert.matches("req:read%(%[n%]%)", err)
  end)

  it("reads a whole body with req:read and req:readall too, and limits readall", function()
    local app = http.app { maxBody = 8, maxStreamBody = 64 }
    app:post("/parts", function(r)
      local a, b, c = r:read(3), r:read(), r:read()
      return ("%s|%s|%s"):format(a, b, tostring(c))
    end)
    app:post("/all", function(r)
      local all, why = r:readall(30)
      return all or why
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/parts", cl("abcdefg"), "abcdefg") .. req("POST", "/all", cl("small"), "small") ..
      req("POST", "/all", cl(body40), body40))
    testing.flush()
    local got = {}
    for i, r in ipairs(responses(tr:value())) do got[i] = r.body end
    assert.same({ "abc|defg|nil", "small", "the body is above 30 bytes" }, got)
  end)

  it("checks req:read's and readall's arguments, at the caller's line", function()
    local app = http.app()
    local errs = {}
    app:post("/", function(r)
      errs[1] = select(2, pcall(r.read, r, 0))
      errs[2] = select(2, pcall(r.read, r, "x"))
      errs[3] = select(2, pcall(r.readall, r, -1))
      errs[4] = select(2, pcall(r.read, {}))
      return "ok"
    end)
    local _, tr = connect(app.protocol)
    tr:feed(req("POST", "/", cl("hi"), "hi"))
    testing.flush()
    assert.matches("bad argument #1 to 'read' %(expected a byte count >= 1, or nothing, got 0%)", errs[1])
    assert.matches("bad argument #1 to 'read' %(expected a byte count >= 1, or nothing, got string", errs[2])
    assert.matches("bad argument #1 to 'readall' %(expected a byte count >= 0, or nothing, got number%)", errs[3])
    assert.matches("req:read%(%): call it with ':'", errs[4])
  end)

  it("answers 413 for a body above maxBody on a protocol without bodyReceived", function()
    local C = setmetatable({ delimiter = reactor.core.framing.http }, { __index = reactor.Protocol })
    C.__index = C
    local got = {}
    function C:requestReceived(_, _, _, body) got[#got + 1] = body end
    function C:badRequest(status)
      got[#got + 1] = status
      self.transport:loseConnection()
    end
    local _, tr = connect(C)
    tr:feed(req("POST", "/", "Content-Length: 2000000\r\n", "xx"))
    testing.flush()
    assert.same({ 413 }, got)
  end)
end)
