-- twisted_echo_client.lua: seed 003's Twisted TCP client (TWClientProtocol),
-- with callbacks, on the reactor module.
--
--   lua5.4 examples/twisted_echo_client.lua [-p PORT] [HOST]   (default 127.0.0.1:12345)
--
-- As the seed: at connectionMade and after each answer it asks for a line
-- ("> "); a line is announced ("...send hello...") and sent, the answer is
-- printed; an empty line (or the end of stdin) loses the connection, and
-- the factory stops the reactor when the connection is lost or fails
-- (clientConnectionLost = clientConnectionFailed = reactor.stop). The seed
-- blocks the reactor in input(); here stdin is a transport of the same loop
-- (reactor.stdio), and lines that arrive together wait in a queue.
-- Its coroutine-streams twin is twisted_echo_stream_client.lua.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local NAME = "twisted_echo_client"

local function usage(msg)
  io.stderr:write(NAME, ": ", msg, "\nusage: twisted_echo_client.lua [-p PORT] [HOST]\n")
  os.exit(2)
end

local host, port = nil, 12345
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
local stdout -- the console's transport: prompts and answers go out through it
local lines, eof, want = {}, false, nil -- `want`: the protocol waiting for a line

-- stdin, split into lines here rather than by LineReceiver: a last line
-- without its newline is a line too (as input() returns it at the end)
local Console = {}

local function feed()
  if not want then return end
  local line = table.remove(lines, 1)
  if line == nil and not eof then return end
  local p = want
  want = nil
  p:gotLine(line or "")
end

function Console:connectionMade()
  stdout, self.buf = self.transport, ""
end
function Console:dataReceived(data)
  local buf, rest = self.buf .. data, 1
  for line, after in buf:gmatch("([^\n]*)\n()") do
    lines[#lines + 1] = line:gsub("\r$", "")
    rest = after
  end
  self.buf = buf:sub(rest)
  feed()
end
function Console:readConnectionLost() -- stdin ended; stdout stays open
  if self.buf ~= "" then lines[#lines + 1] = self.buf end
  eof = true
  feed()
end

local TWClientProtocol = reactor.Protocol:extend()

-- the seed's sendData: ask for a line, send it, or hang up on an empty one
function TWClientProtocol:sendData()
  stdout:write("> ")
  want = self
  feed()
end

function TWClientProtocol:gotLine(data)
  if data ~= "" then
    stdout:write(("...send %s...\n"):format(data))
    self.sent, self.answer = data, ""
    self.transport:write(data)
  else
    self.transport:loseConnection()
  end
end

function TWClientProtocol:connectionMade()
  self:sendData()
end

-- The answer ends with what was sent ("[<ctime>] <data>"); it may come in
-- pieces, as any TCP read may.
function TWClientProtocol:dataReceived(data)
  if not self.sent then return end
  self.answer = self.answer .. data
  if #self.answer > #self.sent and self.answer:sub(-#self.sent) == self.sent then
    stdout:write(self.answer .. "\n")
    self.sent = nil
    self:sendData()
  end
end

local TWClientFactory = reactor.ClientFactory { protocol = TWClientProtocol }

function TWClientFactory:clientConnectionLost(connector, reason) -- luacheck: ignore connector reason
  stdout:loseConnection() -- flushes what is left, then Console:connectionLost stops the reactor
end

function TWClientFactory:clientConnectionFailed(connector, reason)
  local d = connector:getDestination()
  io.stderr:write(("%s: cannot connect to %s:%d: %s\n"):format(NAME, d.host, d.port, reason.message))
  status = 1
  stdout:loseConnection()
end

function Console:connectionLost() reactor.stop() end

reactor.stdio(Console)
reactor.connectTCP(host, port, TWClientFactory, 10)
reactor.run()
os.exit(status)
