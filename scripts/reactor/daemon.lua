-- reactor.daemon: what `reactord SCRIPT` does once its options are parsed.
-- User errors are raised as plain strings; main.c prints "reactord: " .. msg.
local reactor = require "reactor"

local M = {}

local function hostport(host, port)
  if host:find(":", 1, true) then return ("[%s]:%d"):format(host, port) end
  return ("%s:%d"):format(host, port)
end

function M.main(opt)
  local factory, err = reactor.loadService(opt.script)
  if not factory then error(err, 0) end
  if opt.check then
    io.stdout:write("reactord: ", opt.script, ": ok\n")
    return 0
  end
  local host = opt.host or factory.host or "127.0.0.1"
  local port = opt.port or factory.port or 1060
  local listener, msg = reactor.listenTCP(port, factory, host)
  if not listener then
    error(("cannot listen on %s: %s"):format(hostport(host, port), (msg:gsub(" %(.*%)$", ""))), 0)
  end
  local addr = listener:getHost()
  io.stdout:write("reactord: listening on ", hostport(addr.host, addr.port), "\n")
  io.stdout:flush()
  local function stop() reactor.stop() end
  reactor.onSignal("SIGINT", stop)
  reactor.onSignal("SIGTERM", stop)
  reactor.run()
  reactor.onSignal("SIGINT", nil)
  reactor.onSignal("SIGTERM", nil)
  factory:stopFactory()
  io.stderr:write("reactord: stopped\n")
  return 0
end

return M
