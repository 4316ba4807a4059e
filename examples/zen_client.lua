-- zen_client.lua: the seed's client.py, on the reactor module.
--
--   lua5.4 examples/zen_client.lua [-p PORT] [-e] HOST
--
-- Asks the three aphorisms in random order on one connection and prints
-- each question with its answer. -e sends half a question and hangs up, to
-- show the server shrugging off a client that leaves mid-question.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local function usage(msg)
  io.stderr:write("zen_client: ", msg, "\nusage: zen_client.lua [-p PORT] [-e] HOST\n")
  os.exit(2)
end

local host, port, cause_error = nil, 1060, false
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "-p" then
    port = tonumber(arg[i + 1]) or usage("-p needs a port number")
    i = i + 1
  elseif a == "-e" then
    cause_error = true
  elseif a:sub(1, 1) == "-" then
    usage("unknown option " .. a)
  elseif host then
    usage("unexpected argument " .. a)
  else
    host = a
  end
  i = i + 1
end
if not host then usage("missing HOST") end

local questions = { "Beautiful is better than?", "Explicit is better than?", "Simple is better than?" }
local status = 0

local Client = {}

function Client:connectionMade()
  if cause_error then
    self.transport:write("Beautiful is better") -- and never the "?"
    self.transport:loseConnection()
    return
  end
  math.randomseed(os.time())
  self.todo = {}
  for _, q in ipairs(questions) do table.insert(self.todo, math.random(#self.todo + 1), q) end
  self.answer = ""
  self:ask()
end

function Client:ask()
  self.question = table.remove(self.todo)
  if self.question then
    self.transport:write(self.question)
  else
    self.transport:loseConnection()
  end
end

function Client:dataReceived(data)
  self.answer = self.answer .. data
  local dot = self.answer:find(".", 1, true) -- answers end at "."
  while dot and self.question do
    print(self.question, self.answer:sub(1, dot))
    self.answer = self.answer:sub(dot + 1)
    self:ask()
    dot = self.answer:find(".", 1, true)
  end
end

function Client:connectionLost(reason)
  if self.question then
    io.stderr:write("zen_client: connection lost before the answer: ", reason.message, "\n")
    status = 1
  end
  reactor.stop()
end

local factory = reactor.ClientFactory { protocol = Client }
function factory:clientConnectionFailed(connector, reason)
  local d = connector:getDestination()
  io.stderr:write(("zen_client: cannot connect to %s:%d: %s\n"):format(d.host, d.port, reason.message))
  status = 1
  reactor.stop()
end

reactor.connectTCP(host, port, factory, 10)
reactor.run()
os.exit(status)
