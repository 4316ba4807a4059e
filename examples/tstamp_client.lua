-- tstamp_client.lua: seed 002's interactive TCP client, on the reactor module.
--
--   lua5.4 examples/tstamp_client.lua [-p PORT] [HOST]     (default 127.0.0.1:21111)
--
-- Prompts "> ", sends each line typed (without its newline) on one
-- connection, prints the server's answer, and prompts again; an empty line,
-- or the end of stdin, quits. Lines are taken one at a time, as the seed's
-- input() does, even when a pipe brings them all at once: stdin
-- (reactor.stdio, Twisted's StandardIO) and the socket are watched by the
-- same loop, and the next line waits in a queue until its answer is in.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local NAME = "tstamp_client"

local function usage(msg)
  io.stderr:write(NAME, ": ", msg, "\nusage: tstamp_client.lua [-p PORT] [HOST]\n")
  os.exit(2)
end

local host, port = nil, 21111
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "-p" then
    port = math.tointeger(tonumber(arg[i + 1])) or usage("-p needs a port number")
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

local status = 0
local console -- stdin/stdout
local server -- the connection's protocol, once it is up
local queue, eof = {}, false
local quitting = false

local function fail(msg)
  io.stderr:write(NAME, ": ", msg, "\n")
  status = 1
end

-- one exit for every way out: stdout is flushed (loseConnection), then stop
local function finish()
  console.transport:loseConnection()
end

local function quit()
  quitting = true
  if server then server.transport:loseConnection() else finish() end
end

-- send the next queued line, unless one is waiting for its answer
local function nextline()
  if not server or server.waiting then return end
  local line = table.remove(queue, 1)
  if line == nil then
    if eof then quit() end
    return
  end
  if line == "" then return quit() end
  server.waiting, server.answer = line, ""
  server.transport:write(line)
end

-- stdin, split into lines here rather than by LineReceiver: a last line
-- without its newline is a line too (as input() returns it at the end)
local Console = {}

function Console:connectionMade()
  console, self.buf = self, ""
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

local Client = {}

function Client:connectionMade()
  server = self
  console.transport:write("> ")
  nextline()
end

-- The answer ends with the line sent ("[<ctime>] <line>"); it may come in
-- pieces, as any TCP read may.
function Client:dataReceived(data)
  if not self.waiting then return end
  self.answer = self.answer .. data
  if #self.answer > #self.waiting and self.answer:sub(-#self.waiting) == self.waiting then
    console.transport:write(self.answer .. "\n> ")
    self.waiting = nil
    nextline()
  end
end

function Client:connectionLost(reason)
  server = nil
  if not quitting then fail("the server closed the connection (" .. reason.type .. ")") end
  finish()
end

local factory = reactor.ClientFactory { protocol = Client }
function factory:clientConnectionFailed(connector, reason)
  local d = connector:getDestination()
  fail(("cannot connect to %s:%d: %s"):format(d.host, d.port, reason.message))
  finish()
end

reactor.stdio(Console)
reactor.connectTCP(host, port, factory, 10)
reactor.run()
os.exit(status)
