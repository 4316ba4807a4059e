#!/usr/bin/env bash
# bench/callgrind.sh: instructions per zen request under callgrind, the figure of
# bench/README.md's "Where reactord's time goes", as one repeatable command.
#
#   bench/callgrind.sh [REACTORD] [REQUESTS] [CONNS]   (build/reactord 20000 50)
#
# One run: a fresh server under `valgrind --tool=callgrind --instr-atstart=no`;
# once it prints its listening line, `callgrind_control -i on`, then
# `rd_loadgen -c CONNS -n REQUESTS -w 0`, then `-i off` and a dump. The figure is
# the server's instructions (Ir, all threads) in that dump divided by REQUESTS;
# the window also holds the CONNS connects, the one question each connection asks
# before the count starts, and the closes (about 45 of reactord's ~2,690).
#
# Lua seeds its string hashes from time(NULL) and addresses, so a process started in
# another second collides differently in its tables (two started in the same second
# count the same): one run of reactord lands anywhere in about +-1 % (2,669-2,725
# in 27 runs of one build, in steps of ~9: one probe more or less per lookup),
# while windows inside one process agree within +-0.2 %. So each figure is the
# median of RUNS fresh processes (raw_zen has no Lua: +-0.05 %).
#
# Prints `NAME: N instructions per zen request (...)` on stdout, once for reactord
# and, with RAW=1, once for raw_zen; each run's figure goes to stderr. Exit status 1
# if a run failed (server did not start, wrong answers, callgrind unreachable).
#
# Environment knobs (defaults in brackets):
#   RUNS        fresh processes per server, median printed [9]
#   RAW         1 = measure raw_zen too [0]           RAW_ZEN  [$BUILD_DIR/raw_zen]
#   ZEN_SCRIPT  reactord's protocol script [examples/zen.lua]
#   BUILD_DIR   where rd_loadgen and raw_zen are [build] (`make all` builds them)
#   HOST        address to serve and load on [127.0.0.1]
#   TIMEOUT     seconds allowed for each step: start-up, the load, shutdown [120]
#   KEEP        1 = keep the callgrind dumps and logs (for callgrind_annotate) [0]
#   HTTP        1 = HTTP keep-alive instead of zen: HTTP_SCRIPT [examples/http_hello.lua]
#               under bench/http_load.py (python3; every response checked), PIPELINE
#               requests in flight per connection [1]; the figure is per HTTP request
#   PIPELINE    for zen too: questions in flight per connection (rd_loadgen -D) [1]
#   LOADGEN_ARGS  more rd_loadgen options for zen, e.g. "-m connrate" (then the figure
#               is per connection: connect, one question, its answer, close) []
#   ECHO        1 = echo streaming instead of zen: ECHO_SCRIPT [examples/echo.lua]
#               under rd_loadgen -m echo, ECHO_WINDOW bytes in flight per connection
#               [65536]; REQUESTS counts MB and the figure is per MB echoed
set -u

say() { printf '%s\n' "$*" >&2; }
die() {
    say "callgrind.sh: $*"
    exit 1
}

# Paths given by the caller are relative to the caller's directory; defaults to the
# repository root.
absolute() {
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 1
REACTORD=$(absolute "${1:-$ROOT/build/reactord}")
REQUESTS=${2:-20000}
CONNS=${3:-50}
[ $# -le 3 ] || die "usage: bench/callgrind.sh [REACTORD] [REQUESTS] [CONNS]"
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || die "REQUESTS must be a positive integer, got '$REQUESTS'"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "CONNS must be a positive integer, got '$CONNS'"
RUNS=${RUNS:-9}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
RAW=${RAW:-0}
BUILD_DIR=$(absolute "${BUILD_DIR:-$ROOT/build}")
ZEN_SCRIPT=$(absolute "${ZEN_SCRIPT:-$ROOT/examples/zen.lua}")
HOST=${HOST:-127.0.0.1}
HTTP=${HTTP:-0}
PIPELINE=${PIPELINE:-1}
ECHO=${ECHO:-0}
KIND=zen
NARG=$REQUESTS # rd_loadgen's -n: answers, or bytes for echo
if [ "$ECHO" = 1 ]; then
    ZEN_SCRIPT=$(absolute "${ECHO_SCRIPT:-$ROOT/examples/echo.lua}")
    LOADGEN_ARGS="-m echo -W ${ECHO_WINDOW:-65536} ${LOADGEN_ARGS:-}"
    NARG=$((REQUESTS * 1000000))
    [ "$RAW" = 1 ] && die "RAW=1 is for zen only"
fi
if [ "$HTTP" = 1 ]; then
    KIND=HTTP
    ZEN_SCRIPT=$(absolute "${HTTP_SCRIPT:-$ROOT/examples/http_hello.lua}")
    command -v python3 >/dev/null || die "python3 not found (HTTP=1 runs bench/http_load.py)"
    [ "$RAW" = 1 ] && die "RAW=1 is for zen only"
fi
TIMEOUT=${TIMEOUT:-120}
KEEP=${KEEP:-0}

for tool in valgrind callgrind_control; do
    command -v "$tool" >/dev/null || die "$tool not found: install Debian's valgrind (make deps does)"
done
for tool in timeout mkfifo tail; do
    command -v "$tool" >/dev/null || die "$tool not found: install Debian's coreutils"
done
LOADGEN=$BUILD_DIR/rd_loadgen
[ -x "$LOADGEN" ] || LOADGEN=$BUILD_DIR/bench/rd_loadgen
[ -x "$LOADGEN" ] || die "rd_loadgen not found in $BUILD_DIR: run 'make all' (or set BUILD_DIR)"
[ -x "$REACTORD" ] || die "reactord: $REACTORD not found or not executable: run 'make all' or pass the daemon's path"
[ -f "$ZEN_SCRIPT" ] || die "ZEN_SCRIPT: $ZEN_SCRIPT not found"
if [ "$RAW" = 1 ]; then
    RAW_ZEN=$(absolute "${RAW_ZEN:-$BUILD_DIR/raw_zen}")
    [ -x "$RAW_ZEN" ] || RAW_ZEN=$BUILD_DIR/bench/raw_zen
    [ -x "$RAW_ZEN" ] || die "raw_zen not found in $BUILD_DIR: run 'make all' (or set RAW_ZEN)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/reactord-callgrind.XXXXXX") || exit 1
SERVER_PID=
DRAIN_PID=
LOADGEN_PID=
FAILED=0

# end PID: SIGTERM, up to TIMEOUT seconds to exit, then SIGKILL; reaps it
end() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    timeout "$TIMEOUT" tail --pid="$1" -f /dev/null 2>/dev/null
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    end "$LOADGEN_PID"
    end "$SERVER_PID"
    end "$DRAIN_PID"
    if [ "$KEEP" = 1 ] || [ "$FAILED" = 1 ]; then
        say "callgrind.sh: dumps and logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# control DIR ARGS...: callgrind_control ARGS on the server; it exits 0 even when it
# could not reach the process, so its "OK." is what tells
control() {
    local dir=$1
    shift
    if ! timeout "$TIMEOUT" callgrind_control "$@" "$SERVER_PID" >"$dir/control.out" 2>&1 ||
        ! grep -q 'OK\.' "$dir/control.out"; then
        say "callgrind.sh: 'callgrind_control $* $SERVER_PID' failed (vgdb needs to ptrace the server):"
        sed 's/^/    /' "$dir/control.out" >&2
        return 1
    fi
}

# run_once DIR NAME CMD...: one fresh server under callgrind and one load; sets IR to
# the server's instructions during the load
run_once() {
    local dir=$1 name=$2 line port rc dump
    shift 2
    IR=
    mkdir -p "$dir" && mkfifo "$dir/stdout.fifo" || return 1
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.out.%p" \
        "$@" >"$dir/stdout.fifo" 2>"$dir/stderr" </dev/null &
    SERVER_PID=$!
    # the first line on stdout is "NAME: listening on HOST:PORT"; read returns at
    # once if the server exits first
    exec 3<"$dir/stdout.fifo"
    if ! read -r -t "$TIMEOUT" line <&3; then line=; fi
    cat <&3 >"$dir/stdout" &
    DRAIN_PID=$!
    exec 3<&-
    port=${line##*:}
    if [[ $line != "$name: listening on "* ]] || ! [[ $port =~ ^[0-9]+$ ]]; then
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            say "callgrind.sh: $name printed no listening line within ${TIMEOUT}s (got '$line'); its stderr:"
        else
            say "callgrind.sh: $name exited before its listening line (got '$line'); its stderr:"
        fi
        tail -n 20 "$dir/stderr" | sed 's/^/    /' >&2
        return 1
    fi
    control "$dir" -i on || return 1
    if [ "$HTTP" = 1 ]; then
        timeout -k 5 "$TIMEOUT" python3 "$ROOT/bench/http_load.py" -c "$CONNS" -n "$REQUESTS" \
            -P "$PIPELINE" "$HOST" "$port" >"$dir/loadgen" 2>"$dir/loadgen.err" </dev/null &
    else
        # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of options
        timeout -k 5 "$TIMEOUT" "$LOADGEN" -q -c "$CONNS" -n "$NARG" -w 0 -t 60 -D "$PIPELINE" \
            $LOADGEN_ARGS "$HOST" "$port" >"$dir/loadgen" 2>"$dir/loadgen.err" </dev/null &
    fi
    LOADGEN_PID=$!
    wait "$LOADGEN_PID"
    rc=$?
    LOADGEN_PID=
    control "$dir" -i off || return 1
    if [ "$HTTP" = 1 ]; then
        line=$(grep '^http_load:' "$dir/loadgen" | tail -n 1)
        [[ $line == "http_load: requests=$REQUESTS errors=0" ]] && line="$line " # as rd_loadgen's
        line=${line/requests=/ requests=}
    else
        line=$(grep '^rd_loadgen: mode=load' "$dir/loadgen" | tail -n 1)
        # echo counts MB to one decimal, and stops at the first read past -n
        [ "$ECHO" = 1 ] && line=${line/ requests=$REQUESTS.[0-9] / requests=$REQUESTS }
    fi
    if [ $rc -ne 0 ] || [[ $line != *" requests=$REQUESTS "* ]] || [[ $line != *" errors=0 "* ]]; then
        say "callgrind.sh: $name: rd_loadgen exit $rc: ${line:-no summary}"
        sed 's/^/    /' "$dir/loadgen.err" | head -n 20 >&2
        return 1
    fi
    control "$dir" -d || return 1
    dump=$dir/callgrind.out.$SERVER_PID.1
    IR=$(sed -n 's/^totals: *\([0-9][0-9]*\)$/\1/p' "$dump" 2>/dev/null)
    end "$SERVER_PID"
    SERVER_PID=
    end "$DRAIN_PID"
    DRAIN_PID=
    if [ -z "$IR" ]; then
        say "callgrind.sh: $name: no 'totals:' line in $dump"
        return 1
    fi
}

# measure NAME CMD...: RUNS runs; prints the median per request on stdout
measure() {
    local name=$1 i figs=() med
    for ((i = 1; i <= RUNS; i++)); do
        if ! run_once "$WORK/$name.$i" "$@"; then
            FAILED=1
            return 1
        fi
        figs+=("$(((IR + REQUESTS / 2) / REQUESTS))")
        say "callgrind.sh: $name run $i/$RUNS: $IR instructions, ${figs[-1]} per request"
    done
    med=$(printf '%s\n' "${figs[@]}" | sort -n | awk '{v[NR] = $1} END {
        printf "%d %d %d", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }')
    read -r med lo hi <<<"$med"
    local per="$KIND request" of="$REQUESTS requests"
    [ "$ECHO" = 1 ] && per="MB echoed" of="$REQUESTS MB"
    if [ "$RUNS" = 1 ]; then
        echo "$name: $med instructions per $per ($of, $CONNS connections)"
    else
        echo "$name: $med instructions per $per ($of, $CONNS connections;" \
            "median of $RUNS runs, $lo-$hi)"
    fi
}

measure reactord "$REACTORD" "$ZEN_SCRIPT" -p 0 "$HOST"
if [ "$RAW" = 1 ] && [ "$FAILED" = 0 ]; then
    measure raw_zen "$RAW_ZEN" -p 0 "$HOST"
fi
exit "$FAILED"
