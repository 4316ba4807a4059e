-- reactor.log: every record the Lua half writes. They all go through
-- reactor.core.log, the one logger C uses too (its prefix and its sink are
-- the host's: the daemon, a plain lua5.4 program, an embedding program).
-- core.log is looked up at each record, so a program may replace it.
local core = require "reactor.core"

local M = {}

--- One record: log("reloaded app.lua ...").
function M.log(msg)
  core.log(msg)
end

--- A callback of the runtime's own (migrate, stopFactory, shutdownRequested)
--- failed: err is what core.traceback made of the error.
function M.callbackError(name, err)
  local msg = ("error in %s: %s"):format(name, tostring(err))
  if not core._logerror(msg) then core.log(msg) end -- the host's error callback, if it set one
end

--- A warning about the user's code; where is "file" or "file:line".
function M.warn(where, msg)
  core.log(("%s: warning: %s"):format(where, msg))
end

return M
