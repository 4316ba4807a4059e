-- spec/helpers/init.lua — shared helpers for the reactord specs.
--
-- Usable both as `require "spec.helpers"` (run busted from the repo root) and
-- as busted's --helper.  Nothing here sleeps: readiness is learnt from the
-- daemon's first stdout line, and every blocking read has a deadline (socket
-- timeout).  Every daemon runs under `timeout --foreground`, so a daemon that
-- hangs (never prints its port line, ignores SIGTERM) is killed after
-- REACTORD_DEADLINE seconds (default 60) instead of hanging the suite.
--
-- Environment:
--   REACTORD          daemon binary (default build/reactord)
--   REACTORD_WRAPPER  command prefixed to the daemon, e.g.
--                     "valgrind -q --error-exitcode=99 --leak-check=full"
--   REACTORD_DEADLINE seconds a daemon may live at most (default 60 for
--                     start_daemon, 20 for run_daemon)

local socket = require "socket"

local M = {}

M.SOCKET_TIMEOUT = tonumber(os.getenv("REACTORD_SOCKET_TIMEOUT")) or 10
M.DEADLINE = tonumber(os.getenv("REACTORD_DEADLINE")) or 60
-- for commands that should exit at once (run_daemon)
M.RUN_DEADLINE = tonumber(os.getenv("REACTORD_DEADLINE")) or 20

function M.binary()
  local b = os.getenv("REACTORD")
  if b == nil or b == "" then b = "build/reactord" end
  return b
end

function M.wrapper()
  local w = os.getenv("REACTORD_WRAPPER")
  if w == nil or w == "" then return nil end
  return w
end

-- POSIX-shell single quoting.
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w%./_:=,+-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function quote_all(list)
  local out = {}
  for i, a in ipairs(list) do out[i] = M.quote(a) end
  return table.concat(out, " ")
end

local has_timeout = os.execute("command -v timeout >/dev/null 2>&1") == true

-- the command prefix: deadline + optional wrapper + binary
local function prefix(deadline)
  local parts = {}
  if has_timeout then
    parts[#parts + 1] = "timeout --foreground -k 5 " .. tostring(deadline or M.DEADLINE)
  end
  if M.wrapper() then parts[#parts + 1] = M.wrapper() end
  parts[#parts + 1] = M.quote(M.binary())
  return table.concat(parts, " ")
end

---------------------------------------------------------------- temp files
local temps = {}

local function tmpname(suffix)
  local name = os.tmpname()          -- creates the file
  if suffix then
    os.remove(name)
    name = name .. suffix
  end
  temps[#temps + 1] = name
  return name
end
M.tmpname = tmpname

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  f:close()
end

-- write a throwaway protocol script, return its path (ends in .lua)
function M.write_script(source)
  local path = tmpname(".lua")
  write_file(path, source)
  return path
end

-- Run `source` in a child lua5.4 that requires this build's reactor.so.
-- opts.stdin: a shell command whose output is piped in; opts.stderr: take
-- stderr with stdout. Returns the output, then io.popen's close results.
function M.run_lua(source, opts)
  opts = opts or {}
  local build = os.getenv("REACTOR_BUILD") or "build"
  local path = M.write_script('package.cpath = os.getenv("REACTOR_BUILD") .. "/?.so;" .. package.cpath\n'
    .. source)
  local p = assert(io.popen(("%sREACTOR_BUILD=%s lua5.4 %s%s"):format(
    opts.stdin and opts.stdin .. " | " or "", M.quote(build), M.quote(path), opts.stderr and " 2>&1" or "")))
  local out = p:read("a")
  local ok, how, code = p:close()
  os.remove(path)
  return out, ok, how, code
end

-- 1-based line number of the first line of `source` containing `marker`
function M.line_of(source, marker)
  local n = 0
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find(marker, 1, true) then return n end
  end
  error("marker not found: " .. marker)
end

-- split into lines (no trailing empty line)
function M.lines(s)
  local t = {}
  for line in (s or ""):gmatch("([^\n]*)\n?") do t[#t + 1] = line end
  while #t > 0 and t[#t] == "" do t[#t] = nil end
  return t
end

------------------------------------------------------------------ daemons
local live = {}

-- pid of the (first) child of process `pid`, or nil
local function child_of(pid)
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid), "r")
  if not f then return nil end
  local s = f:read("a") or ""
  f:close()
  return tonumber(s:match("%d+"))
end

local Daemon = {}
Daemon.__index = Daemon

function Daemon:stderr()
  return M.read_file(self.errfile) or ""
end

-- send `sig` (default TERM), wait for the process to end.
-- returns exit code (number) and how ("exit" or "signal")
function Daemon:stop(sig)
  if self.status then return self.status, self.how end
  sig = sig or "TERM"
  -- signal the daemon itself (not the `timeout` watching it: a KILL sent to
  -- timeout would orphan the daemon); fall back to the process we started
  local target = self.pid or self.spawned
  os.execute("kill -" .. sig .. " " .. target .. " 2>/dev/null")
  -- drain stdout to EOF (the process has exited, or the deadline killed it),
  -- so a late stdout write cannot die of SIGPIPE; then pclose reaps it
  self.stdout_rest = self.handle:read("a")
  local _, how, code = self.handle:close()
  self.status, self.how = code, how
  for i, d in ipairs(live) do
    if d == self then table.remove(live, i) break end
  end
  return code, how
end

-- wait for the process to end by itself, sending no signal, and reap it;
-- returns what :stop returns. For a daemon that is already leaving (every
-- connection closed after a first SIGTERM): a signal sent to "reap" it may
-- land after it removed its handlers, and the default action kills it
-- (`signal 15`). Cannot hang: the deadline kills a daemon that never ends.
function Daemon:wait()
  return self:stop("0")
end

-- has the process ended? (only meaningful before :stop)
function Daemon:alive()
  if self.status then return false end
  return os.execute("kill -0 " .. (self.pid or self.spawned) .. " 2>/dev/null") == true
end

-- opts.script  : protocol script path (default examples/zen.lua)
-- opts.args    : extra args after the script; "-p 0" is added unless they
--                contain -p/--port
-- opts.argv    : full raw argument list instead of script+args (no -p added)
-- Learn host and port from the daemon's first line into d, or stop it and
-- raise: EOF on stdout means it ended (just reap it), anything else kills it.
local function listening(d, line, cmd, what)
  local host, port = (line or ""):match("^reactord: listening on (.+):(%d+)$")
  if not host then
    local code, how = d:stop(line == nil and "0" or "KILL")
    error(("daemon did not report listening (got %q, %s %s)\ncommand: %s\n%s:\n%s")
      :format(tostring(line), tostring(how), tostring(code), cmd, what, d:stderr()), 3)
  end
  d.host = host:match("^%[(.*)%]$") or host
  d.port = tonumber(port)
  return d
end

-- SCRIPT and the extra args, with "-p 0" unless the args name a port.
local function daemon_argv(opts)
  local argv = { opts.script or "examples/zen.lua" }
  local has_port = false
  for _, a in ipairs(opts.args or {}) do
    argv[#argv + 1] = a
    if a == "-p" or a == "--port" or a:match("^%-%-port=") or a:match("^%-p%d") then
      has_port = true
    end
  end
  if not has_port then
    argv[#argv + 1] = "-p"
    argv[#argv + 1] = "0"
  end
  return argv
end

function M.start_daemon(opts)
  opts = opts or {}
  local argv
  if opts.argv then
    argv = opts.argv
  else
    argv = daemon_argv(opts)
  end
  local errfile = tmpname()
  local cmd = prefix() .. " " .. quote_all(argv) .. " 2>" .. M.quote(errfile)
  local handle = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local spawned = assert(tonumber(handle:read("l")), "no pid")
  local d = setmetatable({ spawned = spawned, handle = handle,
                           errfile = errfile, cmd = cmd }, Daemon)
  if not has_timeout then d.pid = spawned end
  live[#live + 1] = d
  local line = handle:read("l")
  d.first_line = line
  if has_timeout then
    -- the daemon is the child of `timeout` (a wrapper such as valgrind
    -- runs the daemon in the same process)
    d.pid = child_of(spawned)
  end
  return listening(d, line, cmd, "stderr")
end

-- run the daemon for a command that exits at once.
-- returns exit code, stdout, stderr, how ("exit" / "signal")
function M.run_daemon(args)
  local out, err = tmpname(), tmpname()
  local cmd = prefix(M.RUN_DEADLINE) .. " " .. quote_all(args or {}) ..
              " </dev/null >" .. M.quote(out) .. " 2>" .. M.quote(err)
  local _, how, code = os.execute(cmd)
  return code, M.read_file(out) or "", M.read_file(err) or "", how
end

-- stop (KILL) every daemon still running, remove temp files.  Call from after_each / teardown.
function M.cleanup()
  for i = #live, 1, -1 do
    local d = live[i]
    if d then d:stop("KILL") end
  end
  live = {}
  for _, f in ipairs(temps) do os.remove(f) end
  temps = {}
end

------------------------------------------------------------------ clients
-- connect to host:port (default 127.0.0.1), socket has a deadline timeout
function M.connect(port, host, timeout)
  local s = assert(socket.tcp())
  s:settimeout(timeout or M.SOCKET_TIMEOUT)
  local ok, err = s:connect(host or "127.0.0.1", port)
  if not ok then
    s:close()
    return nil, err
  end
  return s
end

-- send all of `data`, returns true or nil, err, index of the last byte sent
function M.send_all(sock, data)
  local i = 1
  local guard = 0
  while i <= #data do
    guard = guard + 1
    if guard > #data + 1000 then return nil, "send made no progress" end
    local last, err, partial = sock:send(data, i)
    if last then return true end
    if err ~= "timeout" then return nil, err, partial end
    i = partial + 1
  end
  return true
end

-- read exactly n bytes: returns data or nil, err, partial
function M.read_exact(sock, n)
  return sock:receive(n)
end

-- read until the data received ends with suffix (at most `max` bytes):
-- returns data (including suffix) or nil, err, partial
function M.read_until(sock, suffix, max)
  max = max or 1024 * 1024
  local buf = {}
  local s
  for _ = 1, max do
    local c, err = sock:receive(1)
    if not c then return nil, err, table.concat(buf) end
    buf[#buf + 1] = c
    if c == suffix:sub(-1) then
      s = table.concat(buf)
      if s:sub(-#suffix) == suffix then return s end
    end
  end
  return nil, "too long", table.concat(buf)
end

-- read until the peer closes: returns everything read and the end reason
-- ("closed", "connection reset by peer", "timeout", ...)
function M.read_to_eof(sock, max)
  max = max or 64 * 1024 * 1024
  local buf, total = {}, 0
  while total < max do
    local data, err, partial = sock:receive(65536)
    local chunk = data or partial
    if chunk and #chunk > 0 then
      buf[#buf + 1] = chunk
      total = total + #chunk
    end
    if not data then return table.concat(buf), err end
  end
  return table.concat(buf), "too long"
end

-- true when the next read sees end of stream (or a reset), nothing else
function M.sees_eof(sock)
  local data, err, partial = sock:receive(1)
  if data then return false, "got data: " .. data end
  if err == "closed" or err == "connection reset by peer" then
    return true, err
  end
  return false, err .. " (partial " .. tostring(partial) .. ")"
end

-- a free TCP port on 127.0.0.1 (bound then released)
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

------------------------------------------------- daemons whose log is read
-- (added for spec/daemon/reload_spec.lua)
--
-- start_logged_daemon(opts): like start_daemon (same opts), but the daemon's
-- stderr goes into its stdout pipe (2>&1), so every line it prints, on either
-- stream, is read in the order it was written, with a blocking read. Waiting
-- for a log line is then waiting for an event, not polling a file. A read
-- cannot hang: the daemon runs under `timeout` (opts.deadline, default
-- REACTORD_DEADLINE), and when it ends the read sees EOF.
-- Nothing may be printed on stderr before the first `listening on` line.

local LoggedDaemon = setmetatable({}, { __index = Daemon })
LoggedDaemon.__index = LoggedDaemon

-- the next line the daemon printed (stdout or stderr), or nil at EOF
function LoggedDaemon:next_line()
  if self.status then return nil end
  local line = self.handle:read("l")
  if line then self.log[#self.log + 1] = line end
  return line
end

-- read lines until one matches the Lua pattern `pattern`; returns that line
-- and the lines read before it (a list), or nil, "EOF", those lines.
-- `max` bounds how many lines are read (default 10000).
function LoggedDaemon:wait_line(pattern, max)
  local skipped = {}
  for _ = 1, max or 10000 do
    local line = self:next_line()
    if not line then return nil, "EOF", skipped end
    if line:find(pattern) then return line, skipped end
    skipped[#skipped + 1] = line
  end
  return nil, "too many lines", skipped
end

-- everything printed so far (including what :stop drained)
function LoggedDaemon:stderr()
  local s = table.concat(self.log, "\n")
  if #self.log > 0 then s = s .. "\n" end
  return s .. (self.stdout_rest or "")
end

function LoggedDaemon:signal(sig)
  return os.execute("kill -" .. sig .. " " .. (self.pid or self.spawned) .. " 2>/dev/null") == true
end

-- the daemon's scheduler state letter from /proc/PID/stat ("S", "R", "T"...)
function LoggedDaemon:proc_state()
  local s = M.read_file(("/proc/%d/stat"):format(self.pid or self.spawned))
  return s and s:match("^%d+ %b() (%a)")
end

function M.start_logged_daemon(opts)
  opts = opts or {}
  local argv = daemon_argv(opts)
  local cmd = prefix(opts.deadline) .. " " .. quote_all(argv) .. " 2>&1"
  local handle = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local spawned = assert(tonumber(handle:read("l")), "no pid")
  local d = setmetatable({ spawned = spawned, handle = handle, cmd = cmd, log = {} }, LoggedDaemon)
  if not has_timeout then d.pid = spawned end
  live[#live + 1] = d
  local line = d:next_line()
  d.first_line = line
  if has_timeout then d.pid = child_of(spawned) end
  return listening(d, line, cmd, "output")
end

-- overwrite a file in place (truncate + write), as `>` does
function M.write_file(path, s)
  write_file(path, s)
end

-- save like an editor: write a temp file next to `path`, rename it over
function M.save_by_rename(path, s)
  local tmp = path .. ".swp~"
  write_file(tmp, s)
  assert(os.rename(tmp, path))
end

-- a fresh temporary directory; M.remove_tmpdirs() deletes it and its files
local tmpdirs = {}
function M.tmpdir()
  local p = assert(io.popen("mktemp -d", "r"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

function M.remove_tmpdirs()
  for _, dir in ipairs(tmpdirs) do
    if dir:match("^/tmp/") then os.execute("rm -rf " .. M.quote(dir)) end
  end
  tmpdirs = {}
end

------------------------------------ processes, limits, stalled peers
-- (added for spec/daemon/hostile_spec.lua and spec/daemon/shutdown_spec.lua)
--
-- Readings of /proc for a daemon's pid (Daemon.pid), a daemon started under
-- `ulimit -n`, a signal that does not wait, and a sender that learns the
-- peer stopped reading from a send making no progress within a deadline.

-- a "kB" field of /proc/PID/status (VmRSS, VmHWM, ...) as a number, or nil
function M.proc_status_kb(pid, field)
  local s = M.read_file(("/proc/%d/status"):format(pid))
  return s and tonumber(s:match("\n" .. field .. ":%s*(%d+) kB"))
end

-- resident memory of a process now (VmRSS), and its peak so far (VmHWM), MiB
function M.rss_mb(pid)
  local kb = M.proc_status_kb(pid, "VmRSS")
  return kb and kb / 1024
end

function M.peak_rss_mb(pid)
  local kb = M.proc_status_kb(pid, "VmHWM")
  return kb and kb / 1024
end

local clk_tck
-- CPU seconds (user + system) a process has used so far (/proc/PID/stat)
function M.cpu_seconds(pid)
  if not clk_tck then
    local p = io.popen("getconf CLK_TCK 2>/dev/null")
    clk_tck = tonumber(p:read("a"):match("%d+")) or 100
    p:close()
  end
  local s = M.read_file(("/proc/%d/stat"):format(pid))
  if not s then return nil end
  -- the fields after "pid (comm) ": state is field 3, utime 14, stime 15
  local rest = s:match("^%d+ %b() (.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return (tonumber(f[12]) + tonumber(f[13])) / clk_tck
end

-- how many descriptors a process has open
function M.fd_count(pid)
  local p = io.popen("ls /proc/" .. tonumber(pid) .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"):match("%d+"))
  p:close()
  return n
end

-- the soft and hard limits on open files for processes the specs start
function M.nofile_limits()
  local p = io.popen("ulimit -Sn; ulimit -Hn")
  local soft, hard = p:read("l"), p:read("l")
  p:close()
  local function num(v) return v == "unlimited" and math.huge or tonumber(v) end
  return num(soft), num(hard)
end

-- start_daemon (same opts) with the daemon's open-file limit set to
-- `nofile` (`ulimit -n` in a shell that then execs it, after any
-- REACTORD_WRAPPER). The daemon keeps its pid (exec), so Daemon.pid is right.
function M.start_daemon_ulimit(nofile, opts)
  local saved = M.wrapper
  local inner = saved()
  M.wrapper = function()
    local w = "sh -c " .. M.quote('ulimit -n ' .. math.floor(nofile) .. ' && exec "$@"') .. " sh"
    if inner then w = w .. " " .. inner end
    return w
  end
  local ok, d = pcall(M.start_daemon, opts)
  M.wrapper = saved
  if not ok then error(d, 0) end
  return d
end

-- send a signal to a daemon without waiting for it (Daemon:stop waits)
function M.send_signal(d, sig)
  return os.execute("kill -" .. sig .. " " .. (d.pid or d.spawned) .. " 2>/dev/null") == true
end

-- Send `chunk` over and over (at most max_bytes in all) until the peer stops
-- taking bytes: a send that makes no progress for `stall` seconds. Returns
-- the bytes sent and why it stopped: "stalled", "max", "too many sends"
-- (only many tiny partial sends), or the socket error
-- ("closed", "connection reset by peer", ...). Leaves the socket's timeout
-- at `stall`.
function M.send_until_stalled(sock, chunk, max_bytes, stall)
  sock:settimeout(stall)
  local sent = 0
  local pos = 1
  for _ = 1, math.ceil(max_bytes / #chunk) * 4 + 100 do
    if sent >= max_bytes then return sent, "max" end
    local last, err, partial = sock:send(chunk, pos)
    if last then
      sent = sent + (last - pos + 1)
      pos = 1
    else
      local n = partial - pos + 1
      sent = sent + n
      pos = partial + 1
      if pos > #chunk then pos = 1 end
      if err ~= "timeout" then return sent, err end
      if n == 0 then return sent, "stalled" end
    end
  end
  return sent, "too many sends"
end

--- What examples/zen.lua answers, by question.
M.ZEN_ANSWERS = {
  ["Beautiful is better than?"] = "Ugly.",
  ["Explicit is better than?"] = "Implicit.",
  ["Simple is better than?"] = "Complex.",
}

--- How many times `plain` occurs in s (no patterns).
function M.count(s, plain)
  local n, i = 0, 1
  for _ = 1, #s do
    local a, b = s:find(plain, i, true)
    if not a then break end
    n, i = n + 1, b + 1
  end
  return n
end

---------------------------------------------------------------- in-process reactor
-- For specs that run a reactor in this process (require "reactor" lazily:
-- daemon specs never load it).

--- Assert that no connection, timer or listener is left alive.
-- The reactor's live objects, which every in-process spec expects back at
-- M.ZERO once a test has released what it made.
M.ZERO = { connections = 0, timers = 0, listeners = 0, udp = 0, borrowed = 0 }
function M.live()
  local s = require("reactor").core._stats()
  return { connections = s.connections, timers = s.timers, listeners = s.listeners, udp = s.udp,
    borrowed = s.borrowed }
end

-- Fail a test that left live objects; `cleanup` (optional) first releases
-- them, so the next test starts from zero.
function M.assert_clean(cleanup)
  local s = M.live()
  if cleanup and s.connections + s.timers + s.listeners + s.udp ~= 0 then cleanup() end
  require("luassert").are.same(M.ZERO, s, "reactor.core._stats() not back to zero after the test")
end

-- reactor.run() under a deadline (default 10 s), so a bug fails the test
-- instead of hanging it: the test fails if the guard had to stop the reactor.
-- The guard records that it fired before it stops the reactor. Asking
-- `guard:active()` after run() cannot tell: reactor.stop cancels every pending
-- call, the guard's included, and a call that fired is inactive too, so that
-- check passed whether or not the deadline was hit (issue 9; see
-- spec/regress/009-run-reactor-guard_spec.lua).
function M.run_loop(deadline)
  local reactor = require "reactor"
  deadline = deadline or 10
  local timed_out = false
  local guard = reactor.callLater(deadline, function()
    timed_out = true
    reactor.stop()
  end)
  local ok, err = pcall(reactor.run)
  if guard:active() then guard:cancel() end -- run() raised, or ended with nothing left to watch
  if not ok then error(err, 0) end
  require("luassert").is_false(timed_out, "the reactor hit its " .. deadline .. " s deadline")
end

--- The same as run_loop (the name the client, udp and lifetime specs use).
M.run_reactor = M.run_loop

return M
