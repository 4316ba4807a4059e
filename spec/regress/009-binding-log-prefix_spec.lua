-- Issue 9: in a plain lua5.4 program that requires "reactor", callback
-- errors were logged as "reactord: ..." though no daemon runs. The library's
-- own prefix is "reactor: "; the daemon still says "reactord: ".
local H = require "spec.helpers"

describe("issue 9: the log prefix", function()
  after_each(function() H.cleanup() end)

  it("is `reactor: ` in a plain lua5.4 program", function()
    local script = [[
local reactor = require "reactor"
reactor.callLater(0, function() error("oops in a timer") end) -- RAISES
reactor.callLater(0, reactor.stop)
reactor.run()
]]
    local out = H.run_lua(script, { stderr = true })
    local line = H.line_of(script, "-- RAISES") + 1 -- run_lua's first line
    local first = H.lines(out)[1] or ""
    assert.matches("^reactor: error in callLater: [^\n]*%.lua:" .. line .. ": oops in a timer", first)
    assert.is_nil(out:find("reactord", 1, true), out)
  end)

  it("is still `reactord: ` in the daemon", function()
    local d = H.start_logged_daemon { script = H.write_script [[
local P = {}
function P:dataReceived(data) error("oops in the daemon") end
return { protocol = P }
]] }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "x"))
    local line, why = d:wait_line("oops in the daemon")
    s:close()
    assert(line, tostring(why))
    assert.matches("^reactord: error in dataReceived: ", line)
    assert.is_nil(d:stderr():find("\nreactor: ", 1, true), d:stderr())
    local code, how = d:stop("TERM")
    assert.are.equal("exit 0", how .. " " .. tostring(code), d:stderr())
  end)
end)
