-- UDP in daemon scripts (issue 10, part 3): `udp = true` and `listen`
-- entries, the listening lines, factory.ports under -p 0, hot reload of a
-- datagram protocol, stopProtocol at shutdown, --check of udp entries.
-- Loopback only; every read has a deadline (socket timeout, the daemon's
-- `timeout`); the log is read line by line (H.start_logged_daemon), never polled.
local H = require "spec.helpers"
local socket = require "socket"

local function udp_client(port)
  local u = assert(socket.udp())
  u:settimeout(H.SOCKET_TIMEOUT)
  assert(u:setpeername("127.0.0.1", port))
  return u
end

-- send one datagram, return the answer (or nil, err)
local function ask(u, msg)
  assert(u:send(msg))
  return u:receive()
end

-- <tag><n>:<data>, n the datagram count kept in self (set up by
-- startProtocol); "ports": every port the factory says it listens on, and
-- the one startProtocol saw; stopProtocol writes a line on stderr.
local COUNTER = [[
local P = {}
function P:startProtocol()
  self.n = 0
  self.at = self.transport:getHost().port
end
function P:datagramReceived(data, host, port)
  self.n = self.n + 1
  if data == "ports" then
    local t = {}
    for _, a in ipairs(self.factory.ports) do t[#t + 1] = a.type .. " " .. a.port end
    data = table.concat(t, ",") .. " at " .. self.at
  end
  self.transport:write(%q .. self.n .. ":" .. data, host, port)
end
function P:stopProtocol()
  io.stderr:write("test: stopProtocol after ", self.n, "\n")
end
%s
return { protocol = P, udp = true, port = 1060 %s }
]]

local function counter(tag, extra, fields)
  return COUNTER:format(tag, extra or "", fields or "")
end

describe("a daemon script with udp = true", function()
  after_each(H.cleanup)

  it("serves UDP on the -p port, says so on its first line, and tells the protocol its port", function()
    local d = H.start_logged_daemon { script = H.write_script(counter("a")) }
    assert.matches("^reactord: listening on udp 127%.0%.0%.1:%d+$", d.first_line)
    assert.are_not.equal(0, d.port)
    local u = udp_client(d.port)
    assert.are.equal("a1:hello", ask(u, "hello"))
    assert.are.equal(("a2:UDP %d at %d"):format(d.port, d.port), ask(u, "ports"))
    u:close()
    assert.are.equal(0, (d:stop()))
    assert.matches("test: stopProtocol after 2\n", d:stderr(), 1, true)
  end)

  it("beside TCP: the TCP line is unchanged and first; each port is served; factory.ports lists both", function()
    local src = [[
local P = {}
function P:dataReceived(data) self.transport:write("tcp:" .. data) end
function P:datagramReceived(data, host, port)
  local t = {}
  for _, a in ipairs(self.factory.ports) do t[#t + 1] = a.type .. " " .. a.port end
  self.transport:write("udp:" .. data .. ":" .. table.concat(t, ","), host, port)
end
return { protocol = P, port = 1060, listen = { { udp = true, port = 0 } } }
]]
    local d = H.start_logged_daemon { script = H.write_script(src) }
    assert.matches("^reactord: listening on 127%.0%.0%.1:%d+$", d.first_line)
    local second = d:next_line()
    local uport = tonumber(second:match("^reactord: listening on udp 127%.0%.0%.1:(%d+)$"))
    assert.truthy(uport, second)
    local s = assert(H.connect(d.port))
    assert(H.send_all(s, "hi"))
    assert.are.equal("tcp:hi", H.read_exact(s, 6))
    s:close()
    local u = udp_client(uport)
    assert.are.equal(("udp:x:TCP %d,UDP %d"):format(d.port, uport), ask(u, "x"))
    u:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("a port in use is one line naming it as udp, and exit 1", function()
    local taken = assert(socket.udp())
    assert(taken:setsockname("127.0.0.1", 0))
    local _, port = taken:getsockname()
    local code, out, err = H.run_daemon { H.write_script(counter("a")), "-p", tostring(port) }
    taken:close()
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal(("reactord: cannot listen on udp 127.0.0.1:%d: EADDRINUSE: address already in use\n"):format(port), err)
  end)

  it("SIGHUP reloads the datagram protocol: the next datagram runs the new class, its state kept", function()
    local path = H.write_script(counter("a"))
    local d = H.start_logged_daemon { script = path }
    local u = udp_client(d.port)
    assert.are.equal("a1:x", ask(u, "x"))
    assert.are.equal("a2:y", ask(u, "y"))
    H.write_file(path, counter("b"))
    assert.is_true(d:signal("HUP"))
    assert.truthy(d:wait_line("^reactord: reloaded ", 10))
    assert.are.equal("b3:z", ask(u, "z")) -- new code, same self.n
    -- a broken version changes nothing
    H.write_file(path, "return { protocol = { dataReceived = 1 }, udp = true }")
    assert.is_true(d:signal("HUP"))
    assert.truthy(d:wait_line("^reactord: reload failed, still serving generation 2: ", 10))
    assert.are.equal("b4:w", ask(u, "w"))
    u:close()
    assert.are.equal(0, (d:stop()))
    assert.matches("test: stopProtocol after 4\n", d:stderr(), 1, true)
  end)

  it("--watch reaches it too, and migrate runs once on the port's object", function()
    local path = H.write_script(counter("a"))
    local d = H.start_logged_daemon { script = path, args = { "--watch" } }
    local u = udp_client(d.port)
    assert.are.equal("a1:x", ask(u, "x"))
    H.save_by_rename(path, counter("c", "function P:migrate(old) self.n = self.n + 100 end"))
    assert.truthy(d:wait_line("^reactord: reloaded ", 10))
    assert.are.equal("c102:y", ask(u, "y"))
    assert.are.equal("c103:z", ask(u, "z"))
    u:close()
    assert.are.equal(0, (d:stop()))
  end)

  it("a reload that adds a udp port opens it (with its line) under the new class; one that drops it closes it", function()
    local v1 = [[
local P = {}
function P:dataReceived(data) self.transport:write(data) end
%s
return { protocol = P, port = 1060, %s }
]]
    local path = H.write_script(v1:format("", ""))
    local d = H.start_logged_daemon { script = path }
    local v2 = v1:format([[
function P:datagramReceived(data, host, port) self.transport:write("v2:" .. data, host, port) end
function P:stopProtocol() io.stderr:write("test: dropped\n") end]], "listen = { { udp = true, port = 0 } }")
    H.write_file(path, v2)
    assert.is_true(d:signal("HUP"))
    local line = d:wait_line("^reactord: listening on udp ", 10)
    local uport = tonumber(line:match(":(%d+)$"))
    assert.truthy(d:wait_line("^reactord: reloaded ", 10))
    local u = udp_client(uport)
    assert.are.equal("v2:q", ask(u, "q"))
    u:close()
    -- the port's object runs the newest class, so that one's stopProtocol runs
    H.write_file(path, v1:format([[function P:stopProtocol() io.stderr:write("test: dropped\n") end]], ""))
    assert.is_true(d:signal("HUP"))
    assert.truthy(d:wait_line("^test: dropped$", 10))
    assert.truthy(d:wait_line("^reactord: reloaded ", 10))
    assert.are.equal(0, (d:stop()))
  end)

  it("an error in stopProtocol at shutdown is logged with file:line, and the daemon still exits 0", function()
    local src = counter("a", "function P:stopProtocol() error('cannot flush') end")
    local path = H.write_script(src)
    local d = H.start_logged_daemon { script = path }
    assert.are.equal(0, (d:stop()))
    assert.matches("reactord: error in stopProtocol: " .. path:gsub("%p", "%%%0") .. ":%d+: cannot flush", d:stderr())
    assert.matches("reactord: stopped", d:stderr(), 1, true)
  end)

  it("a failing startProtocol stops the start with file:line and exit 1", function()
    local path = H.write_script(counter("a", "function P:startProtocol() error('no socket for you') end"))
    local code, out, err = H.run_daemon { path, "-p", "0" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^reactord: in startProtocol: " .. path:gsub("%p", "%%%0") .. ":%d+: no socket for you\n$", err)
  end)
end)

describe("reactord --check with udp", function()
  after_each(H.cleanup)

  local function check(src)
    local code, out, err = H.run_daemon { "--check", H.write_script(src) }
    return code, out .. err
  end

  it("accepts a udp script", function()
    local code, out = check(counter("a"))
    assert.are.equal(0, code, out)
    assert.matches(": ok\n$", out)
  end)

  it("names the field of a bad udp value, a TCP limit on a udp port, a missing datagramReceived", function()
    local code, out = check("return { protocol = { datagramReceived = function() end }, udp = 'yes' }")
    assert.are.equal(1, code)
    assert.matches(": 'udp' must be true %(a UDP port%) or false %(TCP%) %(it is the string \"yes\"%)\n$", out)
    code, out = check([[return { protocol = { datagramReceived = function() end }, udp = true,
      listen = { { port = 0, udp = true, maxConnections = 3 } } }]])
    assert.are.equal(1, code)
    assert.matches(": 'listen%[1%]%.maxConnections' is for TCP listeners; a udp port has no connections to limit", out)
    code, out = check("return { protocol = { dataReceived = function() end }, listen = { { udp = true, port = 0 } } }")
    assert.are.equal(1, code)
    assert.matches(": the protocol has no datagramReceived%(data, host, port%), which a udp port calls\n$", out)
    code, out = check("return { protocol = { datagramReceived = function() end } }")
    assert.are.equal(1, code)
    assert.matches("lineReceived %(it has datagramReceived: add udp = true to serve it over UDP%)\n$", out)
    code, out = check("return { protocol = { datagramReceived = function() end }, listen = { { udp = 1, port = 0 } } }")
    assert.are.equal(1, code)
    assert.matches(": 'listen%[1%]%.udp' must be true", out)
  end)

  it("warns about a misspelt udp field", function()
    local code, out = check("return { protocol = { datagramReceived = function() end }, udp = true, UDP = true }")
    assert.are.equal(0, code, out)
    assert.matches("'UDP' is not a factory field reactord knows; did you mean 'udp'%?", out)
  end)
end)
