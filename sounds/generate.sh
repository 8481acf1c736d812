#!/bin/sh
# Regenerates every prompt of callbackd as 8 kHz mono 16-bit PCM WAV with a speech
# synthesiser: sounds/fi, sounds/sv, sounds/en. See sounds/README.md.
#
# Needs espeak-ng and sox (Debian: `apt-get install espeak-ng sox`). The output is
# deterministic for a given espeak-ng version, so the committed files only change when a
# text here changes. Replace any file with a studio recording of the same name at any time.
#
# Usage: sounds/generate.sh [OUTPUT_DIR]   (default: the directory of this script)
set -eu

out=${1:-$(dirname "$0")}
speed=${SPEED:-180}   # words per minute (numbers: NUMBER_SPEED)
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "generate.sh: $tool is missing (apt-get install espeak-ng sox)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say VOICE FILE TEXT: synthesise TEXT, convert to 8 kHz mono 16-bit PCM, trim the
# silence at both ends (keeping 50 ms), shorten pauses inside to 150 ms and normalise to
# -3 dBFS.
say() {
    espeak-ng -v "$1" -s "$speed" -w "$tmp/raw.wav" "$3"
    sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$2" \
        silence -l 1 0.01 0.5% -1 0.15 0.5% reverse silence 1 0.01 0.5% reverse \
        pad 0.05 0.05 gain -n -3
}

# prompt LANG NAME TEXT
prompt() {
    case $1 in fi) voice=fi ;; sv) voice=sv ;; en) voice=en-gb ;; esac
    mkdir -p "$out/$1"
    say "$voice" "$out/$1/$2.wav" "$3"
}

# Greetings: a generic one (the default of `[prompts] greeting`) and one per service of
# dialplans/ (greeting-<service id>).
prompt fi greeting "Tämä on takaisinsoitto terveysasemaltasi."
prompt sv greeting "Det här är ett återuppringningssamtal från din hälsostation."
prompt en greeting "This is a callback from your health station."
prompt fi greeting-kallio "Tämä on takaisinsoitto Kallion terveysasemalta."
prompt sv greeting-kallio "Det här är ett återuppringningssamtal från Berghälls hälsostation."
prompt en greeting-kallio "This is a callback from the Kallio health station."
prompt fi greeting-vuosaari "Tämä on takaisinsoitto Vuosaaren terveysasemalta."
prompt sv greeting-vuosaari "Det här är ett återuppringningssamtal från Nordsjö hälsostation."
prompt en greeting-vuosaari "This is a callback from the Vuosaari health station."
prompt fi greeting-kotka-neuvonta "Tämä on takaisinsoitto Kotkan terveysneuvonnasta."
prompt sv greeting-kotka-neuvonta "Det här är ett återuppringningssamtal från hälsorådgivningen i Kotka."
prompt en greeting-kotka-neuvonta "This is a callback from the Kotka health advice line."

# To the patient.
prompt fi press-1 "Paina 1, niin sinut yhdistetään hoitajalle. Paina 9, jos et enää tarvitse soittoa."
prompt sv press-1 "Tryck 1 för att kopplas till en sjukskötare. Tryck 9 om du inte längre behöver samtalet."
prompt en press-1 "Press 1 to be connected to a nurse. Press 9 if you no longer need the call."
prompt fi connecting "Yhdistän sinut nyt, hetkinen."
prompt sv connecting "Du kopplas nu, ett ögonblick."
prompt en connecting "Connecting you now, one moment."
prompt fi sorry "Valitettavasti emme saaneet yhdistettyä sinua. Soita meille uudelleen."
prompt sv sorry "Tyvärr kunde vi inte koppla dig. Ring oss igen."
prompt en sorry "Sorry, we could not connect you. Please call again."

# To the nurse (agent-first mode).
prompt fi whisper "Takaisinsoittopotilas tulossa, odota hetki."
prompt sv whisper "Återuppringd patient kopplas strax, vänta."
prompt en whisper "Callback patient coming, please wait."
prompt fi patient-unreachable "Potilasta ei tavoitettu."
prompt sv patient-unreachable "Patienten nåddes inte."
prompt en patient-unreachable "The patient could not be reached."

# Time words: "kello kymmenen kolmekymmentä", "klockan tio trettio", "at ten thirty".
prompt fi at "kello"
prompt sv at "klockan"
prompt en at "at"
# Numbers: 0-20 and the tens 30, 40, 50. 21-59 are said as two files, tens then units
# ("kaksikymmentä" + "seitsemän", "tjugo" + "sju", "twenty" + "seven"): all three
# languages compose them this way, and 60 whole numbers per language would not fit the
# size budget (see README.md). callbackd::media::number_stems(27) = ["num-20", "num-7"].
speed=${NUMBER_SPEED:-190}
for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 30 40 50; do
    for lang in fi sv en; do
        prompt "$lang" "num-$n" "$n"
    done
done
echo "generate.sh: $(find "$out/fi" "$out/sv" "$out/en" -name '*.wav' | wc -l) prompts in $out"
