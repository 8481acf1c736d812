#!/bin/sh
# CPU time and context switches of a running callbackd, per thread name: waits for the
# first `callbackd serve` process to appear, samples /proc/<pid>/task/* every 0.1 s while
# it runs, and prints the sample with the most context switches (the one just before its
# threads begin to exit). CPU in clock ticks (utime + stime; `getconf CLK_TCK` per second),
# context switches voluntary + involuntary. Start it, then the bench, e.g.
#   bench/threads.sh > threads.txt & SIP_BENCH_ONLY=short cargo bench --bench sip
# (needs pgrep, from procps).
set -eu
pid=
while [ -z "$pid" ]; do
    pid=$(pgrep -f 'callbackd serve' | head -n 1 || true)
    sleep 0.05
done
best=0
sample=$(mktemp)
keep=$(mktemp)
trap 'rm -f "$sample" "$keep"' EXIT
while kill -0 "$pid" 2>/dev/null; do
    : >"$sample"
    for t in /proc/"$pid"/task/*; do
        name=$(tr ' ' _ <"$t/comm" 2>/dev/null) || continue
        cpu=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
        ctxt=$(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "$t/status" 2>/dev/null) || continue
        echo "$name $cpu $ctxt" >>"$sample"
    done
    total=$(awk '{s += $3} END {print s + 0}' "$sample")
    if [ "$total" -ge "$best" ]; then
        best=$total
        cp "$sample" "$keep"
    fi
    sleep 0.1
done
awk '{c[$1] += $2; x[$1] += $3; tc += $2; tx += $3}
     END {for (k in c) printf "%s cpu_ticks=%d ctxt=%d\n", k, c[k], x[k];
          printf "TOTAL cpu_ticks=%d ctxt=%d\n", tc, tx}' "$keep" | sort
