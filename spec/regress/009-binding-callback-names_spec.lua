-- Issue 9: errors raised in lineLengthExceeded, and in dataReceived /
-- rawDataReceived once setRawMode() was called, were logged as
-- "error in lineReceived". The log must name the callback that raised.
local H = require "spec.helpers"

-- H.run_lua adds one line above this script. Three clients, one case each:
--   long   a line longer than MAX_LENGTH: lineLengthExceeded raises
--   raw    setRawMode, the raw bytes in the same write: rawDataReceived raises
--   later  setRawMode, the raw bytes sent after the server's "ok": dataReceived raises
local SCRIPT = [[
local reactor = require "reactor"
local S = reactor.LineReceiver:extend { MAX_LENGTH = 8 }
function S:lineReceived(line)
  self.case = line
  self:setRawMode()
  if line == "later" then self.transport:write("ok\n") end
end
function S:lineLengthExceeded(data) error("too long for me") end -- EXCEEDED
function S:dataReceived(data)
  if self.case == "later" then error("direct raw bytes refused") end -- DIRECT
  return reactor.LineReceiver.dataReceived(self, data)
end
function S:rawDataReceived(data) error("raw bytes refused") end -- RAW
local l = assert(reactor.listenTCP(0, { protocol = S }))
local left = 3
local C = {}
function C:connectionMade() self.transport:write(self.factory.first) end
function C:dataReceived(data) if data == "ok\n" then self.transport:write("bytes") end end
function C:connectionLost()
  left = left - 1
  if left == 0 then reactor.stop() end
end
for _, first in ipairs { "this line is too long\r\n", "raw\r\nbytes", "later\r\n" } do
  reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = C, first = first })
end
local guard = reactor.callLater(10, function() print("DEADLINE") reactor.stop() end)
reactor.run()
guard:cancel()
print("done")
]]

describe("issue 9: a callback error is logged under the callback's own name", function()
  local out
  setup(function() out = H.run_lua(SCRIPT, { stderr = true }) end)
  teardown(function() H.cleanup() end)

  local function at(marker) return "[^\n]*%.lua:" .. (H.line_of(SCRIPT, marker) + 1) .. ": " end

  it("ran all three cases", function()
    assert.matches("done\n", out, 1, true)
    assert.is_nil(out:find("DEADLINE", 1, true), out)
  end)

  it("lineLengthExceeded", function()
    assert.matches("error in lineLengthExceeded: " .. at("-- EXCEEDED") .. "too long for me", out)
    assert.is_nil(out:find("error in lineReceived", 1, true), out)
  end)

  it("rawDataReceived after setRawMode, bytes in the same read: dataReceived", function()
    assert.matches("error in dataReceived: " .. at("-- RAW") .. "raw bytes refused", out)
  end)

  it("dataReceived after setRawMode, bytes in a later read", function()
    assert.matches("error in dataReceived: " .. at("-- DIRECT") .. "direct raw bytes refused", out)
  end)
end)
