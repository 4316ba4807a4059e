-- reactor.basic's string receivers (Int8/16/32StringReceiver,
-- NetstringReceiver) and the rest of LineReceiver's surface (issue 10, part
-- 1): framing in C through core's framers. A server and a client in one
-- loop; the client writes the pieces given, one per loop turn, and the
-- server records what its callbacks saw.
local reactor = require "reactor"
local H = require "spec.helpers"

-- serve `class` (extended with recorders), send `pieces`, then close
local function exchange(class, pieces, opts)
  opts = opts or {}
  local rec = { strings = {}, lines = {}, raw = {}, limits = {}, lost = {} }
  local server = class:extend(opts.fields or {})
  function server:stringReceived(s)
    rec.strings[#rec.strings + 1] = s
    if opts.onString then opts.onString(self, s) end
  end
  function server:lineReceived(line)
    rec.lines[#rec.lines + 1] = line
    if opts.onLine then opts.onLine(self, line) end
  end
  function server:rawDataReceived(data)
    rec.raw[#rec.raw + 1] = data
    if opts.onRaw then opts.onRaw(self, data) end
  end
  if not opts.defaultLimit then
    function server:lengthLimitExceeded(length)
      rec.limits[#rec.limits + 1] = length
      self.transport:loseConnection()
    end
  end
  function server:connectionLost(reason) rec.lost[#rec.lost + 1] = reason.type end
  local l = assert(reactor.listenTCP(0, { protocol = server }))
  local client = {}
  function client:connectionMade()
    local i = 0
    local function step()
      i = i + 1
      if pieces[i] then
        self.transport:write(pieces[i])
        reactor.callLater(0, step)
      elseif not opts.keepOpen then
        self.transport:loseConnection()
      end
    end
    step()
  end
  function client:dataReceived(d) rec.echo = (rec.echo or "") .. d end
  function client:connectionLost() reactor.callLater(0, reactor.stop) end
  reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = client })
  H.run_loop(10)
  H.assert_clean()
  return rec
end

local function bytes(s)
  local t = {}
  for i = 1, #s do t[i] = s:sub(i, i) end
  return t
end

local function u32(s) return (">s4"):pack(s) end

describe("Int32StringReceiver", function()
  local R = reactor.Int32StringReceiver

  it("delivers every string once, in order, however the bytes arrive", function()
    local stream = u32("one") .. u32("") .. u32(("x"):rep(300)) .. u32("four")
    local want = { "one", "", ("x"):rep(300), "four" }
    assert.are.same(want, exchange(R, { stream }).strings)
    assert.are.same(want, exchange(R, bytes(stream)).strings)
    assert.are.same(want, exchange(R, { stream:sub(1, 2), stream:sub(3, 9), stream:sub(10) }).strings)
  end)

  it("a 4 GiB length calls lengthLimitExceeded with it and nothing else arrives", function()
    local rec = exchange(R, { u32("ok") .. "\xff\xff\xff\xff" .. "junk" })
    assert.are.same({ "ok" }, rec.strings)
    assert.are.same({ 4294967295 }, rec.limits)
    assert.are.same({ "done" }, rec.lost)
  end)

  it("by default a length past MAX_LENGTH is logged and closes the connection", function()
    local logged = {}
    local real = reactor.core.log
    reactor.core.log = function(msg) logged[#logged + 1] = msg end
    local ok, rec = pcall(exchange, R, { "\0\0\1\0" .. "x" }, { defaultLimit = true, fields = { MAX_LENGTH = 10 } })
    reactor.core.log = real
    assert(ok, rec)
    assert.are.same({}, rec.strings)
    assert.are.same({ "done" }, rec.lost)
    assert.are.equal(1, #logged)
    assert.matches("Int32StringReceiver: a string of 256 bytes, past MAX_LENGTH %(10%); closing", logged[1])
  end)

  it("sendString frames what it sends", function()
    local Echo = R:extend {}
    function Echo:stringReceived(s) self:sendString(s:upper()) end
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local got = {}
    local C = R:extend {}
    function C:connectionMade() self:sendString("hello") self:sendString("") self:sendString("world") end
    function C:stringReceived(s)
      got[#got + 1] = s
      if #got == 3 then self.transport:loseConnection() end
    end
    function C:connectionLost() reactor.callLater(0, reactor.stop) end
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    assert.are.same({ "HELLO", "", "WORLD" }, got)
    H.assert_clean()
  end)

  it("pauseReading in stringReceived holds the rest until resumeReading", function()
    local stream = u32("a") .. u32("b") .. u32("c")
    local order = {}
    local rec = exchange(R, { stream }, {
      onString = function(self, s)
        order[#order + 1] = s
        if s == "a" then
          self.transport:pauseReading()
          reactor.callLater(0, function()
            order[#order + 1] = "resume"
            self.transport:resumeReading()
          end)
        end
      end,
    })
    assert.are.same({ "a", "b", "c" }, rec.strings)
    assert.are.same({ "a", "resume", "b", "c" }, order)
  end)
end)

describe("Int8StringReceiver and Int16StringReceiver", function()
  it("frame with a 1- and a 2-byte prefix", function()
    assert.are.same({ "hi", "there" },
      exchange(reactor.Int8StringReceiver, bytes(("s1s1"):pack("hi", "there"))).strings)
    assert.are.same({ ("y"):rep(1000) },
      exchange(reactor.Int16StringReceiver, { (">s2"):pack(("y"):rep(1000)) }).strings)
  end)

  it("sendString refuses what its prefix cannot say, at the caller's line", function()
    local t = { transport = { write = function() end } }
    local ok, err = pcall(reactor.Int8StringReceiver.sendString, t, ("z"):rep(256))
    assert.is_false(ok)
    assert.matches("256 bytes do not fit Int8StringReceiver's 1%-byte length prefix", err)
  end)
end)

describe("NetstringReceiver", function()
  local R = reactor.NetstringReceiver

  it("delivers netstrings however they arrive", function()
    local stream = "5:hello,0:,3:abc,"
    assert.are.same({ "hello", "", "abc" }, exchange(R, { stream }).strings)
    assert.are.same({ "hello", "", "abc" }, exchange(R, bytes(stream)).strings)
  end)

  it("a 30-digit length is lengthLimitExceeded and costs no allocation of that size", function()
    local rec = exchange(R, { "2:ok," .. ("9"):rep(30) .. ":x," })
    assert.are.same({ "ok" }, rec.strings)
    assert.are.equal(1, #rec.limits)
    assert.is_true(rec.limits[1] > 99999)
  end)

  it("a malformed netstring closes the connection", function()
    local rec = exchange(R, { "2:ok,", "3:abcd," }, { keepOpen = true })
    assert.are.same({ "ok" }, rec.strings)
    assert.are.same({ "done" }, rec.lost)
  end)

  it("sendString's errors are the caller's, at its line, in the public names", function()
    local THIS = "spec/unit/receivers_spec.lua"
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() reactor.Int8StringReceiver.sendString({}, ("x"):rep(256)) end)
    assert.is_false(ok)
    assert.are.equal(("%s:%d: sendString: 256 bytes do not fit Int8StringReceiver's 1-byte length prefix "
      .. "(at most 255)"):format(THIS, line), err)
    ok, err = pcall(function() R.sendString({}, 42) end)
    assert.is_false(ok)
    assert.are.equal(("%s:%d: bad argument #1 to 'sendString' (string expected, got number)"):format(THIS, line + 4), err)
  end)

  it("sendString writes a netstring", function()
    local out = {}
    local t = { transport = { write = function(_, s) out[#out + 1] = s end } }
    R.sendString(t, "hello")
    assert.are.equal("5:hello,", table.concat(out))
  end)
end)

describe("LineReceiver, the rest of Twisted's surface", function()
  local LR = reactor.LineReceiver

  it("pauseReading in lineReceived stops the lines of the same read; resumeReading delivers them", function()
    local order = {}
    local rec = exchange(LR, { "a\r\nb\r\nc\r\n" }, {
      onLine = function(self, line)
        order[#order + 1] = line
        if line == "a" then
          self.transport:pauseReading()
          reactor.callLater(0, function()
            order[#order + 1] = "resume"
            self.transport:resumeReading()
          end)
        end
      end,
    })
    assert.are.same({ "a", "b", "c" }, rec.lines)
    assert.are.same({ "a", "resume", "b", "c" }, order)
  end)

  it("setLineMode(extra) hands bytes back to line framing", function()
    local rec = exchange(LR, { "HEAD\r\n12345more\r\nlast\r\n" }, {
      onLine = function(self, line) if line == "HEAD" then self:setRawMode() end end,
      onRaw = function(self, data)
        -- a body of 5 bytes, then lines again
        self:setLineMode(data:sub(6))
      end,
    })
    assert.are.same({ "HEAD", "more", "last" }, rec.lines)
    assert.are.same({ "12345more\r\nlast\r\n" }, rec.raw)
  end)

  it("clearLineBuffer returns the buffered bytes and forgets them", function()
    -- what was buffered when "one" arrived is cleared, what came later is
    -- lines: together they are the stream, wherever TCP split it
    local cleared
    local rec = exchange(LR, { "one\r\ntwo\r\nthree\r\n" }, {
      onLine = function(self, line) if line == "one" then cleared = self:clearLineBuffer() end end,
    })
    assert.are.equal("one", rec.lines[1])
    local later = {}
    for i = 2, #rec.lines do later[#later + 1] = rec.lines[i] .. "\r\n" end
    assert.are.equal("two\r\nthree\r\n", cleared .. table.concat(later))
    assert.is_true(#cleared > 0 or #later > 0)
  end)
end)

describe("fan-out: broadcastString and reactor.broadcast", function()
  local testing = require "reactor.testing"
  after_each(function() H.assert_clean() end)

  it("frames once and writes to every member but the one excepted; a closed one is skipped", function()
    local R = reactor.Int16StringReceiver:extend()
    local room, trs = {}, {}
    for i = 1, 4 do room[i], trs[i] = testing.connect(R) end
    trs[4].transport:loseConnection()
    testing.run_until(function() return trs[4]:closed() end)
    assert.are.equal(2, R.broadcastString(room, "hi", room[2]))
    assert.are.equal("\0\2hi", trs[1]:value())
    assert.are.equal("", trs[2]:value())
    assert.are.equal("\0\2hi", trs[3]:value())
    assert.are.equal(3, reactor.NetstringReceiver.broadcastString(room, "ab"))
    assert.are.equal("\0\2hi2:ab,", trs[1]:value())
    -- transports too, and raw bytes
    assert.are.equal(2, reactor.broadcast({ room[1].transport, room[3].transport }, "raw"))
    assert.are.equal("\0\2hi2:ab,raw", trs[1]:value())
    for i = 1, 3 do trs[i]:hangup() end
    testing.run_until(function() return trs[1]:closed() and trs[2]:closed() and trs[3]:closed() end)
  end)

  it("says which entry is not a connection, and what does not fit", function()
    local ok, err = pcall(reactor.broadcast, { {} }, "x")
    assert.is_false(ok)
    assert.matches("broadcast: entry 1 of the list is neither a connected protocol nor a transport", err)
    ok, err = pcall(reactor.Int8StringReceiver.broadcastString, {}, ("x"):rep(300))
    assert.is_false(ok)
    assert.matches("broadcastString: 300 bytes do not fit Int8StringReceiver's 1%-byte length prefix", err)
  end)
end)
