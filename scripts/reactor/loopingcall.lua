-- reactor.loopingcall: Twisted's LoopingCall on top of callLater. Runs on a
-- fixed grid (start + k * interval), skipping beats it missed rather than
-- bunching them up.

return function(core)
  local LoopingCall = {}
  LoopingCall.__index = LoopingCall

  local function new(fn, ...)
    assert(type(fn) == "function" or (getmetatable(fn) or {}).__call,
      "LoopingCall: expected a function")
    return setmetatable({ f = fn, args = table.pack(...), running = false }, LoopingCall)
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
  function LoopingCall:start(interval, now)
    assert(not self.running, "LoopingCall is already running")
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
    assert(self.running, "LoopingCall is not running")
    self.running = false
    if self._call then
      self._call:cancel()
      self._call = nil
    end
  end

  return new
end
