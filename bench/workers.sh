#!/bin/sh
# bench/workers.sh: reactord --workers on zen, one load generator
# (build/rd_loadgen), three ways: one process; 2 workers, one SO_REUSEPORT
# socket each (the default); 2 workers, one shared socket. For each:
# answers/s, server CPU-seconds (master + workers, from /proc), answers per
# server CPU-second, and how the connections spread (per worker, from
# --status). The machine is shared: wall-clock figures are noisy.
#   sh bench/workers.sh [CONNECTIONS] [SECONDS]
set -eu
B=${BUILD:-build}
C=${1:-50}
D=${2:-5}
ctl=/tmp/reactord-bench-ctl.$$
cpu() { # utime+stime ticks of the given pids
  t=0
  for p in "$@"; do
    s=$(cut -d' ' -f14,15 /proc/$p/stat 2>/dev/null || echo "0 0")
    t=$((t + ${s% *} + ${s#* }))
  done
  echo $t
}
run() { # name, reactord args...
  name=$1; shift
  out=/tmp/reactord-bench-out.$$
  "$B/reactord" "$@" examples/zen.lua -p 0 >"$out" 2>/dev/null &
  mpid=$!
  until grep -q "listening on" "$out" 2>/dev/null; do sleep 0.05; done
  port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out" | head -1)
  sleep 0.5 # let worker 2 start (it starts once worker 1 serves)
  pids="$mpid $(cat /proc/$mpid/task/$mpid/children 2>/dev/null)"
  before=$(cpu $pids)
  res=$("$B/rd_loadgen" -q -c "$C" -d "$D" -w 1 127.0.0.1 "$port" 2>&1 | tail -1)
  after=$(cpu $pids)
  spread=""
  if [ -S "$ctl" ]; then spread=$("$B/reactord" --status "$ctl" | sed -n 's/^worker \([0-9]*\): pid [0-9]*, \([0-9]*\) connections, \([0-9]*\) requests.*/w\1: \2 conns \3 reqs/p' | tr '\n' ' '); fi
  kill -TERM $mpid; wait $mpid || true
  rm -f "$out"
  tick=$(getconf CLK_TCK)
  echo "$name | $res | server cpu $(( (after - before) ))/$tick s | $spread"
}
run "1 process" 
run "2 workers, reuseport" --workers 2 --control "$ctl"
run "2 workers, shared socket" --workers 2 --shared-socket --control "$ctl"
