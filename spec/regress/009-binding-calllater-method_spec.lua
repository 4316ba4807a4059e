-- Issue 9: callLater(delay, obj, "nosuchmethod") failed when it fired with
-- "callLater: method 'nosuchmethod' not found": no object, no line. The log
-- must name the method, the object, and where callLater was called.
local H = require "spec.helpers"

-- Timers scheduled in one callback fire in the order of their delays, so
-- the 0.1 s stop comes after the 0.05 s calls (no race, no sleep).
local SCRIPT = [[
local reactor = require "reactor"
local greeter = { name = "greeter" }
print("object: " .. tostring(greeter))
reactor.callLater(0.05, greeter, "nosuchmethod", 1, 2) -- SCHEDULED
local S = {}
function S:connectionMade()
  print("protocol: " .. tostring(self))
  reactor.callLater(0.05, self, "greetLater") -- FROM A PROTOCOL
  reactor.callLater(0.1, reactor.stop)
end
local l = assert(reactor.listenTCP(0, { protocol = S }))
reactor.connectTCP("127.0.0.1", l:getHost().port, reactor.ClientFactory { protocol = {} })
local guard = reactor.callLater(10, function() print("DEADLINE") reactor.stop() end)
reactor.run()
guard:cancel()
print("done")
]]

describe("issue 9: callLater with a method name the object does not have", function()
  local out
  setup(function() out = H.run_lua(SCRIPT, { stderr = true }) end)
  teardown(function() H.cleanup() end)

  -- the first line of the log record that mentions `method`
  local function record(method)
    for _, line in ipairs(H.lines(out)) do
      if line:find("error in callLater", 1, true) and line:find(method, 1, true) then return line end
    end
    assert(false, "no callLater error naming " .. method .. " in:\n" .. out)
  end

  local function site(marker) return "%.lua:" .. (H.line_of(SCRIPT, marker) + 1) .. ": " end -- run_lua's first line

  it("ran", function()
    assert.matches("done\n", out, 1, true)
    assert.is_nil(out:find("DEADLINE", 1, true), out)
  end)

  it("names the method, the object and the line that scheduled it", function()
    local line = record("nosuchmethod")
    assert.matches("'nosuchmethod'", line, 1, true)
    assert.matches(out:match("object: ([^\n]+)"), line, 1, true)
    assert.matches(site("-- SCHEDULED"), line)
  end)

  it("the same for a protocol's self", function()
    local line = record("greetLater")
    assert.matches("'greetLater'", line, 1, true)
    assert.matches(out:match("protocol: ([^\n]+)"), line, 1, true)
    assert.matches(site("-- FROM A PROTOCOL"), line)
  end)
end)
