#!/usr/bin/env bash
# bench/run.sh: raw_zen (raw C + libev) vs reactord (C + libev + Lua) [vs Node],
# same load, same machine, one run. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   REACTORD    reactord binary [build/reactord]       ZEN_SCRIPT  [examples/zen.lua]
#   BUILD_DIR   where CMake put rd_loadgen and raw_zen [build]; else run.sh builds them with cc
#   PEERS       servers to measure ["raw_zen reactord node_zen"]; node_zen only if node is on PATH
#   CONNS       connection counts ["1 50 1000"]        DURATION  seconds measured per run [2]
#   WARMUP      warm-up seconds per run [1]            REPEAT  rounds per row [7]; best kept,
#                                                      and the median of per-round ratios
#   IDLE_CONNS  idle connections for the RSS test [10000]; 0 = no memory test
#   DEPTH       questions in flight per connection (rd_loadgen -D) [1]
#   RESULTS     if set, a file to append one line per row to, for bench/peers.sh:
#               "zen DEPTH PEER CONNS RPS US_PER_REQ PAIR_MEDIAN RATIO_RUNS" and
#               "mem PEER BYTES_PER_CONN"
#   BASE        the peer every ratio is to [raw_zen]; raw_echo for -m echo
#   LOADGEN_ARGS  more rd_loadgen options, e.g. "-m echo -W 65536" or "-m connrate"
#               (echo counts MB as its "requests", connrate connections)
#   SERVER_CPU / LOADGEN_CPU  CPUs to pin to [0 / 1]; the --workers 2 peers
#               (reactord_w2, reactord_echo_w2) get both CPUs, the load's one included;
#               reactord_w2c0 is --workers 2 on SERVER_CPU alone, the CPU every
#               one-process server gets (what the master and the split cost)
#   BENCH_SPIN  1 = keep both CPUs out of the idle state with SCHED_IDLE spinners [1]
#               (on VMs a halted vCPU takes ~1 ms to wake, which would swamp the
#               1-connection numbers; the spinners yield at once to any real work)
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

REACTORD=${REACTORD:-build/reactord}
ZEN_SCRIPT=${ZEN_SCRIPT:-examples/zen.lua}
BUILD_DIR=${BUILD_DIR:-build}
PEERS=${PEERS:-"raw_zen reactord node_zen"}
CONNS=${CONNS:-"1 50 1000"}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-7}
IDLE_CONNS=${IDLE_CONNS:-10000}
DEPTH=${DEPTH:-1}
RESULTS=${RESULTS:-}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
BENCH_SPIN=${BENCH_SPIN:-1}
BASE=${BASE:-raw_zen}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
HOST=127.0.0.1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/reactord-bench.XXXXXX") || exit 1
PIDS=()
SPIN_PIDS=()
FAILED=0
KEEP_WORK=0

say() { printf '%s\n' "$*" >&2; }
fail() {
    say "bench: FAIL: $*"
    FAILED=1
    KEEP_WORK=1
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$KEEP_WORK" = 1 ]; then
        say "bench: logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---- tools ------------------------------------------------------------------

LOADGEN=$BUILD_DIR/rd_loadgen
RAW_ZEN=$BUILD_DIR/raw_zen
if [ ! -x "$LOADGEN" ] && [ -x "$BUILD_DIR/bench/rd_loadgen" ]; then
    LOADGEN=$BUILD_DIR/bench/rd_loadgen
    RAW_ZEN=$BUILD_DIR/bench/raw_zen
fi
RAW_ECHO=$(dirname "$RAW_ZEN")/raw_echo
if [ -x "$LOADGEN" ] && [ -x "$RAW_ZEN" ] && [ "$LOADGEN" -nt bench/loadgen.c ] &&
    [ "$RAW_ZEN" -nt bench/raw_zen.c ]; then
    say "bench: using $LOADGEN and $RAW_ZEN"
else
    say "bench: building rd_loadgen and raw_zen with cc into $WORK"
    LOADGEN=$WORK/rd_loadgen
    RAW_ZEN=$WORK/raw_zen
    RAW_ECHO=$WORK/raw_echo
    if ! cc -std=c11 -O2 -Wall -Wextra -o "$LOADGEN" bench/loadgen.c -lev ||
        ! cc -std=c11 -O2 -Wall -Wextra -o "$RAW_ZEN" bench/raw_zen.c -lev ||
        ! cc -std=c11 -O2 -Wall -Wextra -o "$WORK/raw_echo" bench/raw_echo.c -lev; then
        fail "could not build the bench tools (is libev-dev installed?)"
        exit 1
    fi
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_CONNS + 64)) ]; then
    say "bench: open-file limit is $NOFILE: idle test reduced to $((NOFILE - 64)) connections"
    IDLE_CONNS=$((NOFILE - 64))
fi

PIN_SERVER=()
PIN_LOADGEN=()
PIN_BOTH=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_LOADGEN=(taskset -c "$LOADGEN_CPU")
    PIN_NOTE="server on CPU $SERVER_CPU, loadgen on CPU $LOADGEN_CPU"
    PIN_BOTH=(taskset -c "$SERVER_CPU,$LOADGEN_CPU")
else
    PIN_NOTE="not pinned (needs taskset and 2 CPUs)"
fi

# Others' work on these CPUs skews every figure: say so up front.
BUSY=$(
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat
    sleep 1
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat
)
BUSY=$(awk 'NR == 1 {b = $1; i = $2} NR == 2 {db = $1 - b; di = $2 - i
    printf "%.0f", (db + di > 0 ? 100 * db / (db + di) : 0)}' <<<"$BUSY")
if [ "$BUSY" -gt 10 ]; then
    say "bench: WARNING: the machine is ${BUSY}% busy before the bench starts: expect noisy figures"
fi

if [ "$BENCH_SPIN" = 1 ] && [ ${#PIN_SERVER[@]} -gt 0 ] && command -v chrt >/dev/null; then
    for cpu in "$SERVER_CPU" "$LOADGEN_CPU"; do
        chrt -i 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
        PIDS+=($!)
        SPIN_PIDS+=($!)
    done
    PIN_NOTE="$PIN_NOTE, idle spinners on"
fi

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
now_ms() { date +%s%3N; }
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
# busy_ticks: all CPUs' non-idle time (user nice system irq softirq)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# cpu_ticks PID...: their user + system time
cpu_ticks() {
    local p t=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
# bound A B: A + B seconds rounded up to an integer, for timeout(1)
bound() { awk -v a="$1" -v b="$2" 'BEGIN { s = a + b; print (s == int(s) ? s : int(s) + 1) }'; }

# ---- servers ----------------------------------------------------------------

peer_cmd() {
    case $1 in
    raw_zen) echo "$RAW_ZEN -p 0 $HOST" ;;
    reactord) echo "$REACTORD $ZEN_SCRIPT -p 0 $HOST" ;;
    node_zen) echo "node bench/peers/node_zen.js -p 0 $HOST" ;;
    py_zen) echo "/usr/bin/python3 bench/peers/py_zen.py -p 0 $HOST" ;;
    uvloop_zen) echo "/usr/bin/python3 bench/peers/py_zen.py -u -p 0 $HOST" ;;
    twisted_zen) echo "/usr/bin/python3 bench/peers/twisted_zen.py -p 0 $HOST" ;;
    luv_zen) echo "lua5.4 bench/peers/luv_zen.lua -p 0 $HOST" ;;
    cqueues_zen) echo "lua5.4 bench/peers/cqueues_zen.lua -p 0 $HOST" ;;
    reactord_w2 | reactord_w2c0) echo "$REACTORD --workers 2 $ZEN_SCRIPT -p 0 $HOST" ;;
    raw_echo) echo "$RAW_ECHO -p 0 $HOST" ;;
    reactord_echo) echo "$REACTORD examples/echo.lua -p 0 $HOST" ;;
    reactord_echo_w2) echo "$REACTORD --workers 2 examples/echo.lua -p 0 $HOST" ;;
    node_echo) echo "node bench/peers/node_echo.js -p 0 $HOST" ;;
    py_echo) echo "/usr/bin/python3 bench/peers/py_echo.py -p 0 $HOST" ;;
    uvloop_echo) echo "/usr/bin/python3 bench/peers/py_echo.py -u -p 0 $HOST" ;;
    twisted_echo) echo "/usr/bin/python3 bench/peers/twisted_echo.py -p 0 $HOST" ;;
    luv_echo) echo "lua5.4 bench/peers/luv_echo.lua -p 0 $HOST" ;;
    cqueues_echo) echo "lua5.4 bench/peers/cqueues_echo.lua -p 0 $HOST" ;;
    esac
}

peer_available() {
    case $1 in
    raw_zen) return 0 ;;
    raw_echo) [ -x "$RAW_ECHO" ] || return 1 ;;
    reactord_echo) [ -x "$REACTORD" ] || return 1 ;;
    reactord_w2 | reactord_w2c0 | reactord_echo_w2)
        "$REACTORD" --help 2>&1 | grep -q -- --workers || return 1
        ;;
    reactord)
        [ -x "$REACTORD" ] || {
            fail "reactord: $REACTORD not found or not executable (build it first, or set REACTORD)"
            return 1
        }
        [ -f "$ZEN_SCRIPT" ] || {
            fail "reactord: $ZEN_SCRIPT not found"
            return 1
        }
        ;;
    node_zen | node_echo) command -v node >/dev/null || return 1 ;;
    py_zen | py_echo) [ -x /usr/bin/python3 ] || return 1 ;;
    uvloop_zen | uvloop_echo) /usr/bin/python3 -c 'import uvloop' 2>/dev/null || return 1 ;;
    twisted_zen | twisted_echo) /usr/bin/python3 -c 'import twisted' 2>/dev/null || return 1 ;;
    luv_zen | luv_echo) lua5.4 -e 'require "luv"' 2>/dev/null || return 1 ;;
    cqueues_zen | cqueues_echo) lua5.4 -e 'require "cqueues"' 2>/dev/null || return 1 ;;
    *)
        fail "unknown peer $1"
        return 1
        ;;
    esac
}

SERVER_PID=
SERVER_PORT=
# start_server NAME TAG: start peer NAME pinned, wait for its "listening on" line
start_server() {
    local name=$1 out=$WORK/$1.$2.out err=$WORK/$1.$2.err pin=("${PIN_SERVER[@]}")
    # 2 workers on this 2-CPU machine: they share CPU 1 with the load generator
    [[ $name != *_w2 ]] || pin=("${PIN_BOTH[@]}")
    # shellcheck disable=SC2046
    "${pin[@]}" $(peer_cmd "$name") >"$out" 2>"$err" </dev/null &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    SERVER_PORT=
    for _ in $(seq 100); do
        SERVER_PORT=$(sed -n '1s/^.*: listening on .*:\([0-9][0-9]*\)$/\1/p' "$out" 2>/dev/null)
        [ -n "$SERVER_PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "$name did not start listening; stderr:"
    sed 's/^/    /' "$err" >&2
    stop_server
    return 1
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    forget_pid "$SERVER_PID"
    SERVER_PID=
}

server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null && [ "$(awk '/^State:/ {print $2}' "/proc/$SERVER_PID/status")" != Z ]
}

# ---- load runs --------------------------------------------------------------

declare -A RPS P50 P99 SCPU GCPU SUS STEAL OTHERS RSS0 RSS1 PERCONN PAIRMED

# load_once NAME CONNS I: one closed-loop run against the running server (in a
# subshell: it cannot set globals); prints
# "rps p50 p99 srv_cpu gen_cpu srv_us_per_req steal others"
load_once() {
    local name=$1 c=$2 out=$WORK/$1.load.$2.$3.out s0 s1 b0 b1 o0 o1 w0 w1 line rc
    s0=$(steal_ticks)
    b0=$(busy_ticks)
    o0=$(cpu_ticks "$SERVER_PID" "${SPIN_PIDS[@]}")
    w0=$(now_ms)
    timeout -k 5 $(($(bound "$WARMUP" "$DURATION") + 90)) \
        "${PIN_LOADGEN[@]}" "$LOADGEN" -q $LOADGEN_ARGS -c "$c" -D "$DEPTH" -d "$DURATION" -w "$WARMUP" -S "$SERVER_PID" \
        "$HOST" "$SERVER_PORT" >"$out" 2>"$out.err" </dev/null
    rc=$?
    w1=$(now_ms)
    o1=$(cpu_ticks "$SERVER_PID" "${SPIN_PIDS[@]}")
    b1=$(busy_ticks)
    s1=$(steal_ticks)
    line=$(grep '^rd_loadgen: mode=load' "$out" | tail -n 1)
    say "bench: $name c=$c: ${line#rd_loadgen: }"
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        say "bench: $name at $c connections: loadgen exit $rc"
        sed 's/^/    /' "$out.err" | head -n 20 >&2
        return 1
    fi
    # over the whole run: steal = share of all CPUs' time the hypervisor took;
    # others = CPU time (100% = one CPU) used by anything but the server,
    # rd_loadgen and the spinners
    awk -v rps="$(field rps "$line")" -v p50="$(field p50_us "$line")" \
        -v p99="$(field p99_us "$line")" -v scpu="$(field srv_cpu "$line")" \
        -v gcpu="$(field cpu "$line")" \
        -v sus="$(field srv_us_per_req "$line")" -v st="$((s1 - s0))" -v hz="$CLK_TCK" \
        -v ms="$((w1 - w0))" -v ncpu="$NCPU" -v busy="$((b1 - b0))" -v ours="$((o1 - o0))" \
        -v gen="$(field cpu_total_s "$line")" 'BEGIN {
            secs = (ms > 0 ? ms / 1000 : 1)
            others = (busy - ours) / hz - gen
            printf "%s %s %s %s %s %s %.0f%% %.0f%%\n", rps, p50, p99, (scpu == "" ? "-" : scpu),
                gcpu, (sus == "" ? "-" : sus), 100 * st / hz / secs / ncpu,
                (others > 0 ? 100 * others / secs : 0) }'
}

# use_server NAME: make NAME's load server the current one
use_server() {
    SERVER_PID=${LOAD_PID[$1]}
    SERVER_PORT=${LOAD_PORT[$1]}
}

# load_all: for each connection count, REPEAT rounds that each run every live
# peer once (interleaved, so a slow spell of the machine hits all peers alike);
# each row keeps the run with the best req/s (other work on the machine only
# ever slows a run down, so the best run is the least disturbed one)
load_all() {
    local c i p rec best live
    declare -A recs
    for c in $CONNS; do
        for ((i = 1; i <= REPEAT; i++)); do
            # odd rounds run the peers in order, even rounds backwards (ABBA):
            # a machine that drifts faster or slower favours no one
            local order=("${LOAD_PEERS[@]}")
            if ((i % 2 == 0)); then
                local k
                order=()
                for ((k = ${#LOAD_PEERS[@]} - 1; k >= 0; k--)); do order+=("${LOAD_PEERS[$k]}"); done
            fi
            for p in "${order[@]}"; do
                [ -n "${LOAD_PID[$p]:-}" ] || continue
                use_server "$p"
                rec=$(load_once "$p" "$c" "$i")
                live=1
                server_alive || live=0
                if [ -z "$rec" ] || [ $live = 0 ]; then
                    RPS[$p,$c]=FAIL
                    if [ $live = 0 ]; then
                        fail "$p died during a $c-connection run; its stderr:"
                        tail -n 20 "$WORK/$p.load.err" | sed 's/^/    /' >&2
                        stop_server
                        LOAD_PID[$p]=
                    else
                        fail "$p at $c connections (run $i)"
                    fi
                    continue
                fi
                recs[$p,$c]+="$rec"$'\n'
            done
        done
        for p in "${LOAD_PEERS[@]}"; do
            [ -n "${recs[$p,$c]:-}" ] && [ "${RPS[$p,$c]:-}" != FAIL ] || continue
            # the median of per-round ratios: each round runs raw_zen and this
            # peer back to back, so a slow spell of the VM hits both alike
            if [ -n "${recs[$BASE,$c]:-}" ]; then
                PAIRMED[$p,$c]=$(paste -d' ' <(printf '%s' "${recs[$p,$c]}" | awk '{print $1}') \
                    <(printf '%s' "${recs[$BASE,$c]}" | awk '{print $1}') |
                    awk '$2 > 0 {print $1 / $2}' | tee "$WORK/ratios.$p.$c" | sort -g |
                    awk '{v[NR] = $1} END {if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
            fi
            [ "$p" = "$BASE" ] || [ ! -s "$WORK/ratios.$p.$c" ] ||
                say "bench: $p c=$c: per-round req/s ratios to $BASE: $(awk '{printf "%.2f ", $1}' "$WORK/ratios.$p.$c")"
            best=$(printf '%s' "${recs[$p,$c]}" | sort -n -r -k1,1 | head -n 1)
            read -r "RPS[$p,$c]" "P50[$p,$c]" "P99[$p,$c]" "SCPU[$p,$c]" "GCPU[$p,$c]" \
                "SUS[$p,$c]" "STEAL[$p,$c]" "OTHERS[$p,$c]" <<<"$best"
        done
    done
}

# mem_run NAME: RSS of a fresh server before and while holding IDLE_CONNS idle connections
mem_run() {
    local name=$1 out=$WORK/$1.idle.out lg ready=0 before after line rc
    start_server "$name" mem || return 1
    # one short connection first, so lazily built state is in the baseline
    timeout -k 5 30 "${PIN_LOADGEN[@]}" "$LOADGEN" -q -c 1 -n 200 -w 0 "$HOST" "$SERVER_PORT" \
        >/dev/null 2>&1 </dev/null || fail "$name: warm-up request failed"
    sleep 0.5
    before=$(rss_kb "$SERVER_PID")
    timeout -k 5 150 "${PIN_LOADGEN[@]}" "$LOADGEN" -q -i -c "$IDLE_CONNS" -C 90 \
        "$HOST" "$SERVER_PORT" >"$out" 2>"$out.err" </dev/null &
    lg=$!
    PIDS+=("$lg")
    for _ in $(seq 1200); do # up to 120 s
        if grep -q '^rd_loadgen: idle:' "$out"; then
            ready=1
            break
        fi
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    if [ $ready = 1 ]; then
        sleep 1 # let the server settle (GC, lazily freed buffers)
        after=$(rss_kb "$SERVER_PID")
    fi
    kill -TERM "$lg" 2>/dev/null
    wait "$lg"
    rc=$?
    forget_pid "$lg"
    line=$(grep '^rd_loadgen: mode=idle' "$out" | tail -n 1)
    say "bench: $name idle: ${line#rd_loadgen: }"
    if [ $ready != 1 ] || [ $rc -ne 0 ] || [ -z "$after" ] || [ -z "$before" ]; then
        fail "$name idle test: loadgen exit $rc, ready=$ready"
        sed 's/^/    /' "$out.err" | head -n 20 >&2
        PERCONN[$name]=FAIL
    else
        RSS0[$name]=$before
        RSS1[$name]=$after
        PERCONN[$name]=$(((after - before) * 1024 / IDLE_CONNS))
    fi
    server_alive || fail "$name died during the idle test"
    stop_server
}

# ---- main -------------------------------------------------------------------

RUN_PEERS=()
for p in $PEERS; do
    peer_available "$p" && RUN_PEERS+=("$p")
done

say "bench: $NCPU CPUs, $PIN_NOTE; $REPEAT x ${DURATION}s per row after ${WARMUP}s warm-up; $HOST"
declare -A LOAD_PID LOAD_PORT
LOAD_PEERS=()
for p in "${RUN_PEERS[@]}"; do
    start_server "$p" load || continue
    say "bench: $p listening on $HOST:$SERVER_PORT (pid $SERVER_PID)"
    LOAD_PID[$p]=$SERVER_PID
    LOAD_PORT[$p]=$SERVER_PORT
    LOAD_PEERS+=("$p")
done
load_all
for p in "${LOAD_PEERS[@]}"; do
    [ -n "${LOAD_PID[$p]}" ] || continue
    use_server "$p"
    stop_server
done
# (not the --workers peers: one pid's RSS would miss the workers')
[ "$IDLE_CONNS" -gt 0 ] && for p in "${RUN_PEERS[@]}"; do
    [[ $p == *_w2 || $p == *_w2c0 ]] || mem_run "$p"
done
if [ -n "$RESULTS" ]; then
    for c in $CONNS; do
        for p in "${RUN_PEERS[@]}"; do
            echo "${RESULT_TAG:-zen} $DEPTH $p $c ${RPS[$p,$c]:--} ${SUS[$p,$c]:--} ${PAIRMED[$p,$c]:--}" \
                "$(tr '\n' ',' <"$WORK/ratios.$p.$c" 2>/dev/null)"
        done
    done >>"$RESULTS"
    [ "$IDLE_CONNS" -gt 0 ] && for p in "${RUN_PEERS[@]}"; do
        echo "mem $p ${PERCONN[$p]:--}"
    done >>"$RESULTS"
fi

ratio() { # ratio A B: A/B to 2 places, or -
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}

echo
echo "zen protocol, closed loop ($DEPTH question(s) in flight per connection), $HOST"
echo "$NCPU CPUs, $PIN_NOTE; machine ${BUSY}% busy with other work at the start"
echo "each row: the best of $REPEAT runs of ${DURATION}s (after ${WARMUP}s warm-up each)"
echo
ROW='%-9s %5s %8s %8s %8s %7s %7s %7s %5s %6s %7s %8s %9s\n'
# shellcheck disable=SC2059
printf "$ROW" peer conns req/s "p50 us" "p99 us" srv-cpu gen-cpu us/req steal others \
    "req/s x" "us/req x" "pair med"
for c in $CONNS; do
    for p in "${RUN_PEERS[@]}"; do
        # shellcheck disable=SC2059
        printf "$ROW" "$p" "$c" "${RPS[$p,$c]:--}" "${P50[$p,$c]:--}" "${P99[$p,$c]:--}" \
            "${SCPU[$p,$c]:--}" "${GCPU[$p,$c]:--}" "${SUS[$p,$c]:--}" "${STEAL[$p,$c]:--}" \
            "${OTHERS[$p,$c]:--}" \
            "$(ratio "${RPS[$p,$c]:-}" "${RPS[$BASE,$c]:-}")" \
            "$(ratio "${SUS[$p,$c]:-}" "${SUS[$BASE,$c]:-}")" "${PAIRMED[$p,$c]:--}"
    done
done
echo "srv-cpu, gen-cpu: CPU use of the server and of rd_loadgen while measuring (100% = one CPU)"
echo "us/req: server CPU time per answer; req/s x, us/req x: the figure / raw_zen's"
echo "pair med: median over the rounds of (this peer's req/s / raw_zen's req/s in the same round)"
echo "steal: CPU the hypervisor took; others: CPU other processes used (the higher, the noisier)"
echo
echo "memory: $IDLE_CONNS idle connections (one request each), VmRSS of the server"
echo
printf '%-10s %12s %12s %12s %14s\n' peer "RSS before" "RSS idle" "bytes/conn" "vs raw_zen"
for p in "${RUN_PEERS[@]}"; do
    diff=-
    if [[ ${PERCONN[$p]:-} =~ ^-?[0-9]+$ && ${PERCONN[raw_zen]:-} =~ ^-?[0-9]+$ ]]; then
        diff=$(printf '%+d' $((PERCONN[$p] - PERCONN[raw_zen])))
    fi
    printf '%-10s %9s kB %9s kB %12s %14s\n' "$p" "${RSS0[$p]:--}" "${RSS1[$p]:--}" \
        "${PERCONN[$p]:--}" "$diff"
done
echo

if [ "$FAILED" != 0 ]; then
    echo "bench: some runs FAILED (see messages above)"
    exit 1
fi
exit 0
