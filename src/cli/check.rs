//! `callbackd check`: the configuration, every dialplan and every prompt they name.

use super::{EXIT_BAD_CONFIG, print_diags};
use callbackd::config::Config;
use callbackd::diag::Diagnostic;
use callbackd::dialplan;
use std::path::PathBuf;
use std::process::ExitCode;

/// Prints `ok: N services` or every problem found.
pub fn check(config: PathBuf, paths: Vec<PathBuf>) -> ExitCode {
    let mut diags = Vec::new();
    let cfg = Config::load(&config).map_err(|d| diags.extend(d)).ok();
    let services = if paths.is_empty() {
        cfg.as_ref().map(|c| dialplan::load_dir(&c.dialplans))
    } else {
        let mut files = Vec::new();
        for p in &paths {
            if p.is_dir() {
                match std::fs::read_dir(p) {
                    Ok(entries) => {
                        let mut found: Vec<PathBuf> = entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                            .collect();
                        found.sort();
                        files.extend(found);
                    }
                    Err(e) => diags.push(Diagnostic::whole_file(p, format!("cannot read: {e}"))),
                }
            } else {
                files.push(p.clone());
            }
        }
        Some(dialplan::load_files(&files))
    };
    let count = match services {
        Some(Ok(s)) => {
            // Every named prompt, for every offered language, must be a playable WAV.
            if let Some(cfg) = &cfg {
                diags.extend(callbackd::media::check_prompts(&cfg.sounds, &s));
                // Notices with the patient page's `{link}`, measured with the real URL.
                for (file, msg) in notice_problems(&s, cfg.public.as_ref()) {
                    diags.push(Diagnostic::whole_file(&file, msg));
                }
            }
            s.len()
        }
        Some(Err(d)) => {
            diags.extend(d);
            0
        }
        None => 0,
    };
    if !diags.is_empty() {
        return print_diags(&diags);
    }
    if count == 0 {
        eprintln!("no dialplans found: at least one service is needed");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("ok: {count} service{}", if count == 1 { "" } else { "s" });
    ExitCode::SUCCESS
}

/// Problems of notices that use `{link}` with the configured `[public] url` (`None`: no
/// patient page): each as (dialplan file, message).
fn notice_problems(
    services: &callbackd::dialplan::Services,
    public: Option<&callbackd::link::Public>,
) -> Vec<(PathBuf, String)> {
    use callbackd::sms::template::{Kind, parts};
    let mut out = Vec::new();
    for svc in services.values() {
        let Some(sms) = &svc.sms else { continue };
        let mut keys: Vec<_> =
            sms.templates.keys().filter(|(_, k)| *k == Kind::Notice).copied().collect();
        keys.sort_by_key(|(l, _)| l.code());
        for key in keys {
            let Some(t) = sms.templates.get(&key) else { continue };
            if !t.uses("link") {
                continue;
            }
            let what = format!("sms.{}.notice", key.0.code());
            let Some(public) = public else {
                out.push((
                    svc.file.clone(),
                    format!(
                        "{what}: uses {{link}} but the daemon configuration has no [public] \
                         section: the link would be empty"
                    ),
                ));
                continue;
            };
            // The longest values: as the dialplan's own check, with the real link length.
            let when = "2026-12-30T21:45:00Z".parse::<jiff::Timestamp>().ok();
            let mut vals = callbackd::sms::values(
                &svc.name,
                &svc.caller_id.number,
                svc.calendar.tz(),
                None,
                when.map(|t| (t, t)),
            );
            vals.insert("link", callbackd::link::sample(&public.url));
            let n = parts(&t.render(&vals));
            if n > usize::from(sms.max_parts) {
                out.push((
                    svc.file.clone(),
                    format!(
                        "{what}: with the link of [public] url {:?} the message takes {n} SMS \
                         parts, more than max_parts = {}",
                        public.url, sms.max_parts
                    ),
                ));
            }
        }
    }
    out
}
