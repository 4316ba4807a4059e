-- In-process hot reload: reactor.serve + reactor.reload / service:reload,
-- failed reloads, listeners that follow the script. Loopback only.
--
-- Each test body runs as a coroutine inside reactor.run(): it waits for
-- events (an answer, a connection made or lost) by yielding until they have
-- happened; every callback resumes it. A 10 s reactor timer bounds the run.
-- After every test reactor.core._stats() is back to zero.

local reactor = require "reactor"
local H = require "spec.helpers"

local DEADLINE = 10

local stats, ZERO = H.live, H.ZERO

-- run `body` as a coroutine inside reactor.run(); rethrow its error
local function async(body)
  local co = coroutine.create(body)
  local failure, finished = nil, false
  local guard
  local function step()
    if coroutine.status(co) ~= "suspended" then return end
    local ok, err = coroutine.resume(co)
    if not ok then
      failure = failure or { err = err, trace = debug.traceback(co) }
      reactor.stop()
    elseif coroutine.status(co) == "dead" then
      finished = true
      reactor.stop()
    end
  end
  reactor.callLater(0, step)
  guard = reactor.callLater(DEADLINE, function()
    failure = failure or { err = "the test hit its " .. DEADLINE .. " s deadline" }
    reactor.stop()
  end)
  local prev = _G.__reload_spec_poke
  _G.__reload_spec_poke = step
  reactor.run()
  _G.__reload_spec_poke = prev
  if guard:active() then guard:cancel() end
  if failure then
    if type(failure.err) == "string" and failure.trace then
      error(failure.err .. "\n" .. failure.trace, 0)
    end
    error(failure.err, 0)
  end
  assert.is_true(finished)
end

local function poke()
  local p = _G.__reload_spec_poke
  if p then p() end
end

-- yield until cond() is true
local function wait_until(cond)
  while not cond() do coroutine.yield() end
end

-- a client connection (reactor client): c.buf collects what arrives
local function client(port)
  local c = { buf = "" }
  local P = {}
  function P:connectionMade()
    c.t = self.transport
    poke()
  end
  function P:dataReceived(data)
    c.buf = c.buf .. data
    poke()
  end
  function P:connectionLost(reason)
    c.lost = reason
    poke()
  end
  local f = reactor.ClientFactory { protocol = P }
  function f:clientConnectionFailed(_, reason)
    c.failed = reason
    poke()
  end
  reactor.connectTCP("127.0.0.1", port, f)
  wait_until(function() return c.t or c.failed end)
  return c
end

-- ask question q (the protocol answers "<letter>:<q>."); returns the answer
local function ask(c, q)
  local want = #q + 3
  c.buf = ""
  c.t:write(q .. "?")
  wait_until(function() return #c.buf >= want or c.lost end)
  local got = c.buf
  c.buf = ""
  return got
end

local function hangup(c)
  c.t:loseConnection()
  wait_until(function() return c.lost end)
end

local function script(letter, opts)
  opts = opts or {}
  return ([[
local reactor = require "reactor"
local P = reactor.LineReceiver:extend { delimiter = "?" }
function P:lineReceived(q) self.transport:write(%q .. ":" .. q .. ".") end
return { port = 1060, protocol = P, %s }
]]):format(letter, opts.fields or "")
end

-- reload's log lines (they go through reactor.core.log, looked up at each
-- record): captured, with the daemon's prefix
local captured
local real_log = reactor.core.log
local function fake_log(msg) captured[#captured + 1] = "reactord: " .. msg .. "\n" end
local function log_lines() return H.lines(table.concat(captured)) end

describe("hot reload (in process)", function()
  local service, path

  before_each(function()
    service = nil
    path = H.tmpdir() .. "/served.lua"
    captured = {}
    reactor.core.log = fake_log
  end)

  after_each(function()
    reactor.core.log = real_log
    if service then service:close() end
    H.remove_tmpdirs()
    H.cleanup()
    H.assert_clean(function() -- leave the next test a clean reactor
      reactor.callLater(0, reactor.stop)
      reactor.run()
    end)
  end)

  local function serve(opts)
    local heard = {}
    opts = opts or {}
    local o = { port = 0, onListen = function(addr) heard[#heard + 1] = addr end }
    for k, v in pairs(opts) do o[k] = v end
    local s, err = reactor.serve(path, o)
    assert(s, err)
    service = s
    return s, heard
  end

  it("reload() returns true and live connections answer with the new code", function()
    H.write_file(path, script("A"))
    local _, heard = serve()
    assert.are.equal(1, #heard)
    local port = heard[1].port
    assert.are.equal("127.0.0.1", heard[1].host)
    async(function()
      local c = client(port)
      assert.are.equal("A:one.", ask(c, "one"))
      H.write_file(path, script("B"))
      assert.is_true(reactor.reload())
      assert.are.equal(2, service.generation)
      assert.are.equal("B:two.", ask(c, "two"))
      H.write_file(path, script("C"))
      assert.is_true(service:reload())
      assert.are.equal("C:three.", ask(c, "three"))
      local c2 = client(port)
      assert.are.equal("C:four.", ask(c2, "four"))
      hangup(c)
      hangup(c2)
    end)
    assert.are.equal(1, #heard) -- no new listener
    local lines = log_lines()
    assert.are.equal(2, #lines, table.concat(lines, "\n"))
    -- live connections: the service's own (the client end in this process is not one)
    assert.matches("^reactord: reloaded " .. path:gsub("%p", "%%%0") .. " %(generation 2%): 1 live connection moves to it, %d+%.%d+ ms$", lines[1])
    assert.matches("^reactord: reloaded " .. path:gsub("%p", "%%%0") .. " %(generation 3%): 1 live connection moves to it, ", lines[2])
  end)

  it("a broken script: nil and file:line; the old code keeps serving", function()
    H.write_file(path, script("A"))
    local _, heard = serve()
    local cases = {
      { "syntax", script("B"):gsub("function P:lineReceived", "function P:lineReceived(q) x = = 1 end\nfunction P:x"),
        "x = = 1", " unexpected symbol near '='$" },
      { "runtime", script("B"):gsub("\nreturn {", "\nerror('no good') -- BOOM\nreturn {"),
        "-- BOOM", " no good$" },
    }
    async(function()
      local c = client(heard[1].port)
      for _, case in ipairs(cases) do
        local name, src, marker, tail = case[1], case[2], case[3], case[4]
        H.write_file(path, src)
        local ok, msg = reactor.reload()
        assert.is_nil(ok, name)
        local n = H.line_of(src, marker)
        assert.matches("^" .. path:gsub("%p", "%%%0") .. ":" .. n .. ":" .. tail, msg)
        local ok2, msg2 = service:reload()
        assert.is_nil(ok2, name)
        assert.are.equal(msg, msg2)
        assert.are.equal(1, service.generation)
        assert.are.equal("A:" .. name .. ".", ask(c, name))
      end
      -- a protocol with no callbacks
      H.write_file(path, "return { protocol = {} }\n")
      local ok, msg = reactor.reload()
      assert.is_nil(ok)
      assert.are.equal(path .. ": the protocol defines none of connectionMade, dataReceived, lineReceived", msg)
      assert.are.equal("A:still.", ask(c, "still"))
      -- and a good version still goes in
      H.write_file(path, script("B"))
      assert.is_true(reactor.reload())
      assert.are.equal(2, service.generation)
      assert.are.equal("B:fixed.", ask(c, "fixed"))
      hangup(c)
    end)
    -- one line per reload: 2 per broken case, 1 for no callbacks, 1 success
    local lines = log_lines()
    assert.are.equal(6, #lines, table.concat(lines, "\n"))
    for i = 1, 5 do
      assert.matches("^reactord: reload failed, still serving generation 1: " .. path:gsub("%p", "%%%0") .. ":", lines[i])
    end
    assert.matches("^reactord: reloaded .* %(generation 2%)", lines[6])
  end)

  it("a version that adds `listen = {0}` opens a second listener, also when the main one is on port 0", function()
    H.write_file(path, script("A"))
    local _, heard = serve() -- port = 0, as `reactord -p 0`
    local main = heard[1].port
    H.write_file(path, script("B", { fields = "listen = { 0 }" }))
    assert.is_true(reactor.reload())
    assert.are.equal(2, #heard, "onListen calls")
    assert.are.equal(2, stats().listeners)
    assert.are_not.equal(main, heard[2] and heard[2].port)
  end)

  it("listeners follow the script: a version that adds one opens it, one that drops it closes it", function()
    H.write_file(path, script("A"))
    -- the main listener on a port of its own, so that its key (host:port as
    -- declared) is not the extra one's `127.0.0.1:0`
    local _, heard = serve { port = H.free_port() }
    local main = heard[1].port
    assert.are.equal(1, stats().listeners)
    async(function()
      local c = client(main)
      assert.are.equal("A:one.", ask(c, "one"))

      -- v2 adds `listen = {0}`: a second listener, announced by onListen
      H.write_file(path, script("B", { fields = "listen = { 0 }" }))
      assert.is_true(reactor.reload())
      assert.are.equal(2, #heard)
      local extra = heard[2].port
      assert.are_not.equal(main, extra)
      assert.are.equal(2, stats().listeners)
      local e = client(extra)
      assert.is_nil(e.failed)
      assert.are.equal("B:extra.", ask(e, "extra"))
      assert.are.equal("B:main.", ask(c, "main"))

      -- the same declaration again: the same listener, nothing new opened
      H.write_file(path, script("C", { fields = "listen = { 0 }" }))
      assert.is_true(reactor.reload())
      assert.are.equal(2, #heard)
      assert.are.equal(2, stats().listeners)
      local e2 = client(extra)
      assert.are.equal("C:again.", ask(e2, "again"))
      hangup(e2)

      -- v4 drops it: closed; its live connection stays, on the new code
      H.write_file(path, script("D"))
      assert.is_true(reactor.reload())
      assert.are.equal(2, #heard)
      assert.are.equal(1, stats().listeners)
      local refused = client(extra)
      assert.is_nil(refused.t)
      assert.are.equal("refused", refused.failed and refused.failed.type)
      assert.are.equal("D:kept.", ask(e, "kept"))
      assert.are.equal("D:main.", ask(c, "main"))
      hangup(e)
      hangup(c)
    end)
  end)

  it("a reload whose new listener cannot be opened fails and changes nothing", function()
    H.write_file(path, script("A"))
    local _, heard = serve()
    local main = heard[1].port
    async(function()
      local c = client(main)
      -- the main listener's own port, declared again on the same host: EADDRINUSE
      H.write_file(path, script("B", { fields = ("listen = { { host = '127.0.0.1', port = %d } }"):format(main) }))
      local ok, msg = reactor.reload()
      assert.is_nil(ok)
      assert.matches("^cannot listen on 127%.0%.0%.1:" .. main .. ": EADDRINUSE", msg)
      assert.are.equal(1, #heard)
      assert.are.equal(1, stats().listeners)
      assert.are.equal(1, service.generation)
      assert.are.equal("A:same.", ask(c, "same"))
      hangup(c)
    end)
  end)

  it("service:close() stops listening; stats are back to zero once the clients are gone", function()
    H.write_file(path, script("A", { fields = "listen = { 0 }" }))
    local _, heard = serve { port = H.free_port() }
    assert.are.equal(2, #heard)
    assert.are.equal(2, stats().listeners)
    async(function()
      local c = client(heard[2].port)
      assert.are.equal("A:one.", ask(c, "one"))
      service:close()
      assert.are.equal(0, stats().listeners)
      -- nothing is served any more: reload has nothing to do
      local ok, msg = reactor.reload()
      assert.is_nil(ok)
      assert.matches("nothing to reload", msg)
      -- the live connection outlives the listener
      assert.are.equal("A:two.", ask(c, "two"))
      hangup(c)
    end)
    service = nil
    assert.are.same(ZERO, stats())
  end)
end)

describe("the file watcher behind --watch (core.watch)", function()
  after_each(function()
    H.remove_tmpdirs()
    H.assert_clean()
  end)

  it("calls back once for a burst of saves, and not again until the next save", function()
    local f = H.tmpdir() .. "/watched.lua"
    H.write_file(f, "-- 0\n")
    local calls = 0
    local w = assert(reactor.core.watch({ f }, function()
      calls = calls + 1
      poke()
    end))
    finally(function() w:close() end)
    local after_burst, after_quiet, after_next
    async(function()
      -- five editor-style saves within one loop callback: one burst
      for i = 1, 5 do H.save_by_rename(f, "-- " .. i .. "\n") end
      wait_until(function() return calls >= 1 end)
      after_burst = calls
      -- barrier: 0.3 s of loop time with no change (the settle time is
      -- 0.05 s), so a second call for the same burst would come before it
      local quiet = false
      reactor.callLater(0.3, function()
        quiet = true
        poke()
      end)
      wait_until(function() return quiet end)
      after_quiet = calls
      H.save_by_rename(f, "-- next\n")
      wait_until(function() return calls >= 2 end)
      after_next = calls
    end)
    assert.are.same({ 1, 1, 2 }, { after_burst, after_quiet, after_next })
  end)
end)
