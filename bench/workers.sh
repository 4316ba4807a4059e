#!/bin/sh
# bench/workers.sh: reactord --workers on zen, one load generator
# (build/rd_loadgen), three ways: one process; 2 workers, one SO_REUSEPORT
# socket each (the default); 2 workers, one shared socket. For each:
# answers/s, server CPU-seconds over the measured run (rd_loadgen -S: the
# master and every worker, summed over the process tree), answers per server
# CPU-second, and how the connections spread (per worker, from --status).
# The machine has 2 cores and the load generator needs one. So each way runs
# twice: on CPU 0 alone (the load generator on CPU 1), where every way gets
# the same CPU and the figure per CPU-second shows what the master and the
# split into workers cost; and unpinned, where the workers share CPU 1 with
# the load generator (what adding a core is worth here, contention included).
# Each round prints the 2-worker ways' answers per CPU-second against the
# 1-process one's of the same round and placement. Wall-clock figures are
# noisy (whole runs land ~25 % apart from one process start to the next):
# run several rounds and read the median ratio.
#   sh bench/workers.sh [CONNECTIONS] [SECONDS] [ROUNDS]
set -eu
B=${BUILD:-build}
C=${1:-50}
D=${2:-5}
R=${3:-1}
ctl=/tmp/reactord-bench-ctl.$$
out=/tmp/reactord-bench-out.$$
trap 'rm -f "$out" "$ctl"' EXIT
# wait_for TRIES CMD...: run CMD every 50 ms until it succeeds (at most TRIES)
wait_for() {
  tries=$1; shift
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || { echo "workers.sh: gave up waiting for: $*" >&2; exit 1; }
    sleep 0.05
  done
}
workers_up() { # every worker slot has a pid in --status
  [ "$("$B/reactord" --status "$ctl" | grep -c '^worker [0-9]*: pid [1-9]')" -eq "$1" ]
}
run() { # name, workers (1 = no --workers), reactord args...; $SRV/$GEN: CPU prefixes
  name=$1 n=$2; shift 2
  $SRV "$B/reactord" "$@" examples/zen.lua -p 0 >"$out" 2>/dev/null &
  mpid=$!
  wait_for 200 grep -q "listening on" "$out"
  port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out" | head -1)
  [ "$n" -gt 1 ] && wait_for 200 workers_up "$n"
  res=$($GEN "$B/rd_loadgen" -q -c "$C" -d "$D" -w 1 -S "$mpid" 127.0.0.1 "$port" 2>&1 | tail -1)
  spread=""
  if [ "$n" -gt 1 ]; then
    spread=$("$B/reactord" --status "$ctl" | sed -n 's/^worker \([0-9]*\): pid [0-9]*, \([0-9]*\) connections, \([0-9]*\) requests.*/w\1: \2 conns \3 reqs/p' | tr '\n' ' ')
  fi
  kill -TERM $mpid; wait $mpid || true
  rps=$(echo "$res" | sed -n 's/.* rps=\([0-9.]*\).*/\1/p')
  cpu=$(echo "$res" | sed -n 's/.* srv_cpu_s=\([0-9.]*\).*/\1/p')
  per=$(awk -v r="$rps" -v c="$cpu" -v d="$D" 'BEGIN { if (c > 0) printf "%.0f", r * d / c; else print "?" }')
  [ "$n" = 1 ] && base=$per
  ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { if (b > 0 && p > 0) printf "%.2fx", p / b; else print "?" }')
  echo "$name | rps $rps | server cpu ${cpu}s | answers per server CPU-s $per ($ratio) | $spread"
}
i=0
while [ $i -lt "$R" ]; do
  i=$((i + 1))
  for where in "CPU 0" "unpinned"; do
    if [ "$where" = "CPU 0" ]; then SRV="taskset -c 0" GEN="taskset -c 1"; else SRV="" GEN=""; fi
    echo "== round $i of $R ($C connections, $D s), server on $where"
    run "1 process" 1
    run "2 workers, reuseport" 2 --workers 2 --control "$ctl"
    run "2 workers, shared socket" 2 --workers 2 --shared-socket --control "$ctl"
  done
done
