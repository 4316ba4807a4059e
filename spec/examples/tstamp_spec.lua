-- examples/tstamp.lua, examples/udp_tstamp.lua (seed 002's time-stamp
-- servers) and their interactive clients, run as a user runs them: the real
-- daemon on loopback, port 0; the clients as lua5.4 programs whose stdin is
-- a pipe (a file of typed lines) and whose stdout is what the user sees.
local H = require "spec.helpers"
local socket = require "socket"

local CTIME = "%u%l%l %u%l%l [ %d]%d %d%d:%d%d:%d%d %d%d%d%d" -- Python's time.ctime()

-- Is `stamp` os.date's ctime for one of the seconds t0..t1? (an exact
-- check of the time the server wrote, with no threshold)
local function within(stamp, t0, t1)
  for t = t0, t1 do
    if os.date("%a %b %e %H:%M:%S %Y", t) == stamp then return true end
  end
  return false
end

-- "[<ctime>] <data>" -> the ctime, checked against the clock around the call
local function stamped(answer, data, t0)
  local stamp, rest = answer:match("^%[(" .. CTIME .. ")%] (.*)$")
  assert.is_not_nil(stamp, answer)
  assert.are.equal(data, rest)
  assert.is_true(within(stamp, t0, os.time()), stamp)
end

-- run an example client with `input` on its stdin -> exit code, stdout, stderr
local function client(script, input, ...)
  local inf, errf = H.tmpname(), H.tmpname()
  H.write_file(inf, input)
  local args = { "timeout", "20", "lua5.4", script, ... }
  for i, a in ipairs(args) do args[i] = H.quote(a) end
  local p = io.popen(table.concat(args, " ") .. " <" .. H.quote(inf) .. " 2>" .. H.quote(errf))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, H.read_file(errf)
end

-- the transcript with each ctime written as <ctime>
local function plain(out) return (out:gsub(CTIME, "<ctime>")) end

describe("examples/tstamp.lua", function()
  after_each(H.cleanup)

  it("answers each message '[<ctime>] <message>', on one connection as long as it lasts", function()
    local d = H.start_daemon { script = "examples/tstamp.lua" }
    local s = assert(H.connect(d.port))
    for _, msg in ipairs { "hello", "hi", "Oh?" } do
      local t0 = os.time()
      assert(H.send_all(s, msg))
      stamped(H.read_exact(s, 27 + #msg), msg, t0) -- "[" 24 "] " msg
    end
    s:close()
    assert.are.equal(0, (d:stop()))
  end)
end)

describe("examples/tstamp_client.lua", function()
  after_each(H.cleanup)

  it("prompts '> ', prints each answer, and quits at an empty line", function()
    local d = H.start_daemon { script = "examples/tstamp.lua" }
    local t0 = os.time()
    local code, out, err = client("examples/tstamp_client.lua", "hello\nhi there\n\nnot sent\n", "-p", d.port)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal("> [<ctime>] hello\n> [<ctime>] hi there\n> ", plain(out))
    for stamp in out:gmatch("%[(" .. CTIME .. ")%]") do assert.is_true(within(stamp, t0, os.time())) end
    assert.are.equal(0, (d:stop()))
  end)

  it("quits at the end of stdin too, after the last answer", function()
    local d = H.start_daemon { script = "examples/tstamp.lua" }
    local code, out = client("examples/tstamp_client.lua", "one\ntwo", "-p", d.port, "127.0.0.1")
    assert.are.equal(0, code)
    assert.are.equal("> [<ctime>] one\n> [<ctime>] two\n> ", plain(out))
    assert.are.equal(0, (d:stop()))
  end)

  it("says why when nobody listens, and exits 1", function()
    local code, out, err = client("examples/tstamp_client.lua", "hello\n", "-p", "1")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("tstamp_client: cannot connect to 127.0.0.1:1: ECONNREFUSED: connection refused\n", err)
  end)

  it("says so when the server hangs up before answering, and exits 1", function()
    local rude = H.write_script("return { dataReceived = function(self) self.transport:loseConnection() end }")
    local d = H.start_daemon { script = rude }
    local code, out, err = client("examples/tstamp_client.lua", "hello\nnever sent\n", "-p", d.port)
    assert.are.equal(1, code)
    assert.are.equal("> ", out)
    assert.are.equal("tstamp_client: the server closed the connection (done)\n", err)
    assert.are.equal(0, (d:stop()))
  end)

  it("rejects a bad flag with a usage line (exit 2)", function()
    local code, _, err = client("examples/tstamp_client.lua", "", "--fast")
    assert.are.equal(2, code)
    assert.are.equal("tstamp_client: unknown option --fast\nusage: tstamp_client.lua [-p PORT] [HOST]\n", err)
  end)
end)

describe("examples/udp_tstamp.lua", function()
  after_each(H.cleanup)

  local function udp(port)
    local u = assert(socket.udp())
    u:settimeout(H.SOCKET_TIMEOUT)
    assert(u:setpeername("127.0.0.1", port))
    return u
  end

  it("listens on udp (its first line says so) and answers each datagram '[<ctime>] <datagram>'", function()
    local d = H.start_daemon { script = "examples/udp_tstamp.lua" }
    assert.matches("^reactord: listening on udp 127%.0%.0%.1:%d+$", d.first_line)
    local u = udp(d.port)
    local t0 = os.time()
    assert(u:send("hello"))
    stamped(assert(u:receive()), "hello", t0)
    u:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("does not let a remote client stop it: a lone space is answered like any datagram", function()
    local d = H.start_daemon { script = "examples/udp_tstamp.lua" }
    local u = udp(d.port)
    local t0 = os.time()
    assert(u:send(" ")) -- what stops the seed's server
    stamped(assert(u:receive()), " ", t0)
    local other = udp(d.port) -- another client is still served
    assert(other:send("still there?"))
    stamped(assert(other:receive()), "still there?", t0)
    assert.is_true(d:alive())
    u:close()
    other:close()
    assert.are.equal(0, (d:stop())) -- the operator stops it: SIGTERM, exit 0
  end)
end)

describe("examples/udp_tstamp_client.lua", function()
  after_each(H.cleanup)

  it("prompts '> ', prints each answer, sends a lone space as any line, and quits at an empty line", function()
    local d = H.start_daemon { script = "examples/udp_tstamp.lua" }
    local code, out, err = client("examples/udp_tstamp_client.lua", "hello\n \nhi there\n\nnot sent\n", "-p", d.port)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal("> [<ctime>] hello\n> [<ctime>]  \n> [<ctime>] hi there\n> ", plain(out))
    assert.is_true(d:alive())
    assert.are.equal(0, (d:stop()))
  end)

  it("says nobody listens when the port is closed (ECONNREFUSED), and exits 1", function()
    local free = assert(socket.udp())
    assert(free:setsockname("127.0.0.1", 0))
    local _, port = free:getsockname()
    free:close()
    local code, out, err = client("examples/udp_tstamp_client.lua", "hello\n", "-p", port)
    assert.are.equal(1, code)
    assert.are.equal("> ", out)
    assert.are.equal(("udp_tstamp_client: nobody listens on udp 127.0.0.1:%d (ECONNREFUSED)\n"):format(port), err)
  end)

  it("gives up after -t seconds without an answer, and exits 1", function()
    -- a UDP socket that reads nothing: the datagram is taken, never answered
    local mute = assert(socket.udp())
    assert(mute:setsockname("127.0.0.1", 0))
    local _, port = mute:getsockname()
    local code, out, err = client("examples/udp_tstamp_client.lua", "hello\n", "-p", port, "-t", "0.2")
    mute:close()
    assert.are.equal(1, code)
    assert.are.equal("> ", out)
    assert.are.equal(("udp_tstamp_client: no answer from udp 127.0.0.1:%d within 0.2 s\n"):format(port), err)
  end)

  it("asks for a numeric HOST (exit 2)", function()
    local code, _, err = client("examples/udp_tstamp_client.lua", "", "localhost")
    assert.are.equal(2, code)
    assert.matches("^udp_tstamp_client: HOST must be a numeric address such as 127%.0%.0%.1 or ::1 %(got localhost%)\n", err)
  end)
end)
