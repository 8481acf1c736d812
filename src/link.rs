//! The patient's link: `{public_url}/r/{token}`, and the daemon's `[public]` settings.
//!
//! Pure. A token names one request and proves it was made with the server's key:
//!
//! ```text
//!   token = base64url( version (1 byte) ‖ request id (8 bytes, big-endian) ‖ MAC (16 bytes) )
//!   MAC   = HMAC-SHA256(key, "callbackd link" ‖ version ‖ id), first 128 bits
//! ```
//!
//! 34 characters, nothing stored: the link works for as long as the request is live and
//! [`Public::lifetime`] after it ended ([`alive`]). Changing the key ends every link.
//! Forms on the page carry a second MAC bound to the page's token ([`Keys::form`]), so a
//! POST cannot be made without having seen the page.

use crate::diag::TomlDoc;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The token format's version byte.
const VERSION: u8 = 1;
/// Bytes of MAC kept (128 bits).
const MAC_LEN: usize = 16;
/// Bytes of a decoded token.
const RAW_LEN: usize = 1 + 8 + MAC_LEN;
/// Characters of a token.
pub const TOKEN_LEN: usize = (RAW_LEN * 4).div_ceil(3);
/// The shortest key accepted, in bytes (256 bits).
pub const MIN_KEY: usize = 32;
/// The systemd credential read when `[public] key_file` is not set.
pub const CREDENTIAL: &str = "callbackd-link-key";

/// The `[public]` settings: the patient page's own listener and its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    /// The base URL patients open (`https://soita.example.fi`), without a trailing `/`.
    pub url: String,
    /// Where the patient page listens (behind the city's reverse proxy).
    pub bind: SocketAddr,
    /// How long a link keeps working after its request ended.
    pub lifetime: SignedDuration,
    /// The key file; `None`: the systemd credential [`CREDENTIAL`].
    pub key_file: Option<PathBuf>,
    /// Page loads and form posts per minute from one client address.
    pub per_address: u32,
    /// Page loads and form posts per minute for one link.
    pub per_link: u32,
}

/// `[public]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublic {
    url: Spanned<String>,
    bind: Spanned<String>,
    link_lifetime: Option<Spanned<String>>,
    key_file: Option<String>,
    per_address_per_minute: Option<Spanned<i64>>,
    per_link_per_minute: Option<Spanned<i64>>,
}

/// Checks `[public]`; `base` anchors a relative `key_file`. Problems are recorded in `doc`.
pub fn check(doc: &mut TomlDoc<'_>, raw: RawPublic, base: &Path) -> Option<Public> {
    let url = raw.url.get_ref().trim().trim_end_matches('/');
    let url_ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace)
        && !url.contains(['?', '#']);
    if !url_ok {
        let msg = format!("public.url: {url:?} is not an http(s) base URL (no query or fragment)");
        doc.error(Some(raw.url.span()), msg);
    }
    let bind = match raw.bind.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let msg = format!(
                "public.bind: {:?} is not an IP address and port like 127.0.0.1:8081",
                raw.bind.get_ref()
            );
            doc.error(Some(raw.bind.span()), msg);
            None
        }
    };
    let hours = SignedDuration::from_hours;
    let lifetime = match &raw.link_lifetime {
        None => Some(hours(7 * 24)),
        Some(l) => match l.get_ref().parse::<SignedDuration>() {
            Ok(d) if d >= hours(0) && d <= hours(90 * 24) => Some(d),
            _ => {
                let msg = "public.link_lifetime must be a duration from 0s to 2160h (90 days)";
                doc.error(Some(l.span()), msg);
                None
            }
        },
    };
    let mut rate = |v: &Option<Spanned<i64>>, key: &str, default: u32| match v {
        None => Some(default),
        Some(v) if (1..=100_000).contains(v.get_ref()) => u32::try_from(*v.get_ref()).ok(),
        Some(v) => {
            doc.error(Some(v.span()), format!("public.{key} must be between 1 and 100000"));
            None
        }
    };
    let per_address = rate(&raw.per_address_per_minute, "per_address_per_minute", 120);
    let per_link = rate(&raw.per_link_per_minute, "per_link_per_minute", 30);
    let key_file = raw.key_file.map(|f| {
        let p = Path::new(&f);
        if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
    });
    url_ok.then_some(())?;
    Some(Public {
        url: url.to_owned(),
        bind: bind?,
        lifetime: lifetime?,
        key_file,
        per_address: per_address?,
        per_link: per_link?,
    })
}

/// Why the link key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key file set and no systemd credential directory.
    #[error(
        "no link key: set [public] key_file, or pass the credential {CREDENTIAL} \
         (LoadCredential= in the unit; $CREDENTIALS_DIRECTORY is not set)"
    )]
    NoCredentials,
    /// The file could not be read.
    #[error("cannot read the link key {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Too short to be a key.
    #[error(
        "the link key {path} has {len} bytes, at least {MIN_KEY} are needed \
         (e.g. `head -c 32 /dev/urandom > FILE`)"
    )]
    Short {
        /// The file.
        path: PathBuf,
        /// Its length (surrounding whitespace not counted).
        len: usize,
    },
}

/// Where the key is read from: `key_file`, else `$CREDENTIALS_DIRECTORY/callbackd-link-key`.
pub fn key_path(public: &Public, credentials: Option<&Path>) -> Result<PathBuf, KeyError> {
    match (&public.key_file, credentials) {
        (Some(f), _) => Ok(f.clone()),
        (None, Some(dir)) => Ok(dir.join(CREDENTIAL)),
        (None, None) => Err(KeyError::NoCredentials),
    }
}

/// The key in a key file's bytes (surrounding ASCII whitespace, such as a final newline,
/// is not part of it), or why it is refused.
pub fn key_from(path: &Path, bytes: &[u8]) -> Result<Keys, KeyError> {
    let key = bytes.trim_ascii();
    if key.len() < MIN_KEY {
        return Err(KeyError::Short { path: path.to_path_buf(), len: key.len() });
    }
    Ok(Keys { key: key.to_vec() })
}

/// The secret behind tokens and form MACs.
#[derive(Clone)]
pub struct Keys {
    key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(…)")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Keys {
    /// Keys from raw bytes (tests and benches; the daemon uses [`key_from`]).
    pub fn new(key: &[u8]) -> Keys {
        Keys { key: key.to_vec() }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(label);
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The token of request `id`.
    pub fn token(&self, id: i64) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1..9].copy_from_slice(&id.to_be_bytes());
        let mac = self.mac(b"callbackd link", &raw[..9]);
        raw[9..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The request a token names, if it is one of ours; `None` for anything else
    /// (malformed, another version, another key, a changed byte). Compared in constant time.
    pub fn verify(&self, token: &str) -> Option<i64> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != RAW_LEN || raw[0] != VERSION {
            return None;
        }
        let want = self.mac(b"callbackd link", &raw[..9]);
        if !same(&want, &raw[9..]) {
            return None;
        }
        let id = i64::from_be_bytes(raw[1..9].try_into().ok()?);
        (id > 0).then_some(id)
    }

    /// The MAC a form on the page of `token` carries (base64url).
    pub fn form(&self, token: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(b"callbackd form", token.as_bytes()))
    }

    /// True when `given` is the form MAC of `token`. Compared in constant time.
    pub fn form_ok(&self, token: &str, given: &str) -> bool {
        let want = self.form(token);
        same(want.as_bytes(), given.as_bytes())
    }
}

/// Equal bytes, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The link of a request: `{url}/r/{token}`.
pub fn url(public: &Public, keys: &Keys, id: i64) -> String {
    format!("{}/r/{}", public.url, keys.token(id))
}

/// A link of the right length for `base` (for measuring SMS length before any request
/// exists).
pub fn sample(base: &str) -> String {
    format!("{}/r/{}", base.trim_end_matches('/'), "x".repeat(TOKEN_LEN))
}

/// The base URL a dialplan's notice is measured with before the daemon's `[public] url` is
/// known (`callbackd check` measures again with the configured one).
pub const TYPICAL_BASE: &str = "https://takaisinsoitto.example.fi";

/// True while a link still opens its page: the request is live, or it ended less than
/// `lifetime` ago.
pub fn alive(final_at: Option<Timestamp>, lifetime: SignedDuration, now: Timestamp) -> bool {
    match final_at {
        None => true,
        Some(at) => at.checked_add(lifetime).is_ok_and(|until| now < until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7u8; 32])
    }

    #[test]
    fn a_token_names_its_request_and_no_other() {
        let k = keys();
        for id in [1, 42, 1_000_000, i64::MAX] {
            let t = k.token(id);
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{t}");
            assert_eq!(k.verify(&t), Some(id));
        }
        assert_ne!(k.token(1), k.token(2));
    }

    #[test]
    fn a_changed_character_or_another_key_is_refused() {
        let k = keys();
        let t = k.token(42);
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).expect("ascii");
            assert_eq!(k.verify(&changed), None, "position {i}: {changed}");
        }
        assert_eq!(Keys::new(&[8u8; 32]).verify(&t), None);
        // The id swapped in without the MAC: refused.
        let other = k.token(43);
        let spliced = format!("{}{}", &other[..12], &t[12..]);
        assert_eq!(k.verify(&spliced), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = keys();
        for bad in ["", "abc", &"A".repeat(TOKEN_LEN), &"=".repeat(TOKEN_LEN), "../../etc/passwd"] {
            assert_eq!(k.verify(bad), None, "{bad}");
        }
        let t = k.token(5);
        assert_eq!(k.verify(&format!("{t}A")), None);
        assert_eq!(k.verify(&t[1..]), None);
        // Request 0 and negative ids never come from the store.
        assert_eq!(k.verify(&k.token(0)), None);
        assert_eq!(k.verify(&k.token(-3)), None);
    }

    #[test]
    fn form_macs_are_bound_to_their_page() {
        let k = keys();
        let (a, b) = (k.token(1), k.token(2));
        let f = k.form(&a);
        assert!(k.form_ok(&a, &f));
        assert!(!k.form_ok(&b, &f));
        assert!(!k.form_ok(&a, ""));
        assert!(!k.form_ok(&a, &k.token(1)));
        assert!(!Keys::new(&[9u8; 32]).form_ok(&a, &f));
    }

    #[test]
    fn a_link_stops_working_its_lifetime_after_the_request_ended() {
        let t = |s: &str| s.parse::<Timestamp>().expect("ts");
        let week = SignedDuration::from_hours(7 * 24);
        let now = t("2026-11-30T10:00:00Z");
        assert!(alive(None, week, now), "a live request");
        assert!(alive(Some(t("2026-11-23T10:00:01Z")), week, now));
        assert!(!alive(Some(t("2026-11-23T10:00:00Z")), week, now), "exactly a week: gone");
        assert!(!alive(Some(now), SignedDuration::ZERO, now), "lifetime 0: ends with it");
    }

    #[test]
    fn keys_shorter_than_256_bits_are_refused() {
        let p = Path::new("/k");
        assert!(matches!(key_from(p, b"short\n"), Err(KeyError::Short { len: 5, .. })));
        assert!(key_from(p, &[b'x'; 32]).is_ok());
        let padded = [b"\n  ".as_slice(), &[b'x'; 31], b"\n"].concat();
        assert!(matches!(key_from(p, &padded), Err(KeyError::Short { len: 31, .. })));
        let public = Public {
            url: "https://a.fi".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            lifetime: SignedDuration::ZERO,
            key_file: None,
            per_address: 1,
            per_link: 1,
        };
        assert!(matches!(key_path(&public, None), Err(KeyError::NoCredentials)));
        assert_eq!(
            key_path(&public, Some(Path::new("/run/c"))).expect("path"),
            Path::new("/run/c/callbackd-link-key")
        );
    }

    #[test]
    fn samples_have_the_length_of_real_links() {
        let public = Public {
            url: "https://soita.example.fi".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            lifetime: SignedDuration::ZERO,
            key_file: None,
            per_address: 1,
            per_link: 1,
        };
        assert_eq!(sample(&public.url).len(), url(&public, &keys(), 123).len());
    }
}

/// What makes a request's link: `[public]` and the key.
#[derive(Debug, Clone)]
pub struct Links {
    /// `[public]`.
    pub public: std::sync::Arc<Public>,
    /// The link key.
    pub keys: std::sync::Arc<Keys>,
}

impl Links {
    /// The link of request `id`.
    pub fn url(&self, id: i64) -> String {
        url(&self.public, &self.keys, id)
    }
}
