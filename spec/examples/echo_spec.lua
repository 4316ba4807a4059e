-- examples/echo.lua and examples/pid_echo.lua (seed 001's ForkingMixIn /
-- ThreadingMixIn servers), served by the real daemon, talked to as a user would.
local H = require "spec.helpers"

describe("examples/echo.lua", function()
  after_each(H.cleanup)

  it("sends back every byte, in order, whether it comes in pieces or all at once", function()
    local d = H.start_daemon { script = "examples/echo.lua" }
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "Hello echo server!"))
    assert.are.equal("Hello echo server!", H.read_exact(s, 18))
    for n = 1, 8 do -- 16 KiB at a time, each read back whole however it was split
      local chunk = (string.char(64 + n)):rep(16 * 1024)
      assert(H.send_all(s, chunk))
      assert.are.equal(chunk, H.read_exact(s, #chunk))
    end
    s:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("serves on port 8000 when the command line names none", function()
    local code, out = H.run_daemon { "--check", "examples/echo.lua" }
    assert.are.equal(0, code)
    assert.are.equal("reactord: examples/echo.lua: ok\n", out)
    assert.matches("port = 8000", H.read_file("examples/echo.lua"), 1, true)
  end)
end)

describe("examples/pid_echo.lua", function()
  after_each(H.cleanup)

  it("answers each message with 'received <pid> : <message>', the daemon's own pid", function()
    local d = H.start_daemon { script = "examples/pid_echo.lua" }
    assert.is_number(d.pid)
    -- the seed's clients: one message per connection, several connections
    for n = 1, 3 do
      local s = assert(H.connect(d.port))
      local msg = "Hello from Client " .. n
      assert(H.send_all(s, msg))
      local want = ("received %d : %s"):format(d.pid, msg)
      assert.are.equal(want, H.read_exact(s, #want))
      s:close()
    end
    -- and a connection that sends again after its answer is answered again
    local s = assert(H.connect(d.port))
    for _, msg in ipairs { "one", "two" } do
      assert(H.send_all(s, msg))
      local want = ("received %d : %s"):format(d.pid, msg)
      assert.are.equal(want, H.read_exact(s, #want))
    end
    s:close()
    assert.are.equal(0, (d:stop()))
  end)
end)
