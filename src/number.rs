//! Which numbers may be called, and how numbers are shown in logs.
//!
//! Pure: parsing and classification use the libphonenumber metadata compiled into the
//! `phonenumber` crate; nothing here does I/O.

use phonenumber::{Mode, PhoneNumber, Type, country};
use serde::Deserialize;
use std::fmt;

/// A number kind a service may call back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// Mobile numbers (Finland: 04x, 050).
    Mobile,
    /// Geographic fixed-line numbers (Finland: 02–09 area codes).
    Fixed,
    /// Numbers the metadata cannot tell apart (some countries): callable when either
    /// `mobile` or `fixed` is allowed.
    FixedOrMobile,
    /// VoIP numbers.
    Voip,
}

/// A service's number policy (dialplan `[numbers]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPolicy {
    /// The kinds that may be called; default mobile and fixed.
    pub allow: Vec<NumberKind>,
    /// Countries (ISO 3166 alpha-2, e.g. `SE`) besides Finland whose numbers may be called.
    pub foreign: Vec<country::Id>,
}

impl Default for NumberPolicy {
    fn default() -> Self {
        NumberPolicy { allow: vec![NumberKind::Mobile, NumberKind::Fixed], foreign: Vec::new() }
    }
}

/// Why a number is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not a phone number at all, or not a valid number in its country's plan.
    #[error("not a valid phone number")]
    Invalid,
    /// 0600/0700 and foreign premium numbers cost the caller.
    #[error("premium-rate numbers are not called back")]
    PremiumRate,
    /// Short, service, toll-free, shared-cost and national-service numbers are not people.
    #[error("service and short numbers ({0}) are not called back")]
    Service(&'static str),
    /// A foreign number where the service allows none from that country.
    #[error("numbers from {0} are not called back by this service")]
    Foreign(String),
    /// A kind of number this service does not call (e.g. fixed lines on a mobile-only line).
    #[error("{0} numbers are not called back by this service")]
    KindNotAllowed(&'static str),
}

/// A patient's number that passed the policy, in E.164 (`+358401234567`). Both `Display`
/// and `Debug` show it masked; [`E164::as_str`] is the only way to the full number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl fmt::Debug for E164 {
    /// Masked, like `Display`: a `{:?}` of a struct holding a number must not leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("E164").field(&format_args!("{}", self.masked())).finish()
    }
}

impl E164 {
    /// The E.164 string with a leading `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a stored E.164 string without checking it (the store holds only numbers that
    /// passed [`NumberPolicy::check`]).
    pub fn from_stored(s: String) -> Self {
        E164(s)
    }

    /// The number for logs: country code and two more digits, then stars, then the last two.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

impl fmt::Display for E164 {
    /// Displays masked: a full number must never reach a log line by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.masked().fmt(f)
    }
}

/// A masked phone number for logs, e.g. `+35840*****67` (`Debug` masks too).
#[derive(Clone, Copy)]
pub struct Masked<'a>(&'a str);

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

/// Masks any number-like string: keeps the first 6 and last 2 characters when it is long
/// enough, otherwise only the last character.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (head, tail) = if n >= 10 {
        (6, 2)
    } else if n >= 4 {
        (1, 1)
    } else {
        (0, 0)
    };
    let mut out = String::with_capacity(n);
    for (i, c) in chars.iter().enumerate() {
        if i < head || i >= n - tail { out.push(*c) } else { out.push('*') }
    }
    out
}

/// The characters a written number may hold: digits and the separators people type.
/// Letters are refused here, before the number library, which would read them as keypad
/// digits (`040 l23 4571` would become another person's `040 523 4571`).
pub fn allowed_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.' | '/')
}

/// Parses a number as a Finnish caller would write it: `040 123 4567`, `+358401234567`,
/// `00358401234567`, `(09) 310 5015`. Only digits, spaces, `+`, `-`, `(`, `)`, `.` and
/// `/` are accepted ([`allowed_char`]).
pub fn parse(raw: &str) -> Result<PhoneNumber, NumberError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 32 || !trimmed.chars().all(allowed_char) {
        return Err(NumberError::Invalid);
    }
    let n = phonenumber::parse(Some(country::Id::FI), trimmed).map_err(|_| NumberError::Invalid)?;
    // E.164 has at most 15 digits, country code included, and no extension: anything longer
    // is not one person's phone.
    let digits = e164(&n).0.chars().filter(char::is_ascii_digit).count();
    if digits > E164_MAX_DIGITS || n.extension().is_some() {
        return Err(NumberError::Invalid);
    }
    Ok(n)
}

/// The most digits an E.164 number has (ITU-T E.164 §6), country code included.
const E164_MAX_DIGITS: usize = 15;

fn e164(n: &PhoneNumber) -> E164 {
    E164(n.format().mode(Mode::E164).to_string())
}

/// Refusals that hold for every number, called back or shown as caller ID.
fn refuse_non_personal(n: &PhoneNumber) -> Result<Type, NumberError> {
    if !n.is_valid() {
        return Err(NumberError::Invalid);
    }
    let kind = n.number_type(&phonenumber::metadata::DATABASE);
    match kind {
        Type::PremiumRate => Err(NumberError::PremiumRate),
        Type::TollFree => Err(NumberError::Service("toll-free")),
        Type::SharedCost => Err(NumberError::Service("shared-cost")),
        Type::Uan => Err(NumberError::Service("national service")),
        Type::ShortCode | Type::Emergency | Type::Carrier => Err(NumberError::Service("short")),
        Type::Voicemail => Err(NumberError::Service("voicemail")),
        Type::NoInternational | Type::Unknown => Err(NumberError::Invalid),
        Type::Pager => Err(NumberError::KindNotAllowed("pager")),
        Type::PersonalNumber => Err(NumberError::KindNotAllowed("personal")),
        Type::StandardRate => Err(NumberError::KindNotAllowed("standard-rate")),
        Type::FixedLine | Type::Mobile | Type::FixedLineOrMobile | Type::Voip => Ok(kind),
    }
}

impl NumberPolicy {
    /// Decides whether `raw` may be called back; returns it in E.164 form.
    pub fn check(&self, raw: &str) -> Result<E164, NumberError> {
        let n = parse(raw)?;
        let kind = refuse_non_personal(&n)?;
        let country = n.country().id();
        if country != Some(country::Id::FI) && !country.is_some_and(|c| self.foreign.contains(&c)) {
            let name =
                country.map_or_else(|| format!("+{}", n.code().value()), |c| format!("{c:?}"));
            return Err(NumberError::Foreign(name));
        }
        let allowed = match kind {
            Type::Mobile => self.allow.contains(&NumberKind::Mobile),
            Type::FixedLine => self.allow.contains(&NumberKind::Fixed),
            Type::FixedLineOrMobile => {
                self.allow.contains(&NumberKind::Fixed)
                    || self.allow.contains(&NumberKind::Mobile)
                    || self.allow.contains(&NumberKind::FixedOrMobile)
            }
            Type::Voip => self.allow.contains(&NumberKind::Voip),
            _ => false,
        };
        if !allowed {
            return Err(NumberError::KindNotAllowed(kind_name(kind)));
        }
        Ok(e164(&n))
    }
}

fn kind_name(kind: Type) -> &'static str {
    match kind {
        Type::Mobile => "mobile",
        Type::FixedLine => "fixed-line",
        Type::FixedLineOrMobile => "fixed-line or mobile",
        Type::Voip => "VoIP",
        _ => "such",
    }
}

/// Why a caller ID is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerIdError {
    /// Must be written in international form so it is unambiguous on every trunk.
    #[error("caller ID number must be in E.164 form, starting with + (got {0:?})")]
    NotE164(String),
    /// Parsed, but not a number a patient could call back or would trust.
    #[error("caller ID {number:?} is not a callable public number: {reason}")]
    NotPublic {
        /// The number as written.
        number: String,
        /// Why.
        reason: NumberError,
    },
}

/// Validates the health station's own number shown as caller ID: E.164, valid, and a
/// public number patients can call back (fixed, mobile, national service or toll-free
/// numbers are fine; premium-rate and short numbers are not).
pub fn check_caller_id(raw: &str) -> Result<E164, CallerIdError> {
    let trimmed = raw.trim();
    if !trimmed.starts_with('+') {
        return Err(CallerIdError::NotE164(raw.to_owned()));
    }
    let not_public = |reason| CallerIdError::NotPublic { number: raw.to_owned(), reason };
    let n = parse(trimmed).map_err(not_public)?;
    match refuse_non_personal(&n) {
        Ok(_) => Ok(e164(&n)),
        // Stations publish national-service and toll-free numbers; patients can call them.
        Err(NumberError::Service("national service" | "toll-free")) => Ok(e164(&n)),
        Err(reason) => Err(not_public(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fi() -> NumberPolicy {
        NumberPolicy::default()
    }

    #[test]
    fn finnish_forms_are_accepted_as_e164() {
        for raw in ["040 123 4567", "+358401234567", "00358401234567", "0401234567"] {
            assert_eq!(fi().check(raw).map(|n| n.0), Ok("+358401234567".into()), "{raw}");
        }
        assert_eq!(fi().check("09 310 45000").map(|n| n.0), Ok("+358931045000".into()));
        assert_eq!(fi().check("050 123 4567").map(|n| n.0), Ok("+358501234567".into()));
    }

    #[test]
    fn premium_service_and_short_numbers_are_refused() {
        assert_eq!(fi().check("0700 123 456"), Err(NumberError::PremiumRate));
        assert_eq!(fi().check("0600 123 456"), Err(NumberError::PremiumRate));
        assert!(matches!(fi().check("0800 123 456"), Err(NumberError::Service(_))));
        assert!(matches!(fi().check("0100 100"), Err(NumberError::Service(_))));
        for short in ["112", "118", "116117"] {
            assert!(fi().check(short).is_err(), "{short}");
        }
        assert_eq!(fi().check("hello"), Err(NumberError::Invalid));
        assert_eq!(fi().check(""), Err(NumberError::Invalid));
        assert_eq!(fi().check("040 123"), Err(NumberError::Invalid));
    }

    #[test]
    fn foreign_numbers_only_where_allowed() {
        assert_eq!(fi().check("+46 70 123 45 67"), Err(NumberError::Foreign("SE".into())));
        assert_eq!(fi().check("+1 900 555 0100"), Err(NumberError::PremiumRate));
        let se = NumberPolicy { foreign: vec![country::Id::SE], ..fi() };
        assert_eq!(se.check("+46 70 123 45 67").map(|n| n.0), Ok("+46701234567".into()));
    }

    #[test]
    fn kinds_follow_the_policy() {
        let mobile_only = NumberPolicy { allow: vec![NumberKind::Mobile], ..fi() };
        assert!(mobile_only.check("040 123 4567").is_ok());
        assert_eq!(
            mobile_only.check("09 310 45000"),
            Err(NumberError::KindNotAllowed("fixed-line"))
        );
    }

    #[test]
    fn caller_id_must_be_e164_and_public() {
        assert_eq!(check_caller_id("+358 9 310 45000").map(|n| n.0), Ok("+358931045000".into()));
        assert!(matches!(check_caller_id("09 310 45000"), Err(CallerIdError::NotE164(_))));
        assert!(matches!(
            check_caller_id("+358 700 123 456"),
            Err(CallerIdError::NotPublic { .. })
        ));
        assert!(check_caller_id("+358 100 100").is_ok(), "national service numbers are public");
    }

    #[test]
    fn letters_are_refused_not_read_as_keypad_digits() {
        for raw in ["040 l23 4571", "040 CALL ME1", "040 123 456O", "0401234567x", "+358 40 ABC"] {
            assert_eq!(fi().check(raw), Err(NumberError::Invalid), "{raw}");
            assert!(parse(raw).is_err(), "{raw}");
        }
        for raw in ["(040) 123-4567", "040.123.4567", "040/1234567", "+358-40-123 4567"] {
            assert_eq!(fi().check(raw).map(|n| n.0), Ok("+358401234567".into()), "{raw}");
        }
        for raw in ["040\t1234567", "040_1234567", "040１２３", "tel:+358401234567"] {
            assert_eq!(fi().check(raw), Err(NumberError::Invalid), "{raw}");
        }
    }

    #[test]
    fn more_digits_than_e164_allows_are_refused() {
        // Found by fuzzing: a German number with trailing digits came out with 17 digits.
        let long = "+49 7359 0123 4567 301";
        let raw = phonenumber::parse(Some(country::Id::FI), long).expect("the library parses it");
        assert!(raw.is_valid(), "the library alone takes it for a valid German number");
        let de = NumberPolicy { foreign: vec![country::Id::DE], ..fi() };
        assert_eq!(de.check(long), Err(NumberError::Invalid));
        assert_eq!(parse("+358 40 123 4567 8901 2").map(|_| ()), Err(NumberError::Invalid));
        assert!(parse("+358 40 123 4567").is_ok());
    }

    #[test]
    fn debug_is_masked_like_display() {
        let n = E164("+358401234567".into());
        assert_eq!(format!("{n:?}"), "E164(+35840*****67)");
        assert_eq!(format!("{:?}", Some(&n)), "Some(E164(+35840*****67))");
        assert!(!format!("{n:#?}").contains("1234567"));
    }

    #[test]
    fn masking_hides_the_middle() {
        assert_eq!(E164("+358401234567".into()).to_string(), "+35840*****67");
        assert_eq!(mask("+358401234567"), "+35840*****67");
        assert_eq!(mask("0401"), "0**1");
        assert_eq!(mask("112"), "***");
    }
}
