#!/usr/bin/env bash
# The one-minute tour: one callback, end to end, on this machine.
#
#   patient's phone  = baresip (Debian package `baresip`), auto-answering +358 40 123 4567
#   staff queue      = sipp (Debian package `sip-tester`), answering the transferred call
#   callbackd        = this repository's daemon, its trunk pointing at the phone
#
# A request is posted to the HTTP API; callbackd calls the phone showing the station's
# caller ID, plays the greeting, the phone presses 1, callbackd transfers it (REFER) to the
# staff queue, and `callbackd show ID` tells the story from the store. Everything runs on
# 127.0.0.1, in a temporary directory, and is stopped at the end (or on Ctrl-C); the whole
# run is bounded (about 30 s; each wait has its own limit).
#
# Usage: examples/tour.sh        (needs sipp, baresip, sox, curl; `script` from bsdutils)
# Knobs: TOUR_PHONE_PORT (5062), TOUR_STAFF_PORT (5064): UDP ports on 127.0.0.1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
phone_port=${TOUR_PHONE_PORT:-5062}
staff_port=${TOUR_STAFF_PORT:-5064}

missing=()
for need in sipp:sip-tester baresip:baresip script:bsdutils sox:sox curl:curl; do
    command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tour: missing programs; install them with: apt-get install ${missing[*]}" >&2
    exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Everything the tour starts, stopped on any exit.
work=$(mktemp -d)
pids=()
phone=
cleanup() {
    # The phone first, by its own quit key, so baresip ends its calls and exits cleanly.
    if [ -n "$phone" ]; then
        printf q >&3 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$phone" 2>/dev/null || break; sleep 0.1; done
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    exec 3>&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "tour: no \"$2\" in $1 within $3 s; its last lines:" >&2
    tail -n 20 "$1" >&2 || true
    exit 1
}

say "Building callbackd"
(cd "$repo" && cargo build --locked --quiet)
callbackd=$repo/target/debug/callbackd

# A service open around the clock (so the tour works at any hour), calling from the
# station's own number, transferring to the staff queue after the patient presses 1.
mkdir -p "$work/dialplans" "$work/phone"
cat >"$work/dialplans/tour.toml" <<EOF
id = "tour"
name = "Kallion terveysasema"
timezone = "Europe/Helsinki"
capacity = 1

[caller_id]
number = "+358 9 3104 5501"
name = "Kallion terveysasema"

[hours]
holidays = "none"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[attempts]
max = 1
pause = "30m"
ring_timeout = "20s"
last_call_before_close = "0s"
network_retry = "2m"

[connect]
target = "sip:hoitajat@127.0.0.1:$staff_port"
method = "refer"
confirm = "dtmf"

[prompts]
greeting = "greeting-kallio"
EOF
cat >"$work/callbackd.toml" <<EOF
dialplans = "$work/dialplans"
database = "sqlite:queue.db"
sounds = "$repo/sounds"
log_format = "text"

[sip]
bind = "127.0.0.1:0"
pbx = "127.0.0.1:$phone_port"

[http]
bind = "127.0.0.1:0"
EOF
"$callbackd" check --config "$work/callbackd.toml"

say "Starting the staff queue (sipp on 127.0.0.1:$staff_port)"
sipp -sf "$repo/tests/sipp/uas_staff_answer.xml" -i 127.0.0.1 -mi 127.0.0.1 -p "$staff_port" \
    -m 1 -nostdin -trace_msg -message_file "$work/staff.log" >/dev/null 2>&1 &
pids+=($!)

say "Starting the patient's phone (baresip on 127.0.0.1:$phone_port, auto-answer)"
# A tone for the phone to send, longer than the call (baresip hangs up at its end).
sox -n -r 8000 -c 1 -b 16 "$work/phone/tone.wav" synth 60 sine 300 vol 0.05
cat >"$work/phone/config" <<EOF
sip_listen 127.0.0.1:$phone_port
module_path /usr/lib/baresip/modules
module stdio.so
module g711.so
module aufile.so
module_app account.so
module_app menu.so
audio_player aufile,$work/phone/heard.wav
audio_source aufile,$work/phone/tone.wav
EOF
echo "<sip:+358401234567@127.0.0.1:$phone_port;transport=udp>;regint=0;answermode=auto" \
    >"$work/phone/accounts"
# baresip reads keys from a terminal: `script` gives it one, fed from a pipe we write to.
mkfifo "$work/keys"
script -qfec "baresip -f $work/phone" /dev/null <"$work/keys" >"$work/phone.log" 2>&1 &
phone=$!
pids+=($!)
exec 3>"$work/keys"
wait_for "$work/phone.log" "baresip is ready" 10

say "Starting callbackd"
(cd "$work" && NO_COLOR=1 exec "$callbackd" serve --config callbackd.toml >daemon.out 2>daemon.log) &
pids+=($!)
wait_for "$work/daemon.out" "listening: http://" 10
api=$(sed -n 's/^listening: //p' "$work/daemon.out" | grep '^http://' | head -n 1)
sed 's/^/  /' "$work/daemon.out"

say "A patient asks for a callback: POST $api/v1/callbacks"
body='{"service": "tour", "number": "040 123 4567", "lang": "fi"}'
echo "  $body"
answer=$(curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" "$api/v1/callbacks")
echo "  $answer"
id=$(printf '%s' "$answer" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
[ -n "$id" ] || { echo "tour: no request id in the answer" >&2; exit 1; }

say "The phone rings: the caller ID it shows is the station's own number"
wait_for "$work/phone.log" "Call established" 20
grep -a -m 1 "answering call" "$work/phone.log" | tr -d '\r' | sed 's/^/  phone: /'

say "The patient hears the greeting and presses 1"
sleep 3
printf 1 >&3

say "callbackd transfers the patient (REFER); the staff queue answers"
wait_for "$work/staff.log" "INVITE sip:hoitajat@" 20
grep -a -m 1 "^INVITE sip:hoitajat@" "$work/staff.log" | sed 's/^/  staff queue got: /'
grep -a -m 1 -i "Referred-By:" "$work/staff.log" | sed 's/^ */  /' || true
echo "  callbackd's log of the call (numbers masked):"
grep -a -i -E "digit|dtmf|refer|notify|transfer" "$work/daemon.log" | sed 's/^/    /' | head -n 12 || true

say "callbackd show $id"
for _ in $(seq 100); do
    state=$(curl -sS --max-time 5 "$api/v1/callbacks/$id" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
    [ "$state" = connected ] && break
    sleep 0.1
done
"$callbackd" show "$id" --config "$work/callbackd.toml"
[ "$state" = connected ] || { echo "tour: the request ended $state, not connected" >&2; exit 1; }

say "Done: everything started here is stopped now"
