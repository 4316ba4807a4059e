-- The zen protocol served by the real daemon: `reactord examples/zen.lua -p 0`.
-- A question ends at `?`; the reply carries no newline; an unknown question is
-- answered with exactly `Error: unknown zphorism`.

local H = require "spec.helpers"

local QA = {
  { "Beautiful is better than?", "Ugly." },
  { "Explicit is better than?", "Implicit." },
  { "Simple is better than?", "Complex." },
}
local UNKNOWN = "Error: unknown zphorism"

describe("zen daemon", function()
  local d

  before_each(function()
    d = nil
    d = H.start_daemon { script = "examples/zen.lua" }
  end)

  after_each(function()
    -- every test ends with a clean SIGTERM shutdown: exit 0 (under
    -- REACTORD_WRAPPER=valgrind --error-exitcode=N this is where memory
    -- errors and leaks show up)
    if not d then return H.cleanup() end
    local code, how = d:stop("TERM")
    local err = d:stderr()
    H.cleanup()
    assert.are.equal("exit 0", how .. " " .. tostring(code), "daemon stderr:\n" .. err)
  end)

  local function ask(sock, q, a)
    assert.is_true(H.send_all(sock, q))
    local got, err, partial = H.read_exact(sock, #a)
    assert.are.equal(a, got, "reply to " .. q .. " (err " .. tostring(err) ..
      ", partial " .. tostring(partial) .. ")")
  end

  it("prints its listening line with host 127.0.0.1 and a real port", function()
    assert.are.equal("127.0.0.1", d.host)
    assert.is_true(d.port > 0 and d.port < 65536)
  end)

  it("answers three questions on one connection", function()
    local s = assert(H.connect(d.port))
    for _, qa in ipairs(QA) do ask(s, qa[1], qa[2]) end
    s:close()
  end)

  it("answers a question sent byte by byte", function()
    local s = assert(H.connect(d.port))
    s:setoption("tcp-nodelay", true)
    local q, a = QA[2][1], QA[2][2]
    for i = 1, #q do
      assert.is_true(H.send_all(s, q:sub(i, i)))
    end
    local got = H.read_exact(s, #a)
    assert.are.equal(a, got)
    -- and the connection is still usable afterwards
    ask(s, QA[3][1], QA[3][2])
    s:close()
  end)

  it("answers questions that straddle sends (each send ends mid-question)", function()
    -- every send finishes one question and starts the next; the answer to
    -- one is read before the next send, so the daemon sees the pieces in
    -- separate reads, with an unfinished question kept between them
    local s = assert(H.connect(d.port))
    local sends = {
      "Beautiful is better than?Expl",
      "icit is better than?Simp",
      "le is better than?Beau",
      "tiful is better than?",
    }
    local answers = { "Ugly.", "Implicit.", "Complex.", "Ugly." }
    local got = {}
    for i = 1, #sends do
      assert.is_true(H.send_all(s, sends[i]))
      local a, err, partial = H.read_exact(s, #answers[i])
      got[i] = a or ("<" .. tostring(err) .. "> " .. tostring(partial))
    end
    s:close()
    assert.are.same(answers, got)
  end)

  it("answers three questions sent in one send, in order", function()
    local s = assert(H.connect(d.port))
    local q = QA[3][1] .. QA[1][1] .. QA[2][1]
    local a = QA[3][2] .. QA[1][2] .. QA[2][2]
    assert.is_true(H.send_all(s, q))
    local got, err, partial = H.read_exact(s, #a)
    assert.are.equal(a, got or partial, err)
    s:close()
  end)

  it("answers an unknown question with exactly the error text and keeps serving", function()
    local s = assert(H.connect(d.port))
    -- if anything followed the error text (a newline, say) the next answer
    -- would be shifted, so reading both exactly checks the error is exact
    assert.is_true(H.send_all(s, "What is better than nothing?" .. QA[1][1]))
    local a = UNKNOWN .. QA[1][2]
    local got, err, partial = H.read_exact(s, #a)
    assert.are.equal(a, got or partial, err)
    s:close()
  end)

  it("serves 200 clients at once", function()
    local N = 200
    local socks = {}
    for i = 1, N do
      local s, err = H.connect(d.port)
      assert(s, "client " .. i .. ": " .. tostring(err))
      socks[i] = s
    end
    for i = 1, N do
      local qa = QA[(i % 3) + 1]
      assert.is_true(H.send_all(socks[i], qa[1]))
    end
    local wrong = {}
    for i = 1, N do
      local qa = QA[(i % 3) + 1]
      local got, err = H.read_exact(socks[i], #qa[2])
      if got ~= qa[2] then wrong[#wrong + 1] = i .. ":" .. tostring(got or err) end
    end
    for i = 1, N do socks[i]:close() end
    assert.are.same({}, wrong)
  end)

  it("still serves the next client after one hangs up mid-question", function()
    local s = assert(H.connect(d.port))
    assert.is_true(H.send_all(s, "Beautiful is bet"))
    s:close()
    local s2 = assert(H.connect(d.port))
    ask(s2, QA[1][1], QA[1][2])
    s2:close()
    assert.is_true(d:alive())
  end)

  it("survives clients that hang up without reading their answers", function()
    -- many questions then an immediate close: the daemon's writes run into a
    -- reset connection (EPIPE / ECONNRESET) and must not kill it (SIGPIPE)
    for i = 1, 5 do
      local s = assert(H.connect(d.port))
      local ok, err, sent = H.send_all(s, string.rep(QA[1][1], 2000))
      assert(ok, tostring(err) .. " iteration " .. i .. " sent " .. tostring(sent) .. "; daemon stderr: " .. d:stderr())
      s:close()
    end
    local s2 = assert(H.connect(d.port))
    ask(s2, QA[2][1], QA[2][2])
    s2:close()
    assert.is_true(d:alive())
  end)

  local function shutdown_with_clients(sig)
    local socks = {}
    for i = 1, 3 do
      socks[i] = assert(H.connect(d.port))
      -- a full round trip proves the daemon has accepted the connection
      ask(socks[i], QA[i][1], QA[i][2])
    end
    -- one client in the middle of a question
    assert.is_true(H.send_all(socks[2], "Simple is"))
    local code, how = d:stop(sig)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
    for i = 1, 3 do
      -- a clean close (reason "done"): FIN, not a reset
      local eof, why = H.sees_eof(socks[i])
      assert.is_true(eof, "client " .. i .. ": " .. tostring(why))
      assert.are.equal("closed", why, "client " .. i)
      socks[i]:close()
    end
    assert.matches("reactord: stopped", d:stderr(), 1, true)
  end

  it("on SIGTERM with clients connected exits 0 and the clients see EOF", function()
    shutdown_with_clients("TERM")
  end)

  it("on SIGINT with clients connected exits 0 and the clients see EOF", function()
    shutdown_with_clients("INT")
  end)
end)
