-- udp_tstamp_client.lua: seed 002's interactive UDP client, on the reactor module.
--
--   lua5.4 examples/udp_tstamp_client.lua [-p PORT] [-t SECONDS] [HOST]
--                                         (default 127.0.0.1:21111, 5 s)
--
-- Prompts "> ", sends each line typed (without its newline) as one
-- datagram, prints the answer, and prompts again; an empty line, or the end
-- of stdin, quits. Lines are taken one at a time, as the seed's input()
-- does. Where the seed would wait for ever, this one says so and exits 1
-- when no answer comes within -t seconds, or when nobody listens on the
-- port (the socket is connected, so the kernel reports the refusal:
-- connectionRefused). HOST must be a numeric address (UDP sends need one).
-- The seed's client quits after sending a lone space (its way to stop the
-- server); udp_tstamp.lua does not stop for it, so this client sends it as
-- any other line.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local NAME = "udp_tstamp_client"

local function usage(msg)
  io.stderr:write(NAME, ": ", msg, "\nusage: udp_tstamp_client.lua [-p PORT] [-t SECONDS] [HOST]\n")
  os.exit(2)
end

local host, port, patience = nil, 21111, 5
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "-p" then
    port = math.tointeger(tonumber(arg[i + 1])) or usage("-p needs a port number")
    i = i + 1
  elseif a == "-t" then
    patience = tonumber(arg[i + 1]) or usage("-t needs a number of seconds")
    i = i + 1
  elseif a:sub(1, 1) == "-" then
    usage("unknown option " .. a)
  elseif host then
    usage("unexpected argument " .. a)
  else
    host = a
  end
  i = i + 1
end
host = host or "127.0.0.1"
if not (host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)) then
  usage(("HOST must be a numeric address such as 127.0.0.1 or ::1 (got %s)"):format(host))
end
local where = ((host:find(":", 1, true) and "[%s]:%d") or "%s:%d"):format(host, port)

local status = 0
local console -- stdin/stdout
local queue, eof = {}, false
local waiting, timer -- the line sent, and the deadline of its answer

local Client = {}

local function fail(msg)
  io.stderr:write(NAME, ": ", msg, "\n")
  status = 1
end

-- one exit for every way out: stdout is flushed (loseConnection), then stop
local function finish()
  if timer and timer:active() then timer:cancel() end
  Client.transport:stopListening()
  console.transport:loseConnection()
end

local function nextline()
  if waiting then return end
  local line = table.remove(queue, 1)
  if line == nil then
    if eof then finish() end
    return
  end
  if line == "" then return finish() end
  waiting = line
  Client.transport:write(line)
  timer = reactor.callLater(patience, function()
    fail(("no answer from udp %s within %g s"):format(where, patience))
    finish()
  end)
end

function Client:startProtocol()
  assert(self.transport:connect(host, port))
end

function Client:datagramReceived(data)
  if not waiting then return end -- a late answer to nothing we wait for
  timer:cancel()
  waiting = nil
  console.transport:write(data .. "\n> ")
  nextline()
end

function Client:connectionRefused()
  fail(("nobody listens on udp %s (ECONNREFUSED)"):format(where))
  finish()
end

-- stdin, split into lines here rather than by LineReceiver: a last line
-- without its newline is a line too (as input() returns it at the end)
local Console = {}

function Console:connectionMade()
  console, self.buf = self, ""
  self.transport:write("> ")
end

function Console:dataReceived(data)
  local buf, rest = self.buf .. data, 1
  for line, after in buf:gmatch("([^\n]*)\n()") do
    queue[#queue + 1] = line:gsub("\r$", "")
    rest = after
  end
  self.buf = buf:sub(rest)
  nextline()
end

function Console:readConnectionLost() -- stdin ended; stdout stays open
  if self.buf ~= "" then queue[#queue + 1] = self.buf end
  eof = true
  nextline()
end

function Console:connectionLost()
  reactor.stop()
end

reactor.stdio(Console)
local ok, msg = reactor.listenUDP(0, Client, host:find(":", 1, true) and "::1" or "127.0.0.1")
if not ok then
  io.stderr:write(NAME, ": cannot open a UDP socket: ", msg, "\n")
  os.exit(1)
end
reactor.run()
os.exit(status)
