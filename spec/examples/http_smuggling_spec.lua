-- Request smuggling against the real daemon (issue 11): each input below is
-- one that some HTTP server has let through (PEERS.md headline 1: the CVE
-- inputs Debian's http-parser and llhttp 8 accept). Sent after a good
-- request on one connection and followed by a request a smuggler would want
-- answered, it must get exactly: the good answer, then one error answer with
-- `Connection: close`, then the end of the connection: the smuggled request
-- is never answered.
local H = require "spec.helpers"

local GOOD = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
local SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

local CASES = {
  { "a CR after an empty value (CVE-2023-30589)",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
  { "\\r\\n\\rX as the end of the head (the CVE-2025-23167 class)", "GET / HTTP/1.1\r\nHost: x\r\n\rX\r\n\r\n", 400 },
  { "a space before the colon (CVE-2021-22959)", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello", 400 },
  { "Content-Length with Transfer-Encoding",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
  { "two different Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400 },
  { "a signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab", 400 },
  { "obs-fold (CVE-2024-27982)", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400 },
  { "bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", 400 },
  { "Transfer-Encoding that is not exactly chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501 },
  { "any two bytes in place of the CRLF after chunk data",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400 },
  { "a bare LF in a chunk extension",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\nabc\r\n0\r\n\r\n", 400 },
  { "a chunk size of 17 hex digits",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400 },
  { "NUL in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 400 },
  { "two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400 },
}

-- the status of each response until the connection ends, in order
local function statuses(s)
  local all, rest = {}, ""
  for _ = 1, 10 do
    local head, err = H.read_until(s, "\r\n\r\n", 65536)
    if not head then
      rest = err
      break
    end
    local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
    local close = head:lower():find("\r\nconnection: close\r\n", 1, true) ~= nil
    all[#all + 1] = status .. (close and " close" or "")
    local n = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)\r\n") or 0)
    if n > 0 then assert(H.read_exact(s, n)) end
  end
  return all, rest
end

describe("examples/http_hello.lua against request smuggling", function()
  after_each(H.cleanup)

  it("answers each smuggling input with its status, closes, and never answers what follows", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    for _, c in ipairs(CASES) do
      local s = assert(H.connect(d.port))
      assert(H.send_all(s, GOOD .. c[2] .. SMUGGLED))
      local got, ended = statuses(s)
      assert.are.same({ "200", c[3] .. " close" }, got, c[1])
      assert.are.equal("closed", ended, c[1])
      s:close()
    end
    assert.are.equal(0, (d:stop()))
  end)
end)
