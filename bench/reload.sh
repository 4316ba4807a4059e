#!/usr/bin/env bash
# bench/reload.sh: what a hot reload costs (issue 4).
#
#  1. p50/p99 of zen requests at 1,000 connections, without reloads and then
#     with a SIGHUP reload every 100 ms, same server, same load;
#  2. how long one reload takes with 10,000 live connections (the daemon's own
#     "reloaded ... X ms" log line, wall clock), over 20 reloads.
#
# Server on CPU 0, rd_loadgen on CPU 1, loopback only; every phase bounded.
# Knobs: REACTORD [build/reactord], BUILD_DIR [build], CONNS [1000],
# DURATION [5], IDLE_CONNS [10000], RELOADS_IDLE [20].
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
REACTORD=${REACTORD:-build/reactord}
BUILD_DIR=${BUILD_DIR:-build}
CONNS=${CONNS:-1000}
DURATION=${DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
RELOADS_IDLE=${RELOADS_IDLE:-20}
LOADGEN=$BUILD_DIR/rd_loadgen

WORK=$(mktemp -d "${TMPDIR:-/tmp}/reactord-reload.XXXXXX") || exit 1
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "reload bench: $*" >&2; exit 1; }
[ -x "$REACTORD" ] || die "no $REACTORD (make first)"
[ -x "$LOADGEN" ] || die "no $LOADGEN (make first)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# the served script is a copy, rewritten before each reload so every reload
# really loads a new version (a comment alternates; the answers do not change)
cp examples/zen.lua "$WORK/zen.lua"
rewrite() { printf -- '-- version %s\n' "$1" >"$WORK/tail"; cat examples/zen.lua "$WORK/tail" >"$WORK/zen.lua"; }

start() {
    taskset -c 0 "$REACTORD" "$WORK/zen.lua" -p 0 >"$WORK/out" 2>"$WORK/err" &
    SERVER=$!
    PIDS+=("$SERVER")
    for _ in $(seq 100); do
        grep -q listening "$WORK/out" 2>/dev/null && break
        sleep 0.05
    done
    PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/out")
    [ -n "$PORT" ] || die "the daemon did not start: $(cat "$WORK/err")"
}
stop() { kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

load() { # -> last line of rd_loadgen
    taskset -c 1 timeout $((DURATION + 60)) "$LOADGEN" -q -c "$CONNS" -d "$DURATION" -w 1 127.0.0.1 "$PORT" 2>&1 | tail -1
}

start
base=$(load)
[ -n "$(field rps "$base")" ] || die "load without reloads failed: $base"

# the same load, with a reload every 100 ms for the measured window
before=$(grep -c reloaded "$WORK/err")
(
    sleep 1 # the warm-up
    end=$(($(date +%s) + DURATION))
    v=0
    while [ "$(date +%s)" -lt "$end" ]; do
        v=$((v + 1))
        rewrite "$v"
        kill -HUP "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
) &
HUPPER=$!
PIDS+=("$HUPPER")
during=$(load)
wait "$HUPPER"
reloads=$(($(grep -c reloaded "$WORK/err") - before))
failed=$(grep -c "reload failed" "$WORK/err")
[ -n "$(field rps "$during")" ] || die "load with reloads failed: $during"
stop

# one reload at 10,000 live connections
start
taskset -c 1 "$LOADGEN" -q -i -c "$IDLE_CONNS" -d 120 127.0.0.1 "$PORT" >"$WORK/idle" 2>&1 &
IDLER=$!
PIDS+=("$IDLER")
for _ in $(seq 1200); do
    grep -q "connections ready" "$WORK/idle" && break
    kill -0 "$IDLER" 2>/dev/null || die "idle clients failed: $(cat "$WORK/idle")"
    sleep 0.1
done
grep -q "connections ready" "$WORK/idle" || die "idle clients never got ready"
for v in $(seq "$RELOADS_IDLE"); do
    n=$(grep -c reloaded "$WORK/err")
    rewrite "idle-$v"
    kill -HUP "$SERVER"
    for _ in $(seq 100); do
        [ "$(grep -c reloaded "$WORK/err")" -gt "$n" ] && break
        sleep 0.05
    done
done
live=$(grep reloaded "$WORK/err" | tail -1 | sed -n 's/.*: \([0-9]*\) live.*/\1/p')
times=$(grep reloaded "$WORK/err" | sed -n 's/.*, \([0-9.]*\) ms$/\1/p' | sort -n)
kill -TERM "$IDLER" 2>/dev/null
wait "$IDLER" 2>/dev/null
stop

count=$(wc -l <<<"$times")
median=$(sed -n "$(((count + 1) / 2))p" <<<"$times")
max=$(tail -1 <<<"$times")

printf '\nreload bench: %d connections, %s s per phase\n\n' "$CONNS" "$DURATION"
printf '| run | req/s | p50 us | p99 us | reloads | failed |\n|---|---|---|---|---|---|\n'
printf '| no reloads | %s | %s | %s | 0 | 0 |\n' "$(field rps "$base")" "$(field p50_us "$base")" "$(field p99_us "$base")"
printf '| reload every 100 ms | %s | %s | %s | %d | %d |\n' "$(field rps "$during")" \
    "$(field p50_us "$during")" "$(field p99_us "$during")" "$reloads" "$failed"
awk -v a="$(field p99_us "$during")" -v b="$(field p99_us "$base")" \
    'BEGIN { printf "\np99 with reloads / without: %.2fx (target <= 2x)\n", a / b }'
printf 'one reload at %s live connections: median %s ms, max %s ms over %d reloads (target < 5 ms)\n' \
    "$live" "$median" "$max" "$count"
[ "$(field dropped "$during")" = 0 ] || die "connections dropped during reloads: $during"
[ "$(field mismatches "$during")" = 0 ] || die "wrong answers during reloads: $during"
