//! The intake call, as a pure state machine: the PBX sends a caller from its queue to
//! callbackd, and callbackd takes the callback request on the phone (the IVR). No I/O: the
//! SIP edge ([`crate::sip::intake`]) plays the [`Word`]s, listens for keys, stores the
//! request and feeds back [`Event`]s.
//!
//! ```text
//!  start ── [intake] choose_language ──► Language{caller, round}
//!    │                                     │ 1..n: Speak(lang); no valid key after the
//!    │ ◄───────────────────────────────────┘ last round: the call's language
//!    │
//!  start ── caller's number callable ──► Offer{round} ── 1 ──► (confirmed) ──┐
//!    │                                     │ 2                               │
//!    │ anonymous / refused number          ▼                                 │
//!    └───────────────────────────────► Entry{digits, round} ◄── 2 ──┐        │
//!                                          │ digits … #             │        │
//!                                          │ (refused: said, again) │        │
//!                                          ▼                        │        │
//!                                      Confirm{number, round} ──────┘        │
//!                                          │ 1 (confirmed)                   │
//!                                          ▼                                 │
//!                         windows offered? ─ yes ─► Window{round} ◄──────────┘
//!                                          │ no           │ 0 / 1..n (hang-up: first free)
//!                                          ▼              ▼
//!                                     Storing{number, window, caller_gone}
//!                                          │ Stored(told) / StoreFailed
//!                                          ▼
//!                         Done(Stored | AlreadyWaiting | StoreFailed) ── BYE
//! ```
//! Every question (Offer, Entry, Confirm, Window) is asked at most [`MAX_ROUNDS`] times: a
//! timeout or a wrong key repeats it, the last one ends the call politely with nothing
//! stored (`Done(GaveUp)`). A hang-up before the number is confirmed stores nothing
//! (`Done(HungUp)`); after it (choosing a window, or while storing), the request is still
//! stored, for the first free time. The expected time is said only after the store answered.
//!
//! The language menu (`Language`) is the one question that does not end the call when it
//! gets no answer: after its last round the call goes on in its own language. A caller back
//! from hold ([`Event::Resumed`]) hears the pending question again, in the same round.

use crate::calendar::DayRange;
use crate::lang::Lang;
use crate::number::{E164, NumberPolicy};
use crate::policy::Eta;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How often a question is asked at most.
pub const MAX_ROUNDS: u8 = 3;
/// The most digits a typed number may have (E.164 allows 15).
pub const MAX_DIGITS: usize = 15;

/// What the caller hears: one item of a spoken sentence. [`stems`] turns them into prompt
/// file stems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// The service's intake greeting ("you have reached the … callback service").
    Greeting,
    /// "På svenska, tryck 2": one option of the language menu, said in `lang` itself.
    LanguageOption {
        /// The key.
        key: u8,
        /// The language, which the option is said in.
        lang: Lang,
    },
    /// "You are calling from the number"
    YourNumber,
    /// A phone number, digit by digit.
    Digits(String),
    /// "Press 1 to be called back at this number, or 2 to give another number."
    ThisOrOther,
    /// "Please type the number to call back, then press the hash key."
    EnterNumber,
    /// "You typed"
    YouTyped,
    /// "Press 1 if it is correct, or 2 to type it again."
    ConfirmNumber,
    /// "This number cannot be called back."
    Refused,
    /// "Choose when we call you."
    Windows,
    /// "Press k for h to h" (one offered window).
    WindowOption {
        /// The key.
        key: u8,
        /// The window.
        range: DayRange,
    },
    /// "Press 0 for the first free time."
    FirstFree,
    /// "We will call you back today/tomorrow/on a later day at about hh:mm", or "as soon as
    /// possible" without an estimate.
    Eta(Option<Spoken>),
    /// "You will also get a text message."
    SmsFollows,
    /// "You already have a callback request waiting; your place in the queue is" + place.
    Waiting(i64),
    /// "Thank you, goodbye."
    Goodbye,
    /// "We could not take your request now. Please call again. Goodbye."
    NotStored,
}

/// An expected time as it is said: the day relative to the call, and the clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spoken {
    /// Today, tomorrow or later.
    pub day: Day,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-55 in steps of five.
    pub minute: u8,
}

/// The day of a spoken time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// The day of the call.
    Today,
    /// The day after.
    Tomorrow,
    /// Any later day.
    Later,
}

/// The start of `eta` as it is said in the service's time zone: rounded to five minutes,
/// with its day relative to `now`.
pub fn spoken(eta: &Eta, tz: &TimeZone, now: Timestamp) -> Spoken {
    let at = eta.from.to_zoned(tz.clone());
    let today = now.to_zoned(tz.clone()).date();
    let mut minute = (at.minute() + 2) / 5 * 5;
    let mut hour = at.hour();
    let mut date = at.date();
    if minute == 60 {
        minute = 0;
        hour += 1;
        if hour == 24 {
            hour = 0;
            date = date.tomorrow().unwrap_or(date);
        }
    }
    let day = if date <= today {
        Day::Today
    } else if today.tomorrow().is_ok_and(|t| t == date) {
        Day::Tomorrow
    } else {
        Day::Later
    };
    Spoken { day, hour: u8::try_from(hour).unwrap_or(0), minute: u8::try_from(minute).unwrap_or(0) }
}

/// What the store said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// A new request was stored; its expected time, and whether an SMS notice follows.
    New {
        /// The expected time, if any can be given.
        eta: Option<Spoken>,
        /// The dialplan sends an SMS notice for it.
        sms: bool,
    },
    /// The number already had a waiting request: its place (1 = next) and expected time.
    Waiting {
        /// Place in the queue.
        place: i64,
        /// The expected time, if any can be given.
        eta: Option<Spoken>,
    },
}

/// Why an intake call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A new request was stored.
    Stored,
    /// The caller's number was already waiting: nothing new stored.
    AlreadyWaiting,
    /// The caller hung up before confirming a number: nothing stored.
    HungUp,
    /// Too many timeouts or wrong keys: nothing stored.
    GaveUp,
    /// The store failed or refused the request: nothing stored.
    StoreFailed,
}

impl End {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Stored => "stored",
            End::AlreadyWaiting => "already_waiting",
            End::HungUp => "hung_up",
            End::GaveUp => "gave_up",
            End::StoreFailed => "store_failed",
        }
    }
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Choosing the call's language (`[intake] choose_language`).
    Language {
        /// The caller's number as presented, for the offer that follows.
        caller: Option<String>,
        /// 1 the first time.
        round: u8,
    },
    /// Asked whether to call back the caller's own number.
    Offer {
        /// The caller's number (callable by the service's policy).
        number: E164,
        /// 1 the first time.
        round: u8,
    },
    /// Typing a number, ending with `#`.
    Entry {
        /// Typed so far.
        digits: String,
        /// 1 the first time.
        round: u8,
    },
    /// The typed number was read back: 1 confirms, 2 types again.
    Confirm {
        /// The typed number.
        number: E164,
        /// 1 the first time.
        round: u8,
    },
    /// Choosing a window (the number is confirmed).
    Window {
        /// The confirmed number.
        number: E164,
        /// 1 the first time.
        round: u8,
    },
    /// The request is being stored.
    Storing {
        /// The confirmed number.
        number: E164,
        /// The chosen window (`None`: the first free time).
        window: Option<DayRange>,
        /// The caller hung up meanwhile: store, say nothing.
        caller_gone: bool,
    },
    /// Over.
    Done(End),
}

/// How long a listen may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// An answer to a question (a menu key, or the first digit of a number).
    Answer,
    /// The next digit of a number being typed.
    NextDigit,
}

/// What the edge does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// From now on speak this language: the prompts, and the request's language (its SMS).
    Speak(Lang),
    /// Play these words (keys pressed meanwhile are kept for the next listen).
    Play(Vec<Word>),
    /// Wait for one key; feed back [`Event::Digit`] or [`Event::Timeout`] (or
    /// [`Event::Resumed`] when the caller comes back from hold meanwhile).
    Listen(Wait),
    /// Store the request (it completes even if the caller hangs up); feed back
    /// [`Event::Stored`] or [`Event::StoreFailed`].
    Store {
        /// The number.
        number: E164,
        /// The window, `None` for the first free time.
        window: Option<DayRange>,
    },
    /// End the call with BYE.
    Hangup,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The caller pressed a key (`0`-`9`, `*`, `#`).
    Digit(char),
    /// No key in time.
    Timeout,
    /// The caller hung up.
    Hangup,
    /// The caller is back from hold (the PBX's re-INVITE resumed the media) while a
    /// question was waiting for its answer.
    Resumed,
    /// The store took the request (or found the number waiting).
    Stored(Told),
    /// The store failed, or intake refused the request (e.g. no time left to call).
    StoreFailed,
}

/// What the machine reads besides its phase: the service's rules at the call's start.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The number policy (the API's).
    pub numbers: &'a NumberPolicy,
    /// The windows that can still be served, in the dialplan's order (key 1 = first).
    pub windows: &'a [DayRange],
    /// The language the call starts in (the intake user's, else the service's).
    pub language: Lang,
    /// The languages of the menu, key 1 = first (`language.offered` with `[intake]
    /// choose_language`); empty, or a single one: no menu.
    pub choices: &'a [Lang],
}

/// The caller's number as the PBX presented it (user part of P-Asserted-Identity or From);
/// `None` when anonymous.
pub fn start(cx: Context<'_>, caller: Option<&str>) -> (Phase, Vec<Action>) {
    let caller = caller.map(str::trim).filter(|c| !c.is_empty() && is_number_like(c));
    if cx.choices.len() > 1 {
        let mut words = vec![Word::Greeting];
        words.extend(language_menu(cx));
        let phase = Phase::Language { caller: caller.map(str::to_owned), round: 1 };
        return (phase, vec![Action::Play(words), Action::Listen(Wait::Answer)]);
    }
    begin(cx, caller, true)
}

/// The call proper: the offer of the caller's own number, or the entry of another;
/// `greet` first.
fn begin(cx: Context<'_>, caller: Option<&str>, greet: bool) -> (Phase, Vec<Action>) {
    let mut words = if greet { vec![Word::Greeting] } else { Vec::new() };
    match caller.map(|c| cx.numbers.check(c)) {
        Some(Ok(number)) => {
            words.extend([Word::YourNumber, Word::Digits(say_digits(&number)), Word::ThisOrOther]);
            (
                Phase::Offer { number, round: 1 },
                vec![Action::Play(words), Action::Listen(Wait::Answer)],
            )
        }
        Some(Err(_)) => {
            words.extend([Word::Refused, Word::EnterNumber]);
            (entry(1), vec![Action::Play(words), Action::Listen(Wait::Answer)])
        }
        None => {
            words.push(Word::EnterNumber);
            (entry(1), vec![Action::Play(words), Action::Listen(Wait::Answer)])
        }
    }
}

/// "Suomeksi paina 1, på svenska tryck 2, for English press 3".
fn language_menu(cx: Context<'_>) -> Vec<Word> {
    (1..=9u8).zip(cx.choices).map(|(key, &lang)| Word::LanguageOption { key, lang }).collect()
}

/// The language menu answered: `key` chose a language, or (`None`) the last round passed
/// without a valid key and the call goes on in its own language.
fn chosen(cx: Context<'_>, caller: Option<&str>, key: Option<u32>) -> (Phase, Vec<Action>) {
    let lang = key.and_then(|k| cx.choices.get(k.checked_sub(1)? as usize).filter(|_| k <= 9));
    match lang {
        Some(&lang) => {
            // The greeting was said in the call's language: again in the chosen one.
            let (phase, actions) = begin(cx, caller, lang != cx.language);
            let mut all = vec![Action::Speak(lang)];
            all.extend(actions);
            (phase, all)
        }
        None => begin(cx, caller, false),
    }
}

/// A user part that can be a phone number: digits with an optional leading `+`.
fn is_number_like(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    !body.is_empty() && body.len() <= 20 && body.bytes().all(|b| b.is_ascii_digit())
}

/// The digits to read back: Finnish numbers nationally (`0401234567`), others without `+`.
pub fn say_digits(number: &E164) -> String {
    let n = number.as_str();
    match n.strip_prefix("+358") {
        Some(rest) => format!("0{rest}"),
        None => n.trim_start_matches('+').to_owned(),
    }
}

fn entry(round: u8) -> Phase {
    Phase::Entry { digits: String::new(), round }
}

fn give_up() -> (Phase, Vec<Action>) {
    (Phase::Done(End::GaveUp), vec![Action::Play(vec![Word::NotStored]), Action::Hangup])
}

/// The question of a phase, as asked again.
fn ask(phase: &Phase, cx: Context<'_>) -> Vec<Word> {
    match phase {
        Phase::Language { .. } => language_menu(cx),
        Phase::Offer { number, .. } => {
            vec![Word::YourNumber, Word::Digits(say_digits(number)), Word::ThisOrOther]
        }
        Phase::Entry { .. } => vec![Word::EnterNumber],
        Phase::Confirm { number, .. } => {
            vec![Word::YouTyped, Word::Digits(say_digits(number)), Word::ConfirmNumber]
        }
        Phase::Window { .. } => window_menu(cx),
        Phase::Storing { .. } | Phase::Done(_) => Vec::new(),
    }
}

fn window_menu(cx: Context<'_>) -> Vec<Word> {
    let mut words = vec![Word::Windows];
    for (i, range) in cx.windows.iter().take(9).enumerate() {
        words.push(Word::WindowOption { key: u8::try_from(i + 1).unwrap_or(9), range: *range });
    }
    words.push(Word::FirstFree);
    words
}

/// The same question again (round + 1), or the end after [`MAX_ROUNDS`].
fn again(phase: Phase, cx: Context<'_>, before: Vec<Word>) -> (Phase, Vec<Action>) {
    let next = match phase {
        Phase::Language { caller, round } => {
            if round >= MAX_ROUNDS {
                return chosen(cx, caller.as_deref(), None);
            }
            Phase::Language { caller, round: round + 1 }
        }
        Phase::Offer { number, round } => Phase::Offer { number, round: round + 1 },
        Phase::Entry { round, .. } => entry(round + 1),
        Phase::Confirm { number, round } => Phase::Confirm { number, round: round + 1 },
        Phase::Window { number, round } => Phase::Window { number, round: round + 1 },
        done @ (Phase::Storing { .. } | Phase::Done(_)) => return (done, Vec::new()),
    };
    let round = match &next {
        Phase::Language { round, .. }
        | Phase::Offer { round, .. }
        | Phase::Entry { round, .. }
        | Phase::Confirm { round, .. }
        | Phase::Window { round, .. } => *round,
        Phase::Storing { .. } | Phase::Done(_) => 0,
    };
    if round > MAX_ROUNDS {
        return give_up();
    }
    let mut words = before;
    words.extend(ask(&next, cx));
    (next, vec![Action::Play(words), Action::Listen(Wait::Answer)])
}

/// The number is confirmed: choose a window, or store.
fn confirmed(number: E164, cx: Context<'_>) -> (Phase, Vec<Action>) {
    if cx.windows.is_empty() {
        store(number, None)
    } else {
        (
            Phase::Window { number, round: 1 },
            vec![Action::Play(window_menu(cx)), Action::Listen(Wait::Answer)],
        )
    }
}

fn store(number: E164, window: Option<DayRange>) -> (Phase, Vec<Action>) {
    (
        Phase::Storing { number: number.clone(), window, caller_gone: false },
        vec![Action::Store { number, window }],
    )
}

/// The words that tell the caller what the store did.
pub fn told_words(told: &Told) -> Vec<Word> {
    match told {
        Told::New { eta, sms } => {
            let mut w = vec![Word::Eta(*eta)];
            if *sms {
                w.push(Word::SmsFollows);
            }
            w.push(Word::Goodbye);
            w
        }
        Told::Waiting { place, eta } => vec![Word::Waiting(*place), Word::Eta(*eta), Word::Goodbye],
    }
}

/// One transition. Total: every phase takes every event.
pub fn step(phase: Phase, cx: Context<'_>, event: Event) -> (Phase, Vec<Action>) {
    match (phase, event) {
        (done @ Phase::Done(_), _) => (done, Vec::new()),
        // Hang-ups: before the number is confirmed nothing is stored; after, it is.
        (
            Phase::Language { .. }
            | Phase::Offer { .. }
            | Phase::Entry { .. }
            | Phase::Confirm { .. },
            Event::Hangup,
        ) => (Phase::Done(End::HungUp), Vec::new()),
        // Back from hold: the pending question again, same round (a number being typed
        // starts over).
        (Phase::Entry { round, .. }, Event::Resumed) => (
            entry(round),
            vec![Action::Play(vec![Word::EnterNumber]), Action::Listen(Wait::Answer)],
        ),
        (
            phase @ (Phase::Language { .. }
            | Phase::Offer { .. }
            | Phase::Confirm { .. }
            | Phase::Window { .. }),
            Event::Resumed,
        ) => {
            let words = ask(&phase, cx);
            (phase, vec![Action::Play(words), Action::Listen(Wait::Answer)])
        }
        (storing @ Phase::Storing { .. }, Event::Resumed) => (storing, Vec::new()),
        // Language: 1..n = the menu's languages.
        (Phase::Language { caller, round }, Event::Digit(d)) => {
            match d.to_digit(10).filter(|&k| k >= 1 && (k as usize) <= cx.choices.len().min(9)) {
                Some(k) => chosen(cx, caller.as_deref(), Some(k)),
                None => again(Phase::Language { caller, round }, cx, Vec::new()),
            }
        }
        (phase @ Phase::Language { .. }, Event::Timeout) => again(phase, cx, Vec::new()),
        (Phase::Window { number, .. }, Event::Hangup) => (
            Phase::Storing { number: number.clone(), window: None, caller_gone: true },
            vec![Action::Store { number, window: None }],
        ),
        (Phase::Storing { number, window, .. }, Event::Hangup) => {
            (Phase::Storing { number, window, caller_gone: true }, Vec::new())
        }
        // The store's answer.
        (Phase::Storing { caller_gone, .. }, Event::Stored(told)) => {
            let end = match told {
                Told::New { .. } => End::Stored,
                Told::Waiting { .. } => End::AlreadyWaiting,
            };
            if caller_gone {
                (Phase::Done(end), Vec::new())
            } else {
                (Phase::Done(end), vec![Action::Play(told_words(&told)), Action::Hangup])
            }
        }
        (Phase::Storing { caller_gone, .. }, Event::StoreFailed) => {
            let actions = if caller_gone {
                Vec::new()
            } else {
                vec![Action::Play(vec![Word::NotStored]), Action::Hangup]
            };
            (Phase::Done(End::StoreFailed), actions)
        }
        // Nothing is listened for while storing.
        (storing @ Phase::Storing { .. }, Event::Digit(_) | Event::Timeout) => {
            (storing, Vec::new())
        }
        // Store answers outside Storing cannot happen; ignored.
        (
            phase @ (Phase::Language { .. }
            | Phase::Offer { .. }
            | Phase::Entry { .. }
            | Phase::Confirm { .. }
            | Phase::Window { .. }),
            Event::Stored(_) | Event::StoreFailed,
        ) => (phase, Vec::new()),
        // Offer: 1 = this number, 2 = another.
        (Phase::Offer { number, .. }, Event::Digit('1')) => confirmed(number, cx),
        (Phase::Offer { .. }, Event::Digit('2')) => {
            (entry(1), vec![Action::Play(vec![Word::EnterNumber]), Action::Listen(Wait::Answer)])
        }
        (phase @ Phase::Offer { .. }, Event::Digit(_) | Event::Timeout) => {
            again(phase, cx, Vec::new())
        }
        // Entry: digits, `#` ends, `*` starts over.
        (Phase::Entry { mut digits, round }, Event::Digit(d @ '0'..='9')) => {
            if digits.len() >= MAX_DIGITS {
                return again(Phase::Entry { digits, round }, cx, vec![Word::Refused]);
            }
            digits.push(d);
            (Phase::Entry { digits, round }, vec![Action::Listen(Wait::NextDigit)])
        }
        (Phase::Entry { round, .. }, Event::Digit('*')) => (
            entry(round),
            vec![Action::Play(vec![Word::EnterNumber]), Action::Listen(Wait::Answer)],
        ),
        (Phase::Entry { digits, round }, Event::Digit('#')) if !digits.is_empty() => {
            match cx.numbers.check(&digits) {
                Ok(number) => {
                    let words = vec![
                        Word::YouTyped,
                        Word::Digits(say_digits(&number)),
                        Word::ConfirmNumber,
                    ];
                    (
                        Phase::Confirm { number, round: 1 },
                        vec![Action::Play(words), Action::Listen(Wait::Answer)],
                    )
                }
                Err(_) => again(Phase::Entry { digits, round }, cx, vec![Word::Refused]),
            }
        }
        (phase @ Phase::Entry { .. }, Event::Digit(_) | Event::Timeout) => {
            again(phase, cx, Vec::new())
        }
        // Confirm: 1 = correct, 2 = type again.
        (Phase::Confirm { number, .. }, Event::Digit('1')) => confirmed(number, cx),
        (Phase::Confirm { .. }, Event::Digit('2')) => {
            (entry(1), vec![Action::Play(vec![Word::EnterNumber]), Action::Listen(Wait::Answer)])
        }
        (phase @ Phase::Confirm { .. }, Event::Digit(_) | Event::Timeout) => {
            again(phase, cx, Vec::new())
        }
        // Window: 0 = first free, 1..n = the offered windows.
        (Phase::Window { number, round }, Event::Digit(d)) => {
            let window = match d.to_digit(10) {
                Some(0) => Some(None),
                Some(k) => cx.windows.get(k as usize - 1).filter(|_| k <= 9).map(|w| Some(*w)),
                None => None,
            };
            match window {
                Some(w) => store(number, w),
                None => again(Phase::Window { number, round }, cx, Vec::new()),
            }
        }
        (phase @ Phase::Window { .. }, Event::Timeout) => again(phase, cx, Vec::new()),
    }
}

/// The prompt file stems that say `words` (`greeting` is the service's intake greeting);
/// numbers and times use the time words of [`crate::media::TIME_WORDS`].
pub fn stems(words: &[Word], greeting: &str) -> Vec<String> {
    stems_in(words, greeting).into_iter().map(|(_, s)| s).collect()
}

/// [`stems`], each with the language it must be said in when that is not the call's (the
/// options of the language menu).
pub fn stems_in(words: &[Word], greeting: &str) -> Vec<(Option<Lang>, String)> {
    use crate::media::{number_stems, time_stems};
    let mut out: Vec<(Option<Lang>, String)> = Vec::new();
    // The language of the words being pushed, when it is not the call's.
    let speaking = std::cell::Cell::new(None);
    let mut push = |s: &str| out.push((speaking.get(), s.to_owned()));
    for word in words {
        match word {
            Word::Greeting => push(greeting),
            Word::LanguageOption { key, lang } => {
                speaking.set(Some(*lang));
                push("intake-language");
                for s in number_stems(*key).unwrap_or_default() {
                    push(&s);
                }
                speaking.set(None);
            }
            Word::YourNumber => push("intake-your-number"),
            Word::Digits(d) => {
                for c in d.chars() {
                    if let Some(n) = c.to_digit(10) {
                        push(&format!("num-{n}"));
                    }
                }
            }
            Word::ThisOrOther => push("intake-this-or-other"),
            Word::EnterNumber => push("intake-enter-number"),
            Word::YouTyped => push("intake-you-typed"),
            Word::ConfirmNumber => push("intake-confirm"),
            Word::Refused => push("intake-refused"),
            Word::Windows => push("intake-windows"),
            Word::WindowOption { key, range } => {
                push("intake-press");
                for s in number_stems(*key).unwrap_or_default() {
                    push(&s);
                }
                let (sh, sm) = hm(range.start_minute());
                let (eh, em) = hm(range.end_minute());
                for s in time_stems(sh, sm).unwrap_or_default() {
                    push(&s);
                }
                push("intake-until");
                // "until ten": the end without a second "at".
                for s in time_stems(eh, em).unwrap_or_default().into_iter().skip(1) {
                    push(&s);
                }
            }
            Word::FirstFree => {
                push("intake-press");
                push("num-0");
                push("intake-first-free");
            }
            Word::Eta(None) => push("intake-eta-soon"),
            Word::Eta(Some(s)) => {
                push(match s.day {
                    Day::Today => "intake-eta-today",
                    Day::Tomorrow => "intake-eta-tomorrow",
                    Day::Later => "intake-eta-later",
                });
                for w in time_stems(s.hour, s.minute).unwrap_or_default() {
                    push(&w);
                }
            }
            Word::SmsFollows => push("intake-sms"),
            Word::Waiting(place) => {
                push("intake-waiting");
                if let Some(n) = u8::try_from(*place).ok().and_then(number_stems) {
                    push("intake-place");
                    for s in n {
                        push(&s);
                    }
                }
            }
            Word::Goodbye => push("intake-goodbye"),
            Word::NotStored => push("intake-not-stored"),
        }
    }
    out
}

/// Hours and minutes of a minute of the day (24:00 is said as 0:00).
fn hm(minute_of_day: u16) -> (u8, u8) {
    let h = u8::try_from((minute_of_day / 60) % 24).unwrap_or(0);
    let m = u8::try_from(minute_of_day % 60).unwrap_or(0);
    (h, m)
}

/// The prompt stems the intake call may play (kept with the media that checks them).
pub use crate::media::INTAKE_PROMPTS as PROMPTS;

#[cfg(test)]
mod tests;
