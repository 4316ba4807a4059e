-- Issue 9: reactor.stdio set the process's SIGPIPE disposition to ignored
-- from inside a library call. Now a closed stdout is an error the transport
-- reports (EPIPE, connectionLost "lost"), and the disposition is the
-- program's own.
local H = require "spec.helpers"

describe("reactor.stdio and a closed stdout", function()
  it("reports EPIPE as a lost connection, leaves SIGPIPE alone, and the program lives", function()
    local report = os.tmpname()
    local script = H.write_script(([[
package.cpath = os.getenv("REACTOR_BUILD") .. "/?.so;" .. package.cpath
local reactor = require "reactor"
local out = assert(io.open(%q, "w"))
local function ignored()
  for line in io.lines("/proc/self/status") do
    local mask = line:match("^SigIgn:%%s*(%%x+)")
    if mask then return (tonumber(mask, 16) & (1 << 12)) ~= 0 end
  end
end
local sent = 0
local P = {}
function P:connectionMade() self:more() end
function P:readConnectionLost() end -- stdin may end first: keep writing (half-close)
function P:more()
  if sent >= 100000 then return reactor.stop() end -- bounded: the reader is gone long before
  sent = sent + 1
  self.transport:write(string.rep("x", 1024))
  reactor.callLater(0, self, "more")
end
function P:connectionLost(reason)
  out:write("lost ", reason.type, " ", tostring(reason.message), "\n")
  reactor.stop()
end
reactor.stdio(P)
out:write("ignored after stdio: ", tostring(ignored()), "\n")
reactor.run()
out:write("alive\n")
out:close()
]]):format(report))
    local build = os.getenv("REACTOR_BUILD") or "build"
    -- head exits at once without reading: the script's writes meet a pipe
    -- with no reader. The child starts with SIGPIPE's default action (busted
    -- runs with it ignored, and an ignored signal is inherited).
    local ok = os.execute(("env --default-signal=PIPE REACTOR_BUILD=%s lua5.4 %s | head -c 0")
      :format(H.quote(build), H.quote(script)))
    local got = H.read_file(report)
    os.remove(report)
    os.remove(script)
    assert.is_true(ok)
    assert.matches("ignored after stdio: false", got, 1, true)
    assert.matches("lost lost [^\n]*EPIPE", got)
    assert.matches("alive", got, 1, true)
  end)
end)
