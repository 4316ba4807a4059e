-- The seed's own Python client, unchanged, against `reactord examples/zen.lua`.
-- The harness only replaces time.sleep (the client sleeps 10 s before closing).
local H = require "spec.helpers"

describe("the seed's client.py", function()
  it("gets the three answers from reactord", function()
    local d = H.start_daemon { script = "examples/zen.lua" }
    -- Debian's python3 (make deps), without the sanitizers a test build preloads
    local cmd = ("cd spec/fixtures/seed && env -u LD_PRELOAD timeout 20 /usr/bin/python3 -c %s 2>&1"):format(H.quote(
      "import sys, time, runpy; time.sleep = lambda s: None; "
        .. "sys.argv = ['client.py', '127.0.0.1', '-p', '" .. d.port .. "']; "
        .. "runpy.run_path('client.py', run_name='__main__')"))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    local code = d:stop()
    assert.is_true(ok, out)
    assert.are.equal(0, code)
    local seen = {}
    for q, a in out:gmatch("b'([^']+)' b'([^']+)'") do seen[q] = a end
    assert.are.same(H.ZEN_ANSWERS, seen)
  end)
end)
