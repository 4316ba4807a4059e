-- Issue 9: error({code = 42}) in a callback was logged as "(error object is
-- a table value)". A table now shows its fields, a value with __tostring its
-- text, and connectionLost's reason.message says the same.
local H = require "spec.helpers"

local SCRIPT = [[
local reactor = require "reactor"
local Failure = setmetatable({}, { __tostring = function() return "Failure: the disk is full" end })
local S = {}
function S:dataReceived(data)
  if data == "fields" then error({ code = 42 }) end
  error(Failure)
end
function S:connectionLost(reason)
  io.stderr:write("lost ", reason.type, ": ", tostring(reason.message), "\n")
end
local l = assert(reactor.listenTCP(0, { protocol = S }))
local left = 2
local C = {}
function C:connectionMade() self.transport:write(self.factory.send) end
function C:connectionLost()
  left = left - 1
  if left == 0 then reactor.stop() end
end
for _, send in ipairs { "fields", "tostring" } do
  reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C, send = send })
end
local guard = reactor.callLater(10, function() print("DEADLINE") reactor.stop() end)
reactor.run()
guard:cancel()
print("done")
]]

describe("issue 9: an error value that is not a string", function()
  local out
  setup(function() out = H.run_lua(SCRIPT, { stderr = true }) end)
  teardown(function() H.cleanup() end)

  it("ran both cases", function()
    assert.matches("done\n", out, 1, true)
    assert.is_nil(out:find("DEADLINE", 1, true), out)
  end)

  it("a table without __tostring: its fields, in the log and in reason.message", function()
    assert.matches("error in dataReceived: error object {code = 42}", out, 1, true)
    assert.matches("lost error: error object {code = 42}\n", out, 1, true)
  end)

  it("a value with __tostring: that text, in the log and in reason.message", function()
    assert.matches("error in dataReceived: Failure: the disk is full", out, 1, true)
    assert.matches("lost error: Failure: the disk is full\n", out, 1, true)
  end)

  it("never the bare type", function()
    assert.is_nil(out:find("error object is a", 1, true), out)
  end)
end)
