#!/usr/bin/env bash
# CI entry point on a fresh Debian 12 machine (as root, with a Rust toolchain): install
# every program a test, bench or example starts, make sure the test PostgreSQL is up, then
# run exactly the README's test command with CI=true, so a missing peer fails a test
# instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update
# One package per program; where it is started. tests/common/mod.rs (`tool`) names the same
# packages when a program is missing.
packages=(
    sip-tester  # sipp: the PBX and staff queue (tests/sip*.rs, intake, lifecycle, postgres, baresip; benches/sip.rs; examples/tour.sh); its DTMF pcaps (tests/intake.rs)
    baresip     # the patient's phone (tests/baresip.rs, examples/tour.sh)
    bsdutils    # script: a pseudo-terminal for baresip's key input
    sox         # the phone's tone (tests/baresip.rs, examples/tour.sh); sounds/generate.sh
    espeak-ng   # the prompts' voice (sounds/generate.sh)
    prometheus  # promtool: /metrics and the alert rules (tests/daemon.rs, tests/ops.rs)
    systemd     # systemd-analyze: the unit file (tests/ops.rs)
    procps      # kill: signals to the daemon (tests, benches); pgrep (bench/threads.sh)
    postgresql  # the server and pg_ctlcluster (tests/postgres.rs, tests/schema.rs, benches/claims.rs)
    kamailio    # a SIP proxy in front of callbackd (tests/kamailio.rs)
    sqlite3     # bench/query-plans.sh
    curl        # examples/tour.sh posts the request
    openssl     # a throw-away CA for SIP over TLS (tests/tls.rs, tests/baresip.rs)
    socat       # a TLS front for sipp, which Debian builds without TLS (tests/tls.rs)
    ca-certificates  # the system trust anchors (SIP over TLS without tls_ca_file)
    g++         # libFuzzer's runtime for cargo fuzz (bench/fuzz.sh)
    chromium         # the browser for every page a person looks at (tests/common/browser.rs)
    chromium-driver  # chromedriver: WebDriver for that browser (tests/common/browser.rs)
    rtpengine-daemon  # rtpengine: the relay beside callbackd's in benches/media.rs (userspace, ng protocol)
    jq          # reads the simulator's JSON report (bench/simulate.sh)
    time        # /usr/bin/time: the simulator's CPU time and peak memory (bench/simulate.sh)
)
apt-get install -y --no-install-recommends "${packages[@]}"

# node (graphile-worker in benches/claims.rs; axe-core runs in the page in tests/public.rs)
# and npm (installs bench/graphile and tests/browser from their package-lock.json). A new
# machine has both (a Node.js build that carries its own npm, which conflicts with Debian's
# npm package); only where they are missing do they come from Debian.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get install -y --no-install-recommends nodejs npm
fi

# The tests' PostgreSQL: postgres://postgres@127.0.0.1:5432/test with trust authentication,
# unless CALLBACKD_TEST_DATABASE points elsewhere.
if [ -z "${CALLBACKD_TEST_DATABASE:-}" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        # First matching line wins: trust on loopback goes first.
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' | cat - "$hba" >"$hba.new"
        mv "$hba.new" "$hba"
        chown postgres:postgres "$hba"
    fi
    if pg_ctlcluster "$version" main status >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    else
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
        psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test'
    fi
fi

# graphile-worker for benches/claims.rs, exactly as locked.
npm ci --prefix bench/graphile
# axe-core, injected into the patient page by tests/public.rs (tests/browser/package-lock.json).
npm ci --prefix tests/browser --no-audit --no-fund

