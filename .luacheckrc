-- luacheck's settings for reactord (Debian's lua-check). `make test` runs it
-- as the ctest `lint_luacheck` (spec/lint/CMakeLists.txt says over which
-- folders); by hand: `luacheck examples spec bench`.
--
-- Every check is on except these two, and a finding fails the test. Where a
-- line does on purpose what a check flags, say so on that line:
-- `-- luacheck: ignore 122 (why)`, naming the warning, never a whole file.

std = "lua54"

-- A protocol's callbacks have Twisted's fixed signatures: `function
-- C:connectionMade()` need not use its implicit self. Explicit arguments are
-- still checked (name an unused one `_`, or `_name`).
self = false

max_line_length = 120

-- busted's globals (describe, it, before_each, assert.*, spy, ...) only in the
-- spec files themselves; the helpers under spec/helpers are plain modules
-- (they `require "luassert"`).
files["spec/**/*_spec.lua"] = { std = "+busted" }

-- A spec's description and the log line it expects read best on one line each
-- (an expected message cut in two is harder to hold against the log), so the
-- specs may run to 150 columns.
files["spec"] = { max_line_length = 150 }

-- examples/ are the scripts the daemon serves (each in an _ENV of its own over
-- _G) and plain lua5.4 programs: no globals beyond Lua's, so a misspelt local
-- that becomes a global is caught.
