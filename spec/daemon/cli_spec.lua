-- Command line behaviour of the real daemon (README, "The daemon").

local H = require "spec.helpers"
local socket = require "socket"

local ZEN = "examples/zen.lua"
local Q, A = "Beautiful is better than?", "Ugly."

-- a minimal valid protocol script (a table of callbacks)
local ECHO = [[
local Echo = {}
function Echo:connectionMade() end
function Echo:dataReceived(data)
  if data:find("boom", 1, true) then
    error("kaboom")  -- BOOM
  end
  self.transport:write("echo:" .. data)
end
function Echo:connectionLost(reason) end
return Echo
]]

local function ask(port, host)
  local s = assert(H.connect(port, host))
  assert.is_true(H.send_all(s, Q))
  local got, err = H.read_exact(s, #A)
  s:close()
  assert.are.equal(A, got, err)
end

-- exactly one line, starting "reactord: "
local function one_reactord_line(err)
  local lines = H.lines(err)
  assert.are.equal(1, #lines, "stderr should be one line:\n" .. err)
  assert.matches("^reactord: ", lines[1])
  return lines[1]
end

describe("reactord command line", function()
  after_each(function()
    H.cleanup()
  end)

  it("--help prints usage on stdout and exits 0", function()
    for _, flag in ipairs { "--help", "-h" } do
      local code, out, err = H.run_daemon { flag }
      assert.are.equal(0, code, flag .. " stderr: " .. err)
      assert.matches("[Uu]sage", out)
      assert.matches("reactord", out, 1, true)
      assert.are.equal("", err)
    end
  end)

  it("--version prints `reactord X.Y.Z` and exits 0", function()
    for _, flag in ipairs { "--version", "-V" } do
      local code, out, err = H.run_daemon { flag }
      assert.are.equal(0, code, flag .. " stderr: " .. err)
      assert.matches("^reactord %d+%.%d+%.%d+\n$", out)
      assert.are.equal("", err)
    end
  end)

  it("a bad flag is a usage error: exit 2, first stderr line starts `reactord: `", function()
    local code, out, err = H.run_daemon { "--no-such-flag", ZEN }
    assert.are.equal(2, code)
    assert.matches("no%-such%-flag", one_reactord_line(err))
    assert.is_nil(out:match("listening"))
  end)

  it("-p without a value is a usage error (exit 2)", function()
    local code, _, err = H.run_daemon { ZEN, "-p" }
    assert.are.equal(2, code)
    one_reactord_line(err)
  end)

  it("-p with a value that is not a port fails with one `reactord: ` line", function()
    for _, bad in ipairs { "abc", "65536", "-1" } do
      local code, out, err = H.run_daemon { ZEN, "-p", bad }
      assert.is_true(code == 1 or code == 2, "-p " .. bad .. ": exit " .. tostring(code))
      one_reactord_line(err)
      assert.is_nil(out:match("listening"))
    end
  end)

  it("the limit flags reject bad values: exit 2, one line naming the flag and the value", function()
    local cases = {
      { "--script-timeout", "x" }, { "--max-memory", "-1" }, { "--grace", "abc" },
      { "--idle-timeout", "-2" }, { "--max-connections", "1.5" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = H.run_daemon { ZEN, c[1], c[2] }
      assert.are.equal(2, code, c[1] .. " " .. c[2])
      one_reactord_line(err)
      assert.matches(("bad %s '%s'"):format(c[1], c[2]), err, 1, true)
      assert.is_nil(out:match("listening"))
    end
    local code, _, err = H.run_daemon { ZEN, "--grace" }
    assert.are.equal(2, code)
    assert.matches("option '--grace' needs a value", err, 1, true)
  end)

  it("the limit flags accept good values (--check still loads the script)", function()
    local code, out = H.run_daemon { ZEN, "--check", "--script-timeout", "0.5", "--max-memory", "64",
      "--grace", "0", "--idle-timeout", "30", "--max-connections", "100", "--watch" }
    assert.are.equal(0, code)
    assert.matches("ok", out)
  end)

  it("no script at all is an error with a `reactord: ` line", function()
    local code, _, err = H.run_daemon {}
    assert.is_true(code ~= 0)
    assert.matches("^reactord: ", H.lines(err)[1] or "")
  end)

  it("a missing script: one line `cannot open ...: No such file or directory`, exit 1", function()
    local path = H.tmpname(".lua") -- name only: never created
    local code, out, err = H.run_daemon { path, "-p", "0" }
    assert.are.equal(1, code)
    assert.are.equal("reactord: cannot open " .. path .. ": No such file or directory",
      one_reactord_line(err))
    assert.are.equal("", out)
  end)

  local BAD_SYNTAX = "local P = {}\nfunction P:dataReceived(data) end\nlocal x = = 1\nreturn P\n"

  it("a script with a syntax error: stderr names file:line, exit 1", function()
    local path = H.write_script(BAD_SYNTAX)
    local code, out, err = H.run_daemon { path, "-p", "0" }
    assert.are.equal(1, code)
    local line = one_reactord_line(err)
    assert.are.equal("reactord: " .. path .. ":3: ", line:sub(1, #("reactord: " .. path .. ":3: ")))
    assert.are.equal("", out)
  end)

  it("a script that raises while loading: stderr names file:line, exit 1", function()
    local src = "local P = {}\n\nerror('no thanks')\nreturn P\n"
    local path = H.write_script(src)
    local code, _, err = H.run_daemon { path, "-p", "0" }
    assert.are.equal(1, code)
    assert.matches("^reactord: ", err)
    assert.matches(path .. ":3: no thanks", err, 1, true)
  end)

  describe("--check", function()
    it("on a good script prints `reactord: SCRIPT: ok` and exits 0", function()
      local path = H.write_script(ECHO)
      local code, out, err = H.run_daemon { "--check", path }
      assert.are.equal(0, code, err)
      assert.are.equal("reactord: " .. path .. ": ok\n", out)
    end)

    it("on examples/zen.lua exits 0", function()
      local code, out, err = H.run_daemon { "--check", ZEN }
      assert.are.equal(0, code, err)
      assert.are.equal("reactord: " .. ZEN .. ": ok\n", out)
    end)

    it("works after the script too", function()
      local code, out, err = H.run_daemon { ZEN, "--check" }
      assert.are.equal(0, code, err)
      assert.are.equal("reactord: " .. ZEN .. ": ok\n", out)
    end)

    it("on a script with a syntax error exits 1 naming file:line", function()
      local path = H.write_script(BAD_SYNTAX)
      local code, out, err = H.run_daemon { "--check", path }
      assert.are.equal(1, code)
      local line = one_reactord_line(err)
      assert.matches(path .. ":3: ", line, 1, true)
      assert.is_nil(out:match(": ok"))
    end)

    it("on a script that returns no protocol exits 1", function()
      local path = H.write_script("return 42\n")
      local code, out, err = H.run_daemon { "--check", path }
      assert.are.equal(1, code)
      one_reactord_line(err)
      assert.is_nil(out:match(": ok"))
    end)

    -- the daemon carries Lua itself and exports its API: Debian's C modules
    -- (linked against no liblua) must find it there
    it("loads a script that requires a C module (lua-socket)", function()
      local path = H.write_script([[
local socket = require "socket"
assert(socket.gettime() > 0)
return { protocol = { dataReceived = function() end } }
]])
      local code, out, err = H.run_daemon { "--check", path }
      assert.are.equal(0, code, err)
      assert.are.equal("reactord: " .. path .. ": ok\n", out)
    end)

    it("on a missing script exits 1", function()
      local path = H.tmpname(".lua")
      local code, _, err = H.run_daemon { "--check", path }
      assert.are.equal(1, code)
      assert.are.equal("reactord: cannot open " .. path .. ": No such file or directory",
        one_reactord_line(err))
    end)
  end)

  it("a port already in use: exit 1, `address already in use`, the first daemon goes on", function()
    local first = H.start_daemon { script = ZEN }
    local code, out, err = H.run_daemon { ZEN, "-p", tostring(first.port) }
    assert.are.equal(1, code)
    assert.are.equal(("reactord: cannot listen on 127.0.0.1:%d: EADDRINUSE: address already in use")
      :format(first.port), one_reactord_line(err))
    assert.is_nil(out:match("listening"))
    ask(first.port)
  end)

  describe("option placement", function()
    local forms = {
      { "options after the script", { ZEN, "-p", "0" } },
      { "options before the script", { "-p", "0", ZEN } },
      { "long option with =", { ZEN, "--port=0" } },
      { "long option, separate value", { "--port", "0", ZEN } },
      { "explicit HOST then options", { ZEN, "127.0.0.1", "-p", "0" } },
      { "options between script and HOST", { ZEN, "-p", "0", "127.0.0.1" } },
    }
    for _, f in ipairs(forms) do
      it(f[1] .. ": " .. table.concat(f[2], " "), function()
        local d = H.start_daemon { argv = f[2] }
        assert.are.equal("127.0.0.1", d.host)
        ask(d.port)
        local code, how = d:stop("TERM")
        assert.are.equal("exit", how)
        assert.are.equal(0, code)
      end)
    end
  end)

  it("SIGTERM as soon as the listening line is out: exit 0 and `reactord: stopped` (20 times)", function()
    -- the listening line is the readiness signal: by then SIGTERM must
    -- already mean a clean stop, not the default (killed by signal 15)
    local results = {}
    for i = 1, 20 do
      local d = H.start_daemon { script = ZEN }
      local code, how = d:stop("TERM")
      local err = d:stderr()
      if not (how == "exit" and code == 0 and err:find("reactord: stopped", 1, true)) then
        results[#results + 1] = ("run %d: %s %s, stderr %q"):format(i, how, tostring(code), err)
      end
    end
    assert.are.same({}, results)
  end)

  it("without -p listens on the script's own `port` field", function()
    local port = H.free_port()
    local src = ECHO:gsub("return Echo\n$", "return { protocol = Echo, port = " .. port .. " }\n")
    local path = H.write_script(src)
    local d = H.start_daemon { argv = { path } }
    assert.are.equal(port, d.port)
    local s = assert(H.connect(d.port))
    assert.is_true(H.send_all(s, "hi"))
    assert.are.equal("echo:hi", H.read_exact(s, 7))
    s:close()
  end)

  it("listens on ::1 when given an IPv6 HOST, printed as [::1]:PORT", function()
    local probe = socket.tcp6 and socket.tcp6()
    local v6 = probe and probe:bind("::1", 0)
    if probe then probe:close() end
    if not v6 then
      pending("no IPv6 loopback on this machine")
      return
    end
    local d = H.start_daemon { argv = { ZEN, "::1", "-p", "0" } }
    assert.matches("^reactord: listening on %[::1%]:%d+$", d.first_line)
    assert.are.equal("::1", d.host)
    local s = assert(socket.tcp6())
    s:settimeout(H.SOCKET_TIMEOUT)
    assert(s:connect("::1", d.port))
    assert.is_true(H.send_all(s, Q))
    assert.are.equal(A, H.read_exact(s, #A))
    s:close()
  end)

  it("an error in dataReceived closes only that connection and logs file:line", function()
    local path = H.write_script(ECHO)
    local line = H.line_of(ECHO, "-- BOOM")
    local d = H.start_daemon { script = path }

    local other = assert(H.connect(d.port))
    assert.is_true(H.send_all(other, "one"))
    assert.are.equal("echo:one", H.read_exact(other, 8))

    local bad = assert(H.connect(d.port))
    assert.is_true(H.send_all(bad, "boom"))
    local rest, why = H.read_to_eof(bad)
    assert.are.equal("", rest)
    assert.is_true(why == "closed" or why == "connection reset by peer", why)
    bad:close()

    -- the connection opened before is still served, and so is a new one
    assert.is_true(H.send_all(other, "two"))
    assert.are.equal("echo:two", H.read_exact(other, 8))
    local new = assert(H.connect(d.port))
    assert.is_true(H.send_all(new, "three"))
    assert.are.equal("echo:three", H.read_exact(new, 10))
    new:close()
    other:close()

    local code, how = d:stop("TERM")
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
    local err = d:stderr()
    assert.matches(("reactord: error in dataReceived: %s:%d: kaboom"):format(path, line), err, 1, true)
    -- only one error was logged
    local _, n = err:gsub("reactord: error in ", "")
    assert.are.equal(1, n, err)
  end)
end)
