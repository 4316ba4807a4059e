-- Issue 9: lineLengthExceeded received only the long line, and the bytes
-- after it stayed buffered, so an override that keeps the connection open
-- then got them as lines. Twisted's LineReceiver passes the long line, its
-- delimiter and everything buffered after it, and clears the buffer.
local reactor = require "reactor"
local H = require "spec.helpers"

describe("issue 9: lineLengthExceeded and the buffered rest", function()
  after_each(H.assert_clean)

  it("gets the long line and all buffered after it; a later read is parsed from a clean buffer", function()
    local lines, exceeded = {}, {}
    local S = reactor.LineReceiver:extend { MAX_LENGTH = 8 }
    function S:lineReceived(line)
      lines[#lines + 1] = line
      if line == "next" then self.transport:loseConnection() end
    end
    function S:lineLengthExceeded(data) -- keeps the connection
      exceeded[#exceeded + 1] = data
      self.transport:write("exceeded\n")
    end
    local l = assert(reactor.listenTCP(0, { protocol = S }))
    local C = {}
    -- one write (one read on loopback), then the next line only once the
    -- server has dealt with the long one: a later read
    function C:connectionMade() self.transport:write("ok\r\nthis is too long\r\njunk\r\n") end
    function C:dataReceived()
      if not self.sent then self.transport:write("next\r\n") end
      self.sent = true
    end
    function C:connectionLost() reactor.stop() end
    reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C })
    H.run_loop()
    l:stopListening()
    assert.are.same({ "ok", "next" }, lines)
    assert.are.same({ "this is too long\r\njunk\r\n" }, exceeded)
  end)
end)
