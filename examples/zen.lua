-- zen.lua: the seed's aphorism server (zen_utils.py), as a reactord protocol.
--
--   reactord examples/zen.lua          serves it on 127.0.0.1:1060
--   lua5.4 examples/zen_client.lua 127.0.0.1
--
-- A question ends at "?"; the answer carries no newline, exactly as the
-- seed's, so its Python client works unchanged. A connection asks as many
-- questions as it likes; a question may arrive in pieces, or several in one
-- packet, and each is answered once, in order.

local aphorisms = {
  ["Beautiful is better than?"] = "Ugly.",
  ["Explicit is better than?"] = "Implicit.",
  ["Simple is better than?"] = "Complex.",
}
local UNKNOWN = "Error: unknown zphorism"
local MAX_QUESTION = 4096 -- a client that never says "?" cannot grow us without bound

local Zen = {}

function Zen:connectionMade()
  self.pending = "" -- the start of a question not yet finished
end

function Zen:dataReceived(data)
  local buf = self.pending .. data
  local start = 1
  while true do
    local q = buf:find("?", start, true)
    if not q then break end
    self.transport:write(aphorisms[buf:sub(start, q)] or UNKNOWN)
    start = q + 1
  end
  self.pending = start > #buf and "" or buf:sub(start)
  if #self.pending > MAX_QUESTION then
    self.transport:write("Error: question too long")
    self.transport:loseConnection()
  end
end

return { port = 1060, protocol = Zen }
