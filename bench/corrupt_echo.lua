-- corrupt_echo.lua: an echo server that flips one bit of one byte once a
-- connection has sent 100,000 bytes. Only for bench/loadgen_check.sh, which
-- proves that rd_loadgen -m echo catches a wrong byte (a checker that cannot
-- fail proves nothing).
local Bad = {}

function Bad:dataReceived(data)
  local before = self.seen or 0
  self.seen = before + #data
  if before < 100000 and self.seen >= 100000 then
    local i = 100000 - before
    data = data:sub(1, i - 1) .. string.char(data:byte(i) ~ 1) .. data:sub(i + 1)
  end
  self.transport:write(data)
end

return { protocol = Bad, port = 8000 }
