-- wget.lua: seed 004's asyncio "wget", with reactor.http's client: every
-- URL is fetched at once (a task each, reactor.gather), and each
-- response's head is printed as the seed prints it:
--
--   wget www.example.com...
--   www.example.com header > HTTP/1.1 200 OK
--   www.example.com header > Content-Type: text/html
--
--   lua5.4 examples/wget.lua URL...     (default: the seed's three sites)
--
-- A URL without a scheme is http://; the body is ignored (as in the seed).
-- A failure prints "wget URL: why" on stderr and the exit status is 1.

-- find reactor.so in the build tree next to this checkout
local here = arg and arg[0] and (arg[0]:match("^(.*)/[^/]*$") or ".")
if here then package.cpath = here .. "/../build/?.so;" .. package.cpath end
local reactor = require "reactor"
local http = require "reactor.http"

local urls = { table.unpack(arg) }
if #urls == 0 then urls = { "www.sina.com.cn", "www.sohu.com", "www.163.com" } end

local failed = false

local function wget(url)
  local full = url:find("://", 1, true) and url or "http://" .. url
  local host = full:match("^%a[%w+.-]*://([^/?#]*)") or url
  print(("wget %s..."):format(host))
  local res, err = http.get(full, { timeout = 10 })
  if not res then
    io.stderr:write(("wget %s: %s\n"):format(url, err))
    failed = true
    return
  end
  print(("%s header > HTTP/%s %d %s"):format(host, res.version, res.status, res.reason))
  for _, f in ipairs(res.fields) do
    print(("%s header > %s: %s"):format(host, f[1], f[2]))
  end
end

reactor.spawn(function()
  local tasks = {}
  for i, url in ipairs(urls) do tasks[i] = function() return wget(url) end end
  reactor.gather({ settle = true }, table.unpack(tasks))
  reactor.stop()
end)
reactor.run()
os.exit(failed and 1 or 0)
