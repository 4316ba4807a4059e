-- examples/twisted_echo.lua and examples/twisted_echo_client.lua (seed 003's
-- Twisted server and client, callbacks style) and their coroutine-streams
-- twins (twisted_echo_stream.lua, twisted_echo_stream_client.lua), run as a
-- user runs them: each pair passes the same assertions.
local H = require "spec.helpers"

local CTIME = "%u%l%l %u%l%l [ %d]%d %d%d:%d%d:%d%d %d%d%d%d" -- Python's time.ctime()

local STYLES = {
  { name = "callbacks", server = "examples/twisted_echo.lua", client = "twisted_echo_client" },
  { name = "streams", server = "examples/twisted_echo_stream.lua", client = "twisted_echo_stream_client" },
}

for _, style in ipairs(STYLES) do
  local function client(input, ...)
    local inf, errf = H.tmpname(), H.tmpname()
    H.write_file(inf, input)
    local args = { "timeout", "20", "lua5.4", "examples/" .. style.client .. ".lua", ... }
    for i, a in ipairs(args) do args[i] = H.quote(a) end
    local p = io.popen(table.concat(args, " ") .. " <" .. H.quote(inf) .. " 2>" .. H.quote(errf))
    local out = p:read("a")
    local _, _, code = p:close()
    return code, out, H.read_file(errf)
  end

  describe(style.server, function()
    after_each(H.cleanup)

    it("answers '[<ctime>] <data>' and prints who connected", function()
      local d = H.start_logged_daemon { script = style.server }
      local s = assert(H.connect(d.port))
      assert.truthy(d:wait_line("^%.%.%.connected from: 127%.0%.0%.1$", 10))
      assert(H.send_all(s, "hello"))
      assert.matches("^%[" .. CTIME .. "%] hello$", H.read_exact(s, 27 + 5))
      s:close()
      assert.are.equal(0, (d:stop()))
    end)
  end)

  describe("examples/" .. style.client .. ".lua", function()
    after_each(H.cleanup)

    it("announces and sends each line, prints the answer, and stops the reactor when the connection is lost", function()
      local d = H.start_daemon { script = style.server }
      local code, out, err = client("hello\nhi\n\nnot sent\n", "-p", d.port)
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
      assert.are.equal("> ...send hello...\n[<ctime>] hello\n> ...send hi...\n[<ctime>] hi\n> ",
        (out:gsub(CTIME, "<ctime>")))
      assert.are.equal(0, (d:stop()))
    end)

    it("stops when the server closes the connection (clientConnectionLost)", function()
      local rude = H.write_script("return { dataReceived = function(self) self.transport:loseConnection() end }")
      local d = H.start_daemon { script = rude }
      local code, out = client("hello\nnever sent\n", "-p", d.port)
      assert.are.equal(0, code) -- as the seed: a lost connection just stops the reactor
      assert.are.equal("> ...send hello...\n", out)
      assert.are.equal(0, (d:stop()))
    end)

    it("stops with the reason when it cannot connect (clientConnectionFailed), exit 1", function()
      local code, out, err = client("hello\n", "-p", "1")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal(style.client .. ": cannot connect to 127.0.0.1:1: ECONNREFUSED: connection refused\n", err)
    end)
  end)
end
