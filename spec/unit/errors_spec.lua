-- Errors that point at the user's code (issue 9), in process: a bad
-- argument to the Lua API is raised at the caller's line with the public
-- name; a failing require in a served script names the script's line and
-- its folder; a misspelled callback or factory key is warned about.
local reactor = require "reactor"
local H = require "spec.helpers"

local P = { dataReceived = function() end }
local HERE = debug.getinfo(1, "S").short_src

-- the message of f's error, and the line f was called from (the next line
-- of this file after `at`)
local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return err
end

-- "spec/unit/errors_spec.lua:N: " for the line that holds marker
local function at(marker)
  local src = assert(io.open(HERE)):read("a")
  return HERE .. ":" .. H.line_of(src, marker) .. ": "
end

describe("errors at the caller's line", function()
  after_each(H.assert_clean)

  it("listenTCP with a port that is not one", function()
    local err = raised(function() reactor.listenTCP("http", P) end) -- LISTEN-HTTP
    assert.are.equal(at("LISTEN-HTTP")
      .. [[bad argument #1 to 'listenTCP' (port must be an integer 0..65535, got string "http")]], err)
    err = raised(function() reactor.listenTCP(99999, P) end) -- LISTEN-BIG
    assert.are.equal(at("LISTEN-BIG")
      .. "bad argument #1 to 'listenTCP' (port must be an integer 0..65535, got number 99999)", err)
    err = raised(function() reactor.listenTCP(8000.5, P) end) -- LISTEN-FRAC
    assert.matches("^" .. at("LISTEN-FRAC"):gsub("%p", "%%%0") .. "bad argument #1 to 'listenTCP'", err)
  end)

  it("listenTCP with no factory, or a bad third argument", function()
    local err = raised(function() reactor.listenTCP(0) end) -- LISTEN-NOF
    assert.are.equal(at("LISTEN-NOF")
      .. "bad argument #2 to 'listenTCP' (expected a protocol or a factory table, got nil)", err)
    err = raised(function() reactor.listenTCP(0, P, 5) end) -- LISTEN-OPTS
    assert.are.equal(at("LISTEN-OPTS")
      .. "bad argument #3 to 'listenTCP' (expected an interface string or an options table, got number 5)", err)
  end)

  it("connectTCP with its arguments swapped says the order", function()
    local err = raised(function() reactor.connectTCP(1060, "127.0.0.1", P) end) -- SWAPPED
    assert.are.equal(at("SWAPPED") .. "bad argument #1 to 'connectTCP' (host must be a string, got number 1060;"
      .. " the order is connectTCP(host, port, factory))", err)
    err = raised(function() reactor.connectTCP("127.0.0.1", 0, P) end) -- PORT0
    assert.are.equal(at("PORT0") .. "bad argument #2 to 'connectTCP' (port must be an integer 1..65535, got number 0)",
      err)
  end)

  it("a factory without a protocol table is blamed on the line that made it", function()
    local err = raised(function() reactor.Factory { protocol = 5 } end) -- FACTORY5
    assert.are.equal(at("FACTORY5") .. "Factory: field 'protocol' must be a protocol table (it is number)", err)
    err = raised(function() reactor.listenTCP(0, { protocol = 5 }) end) -- LISTEN-F5
    assert.are.equal(at("LISTEN-F5") .. "Factory: field 'protocol' must be a protocol table (it is number)", err)
  end)
end)

describe("a served script", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    H.remove_tmpdirs()
    H.assert_clean()
  end)

  it("whose require fails: the script's line, and its folder among the places searched", function()
    local path = dir .. "/app.lua"
    H.write_file(path, "local x = 1\nlocal json = require 'json_nowhere'\nreturn {}\n")
    local ok, err = reactor.check(path)
    assert.is_nil(ok)
    assert.are.equal(path .. ":2: module 'json_nowhere' not found:", err:match("^[^\n]*"))
    assert.truthy(err:find("\n\tno file '" .. dir .. "/json_nowhere.lua'", 1, true), err)
  end)

  it("a module of its own folder that fails to require is blamed on the module's line", function()
    H.write_file(dir .. "/helper.lua", "\n\nlocal x = require 'also_nowhere'\nreturn x\n")
    local path = dir .. "/app.lua"
    H.write_file(path, "local h = require 'helper'\nreturn { dataReceived = function() end }\n")
    local ok, err = reactor.check(path)
    assert.is_nil(ok)
    assert.are.equal(dir .. "/helper.lua:3: module 'also_nowhere' not found:", err:match("^[^\n]*"))
    -- `return require "x"` is a tail call and leaves no line: the file then
    H.write_file(dir .. "/helper.lua", "\n\nreturn require 'also_nowhere'\n")
    ok, err = reactor.check(path)
    assert.is_nil(ok)
    assert.are.equal(dir .. "/helper.lua: module 'also_nowhere' not found:", err:match("^[^\n]*"))
  end)

  it("with a port that is not one fails reactor.check, naming the script and the field", function()
    local cases = {
      { 'port = "http"', [['port' must be an integer 0..65535 (it is the string "http")]] },
      { "port = 99999", "'port' must be an integer 0..65535 (it is the number 99999)" },
      { "port = 8000.5", "'port' must be an integer 0..65535 (it is the number 8000.5)" },
      { "host = 5", [['host' must be an address string such as "127.0.0.1" or "::1" (it is the number 5)]] },
      { 'listen = { 8001, "x" }', "'listen[2]' must be a port (an integer 0..65535) or {port = N, host = ...}"
        .. [[ (it is the string "x")]] },
      { 'listen = { { host = "::1" } }', "'listen[1].port' must be an integer 0..65535 (it is nil)" },
      { "idleTimeout = -1", "'idleTimeout' must be a number of seconds >= 0 (it is the number -1)" },
    }
    local path = dir .. "/app.lua"
    for _, case in ipairs(cases) do
      H.write_file(path, "local P = { dataReceived = function() end }\nreturn { protocol = P, " .. case[1] .. " }\n")
      local ok, err = reactor.check(path)
      assert.is_nil(ok, case[1])
      assert.are.equal(path .. ": " .. case[2], err)
      local s, serr = reactor.serve(path, { port = 0 })
      assert.is_nil(s, case[1])
      assert.are.equal(err, serr)
    end
  end)

  it("with a misspelled callback or factory key: a warning with 'did you mean', and check still passes", function()
    local logged = {}
    local real = reactor.core.log
    reactor.core.log = function(msg) logged[#logged + 1] = msg end
    local path = dir .. "/app.lua"
    H.write_file(path, [[
local P = {}
function P:connectionMade() end
function P:datareceived(d) end
function P:lineRecieved(l) end
return { protocl = P, protocol = P }
]])
    local ok = reactor.check(path)
    reactor.core.log = real
    assert.is_table(ok)
    table.sort(logged)
    assert.are.same({
      path .. ": warning: 'protocl' is not a factory field reactord knows; did you mean 'protocol'?",
      path .. ":3: warning: 'datareceived' is not a protocol callback reactord knows; did you mean 'dataReceived'?",
      path .. ":4: warning: 'lineRecieved' is not a protocol callback reactord knows; did you mean 'lineReceived'?",
    }, logged)
  end)

  it("whose startFactory fails: nothing listens, nothing was announced, and it says 'in startFactory'", function()
    local path = dir .. "/app.lua"
    H.write_file(path, [[
local F = { protocol = { dataReceived = function() end } }
function F:startFactory()
  error("no database")
end
return F
]])
    local heard = {}
    local s, err = reactor.serve(path, { port = 0, onListen = function(a) heard[#heard + 1] = a end })
    assert.is_nil(s)
    assert.are.equal("in startFactory: " .. path .. ":3: no database", err)
    assert.are.same({}, heard)
    assert.are.equal(0, H.live().listeners)
  end)
end)
