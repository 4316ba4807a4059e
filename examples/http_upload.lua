-- http_upload.lua: an upload counted as it arrives. POST /upload with a body
-- of any size up to maxStreamBody (here 64 MiB): the handler reads it in
-- parts with req:read() (a body above maxBody, 64 KiB here, is never held
-- whole) and answers its size, its number of lines and the sum of its bytes
-- mod 2^32. Content-Length and chunked bodies alike.
--
--   reactord examples/http_upload.lua     serves it on 127.0.0.1:8802
--   curl --data-binary @file http://127.0.0.1:8802/upload
local http = require "reactor.http"

local app = http.app { maxBody = 64 * 1024, maxStreamBody = 64 * 1024 * 1024 }

local byte = string.byte

app:post("/upload", function(req)
  local size, lines, sum = 0, 0, 0
  while true do
    local part, why = req:read(16384)
    if not part then
      if why then return 400, "upload failed: " .. why .. "\n" end
      break
    end
    size = size + #part
    for i = 1, #part do
      local b = byte(part, i)
      sum = (sum + b) % 4294967296
      if b == 10 then lines = lines + 1 end
    end
  end
  return ("bytes=%d lines=%d sum=%d\n"):format(size, lines, sum)
end)

-- a small body is read the same way (req:read works on it too); /echo
-- answers it whole, up to 1 MiB, with req:readall
app:post("/echo", function(req)
  local body, why = req:readall(1024 * 1024)
  if not body then return 413, why .. "\n" end
  return body
end)

return app:serve(8802)
