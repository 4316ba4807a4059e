-- web.lua: seed 004's aiohttp routes. Each handler waits 0.5 s without
-- blocking (a task's reactor.sleep, the seed's asyncio.sleep), so 100
-- concurrent requests take about 0.5 s, not 50.
--
--   reactord examples/web.lua            serves it on 127.0.0.1:8000
--   curl http://127.0.0.1:8000/hello/world
local reactor = require "reactor"
local http = require "reactor.http"

local app = http.app()
local inflight = 0 -- handlers sleeping now (the X-In-Flight header shows the most seen)

local function html(body, peak)
  return 200, { ["Content-Type"] = "text/html; charset=utf-8", ["X-In-Flight"] = peak }, body
end

local function nap()
  inflight = inflight + 1
  local peak = inflight
  reactor.sleep(0.5)
  inflight = inflight - 1
  return peak
end

app:get("/", function()
  return html("<h1>Index</h1>", nap())
end)

app:get("/hello/{name}", function(req)
  return html(("<h1>hello, %s!</h1>"):format(http.escape(req.params.name)), nap())
end)

return app:serve({ port = 8000, host = "127.0.0.1" })
