#!/bin/sh
# The scheduling figures of BENCHMARKS.md ("Scheduling quality"): one week of a
# Helsinki-like station (vuosaari's hours, the example arrivals) staffed for 70%, 90% and
# 100% nurse load, deadline-first against first come first served (a retry at the back of
# the queue), then the simulator's own speed on a week of 20,000 requests.
# Usage: bench/simulate.sh [path/to/callbackd]   (default target/release/callbackd)
# Needs jq and /usr/bin/time (Debian packages jq and time, installed by .ci/run).
set -eu
bin=${1:-target/release/callbackd}
cfg=callbackd.toml
common="--config $cfg --start 2026-12-07 --days 7 --seed 1 --format json"
printf 'load order same_day contacted_same_day missed callback_p90_min utilisation eta_punctual eta_early eta_late eta_width_min told_not_same_day\n'
for load in 0.7 0.9 1.0; do
  for order in deadline fifo; do
    "$bin" simulate vuosaari $common --load "$load" --order "$order" |
      jq -r --arg l "$load" --arg o "$order" '.totals | [$l, $o, (.same_day*10000|round/100), (.contacted_same_day*10000|round/100), .deadlines_missed, (.callback_p90_min|round), (.utilisation*1000|round/10), (.eta_punctual*1000|round/10), (.eta_early*1000|round/10), (.eta_late*1000|round/10), (.eta_width_min|round), .told_not_same_day] | @tsv'
  done
done
printf '\nspeed: a week of 20,000 requests (load 0.9)\n'
/usr/bin/time -f '%e s wall, %U s user, %M KiB max RSS' \
  "$bin" simulate vuosaari $common --per-week 20000 --load 0.9 |
  jq -r '.totals | "requests \(.requests), turns \(.turns), same day \(.same_day*10000|round/100)%"'
