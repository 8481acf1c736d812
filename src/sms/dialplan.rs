//! The `[sms]` section of a dialplan (pure), read key by key like the other sections so
//! every problem is reported with its `file:line:col`.
//!
//! ```toml
//! [sms]
//! sender = "Kallio TA"          # a number ("18220") or ≤ 11 of 0-9 a-z A-Z space
//! max_parts = 2                 # longest message in SMS parts (1-6), default 2
//! notice = true                 # expected-time notice at intake (default false)
//! notice_slip = "30m"           # a new notice when the window slips later by more
//! unreachable = true            # "could not reach you" (default true)
//! feedback = true               # survey after a connected callback (default false)
//! feedback_delay = "48h"
//! feedback_period_days = 30     # at most one survey per number in this many days
//! feedback_link = "https://…"   # {link}
//!
//! [sms.fi]
//! notice = "…{from}-{to}…"
//! unreachable = "…"
//! feedback = "…{link}"
//! ```

use super::template::{Kind, Template, parts};
use super::{FeedbackRule, SenderId, SmsSettings, values};
use crate::diag::{Section, TomlDoc};
use crate::lang::Lang;
use crate::number::E164;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use toml::Spanned;

/// Keys of `[sms]` besides the language tables.
const KEYS: [&str; 9] = [
    "sender",
    "max_parts",
    "notice",
    "notice_slip",
    "unreachable",
    "feedback",
    "feedback_delay",
    "feedback_period_days",
    "feedback_link",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTexts {
    notice: Option<Spanned<String>>,
    unreachable: Option<Spanned<String>>,
    feedback: Option<Spanned<String>>,
}

/// What the SMS section needs from the rest of the dialplan (for the length check).
#[derive(Debug, Clone, Copy)]
pub struct Context<'x> {
    /// The service's name (`{service}`).
    pub name: Option<&'x str>,
    /// The caller ID's number (`{number}`).
    pub caller: Option<&'x E164>,
    /// The languages the service offers.
    pub offered: Option<&'x [Lang]>,
}

fn duration(
    doc: &mut TomlDoc<'_>,
    raw: Option<Spanned<String>>,
    what: &str,
    default: SignedDuration,
    (min, max): (SignedDuration, SignedDuration),
) -> Option<SignedDuration> {
    let Some(raw) = raw else { return Some(default) };
    match raw.get_ref().parse::<SignedDuration>() {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(d) => {
            doc.error(
                Some(raw.span()),
                format!("{what}: {d:#} is outside the allowed range {min:#} to {max:#}"),
            );
            None
        }
        Err(_) => {
            let msg = format!(
                "{what}: {:?} is not a duration (write e.g. \"30m\", \"48h\")",
                raw.get_ref()
            );
            doc.error(Some(raw.span()), msg);
            None
        }
    }
}

/// Reads `[sms]`. `Some(None)`: the service sends no SMS (no `[sms]` table); `None`: the
/// section has problems (recorded in `doc`).
pub fn check<'a>(
    doc: &mut TomlDoc<'a>,
    mut sec: Section<'a>,
    cx: Context<'_>,
) -> Option<Option<SmsSettings>> {
    let present = KEYS.iter().chain(["fi", "sv", "en"].iter()).any(|k| sec.has(k));
    if !present {
        doc.close(sec);
        return Some(None);
    }
    let sender: Option<Spanned<String>> = doc.need(&mut sec, "sender");
    let max_parts: Option<Spanned<i64>> = doc.get(&mut sec, "max_parts");
    let notice: Option<bool> = doc.get(&mut sec, "notice");
    let slip: Option<Spanned<String>> = doc.get(&mut sec, "notice_slip");
    let unreachable: Option<bool> = doc.get(&mut sec, "unreachable");
    let feedback: Option<Spanned<bool>> = doc.get(&mut sec, "feedback");
    let delay: Option<Spanned<String>> = doc.get(&mut sec, "feedback_delay");
    let period: Option<Spanned<i64>> = doc.get(&mut sec, "feedback_period_days");
    let link: Option<Spanned<String>> = doc.get(&mut sec, "feedback_link");
    let mut texts: Vec<(Lang, RawTexts)> = Vec::new();
    let mut ok = true;
    for lang in Lang::ALL {
        if let Some(t) = doc.get::<RawTexts>(&mut sec, lang.code()) {
            texts.push((lang, t));
        } else {
            ok &= !sec.has(lang.code());
        }
    }
    let parsed = [
        max_parts.is_some(),
        notice.is_some(),
        slip.is_some(),
        unreachable.is_some(),
        feedback.is_some(),
        delay.is_some(),
        period.is_some(),
        link.is_some(),
    ];
    ok &= !KEYS[1..].iter().zip(parsed).any(|(k, p)| sec.has(k) && !p);
    let span = sec.span();
    doc.close(sec);

    let sender = sender.and_then(|s| match SenderId::parse(s.get_ref()) {
        Ok(id) => Some(id),
        Err(why) => {
            doc.error(Some(s.span()), format!("sms.sender: {:?}: {why}", s.get_ref()));
            None
        }
    });
    let max_parts = match &max_parts {
        None => Some(2u8),
        Some(v) if (1..=6).contains(v.get_ref()) => u8::try_from(*v.get_ref()).ok(),
        Some(v) => {
            let msg = format!("sms.max_parts: {} is outside the allowed range 1 to 6", v.get_ref());
            doc.error(Some(v.span()), msg);
            None
        }
    };
    let (mins, hours) = (SignedDuration::from_mins, SignedDuration::from_hours);
    let notice_slip = duration(doc, slip, "sms.notice_slip", mins(30), (mins(5), hours(24)));
    let delay = duration(doc, delay, "sms.feedback_delay", hours(48), (mins(1), hours(24 * 30)));
    let period_days = match &period {
        None => Some(30),
        Some(v) if (1..=365).contains(v.get_ref()) => Some(*v.get_ref()),
        Some(v) => {
            let msg = format!(
                "sms.feedback_period_days: {} is outside the allowed range 1 to 365",
                v.get_ref()
            );
            doc.error(Some(v.span()), msg);
            None
        }
    };
    let link = match link {
        None => None,
        Some(l) => {
            let t = l.get_ref().trim();
            if (t.starts_with("https://") || t.starts_with("http://"))
                && !t.contains(char::is_whitespace)
            {
                Some(t.to_owned())
            } else {
                let msg = format!("sms.feedback_link: {t:?} is not an http(s) URL");
                doc.error(Some(l.span()), msg);
                ok = false;
                None
            }
        }
    };
    let feedback_on = feedback.as_ref().is_some_and(|f| *f.get_ref());
    let enabled = |kind: Kind| match kind {
        Kind::Notice => notice.unwrap_or(false),
        Kind::Unreachable => unreachable.unwrap_or(true),
        Kind::Feedback => feedback_on,
    };

    // Templates: parse each, check its length with the longest values it can get.
    let mut templates = std::collections::HashMap::new();
    let mut spans = std::collections::HashMap::new();
    let mut written = std::collections::HashSet::new();
    for (lang, raw) in &texts {
        for (kind, text) in [
            (Kind::Notice, &raw.notice),
            (Kind::Unreachable, &raw.unreachable),
            (Kind::Feedback, &raw.feedback),
        ] {
            let Some(text) = text else { continue };
            written.insert((*lang, kind));
            let what = format!("sms.{}.{}", lang.code(), kind.as_str());
            match Template::parse(text.get_ref(), kind) {
                Ok(t) => {
                    if kind == Kind::Feedback && t.uses("link") && link.is_none() {
                        doc.error(
                            Some(text.span()),
                            format!("{what}: uses {{link}} but sms.feedback_link is not set"),
                        );
                        ok = false;
                    }
                    templates.insert((*lang, kind), t);
                    spans.insert((*lang, kind), text.span());
                }
                Err(e) => {
                    doc.error(Some(text.span()), format!("{what}: {e}"));
                    ok = false;
                }
            }
        }
    }
    if let (Some(name), Some(caller), Some(max)) = (cx.name, cx.caller, max_parts) {
        // The longest date and times: 30.12., 23:45 (Helsinki).
        let t = "2026-12-30T21:45:00Z".parse::<Timestamp>().ok();
        let tz = jiff::tz::TimeZone::get("Europe/Helsinki").unwrap_or(jiff::tz::TimeZone::UTC);
        let vals = values(name, caller, &tz, link.as_deref(), t.map(|t| (t, t)));
        // A notice's `{link}` is the patient page's link: measured here with a base URL of
        // typical length, and by `check` again with the configured `[public] url`.
        let mut notice_vals = vals.clone();
        notice_vals.insert("link", crate::link::sample(crate::link::TYPICAL_BASE));
        for (key, t) in &templates {
            // A notice with its link and the `{late}` sentence of the message's language, its
            // longest form.
            let mut vals = if key.1 == Kind::Notice { notice_vals.clone() } else { vals.clone() };
            vals.insert("late", crate::sms::late(key.0).to_owned());
            let text = t.render(&vals);
            let n = parts(&text);
            if n > usize::from(max) {
                let span = spans.get(key).cloned();
                let msg = format!(
                    "sms.{}.{}: the message takes {n} SMS parts, more than max_parts = {max}",
                    key.0.code(),
                    key.1.as_str()
                );
                doc.error(span, msg);
                ok = false;
            }
        }
    }
    // Every offered language needs a template for every enabled kind.
    let offered = cx.offered.map_or_else(|| Lang::ALL.to_vec(), <[Lang]>::to_vec);
    for lang in &offered {
        for kind in Kind::ALL {
            if enabled(kind) && !written.contains(&(*lang, kind)) {
                doc.error(
                    Some(span.clone()),
                    format!(
                        "sms: {} messages are enabled but sms.{}.{} is missing (language {} is offered)",
                        kind.as_str(),
                        lang.code(),
                        kind.as_str(),
                        lang.code()
                    ),
                );
                ok = false;
            }
        }
    }
    let feedback = match (feedback_on, delay, period_days) {
        (false, _, _) => None,
        (true, Some(delay), Some(days)) => {
            Some(FeedbackRule { delay, period: SignedDuration::from_hours(24 * days) })
        }
        (true, _, _) => {
            ok = false;
            None
        }
    };
    if !ok {
        return None;
    }
    Some(Some(SmsSettings {
        sender: sender?,
        max_parts: max_parts?,
        notice: notice.unwrap_or(false),
        notice_slip: notice_slip?,
        unreachable: unreachable.unwrap_or(true),
        feedback,
        link,
        templates,
    }))
}
