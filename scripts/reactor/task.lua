-- reactor.task: tasks, coroutines the reactor runs (asyncio's, in Lua's way).
--
--   spawn(fn, ...) -> task      runs fn at once, up to its first wait
--   task:join()                 -> true, results... | false, err
--   task:cancel()               its coroutine is closed: <close> variables run
--   sleep(s), gather(...), timeout(s, fn, ...)
--
-- The rules (where cqueues#9, skynet#1845 and copas#208 go wrong):
-- * A task waits in one place, await(), and is woken in one place, wake().
--   Each wait has a number (t[WAITING]); a waker holds the number it was
--   given and wake() resumes only if it is still the current one, so a
--   stale timer or a second event can never resume a task twice, or resume
--   it in the middle of another wait.
-- * Every resume goes through step (core._resume's C resume), so the watchdog (a script
--   timeout) and the memory limit reach a task as they reach a callback.
-- * A failed task is logged with its traceback unless a joiner is waiting
--   for it (join, gather and timeout get the error as a value instead); it
--   ends only that task and the streams it owns.
-- * A wait yields a value of our own (WAIT): a bare coroutine.yield() in a
--   task's body is an error that says so, not a silent hang.
local core = require "reactor.core"
local log = require "reactor.log"

local running, yield, close, status = coroutine.running, coroutine.yield, coroutine.close, coroutine.status
local pack, unpack = table.pack, table.unpack

local M = {}

local WAIT = setmetatable({}, { __name = "reactor.task wait" })
M.WAIT = WAIT -- what a wait yields (reactor.stream's fast wait yields it itself)
local CANCELLED = "cancelled"

local Task = {}
Task.__index = Task
Task.__name = "reactor.Task"
M.Task = Task

-- The task whose coroutine runs now (nil: a callback, or the top level), in
-- R[CURRENT], a table the stream module and the C step read too (an array
-- slot: C gets and sets it without a string key).
local CURRENT <const> = 1
local R = { nil }
M.R = R

-- A task's fields that the C step (lstream.c) and a stream's C wait read or
-- write at every wake live in the table's array part, where C reaches them
-- without a string key (rdlua.h's RDL_T_*, in this order); every other
-- field (state, where, seq, early, results, ...) by name.
local CO <const> = 1 -- the coroutine; nil once the task has ended
local WAITING <const> = 2 -- the number of the wait it is in, or false
local CLEANUP <const>, CLEANOBJ <const> = 3, 4 -- what a cancel runs: cleanup(obj, t), or false
local CANCELPENDING <const> = 5 -- cancelled while it ran: carried out at its next wait
local STREAMS <const> = 6 -- the streams it owns (closed when it ends), or false
M.CO, M.WAITING, M.CLEANUP, M.CLEANOBJ, M.CANCELPENDING = CO, WAITING, CLEANUP, CLEANOBJ, CANCELPENDING
M.STREAMS = STREAMS
local inflight = {} -- the tasks a watchdog trip stopped, innermost last (see reap)
local bycoroutine = setmetatable({}, { __mode = "k" })

--- The task running now, or nil.
function M.current()
  if #inflight > 0 and R[CURRENT] then M.reap() end
  return R[CURRENT]
end

function Task:__tostring()
  return ("task (%s, spawned at %s)"):format(self.state, self.where)
end

--{=====================================================================
-- Finishing: results, joiners, owned streams
--======================================================================

-- "app.lua:12: boom\nstack traceback:..." with the user's frames only
local function traceback(co, err)
  local tb = debug.traceback(co, tostring(err))
  local out = {}
  for line in tb:gmatch("[^\n]+") do
    if not (line:find("^%s+%[C%]") or line:find("^%s+reactor/") or line:find("^%s+%.%.%.[^\n]*reactor/")) then
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end

-- how the log names a task
local function label(t)
  local w = t.where
  if w:sub(1, 4) == "the " then return w end
  return "task spawned at " .. w
end

local function finish(t, state, results, err)
  t.state, t.results, t.err = state, results, err
  t[CO], t[WAITING], t[CLEANUP], t[CLEANOBJ] = nil, false, false, false
  local streams = t[STREAMS]
  if streams then
    t[STREAMS] = false
    for i = 1, #streams do streams[i]:_ended(t) end
  end
  local joiners = t.joiners
  if joiners then
    t.joiners = nil
    for i = 1, #joiners, 2 do M.wake(joiners[i], joiners[i + 1]) end
  end
end

local function hasjoiner(t)
  local j = t.joiners
  if not j then return false end
  for i = 1, #j, 2 do
    if j[i][WAITING] == j[i + 1] then return true end
  end
  return false
end

local function fail(t, co, err)
  if not hasjoiner(t) then
    log.callbackError(label(t), traceback(co, err))
  end
  local msg = type(err) == "string" and err or tostring(err)
  finish(t, "failed", nil, msg)
end

-- Close a suspended coroutine (its <close> variables run) and finish t as cancelled.
local function kill(t)
  local co = t[CO]
  local cleanup, obj = t[CLEANUP], t[CLEANOBJ]
  t[WAITING], t[CLEANUP], t[CLEANOBJ] = false, false, false
  if cleanup then cleanup(obj, t) end
  local prev = R[CURRENT]
  R[CURRENT] = t
  local ok, err = close(co)
  R[CURRENT] = prev
  if not ok then log.callbackError("closing " .. label(t), traceback(co, err)) end
  finish(t, CANCELLED, nil, CANCELLED)
end

-- after a resume of t: done, failed, waiting, or misusing yield
local function settle(t, prev, ok, first, ...)
  R[CURRENT] = prev
  local co = t[CO]
  if first == WAIT and ok then -- waiting: what nearly every resume ends in
    if t[CANCELPENDING] then return kill(t) end
    return
  end
  if not ok then return fail(t, co, first) end
  if status(co) == "dead" then return finish(t, "done", pack(first, ...)) end
  local info = debug.getinfo(co, 1, "Sl")
  local at = info and info.currentline > 0 and ("%s:%d"):format(info.short_src, info.currentline) or t.where
  local msg = ("%s: coroutine.yield() in a task's own body: a task waits with reactor.sleep, " ..
    "a stream call or task:join(), and yields nothing itself (run a generator in a coroutine of its own)")
    :format(at)
  close(co)
  log.callbackError(label(t), msg)
  return finish(t, "failed", nil, msg)
end

-- The tasks a resume that never came back left behind (the watchdog
-- stopped the callback it ran in: the error goes through every coroutine
-- on the way, so they are all dead): step (lstream.c) puts each one here as
-- the error passes it; reap() finishes them, innermost first, so their
-- joiners wake and their streams close.

local function reap()
  if #inflight == 0 or not select(2, running()) then return end
  for i = #inflight, 1, -1 do
    local t = inflight[i]
    inflight[i] = nil
    if t[CO] then finish(t, "failed", nil, "script timeout: the task was stopped by the watchdog") end
  end
  R[CURRENT] = nil
end
M.reap = reap

-- step(t, ...): resume t with ..., the one resume of every task, in C
-- (lstream.c): what enter (t on the stack of tasks being resumed, and
-- current), core._resume and settle's bookkeeping do, with settle called
-- for every outcome but a task that waits again with no cancel pending.
local step = core._taskinit(R, inflight, WAIT, settle, reap)
-- resume t with ...: for a pool of tasks that park in a yield(WAIT) of their
-- own, not waiting on anything (reactor.http's request tasks), so that no
-- waker can resume them; what wake does once the wait number has matched
M._step = step

--{=====================================================================
-- The one wait and the one wake
--======================================================================

--- The task that may wait now, for the public call `what` (at the caller's
--- caller's line: level counts from the function that calls this).
function M.need(what, level)
  local t = R[CURRENT]
  if t and running() == t[CO] then return t end -- in the task's own coroutine: the common case
  if #inflight > 0 then reap() end
  t = R[CURRENT]
  if t == nil then
    error(("%s waits, so it must run in a task: call it inside reactor.spawn(fn) or a " ..
      "reactor.serve handler"):format(what), (level or 2) + 1)
  end
  if running() ~= t[CO] then
    error(("%s called from a coroutine of your own inside a task: only the task's own " ..
      "coroutine can wait (call it outside coroutine.wrap/create)"):format(what), (level or 2) + 1)
  end
  return t
end

--- Begin a wait of t: -> the number a waker must give wake().
function M.prepare(t)
  local n = (t.seq or 0) + 1
  t.seq = n
  t[WAITING] = n
  return n
end

--- Suspend t (the current task, after prepare) until wake(); on cancel,
--- cleanup(obj, t) runs first. -> what the waker passed.
function M.await(t, cleanup, obj)
  local early = t.early
  if early then -- woken before it could yield
    t.early = false
    return unpack(early, 1, early.n)
  end
  t[CLEANUP], t[CLEANOBJ] = cleanup, obj -- (a cancel while it ran is carried out by settle)
  return yield(WAIT)
end

-- Is t being resumed now (running, or resuming a coroutine of its own)? A
-- task's coroutine is suspended only between its resumes; a waker that
-- comes while it runs leaves what it brings in t.early.
local function active(t)
  local co = t[CO]
  return co ~= nil and status(co) ~= "suspended"
end
M.active = active

--- Resume t with ... if it still waits for wait number n. -> true if it did.
function M.wake(t, n, ...)
  if t[WAITING] ~= n then return false end
  t[WAITING], t[CLEANUP], t[CLEANOBJ] = false, false, false -- (false, not nil: the fields stay in the table)
  if active(t) then
    t.early = pack(...) -- the waker ran before the task could yield (it is running)
    return true
  end
  step(t, ...)
  return true
end

--- wake(t, n, v) for one value, without the varargs: a stream's reader
--- woken with its frame, at every read.
function M.wake1(t, n, v)
  if t[WAITING] ~= n then return false end
  t[WAITING], t[CLEANUP], t[CLEANOBJ] = false, false, false
  if active(t) then
    t.early = pack(v)
    return true
  end
  step(t, v)
  return true
end

--{=====================================================================
-- spawn, join, cancel
--======================================================================

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  return info.currentline > 0 and ("%s:%d"):format(info.short_src, info.currentline) or info.short_src
end
M.where = where

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function newtask(fn, level)
  local co = coroutine.create(fn)
  local t = setmetatable({ co, false, false, false, false, false,
    state = "running", where = where(level + 1), seq = 0, early = false }, Task)
  bycoroutine[co] = t
  return t
end

--- spawn(fn, ...) -> task: fn(...) runs at once, up to its first wait.
function M.spawn(fn, ...)
  if not callable(fn) then
    error(("bad argument #1 to 'spawn' (expected a function, got %s)"):format(type(fn)), 2)
  end
  local t = newtask(fn, 2)
  step(t, ...)
  return t
end

--- t owns stream s: s closes when t ends.
function M.own(t, s)
  local l = t[STREAMS]
  if not l then
    l = {}
    t[STREAMS] = l
  end
  l[#l + 1] = s
end

--- t no longer owns s (a pooled connection that outlives the task).
function M.disown(t, s)
  local l = t[STREAMS]
  if not l then return end
  for i = #l, 1, -1 do
    if l[i] == s then table.remove(l, i) end
  end
end

--- Close the streams t owns now, and own none (a pooled task between two
--- jobs: what its end would do).
function M.closeowned(t)
  local l = t[STREAMS]
  if not l then return end
  t[STREAMS] = false
  for i = 1, #l do l[i]:_ended(t) end
end

-- "app.lua:3" for a function
local function defined(fn)
  local info = debug.getinfo(fn, "S")
  if info.what ~= "Lua" then return "?" end
  return ("%s:%d"):format(info.short_src, info.linedefined)
end

--- A reactor.serve handler's task for stream s: handler(s), owning s.
function M.spawnfor(s, handler)
  local t = newtask(handler, 1)
  local peer = s.transport and s.transport:getPeer()
  t.where = ("the reactor.serve handler at %s%s"):format(defined(handler),
    peer and peer.host and (", peer %s:%s"):format(peer.host, peer.port) or "")
  M.own(t, s)
  step(t, s)
  return t
end

--- spawnnamed(name, fn, ...) -> task: spawn, named in the log by name ("the
--- reactor.http handler") instead of the spawner's line: no stack lookup, for
--- a task per request (reactor.http).
function M.spawnnamed(name, fn, ...)
  local co = coroutine.create(fn)
  local t = setmetatable({ co, false, false, false, false, false,
    state = "running", where = name, seq = 0, early = false }, Task)
  bycoroutine[co] = t
  step(t, ...)
  return t
end

--- The task a coroutine runs, if it is one.
function M.of(co)
  return bycoroutine[co]
end

function Task:done()
  return self[CO] == nil
end

local function result(t)
  if t.state == "done" then return true, unpack(t.results, 1, t.results.n) end
  return false, t.err
end

local function dropjoin(target, t)
  local j = target.joiners
  if not j then return end
  for i = #j - 1, 1, -2 do
    if j[i] == t then
      table.remove(j, i + 1)
      table.remove(j, i)
    end
  end
end

local function addjoiner(target, t, n)
  local j = target.joiners
  if not j then
    j = {}
    target.joiners = j
  end
  j[#j + 1] = t
  j[#j + 1] = n
end

--- join() -> true, results... | false, err ("cancelled" if it was cancelled).
function Task:join()
  if getmetatable(self) ~= Task then error("task:join(): call it with ':' on a task reactor.spawn made", 2) end
  if self[CO] == nil then return result(self) end
  local me = M.need("task:join()", 2)
  if me == self then error("task:join(): a task cannot wait for itself", 2) end
  addjoiner(self, me, M.prepare(me))
  M.await(me, dropjoin, self)
  return result(self)
end

--- cancel() -> true if the task was still running. A waiting task is closed
--- now (its <close> variables run, its streams close); a running one (it
--- cancels itself, or it resumed the caller) at its next wait.
function Task:cancel()
  if getmetatable(self) ~= Task then error("task:cancel(): call it with ':' on a task reactor.spawn made", 2) end
  if self[CO] == nil then return false end
  if not active(self) then
    kill(self)
  else
    self[CANCELPENDING] = true
  end
  return true
end

--{=====================================================================
-- sleep, gather, timeout
--======================================================================

local function checkseconds(s, n, fname)
  if type(s) ~= "number" or s ~= s or s < 0 then
    error(("bad argument #%d to '%s' (expected a number of seconds >= 0, got %s)")
      :format(n, fname, type(s) == "number" and tostring(s) or type(s)), 3)
  end
end

local function canceltimer(dc)
  dc:cancel()
end

--- sleep(s): the current task waits s seconds (on the reactor's clock).
function M.sleep(s)
  checkseconds(s, 1, "sleep")
  local t = M.need("reactor.sleep", 2)
  local n = M.prepare(t)
  local dc = core.callLater(s, M.wake, t, n)
  M.await(t, canceltimer, dc)
end

local function cancelall(tasks, t)
  for i = 1, #tasks do
    if tasks[i] ~= t then tasks[i]:cancel() end
  end
end

--- gather([{settle = true},] t1, t2, ...) -> true, r1, r2, ... (the first
--- result of each) | false, err. A function is spawned as a task. The first
--- error cancels the others (Python's TaskGroup); with settle, it waits for
--- all and gives each one's table.pack(task:join()). Cancelling the gathering
--- task cancels them all.
function M.gather(...)
  local args = pack(...)
  local opts, first = nil, 1
  if type(args[1]) == "table" and getmetatable(args[1]) ~= Task then
    opts, first = args[1], 2
  end
  local settleall = opts and opts.settle
  local tasks = {}
  for i = first, args.n do
    local v = args[i]
    if getmetatable(v) == Task then
      tasks[#tasks + 1] = v
    elseif callable(v) then
      tasks[#tasks + 1] = M.spawn(v)
    else
      error(("bad argument #%d to 'gather' (expected a task or a function, got %s)"):format(i, type(v)), 2)
    end
  end
  local me
  while true do
    local pending = false
    for i = 1, #tasks do
      local ti = tasks[i]
      if ti[CO] ~= nil then
        pending = true
      elseif not settleall and ti.state ~= "done" then
        cancelall(tasks, ti)
        return false, ti.err
      end
    end
    if not pending then break end
    me = me or M.need("reactor.gather", 2)
    local n = M.prepare(me)
    for i = 1, #tasks do
      if tasks[i][CO] ~= nil then addjoiner(tasks[i], me, n) end
    end
    M.await(me, cancelall, tasks)
  end
  local out = {}
  for i = 1, #tasks do
    if settleall then
      out[i] = pack(result(tasks[i]))
    else
      out[i] = tasks[i].results[1]
    end
  end
  return true, unpack(out, 1, #tasks)
end

local TIMEDOUT = {}

local function canceltimeout(child, t)
  t.deadline:cancel()
  child:cancel()
end

--- timeout(s, fn, ...) -> true, results... | false, err | nil, "timeout":
--- fn(...) runs as a task of its own, cancelled if it is not done in s seconds.
function M.timeout(s, fn, ...)
  checkseconds(s, 1, "timeout")
  if not callable(fn) then
    error(("bad argument #2 to 'timeout' (expected a function, got %s)"):format(type(fn)), 2)
  end
  local me = M.need("reactor.timeout", 2)
  local child = M.spawn(fn, ...)
  if child[CO] ~= nil then
    local n = M.prepare(me)
    addjoiner(child, me, n)
    local dc = core.callLater(s, M.wake, me, n, TIMEDOUT)
    me.deadline = dc
    local why = M.await(me, canceltimeout, child)
    me.deadline = nil
    if why == TIMEDOUT then
      child:cancel()
      return nil, "timeout"
    end
    dc:cancel()
  end
  return result(child)
end

return M
