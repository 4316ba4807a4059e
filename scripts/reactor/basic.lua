-- reactor.basic: Twisted's LineReceiver. The framing itself is done in C:
-- any protocol whose `delimiter` is a string receives lineReceived(line),
-- one call per line, without the delimiter; the partial line is kept by the
-- transport. These methods are the Lua side of that contract.
local Protocol = require("reactor.protocol").Protocol

local LineReceiver = Protocol:extend {
  delimiter = "\r\n",
  MAX_LENGTH = 16384, -- longest line (and longest unfinished line) accepted
}

function LineReceiver:lineReceived(line) end -- luacheck: ignore

--- Write line followed by the delimiter (one segment with the rest of the callback's writes).
function LineReceiver:sendLine(line)
  self.transport:write(line)
  self.transport:write(self.delimiter or LineReceiver.delimiter)
end

--- A line longer than MAX_LENGTH arrived, or MAX_LENGTH bytes came without a delimiter.
function LineReceiver:lineLengthExceeded(line) -- luacheck: ignore
  self.transport:loseConnection()
end

--- Deliver what follows to rawDataReceived(data) instead of lines, from
--- the byte after the current line.
function LineReceiver:setRawMode()
  self.transport:setRawMode(true)
end

--- Back to lines (after setRawMode), from the next read.
function LineReceiver:setLineMode()
  self.transport:setRawMode(false)
end

function LineReceiver:dataReceived(data) -- raw mode lands here
  self:rawDataReceived(data)
end

function LineReceiver:rawDataReceived(data) end -- luacheck: ignore

return { LineReceiver = LineReceiver }
