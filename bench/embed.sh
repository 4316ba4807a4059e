#!/bin/sh
# bench/embed.sh: the embedding API's figures (issue 13).
#   1. rd_step(r, 0)'s cost per call, idle and with 1,000 idle connections
#      (build/embed_step).
#   2. The MUD host's 10 Hz tick jitter (wake-up time minus the tick's due
#      time) with 100 scripted players (bench/mud_players.lua), over 200
#      ticks (20 s).
# Needs a built tree: make (BUILD_DIR, default build). Timing figures on a
# shared 2-core machine are noisy: run it twice.
set -eu
build=${BUILD_DIR:-build}
players=${PLAYERS:-100}
ticks=${TICKS:-200}
echo "== rd_step(r, 0) per call"
"$build/embed_step" "${CALLS:-1000000}"
echo "== MUD tick jitter, $players players, $ticks ticks"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/mud" -p 0 -t "$ticks" >"$out" 2>/dev/null &
mud=$!
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
port=$(sed -n 's/^mud listening on .*:\([0-9]*\)$/\1/p' "$out")
seconds=$(( ticks / 10 + 2 ))
lua5.4 bench/mud_players.lua "$port" "$players" "$seconds" &
wait $mud
grep '^ticks' "$out"
wait
echo "== the same MUD, no players"
"$build/mud" -p 0 -t "$ticks" 2>/dev/null | grep '^ticks'
echo "== the machine itself: a bare ppoll tick, no reactor"
"$build/tick_baseline" "$ticks"
