#!/bin/sh
# Fuzzes callbackd's parsers of hostile input with cargo-fuzz (libFuzzer): the daemon
# configuration (config), the dialplans (dialplan), patients' phone numbers (number) and
# inbound SIP datagrams (sip). Each target runs FUZZ_SECONDS, starting from the committed
# seeds in fuzz/corpus/<target>/; what it learns goes to fuzz/corpus-run/<target>/ (not
# committed), crashing inputs to fuzz/artifacts/<target>/.
#
# Usage: bench/fuzz.sh [target ...]          (default: all four, 180 s each)
#   FUZZ_SECONDS=60 bench/fuzz.sh             a shorter run
#   FUZZ_SANITIZER=address bench/fuzz.sh      with AddressSanitizer (slower; the default is
#                                             none: callbackd forbids unsafe code, and a
#                                             panic is what the targets look for)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer is
# built from source). The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take the nightly
# flags cargo-fuzz passes. Debug assertions (overflow checks) are on.
#
# Prints one line per target (executions, executions per second, coverage, corpus) and a
# reproducer for every crash; exits 1 when any target crashed. Replay one crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
# then add the input to fuzz/corpus/<target>/ once fixed (tests/fuzz_corpus.rs replays it).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-180}
sanitizer=${FUZZ_SANITIZER:-none}
targets=${*:-config dialplan number sip}
export RUSTC_BOOTSTRAP=1
cd "$here"

command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
}
echo "building the fuzz targets (sanitizer $sanitizer)..."
for t in $targets; do
    cargo fuzz build -s "$sanitizer" -a "$t" >/dev/null 2>fuzz/build.log || {
        cat fuzz/build.log >&2
        exit 2
    }
done
rm -f fuzz/build.log

crashed=0
printf '%-9s %6s %12s %10s %8s %8s %s\n' target seconds executions exec/s cov corpus result
for t in $targets; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    status=0
    cargo fuzz run -s "$sanitizer" -a "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    after=$(ls "fuzz/artifacts/$t" | wc -l)
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        result="CRASH"
        crashed=1
    else
        result="ok, 0 crashes"
    fi
    printf '%-9s %6s %12s %10s %8s %8s %s\n' "$t" "$seconds" "${runs:-?}" "${rate:-?}" \
        "${cov:-?}" "${corp:-?}" "$result"
    if [ "$result" = "CRASH" ]; then
        grep -m1 -A3 'panicked at' "$log" | sed 's/^/    /' || true
        grep 'Test unit written to' "$log" | sed 's/^/    /' || tail -20 "$log" | sed 's/^/    /'
    fi
    rm -f "$log"
done
exit "$crashed"
