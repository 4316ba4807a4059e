-- http_stream.lua: a response sent in parts as it is produced, with flow
-- control: req:respond(status, headers) starts it, res:write(part) sends a
-- part (chunked, as no Content-Length is given) and waits while the client
-- is slow to read, res:finish() ends it. The responses pipelined behind it
-- still leave in request order, after its last part.
--
--   reactord examples/http_stream.lua    serves it on 127.0.0.1:8801
--   curl -N http://127.0.0.1:8801/count/5     five lines, 0.1 s apart
--   curl http://127.0.0.1:8801/bytes/1000000  a million bytes, in 16 KB parts
local http = require "reactor.http"
local reactor = require "reactor"

local app = http.app()

local function count(req)
  local n = math.tointeger(tonumber(req.params.n))
  if not n or n < 0 or n > 1000 then return 400, "n must be an integer 0..1000\n" end
  local res = req:respond(200, { ["Content-Type"] = "text/plain" })
  for i = 1, n do
    if not res:write(("line %d\n"):format(i)) then return end -- nil, "closed": the client went
    reactor.sleep(0.1)
  end
  res:finish()
end

local PART = ("0123456789abcdef"):rep(1024) -- 16 KB

local function bytes(req)
  local n = math.tointeger(tonumber(req.params.n))
  if not n or n < 0 or n > 1e9 then return 400, "n must be an integer 0..1e9\n" end
  -- the length is known: sent with a Content-Length, not chunked
  local res = req:respond(200, { ["Content-Type"] = "application/octet-stream", ["Content-Length"] = n })
  while n > 0 do
    local part = n >= #PART and PART or PART:sub(1, n)
    if not res:write(part) then return end
    n = n - #part
  end
  res:finish()
end

app:get("/count/{n}", count)
app:get("/bytes/{n}", bytes)
app:get("/", function() return "try /count/5 or /bytes/1000000\n" end)

return app:serve(8801)
