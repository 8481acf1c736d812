//! SMS to patients, the rules (pure): the expected-time *notice*, the "could not reach
//! you" *unreachable* message and the consented *feedback* survey.
//!
//! [`template`] (placeholders, GSM-7/UCS-2 length), [`dialplan`] (the `[sms]` section of a
//! dialplan), [`config`] (the daemon's `[sms]` gateway section), sender IDs ([`SenderId`]), who can receive one ([`recipient`]), quiet hours
//! ([`quiet_until`]), retry waits ([`backoff`]) and the placeholder values ([`values`]).
//!
//! Delivery is the edge's: the store writes an `outbox` row in the same transaction as
//! the state change that causes it, and [`crate::notifier`] delivers it to the gateway;
//! the opt-out endpoint is [`crate::http::sms`]. This module imports neither.

pub mod config;
pub mod dialplan;
pub mod template;

use crate::lang::Lang;
use crate::number::E164;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use phonenumber::{Mode, Type};
use std::collections::BTreeMap;
use template::{Kind, Template};

/// A service's SMS settings (dialplan `[sms]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    /// What the patient's phone shows as the sender.
    pub sender: SenderId,
    /// The longest message allowed, in SMS parts.
    pub max_parts: u8,
    /// Send the expected-time notice when a request is accepted.
    pub notice: bool,
    /// A new notice is sent when the expected window moves later by more than this.
    pub notice_slip: SignedDuration,
    /// Send the "could not reach you" message.
    pub unreachable: bool,
    /// The survey after a connected callback, if enabled.
    pub feedback: Option<FeedbackRule>,
    /// The survey link (`{link}`).
    pub link: Option<String>,
    /// Templates by language and kind; every offered language has one for each enabled kind.
    pub templates: std::collections::HashMap<(Lang, Kind), Template>,
}

impl SmsSettings {
    /// True when messages of `kind` are enabled.
    pub fn enabled(&self, kind: Kind) -> bool {
        match kind {
            Kind::Notice => self.notice,
            Kind::Unreachable => self.unreachable,
            Kind::Feedback => self.feedback.is_some(),
        }
    }
}

/// When the survey goes and how often one patient may get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackRule {
    /// After the connected callback.
    pub delay: SignedDuration,
    /// At most one survey per number in this period.
    pub period: SignedDuration,
}

/// A sender ID (Traficom rules: a number, or at most 11 characters of 0-9, a-z, A-Z and
/// space; from May 2026 it must also be authorised through the SMS provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderId {
    /// A short code or phone number, digits only (`18220`), optionally `+` first.
    Numeric(String),
    /// A name such as `Kallio TA`.
    Alphanumeric(String),
}

impl SenderId {
    /// Checks a sender ID as written in a dialplan.
    pub fn parse(s: &str) -> Result<SenderId, &'static str> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            return if digits.len() <= 15 {
                Ok(SenderId::Numeric(s.to_owned()))
            } else {
                Err("a numeric sender ID has at most 15 digits")
            };
        }
        if s.is_empty() || s.trim() != s {
            return Err("an alphanumeric sender ID must not be empty or start or end with a space");
        }
        if s.chars().count() > 11 {
            return Err("an alphanumeric sender ID has at most 11 characters");
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
            return Err("an alphanumeric sender ID may hold only 0-9, a-z, A-Z and space");
        }
        Ok(SenderId::Alphanumeric(s.to_owned()))
    }

    /// As sent to the gateway.
    pub fn as_str(&self) -> &str {
        match self {
            SenderId::Numeric(s) | SenderId::Alphanumeric(s) => s,
        }
    }
}

/// Why a number gets no SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSms {
    /// A fixed line (or VoIP, pager …): cannot receive SMS.
    FixedLine,
    /// Not a number the metadata knows.
    Unknown,
}

impl NotSms {
    /// The reason recorded on the outbox row.
    pub fn reason(self) -> &'static str {
        match self {
            NotSms::FixedLine => "not a mobile number: cannot receive SMS",
            NotSms::Unknown => "number type unknown: not sent",
        }
    }
}

/// Whether a number can receive SMS: mobile numbers (and numbers the metadata cannot tell
/// from mobile) can, fixed lines cannot.
pub fn recipient(number: &E164) -> Result<(), NotSms> {
    let Ok(n) = phonenumber::parse(None, number.as_str()) else { return Err(NotSms::Unknown) };
    match n.number_type(&phonenumber::metadata::DATABASE) {
        Type::Mobile | Type::FixedLineOrMobile => Ok(()),
        Type::FixedLine
        | Type::Voip
        | Type::Pager
        | Type::PersonalNumber
        | Type::Uan
        | Type::Voicemail
        | Type::TollFree
        | Type::PremiumRate
        | Type::SharedCost
        | Type::ShortCode
        | Type::Emergency
        | Type::Carrier
        | Type::StandardRate
        | Type::NoInternational => Err(NotSms::FixedLine),
        Type::Unknown => Err(NotSms::Unknown),
    }
}

/// A number as a patient dials it at home: `09 31045501` for a Finnish number, E.164 for
/// a foreign one.
pub fn national(number: &E164) -> String {
    match phonenumber::parse(None, number.as_str()) {
        Ok(n) if n.country().id() == Some(phonenumber::country::Id::FI) => {
            n.format().mode(Mode::National).to_string()
        }
        _ => number.as_str().to_owned(),
    }
}

/// Normalises a number for the opt-out list (E.164), or `None` when it is not a number.
pub fn normalize(raw: &str) -> Option<E164> {
    let n = crate::number::parse(raw).ok()?;
    n.is_valid().then(|| E164::from_stored(n.format().mode(Mode::E164).to_string()))
}

/// Hours in which no SMS is sent, local time; may wrap midnight (`21:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after midnight when the quiet period starts.
    pub start: u16,
    /// Minutes after midnight when it ends (sending resumes).
    pub end: u16,
}

impl std::str::FromStr for QuietHours {
    type Err = ();
    /// `HH:MM-HH:MM`, start and end different.
    fn from_str(s: &str) -> Result<QuietHours, ()> {
        let hhmm = |t: &str| -> Option<u16> {
            let (h, m) = t.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or(())?;
        let (start, end) = (hhmm(a).ok_or(())?, hhmm(b).ok_or(())?);
        if start == end {
            return Err(());
        }
        Ok(QuietHours { start, end })
    }
}

/// When the quiet period around `now` ends, in the zone `tz`, or `None` when `now` is not
/// quiet.
pub fn quiet_until(now: Timestamp, tz: &TimeZone, quiet: Option<QuietHours>) -> Option<Timestamp> {
    let quiet = quiet?;
    let local = now.to_zoned(tz.clone());
    let minute =
        u16::try_from(local.hour()).unwrap_or(0) * 60 + u16::try_from(local.minute()).unwrap_or(0);
    let (start, end) = (quiet.start, quiet.end);
    let in_quiet = if start <= end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    if !in_quiet {
        return None;
    }
    // The end is today if it lies ahead, otherwise tomorrow.
    let date = if minute < end { local.date() } else { local.date().tomorrow().ok()? };
    let (h, m) = (i8::try_from(end / 60).ok()?, i8::try_from(end % 60).ok()?);
    tz.to_ambiguous_zoned(date.at(h, m, 0, 0)).compatible().ok().map(|z| z.timestamp())
}

/// The wait before try `tries + 1` after `tries` failed tries: `base`·2^(tries-1), at most
/// `max`.
pub fn backoff(tries: u32, base: SignedDuration, max: SignedDuration) -> SignedDuration {
    let factor = 1i32 << tries.saturating_sub(1).min(20);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// The notice's `{late}` text: said (with a trailing space) when the callback cannot come
/// on the request's same-day deadline day, so the patient is not left to notice that
/// `{date}` is not today; empty otherwise.
pub fn late(lang: crate::lang::Lang) -> &'static str {
    match lang {
        crate::lang::Lang::Fi => "Tämän päivän soittoajat ovat täynnä. ",
        crate::lang::Lang::Sv => "Dagens tider för återuppringning är fulla. ",
        crate::lang::Lang::En => "Today's callback times are full. ",
    }
}

/// The placeholder values of a message.
///
/// `{service}` is the service's name, `{number}` its caller ID in national form, `{link}`
/// the survey link, `{date}` (`24.11.`), `{from}` and `{to}` (`10:30`) the expected window
/// in the service's time zone. `{late}` ([`late`]) is added by the sender.
pub fn values(
    name: &str,
    caller: &E164,
    tz: &TimeZone,
    link: Option<&str>,
    window: Option<(Timestamp, Timestamp)>,
) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert("service", name.to_owned());
    v.insert("number", national(caller));
    if let Some(link) = link {
        v.insert("link", link.to_owned());
    }
    if let Some((from, to)) = window {
        let (from, to) = (from.to_zoned(tz.clone()), to.to_zoned(tz.clone()));
        v.insert("date", from.strftime("%-d.%-m.").to_string());
        v.insert("from", from.strftime("%H:%M").to_string());
        v.insert("to", to.strftime("%H:%M").to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hel(s: &str) -> Timestamp {
        let tz = TimeZone::get("Europe/Helsinki").expect("tz");
        s.parse::<jiff::civil::DateTime>().expect("dt").to_zoned(tz).expect("z").timestamp()
    }

    #[test]
    fn sender_ids_follow_traficom() {
        assert_eq!(SenderId::parse("18220"), Ok(SenderId::Numeric("18220".into())));
        assert!(SenderId::parse("+358931045501").is_ok());
        assert_eq!(SenderId::parse("Kallio TA"), Ok(SenderId::Alphanumeric("Kallio TA".into())));
        assert!(SenderId::parse("KallionTerveys").is_err(), "12 characters");
        assert!(SenderId::parse("Kallio-TA").is_err(), "hyphen");
        assert!(SenderId::parse("Töölö").is_err(), "ö is not allowed");
        assert!(SenderId::parse("").is_err());
    }

    #[test]
    fn mobiles_receive_sms_fixed_lines_do_not() {
        assert_eq!(recipient(&E164::from_stored("+358401234567".into())), Ok(()));
        assert_eq!(recipient(&E164::from_stored("+358931045501".into())), Err(NotSms::FixedLine));
        assert_eq!(national(&E164::from_stored("+358931045501".into())), "09 31045501");
    }

    #[test]
    fn quiet_hours_wrap_midnight_and_end_in_the_morning() {
        let tz = TimeZone::get("Europe/Helsinki").expect("tz");
        let q = Some("21:00-08:00".parse::<QuietHours>().expect("valid"));
        assert!("08:00-08:00".parse::<QuietHours>().is_err());
        assert!("8:00-09:00".parse::<QuietHours>().is_err());
        assert_eq!(quiet_until(hel("2026-11-23T20:59"), &tz, q), None);
        assert_eq!(quiet_until(hel("2026-11-23T21:00"), &tz, q), Some(hel("2026-11-24T08:00")));
        assert_eq!(quiet_until(hel("2026-11-24T03:00"), &tz, q), Some(hel("2026-11-24T08:00")));
        assert_eq!(quiet_until(hel("2026-11-24T08:00"), &tz, q), None);
        assert_eq!(quiet_until(hel("2026-11-24T03:00"), &tz, None), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = SignedDuration::from_secs;
        assert_eq!(backoff(1, s(30), s(600)), s(30));
        assert_eq!(backoff(2, s(30), s(600)), s(60));
        assert_eq!(backoff(4, s(30), s(600)), s(240));
        assert_eq!(backoff(9, s(30), s(600)), s(600));
        assert_eq!(backoff(60, s(30), s(600)), s(600));
    }
}
