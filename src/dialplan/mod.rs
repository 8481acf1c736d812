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
