-- examples/http_upload.lua: bodies above maxBody read in parts by the
-- handler (req:read), run as a user runs it: the real daemon on loopback.
local H = require "spec.helpers"

local function response(s)
  local head, err = H.read_until(s, "\r\n\r\n", 65536)
  if not head then return nil, err end
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) [^\r\n]*\r\n"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do headers[k:lower()] = v end
  local n = tonumber(headers["content-length"] or 0)
  local body = n > 0 and assert(H.read_exact(s, n)) or ""
  return status, headers, body
end

-- what the example answers for body, computed here
local function expected(body)
  local lines, sum = 0, 0
  for i = 1, #body do
    local b = body:byte(i)
    sum = (sum + b) % 4294967296
    if b == 10 then lines = lines + 1 end
  end
  return ("bytes=%d lines=%d sum=%d\n"):format(#body, lines, sum)
end

local function post(path, body, extra)
  return ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s"):format(path, extra or "", #body, body)
end

local function chunked(body, size)
  local t = {}
  for i = 1, #body, size do
    local c = body:sub(i, i + size - 1)
    t[#t + 1] = ("%x\r\n%s\r\n"):format(#c, c)
  end
  return table.concat(t) .. "0\r\n\r\n"
end

-- 1.5 MB of varied bytes with some newlines
local BIG = {}
for i = 1, 1500 do BIG[i] = ("%04d:"):format(i) .. ("abcdefghij"):rep(99) .. "\n" end
BIG = table.concat(BIG)

describe("examples/http_upload.lua", function()
  after_each(H.cleanup)

  it("counts a Content-Length upload far above maxBody, then serves the next request on the connection", function()
    local d = H.start_daemon { script = "examples/http_upload.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, post("/upload", BIG) .. post("/echo", "after")))
    local st, h, body = response(s)
    assert.same({ 200, "keep-alive", expected(BIG) }, { st, h.connection, body })
    st, h, body = response(s)
    assert.same({ 200, "after", "keep-alive" }, { st, body, h.connection })
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("counts a chunked upload, in chunks of every size", function()
    local d = H.start_daemon { script = "examples/http_upload.lua" }
    local s = assert(H.connect(d.port))
    for _, size in ipairs { 1000, 65536, 300000 } do
      assert(H.send_all(s, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        chunked(BIG, size)))
      local st, _, body = response(s)
      assert.same({ 200, expected(BIG) }, { st, body }, size)
    end
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("answers 413 and closes for a Content-Length above maxStreamBody", function()
    local d = H.start_daemon { script = "examples/http_upload.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 67108865\r\n\r\n"))
    local st, h = response(s)
    assert.same({ 413, "close" }, { st, h.connection })
    assert.is_true(H.sees_eof(s))
    s:close()
    assert.equal(0, (d:stop()))
  end)

  it("keeps serving after a client goes in the middle of an upload", function()
    local d = H.start_daemon { script = "examples/http_upload.lua" }
    for _ = 1, 3 do
      local s = assert(H.connect(d.port))
      assert(H.send_all(s, post("/upload", BIG):sub(1, 700000)))
      s:close()
    end
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, post("/upload", "small\n")))
    local st, _, body = response(s)
    assert.same({ 200, expected("small\n") }, { st, body })
    s:close()
    assert.equal(0, (d:stop()))
    assert.is_nil(H.read_file(d.errfile):find("error", 1, true))
  end)

  it("sends 100 Continue to an upload that asks for it, then takes the body", function()
    local d = H.start_daemon { script = "examples/http_upload.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, ("POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n")
      :format(#BIG)))
    assert.equal("HTTP/1.1 100 Continue\r\n\r\n", H.read_until(s, "\r\n\r\n", 1000))
    assert(H.send_all(s, BIG))
    local st, _, body = response(s)
    assert.same({ 200, expected(BIG) }, { st, body })
    s:close()
    assert.equal(0, (d:stop()))
  end)
end)
