-- Graceful shutdown of the real daemon: on SIGTERM/SIGINT the listeners
-- close, every connection's protocol gets shutdownRequested(deadline), the
-- daemon waits up to --grace seconds for connections to end, then aborts the
-- rest ("grace period over: aborting N connection(s)") and exits 0; a second
-- signal stops at once.
--
-- No sleeps, no timing thresholds: that the first signal was handled is
-- learnt from what shutdownRequested writes to a client; that the second one
-- stopped the daemon early is learnt from the grace-period line not being
-- logged (the grace period is far longer than the test would take).

local H = require "spec.helpers"

local Q = { "Beautiful is better than?", "Explicit is better than?", "Simple is better than?" }
local A = { "Ugly.", "Implicit.", "Complex." }

local function ask(sock, q, a)
  assert(H.send_all(sock, q))
  local got, err, partial = H.read_exact(sock, #a)
  return got or ("<" .. tostring(err) .. "> " .. tostring(partial))
end

local count = H.count

-- a protocol that greets, logs its end on stderr, and has `extra` (Lua
-- source of more methods on P)
local function script(extra)
  return [[
local reactor = require "reactor"
local P = {}
function P:connectionMade() self.transport:write("hi\n") end
function P:dataReceived(data) self.transport:write("echo:" .. data .. "\n") end
function P:connectionLost(reason) io.stderr:write("lost ", reason.type, "\n") end
]] .. (extra or "") .. [[
return { protocol = P }
]]
end

-- connect n clients, each greeted (so the daemon has accepted them)
local function greeted(d, n)
  local socks = {}
  for i = 1, n do
    socks[i] = assert(H.connect(d.port))
    assert.are.equal("hi", socks[i]:receive("*l"), "client " .. i)
  end
  return socks
end

local function assert_eof(sock, what)
  local data, why = H.read_to_eof(sock)
  assert.are.equal("", data, what)
  assert.is_true(why == "closed" or why == "connection reset by peer", what .. ": " .. tostring(why))
end

describe("daemon shutdown", function()
  after_each(function() H.cleanup() end)

  it("SIGTERM with zen clients: each sees its answers then EOF, exit 0, nothing aborted", function()
    local d = H.start_daemon { script = "examples/zen.lua" }
    local socks = {}
    for i = 1, 20 do
      socks[i] = assert(H.connect(d.port))
      local k = (i % 3) + 1
      assert.are.equal(A[k], ask(socks[i], Q[k], A[k])) -- accepted and served
    end
    assert(H.send_all(socks[5], "Simple is")) -- one in the middle of a question
    local code, how = d:stop("TERM")
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    for i = 1, 20 do
      local eof, why = H.sees_eof(socks[i])
      assert.is_true(eof, "client " .. i .. ": " .. tostring(why))
      assert.are.equal("closed", why, "client " .. i .. " (a FIN, not a reset)")
      socks[i]:close()
    end
    assert.matches("reactord: stopped", err, 1, true)
    assert.is_nil(err:find("grace period over", 1, true), err)
  end)

  it("a connection whose script ignores the request is aborted after --grace, with a log line; exit 0", function()
    local d = H.start_daemon { script = H.write_script(script()), args = { "--grace", "0.5" } }
    local socks = greeted(d, 2)
    local code, how = d:stop("TERM") -- waits for the exit: after the grace period
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    assert.matches("reactord: grace period over: aborting 2 connections", err, 1, true)
    assert.are.equal(2, count(err, "lost aborted"), err)
    for i = 1, 2 do
      assert_eof(socks[i], "client " .. i)
      socks[i]:close()
    end
  end)

  it("says '1 connection' for one, and SIGINT works the same way", function()
    local d = H.start_daemon { script = H.write_script(script()), args = { "--grace", "0.2" } }
    local socks = greeted(d, 1)
    local code, how = d:stop("INT")
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    assert.matches("reactord: grace period over: aborting 1 connection\n", err, 1, true)
    assert_eof(socks[1], "client")
  end)

  it("after the first SIGTERM the listener is closed; a second SIGTERM stops at once, exit 0", function()
    local extra = [[
function P:shutdownRequested() self.transport:write("shutting down\n") end -- and stays open
]]
    -- a grace period far longer than this test: if the second signal did
    -- not stop the daemon, the grace-period line would be logged
    local d = H.start_daemon { script = H.write_script(script(extra)), args = { "--grace", "20" } }
    local socks = greeted(d, 2)
    assert.is_true(H.send_signal(d, "TERM"))
    for i = 1, 2 do
      assert.are.equal("shutting down", socks[i]:receive("*l"), "client " .. i)
    end
    -- the listener was closed before shutdownRequested ran
    local s, cerr = H.connect(d.port)
    if s then s:close() end
    assert.is_nil(s, "a new connection was accepted during shutdown")
    assert.are.equal("connection refused", cerr)
    -- still serving the connections it has
    assert(H.send_all(socks[1], "more"))
    assert.are.equal("echo:more", socks[1]:receive("*l"))
    local code, how = d:stop("TERM")
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    assert.is_nil(err:find("grace period over", 1, true), err)
    assert.are.equal(2, count(err, "lost aborted"), err)
    for i = 1, 2 do
      assert_eof(socks[i], "client " .. i)
      socks[i]:close()
    end
  end)

  it("shutdownRequested gets the deadline (reactor.now() + grace) on every connection", function()
    local extra = [[
function P:shutdownRequested(deadline)
  self.transport:write(("deadline %s %.6f now %.6f\n")
    :format(type(deadline), tonumber(deadline) or -1, reactor.now()))
  self.transport:loseConnection()
end
]]
    local grace = 3
    local d = H.start_daemon { script = H.write_script(script(extra)), args = { "--grace", tostring(grace) } }
    local socks = greeted(d, 3)
    assert.is_true(H.send_signal(d, "TERM"))
    for i = 1, 3 do
      local line = socks[i]:receive("*l")
      local kind, deadline, now = (line or ""):match("^deadline (%a+) (%S+) now (%S+)$")
      assert.are.equal("number", kind, tostring(line))
      local left = tonumber(deadline) - tonumber(now)
      assert.is_true(left > 0 and left <= grace + 1e-6, line)
      assert_eof(socks[i], "client " .. i)
      socks[i]:close()
    end
    -- every connection has closed: the daemon stops by itself. Wait for that
    -- exit; a second TERM here could come after it removed its handlers
    -- and kill it (`signal 15`)
    local code, how = d:wait()
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    assert.is_nil(err:find("grace period over", 1, true), err)
    assert.are.equal(3, count(err, "lost done"), err)
  end)

  it("an error in shutdownRequested is logged and closes that connection; the others end normally", function()
    -- the first connection asked fails, the others close
    local extra = [[
function P:shutdownRequested()
  if not self.factory.failed then
    self.factory.failed = true
    error("cannot say goodbye")
  end
  self.transport:loseConnection()
end
]]
    local src = script(extra):gsub("return { protocol = P }", "return { protocol = P, failed = false }")
    local d = H.start_daemon { script = H.write_script(src), args = { "--grace", "5" } }
    local socks = greeted(d, 4)
    local code, how = d:stop("TERM")
    local err = d:stderr()
    assert.are.equal("exit 0", how .. " " .. tostring(code), err)
    assert.are.equal(1, count(err, "reactord: error in shutdownRequested: "), err)
    assert.matches("reactord: error in shutdownRequested: [^\n]*cannot say goodbye", err)
    assert.are.equal(1, count(err, "lost error"), err)
    assert.are.equal(3, count(err, "lost done"), err)
    assert.is_nil(err:find("grace period over", 1, true), err)
    for i = 1, 4 do
      assert_eof(socks[i], "client " .. i)
      socks[i]:close()
    end
  end)
end)
