//! Media: prompts, G.711, the far end's SDP answer, and RTP legs.
//!
//! Pure: [`g711`] (codecs), [`sdp`] (answer → [`sdp::RemoteMedia`]), [`wav::parse`],
//! [`number_stems`]. Edges: [`wav::load`] and [`Prompts::load`] read files;
//! [`check_prompts`] reads every prompt a set of services names (for `callbackd check` and
//! the daemon's start-up); [`rtp`] owns a UDP socket per leg (tokio), [`pacer`] sends every
//! playing leg's frames from a thread per CPU on absolute 20 ms grids, [`rt`] runs the legs' receivers
//! on a media runtime of their own.

pub mod g711;
pub mod pacer;
pub mod rt;
pub mod rtp;
pub mod sdes;
pub mod sdp;
pub mod srtp;
pub mod wav;

pub use g711::Codec;
pub use rtp::{MediaError, Played, RtpLeg, relay};
pub use sdp::{RemoteMedia, SdpError, parse_answer};
pub use wav::{Prompt, PromptError};

use crate::diag::Diagnostic;
use crate::dialplan::Services;
use crate::lang::Lang;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every prompt a daemon plays, loaded once, by language and name.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    by_name: HashMap<(Lang, String), Prompt>,
}

impl Prompts {
    /// The file of a prompt: `<sounds_dir>/<lang>/<name>.wav`.
    pub fn path(sounds_dir: &Path, lang: Lang, name: &str) -> PathBuf {
        sounds_dir.join(lang.code()).join(format!("{name}.wav"))
    }

    /// Loads the given prompts (each once, however often it is listed); every file that
    /// cannot be played is returned with its reason.
    pub fn load(
        sounds_dir: &Path,
        wanted: &[(Lang, &str)],
    ) -> Result<Prompts, Vec<(PathBuf, PromptError)>> {
        let mut by_name = HashMap::new();
        let mut errors = Vec::new();
        for (lang, name) in wanted {
            let key = (*lang, (*name).to_owned());
            if by_name.contains_key(&key) {
                continue;
            }
            let path = Self::path(sounds_dir, *lang, name);
            if errors.iter().any(|(p, _)| p == &path) {
                continue;
            }
            match wav::load(&path) {
                Ok(p) => {
                    by_name.insert(key, p);
                }
                Err(e) => errors.push((path, e)),
            }
        }
        if errors.is_empty() { Ok(Prompts { by_name }) } else { Err(errors) }
    }

    /// Loads every prompt the services name, for every language each offers, plus the time
    /// words ([`TIME_WORDS`]) of those languages. Problems are reported as by
    /// [`check_prompts`]. This is the daemon's start-up hook.
    pub fn for_services(
        sounds_dir: &Path,
        services: &Services,
    ) -> Result<Prompts, Vec<Diagnostic>> {
        let diags = check_prompts(sounds_dir, services);
        if !diags.is_empty() {
            return Err(diags);
        }
        let wanted = wanted(services);
        let list: Vec<(Lang, &str)> = wanted.iter().map(|(l, n)| (*l, n.as_str())).collect();
        Prompts::load(sounds_dir, &list).map_err(|errors| {
            errors
                .into_iter()
                .map(|(path, e)| Diagnostic::whole_file(&path, e.to_string()))
                .collect()
        })
    }

    /// A prompt by language and name.
    pub fn get(&self, lang: Lang, name: &str) -> Option<&Prompt> {
        self.by_name.get(&(lang, name.to_owned()))
    }

    /// Number of distinct prompts held.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The number and time words every language ships besides the named prompts: `at`
/// ("kello", "klockan", "at") and `num-0` … `num-20`, `num-30`, `num-40`, `num-50`.
pub const TIME_WORDS: [&str; 25] = [
    "at", "num-0", "num-1", "num-2", "num-3", "num-4", "num-5", "num-6", "num-7", "num-8", "num-9",
    "num-10", "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18",
    "num-19", "num-20", "num-30", "num-40", "num-50",
];

/// The prompt stems that say `n` (0-59): one file up to 20 and for whole tens, otherwise
/// tens then units, which is how Finnish, Swedish and English all form them
/// ("kaksikymmentä" + "seitsemän", "tjugo" + "sju", "twenty" + "seven"). `None` above 59.
pub fn number_stems(n: u8) -> Option<Vec<String>> {
    match n {
        0..=20 => Some(vec![format!("num-{n}")]),
        21..=59 if n % 10 == 0 => Some(vec![format!("num-{n}")]),
        21..=59 => Some(vec![format!("num-{}", n / 10 * 10), format!("num-{}", n % 10)]),
        _ => None,
    }
}

/// The stems that say a clock time: "kello kymmenen kolmekymmentä" (`at`, hour, minutes;
/// the minutes left out on the hour). `None` for an impossible time.
pub fn time_stems(hour: u8, minute: u8) -> Option<Vec<String>> {
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut out = vec!["at".to_owned()];
    out.extend(number_stems(hour)?);
    if minute > 0 {
        out.extend(number_stems(minute)?);
    }
    Some(out)
}

/// The prompts of a service's intake call (none without `[intake]`), each with the key
/// that names it in messages.
fn intake_prompts(svc: &crate::dialplan::Service) -> Vec<(String, crate::dialplan::PromptName)> {
    let Some(intake) = &svc.intake else { return Vec::new() };
    let mut out = vec![("intake.greeting".to_owned(), intake.greeting.clone())];
    for name in INTAKE_PROMPTS {
        let prompt = crate::dialplan::PromptName { name: name.to_owned(), at: None };
        out.push(("intake prompt".to_owned(), prompt));
    }
    if intake.choose_language {
        let prompt = crate::dialplan::PromptName { name: INTAKE_LANGUAGE.to_owned(), at: None };
        out.push(("intake.choose_language".to_owned(), prompt));
    }
    out
}

/// Every (language, prompt) the services need, in a stable order without repeats.
fn wanted(services: &Services) -> Vec<(Lang, String)> {
    let mut out: Vec<(Lang, String)> = Vec::new();
    for svc in services.values() {
        for lang in &svc.language.offered {
            let names = svc.prompts.iter().into_iter().map(|(_, p)| p.name.clone());
            let intake = intake_prompts(svc).into_iter().map(|(_, p)| p.name);
            for name in names.chain(intake).chain(TIME_WORDS.iter().map(|w| (*w).to_owned())) {
                if !out.iter().any(|(l, n)| l == lang && *n == name) {
                    out.push((*lang, name));
                }
            }
        }
    }
    out
}

/// Checks that every prompt each service names exists for every language it offers, and
/// every time word of those languages, as a playable 8 kHz mono 16-bit PCM WAV. Reads the
/// files; one problem per file and service. A problem is located at the dialplan's
/// `[prompts]` value (`file:line:col`), or at the dialplan as a whole for a default name.
pub fn check_prompts(sounds_dir: &Path, services: &Services) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut cache: HashMap<PathBuf, Result<(), PromptError>> = HashMap::new();
    let mut check = |path: PathBuf| {
        cache.entry(path.clone()).or_insert_with(|| wav::load(&path).map(|_| ())).clone()
    };
    for svc in services.values() {
        for lang in &svc.language.offered {
            let named =
                svc.prompts.iter().into_iter().map(|(k, p)| (format!("prompts.{k}"), p.clone()));
            for (key, prompt) in named.chain(intake_prompts(svc)) {
                let path = Prompts::path(sounds_dir, *lang, &prompt.name);
                if let Err(e) = check(path.clone()) {
                    let message =
                        format!("{key}: {} ({lang}, offered by {}): {e}", path.display(), svc.id);
                    diags.push(match prompt.at {
                        Some((line, col)) => {
                            Diagnostic { file: svc.file.clone(), line, col, message }
                        }
                        None => Diagnostic::whole_file(&svc.file, message),
                    });
                }
            }
            for word in TIME_WORDS {
                let path = Prompts::path(sounds_dir, *lang, word);
                if let Err(e) = check(path.clone()) {
                    let message = format!(
                        "time word {} ({lang}, offered by {}): {e}",
                        path.display(),
                        svc.id
                    );
                    diags.push(Diagnostic::whole_file(&svc.file, message));
                }
            }
        }
    }
    diags
}

/// The option of the intake call's language menu ("suomeksi paina", "på svenska tryck",
/// "for English press", then the key), needed in every offered language of a service with
/// `[intake] choose_language`.
pub const INTAKE_LANGUAGE: &str = "intake-language";

/// The prompt stems the intake call may play besides the greeting and the time words
/// (`callbackd check` checks them for every language of a service with `[intake]`).
pub const INTAKE_PROMPTS: [&str; 19] = [
    "intake-your-number",
    "intake-this-or-other",
    "intake-enter-number",
    "intake-you-typed",
    "intake-confirm",
    "intake-refused",
    "intake-windows",
    "intake-press",
    "intake-until",
    "intake-first-free",
    "intake-eta-soon",
    "intake-eta-today",
    "intake-eta-tomorrow",
    "intake-eta-later",
    "intake-sms",
    "intake-waiting",
    "intake-place",
    "intake-goodbye",
    "intake-not-stored",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_sounds() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sounds")
    }

    #[test]
    fn numbers_and_times_are_composed_from_the_shipped_words() {
        assert_eq!(number_stems(7), Some(vec!["num-7".to_owned()]));
        assert_eq!(number_stems(40), Some(vec!["num-40".to_owned()]));
        assert_eq!(number_stems(27), Some(vec!["num-20".to_owned(), "num-7".to_owned()]));
        assert_eq!(number_stems(60), None);
        assert_eq!(time_stems(10, 30).expect("time"), ["at", "num-10", "num-30"]);
        assert_eq!(time_stems(8, 0).expect("time"), ["at", "num-8"]);
        assert_eq!(time_stems(24, 0), None);
        for n in 0..60 {
            for stem in number_stems(n).expect("stems") {
                assert!(TIME_WORDS.contains(&stem.as_str()), "{stem}");
            }
        }
    }

    #[test]
    fn the_intake_calls_prompts_are_checked_for_every_offered_language() {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(&file).expect("read");
        let broken =
            src.replace("greeting = \"intake-greeting-kallio\"", "greeting = \"intake-nope\"");
        let services =
            crate::dialplan::parse_all(&[(PathBuf::from("kallio.toml"), broken.clone())])
                .expect("valid");
        let diags = check_prompts(&repo_sounds(), &services);
        // One per offered language, at the value in the dialplan.
        assert_eq!(diags.len(), 3, "{diags:?}");
        let line = broken.lines().position(|l| l.contains("intake-nope")).expect("line") + 1;
        for d in &diags {
            assert_eq!(d.line, line, "{d}");
            assert!(d.message.starts_with("intake.greeting: "), "{d}");
        }
        // A sounds directory without the intake prompts: each is named.
        let empty = tempfile::tempdir().expect("tempdir");
        let services =
            crate::dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
        let all: Vec<String> =
            check_prompts(empty.path(), &services).iter().map(ToString::to_string).collect();
        for stem in INTAKE_PROMPTS {
            assert!(all.iter().any(|d| d.contains(&format!("/{stem}.wav"))), "{stem}");
        }
        // The language menu's prompt only where the menu is on, in every offered language;
        // the shipped sounds have it.
        let menu = |s: &str| s.contains("/intake-language.wav");
        assert!(!all.iter().any(|d| menu(d)), "{all:?}");
        let on = std::fs::read_to_string(&file)
            .expect("read")
            .replace("max_calls = 10\n", "max_calls = 10\nchoose_language = true\n");
        let services =
            crate::dialplan::parse_all(&[(PathBuf::from("kallio.toml"), on)]).expect("valid");
        let all: Vec<String> =
            check_prompts(empty.path(), &services).iter().map(ToString::to_string).collect();
        for lang in ["fi", "sv", "en"] {
            let needle = format!("/{lang}/intake-language.wav");
            assert!(
                all.iter().any(|d| d.contains(&needle) && d.contains("intake.choose_language")),
                "{needle}: {all:?}"
            );
        }
        assert_eq!(check_prompts(&repo_sounds(), &services), vec![]);
    }

    #[test]
    fn the_shipped_dialplans_and_sounds_agree() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans");
        let services = crate::dialplan::load_dir(&dir).expect("dialplans");
        assert_eq!(check_prompts(&repo_sounds(), &services), vec![]);
        let prompts = Prompts::for_services(&repo_sounds(), &services).expect("load");
        let greeting = prompts.get(Lang::Sv, "greeting-kallio").expect("greeting");
        assert!(greeting.duration() > std::time::Duration::from_millis(500));
        // Shared, not copied: the same Arc for the same prompt.
        let again = Prompts::load(&repo_sounds(), &[(Lang::Fi, "sorry"), (Lang::Fi, "sorry")])
            .expect("load");
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn the_prompts_section_is_parsed_key_by_key() {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(&file).expect("read");
        let svc = crate::dialplan::parse(&file, &src).expect("parse");
        assert_eq!(svc.prompts.greeting.name, "greeting-kallio");
        assert!(svc.prompts.greeting.at.is_some());
        // Without the section: defaults, located nowhere.
        let start = src.find("[prompts]").expect("section");
        let end = start + src[start..].find("\n\n").expect("end");
        let bare = format!("{}{}", &src[..start], &src[end..]);
        let svc = crate::dialplan::parse(&file, &bare).expect("parse");
        assert_eq!(
            (svc.prompts.greeting.name.as_str(), svc.prompts.greeting.at),
            ("greeting", None)
        );
        assert_eq!(svc.prompts.patient_unreachable.name, "patient-unreachable");
        // A path, a .wav suffix, a wrong type and an unknown key are each reported in place.
        let broken = src
            .replace("press1 = \"press-1\"", "press1 = \"../etc/passwd\"")
            .replace("sorry = \"sorry\"", "sorry = \"sorry.wav\"")
            .replace("whisper = \"whisper\"", "whisper = 3\nfarewell = \"bye\"");
        let diags = crate::dialplan::parse(&file, &broken).expect_err("broken");
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        let line_of =
            |needle: &str| broken.lines().position(|l| l.starts_with(needle)).expect("line") + 1;
        for (line, what) in [
            (line_of("press1"), "prompts.press1: \"../etc/passwd\" must be a file stem"),
            (line_of("sorry"), "prompts.sorry: \"sorry.wav\""),
            (line_of("whisper"), "`prompts.whisper`"),
            (line_of("farewell"), "unknown key `prompts.farewell`"),
        ] {
            assert!(
                text.iter()
                    .any(|t| t.contains(&format!("kallio.toml:{line}:")) && t.contains(what)),
                "{what} at line {line}: {text:#?}"
            );
        }
    }

    #[test]
    fn load_reports_each_bad_file_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("fi")).expect("mkdir");
        wav::write(&dir.path().join("fi/ok.wav"), &[0; 10], 8000, 1).expect("write");
        wav::write(&dir.path().join("fi/cd.wav"), &[0; 10], 44100, 2).expect("write");
        let err =
            Prompts::load(dir.path(), &[(Lang::Fi, "ok"), (Lang::Fi, "cd"), (Lang::Fi, "no")])
                .expect_err("bad");
        assert_eq!(
            err,
            vec![
                (dir.path().join("fi/cd.wav"), PromptError::NotRate8000(44100)),
                (dir.path().join("fi/no.wav"), PromptError::Missing),
            ]
        );
    }
}
