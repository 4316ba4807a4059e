-- transport.disconnecting (Twisted's attribute, issue 10 part 1): false
-- while the connection is open, true from loseConnection / abortConnection
-- on and in connectionLost, whoever closed; the transport's methods stay
-- harmless after the close.
local reactor = require "reactor"
local H = require "spec.helpers"

after_each(function() H.assert_clean() end)

-- a server running `server` callbacks, one client that runs `client`; the
-- reactor stops when the server side's connection is lost
local function run(server, client)
  local seen = {}
  local S = reactor.Protocol:extend {
    connectionMade = function(self) server.made(self, seen) end,
    connectionLost = function(self)
      seen[#seen + 1] = "lost " .. tostring(self.transport.disconnecting)
      seen.peer = self.transport:getPeer().host -- still answers
      self.transport:write("ignored") -- a no-op, not an error
      reactor.stop()
    end,
  }
  local l = assert(reactor.listenTCP(0, S, "127.0.0.1"))
  local C = reactor.Protocol:extend { connectionMade = client or function() end }
  reactor.connectTCP("127.0.0.1", l:getHost().port, C)
  H.run_loop()
  l:stopListening()
  return seen
end

describe("transport.disconnecting", function()
  it("is false while open and true from loseConnection on", function()
    local seen = run({ made = function(self, seen)
      seen[#seen + 1] = "open " .. tostring(self.transport.disconnecting)
      assert.is_true(self.transport:loseConnection())
      seen[#seen + 1] = "closing " .. tostring(self.transport.disconnecting)
      assert.is_false(self.transport:loseConnection()) -- twice: harmless
    end })
    assert.are.same({ "open false", "closing true", "lost true", peer = "127.0.0.1" }, seen)
  end)

  it("is true after abortConnection", function()
    local seen = run({ made = function(self, seen)
      self.transport:abortConnection()
      seen[#seen + 1] = "aborted " .. tostring(self.transport.disconnecting)
    end })
    assert.are.same({ "aborted true", "lost true", peer = "127.0.0.1" }, seen)
  end)

  it("is true in connectionLost when the peer closed", function()
    local seen = run({ made = function(self, seen)
      seen[#seen + 1] = "open " .. tostring(self.transport.disconnecting)
    end }, function(self) self.transport:loseConnection() end)
    assert.are.same({ "open false", "lost true", peer = "127.0.0.1" }, seen)
  end)
end)
