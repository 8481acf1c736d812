//! The daemon configuration's `[sms]` section: the HTTP gateway, quiet hours, retries
//! (pure parse). See README.md, "SMS", and `examples/sms/`.

use super::QuietHours;
use crate::diag::TomlDoc;
use jiff::SignedDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The gateway and delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsConfig {
    /// The HTTP gateway.
    pub gateway: HttpGateway,
    /// No SMS is sent in these hours of the service's local time; `None` = any time.
    pub quiet_hours: Option<QuietHours>,
    /// Tries per message before it is marked `failed`.
    pub max_tries: u32,
    /// Wait after the first failed try; doubled after each further one.
    pub backoff: SignedDuration,
    /// The longest wait between tries.
    pub backoff_max: SignedDuration,
    /// A message not sent this long after it was due is dropped as `failed` (a stale
    /// "could not reach you" helps nobody).
    pub max_age: SignedDuration,
}

/// A generic HTTP SMS gateway (LINK Mobility, GatewayAPI, Twilio, Telia …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGateway {
    /// Where messages are sent.
    pub url: String,
    /// `POST` or `PUT`.
    pub method: Method,
    /// How the body is encoded.
    pub body: BodyFormat,
    /// Field names for sender, recipient, text and the client reference.
    pub fields: Fields,
    /// How the recipient is written.
    pub recipient_format: RecipientFormat,
    /// Constant fields added to every body (e.g. LINK's `platformId`).
    pub constants: BTreeMap<String, String>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// A header that carries the reference too (e.g. `Idempotency-Key`).
    pub idempotency_header: Option<String>,
    /// Put before the outbox id to make the client reference (`callbackd-42`).
    pub reference_prefix: String,
    /// Credentials.
    pub auth: Option<Auth>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Method {
    /// POST (default).
    #[serde(rename = "POST")]
    Post,
    /// PUT.
    #[serde(rename = "PUT")]
    Put,
}

/// Body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/json`; a dotted field name (`recipients.0.msisdn`) builds nested
    /// objects, a number segment an array.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// Recipient number format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientFormat {
    /// `+358401234567`.
    E164,
    /// `358401234567`.
    Digits,
}

/// Body field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Sender ID field.
    pub sender: String,
    /// Recipient field.
    pub recipient: String,
    /// Message text field.
    pub text: String,
    /// Client reference field (`refId`, `userref`, `cref`); `None` when the gateway has none.
    pub reference: Option<String>,
}

/// Gateway credentials; the secret is read from a file at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic: user name and password (the secret).
    Basic {
        /// User name (an account id, an API key …).
        username: String,
        /// File holding the password.
        secret_file: PathBuf,
    },
    /// `Authorization: Bearer <secret>`.
    Bearer {
        /// File holding the token.
        secret_file: PathBuf,
    },
    /// `<header>: <prefix><secret>` (e.g. GatewayAPI's `Authorization: Token …`).
    Header {
        /// Header name.
        header: String,
        /// Put before the secret.
        prefix: String,
        /// File holding the secret.
        secret_file: PathBuf,
    },
}

impl Auth {
    /// The file holding the secret.
    pub fn secret_file(&self) -> &Path {
        match self {
            Auth::Basic { secret_file, .. }
            | Auth::Bearer { secret_file }
            | Auth::Header { secret_file, .. } => secret_file,
        }
    }
}

/// `[sms]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    url: Spanned<String>,
    method: Option<Method>,
    body: Option<BodyFormat>,
    sender_field: Option<String>,
    recipient_field: Option<String>,
    text_field: Option<String>,
    reference_field: Option<String>,
    recipient_format: Option<RecipientFormat>,
    reference_prefix: Option<Spanned<String>>,
    idempotency_header: Option<String>,
    timeout: Option<Spanned<String>>,
    quiet_hours: Option<Spanned<String>>,
    max_tries: Option<Spanned<i64>>,
    backoff: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    constants: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    auth: Option<RawAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    scheme: Spanned<String>,
    username: Option<String>,
    header: Option<String>,
    prefix: Option<String>,
    secret_file: String,
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
        _ => {
            let msg = format!("{what} must be a duration from {min:#} to {max:#}");
            doc.error(Some(raw.span()), msg);
            None
        }
    }
}

/// Checks `[sms]`; `base` anchors a relative `secret_file`. Problems are recorded in `doc`.
pub fn check(doc: &mut TomlDoc<'_>, raw: RawSms, base: &Path) -> Option<SmsConfig> {
    let url = raw.url.get_ref().trim();
    let url_ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace);
    if !url_ok {
        doc.error(Some(raw.url.span()), format!("sms.url: {url:?} is not an http(s) URL"));
    }
    let (secs, hours) = (SignedDuration::from_secs, SignedDuration::from_hours);
    let timeout = duration(doc, raw.timeout, "sms.timeout", secs(10), (secs(1), secs(120)));
    let backoff = duration(doc, raw.backoff, "sms.backoff", secs(30), (secs(1), hours(1)));
    let backoff_max =
        duration(doc, raw.backoff_max, "sms.backoff_max", hours(1), (secs(1), hours(24)));
    let max_age = duration(doc, raw.max_age, "sms.max_age", hours(24), (hours(1), hours(24 * 7)));
    let max_tries = match &raw.max_tries {
        None => Some(8),
        Some(v) if (1..=50).contains(v.get_ref()) => u32::try_from(*v.get_ref()).ok(),
        Some(v) => {
            doc.error(Some(v.span()), "sms.max_tries must be between 1 and 50");
            None
        }
    };
    let quiet_hours = match &raw.quiet_hours {
        None => Some(Some(QuietHours { start: 21 * 60, end: 8 * 60 })),
        Some(q) if q.get_ref() == "none" => Some(None),
        Some(q) => match q.get_ref().parse::<QuietHours>() {
            Ok(h) => Some(Some(h)),
            Err(()) => {
                let msg = format!(
                    "sms.quiet_hours: {:?} must be HH:MM-HH:MM (may wrap midnight, e.g. \
                     \"21:00-08:00\") or \"none\"",
                    q.get_ref()
                );
                doc.error(Some(q.span()), msg);
                None
            }
        },
    };
    let prefix = match &raw.reference_prefix {
        None => Some("callbackd-".to_owned()),
        Some(p)
            if p.get_ref().len() <= 32
                && p.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) =>
        {
            Some(p.get_ref().clone())
        }
        Some(p) => {
            doc.error(
                Some(p.span()),
                "sms.reference_prefix: at most 32 characters of A-Z, a-z, 0-9, - _ . :",
            );
            None
        }
    };
    let resolve = |f: &str| {
        let p = Path::new(f);
        if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
    };
    let auth = match raw.auth {
        None => Some(None),
        Some(a) => {
            let secret_file = resolve(&a.secret_file);
            match (a.scheme.get_ref().as_str(), a.username, a.header) {
                ("basic", Some(username), None) => {
                    Some(Some(Auth::Basic { username, secret_file }))
                }
                ("bearer", None, None) => Some(Some(Auth::Bearer { secret_file })),
                ("header", None, Some(header)) => Some(Some(Auth::Header {
                    header,
                    prefix: a.prefix.unwrap_or_default(),
                    secret_file,
                })),
                (scheme, _, _) => {
                    let msg = format!(
                        "sms.auth: scheme {scheme:?} needs: basic → username; bearer → nothing \
                         else; header → header (and optionally prefix); plus secret_file"
                    );
                    doc.error(Some(a.scheme.span()), msg);
                    None
                }
            }
        }
    };
    let gateway = HttpGateway {
        url: url.to_owned(),
        method: raw.method.unwrap_or(Method::Post),
        body: raw.body.unwrap_or(BodyFormat::Json),
        fields: Fields {
            sender: raw.sender_field.unwrap_or_else(|| "sender".to_owned()),
            recipient: raw.recipient_field.unwrap_or_else(|| "recipient".to_owned()),
            text: raw.text_field.unwrap_or_else(|| "text".to_owned()),
            reference: raw.reference_field,
        },
        recipient_format: raw.recipient_format.unwrap_or(RecipientFormat::E164),
        constants: raw.constants,
        headers: raw.headers,
        idempotency_header: raw.idempotency_header,
        reference_prefix: prefix?,
        auth: auth?,
        timeout: Duration::try_from(timeout?).ok()?,
    };
    if !url_ok {
        return None;
    }
    Some(SmsConfig {
        gateway,
        quiet_hours: quiet_hours?,
        max_tries: max_tries?,
        backoff: backoff?,
        backoff_max: backoff_max?,
        max_age: max_age?,
    })
}
