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

# The intake call (dialplan `[intake]`, callbackd::call::intake): the caller is in the
# PBX's queue and leaves a callback request. Greetings: a generic one (the default of
# `[intake] greeting`) and one per service of dialplans/ with `[intake]`.
prompt fi intake-greeting "Olet soittanut terveysasemasi takaisinsoittopalveluun."
prompt sv intake-greeting "Du har kommit till din hälsostations återuppringningstjänst."
prompt en intake-greeting "You have reached your health station's callback service."
prompt fi intake-greeting-kallio "Olet soittanut Kallion terveysaseman takaisinsoittopalveluun."
prompt sv intake-greeting-kallio "Du har kommit till Berghälls hälsostations återuppringningstjänst."
prompt en intake-greeting-kallio "You have reached the Kallio health station's callback service."
# The language menu (`[intake] choose_language`): each option in its own language, then
# the key (num-1 … of that language): "suomeksi, paina 1; på svenska, tryck 2; for
# English, press 3".
prompt fi intake-language "Suomeksi, paina"
prompt sv intake-language "På svenska, tryck"
prompt en intake-language "For English, press"
prompt fi intake-your-number "Soitat numerosta"
prompt sv intake-your-number "Du ringer från numret"
prompt en intake-your-number "You are calling from the number"
prompt fi intake-this-or-other "Paina 1, niin soitamme sinulle tähän numeroon. Paina 2, jos haluat antaa toisen numeron."
prompt sv intake-this-or-other "Tryck 1 så ringer vi dig på det här numret. Tryck 2 för att ge ett annat nummer."
prompt en intake-this-or-other "Press 1 to be called back at this number, or 2 to give another number."
prompt fi intake-enter-number "Näppäile numero, johon soitamme, ja paina lopuksi risuaitaa."
prompt sv intake-enter-number "Slå numret vi ska ringa till och avsluta med fyrkant."
prompt en intake-enter-number "Please type the number to call back, then press the hash key."
prompt fi intake-you-typed "Näppäilit numeron"
prompt sv intake-you-typed "Du slog numret"
prompt en intake-you-typed "You typed the number"
prompt fi intake-confirm "Paina 1, jos numero on oikein. Paina 2, jos haluat näppäillä sen uudelleen."
prompt sv intake-confirm "Tryck 1 om numret är rätt. Tryck 2 för att slå det på nytt."
prompt en intake-confirm "Press 1 if this is correct, or 2 to type it again."
prompt fi intake-refused "Tähän numeroon emme voi soittaa takaisin."
prompt sv intake-refused "Vi kan inte ringa tillbaka till det här numret."
prompt en intake-refused "We cannot call back this number."
prompt fi intake-windows "Valitse, milloin soitamme."
prompt sv intake-windows "Välj när vi ska ringa."
prompt en intake-windows "Choose when we call you."
prompt fi intake-press "paina"
prompt sv intake-press "tryck"
prompt en intake-press "press"
prompt fi intake-until "ja"
prompt sv intake-until "till"
prompt en intake-until "until"
prompt fi intake-first-free "ensimmäiseen vapaaseen aikaan"
prompt sv intake-first-free "för första lediga tid"
prompt en intake-first-free "for the first free time"
prompt fi intake-eta-soon "Soitamme sinulle niin pian kuin mahdollista."
prompt sv intake-eta-soon "Vi ringer dig så snart som möjligt."
prompt en intake-eta-soon "We will call you back as soon as we can."
prompt fi intake-eta-today "Soitamme sinulle tänään noin"
prompt sv intake-eta-today "Vi ringer dig i dag ungefär"
prompt en intake-eta-today "We will call you back today, about"
prompt fi intake-eta-tomorrow "Soitamme sinulle huomenna noin"
prompt sv intake-eta-tomorrow "Vi ringer dig i morgon ungefär"
prompt en intake-eta-tomorrow "We will call you back tomorrow, about"
prompt fi intake-eta-later "Soitamme sinulle myöhempänä päivänä noin"
prompt sv intake-eta-later "Vi ringer dig en senare dag ungefär"
prompt en intake-eta-later "We will call you back on a later day, about"
prompt fi intake-sms "Saat lisäksi tekstiviestin."
prompt sv intake-sms "Du får också ett textmeddelande."
prompt en intake-sms "You will also get a text message."
prompt fi intake-waiting "Sinulla on jo takaisinsoittopyyntö jonossa."
prompt sv intake-waiting "Du har redan en begäran om återuppringning i kön."
prompt en intake-waiting "You already have a callback request waiting."
prompt fi intake-place "Paikkasi jonossa on"
prompt sv intake-place "Din plats i kön är"
prompt en intake-place "Your place in the queue is"
prompt fi intake-goodbye "Kiitos, näkemiin."
prompt sv intake-goodbye "Tack, hej då."
prompt en intake-goodbye "Thank you, goodbye."
prompt fi intake-not-stored "Emme voineet ottaa pyyntöäsi vastaan. Soita meille uudelleen. Näkemiin."
prompt sv intake-not-stored "Vi kunde inte ta emot din begäran. Ring oss igen. Hej då."
prompt en intake-not-stored "We could not take your request. Please call us again. Goodbye."

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
