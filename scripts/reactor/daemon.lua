-- reactor.daemon: what `reactord SCRIPT` does once its options are parsed.
-- User errors are raised as plain strings; main.c prints "reactord: " .. msg.
local reactor = require "reactor"
local core = require "reactor.core"
local log = require "reactor.log"
local portname = require("reactor.service").portname

local M = {}

-- SIGTERM/SIGINT: stop accepting, ask every connection to finish
-- (shutdownRequested(deadline)), wait up to `grace` seconds for them to end,
-- then abort the rest. A second signal stops at once.
local function graceful(service, grace)
  local stopping = false
  return function()
    if stopping then
      core.abortAll()
      reactor.stop()
      return
    end
    stopping = true
    if service then service:close() end
    local deadline = reactor.now() + grace
    for _, p in ipairs(core.connections()) do
      local ask = p.shutdownRequested
      if ask then
        local ok, err = xpcall(ask, core.traceback, p, deadline)
        if not ok then
          log.callbackError("shutdownRequested", err)
          core.failConnection(p.transport, core.errorMessage(err))
        end
      end
    end
    local function done() return core._stats().open == 0 end
    if done() then return reactor.stop() end
    local waiting = reactor.LoopingCall(function() if done() then reactor.stop() end end)
    waiting:start(0.02, false)
    reactor.callLater(grace, function()
      local left = core._stats().open
      if left > 0 then
        log.log(("grace period over: aborting %d connection%s"):format(left, left == 1 and "" or "s"))
      end
      core.abortAll()
      reactor.stop()
    end)
  end
end

-- The daemon owns its Lua state, so coroutines resumed by scripts go through
-- core._resume: the watchdog then knows which coroutine a stuck callback is
-- spinning in and can stop it there too. wrap is rebuilt on top of it.
local function watch_coroutines()
  local resume = core._resume
  coroutine.resume = resume -- luacheck: ignore 122
  local create = coroutine.create
  local function check(ok, ...)
    if ok then return ... end
    error((...), 0)
  end
  coroutine.wrap = function(f) -- luacheck: ignore 122
    local co = create(f)
    return function(...) return check(resume(co, ...)) end
  end
end

-- A worker of `reactord --workers N` (opt.link, worker_link.c): its
-- listening sockets come from the master, which prints their lines; it
-- tells the master when it serves, beats every 100 ms with its figures, and
-- answers each reload. The master's death (getppid changes) drains it.
local function worker(link, service, stop)
  local t = reactor.LoopingCall(function()
    if link.orphaned() then return stop() end
    local s = core._stats()
    link.send(("H %d %d %d %d"):format(s.open, s.reads, s.memory, service.generation))
  end)
  t:start(0.1, false)
  link.send("U")
  return t
end

local function keys(service)
  local list = {}
  for key in pairs(service.listeners) do list[#list + 1] = key end
  return "K " .. table.concat(list, "\n")
end

function M.main(opt)
  -- reactor.worker: which worker this process is, of how many; a script
  -- that splits work by worker reads it at load.
  local link = opt.link
  reactor.worker = { id = link and link.id or 1, count = link and link.count or opt.workers or 1 }
  if opt.check then
    local ok, err = reactor.check(opt.script)
    if not ok then error(err, 0) end
    io.stdout:write("reactord: ", opt.script, ": ok\n")
    return 0
  end
  core.setLimits { scriptTimeout = opt.scriptTimeout, maxConnections = opt.maxConnections }
  watch_coroutines()

  -- handlers first: a signal may come the moment the listening line is out
  local service
  local stop = function() reactor.stop() end
  reactor.onSignal("SIGINT", function(...) return stop(...) end)
  reactor.onSignal("SIGTERM", function(...) return stop(...) end)
  reactor.onSignal("SIGHUP", function()
    if not service then return end
    local ok, why = service:reload()
    if link then
      link.send(ok and ("r 1 %d"):format(service.generation) or "r 0 " .. tostring(why))
      if ok then link.send(keys(service)) end
    end
  end)
  -- The first line on stdout is the listening line (documented; scripts and
  -- tests wait for it), yet the script's top level, which may print, runs
  -- first: main.c holds fd 1 back until the listening lines are out.
  local held = opt.stdout and {}
  if held then opt.stdout.hold() end
  local err
  service, err = reactor.serve(opt.script, {
    host = opt.host,
    port = opt.port,
    idleTimeout = opt.idleTimeout,
    listenTCP = link and function(port, factory, o)
      local fd, msg = link.listen(o.key, o.interface or "127.0.0.1", port, o.backlog or 511)
      if not fd then return nil, msg end
      return core.adoptTCP(fd, factory, o)
    end,
    listenUDP = link and function()
      return nil, "--workers serves TCP ports only so far (run a script with UDP ports without --workers)"
    end,
    onListen = function(addr)
      if link then return end -- the master prints it, once for all workers
      local line = ("reactord: listening on %s\n"):format(portname(addr))
      if held then
        held[#held + 1] = line
      else -- a port a reload opened
        io.stdout:write(line)
        io.stdout:flush()
      end
    end,
  })
  if held then
    opt.stdout.release(table.concat(held))
    held = nil
  end
  if not service then error(err, 0) end
  stop = graceful(service, opt.grace or 5)
  if link then worker(link, service, function() return stop() end) end

  local watcher
  local function watch()
    if watcher then watcher:close() end
    local msg
    watcher, msg = core.watch(service:files(), function() service:reload() end)
    if not watcher then log.log("--watch: " .. msg) end
  end
  if opt.watch then
    service.onReload = watch -- a new version may require other files
    watch()
  end

  reactor.run()
  for _, name in ipairs { "SIGINT", "SIGTERM", "SIGHUP" } do reactor.onSignal(name, nil) end
  if watcher then watcher:close() end
  service:close()
  log.log("stopped")
  return 0
end

return M
