//! Dialplan text → [`Service`], reporting every problem with its location.

use super::{CallerId, Confirm, Connect, ConnectMethod, ConnectMode, Languages, Service};
use super::{Intake, PromptName, PromptNames};
use crate::calendar::{Calendar, DayRange, HolidayCalendar, Hours, normalize_ranges};
use crate::diag::{Diagnostic, Section, TomlDoc};
use crate::lang::Lang;
use crate::number::{NumberKind, NumberPolicy, check_caller_id};
use crate::policy::AttemptRules;
use jiff::SignedDuration;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecial {
    date: Spanned<toml::value::Datetime>,
    hours: Vec<Spanned<String>>,
}

type Ranges = Vec<Spanned<String>>;

/// Parses and validates one dialplan. `file` is used only in messages.
///
/// Every problem is reported: syntax errors, unknown keys, wrong types, impossible hours,
/// an unknown time zone, a bad caller ID, durations out of range.
pub fn parse(file: &Path, src: &str) -> Result<Service, Vec<Diagnostic>> {
    let mut doc = TomlDoc::parse(file, src);
    let id: Option<Spanned<String>> = doc.required("id");
    let name: Option<Spanned<String>> = doc.required("name");
    let timezone: Option<Spanned<String>> = doc.optional("timezone");
    let capacity: Option<Spanned<i64>> = doc.optional("capacity");
    let windows: Option<Vec<Spanned<String>>> = doc.optional("windows");
    let next_open_day: Option<Spanned<bool>> = doc.optional("next_open_day");
    let caller_id = doc.section("caller_id", true).and_then(|c| check_caller(&mut doc, c));
    let hours = doc.section("hours", true).and_then(|h| check_hours(&mut doc, h));
    let rules = doc.section("attempts", false).and_then(|a| check_attempts(&mut doc, a));
    let connect = doc.section("connect", true).and_then(|c| check_connect(&mut doc, c));
    let numbers = doc.section("numbers", false).and_then(|n| check_numbers(&mut doc, n));
    let language = doc.section("language", false).and_then(|l| check_language(&mut doc, l));
    let prompts = doc.section("prompts", false).and_then(|p| check_prompts(&mut doc, p, src));
    let teams = doc.section("teams", false).and_then(|t| check_teams(&mut doc, t));
    let team_lookup = doc.section("team_lookup", false).map(|t| check_team_lookup(&mut doc, t));
    let intake =
        doc.section("intake", false).map(|i| check_intake(&mut doc, i, src, language.as_ref()));

    let id = id.and_then(|id| check_id(&mut doc, id));
    let name = name.and_then(|n| non_empty(&mut doc, n, "name", 80));
    let sms = doc.section("sms", false).and_then(|s| {
        let cx = crate::sms::dialplan::Context {
            name: name.as_deref(),
            caller: caller_id.as_ref().map(|c| &c.number),
            offered: language.as_ref().map(|l| l.offered.as_slice()),
        };
        crate::sms::dialplan::check(&mut doc, s, cx)
    });
    let tz = match timezone {
        None => TimeZone::get("Europe/Helsinki").ok(),
        Some(tz) => match TimeZone::get(tz.get_ref()) {
            Ok(zone) => Some(zone),
            Err(_) => {
                let msg = format!(
                    "unknown time zone {:?} (use an IANA name such as \"Europe/Helsinki\")",
                    tz.get_ref()
                );
                doc.error(Some(tz.span()), msg);
                None
            }
        },
    };
    let capacity = match capacity {
        None => Some(4),
        Some(c) => int_in(&mut doc, &c, "capacity", 1, 1000).map(|v| v as u32),
    };
    let windows = check_windows(&mut doc, windows.unwrap_or_default(), hours.as_ref());
    let next_open_day = check_next_open_day(&mut doc, next_open_day, rules.as_ref());

    let diags = doc.finish();
    let Some(prompts) = prompts else { return Err(diags) };
    let Some(Ok(intake)) = intake else { return Err(diags) };
    let Some(teams) = teams else { return Err(diags) };
    let Some(Ok(team_lookup)) = team_lookup else { return Err(diags) };
    match (id, name, tz, caller_id, hours, rules, capacity, windows, connect, numbers, language) {
        (
            Some(id),
            Some(name),
            Some(tz),
            Some(caller_id),
            Some(hours),
            Some(attempts),
            Some(capacity),
            Some(windows),
            Some(connect),
            Some(numbers),
            Some(language),
        ) if diags.is_empty() => Ok(Service {
            id,
            name,
            file: file.to_path_buf(),
            caller_id,
            calendar: Calendar::new(hours, tz),
            attempts,
            capacity,
            windows,
            next_open_day,
            connect,
            numbers,
            language,
            sms: sms.flatten(),
            prompts,
            intake,
            teams,
            team_lookup,
        }),
        _ => Err(diags),
    }
}

fn check_id(doc: &mut TomlDoc<'_>, id: Spanned<String>) -> Option<String> {
    let s = id.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Some(id.into_inner())
    } else {
        doc.error(
            Some(id.span()),
            format!(
                "id {s:?} must be 1-40 characters of a-z, 0-9, '-' and '_', starting with a letter"
            ),
        );
        None
    }
}

fn non_empty(doc: &mut TomlDoc<'_>, v: Spanned<String>, what: &str, max: usize) -> Option<String> {
    let s = v.get_ref().trim();
    if s.is_empty() {
        doc.error(Some(v.span()), format!("{what} must not be empty"));
        None
    } else if s.chars().count() > max {
        doc.error(Some(v.span()), format!("{what} is longer than {max} characters"));
        None
    } else if s.chars().any(|c| c.is_control() || c == '"') {
        doc.error(Some(v.span()), format!("{what} must not contain quotes or control characters"));
        None
    } else {
        Some(s.to_owned())
    }
}

fn check_caller<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<CallerId> {
    let number: Option<Spanned<String>> = doc.need(&mut sec, "number");
    let name: Option<Spanned<String>> = doc.need(&mut sec, "name");
    doc.close(sec);
    let number = number.and_then(|number| match check_caller_id(number.get_ref()) {
        Ok(n) => Some(n),
        Err(e) => {
            doc.error(Some(number.span()), format!("caller_id.number: {e}"));
            None
        }
    });
    let name = name.and_then(|n| non_empty(doc, n, "caller_id.name", 40));
    Some(CallerId { number: number?, name: name? })
}

fn ranges(doc: &mut TomlDoc<'_>, raw: &[Spanned<String>], what: &str) -> Option<Vec<DayRange>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    for r in raw {
        match r.get_ref().parse::<DayRange>() {
            Ok(range) => out.push((range, r.span())),
            Err(e) => {
                doc.error(Some(r.span()), format!("{what}: {e}"));
                ok = false;
            }
        }
    }
    // Report an overlap at the later of the two ranges.
    for i in 0..out.len() {
        for j in 0..i {
            if out[i].0.overlaps(out[j].0) {
                let msg = format!("{what}: ranges {} and {} overlap", out[j].0, out[i].0);
                doc.error(Some(out[i].1.clone()), msg);
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let plain: Vec<DayRange> = out.into_iter().map(|(r, _)| r).collect();
    match normalize_ranges(&plain) {
        Ok(sorted) => Some(sorted),
        Err(e) => {
            let span = raw.first().map(Spanned::span);
            doc.error(span, format!("{what}: {e}"));
            None
        }
    }
}

fn date_of(doc: &mut TomlDoc<'_>, d: &Spanned<toml::value::Datetime>, what: &str) -> Option<Date> {
    let v = d.get_ref();
    match (v.date, v.time, v.offset) {
        (Some(date), None, None) => {
            match Date::new(date.year as i16, date.month as i8, date.day as i8) {
                Ok(d) => Some(d),
                Err(e) => {
                    doc.error(Some(d.span()), format!("{what}: invalid date: {e}"));
                    None
                }
            }
        }
        _ => {
            doc.error(Some(d.span()), format!("{what}: expected a date like 2026-12-31, got {v}"));
            None
        }
    }
}

fn check_hours<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<Hours> {
    let holidays_raw: Option<Spanned<String>> = doc.get(&mut sec, "holidays");
    let mut ok = true;
    let mut weekly: [Vec<DayRange>; 7] = Default::default();
    for (i, day) in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().enumerate() {
        let raw: Option<Ranges> = doc.get(&mut sec, day);
        match raw.as_deref().map(|r| ranges(doc, r, &format!("hours.{day}"))) {
            Some(Some(r)) => weekly[i] = r,
            Some(None) => ok = false,
            None => ok &= !sec.has(day),
        }
    }
    let eve_raw: Option<Ranges> = doc.get(&mut sec, "eve");
    let holiday_raw: Option<Ranges> = doc.get(&mut sec, "holiday");
    let closed_raw: Option<Vec<Spanned<toml::value::Datetime>>> = doc.get(&mut sec, "closed");
    let special_raw: Option<Vec<RawSpecial>> = doc.get(&mut sec, "special");
    // A key that was present but malformed has already been reported.
    let parsed = [
        ("holidays", holidays_raw.is_some()),
        ("eve", eve_raw.is_some()),
        ("holiday", holiday_raw.is_some()),
        ("closed", closed_raw.is_some()),
        ("special", special_raw.is_some()),
    ];
    if parsed.iter().any(|(key, parsed)| sec.has(key) && !parsed) {
        ok = false;
    }
    let empty_span = sec.span();
    doc.close(sec);

    let holidays = match holidays_raw.as_ref().map(|h| (h.get_ref().as_str(), h.span())) {
        None | Some(("fi", _)) => Some(HolidayCalendar::Fi),
        Some(("none", _)) => Some(HolidayCalendar::None),
        Some((other, span)) => {
            let msg =
                format!("hours.holidays: unknown calendar {other:?}, expected \"fi\" or \"none\"");
            doc.error(Some(span), msg);
            None
        }
    };
    let eve = match &eve_raw {
        None => None,
        Some(e) => {
            let r = ranges(doc, e, "hours.eve");
            ok &= r.is_some();
            r
        }
    };
    let holiday = ranges(doc, holiday_raw.as_deref().unwrap_or_default(), "hours.holiday");
    ok &= holiday.is_some();
    let mut closed = BTreeSet::new();
    for d in closed_raw.as_deref().unwrap_or_default() {
        match date_of(doc, d, "hours.closed") {
            Some(date) => {
                if !closed.insert(date) {
                    doc.error(Some(d.span()), format!("hours.closed: {date} is listed twice"));
                    ok = false;
                }
            }
            None => ok = false,
        }
    }
    let mut special = BTreeMap::new();
    for s in special_raw.as_deref().unwrap_or_default() {
        let date = date_of(doc, &s.date, "hours.special.date");
        let r = ranges(doc, &s.hours, "hours.special.hours");
        match (date, r) {
            (Some(date), Some(r)) => {
                if closed.contains(&date) {
                    let msg = format!("hours.special: {date} is also listed in hours.closed");
                    doc.error(Some(s.date.span()), msg);
                    ok = false;
                } else if special.insert(date, r).is_some() {
                    let msg = format!("hours.special: {date} is listed twice");
                    doc.error(Some(s.date.span()), msg);
                    ok = false;
                }
            }
            _ => ok = false,
        }
    }
    if ok && weekly.iter().all(Vec::is_empty) && special.is_empty() {
        doc.error(Some(empty_span), "hours: the service is never open (no weekly hours)");
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Hours { weekly, eve, holiday: holiday?, holidays: holidays?, closed, special })
}

fn duration(
    doc: &mut TomlDoc<'_>,
    raw: Option<Spanned<String>>,
    what: &str,
    default: SignedDuration,
    min: SignedDuration,
    max: SignedDuration,
) -> Option<SignedDuration> {
    let Some(raw) = raw else { return Some(default) };
    match raw.get_ref().parse::<SignedDuration>() {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(d) => {
            let msg = format!("{what}: {d:#} is outside the allowed range {min:#} to {max:#}");
            doc.error(Some(raw.span()), msg);
            None
        }
        Err(_) => {
            let msg = format!(
                "{what}: {:?} is not a duration (write e.g. \"30s\", \"15m\", \"1h 30m\")",
                raw.get_ref()
            );
            doc.error(Some(raw.span()), msg);
            None
        }
    }
}

fn int_in(doc: &mut TomlDoc<'_>, v: &Spanned<i64>, what: &str, min: i64, max: i64) -> Option<i64> {
    let n = *v.get_ref();
    if (min..=max).contains(&n) {
        Some(n)
    } else {
        doc.error(
            Some(v.span()),
            format!("{what}: {n} is outside the allowed range {min} to {max}"),
        );
        None
    }
}

fn check_attempts<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<AttemptRules> {
    let d = AttemptRules::default();
    let secs = SignedDuration::from_secs;
    let mins = SignedDuration::from_mins;
    let max_raw: Option<Spanned<i64>> = doc.get(&mut sec, "max");
    let pause_raw: Option<Spanned<String>> = doc.get(&mut sec, "pause");
    let ring_raw: Option<Spanned<String>> = doc.get(&mut sec, "ring_timeout");
    let margin_raw: Option<Spanned<String>> = doc.get(&mut sec, "last_call_before_close");
    let network_raw: Option<Spanned<String>> = doc.get(&mut sec, "network_retry");
    let expire_raw: Option<Spanned<i64>> = doc.get(&mut sec, "expire_after_open_days");
    let malformed = [
        "max",
        "pause",
        "ring_timeout",
        "last_call_before_close",
        "network_retry",
        "expire_after_open_days",
    ]
    .iter()
    .zip([
        max_raw.is_some(),
        pause_raw.is_some(),
        ring_raw.is_some(),
        margin_raw.is_some(),
        network_raw.is_some(),
        expire_raw.is_some(),
    ])
    .any(|(k, parsed)| sec.has(k) && !parsed);
    doc.close(sec);
    let max = match &max_raw {
        None => Some(d.max),
        Some(v) => int_in(doc, v, "attempts.max", 1, 10).map(|n| n as u8),
    };
    let pause = duration(doc, pause_raw, "attempts.pause", d.pause, secs(10), mins(24 * 60));
    let ring = duration(doc, ring_raw, "attempts.ring_timeout", d.ring_timeout, secs(5), secs(300));
    let margin = duration(
        doc,
        margin_raw,
        "attempts.last_call_before_close",
        d.last_call_before_close,
        secs(0),
        mins(4 * 60),
    );
    let network =
        duration(doc, network_raw, "attempts.network_retry", d.network_retry, secs(5), mins(120));
    let expire = match &expire_raw {
        None => Some(d.expire_after_open_days),
        Some(v) => int_in(doc, v, "attempts.expire_after_open_days", 0, 14).map(|n| n as u8),
    };
    if malformed {
        return None;
    }
    Some(AttemptRules {
        max: max?,
        pause: pause?,
        ring_timeout: ring?,
        last_call_before_close: margin?,
        network_retry: network?,
        expire_after_open_days: expire?,
    })
}

/// `next_open_day = true` needs a day to move to: a request that expires at its own
/// deadline (`[attempts] expire_after_open_days = 0`) has none.
fn check_next_open_day(
    doc: &mut TomlDoc<'_>,
    raw: Option<Spanned<bool>>,
    rules: Option<&AttemptRules>,
) -> bool {
    let Some(raw) = raw else { return false };
    let on = *raw.get_ref();
    if on && rules.is_some_and(|r| r.expire_after_open_days == 0) {
        doc.error(
            Some(raw.span()),
            "next_open_day = true needs attempts.expire_after_open_days of at least 1 \
             (a request that expires at its deadline has no next open day to move to)",
        );
    }
    on
}

fn check_windows(
    doc: &mut TomlDoc<'_>,
    raw: Vec<Spanned<String>>,
    hours: Option<&Hours>,
) -> Option<Vec<DayRange>> {
    let windows = ranges(doc, &raw, "windows")?;
    if let Some(hours) = hours {
        for (w, r) in windows.iter().zip(&raw) {
            let usable = hours.weekly.iter().flatten().any(|h| h.intersect(*w).is_some());
            if !usable {
                let msg = format!("windows: {w} lies outside the opening hours on every weekday");
                doc.error(Some(r.span()), msg);
                return None;
            }
        }
    }
    Some(windows)
}

fn check_connect<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<Connect> {
    let target: Option<Spanned<String>> = doc.need(&mut sec, "target");
    let method: Option<ConnectMethod> = doc.get(&mut sec, "method");
    let mode: Option<ConnectMode> = doc.get(&mut sec, "mode");
    let confirm: Option<Confirm> = doc.get(&mut sec, "confirm");
    let malformed = (sec.has("method") && method.is_none())
        || (sec.has("mode") && mode.is_none())
        || (sec.has("confirm") && confirm.is_none());
    doc.close(sec);
    let target = target?;
    let text = target.get_ref().trim();
    let rest = text.strip_prefix("sips:").or_else(|| text.strip_prefix("sip:"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.rsplit_once('@').map_or(r, |(_, h)| h);
        let host = host.split(';').next().unwrap_or_default();
        !host.is_empty() && !host.contains(char::is_whitespace) && !host.contains('@')
    });
    if !host_ok {
        let msg = format!(
            "connect.target: {text:?} is not a SIP URI (expected e.g. \"sip:nurses@pbx.example.fi\")"
        );
        doc.error(Some(target.span()), msg);
        return None;
    }
    if malformed {
        return None;
    }
    Some(Connect {
        target: text.to_owned(),
        method: method.unwrap_or(ConnectMethod::Refer),
        mode: mode.unwrap_or(ConnectMode::PatientFirst),
        confirm: confirm.unwrap_or(Confirm::Dtmf),
    })
}

fn check_numbers<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<NumberPolicy> {
    let allow: Option<Spanned<Vec<NumberKind>>> = doc.get(&mut sec, "allow");
    let foreign: Option<Vec<Spanned<String>>> = doc.get(&mut sec, "foreign");
    let mut ok =
        !((sec.has("allow") && allow.is_none()) || (sec.has("foreign") && foreign.is_none()));
    doc.close(sec);
    let mut policy = NumberPolicy::default();
    if let Some(allow) = allow {
        if allow.get_ref().is_empty() {
            doc.error(Some(allow.span()), "numbers.allow: at least one kind must be allowed");
            ok = false;
        }
        policy.allow = allow.into_inner();
    }
    for f in foreign.as_deref().unwrap_or_default() {
        match f.get_ref().parse::<phonenumber::country::Id>() {
            Ok(phonenumber::country::Id::FI) | Err(_) => {
                let msg = format!(
                    "numbers.foreign: {:?} is not a foreign ISO 3166 country code such as \"SE\"",
                    f.get_ref()
                );
                doc.error(Some(f.span()), msg);
                ok = false;
            }
            Ok(id) => policy.foreign.push(id),
        }
    }
    ok.then_some(policy)
}

fn check_language<'a>(doc: &mut TomlDoc<'a>, mut sec: Section<'a>) -> Option<Languages> {
    let default: Option<Spanned<Lang>> = doc.get(&mut sec, "default");
    let offered: Option<Vec<Lang>> = doc.get(&mut sec, "offered");
    let malformed =
        (sec.has("default") && default.is_none()) || (sec.has("offered") && offered.is_none());
    doc.close(sec);
    if malformed {
        return None;
    }
    let offered = offered.unwrap_or_else(|| Lang::ALL.to_vec());
    let (default, span) = default.map_or((Lang::Fi, None), |d| (*d.get_ref(), Some(d.span())));
    if !offered.contains(&default) {
        doc.error(
            span.or(Some(0..0)),
            format!("language.default {default} is not in language.offered"),
        );
        return None;
    }
    Some(Languages { default, offered })
}

fn check_prompts<'a>(
    doc: &mut TomlDoc<'a>,
    mut sec: Section<'a>,
    src: &str,
) -> Option<PromptNames> {
    let mut ok = true;
    let mut name = |doc: &mut TomlDoc<'a>, sec: &mut Section<'a>, key: &str, default: &str| {
        let raw: Option<Spanned<String>> = doc.get(sec, key);
        let Some(raw) = raw else {
            ok &= !sec.has(key);
            return PromptName { name: default.to_owned(), at: None };
        };
        let n = raw.get_ref();
        let valid = !n.is_empty()
            && n.len() <= 64
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !n.starts_with('.')
            && !n.ends_with(".wav");
        if !valid {
            let msg = format!(
                "prompts.{key}: {n:?} must be a file stem of a-z, 0-9, '-', '_' and '.' \
                 (sounds/<lang>/<name>.wav), without the .wav"
            );
            doc.error(Some(raw.span()), msg);
            ok = false;
        }
        let at = Some(crate::diag::line_col(src, raw.span().start));
        PromptName { name: n.clone(), at }
    };
    let greeting = name(doc, &mut sec, "greeting", "greeting");
    let press1 = name(doc, &mut sec, "press1", "press-1");
    let connecting = name(doc, &mut sec, "connecting", "connecting");
    let sorry = name(doc, &mut sec, "sorry", "sorry");
    let whisper = name(doc, &mut sec, "whisper", "whisper");
    let patient_unreachable = name(doc, &mut sec, "patient_unreachable", "patient-unreachable");
    doc.close(sec);
    ok.then_some(PromptNames { greeting, press1, connecting, sorry, whisper, patient_unreachable })
}

/// `[intake]`: `Ok(None)` when the section is absent, `Err(())` when it is broken (the
/// problems are recorded).
fn check_intake<'a>(
    doc: &mut TomlDoc<'a>,
    mut sec: Section<'a>,
    src: &str,
    language: Option<&Languages>,
) -> Result<Option<Intake>, ()> {
    if sec.span().is_empty() {
        doc.close(sec);
        return Ok(None);
    }
    let users: Option<Vec<Spanned<String>>> = doc.need(&mut sec, "users");
    let greeting: Option<Spanned<String>> = doc.get(&mut sec, "greeting");
    let lang: Option<Spanned<Lang>> = doc.get(&mut sec, "language");
    let max_calls: Option<Spanned<i64>> = doc.get(&mut sec, "max_calls");
    let per_user: Option<BTreeMap<String, Spanned<String>>> = doc.get(&mut sec, "languages");
    let choose: Option<Spanned<bool>> = doc.get(&mut sec, "choose_language");
    let mut ok = !((sec.has("greeting") && greeting.is_none())
        || (sec.has("language") && lang.is_none())
        || (sec.has("max_calls") && max_calls.is_none())
        || (sec.has("languages") && per_user.is_none())
        || (sec.has("choose_language") && choose.is_none()));
    let whole = sec.span();
    doc.close(sec);
    let Some(users) = users else { return Err(()) };
    if users.is_empty() {
        doc.error(Some(whole), "intake.users: list at least one SIP user the PBX sends calls to");
        ok = false;
    }
    let mut seen = BTreeSet::new();
    for u in &users {
        let name = u.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
        if !valid {
            let msg = format!(
                "intake.users: {name:?} must be a SIP user part of a-z, A-Z, 0-9, '-', '_', '.' \
                 and '+' (e.g. \"ringbud-kallio\")"
            );
            doc.error(Some(u.span()), msg);
            ok = false;
        } else if !seen.insert(name.clone()) {
            doc.error(Some(u.span()), format!("intake.users: {name:?} is listed twice"));
            ok = false;
        }
    }
    let greeting = match greeting {
        None => PromptName { name: "intake-greeting".to_owned(), at: None },
        Some(g) => {
            let n = g.get_ref();
            let valid = !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                && !n.starts_with('.')
                && !n.ends_with(".wav");
            if !valid {
                let msg = format!(
                    "intake.greeting: {n:?} must be a file stem of a-z, 0-9, '-', '_' and '.' \
                     (sounds/<lang>/<name>.wav), without the .wav"
                );
                doc.error(Some(g.span()), msg);
                ok = false;
            }
            PromptName { name: n.clone(), at: Some(crate::diag::line_col(src, g.span().start)) }
        }
    };
    let lang = match (lang, language) {
        (Some(l), Some(langs)) if !langs.offered.contains(l.get_ref()) => {
            let msg = format!("intake.language {} is not in language.offered", l.get_ref());
            doc.error(Some(l.span()), msg);
            ok = false;
            None
        }
        (Some(l), _) => Some(*l.get_ref()),
        (None, _) => None,
    };
    let max_calls = match max_calls {
        None => Some(4),
        Some(m) => int_in(doc, &m, "intake.max_calls", 1, 1000).map(|v| v as u32),
    };
    let offered = language.map(|l| l.offered.as_slice());
    let languages = check_intake_languages(doc, per_user.unwrap_or_default(), &seen, offered);
    let choose_language = choose.as_ref().is_some_and(|c| *c.get_ref());
    if let (Some(c), Some(offered)) = (&choose, offered)
        && *c.get_ref()
        && offered.len() < 2
    {
        let msg = format!(
            "intake.choose_language needs two or more languages in language.offered (it has {})",
            offered.iter().map(|l| l.code()).collect::<Vec<_>>().join(", ")
        );
        doc.error(Some(c.span()), msg);
        ok = false;
    }
    match (ok, max_calls, language, languages) {
        (true, Some(max_calls), Some(langs), Some(languages)) => Ok(Some(Intake {
            users: users.into_iter().map(Spanned::into_inner).collect(),
            greeting,
            language: lang.unwrap_or(langs.default),
            languages,
            choose_language,
            max_calls,
        })),
        _ => Err(()),
    }
}

/// `[intake.languages]`: `"user" = "lang"`, each user one of `intake.users` (`users`), each
/// language one of `language.offered` (`offered`, `None` when that section is broken).
fn check_intake_languages(
    doc: &mut TomlDoc<'_>,
    per_user: BTreeMap<String, Spanned<String>>,
    users: &BTreeSet<String>,
    offered: Option<&[Lang]>,
) -> Option<BTreeMap<String, Lang>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (user, code) in per_user {
        if !users.contains(&user) {
            let listed: Vec<&str> = users.iter().map(String::as_str).collect();
            let msg = format!(
                "intake.languages: {user:?} is not one of intake.users ({})",
                listed.join(", ")
            );
            doc.error(Some(code.span()), msg);
            ok = false;
            continue;
        }
        match code.get_ref().parse::<Lang>() {
            Err(e) => {
                doc.error(Some(code.span()), format!("intake.languages.{user}: {e}"));
                ok = false;
            }
            Ok(l) if offered.is_some_and(|o| !o.contains(&l)) => {
                let list: Vec<&str> =
                    offered.unwrap_or_default().iter().map(|l| l.code()).collect();
                let msg = format!(
                    "intake.languages.{user}: {l} is not in language.offered ({})",
                    list.join(", ")
                );
                doc.error(Some(code.span()), msg);
                ok = false;
            }
            Ok(l) => {
                out.insert(user, l);
            }
        }
    }
    ok.then_some(out)
}

/// `[teams]`: `name = "sip:…"`, one line per care team.
fn check_teams<'a>(
    doc: &mut TomlDoc<'a>,
    mut sec: Section<'a>,
) -> Option<BTreeMap<String, String>> {
    let names: Vec<String> = sec.keys();
    let mut teams = BTreeMap::new();
    let mut ok = true;
    for name in names {
        let target: Option<Spanned<String>> = doc.get(&mut sec, &name);
        let Some(target) = target else {
            ok = false;
            continue;
        };
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let text = target.get_ref().trim();
        let rest = text.strip_prefix("sips:").or_else(|| text.strip_prefix("sip:"));
        let host_ok = rest.is_some_and(|r| {
            let host = r.rsplit_once('@').map_or(r, |(_, h)| h);
            let host = host.split(';').next().unwrap_or_default();
            !host.is_empty() && !host.contains(char::is_whitespace)
        });
        if !valid_name {
            let msg = format!("teams: {name:?} must be a name of a-z, A-Z, 0-9, '-' and '_'");
            doc.error(Some(target.span()), msg);
            ok = false;
        } else if !host_ok {
            let msg = format!(
                "teams.{name}: {text:?} is not a SIP URI (expected e.g. \"sip:tiimi-a@pbx.example.fi\")"
            );
            doc.error(Some(target.span()), msg);
            ok = false;
        } else {
            teams.insert(name, text.to_owned());
        }
    }
    doc.close(sec);
    ok.then_some(teams)
}

/// `[team_lookup]`: `Ok(None)` when absent, `Err(())` when broken (recorded).
fn check_team_lookup<'a>(
    doc: &mut TomlDoc<'a>,
    mut sec: Section<'a>,
) -> Result<Option<super::TeamLookup>, ()> {
    if sec.span().is_empty() {
        doc.close(sec);
        return Ok(None);
    }
    let url: Option<Spanned<String>> = doc.need(&mut sec, "url");
    let timeout: Option<Spanned<String>> = doc.get(&mut sec, "timeout");
    let malformed = sec.has("timeout") && timeout.is_none();
    doc.close(sec);
    let url = url.ok_or(())?;
    let text = url.get_ref().trim();
    let ok_url = (text.starts_with("http://") || text.starts_with("https://"))
        && text.len() > "https://".len()
        && !text.contains(char::is_whitespace);
    if !ok_url {
        let msg = format!("team_lookup.url: {text:?} must be an http:// or https:// URL");
        doc.error(Some(url.span()), msg);
        return Err(());
    }
    let timeout = match timeout {
        None => std::time::Duration::from_millis(500),
        Some(t) => match t.get_ref().parse::<SignedDuration>() {
            Ok(d) if d.as_millis() >= 50 && d.as_millis() <= 5000 => {
                std::time::Duration::try_from(d).map_err(|_| ())?
            }
            _ => {
                doc.error(Some(t.span()), "team_lookup.timeout must be a duration from 50ms to 5s");
                return Err(());
            }
        },
    };
    if malformed {
        return Err(());
    }
    Ok(Some(super::TeamLookup { url: text.to_owned(), timeout }))
}
