-- http_hello.lua: seed 001's epoll web server, over reactor.http: every
-- GET of / answers "Hello from Epoll Server" as text/plain, with correct
-- HTTP (the seed's misspelled Content-Length and bare LF are not kept, and
-- the connection stays open for the next request: keep-alive, pipelining).
--
--   reactord examples/http_hello.lua     serves it on 127.0.0.1:8800
--   curl http://127.0.0.1:8800/
local http = require "reactor.http"

local app = http.app()
local PLAIN = { ["Content-Type"] = "text/plain" } -- one table for every response (read, never changed)

app:get("/", function()
  return 200, PLAIN, "Hello from Epoll Server"
end)

return app:serve(8800)
