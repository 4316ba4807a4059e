#!/usr/bin/env bash
# bench/batteries.sh: issue 10's batteries benchmarks, each pair in one run on one
# machine (see bench/README.md, "Batteries"):
#
#   zen1    zen at 50 connections, one question in flight on each: the same peers
#           as zen16 (issue 10's "zen at 50 connections"); idle spinners on for it
#   zen16   zen at 50 connections, 16 questions in flight on each: callbacks
#           (examples/zen.lua) against streams (bench/zen_stream.lua), raw_zen for scale
#   int32   Int32StringReceiver echo, 16 frames in flight at 50 connections:
#           bench/int32_echo.lua [and bench/int32_echo_stream.lua] against raw_int32_echo
#   chat    examples/chat.lua with 100 members against raw_chat: messages delivered per second;
#           (examples/chat.lua frames each message once: broadcastString, a C fan-out)
#
# Every answer and every delivered message is checked by rd_loadgen (a wrong one
# fails the run). Each row is REPEAT rounds; a round runs every peer of the row
# once, in order in odd rounds and backwards in even ones (ABBA). The ratios are
# medians of per-round ratios, as run.sh's `pair med`.
#
# Environment knobs (defaults in brackets):
#   REACTORD   [build/reactord]       BUILD_DIR  where rd_loadgen and the raw servers are [build]
#   ROWS       ["zen1 zen16 int32 chat"]   REPEAT     rounds per row [7]
#   DURATION   seconds measured per run [2]     WARMUP  warm-up seconds per run [1]
#   CONNS      connections for zen16 and int32 [50]   DEPTH  requests in flight on each [16]
#   MEMBERS    chat members [100]     CHAT_DEPTH  messages per member not yet delivered to all [16]
#   STREAMS    1 = measure the stream-style peers, 0 = not; default 1 if
#              scripts/reactor/stream.lua exists
#   SERVER_CPU / LOADGEN_CPU  CPUs to pin to [0 / 1]
#   NICE       run the server and rd_loadgen under `nice -n NICE` (e.g. -10, as root: ahead
#              of a niced build or fuzzer that shares the machine) [unset: as started]
#   BENCH_SPIN 1 = SCHED_IDLE spinners keep both CPUs out of idle, 0 = never; default:
#              for zen1 only, whose one question in flight leaves the CPUs idle between
#              answers (a halted vCPU takes ~1 ms to wake); the other rows keep the server
#              busy, and the spinners cost raw_chat a third of its rate
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

REACTORD=${REACTORD:-build/reactord}
BUILD_DIR=${BUILD_DIR:-build}
ROWS=${ROWS:-"zen1 zen16 int32 chat"}
REPEAT=${REPEAT:-7}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
DEPTH=${DEPTH:-16}
MEMBERS=${MEMBERS:-100}
CHAT_DEPTH=${CHAT_DEPTH:-16}
if [ -f scripts/reactor/stream.lua ]; then STREAMS=${STREAMS:-1}; else STREAMS=${STREAMS:-0}; fi
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
BENCH_SPIN=${BENCH_SPIN:-auto}
HOST=127.0.0.1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/reactord-batteries.XXXXXX") || exit 1
PIDS=()
FAILED=0
KEEP_WORK=0

say() { printf '%s\n' "$*" >&2; }
fail() {
    say "batteries: FAIL: $*"
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
    if [ "$KEEP_WORK" = 1 ]; then say "batteries: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ------------------------------------------------------------------

TOOLS="rd_loadgen:loadgen raw_zen:raw_zen raw_int32_echo:raw_int32_echo raw_chat:raw_chat"
declare -A BIN
for t in $TOOLS; do
    name=${t%%:*} src=bench/${t#*:}.c
    bin=$BUILD_DIR/$name
    [ -x "$bin" ] || bin=$BUILD_DIR/bench/$name
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
        bin=$WORK/$name
        cc -std=c11 -O2 -Wall -Wextra -o "$bin" "$src" -lev || {
            fail "could not build $name from $src (is libev-dev installed?)"
            exit 1
        }
    fi
    BIN[$name]=$bin
done
say "batteries: tools: ${BIN[rd_loadgen]} ${BIN[raw_zen]} ${BIN[raw_int32_echo]} ${BIN[raw_chat]}"
[ -x "$REACTORD" ] || {
    fail "$REACTORD not found or not executable (build it first, or set REACTORD)"
    exit 1
}

PIN_SERVER=()
PIN_LOADGEN=()
PIN_NOTE="not pinned (needs taskset and 2 CPUs)"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_LOADGEN=(taskset -c "$LOADGEN_CPU")
    PIN_NOTE="server on CPU $SERVER_CPU, loadgen on CPU $LOADGEN_CPU"
fi
if [ -n "${NICE:-}" ]; then
    PIN_SERVER=(nice -n "$NICE" "${PIN_SERVER[@]}")
    PIN_LOADGEN=(nice -n "$NICE" "${PIN_LOADGEN[@]}")
    PIN_NOTE="$PIN_NOTE, nice $NICE"
fi
BUSY=$(
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat
    sleep 1
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat
)
BUSY=$(awk 'NR == 1 {b = $1; i = $2} NR == 2 {db = $1 - b; di = $2 - i
    printf "%.0f", (db + di > 0 ? 100 * db / (db + di) : 0)}' <<<"$BUSY")
[ "$BUSY" -le 10 ] || say "batteries: WARNING: the machine is ${BUSY}% busy before the bench starts"
SPINNERS=()
spin_on() {
    [ ${#SPINNERS[@]} -eq 0 ] && [ ${#PIN_SERVER[@]} -gt 0 ] && command -v chrt >/dev/null || return 0
    for cpu in "$SERVER_CPU" "$LOADGEN_CPU"; do
        chrt -i 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
        SPINNERS+=($!)
        PIDS+=($!)
    done
}
spin_off() {
    [ ${#SPINNERS[@]} -gt 0 ] || return 0
    kill -TERM "${SPINNERS[@]}" 2>/dev/null
    wait "${SPINNERS[@]}" 2>/dev/null
    SPINNERS=()
}
# spinners for ROW? (BENCH_SPIN: 1 every row, 0 none, auto zen1 only)
row_spins() {
    [ "$BENCH_SPIN" = 1 ] || { [ "$BENCH_SPIN" = auto ] && [ "$1" = zen1 ]; }
}
case $BENCH_SPIN in
1) PIN_NOTE="$PIN_NOTE, idle spinners on" ;;
auto) PIN_NOTE="$PIN_NOTE, idle spinners on for zen1" ;;
esac

# ---- rows and peers ---------------------------------------------------------

# row_peers ROW: its peers, the reference (raw C) first, then the callback version
row_peers() {
    local s=""
    [ "$STREAMS" = 1 ] && s=" reactord_stream"
    case $1 in
    zen1 | zen16) echo "raw_zen reactord_cb$s" ;;
    int32) echo "raw_int32_echo reactord_cb$s" ;;
    chat) echo "raw_chat reactord_cb" ;;
    *) return 1 ;;
    esac
}
peer_cmd() { # peer_cmd ROW PEER
    case $2 in
    raw_*) echo "${BIN[$2]} -p 0 $HOST" ;;
    reactord_cb)
        case $1 in
        zen1 | zen16) echo "$REACTORD examples/zen.lua -p 0 $HOST" ;;
        int32) echo "$REACTORD bench/int32_echo.lua -p 0 $HOST" ;;
        chat) echo "$REACTORD examples/chat.lua -p 0 $HOST" ;;
        esac
        ;;
    reactord_stream)
        case $1 in
        zen1 | zen16) echo "$REACTORD bench/zen_stream.lua -p 0 $HOST" ;;
        int32) echo "$REACTORD bench/int32_echo_stream.lua -p 0 $HOST" ;;
        esac
        ;;
    esac
}
row_load() { # the load generator's mode for a row
    case $1 in
    zen1) echo "-m zen -c $CONNS -D 1" ;;
    zen16) echo "-m zen -c $CONNS -D $DEPTH" ;;
    int32) echo "-m int32 -c $CONNS -D $DEPTH" ;;
    chat) echo "-m chat -c $MEMBERS -D $CHAT_DEPTH" ;;
    esac
}
row_title() {
    case $1 in
    zen1) echo "zen, $CONNS connections x 1 question in flight (answers/s)" ;;
    zen16) echo "zen, $CONNS connections x $DEPTH questions in flight (answers/s)" ;;
    int32) echo "Int32 frames echo, $CONNS connections x $DEPTH frames in flight (frames/s)" ;;
    chat) echo "chat room, $MEMBERS members, $CHAT_DEPTH messages each in flight (deliveries/s)" ;;
    esac
}

declare -A SPID SPORT
start_server() { # start_server ROW PEER
    local out=$WORK/$1.$2.out err=$WORK/$1.$2.err pid port=
    # shellcheck disable=SC2046
    "${PIN_SERVER[@]}" $(peer_cmd "$1" "$2") >"$out" 2>"$err" </dev/null &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n '1s/^.*: listening on .*:\([0-9][0-9]*\)$/\1/p' "$out" 2>/dev/null)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        fail "$1/$2 did not start listening ($(peer_cmd "$1" "$2")); stderr:"
        sed 's/^/    /' "$err" | head -n 20 >&2
        kill -KILL "$pid" 2>/dev/null
        return 1
    fi
    SPID[$2]=$pid
    SPORT[$2]=$port
}
stop_server() {
    local pid=${SPID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    SPID[$1]=
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else printf "-"}'; }
mediani() { sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else printf "-"}'; }

# run_row ROW: REPEAT ABBA rounds; prints the row's table on stdout
run_row() {
    local row=$1 peers p i k line rc out
    read -r -a peers <<<"$(row_peers "$row")"
    local live=()
    for p in "${peers[@]}"; do start_server "$row" "$p" && live+=("$p"); done
    for ((i = 1; i <= REPEAT; i++)); do
        local order=("${live[@]}")
        if ((i % 2 == 0)); then
            order=()
            for ((k = ${#live[@]} - 1; k >= 0; k--)); do order+=("${live[$k]}"); done
        fi
        for p in "${order[@]}"; do
            [ -n "${SPID[$p]:-}" ] || continue
            out=$WORK/$row.$p.$i.load
            # shellcheck disable=SC2046
            timeout -k 5 "$(awk -v a="$DURATION" -v b="$WARMUP" 'BEGIN {print int(a + b + 61)}')" "${PIN_LOADGEN[@]}" "${BIN[rd_loadgen]}" -q \
                $(row_load "$row") -d "$DURATION" -w "$WARMUP" -S "${SPID[$p]}" \
                "$HOST" "${SPORT[$p]}" >"$out" 2>"$out.err" </dev/null
            rc=$?
            line=$(grep '^rd_loadgen: mode=load' "$out" | tail -n 1)
            say "batteries: $row $p round $i: ${line#rd_loadgen: }"
            if [ $rc -ne 0 ] || [ -z "$line" ] || ! kill -0 "${SPID[$p]}" 2>/dev/null; then
                fail "$row/$p round $i: loadgen exit $rc"
                sed 's/^/    /' "$out.err" | head -n 10 >&2
                kill -0 "${SPID[$p]}" 2>/dev/null || {
                    fail "$row/$p died; its stderr:"
                    tail -n 10 "$WORK/$row.$p.err" | sed 's/^/    /' >&2
                    SPID[$p]=
                }
                echo "FAIL" >>"$WORK/$row.$p.rps"
                continue
            fi
            echo "$(field rps "$line")" >>"$WORK/$row.$p.rps"
            echo "$(field srv_us_per_req "$line")" >>"$WORK/$row.$p.us"
            echo "$(field srv_cpu "$line" | tr -d %)" >>"$WORK/$row.$p.scpu"
            echo "$(field cpu "$line" | tr -d %)" >>"$WORK/$row.$p.gcpu"
            echo "$(field p50_us "$line")" >>"$WORK/$row.$p.p50"
        done
    done
    for p in "${live[@]}"; do stop_server "$p"; done

    local ref=${peers[0]} cb=reactord_cb
    echo
    echo "$(row_title "$row")"
    printf '%-16s %12s %8s %8s %8s %9s %10s %10s\n' peer "median/s" "p50 us" us/op srv-cpu gen-cpu \
        "x $ref" "x callback"
    for p in "${peers[@]}"; do
        [ -s "$WORK/$row.$p.rps" ] || continue
        local vsref=- vscb=-
        if grep -qv FAIL "$WORK/$row.$p.rps" && ! grep -q FAIL "$WORK/$row.$p.rps" "$WORK/$row.$ref.rps"; then
            vsref=$(paste -d' ' "$WORK/$row.$p.rps" "$WORK/$row.$ref.rps" | awk '$2 > 0 {print $1 / $2}' |
                tee "$WORK/$row.$p.vsref" | median)
            if [ "$p" != "$ref" ] && [ "$p" != "$cb" ] && ! grep -q FAIL "$WORK/$row.$cb.rps"; then
                vscb=$(paste -d' ' "$WORK/$row.$p.rps" "$WORK/$row.$cb.rps" | awk '$2 > 0 {print $1 / $2}' |
                    tee "$WORK/$row.$p.vscb" | median)
            fi
        fi
        printf '%-16s %12s %8s %8s %8s %9s %10s %10s\n' "$p" "$(grep -v FAIL "$WORK/$row.$p.rps" | mediani)" \
            "$(median <"$WORK/$row.$p.p50")" "$(median <"$WORK/$row.$p.us")" \
            "$(mediani <"$WORK/$row.$p.scpu")%" "$(mediani <"$WORK/$row.$p.gcpu")%" "$vsref" "$vscb"
        [ -s "$WORK/$row.$p.vsref" ] && [ "$p" != "$ref" ] &&
            say "batteries: $row $p per-round ratios to $ref: $(awk '{printf "%.2f ", $1}' "$WORK/$row.$p.vsref")"
        [ -s "$WORK/$row.$p.vscb" ] &&
            say "batteries: $row $p per-round ratios to reactord_cb: $(awk '{printf "%.2f ", $1}' "$WORK/$row.$p.vscb")"
    done
    # per server CPU-second: the rate a peer would give on a CPU of its own,
    # which the load generator's share of the machine does not move
    local p cpuref
    for p in "${peers[@]}"; do
        [ "$p" = "$ref" ] && continue
        [ -s "$WORK/$row.$p.us" ] || continue
        for cpuref in "$ref" "$cb"; do
            [ "$p" = "$cpuref" ] && continue
            [ -s "$WORK/$row.$cpuref.us" ] || continue
            paste -d' ' "$WORK/$row.$p.us" "$WORK/$row.$cpuref.us" |
                awk -v p="$p" -v r="$cpuref" '$1 > 0 {x[++n] = $2 / $1} END {
                    if (!n) exit
                    for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) {
                        t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
                    m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                    printf "%s per server CPU-second x %s: %.2f (median of %d rounds)\n", p, r, m, n }'
        done
    done
}

say "batteries: $(nproc) CPUs, $PIN_NOTE; $REPEAT x ${DURATION}s per peer and row after ${WARMUP}s warm-up; streams $([ "$STREAMS" = 1 ] && echo on || echo off)"
echo "batteries: $(nproc) CPUs, $PIN_NOTE; machine ${BUSY}% busy at the start"
echo "each figure the median of $REPEAT rounds of ${DURATION}s (after ${WARMUP}s warm-up);"
echo "x PEER: median over the rounds of (this peer's rate / PEER's in the same round)"
for row in $ROWS; do
    row_peers "$row" >/dev/null || {
        fail "unknown row $row (zen1, zen16, int32, chat)"
        continue
    }
    if row_spins "$row"; then spin_on; else spin_off; fi
    run_row "$row"
done
echo
echo "us/op: server CPU time per answer (chat: per delivered message); srv-cpu, gen-cpu: CPU use"
echo "of the server and of rd_loadgen while measuring (100% = one CPU)"
if [ "$FAILED" != 0 ]; then
    echo "batteries: some runs FAILED (see messages above)"
    exit 1
fi
exit 0
