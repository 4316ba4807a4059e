#!/bin/sh
# bench/loadgen_check.sh REACTORD RD_LOADGEN: ctest's proof that rd_loadgen's
# echo and connrate modes check what they count, against the real daemon on
# loopback (port 0; the port from its first line). Bounded counts, no timing:
#   1. -m echo on examples/echo.lua: exit 0, errors=0, 2 MB checked
#   2. -m connrate on examples/zen.lua: exit 0, errors=0, 200 connections
#   3. -m echo on bench/corrupt_echo.lua (one flipped bit): exit 1, a mismatch
#   4. -m connrate on examples/echo.lua (the question comes back): exit 1, a mismatch
set -u
REACTORD=$1
LG=$2
cd "$(dirname "$0")/.." || exit 1
W=$(mktemp -d "${TMPDIR:-/tmp}/rd-lgcheck.XXXXXX")
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$W"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=1; }
start() { # start SCRIPT: PID, PORT
    "$REACTORD" "$1" -p 0 >"$W/d.out" 2>"$W/d.err" &
    PID=$!
    PORT=
    for _ in $(seq 200); do
        PORT=$(sed -n '1s/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$W/d.out")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05 # waiting for the daemon's first line, not synchronising a test step
    done
    fail "$1: the daemon did not say where it listens: $(cat "$W/d.err")"
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=; }
run() { # run EXPECTED_RC ARGS...: the summary line in $LINE, stderr in $W/lg.err
    want=$1
    shift
    timeout 60 "$LG" -q -w 0 -t 10 "$@" 127.0.0.1 "$PORT" >"$W/lg.out" 2>"$W/lg.err"
    rc=$?
    LINE=$(tail -n 1 "$W/lg.out")
    echo "rd_loadgen $*: exit $rc: $LINE"
    [ "$rc" = "$want" ] || fail "rd_loadgen $*: exit $rc, expected $want; stderr: $(head -c 400 "$W/lg.err")"
}
field() { echo "$LINE" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

start examples/echo.lua && {
    run 0 -m echo -W 65536 -c 4 -n 2000000
    [ "$(field errors)" = 0 ] || fail "echo: errors=$(field errors)"
    [ "$(field bytes)" -ge 2000000 ] 2>/dev/null || fail "echo: bytes=$(field bytes), expected >= 2000000"
    [ "$(field checked)" -ge "$(field bytes)" ] 2>/dev/null || fail "echo: checked=$(field checked) < bytes"
    run 1 -m connrate -c 2 -n 50
    [ "$(field mismatches)" -ge 1 ] 2>/dev/null || fail "connrate on an echo server: no mismatch reported"
    grep -q 'mismatch on connection' "$W/lg.err" || fail "connrate on an echo server: no mismatch message"
    stop
}
start examples/zen.lua && {
    run 0 -m connrate -c 4 -n 200
    [ "$(field errors)" = 0 ] || fail "connrate: errors=$(field errors)"
    [ "$(field requests)" = 200 ] || fail "connrate: requests=$(field requests), expected 200"
    stop
}
start bench/corrupt_echo.lua && {
    run 1 -m echo -c 1 -n 2000000
    [ "$(field mismatches)" = 1 ] || fail "corrupt echo: mismatches=$(field mismatches), expected 1"
    grep -q 'echo mismatch on connection 0 at stream byte 99999: expected' "$W/lg.err" ||
        fail "corrupt echo: no mismatch message at byte 99999: $(cat "$W/lg.err")"
    stop
}
[ $bad = 0 ] && echo "loadgen_check: ok"
exit $bad
