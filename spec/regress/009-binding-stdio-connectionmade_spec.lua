-- Issue 9: reactor.stdio called connectionMade without protection: an error
-- there escaped from reactor.stdio() and left the stdio transport open and
-- pinned. Now it is handled as any callback error: logged once, naming the
-- user's file:line; the transport closes, connectionLost gets an "error"
-- reason; nothing stays alive.
local H = require "spec.helpers"

-- run by H.run_lua, which adds one line (package.cpath) above it; results go
-- to stderr (taken with stdout), as stdout is the transport's
local SCRIPT = [[
local reactor = require "reactor"
local P = {}
function P:connectionMade() error("no greeting today") end -- RAISES
function P:connectionLost(reason)
  io.stderr:write("lost: ", reason.type, ": ", tostring(reason.message), "\n")
end
local t = reactor.stdio(P)
io.stderr:write("stdio returned ", tostring(t ~= nil), "\n")
reactor.run()
io.stderr:write("connections after run: ", reactor.core._stats().connections, "\n")
]]

describe("issue 9: reactor.stdio with a connectionMade that raises", function()
  after_each(function() H.cleanup() end)

  it("logs the error once with the user's file:line, runs connectionLost, leaves no connection", function()
    local out = H.run_lua(SCRIPT, { stdin = "printf 'hello\\n'", stderr = true })
    local line = H.line_of(SCRIPT, "-- RAISES") + 1 -- run_lua's first line
    assert.matches("reactor: error in connectionMade: [^\n]*%.lua:" .. line .. ": no greeting today", out)
    assert.are.equal(1, H.count(out, "error in connectionMade"), out)
    assert.matches("lost: error: [^\n]*%.lua:" .. line .. ": no greeting today\n", out)
    assert.are.equal(1, H.count(out, "lost: "), out)
    -- the error did not escape from reactor.stdio(), and the loss was the
    -- error's (stdin's EOF would end a transport left open: "lost: done")
    assert.matches("stdio returned true\n", out, 1, true)
    assert.matches("connections after run: 0\n", out, 1, true)
  end)

  it("a script that guards reactor.stdio with pcall is not left with an open, pinned transport", function()
    local guarded = SCRIPT:gsub("local t = reactor.stdio%(P%)", "local _, t = pcall(reactor.stdio, P)")
    local out = H.run_lua(guarded, { stdin = "printf 'hello\\n'", stderr = true })
    assert.are.equal(1, H.count(out, "lost: error: "), out)
    assert.matches("connections after run: 0\n", out, 1, true)
  end)
end)
