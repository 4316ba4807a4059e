-- reactor.daemon: what `reactord SCRIPT` does once its options are parsed.
-- User errors are raised as plain strings; main.c prints "reactord: " .. msg.
local reactor = require "reactor"

local M = {}

local function hostport(addr)
  if addr.host:find(":", 1, true) then return ("[%s]:%d"):format(addr.host, addr.port) end
  return ("%s:%d"):format(addr.host, addr.port)
end

function M.main(opt)
  if opt.check then
    local ok, err = reactor.check(opt.script)
    if not ok then error(err, 0) end
    io.stdout:write("reactord: ", opt.script, ": ok\n")
    return 0
  end
  local service, err = reactor.serve(opt.script, {
    host = opt.host,
    port = opt.port,
    onListen = function(addr)
      io.stdout:write("reactord: listening on ", hostport(addr), "\n")
      io.stdout:flush()
    end,
  })
  if not service then error(err, 0) end

  local watcher
  local function watch()
    if watcher then watcher:close() end
    local msg
    watcher, msg = reactor.core.watch(service:files(), function() service:reload() end)
    if not watcher then io.stderr:write("reactord: --watch: ", msg, "\n") end
  end
  if opt.watch then
    service.onReload = watch -- a new version may require other files
    watch()
  end

  local function stop() reactor.stop() end
  reactor.onSignal("SIGINT", stop)
  reactor.onSignal("SIGTERM", stop)
  reactor.onSignal("SIGHUP", function() service:reload() end)
  reactor.run()
  for _, name in ipairs { "SIGINT", "SIGTERM", "SIGHUP" } do reactor.onSignal(name, nil) end
  if watcher then watcher:close() end
  service:close()
  io.stderr:write("reactord: stopped\n")
  return 0
end

return M
