-- zen.lua: the seed's aphorism server (zen_utils.py), as a reactord protocol.
--
--   reactord examples/zen.lua          serves it on 127.0.0.1:1060
--   lua5.4 examples/zen_client.lua 127.0.0.1
--
-- A question ends at "?"; the answer carries no newline, exactly as the
-- seed's, so its Python client works unchanged. A connection asks as many
-- questions as it likes; a question may arrive in pieces, or several in one
-- packet, and each is answered once, in order. Splitting at "?" is
-- LineReceiver's job (done in C); a client that never sends "?" is cut off
-- at MAX_LENGTH bytes instead of growing the server's memory.
local reactor = require "reactor"

local aphorisms = { -- keyed by the question without its "?"
  ["Beautiful is better than"] = "Ugly.",
  ["Explicit is better than"] = "Implicit.",
  ["Simple is better than"] = "Complex.",
}

local Zen = reactor.LineReceiver:extend { delimiter = "?", MAX_LENGTH = 4096 }

function Zen:lineReceived(question)
  self.transport:write(aphorisms[question] or "Error: unknown zphorism")
end

-- On SIGTERM: answer what was asked, then close (loseConnection flushes).
function Zen:shutdownRequested(deadline) -- luacheck: ignore deadline
  self.transport:loseConnection()
end

function Zen:lineLengthExceeded()
  self.transport:write("Error: question too long")
  self.transport:loseConnection()
end

return { port = 1060, protocol = Zen }
