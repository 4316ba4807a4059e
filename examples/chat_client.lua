-- chat_client.lua: seed 001's interactive chat client (ChatClient), on the
-- reactor module.
--
--   lua5.4 examples/chat_client.lua [-p PORT] NAME [HOST]    (default 127.0.0.1:8800)
--
-- Joins the room of examples/chat.lua as NAME ("NAME: alice"), learns its
-- address from the answer ("CLIENT: 127.0.0.1") and prompts
-- "[alice@127.0.0.1]> ". Each line typed (stripped, as the seed's
-- readline().strip()) is sent, an empty one is not; whatever the room sends
-- is printed, then the prompt again. stdin (reactor.stdio, Twisted's
-- StandardIO) and the socket are watched by the same loop, as the seed's
-- select() watches both. The end of stdin leaves the room (exit 0); a room
-- that closes the connection, or refuses the name, is said on stderr (exit 1).

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local PROG = "chat_client"

local function usage(msg)
  io.stderr:write(PROG, ": ", msg, "\nusage: chat_client.lua [-p PORT] NAME [HOST]\n")
  os.exit(2)
end

local name, host, port = nil, nil, 8800
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "-p" then
    port = math.tointeger(tonumber(arg[i + 1])) or usage("-p needs a port number")
    i = i + 1
  elseif a:sub(1, 1) == "-" then
    usage("unknown option " .. a)
  elseif not name then
    name = a
  elseif not host then
    host = a
  else
    usage("unexpected argument " .. a)
  end
  i = i + 1
end
if not name then usage("NAME is missing") end
host = host or "127.0.0.1"

local status = 0
local console -- stdin/stdout
local room -- the connection's protocol, once the room has answered
local queue, eof = {}, false -- lines typed before the answer; stdin ended
local quitting = false

local function fail(msg)
  io.stderr:write(PROG, ": ", msg, "\n")
  status = 1
end

-- one exit for every way out: stdout is flushed (loseConnection), then stop
local function finish()
  console.transport:loseConnection()
end

local function leave()
  quitting = true
  if room then room.transport:loseConnection() else finish() end
end

local function say(line)
  line = line:match("^%s*(.-)%s*$")
  if line ~= "" then room:sendString(line) end
  console.transport:write(room.prompt)
end

local Console = {}

function Console:connectionMade()
  console, self.buf = self, ""
end

function Console:dataReceived(data)
  local buf, rest = self.buf .. data, 1
  for line, after in buf:gmatch("([^\n]*)\n()") do
    if room then say(line) else queue[#queue + 1] = line end
    rest = after
  end
  self.buf = buf:sub(rest)
end

function Console:readConnectionLost() -- stdin ended; stdout stays open
  if self.buf ~= "" then
    if room then say(self.buf) else queue[#queue + 1] = self.buf end
    self.buf = ""
  end
  eof = true
  if room then leave() end
end

function Console:connectionLost()
  reactor.stop()
end

local Client = reactor.Int32StringReceiver:extend()

function Client:connectionMade()
  self:sendString("NAME: " .. name)
end

function Client:stringReceived(s)
  if room then
    console.transport:write(s .. "\n" .. self.prompt)
    return
  end
  local addr = s:match("^CLIENT: (.*)$")
  if not addr then
    fail(s:match("^ERROR: (.*)$") and ("the room refused the name: " .. s:sub(8))
      or ("the room answered %q, not \"CLIENT: <address>\""):format(s))
    quitting = true
    return self.transport:loseConnection()
  end
  room = self
  self.prompt = "[" .. name .. "@" .. addr .. "]> "
  console.transport:write(("Now connected to chat server@ port %d\n%s"):format(port, self.prompt))
  for _, line in ipairs(queue) do say(line) end
  queue = {}
  if eof then leave() end
end

function Client:connectionLost(reason)
  room = nil
  if not quitting then
    console.transport:write("\n")
    fail("the room closed the connection (" .. reason.type .. ")")
  end
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
