-- reactor.basic: Twisted's receivers. The framing itself is done in C, by
-- core's framers: a protocol whose `delimiter` is a string receives
-- lineReceived(line), one call per line, without the delimiter; one whose
-- `delimiter` is one of reactor.core.framing (a length prefix, a netstring)
-- receives stringReceived(s). The unfinished frame is kept by the transport,
-- so it survives a reload byte for byte. These methods are the Lua side of
-- that contract.
local core = require "reactor.core"
local log = require "reactor.log"
local Protocol = require("reactor.protocol").Protocol

local M = {}

--{=====================================================================
-- LineReceiver
--======================================================================

local LineReceiver = Protocol:extend {
  delimiter = "\r\n",
  MAX_LENGTH = 16384, -- longest line (and longest unfinished line) accepted
}
M.LineReceiver = LineReceiver

function LineReceiver:lineReceived(line) end -- luacheck: ignore

--- Write line followed by the delimiter (one segment with the rest of the callback's writes).
function LineReceiver:sendLine(line)
  self.transport:write(line)
  self.transport:write(self.delimiter or LineReceiver.delimiter)
end

--- A line longer than MAX_LENGTH arrived, or MAX_LENGTH bytes came without a
--- delimiter. `data` is that line and everything buffered after it.
function LineReceiver:lineLengthExceeded(data) -- luacheck: ignore
  self.transport:loseConnection()
end

--- Deliver what follows to rawDataReceived(data) instead of lines, from
--- the byte after the current line.
function LineReceiver:setRawMode()
  self.transport:setRawMode(true)
end

--- Back to lines (after setRawMode). `extra`, bytes read past the raw part,
--- is framed as lines first (from the next batch of reads).
function LineReceiver:setLineMode(extra)
  self.transport:setRawMode(false, extra)
end

--- Forget the bytes buffered for lines (an unfinished line, and the rest of
--- the read being delivered) and return them.
function LineReceiver:clearLineBuffer()
  return self.transport:clearBuffer()
end

function LineReceiver:dataReceived(data) -- raw mode lands here
  self:rawDataReceived(data)
end

function LineReceiver:rawDataReceived(data) end -- luacheck: ignore

--{=====================================================================
-- Int8/16/32StringReceiver, NetstringReceiver
--======================================================================

-- A string receiver: stringReceived(s) for each frame, sendString(s) to send
-- one. A declared length past MAX_LENGTH calls lengthLimitExceeded(length)
-- before any of it is buffered (the default logs and closes).
local function receiver(framing, name, send, broadcast)
  local R = Protocol:extend {
    delimiter = framing, -- the framer, in C
    MAX_LENGTH = 99999, -- Twisted's
  }
  function R:stringReceived(s) end -- luacheck: ignore
  R.sendString = send
  R.broadcastString = broadcast -- broadcastString(list, s [, except]): framed once, to each
  function R:lengthLimitExceeded(length)
    local peer = self.transport:getPeer()
    log.log(("%s: %s: a string of %d bytes, past MAX_LENGTH (%d); closing the connection")
      :format(peer.host and (peer.host .. ":" .. peer.port) or peer.type, name, length, self.MAX_LENGTH))
    self.transport:loseConnection()
  end
  return R
end

-- sendString is C's (bindings/ltransport.c): the prefix goes straight into
-- the connection's buffer, beside the string
local function prefixed(bytes, name)
  return receiver(core.framing["u" .. 8 * bytes], name, core._sendstring(bytes, name))
end

M.Int8StringReceiver = prefixed(1, "Int8StringReceiver")
M.Int16StringReceiver = prefixed(2, "Int16StringReceiver")
M.Int32StringReceiver = prefixed(4, "Int32StringReceiver")

M.NetstringReceiver = receiver(core.framing.netstring, "NetstringReceiver", core._sendstring(0, "NetstringReceiver"))

return M
