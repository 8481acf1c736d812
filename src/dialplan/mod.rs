//! Dialplans: one TOML file per *service* (one callback queue of one health station),
//! edited by PBX operators. See the "Dialplan reference" in README.md.
//!
//! [`parse`] is pure (text in, [`Service`] or every problem out); [`load_dir`] is the thin
//! edge that reads a directory.

mod parse;

pub use parse::parse;

use crate::calendar::{Calendar, DayRange};
use crate::diag::Diagnostic;
use crate::lang::Lang;
use crate::number::{E164, NumberPolicy};
use crate::policy::AttemptRules;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One validated dialplan.
#[derive(Debug, Clone)]
pub struct Service {
    /// Short stable id used in the API, metrics and the store (`kallio`).
    pub id: String,
    /// Human name (`Kallion terveysasema`).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// What patients see when we call.
    pub caller_id: CallerId,
    /// Opening hours, holidays and exceptions in the service's time zone.
    pub calendar: Calendar,
    /// Attempts, pauses, ring timeout, expiry.
    pub attempts: AttemptRules,
    /// Concurrent calls this service may have in progress.
    pub capacity: u32,
    /// Time windows a patient may choose; empty = the service offers no choice.
    pub windows: Vec<DayRange>,
    /// The patient may ask (on the patient page) to be called on the next open day instead.
    pub next_open_day: bool,
    /// Where and how an answered callback is connected to staff.
    pub connect: Connect,
    /// Which numbers may be called back.
    pub numbers: NumberPolicy,
    /// Default and offered languages for prompts and SMS.
    pub language: Languages,
    /// SMS to patients (`[sms]`); `None` when the service sends none.
    pub sms: Option<crate::sms::SmsSettings>,
    /// The prompts the service plays (`[prompts]`), checked by `media::check_prompts`.
    pub prompts: PromptNames,
    /// The intake call (`[intake]`): callbackd answers the PBX's overflow calls for this
    /// service and takes requests on the phone; `None` without the section.
    pub intake: Option<Intake>,
    /// Care teams (`[teams]`): a request with a team is handed over to the team's SIP
    /// target instead of `[connect] target`.
    pub teams: BTreeMap<String, String>,
    /// Asks an outside system for a request's team when intake gives none
    /// (`[team_lookup]`); `None` without the section.
    pub team_lookup: Option<TeamLookup>,
}

/// `[team_lookup]`: `GET {url}?number=+358…` answered with `{"team": "name"}` (or
/// `{"team": null}`) within `timeout`; any failure is skipped (the request is stored
/// without a team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamLookup {
    /// `http://` or `https://` URL.
    pub url: String,
    /// How long intake waits for the answer.
    pub timeout: std::time::Duration,
}

impl Service {
    /// Where an answered callback of a request with `team` is handed over: the team's
    /// target, or `[connect] target` without a team (or for a team no longer listed).
    pub fn staff_target(&self, team: Option<&str>) -> &str {
        team.and_then(|t| self.teams.get(t)).map_or(self.connect.target.as_str(), String::as_str)
    }
}

/// `[intake]`: the PBX sends callers of this service's queue to callbackd (see
/// [`crate::call::intake`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// The SIP user parts (Request-URI) the PBX sends this service's calls to; unique
    /// across services.
    pub users: Vec<String>,
    /// The intake greeting (default `"intake-greeting"`).
    pub greeting: PromptName,
    /// The language of the call (default: the service's default language).
    pub language: Lang,
    /// Users that speak another language than `language` (`[intake.languages]`, e.g.
    /// `"ringbud-kallio-sv" = "sv"` for the PBX's Swedish queue); each a listed user and an
    /// offered language.
    pub languages: BTreeMap<String, Lang>,
    /// Ask the caller for a language first ("press 1 for Finnish, 2 for Swedish …", each
    /// option in its own language, in `language.offered` order); needs two or more
    /// offered languages.
    pub choose_language: bool,
    /// Intake calls of this service at once; beyond it the PBX gets 486 (its own limit,
    /// separate from the callbacks' `capacity`).
    pub max_calls: u32,
}

impl Intake {
    /// The language a call to `user` starts in: its own (`[intake.languages]`), else the
    /// section's.
    pub fn language_of(&self, user: &str) -> Lang {
        self.languages.get(user).copied().unwrap_or(self.language)
    }
}

/// The prompts of a service (`[prompts]`): file stems under `sounds/<lang>/<name>.wav`,
/// one file per offered language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptNames {
    /// Who is calling (`greeting`, default `"greeting"`, a generic one).
    pub greeting: PromptName,
    /// "Press 1 to be connected to a nurse; press 9 …" (`press1`, default `"press-1"`).
    pub press1: PromptName,
    /// "Connecting you now" (`connecting`).
    pub connecting: PromptName,
    /// "Sorry, we could not connect you" (`sorry`).
    pub sorry: PromptName,
    /// To the nurse in agent-first mode: "callback patient coming" (`whisper`).
    pub whisper: PromptName,
    /// To the nurse: the patient did not answer (`patient_unreachable`).
    pub patient_unreachable: PromptName,
}

/// One prompt name and where the dialplan wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptName {
    /// File stem: `sounds/<lang>/<name>.wav`.
    pub name: String,
    /// 1-based line and column of the value in the dialplan; `None` for a default.
    pub at: Option<(usize, usize)>,
}

impl PromptNames {
    /// The `[prompts]` keys with their names, in the order of the reference.
    pub fn iter(&self) -> [(&'static str, &PromptName); 6] {
        [
            ("greeting", &self.greeting),
            ("press1", &self.press1),
            ("connecting", &self.connecting),
            ("sorry", &self.sorry),
            ("whisper", &self.whisper),
            ("patient_unreachable", &self.patient_unreachable),
        ]
    }
}

/// The caller ID presented on every callback of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    /// The health station's own public number, E.164.
    pub number: E164,
    /// Display name in the `From` header.
    pub name: String,
}

/// How an answered callback reaches staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// SIP URI of the staff queue on the PBX.
    pub target: String,
    /// Transfer with REFER, or bridge two legs.
    pub method: ConnectMethod,
    /// Who is called first.
    pub mode: ConnectMode,
    /// How we make sure a person answered.
    pub confirm: Confirm,
}

/// Hand-over technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMethod {
    /// Blind transfer with REFER to the staff queue.
    Refer,
    /// callbackd calls the staff queue itself and relays media.
    Bridge,
}

/// Call order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectMode {
    /// Call the patient, then connect staff.
    PatientFirst,
    /// Call staff first, whisper, then call the patient.
    AgentFirst,
}

/// Answer confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Play the greeting and wait for the patient to press 1.
    Dtmf,
    /// Connect as soon as the call is answered.
    None,
}

/// Languages of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Languages {
    /// Used when the request names none.
    pub default: Lang,
    /// Accepted in requests.
    pub offered: Vec<Lang>,
}

/// Every service of a dialplan directory, by id.
pub type Services = BTreeMap<String, Service>;

/// Reads and validates every `*.toml` file of `dir` (sorted by name). All problems of all
/// files are returned together; nothing is accepted when any file is broken.
pub fn load_dir(dir: &Path) -> Result<Services, Vec<Diagnostic>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            return Err(vec![Diagnostic::whole_file(
                dir,
                format!("cannot read dialplan directory: {e}"),
            )]);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    load_files(&files)
}

/// Reads and validates the given dialplan files; ids must be unique across them.
pub fn load_files(files: &[PathBuf]) -> Result<Services, Vec<Diagnostic>> {
    let mut sources = Vec::with_capacity(files.len());
    let mut diags = Vec::new();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(src) => sources.push((file.clone(), src)),
            Err(e) => diags.push(Diagnostic::whole_file(file, format!("cannot read: {e}"))),
        }
    }
    match parse_all(&sources) {
        Ok(services) if diags.is_empty() => Ok(services),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            Err(diags)
        }
    }
}

/// Parses several dialplans (pure); ids must be unique.
pub fn parse_all(sources: &[(PathBuf, String)]) -> Result<Services, Vec<Diagnostic>> {
    let mut services = Services::new();
    let mut diags = Vec::new();
    for (file, src) in sources {
        match parse(file, src) {
            Ok(service) => {
                let users = service.intake.iter().flat_map(|i| i.users.iter());
                for user in users {
                    let other = services
                        .values()
                        .find(|s| s.intake.as_ref().is_some_and(|i| i.users.contains(user)));
                    if let Some(other) = other {
                        let at = src.find(&format!("\"{user}\"")).map(|i| i..i + user.len() + 2);
                        diags.push(Diagnostic::at(
                            file,
                            src,
                            at,
                            format!(
                                "intake user {user:?} is already used by {}",
                                other.file.display()
                            ),
                        ));
                    }
                }
                if let Some(first) = services.get(&service.id) {
                    let span = top_level_key_offset(src, "id").map(|i| i..i + 2);
                    diags.push(Diagnostic::at(
                        file,
                        src,
                        span,
                        format!(
                            "service id {:?} is already used by {}",
                            service.id,
                            first.file.display()
                        ),
                    ));
                } else {
                    services.insert(service.id.clone(), service);
                }
            }
            Err(more) => diags.extend(more),
        }
    }
    if diags.is_empty() { Ok(services) } else { Err(diags) }
}

/// Byte offset of a top-level `key = …` line (before any `[table]` header).
fn top_level_key_offset(src: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kallio_with(extra: &str) -> Result<Services, Vec<Diagnostic>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(path).expect("the example dialplan");
        // Without the example's own [intake], so each test writes the section it needs.
        let start = src.find("[intake]").expect("kallio has [intake]");
        let end = start + src[start..].find("\n\n").expect("section end");
        let src = format!("{}{}\n{extra}", &src[..start], &src[end..]);
        parse_all(&[(PathBuf::from("kallio.toml"), src)])
    }

    fn messages(r: Result<Services, Vec<Diagnostic>>) -> Vec<String> {
        r.err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn intake_and_teams_are_read_with_defaults() {
        let s = kallio_with(
            "[intake]\nusers = [\"ringbud-kallio\", \"kallio-2\"]\n\n\
             [teams]\ntiimi-a = \"sip:tiimi-a@pbx.hel.example\"\n",
        )
        .expect("valid");
        let svc = &s["kallio"];
        let intake = svc.intake.as_ref().expect("[intake]");
        assert_eq!(intake.users, ["ringbud-kallio", "kallio-2"]);
        assert_eq!((intake.greeting.name.as_str(), intake.max_calls), ("intake-greeting", 4));
        assert_eq!(intake.language, svc.language.default);
        assert_eq!(svc.staff_target(Some("tiimi-a")), "sip:tiimi-a@pbx.hel.example");
        assert_eq!(svc.staff_target(None), svc.connect.target);
        assert_eq!(svc.staff_target(Some("gone")), svc.connect.target);
        let none = kallio_with("").expect("valid");
        assert!(none["kallio"].intake.is_none() && none["kallio"].teams.is_empty());
    }

    #[test]
    fn broken_intake_and_teams_are_reported_where_they_are() {
        let m = messages(kallio_with(
            "[intake]\nusers = [\"a b\", \"x\", \"x\"]\nmax_calls = 0\nlanguage = \"de\"\nfoo = 1\n\n\
             [teams]\n\"tiimi a\" = \"sip:x@y\"\ntiimi-b = \"tel:123\"\n",
        ));
        let all = m.join("\n");
        for needle in [
            "intake.users: \"a b\" must be a SIP user part",
            "intake.users: \"x\" is listed twice",
            "intake.max_calls: 0 is outside the allowed range 1 to 1000",
            "intake.language",
            "unknown key `intake.foo`",
            "teams: \"tiimi a\" must be a name",
            "teams.tiimi-b: \"tel:123\" is not a SIP URI",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        // Each with its file, line and column.
        assert!(m.iter().all(|l| l.starts_with("kallio.toml:")), "{all}");
        let m = messages(kallio_with("[team_lookup]\nurl = \"ftp://x\"\n"));
        assert!(m.join("\n").contains("team_lookup.url: \"ftp://x\" must be an http"), "{m:?}");
        let m = messages(kallio_with("[team_lookup]\nurl = \"http://x/t\"\ntimeout = \"10s\"\n"));
        assert!(
            m.join("\n").contains("team_lookup.timeout must be a duration from 50ms to 5s"),
            "{m:?}"
        );
        let ok = kallio_with("[team_lookup]\nurl = \"http://x/t\"\n").expect("valid");
        let lookup = ok["kallio"].team_lookup.clone().expect("lookup");
        assert_eq!((lookup.url.as_str(), lookup.timeout.as_millis()), ("http://x/t", 500));
        let m = messages(kallio_with("[intake]\nmax_calls = 2\n"));
        assert!(m.join("\n").contains("users"), "{m:?}");
    }

    #[test]
    fn intake_users_may_speak_their_own_language_and_the_caller_may_choose() {
        let s = kallio_with(
            "[intake]\nusers = [\"ringbud-kallio\", \"ringbud-kallio-sv\"]\n\
             choose_language = true\n\n[intake.languages]\n\"ringbud-kallio-sv\" = \"sv\"\n",
        )
        .expect("valid");
        let intake = s["kallio"].intake.as_ref().expect("[intake]");
        assert_eq!(intake.language_of("ringbud-kallio-sv"), Lang::Sv);
        assert_eq!(intake.language_of("ringbud-kallio"), Lang::Fi);
        assert!(intake.choose_language);
        // Defaults: no menu, every user in the section's language.
        let plain = kallio_with("[intake]\nusers = [\"a\"]\nlanguage = \"en\"\n").expect("valid");
        let intake = plain["kallio"].intake.as_ref().expect("[intake]");
        assert!(!intake.choose_language && intake.languages.is_empty());
        assert_eq!(intake.language_of("a"), Lang::En);
    }

    #[test]
    fn broken_intake_languages_are_reported_where_they_are() {
        let m = messages(kallio_with(
            "[intake]\nusers = [\"a\", \"b\"]\nchoose_language = \"yes\"\n\n\
             [intake.languages]\nnobody = \"sv\"\nb = \"de\"\n",
        ));
        let all = m.join("\n");
        for needle in [
            "`intake.choose_language`",
            "intake.languages: \"nobody\" is not one of intake.users (a, b)",
            "intake.languages.b: unknown language \"de\", expected one of fi, sv, en",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        let line = |n: usize| format!("kallio.toml:{n}:");
        let src = m.iter().find(|l| l.contains("\"nobody\"")).expect("nobody");
        let b = m.iter().find(|l| l.contains("\"de\"")).expect("de");
        let at = |l: &str| l.split(':').nth(1).and_then(|n| n.parse::<usize>().ok()).expect("line");
        assert_eq!(at(b), at(src) + 1, "{all}");
        assert!(src.starts_with(&line(at(src))), "{all}");
        // A language the service does not offer, and a menu of one language.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(path).expect("the example dialplan");
        // (The example's ringbud-kallio-sv speaks Swedish.)
        let one = src
            .replace("offered = [\"fi\", \"sv\", \"en\"]", "offered = [\"fi\"]")
            .replace("max_calls = 10\n", "max_calls = 10\nchoose_language = true\n");
        let m = messages(parse_all(&[(PathBuf::from("kallio.toml"), one)]));
        let all = m.join("\n");
        for needle in [
            "intake.languages.ringbud-kallio-sv: sv is not in language.offered (fi)",
            "intake.choose_language needs two or more languages in language.offered (it has fi)",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
    }

    #[test]
    fn an_intake_user_belongs_to_one_service() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(path).expect("the example dialplan");
        let other = src.replace("id = \"kallio\"", "id = \"kallio-2\"");
        let m = parse_all(&[(PathBuf::from("a.toml"), src), (PathBuf::from("b.toml"), other)])
            .err()
            .unwrap_or_default();
        let all: Vec<String> = m.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|l| l.starts_with("b.toml:")
                && l.contains("\"ringbud-kallio\" is already used by a.toml")),
            "{all:?}"
        );
    }
}
