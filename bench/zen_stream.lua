-- zen_stream.lua: examples/zen.lua's protocol written with coroutine streams,
-- for bench/batteries.sh's streams-against-callbacks row.
--
--   reactord bench/zen_stream.lua -p 0
--
-- The same answers as examples/zen.lua: a question ends at "?", the answer
-- carries no newline, an unknown question gets "Error: unknown zphorism", and
-- one longer than 4096 bytes without a "?" gets "Error: question too long" and
-- the connection is closed.
local reactor = require "reactor"

local aphorisms = { -- keyed by the question without its "?"
  ["Beautiful is better than"] = "Ugly.",
  ["Explicit is better than"] = "Implicit.",
  ["Simple is better than"] = "Complex.",
}

local MAX_LENGTH = 4096

-- limit: readuntil gives nil, "too long" once MAX_LENGTH bytes came without a "?"
return reactor.serve({ port = 1060, limit = MAX_LENGTH }, function(s)
  while true do
    local q, err = s:readuntil("?")
    if not q then
      if err == "too long" then s:write("Error: question too long") end
      break
    end
    s:write(aphorisms[q] or "Error: unknown zphorism")
  end
  s:close()
end)
