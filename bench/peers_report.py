#!/usr/bin/env python3
"""bench/peers_report.py RAW OUTDIR NOTE: turns bench/peers.sh's raw lines into
OUTDIR/peers.md (the table) and OUTDIR/peers.svg (requests per server CPU-s as a ratio to raw C, gnuplot).

zen rows come from bench/run.sh: best req/s of the rounds, server us/req of
that run, the pair median (median over rounds of peer/raw_zen in the same
round) and the per-round ratios (their min-max is the spread shown).
httpround rows are one wrk run each: the median of the rounds is shown, with
the min-max spread of the per-round req/s."""
import os, statistics, subprocess, sys
from collections import defaultdict

raw, out, note = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []  # (load, peer, rps, spread, ratio, per_cpu_s)
mem = {}
http = defaultdict(list)
for line in open(raw):
    f = line.split()
    if f[0] in ("zen", "echo", "connrate"):
        depth, peer, conns, rps, sus, pair = f[1:7]
        runs = [float(x) for x in (f[7] if len(f) > 7 else "").split(",") if x]
        load = "%s c=%s" % (f[0], conns) + (" x%s pipelined" % depth if depth != "1" else "")
        per = "%.0f" % (1e6 / float(sus)) if sus not in ("-", "0", "0.00") else "-"
        spread = "%.2f-%.2f" % (min(runs), max(runs)) if runs else "-"
        rows.append([load, peer, rps, spread, pair if peer not in ("raw_zen", "raw_echo") else "1.00", per])
    elif f[0] == "mem":
        mem[f[1]] = f[2]
    elif f[0] == "httpround":
        depth, peer, conns, rps, per = f[1:6]
        http[(conns, depth, peer)].append((rps, per))
for (conns, depth, peer), rs in http.items():
    ok = [(float(r), float(p)) for r, p in rs if r != "FAIL"]
    load = "http c=%s" % conns + (" x%s pipelined" % depth if depth != "1" else "")
    if not ok:
        rows.append([load, peer, "FAIL", "-", "-", "-"])
        continue
    med = statistics.median(r for r, _ in ok)
    rows.append([load, peer, "%.0f" % med, "%.0f-%.0f" % (min(r for r, _ in ok), max(r for r, _ in ok)),
                 None, "%.0f" % statistics.median(p for _, p in ok)])
# HTTP ratios: median req/s over raw_http's
base = {r[0]: r for r in rows if r[1] in ("raw_zen", "raw_http", "raw_echo")}
for r in rows:
    if r[4] is None:
        b = base.get(r[0])
        r[4] = "%.2f" % (float(r[2]) / float(b[2])) if b and b[2] not in ("FAIL", "-") and r[2] != "FAIL" else "-"
    b = base.get(r[0])
    r.append("%.2f" % (float(r[5]) / float(b[5])) if b and b[5] != "-" and r[5] != "-" else "-")

with open(os.path.join(out, "peers.md"), "w") as md:
    md.write("Run: %s\n\n" % note)
    md.write("| load | peer | req/s | spread | x raw C (req/s) | req per server CPU-s | x raw C (per CPU-s) |\n")
    md.write("|---|---|---:|---:|---:|---:|---:|\n")
    for r in rows:
        md.write("| %s |\n" % " | ".join(r))
    md.write("\nzen rows: req/s is the best round, `x raw C` the pair median, spread the min-max of "
             "the per-round ratios to raw C; http rows: req/s is the median round, spread its min-max "
             "req/s, `x raw C` the median over raw_http's.\n"
             "echo rows: a \"req\" is one MB (10^6 bytes) echoed and checked (req/s = MB/s), raw C is raw_echo; "
             "connrate rows: one connection (connect, a zen question, its answer, close with an RST). "
             "reactord_w2 rows: --workers 2, which on this 2-CPU machine shares CPU 1 with the load "
             "generator; reactord_w2c0 rows: --workers 2 on CPU 0 alone, the CPU every one-process "
             "server gets (against reactord: what the master and the split cost); their server CPU "
             "is master + workers.\n\n")
    md.write("| peer | bytes per idle connection |\n|---|---:|\n")
    for p, v in mem.items():
        md.write("| %s | %s |\n" % (p, v))

# chart: one cluster per load, one bar per peer, the ratio to raw C
loads = list(dict.fromkeys(r[0] for r in rows))
peers = list(dict.fromkeys(r[1].replace("_http", "").replace("_zen", "").replace("_echo", "") for r in rows))
peers = [p for p in peers if p != "raw"]
val = {(r[0], r[1].replace("_http", "").replace("_zen", "").replace("_echo", "")): r[6] for r in rows}  # per server CPU-s: the figure that noise moves least
dat = os.path.join(out, "peers.dat")
with open(dat, "w") as d:
    d.write('load ' + " ".join(peers) + "\n")
    for l in loads:
        short = l.replace("c=10000", "10k").replace("c=1000", "1k").replace("c=", "").replace(" x16 pipelined", " x16")
        d.write('"%s" ' % short.replace("zen 50 x16", "zen x16").replace("http 50 x16", "http x16") + " ".join((val.get((l, p), "-") if val.get((l, p), "-") not in ("-", "FAIL") else "?") for p in peers) + "\n")
gp = """set terminal svg size 1100,520 dynamic font 'sans,11'
set output '%s'
set title "requests per server CPU-second, as a ratio to raw C (1.0 = raw C libev), %s"
set termoption noenhanced
set linetype 9 lc rgb '#888888'
set bmargin 3
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '?'
set key outside right top
set yrange [0:*]
set grid ytics
set xtics scale 0 nomirror
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (os.path.join(out, "peers.svg"), note.replace('"', "'"), len(peers) + 1, dat)
try:
    subprocess.run(["gnuplot"], input=gp.encode(), check=True)
except (OSError, subprocess.CalledProcessError) as e:
    print("peers_report: no chart (%s)" % e, file=sys.stderr)
print(open(os.path.join(out, "peers.md")).read())
