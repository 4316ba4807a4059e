-- Issue 9: `reactord app.lua localhost` failed with "not a numeric IPv4 or
-- IPv6 address", though connectTCP resolves names. The daemon's HOST (and a
-- script's `host`) may now be a name; one that does not resolve is a clear
-- error naming it.
local H = require "spec.helpers"

describe("the daemon's HOST argument", function()
  after_each(H.cleanup)

  it("may be a host name: localhost listens on its address and serves", function()
    local d = H.start_daemon { args = { "localhost" } }
    assert.are.equal("127.0.0.1", d.host)
    local s = assert(H.connect(d.port, "127.0.0.1"))
    assert(H.send_all(s, "Beautiful is better than?"))
    assert.are.equal("Ugly.", H.read_exact(s, 5))
    s:close()
  end)

  it("that does not resolve is one clear line and exit 1", function()
    local code, out, err = H.run_daemon { "examples/zen.lua", "nosuch.invalid", "-p", "0" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^reactord: cannot listen on nosuch%.invalid:0: ENOTFOUND", err)
  end)
end)
