-- reactor.loopingcall: Twisted's LoopingCall on top of callLater. Runs on a
-- fixed grid (start + k * interval), skipping beats it missed rather than
-- bunching them up.
local core = require "reactor.core"

local LoopingCall = {}
LoopingCall.__index = LoopingCall

-- A beat whose function raised: Twisted stops the LoopingCall. This runs as
-- fire's frame unwinds (a to-be-closed variable), so the error itself goes
-- on untouched to the reactor's handler, which logs it with the traceback of
-- the user's code: no xpcall here, no second traceback.
function LoopingCall:__close(err)
  if err ~= nil then
    self.running = false
    if self._call then
      self._call:cancel()
      self._call = nil
    end
  end
end

--- LoopingCall(fn, ...) keeps fn; LoopingCall(obj, "method", ...) looks
--- obj.method up at every beat, so it runs the current code after a reload.
local function new(fn, ...)
  local self = setmetatable({ args = table.pack(...), running = false }, LoopingCall)
  if type(fn) == "table" and type(self.args[1]) == "string" then
    self.obj, self.method = fn, self.args[1]
    self.args = table.pack(select(2, ...))
  elseif type(fn) == "function" or (type(getmetatable(fn)) == "table" and getmetatable(fn).__call) then
    self.f = fn
  else
    error(("LoopingCall: expected a function, or an object and a method name (got %s)"):format(type(fn)), 2)
  end
  return self
end

local function fire(self)
  self._call = nil
  local _ <close> = self
  local args = self.args
  if self.obj then
    local obj = self.obj
    local m = obj[self.method]
    if m == nil then error(("LoopingCall: %s has no method '%s'"):format(tostring(obj), self.method), 0) end
    m(obj, table.unpack(args, 1, args.n))
  else
    self.f(table.unpack(args, 1, args.n))
  end
  if self.running and not self._call then self:_schedule() end
end

function LoopingCall:_schedule()
  local now = core.now()
  local k = math.floor((now - self._start) / self.interval) + 1
  local at = self._start + k * self.interval
  self._call = core.callLater(at - now, fire, self)
end

-- reactor.stop() cancels every pending call: a LoopingCall whose next beat
-- was cancelled that way is not running any more
local function alive(self)
  if self.running and self._call and not self._call:active() then
    self.running, self._call = false, nil
  end
  return self.running
end

--- start(interval [, now = true]): call now (unless now is false), then every interval.
function LoopingCall:start(interval, now)
  if alive(self) then error("LoopingCall:start: it is already running", 2) end
  if type(interval) ~= "number" or interval ~= interval or interval <= 0 then
    error(("bad argument #1 to 'start' (interval must be a number > 0, got %s)"):format(tostring(interval)), 2)
  end
  self.interval = interval
  self.running = true
  self._start = core.now()
  if now == nil or now then
    self._call = core.callLater(0, fire, self)
  else
    self:_schedule()
  end
  return self
end

function LoopingCall:stop()
  if not alive(self) then error("LoopingCall:stop: it is not running", 2) end
  self.running = false
  if self._call then
    self._call:cancel()
    self._call = nil
  end
end

return { LoopingCall = new }
