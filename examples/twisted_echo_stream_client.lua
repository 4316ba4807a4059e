-- twisted_echo_stream_client.lua: seed 003's Twisted client, written with
-- coroutine streams: the twin of twisted_echo_client.lua, same behaviour.
--
--   lua5.4 examples/twisted_echo_stream_client.lua [-p PORT] [HOST]   (default 127.0.0.1:12345)
--
-- One task does what the seed's callbacks do, top to bottom: ask for a line
-- ("> "), announce it ("...send hello..."), send it, print the answer; an
-- empty line (or the end of stdin) hangs up; the reactor stops when the
-- connection is lost or cannot be made. The console is a stream too
-- (reactor.stdio()), so the loop never blocks the reactor.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"

local NAME = "twisted_echo_stream_client"

local function usage(msg)
  io.stderr:write(NAME, ": ", msg, "\nusage: twisted_echo_stream_client.lua [-p PORT] [HOST]\n")
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

-- the answer ends with what was sent ("[<ctime>] <data>"); it may come in pieces
local function answer(s, sent)
  local got = ""
  repeat
    local piece = s:read(65536)
    if not piece then return nil end
    got = got .. piece
  until #got > #sent and got:sub(-#sent) == sent
  return got
end

reactor.spawn(function()
  local console = reactor.stdio()
  local s, err = reactor.connect(host, port, { timeout = 10 })
  if not s then
    io.stderr:write(("%s: cannot connect to %s:%d: %s\n"):format(NAME, host, port, err))
    status = 1
  else
    while true do
      console:write("> ")
      local line = console:readline()
      if not line or line == "" then break end
      console:write(("...send %s...\n"):format(line))
      s:write(line)
      local got = answer(s, line)
      if not got then break end -- the server hung up (the seed's clientConnectionLost)
      console:write(got .. "\n")
    end
    s:close()
  end
  console:close() -- flushes what is left on stdout
  reactor.stop()
end)
reactor.run()
os.exit(status)
