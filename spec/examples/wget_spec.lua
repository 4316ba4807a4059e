-- examples/wget.lua (seed 004's asyncio "wget"), run as a user runs it,
-- against examples/http_hello.lua served by the real daemon on loopback.
local H = require "spec.helpers"

local function wget(...)
  local out, err = H.tmpname(), H.tmpname()
  local args = { "timeout", "20", "lua5.4", "examples/wget.lua", ... }
  for i, a in ipairs(args) do args[i] = H.quote(a) end
  local ok, how, code = os.execute(table.concat(args, " ") .. " >" .. H.quote(out) .. " 2>" .. H.quote(err))
  return how == "exit" and code or -1, H.read_file(out), H.read_file(err), ok
end

-- the lines of out that start with prefix, in order
local function lines_of(out, prefix)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    if line:sub(1, #prefix) == prefix then t[#t + 1] = line:sub(#prefix + 1) end
  end
  return t
end

describe("examples/wget.lua", function()
  after_each(H.cleanup)

  it("fetches every URL at once and prints each response's head as the seed does", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local a = ("127.0.0.1:%d"):format(d.port)
    local b = ("localhost:%d"):format(d.port)
    local code, out, err = wget(a, "http://" .. b .. "/nothere")
    assert.equal("", err)
    assert.equal(0, code)
    -- both announced before any answer: the fetches run concurrently
    assert.matches("^wget " .. a:gsub("%p", "%%%0") .. "%.%.%.\nwget " .. b:gsub("%p", "%%%0") .. "%.%.%.\n", out)
    local ha = lines_of(out, a .. " header > ")
    assert.equal("HTTP/1.1 200 OK", ha[1])
    assert.equal("Content-Type: text/plain", ha[2])
    assert.equal("Content-Length: 23", ha[3])
    assert.matches("^Date: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", ha[4])
    assert.equal("Connection: keep-alive", ha[5])
    assert.equal(5, #ha)
    local hb = lines_of(out, b .. " header > ")
    assert.equal("HTTP/1.1 404 Not Found", hb[1])
    assert.equal(5, #hb)
    assert.equal(0, (d:stop()))
  end)

  it("a URL that cannot be fetched: a line on stderr saying why, exit status 1, the others still printed", function()
    local d = H.start_daemon { script = "examples/http_hello.lua" }
    local a = ("127.0.0.1:%d"):format(d.port)
    local code, out, err = wget(a, "https://127.0.0.1/")
    assert.equal(1, code)
    assert.equal("wget https://127.0.0.1/: https is not supported yet (http:// only): https://127.0.0.1/\n", err)
    assert.equal("HTTP/1.1 200 OK", lines_of(out, a .. " header > ")[1])
    assert.equal(0, (d:stop()))
  end)
end)
