-- reactor.LineReceiver: framing done in C, Twisted's names.
-- Each test runs a server and a client in one loop; the client feeds bytes
-- in the pieces given, one piece per loop turn, and the server records
-- what its callbacks saw. The result must not depend on how TCP groups the
-- bytes, so the assertions hold however the pieces arrive.
local reactor = require "reactor"
local H = require "spec.helpers"


-- serve `class`, send `pieces`, then close; returns the server's record
local function exchange(class, pieces, opts)
  opts = opts or {}
  local rec = { lines = {}, raw = {}, exceeded = {}, lost = 0 }
  local server = class:extend {}
  function server:lineReceived(line)
    rec.lines[#rec.lines + 1] = line
    if opts.onLine then opts.onLine(self, line) end
  end
  function server:lineLengthExceeded(line)
    rec.exceeded[#rec.exceeded + 1] = #line
    self.transport:loseConnection()
  end
  function server:rawDataReceived(data) rec.raw[#rec.raw + 1] = data end
  function server:connectionLost() rec.lost = rec.lost + 1 end
  local l = assert(reactor.listenTCP(0, { protocol = server }))
  local client = {}
  function client:connectionMade()
    local i = 0
    local function step()
      i = i + 1
      if pieces[i] then
        self.transport:write(pieces[i])
        reactor.callLater(0, step)
      else
        self.transport:loseConnection()
      end
    end
    step()
  end
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

describe("LineReceiver", function()
  local LR = reactor.LineReceiver

  it("frames with a delimiter too long to copy, split anywhere", function()
    -- a delimiter over five bytes is the string's own bytes, which the
    -- framer points into (kept alive for it), not a copy of them
    local long = table.concat { "<", "<end", ">>" } -- made at run time, not a constant
    local rec = exchange(LR:extend { delimiter = long }, { "a<<end>>b<<e", "nd>>c<<", "end>>", "d<" }, {
      onLine = function() collectgarbage() end,
    })
    assert.are.same({ "a", "b", "c" }, rec.lines)
  end)

  it("delivers each line once, in order, without the delimiter", function()
    local rec = exchange(LR, { "one\r\ntwo\r\n", "thr", "ee\r", "\nfour\r\n" })
    assert.are.same({ "one", "two", "three", "four" }, rec.lines)
    assert.are.equal(1, rec.lost)
  end)

  -- Short lines go through a cache of recent strings (bindings/lstrcache.c):
  -- repeats, lines that share a slot, and every length around Lua's
  -- short-string limit (40) must all arrive exactly as sent.
  it("delivers repeated, colliding and near-40-byte lines exactly", function()
    local sent, pieces = {}, {}
    for round = 1, 3 do
      for len = 1, 45 do
        local line = ("%d:"):format(len):rep(len):sub(1, len)
        if round == 2 then line = line:upper():reverse() end
        sent[#sent + 1] = line
      end
      for i = 1, 150 do -- more distinct lines than slots, each seen twice
        local line = ("q%03d-%d"):format(i, round % 2)
        sent[#sent + 1] = line
        sent[#sent + 1] = line
      end
    end
    for i = 1, #sent, 25 do pieces[#pieces + 1] = table.concat(sent, "\r\n", i, math.min(i + 24, #sent)) .. "\r\n" end
    local rec = exchange(LR, pieces)
    assert.are.same(sent, rec.lines)
  end)

  it("handles a delimiter split across reads, byte by byte", function()
    local rec = exchange(LR, bytes("ab\r\n\r\ncd\r\n"))
    assert.are.same({ "ab", "", "cd" }, rec.lines)
  end)

  it("keeps the partial line when each read ends one line and starts the next", function()
    -- the client sends the next piece only after the previous line's echo,
    -- so the server sees every piece in a read of its own
    local pieces = { "one\ntw", "o\nthr", "ee\n" }
    local got = {}
    local Echo = LR:extend { delimiter = "\n" }
    function Echo:lineReceived(line) self:sendLine(line) end
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local C = LR:extend { delimiter = "\n" }
    function C:connectionMade()
      self.i = 1
      self.transport:write(pieces[1])
    end
    function C:lineReceived(line)
      got[#got + 1] = line
      self.i = self.i + 1
      if pieces[self.i] then self.transport:write(pieces[self.i]) else self.transport:loseConnection() end
    end
    function C:connectionLost() reactor.stop() end
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    assert.are.same({ "one", "two", "three" }, got)
    H.assert_clean()
  end)

  it("uses the class's own delimiter", function()
    local Q = LR:extend { delimiter = "?" }
    local rec = exchange(Q, { "Beautiful is better than?Simple is", " better than?" })
    assert.are.same({ "Beautiful is better than", "Simple is better than" }, rec.lines)
  end)

  it("calls lineLengthExceeded for a line that never ends", function()
    local Q = LR:extend { MAX_LENGTH = 10 }
    local rec = exchange(Q, { "0123456789", "abcdef" })
    assert.are.same({}, rec.lines)
    assert.are.equal(1, #rec.exceeded)
    assert.is_true(rec.exceeded[1] > 10)
  end)

  it("calls lineLengthExceeded for a complete line that is too long", function()
    local Q = LR:extend { MAX_LENGTH = 4 }
    local rec = exchange(Q, { "ok\r\ntoo long\r\nnever\r\n" })
    assert.are.same({ "ok" }, rec.lines)
    -- the long line, its delimiter and everything buffered after it (Twisted's
    -- lineLengthExceeded; issue 9 fixed passing the line alone)
    assert.are.same({ #"too long\r\nnever\r\n" }, rec.exceeded)
  end)

  it("stops delivering lines once the protocol closes the connection", function()
    local rec = exchange(LR, { "a\r\nb\r\nc\r\n" }, {
      onLine = function(self, line) if line == "a" then self.transport:loseConnection() end end,
    })
    assert.are.same({ "a" }, rec.lines)
  end)

  it("switches to raw data and back, keeping the bytes after the switch", function()
    local rec = exchange(LR, { "head\r\nrest of it" }, {
      onLine = function(self, line) if line == "head" then self:setRawMode() end end,
    })
    assert.are.same({ "head" }, rec.lines)
    assert.are.equal("rest of it", table.concat(rec.raw))
  end)

  it("sendLine appends the delimiter", function()
    local got = {}
    local Echo = LR:extend {}
    function Echo:lineReceived(line) self:sendLine(line:upper()) end
    local l = assert(reactor.listenTCP(0, { protocol = Echo }))
    local C = LR:extend {}
    function C:connectionMade() self:sendLine("hello") self:sendLine("world") end
    function C:lineReceived(line)
      got[#got + 1] = line
      if #got == 2 then self.transport:loseConnection() end
    end
    function C:connectionLost() reactor.stop() end
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C })
    H.run_loop(10)
    assert.are.same({ "HELLO", "WORLD" }, got)
    H.assert_clean()
  end)
end)
