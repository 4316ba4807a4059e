-- luacheck: globals wrk setup init request response done ok bad req, ignore 212
-- wrk_check.lua: makes wrk check every response (status 200 and the exact
-- hello body), and with PIPELINE=N in the environment send N requests per
-- write (pipelined). Prints "wrk_check: responses=R bad=B" at the end; one
-- counter table per wrk thread, summed in done().
local depth = tonumber(os.getenv("PIPELINE") or "1")
local want = "Hello from Epoll Server"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init()
  ok, bad = 0, 0
  local one = wrk.format("GET", "/")
  req = one:rep(depth)
end

function request()
  return req
end

function response(status, headers, body)
  if status == 200 and body == want then ok = ok + 1 else bad = bad + 1 end
end

function done()
  local o, b = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
  end
  io.write(("wrk_check: responses=%d bad=%d\n"):format(o + b, b))
end
