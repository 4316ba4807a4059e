-- issue 9: the reload log's "N live connections move to it" counted every
-- transport in the state: outgoing connections and other listeners' too.
-- Only the service's own connections count.
local H = require "spec.helpers"

describe("issue 9: the reload log counts the service's own connections", function()
  it("not the client ends in the same process, nor another listener's", function()
    local dir = H.tmpdir()
    local script = dir .. "/served.lua"
    H.write_file(script, [[
local P = {}
function P:dataReceived(d) self.transport:write(d) end
return { protocol = P }
]])
    -- one served connection (two ends in this process) and two connections
    -- of an unrelated listener (four ends): 1 is the service's
    local out = H.run_lua(([[
local reactor = require "reactor"
local s = assert(reactor.serve(%q, { port = 0 }))
local port
for _, l in pairs(s.listeners) do port = l:getHost().port end
local other = assert(reactor.listenTCP(0, { dataReceived = function() end }))
local made = 0
local C = {}
function C:connectionMade()
  made = made + 1
  if made == 3 then
    reactor.callLater(0.05, function() -- the servers' ends are made too
      assert(s:reload())
      reactor.stop()
    end)
  end
end
reactor.connectTCP("127.0.0.1", port, reactor.ClientFactory { protocol = C })
reactor.connectTCP("127.0.0.1", other:getHost().port, reactor.ClientFactory { protocol = C })
reactor.connectTCP("127.0.0.1", other:getHost().port, reactor.ClientFactory { protocol = C })
reactor.callLater(10, reactor.stop)
reactor.run()
s:close()
]]):format(script), { stderr = true })
    H.remove_tmpdirs()
    assert.matches("reloaded .* %(generation 2%): 1 live connection moves to it", out)
  end)
end)
