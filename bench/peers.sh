#!/usr/bin/env bash
# bench/peers.sh: `make bench`'s comparison of reactord with every peer, in one
# session, on one load generator that checks every reply (rd_loadgen for zen,
# wrk with bench/peers/wrk_check.lua for HTTP), server and load pinned to
# separate CPUs. Ends with a table (bench/results/peers.md) and a chart of
# the ratios to raw C (bench/results/peers.svg, gnuplot). See bench/README.md.
#
#   BENCH_QUICK=1   short runs (1 s, 2 rounds, 2000 idle connections): a check, not figures
#   REPEAT, DURATION, WARMUP   as bench/run.sh (defaults: 3, 2, 1)
#   SKIP_SETUP=1    do not install missing peers
#   SECTIONS        which loads ["zen zen16 echo connrate http"]
#   ECHO_CONNS, ECHO_WINDOW  echo streaming: connections ["1 50"], bytes in flight each [65536]
#   CONNRATE_CONNS  connection rate: connections at a time ["1 50"]
#   BENCH_OUT       where the table, chart and raw figures go [bench/results]
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
BUILD_DIR=${BUILD_DIR:-build}
REACTORD=${REACTORD:-$BUILD_DIR/reactord}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${REPEAT:=2}" "${DURATION:=1}" "${WARMUP:=0.5}" "${IDLE_CONNS:=2000}" "${ZEN_CONNS:=1 50 1000}"
else
    : "${REPEAT:=3}" "${DURATION:=2}" "${WARMUP:=1}" "${IDLE_CONNS:=10000}" "${ZEN_CONNS:=1 50 1000 10000}"
fi
: "${SECTIONS:=zen zen16 echo connrate http}" "${ECHO_CONNS:=1 50}" "${ECHO_WINDOW:=65536}" "${CONNRATE_CONNS:=1 50}"
export REPEAT DURATION WARMUP BUILD_DIR REACTORD
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
RESULTS=$OUT/peers.raw
: >"$RESULTS"
say() { printf 'bench: %s\n' "$*" >&2; }
T0=$(date +%s)

# ---- setup: the peers, from Debian, only what is missing (as `make deps`) ----
PEER_DEPS="nginx libnginx-mod-http-lua wrk python3-uvloop python3-twisted lua-luv lua-cqueues gnuplot-nox nodejs"
if [ "${SKIP_SETUP:-0}" != 1 ]; then
    missing=""
    for p in $PEER_DEPS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        say "installing peers:$missing"
        sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing ||
            say "WARNING: could not install every peer; missing ones are skipped"
    fi
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
say "open-file limit $(ulimit -n)"

ZEN_PEERS="raw_zen reactord reactord_w2 reactord_w2c0 node_zen py_zen uvloop_zen twisted_zen luv_zen cqueues_zen"
ECHO_PEERS="raw_echo reactord_echo reactord_echo_w2 node_echo py_echo uvloop_echo twisted_echo luv_echo cqueues_echo"
if "$REACTORD" --help 2>&1 | grep -q -- '--workers'; then
    say "NOTE: reactord_w2 rows are reactord --workers 2 on both CPUs, so they share CPU 1 with the load generator; reactord_w2c0 rows are --workers 2 on CPU 0 alone, as every one-process server; their server CPU is the master's plus the workers'"
else
    say "NOTE: reactord has no --workers flag in this build: the N-worker rows are skipped"
fi

# Progress: each section's share of the planned time, counted from the start.
n_zen=$(wc -w <<<"$ZEN_PEERS")
per_run=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN {print d + w + 0.5}')
plan_zen=$(awk -v n="$n_zen" -v r="$REPEAT" -v p="$per_run" -v c="$(wc -w <<<"$ZEN_CONNS")" 'BEGIN {printf "%d", n * r * p * c + n * 20}')
plan_pipe=$(awk -v n="$n_zen" -v r="$REPEAT" -v p="$per_run" 'BEGIN {printf "%d", n * r * p}')
plan_echo=$(awk -v n="$(wc -w <<<"$ECHO_PEERS")" -v r="$REPEAT" -v p="$per_run" -v c="$(wc -w <<<"$ECHO_CONNS")" 'BEGIN {printf "%d", n * r * p * c + n}')
plan_conn=$(awk -v n="$n_zen" -v r="$REPEAT" -v p="$per_run" -v c="$(wc -w <<<"$CONNRATE_CONNS")" 'BEGIN {printf "%d", n * r * p * c + n}')
plan_http=$(awk -v r="$REPEAT" -v p="$per_run" 'BEGIN {printf "%d", 5 * 3 * r * (p + 0.5)}')
left() { # left PLANNED_SECONDS_OF_WHAT_REMAINS
    say "----- $1; about $2 s planned from here ($(($(date +%s) - T0)) s so far)"
}

# ---- zen: 1 in flight, every connection count, memory per idle connection ----
left "zen, 1 in flight, connections $ZEN_CONNS, and idle memory at $IDLE_CONNS" $((plan_zen + plan_pipe + plan_echo + plan_conn + plan_http))
[[ " ${SECTIONS} " = *" zen "* ]] &&
    PEERS=$ZEN_PEERS CONNS=$ZEN_CONNS IDLE_CONNS=$IDLE_CONNS DEPTH=1 RESULTS=$RESULTS bench/run.sh | tee "$OUT/zen.txt"

# ---- zen: 16 pipelined, 50 connections ----
left "zen, 16 pipelined, 50 connections" $((plan_pipe + plan_echo + plan_conn + plan_http))
[[ " ${SECTIONS} " = *" zen16 "* ]] &&
    PEERS=$ZEN_PEERS CONNS=50 IDLE_CONNS=0 DEPTH=16 RESULTS=$RESULTS bench/run.sh | tee "$OUT/zen16.txt"

# ---- echo streaming: a window of checked bytes in flight per connection, MB/s ----
left "echo streaming, ${ECHO_WINDOW}-byte window, connections $ECHO_CONNS" $((plan_echo + plan_conn + plan_http))
[[ " ${SECTIONS} " = *" echo "* ]] &&
    PEERS=$ECHO_PEERS BASE=raw_echo LOADGEN_ARGS="-m echo -W $ECHO_WINDOW" CONNS=$ECHO_CONNS IDLE_CONNS=0 DEPTH=1 \
        RESULT_TAG=echo RESULTS=$RESULTS bench/run.sh | tee "$OUT/echo.txt"

# ---- connection rate: connect, one zen question, close (RST), again; connections/s ----
left "connection rate (zen), connections at a time $CONNRATE_CONNS" $((plan_conn + plan_http))
[[ " ${SECTIONS} " = *" connrate "* ]] &&
    PEERS=$ZEN_PEERS LOADGEN_ARGS="-m connrate" CONNS=$CONNRATE_CONNS IDLE_CONNS=0 DEPTH=1 \
        RESULT_TAG=connrate RESULTS=$RESULTS bench/run.sh | tee "$OUT/connrate.txt"

# ---- HTTP hello: reactord's router, raw C, nginx, nginx-lua, Node http ----
left "HTTP hello with wrk (checking each response): 50 and 1000 connections, 16 pipelined" $plan_http
WORK=$(mktemp -d "${TMPDIR:-/tmp}/reactord-peers.XXXXXX")
SPID=
stop_srv() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}
trap 'stop_srv; rm -rf "$WORK"' EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PEERS="raw_http reactord_http nginx nginx_lua node_http"
http_start() { # http_start NAME: SPID, HPORT
    local name=$1 port
    port=$(free_port)
    case $name in
    raw_http) taskset -c 0 "$BUILD_DIR/raw_http" -p "$port" 127.0.0.1 >"$WORK/$name.out" 2>&1 & ;;
    reactord_http) taskset -c 0 "$REACTORD" examples/http_hello.lua -p "$port" 127.0.0.1 >"$WORK/$name.out" 2>&1 & ;;
    node_http) taskset -c 0 node bench/peers/node_http.js -p "$port" 127.0.0.1 >"$WORK/$name.out" 2>&1 & ;;
    nginx | nginx_lua)
        command -v nginx >/dev/null || command -v /usr/sbin/nginx >/dev/null || return 1
        local pre=$WORK/$name body loadmod=""
        mkdir -p "$pre/tmp" "$pre/logs"
        if [ "$name" = nginx_lua ]; then
            [ -f /usr/share/nginx/modules-available/mod-http-lua.conf ] || [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || return 1
            loadmod="load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
            body="content_by_lua_block { ngx.print(\"Hello from Epoll Server\") }"
        else
            body="return 200 \"Hello from Epoll Server\";"
        fi
        sed -e "s|@PORT@|$port|; s|@PREFIX@|$pre|g; s|@LOADMOD@|$loadmod|; s|@BODY@|$body|" \
            bench/peers/nginx.conf.in >"$pre/nginx.conf"
        taskset -c 0 /usr/sbin/nginx -p "$pre" -c "$pre/nginx.conf" >"$WORK/$name.out" 2>&1 &
        ;;
    *) return 1 ;;
    esac
    SPID=$!
    HPORT=$port
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    say "$name did not start: $(tail -n 5 "$WORK/$name.out")"
    stop_srv
    return 1
}
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
wdur=$(awk -v d="$DURATION" 'BEGIN {printf "%d", (d < 1 ? 1 : d + 0.5)}')
HTTP_LOADS=("50 1" "1000 1" "50 16") # connections, pipelined depth
[[ " ${SECTIONS} " = *" http "* ]] || HTTP_LOADS=()
for load in "${HTTP_LOADS[@]}"; do
    read -r conns depth <<<"$load"
    for ((i = 1; i <= REPEAT; i++)); do
        for name in $HTTP_PEERS; do
            http_start "$name" || { say "$name skipped (not installed or did not start)"; continue; }
            # warm-up, then the measured run; server CPU from /proc/PID/stat around it
            PIPELINE=$depth timeout 60 taskset -c 1 wrk -t1 -c"$conns" -d1s -s bench/peers/wrk_check.lua \
                "http://127.0.0.1:$HPORT/" >/dev/null 2>&1
            t0=$(ticks "$SPID")
            o=$(PIPELINE=$depth timeout 120 taskset -c 1 wrk -t1 -c"$conns" -d"${wdur}s" \
                -s bench/peers/wrk_check.lua "http://127.0.0.1:$HPORT/" 2>&1)
            t1=$(ticks "$SPID")
            stop_srv
            resp=$(sed -n 's/^wrk_check: responses=\([0-9]*\).*/\1/p' <<<"$o")
            bad=$(sed -n 's/^wrk_check: .* bad=\([0-9]*\)/\1/p' <<<"$o")
            errs=$(grep -c 'Socket errors\|Non-2xx' <<<"$o")
            secs=$(sed -n 's/.* requests in \([0-9.]*\)\(m\?s\),.*/\1 \2/p' <<<"$o" |
                awk '{print ($2 == "ms" ? $1 / 1000 : $1)}')
            rps=$(awk -v r="${resp:-0}" -v s="${secs:-0}" 'BEGIN {printf "%.0f", (s > 0 ? r / s : 0)}')
            cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
            per=$(awk -v r="${resp:-0}" -v c="$cpu" 'BEGIN {printf "%.0f", (c > 0 ? r / c : 0)}')
            say "http c=$conns pipeline=$depth round $i/$REPEAT $name: $rps req/s, $per req per server CPU-s, bad=${bad:-?} errors=$errs"
            [ "${bad:-1}" = 0 ] && [ "$errs" = 0 ] || { say "$name: FAILED CHECK: $(head -c 600 <<<"$o")"; rps=FAIL; }
            echo "httpround $depth $name $conns $rps $per" >>"$RESULTS"
        done
    done
done

# ---- table and chart ----
say "writing $OUT/peers.md and $OUT/peers.svg ($(($(date +%s) - T0)) s in all)"
/usr/bin/python3 bench/peers_report.py "$RESULTS" "$OUT" "$(uname -r), $(nproc) CPUs, REPEAT=$REPEAT DURATION=${DURATION}s${BENCH_QUICK:+ QUICK}"
