-- reactor.loopingcall: Twisted's LoopingCall on top of callLater. Runs on a
-- fixed grid (start + k * interval), skipping beats it missed rather than
-- bunching them up.

return function(core)
  local LoopingCall = {}
  LoopingCall.__index = LoopingCall

  --- LoopingCall(fn, ...) keeps fn; LoopingCall(obj, "method", ...) looks
  --- obj.method up at every beat, so it runs the current code after a reload.
  local function new(fn, ...)
    local self = setmetatable({ args = table.pack(...), running = false }, LoopingCall)
    if type(fn) == "table" and type(self.args[1]) == "string" then
      self.obj, self.method = fn, self.args[1]
      self.args = table.pack(fn, select(2, ...))
      self.f = function(obj, ...)
        local m = obj[self.method]
        if m == nil then error(("LoopingCall: method '%s' not found"):format(self.method), 0) end
        return m(obj, ...)
      end
    else
      assert(type(fn) == "function" or (getmetatable(fn) or {}).__call,
        "LoopingCall: expected a function, or an object and a method name")
      self.f = fn
    end
    return self
  end

  local function fire(self)
    self._call = nil
    local ok, err = xpcall(self.f, debug.traceback, table.unpack(self.args, 1, self.args.n))
    if not ok then
      self.running = false -- Twisted stops a LoopingCall whose function fails
      error(err, 0)
    end
    if self.running and not self._call then self:_schedule() end
  end

  function LoopingCall:_schedule()
    local now = core.now()
    local k = math.floor((now - self._start) / self.interval) + 1
    local at = self._start + k * self.interval
    self._call = core.callLater(at - now, fire, self)
  end

  --- start(interval [, now = true]): call now (unless now is false), then every interval.
  -- reactor.stop() cancels every pending call: a LoopingCall whose next beat
  -- was cancelled that way is not running any more
  local function alive(self)
    if self.running and self._call and not self._call:active() then
      self.running, self._call = false, nil
    end
    return self.running
  end

  function LoopingCall:start(interval, now)
    assert(not alive(self), "LoopingCall is already running")
    assert(type(interval) == "number" and interval > 0, "LoopingCall: interval must be > 0")
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
    assert(alive(self), "LoopingCall is not running")
    self.running = false
    if self._call then
      self._call:cancel()
      self._call = nil
    end
  end

  return new
end
