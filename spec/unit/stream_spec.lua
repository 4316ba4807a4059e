-- Coroutine streams (issue 10 part 2): reactor.serve(port, fn) and
-- reactor.connect over real loopback sockets, in-process. What is asserted
-- is what the user's task sees: the values each call returns, in order.
-- The rules where the coroutine libraries fail (cqueues#9, skynet#1845,
-- copas#208): a close or cancel from another task wakes a waiting reader
-- with nil, "closed"; a timeout gives nil, "timeout" and the stream goes on;
-- one reader at a time ("busy"); an error ends only its own connection.
local reactor = require "reactor"
local H = require "spec.helpers"

local THIS = "spec/unit/stream_spec.lua"

local logged, real_log

before_each(function()
  logged = {}
  real_log = reactor.core.log
  reactor.core.log = function(msg) logged[#logged + 1] = msg end
end)

after_each(function()
  reactor.core.log = real_log
  H.assert_clean()
end)

-- serve handler on a free loopback port; client(port) runs as a task, then
-- the server closes and the reactor stops. -> what client returned
local function withserver(handler, client, opts)
  opts = opts or {}
  opts.port, opts.host = 0, "127.0.0.1"
  local l = assert(reactor.serve(opts, handler))
  local port = l:getHost().port
  local out
  reactor.callLater(0, reactor.spawn, function()
    out = table.pack(client(port))
    l:stopListening()
    reactor.sleep(0) -- the handlers see their connections close
    reactor.stop()
  end)
  H.run_loop()
  if l:getHost() then l:stopListening() end
  return table.unpack(out, 1, out.n)
end

local function echo_lines(s)
  while true do
    local line = s:readline()
    if not line then return end
    s:write(line .. "\n")
  end
end

describe("reactor.serve and reactor.connect", function()
  it("a line echo: readline, write, readline", function()
    local got = { withserver(echo_lines, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      s:write("one\ntwo\r\n")
      local a, b = s:readline(), s:readline()
      s:write("three\n")
      return a, b, s:readline()
    end) }
    assert.are.same({ "one", "two", "three" }, got)
  end)

  -- (a readline between two readuntil("?") moves the framer's separator to
  -- "\n"; the second readuntil must still look at the bytes already there,
  -- not wait for a read that never comes)
  it("readuntil, readline, readuntil on bytes that all came in one write", function()
    local got = { withserver(function(s)
      local a, b, c = s:readuntil("?"), s:readline(), s:readuntil("?")
      local d, e = s:readline(nil), s:readuntil("?", nil)
      s:write(("[%s][%s][%s][%s][%s]!"):format(a, b, c, d, e))
      s:close()
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      s:write("a?b\nc?d\ne?")
      return s:readuntil("!")
    end) }
    assert.are.same({ "[a][b][c][d][e]" }, got)
  end)

  it("readexactly and readuntil across many small writes and one large one", function()
    local frames = { withserver(function(s)
      s:write("AB")
      s:write("CD--")
      s:write("EF-")
      s:write("-")
      s:write(string.rep("x", 100000) .. "--tail")
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local a = s:readexactly(3)
      local b = s:readuntil("--")
      local c = s:readuntil("--")
      local d = s:readexactly(100000)
      local e = s:readuntil("--")
      local f, why, partial = s:readexactly(10)
      return a, b, c, #d, e, f, why, partial
    end, { limit = 200000 }) }
    assert.are.same({ "ABC", "D", "EF", 100000, "", nil, "closed", "tail" }, { table.unpack(frames, 1, 8) })
  end)

  it("the peer's close: a partial last line, then nil, 'closed'", function()
    local got = { withserver(function(s) s:write("full\npart") end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local a = s:readline()
      local b = s:readline()
      local c, why = s:readline()
      return a, b, c, why
    end) }
    assert.are.same({ "full", "part", nil, "closed" }, { table.unpack(got, 1, 4) })
  end)

  it("read(n) gives what is there as soon as any is, up to n", function()
    local got = { withserver(function(s)
      s:write("hello")
      s:readline() -- wait until the client says
      s:write("world!")
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local a = s:read(3)
      local b = s:read(100)
      s:write("go\n")
      local c = s:readexactly(6)
      return a, b, c
    end) }
    assert.are.same({ "hel", "lo", "world!" }, got)
  end)

  it("connect looks a name up off the loop (localhost, from /etc/hosts)", function()
    local got = { withserver(echo_lines, function(port)
      local s, err = reactor.connect("localhost", port)
      if not s then return nil, err end
      s:write("by name\n")
      return s:readline(), s:getPeer().host
    end) }
    assert.are.same({ "by name", "127.0.0.1" }, got)
  end)

  it("connect to a name that does not resolve gives nil and the reason", function()
    local out
    reactor.callLater(0, reactor.spawn, function()
      out = { reactor.connect("no-such-host.invalid", 80, { timeout = 5 }) }
      reactor.stop()
    end)
    H.run_loop()
    assert.is_nil(out[1])
    assert.are.equal("ENOTFOUND: name not found (no-such-host.invalid)", out[2])
  end)

  it("connect to a port nobody listens on gives nil and the reason", function()
    local port = H.free_port()
    local ok, s, err = pcall(function()
      local out
      reactor.callLater(0, reactor.spawn, function()
        out = { reactor.connect("127.0.0.1", port) }
        reactor.stop()
      end)
      H.run_loop()
      return out[1], out[2]
    end)
    assert.is_true(ok, s)
    assert.is_nil(s)
    assert.matches("refused", err)
  end)

  it("an error in a handler ends only that connection, logged with the user's file:line", function()
    local line = debug.getinfo(1, "l").currentline + 3
    local got = { withserver(function(s)
      local first = s:readline()
      if first == "boom" then error("handler fails on " .. first) end
      s:write("served " .. first .. "\n")
    end, function(port)
      local bad = assert(reactor.connect("127.0.0.1", port))
      local good = assert(reactor.connect("127.0.0.1", port))
      bad:write("boom\n")
      local a, why = bad:readline()
      good:write("ok\n")
      return a, why, good:readline()
    end) }
    assert.are.same({ nil, "closed", "served ok" }, got)
    assert.are.equal(1, #logged)
    local at = ("%s:%d"):format(THIS, line)
    assert.matches("^error in the reactor.serve handler at " .. THIS:gsub("%p", "%%%0") .. ":%d+, peer 127%.0%.0%.1:%d+: "
      .. at:gsub("%p", "%%%0") .. ": handler fails on boom\nstack traceback:", logged[1])
  end)
end)

describe("a stream's waits", function()
  it("a close from another task wakes the waiting reader with nil, 'closed'", function()
    local got = { withserver(function(s) s:readline() end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local reader = reactor.spawn(function() return s:readline() end)
      s:close()
      assert.is_false(s:close()) -- twice: harmless
      return reader:join()
    end) }
    assert.are.same({ true, nil, "closed" }, { table.unpack(got, 1, 3) })
  end)

  it("cancelling the reading task runs its <close>, frees the reader's place and loses no byte", function()
    local closed = false
    local got = { withserver(function(s)
      s:readline()
      s:write("for the next reader\n")
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local reader = reactor.spawn(function()
        local _g <close> = setmetatable({}, { __close = function() closed = true end }) -- luacheck: ignore 211 (held for its __close)
        return s:readline()
      end)
      reader:cancel()
      local j = { reader:join() }
      s:write("go\n")
      return j[1], j[2], s:readline()
    end) }
    assert.is_true(closed)
    assert.are.same({ false, "cancelled", "for the next reader" }, got)
  end)

  it("a second reader gets nil, 'busy'; the first is served", function()
    local got = { withserver(function(s)
      s:readline()
      s:write("answer\n")
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local first = reactor.spawn(function() return s:readline() end)
      local a, b = s:readline()
      s:write("go\n")
      local _, line = first:join()
      return a, b, line
    end) }
    assert.are.same({ nil, "busy", "answer" }, got)
  end)

  it("a second reader gets nil, 'busy' even when bytes it could take are there", function()
    local got = { withserver(function(s)
      s:write("a line\n") -- 7 bytes: not the 100 the first reader waits for
      s:readline()
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      local first = reactor.spawn(function() return s:readexactly(100) end)
      for _ = 1, 100 do -- bounded: until the line has arrived
        if s.transport:_pending() >= 7 then break end
        reactor.sleep(0)
      end
      local a, b = s:readline()
      local c, d = s:read(3)
      s:close()
      local _, e, f, partial = first:join()
      return a, b, c, d, e, f, partial
    end) }
    assert.are.same({ nil, "busy", nil, "busy", nil, "closed" }, { table.unpack(got, 1, 6) })
  end)

  it("settimeout: nil, 'timeout', and the stream stays usable", function()
    local got = { withserver(function(s)
      s:readline()
      s:write("late\n")
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port))
      s:settimeout(0.01)
      local a, why = s:readline()
      s:settimeout(nil)
      s:write("now\n")
      return a, why, s:readline()
    end) }
    assert.are.same({ nil, "timeout", "late" }, got)
  end)

  it("a line longer than the limit gives nil, 'too long' and keeps the bytes", function()
    local got = { withserver(function(s) s:write(string.rep("y", 40) .. "\n") end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port, { limit = 16 }))
      local a, why = s:readline()
      local rest = s:readexactly(41)
      return a, why, rest
    end) }
    assert.are.same({ nil, "too long", string.rep("y", 40) .. "\n" }, got)
  end)

  it("writes above the high water mark wait for the peer, and every byte arrives in order", function()
    local total = 64 * 16384
    local got = { withserver(function(s)
      for i = 1, 64 do
        assert(s:write(string.rep(string.char(64 + i % 26), 16384)))
      end
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port, { limit = total }))
      local data = s:readexactly(total)
      local ok = true
      for i = 1, 64 do
        if data:sub((i - 1) * 16384 + 1, i * 16384) ~= string.rep(string.char(64 + i % 26), 16384) then ok = false end
      end
      return #data, ok
    end, { highWater = 4096, lowWater = 1024 }) }
    assert.are.same({ total, true }, got)
  end)

  it("a task that writes in a loop without waiting is paused at the high water mark, not aborted at the output cap", function()
    -- 96 writes of 64 KiB, none of which waits on its own accord: 6 MiB, above
    -- the 4 MiB cap on queued output that aborts a connection whose writer
    -- ignores the high water mark. The write that crosses the mark must wait.
    local piece, count = 65536, 96
    local ends = {}
    local got = { withserver(function(s)
      for i = 1, count do
        local ok, why = s:write(string.rep(string.char(65 + i % 26), piece))
        if not ok then
          ends[#ends + 1] = why
          return
        end
      end
      ends[#ends + 1] = "all written"
      s:close()
    end, function(port)
      local s = assert(reactor.connect("127.0.0.1", port, { limit = piece * count }))
      local data, why = s:readexactly(piece * count)
      if not data then return nil, why end
      for i = 1, count do
        if data:sub((i - 1) * piece + 1, i * piece) ~= string.rep(string.char(65 + i % 26), piece) then
          return #data, "piece " .. i .. " differs"
        end
      end
      return #data, "in order"
    end) }
    assert.are.same({ piece * count, "in order" }, got)
    assert.are.same({ "all written" }, ends)
    for _, msg in ipairs(logged) do assert.not_matches("aborted", msg) end
  end)
end)

describe("stream calls outside a task", function()
  it("raise an error that says so, at the caller's line", function()
    local line
    local got = { withserver(function(s)
      local ok, err
      reactor.callLater(0, function() -- a plain callback, not the task
        ok, err = pcall(function()
          line = debug.getinfo(1, "l").currentline + 1
          local v = s:readline() -- (not a tail call: that would take this line off the stack)
          return v
        end)
      end)
      for _ = 1, 100 do -- bounded: the callback runs at the loop's next turn
        if err then break end
        reactor.sleep(0)
      end
      s:write(tostring(ok) .. "|" .. tostring(err) .. "\n")
    end, function(port)
      local c = assert(reactor.connect("127.0.0.1", port))
      return c:readline()
    end) }
    assert.are.equal(("false|%s:%d: stream:readline() waits, so it must run in a task: call it inside " ..
      "reactor.spawn(fn) or a reactor.serve handler"):format(THIS, line), got[1])
  end)

  it("reactor.connect and reactor.serve check their arguments at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(reactor.serve, 8000, "not a function")
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'serve' %(expected a function%(stream%) to run for each connection", err)
    ok, err = pcall(function() reactor.serve(99999, function() end) end)
    assert.is_false(ok)
    assert.matches(("^%s:%d: bad argument #1 to 'serve'"):format(THIS:gsub("%p", "%%%0"), line + 3), err)
    local e2
    reactor.callLater(0, reactor.spawn, function()
      e2 = { pcall(reactor.connect, 1060, "127.0.0.1") }
      reactor.stop()
    end)
    H.run_loop()
    assert.is_false(e2[1])
    assert.matches("bad argument #1 to 'connect' %(host must be a string, got number 1060%)", e2[2])
  end)
end)

describe("a stream's reads, however the bytes arrive (reactor.testing)", function()
  local testing = require "reactor.testing"

  local INPUT = "ab\r\ncd--ef::gh\nxyz"
  local function reads(s, out)
    out[#out + 1] = s:readline()
    out[#out + 1] = s:readuntil("--")
    out[#out + 1] = s:readuntil("::")
    out[#out + 1] = s:readexactly(2)
    out[#out + 1] = s:readline()
    local rest = {} -- read(n) gives what is there: the rest may come in pieces
    for _ = 1, 20 do
      local piece = s:read(10)
      if not piece then break end
      rest[#rest + 1] = piece
    end
    out[#out + 1] = table.concat(rest)
  end

  for _, split in ipairs { "whole", "every", 2, 3, { random = 7 }, { random = 11 } } do
    it(("frame the same with the bytes fed %s"):format(type(split) == "table" and "at random"
      or split == "whole" and "in one read" or tostring(split)), function()
      local out = {}
      local _, tr = testing.connect(function(s) reads(s, out) end)
      tr:feed(INPUT, split ~= "whole" and split or nil)
      tr:eof()
      testing.run_until(function() return tr:closed() end)
      assert.are.same({ "ab", "cd", "ef", "gh", "", "xyz" }, out)
    end)
  end

  it("a line that comes a byte at a time past the limit is 'too long', and its bytes stay", function()
    local got
    local _, tr = testing.connect(require("reactor.stream").protocol(function(s)
      local a, why = s:readline()
      got = { a, why, s:readexactly(20) }
    end, 16)) -- a limit of 16 bytes (the default is 64 KiB)
    tr:feed(string.rep("z", 20), "every")
    testing.run_until(function() return got ~= nil end)
    assert.are.same({ nil, "too long", string.rep("z", 20) }, { got[1], got[2], got[3] })
  end)

  it("a stream nobody reads stops reading at its limit, and goes on when a task reads", function()
    local clock <close> = testing.clock()
    local total = 0
    local _, tr = testing.connect(require("reactor.stream").protocol(function(s)
      reactor.sleep(10) -- not reading yet
      while true do
        local piece = s:read(65536)
        if not piece then return end
        total = total + #piece
      end
    end, 1000))
    tr:feed(string.rep("w", 5000), 100)
    assert.are.same({ true, "reading" }, { tr:paused() }) -- bounded: it stopped at the limit
    clock:advance(10)
    testing.run_until(function() return total == 5000 end)
    assert.is_false((tr:paused()))
    tr:hangup()
    testing.run_until(function() return tr:closed() end)
  end)

  it("a writer waiting above the high water mark: a second gets nil, 'busy'; a close wakes it with nil, 'closed'", function()
    local first, second
    local writer
    local _, tr = testing.connect(function(s)
      s.transport:setWriteLimits { high = 1024, low = 256 }
      writer = reactor.spawn(function()
        for _ = 1, 1000 do -- the peer never reads: the socket buffer fills, then the high water mark
          local ok, why = s:write(("x"):rep(4096))
          if not ok then
            first = why
            return
          end
          reactor.sleep(0) -- (the queue is flushed, and measured, when a callback returns)
        end
      end)
      for _ = 1, 10000 do -- bounded: until the kernel's buffer is full and the queue grows
        reactor.sleep(0)
        if s.transport:bufferSize() > 1024 then break end -- flushed, and still above the high mark
      end
      reactor.sleep(0) -- the writer's next write waits
      reactor.sleep(0)
      second = { s:write("y") }
      s:close()
    end)
    testing.run_until(function() return writer and writer:done() end)
    assert.are.same({ nil, "busy" }, second)
    assert.are.equal("closed", first)
    tr:hangup()
    testing.run_until(function() return tr:closed() end)
  end)
end)

-- A reader whose readuntil/readline finds nothing waits in C (lstream.c,
-- cwait) and is resumed from the read that brings its frame; every other
-- waker (close, cancel, a timeout) must reach it through the same one
-- resume. waits_in_c: the task's coroutine stopped in the stream's C method
-- itself (level 1 is the user's function), not in stream.lua's Lua wait.
describe("a reader waiting in C", function()
  local testing = require "reactor.testing"
  local SPEC = debug.getinfo(1, "S").short_src

  local CO = require("reactor.task").CO -- a task's coroutine

  local function waits_in_c(t)
    local info = debug.getinfo(t[CO], 1, "S")
    return coroutine.status(t[CO]) == "suspended" and info ~= nil and info.short_src == SPEC
  end

  it("is woken once with nil, 'closed' by a close from another task, and not again", function()
    local got, reader = {}, nil
    local proto, tr = testing.connect(function(s)
      reader = require("reactor.task").current() -- the handler reads
      for _ = 1, 10 do -- bounded: it stops at the first failure
        local line, why = s:readline()
        got[#got + 1] = line or why
        if not line then return end
      end
    end)
    tr:feed("first\n")
    testing.run_until(function() return #got == 1 end)
    assert.is_true(waits_in_c(reader))
    local closer = reactor.spawn(function() proto:close() end)
    assert.is_true(closer:done())
    tr:feed("late\n") -- a read after the close wakes nobody
    testing.run_until(function() return tr:closed() end)
    assert.are.same({ "first", "closed" }, got)
    assert.is_true(reader:done())
  end)

  it("cancelled, runs its <close>, and the next reader gets the next line", function()
    local closed, reader, first, joined, second = 0, nil, nil, nil, nil
    local _, tr = testing.connect(function(s) -- the handler owns the stream: it outlives the reader
      reader = reactor.spawn(function()
        local _g <close> = setmetatable({}, { __close = function() closed = closed + 1 end }) -- luacheck: ignore 211 (held for its __close)
        first = s:readuntil(";")
        return s:readuntil(";") -- the separator checked before: this wait is in C
      end)
      joined = { reader:join() }
      second = { s:readuntil(";") }
    end)
    tr:feed("a;")
    testing.run_until(function() return first ~= nil end)
    assert.is_true(waits_in_c(reader))
    reader:cancel()
    assert.are.same({ false, "cancelled" }, joined)
    assert.are.equal(1, closed)
    tr:feed("kept;")
    testing.run_until(function() return second ~= nil end)
    assert.are.same({ "kept" }, second)
    assert.are.equal(1, closed)
    tr:hangup()
    testing.run_until(function() return tr:closed() end)
  end)

  it("woken in C and cancelled once it waits on something else, leaves the next reader's wait alone", function()
    local clock <close> = testing.clock()
    local WAIT = require("reactor.task").WAIT
    local s, parked, got, nextline = nil, nil, {}, nil
    local _, tr = testing.connect(function(stream)
      s = stream
      parked = reactor.spawn(function()
        got[#got + 1] = s:readuntil(";")
        got[#got + 1] = s:readuntil(";") -- the separator checked before: waits in C, woken in C
        coroutine.yield(WAIT) -- parks on nothing, as reactor.http's idle request tasks do
      end)
      reactor.sleep(60) -- holds the stream open
    end)
    tr:feed("a;")
    testing.run_until(function() return #got == 1 end)
    assert.is_true(waits_in_c(parked))
    tr:feed("b;")
    testing.run_until(function() return #got == 2 end)
    local nextreader = reactor.spawn(function() nextline = s:readuntil(";") end)
    assert.is_true(waits_in_c(nextreader))
    parked:cancel() -- its last read's cleanup is not the next reader's to undo
    tr:feed("c;")
    testing.run_until(function() return nextline ~= nil end)
    assert.are.same({ "a", "b" }, got)
    assert.are.equal("c", nextline)
    clock:advance(60)
    testing.run_until(function() return tr:closed() end)
  end)

  it("goes on waiting when a timeout is set meanwhile; the next wait times out, and the stream stays usable", function()
    local clock <close> = testing.clock()
    local got, reader, s = {}, nil, nil
    local _, tr = testing.connect(function(stream)
      s, reader = stream, require("reactor.task").current()
      for _ = 1, 3 do
        local line, why = s:readline()
        got[#got + 1] = line or why
      end
    end)
    assert.is_true(waits_in_c(reader))
    s:settimeout(5)
    clock:advance(10) -- the wait that began before settimeout has no deadline
    assert.are.same({}, got)
    tr:feed("one\n")
    testing.run_until(function() return #got == 1 end)
    assert.is_false(waits_in_c(reader)) -- with a timeout, it waits in Lua
    clock:advance(5)
    testing.run_until(function() return #got == 2 end)
    tr:feed("two\n")
    testing.run_until(function() return #got == 3 end)
    assert.are.same({ "one", "timeout", "two" }, got)
    tr:hangup()
    testing.run_until(function() return tr:closed() end)
  end)
end)
