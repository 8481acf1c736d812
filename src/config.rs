//! The daemon configuration (`/etc/callbackd/callbackd.toml`).
//!
//! Pure: [`Config::from_toml`] turns text into a config or every problem found. Relative
//! paths are resolved against the directory of the configuration file, so the repository's
//! own `callbackd.toml` works from any working directory.

use crate::diag::{Diagnostic, TomlDoc};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/callbackd/callbackd.toml";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// Plain lines without timestamps, for the systemd journal (which adds its own).
    Journald,
}

/// SIP transport to the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (the default).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2: `sips:` URIs, `;transport=tls` toward the PBX).
    Tls,
}

/// SRTP with SDES keys (RFC 4568) on the trunk's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP (the default); no `a=crypto` offered.
    #[default]
    Off,
    /// `RTP/AVP` with `a=crypto` lines: SRTP when the answer accepts a key, plain RTP
    /// otherwise.
    Optional,
    /// `RTP/SAVP` with `a=crypto` lines: an answer without an accepted key fails the call.
    Required,
}

/// TLS settings of the trunk (`transport = "tls"`). Files are PEM, read at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SipTls {
    /// CA certificates the PBX's certificate must chain to; `None`: the system's trust
    /// anchors.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (chain) to present when the PBX asks for one, with its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// SIP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// Local address the SIP stack binds to.
    pub bind: SocketAddr,
    /// The PBX (or outbound proxy) all calls go through: `host:port`.
    pub pbx: String,
    /// Transport to the PBX.
    pub transport: Transport,
    /// Concurrent calls across all services on this trunk.
    pub max_calls: u32,
    /// New calls per second at most, to protect the PBX.
    pub calls_per_second: u32,
    /// Host part of the From, To and Request-URI (default: the host of `pbx`).
    pub domain: String,
    /// How the patient's number is written in the Request-URI.
    pub number_format: NumberFormat,
    /// Digits dialled before the number (e.g. `9` for an outside line).
    pub dial_prefix: String,
    /// Add `;user=phone` to the Request-URI.
    pub user_phone: bool,
    /// Digest credentials for INVITE challenges (401/407).
    pub auth: Option<SipAuth>,
    /// Until prompts and the hand-over to staff are configured, an answered call is held
    /// this long and then ended with BYE.
    pub hangup_after_answer: std::time::Duration,
    /// REGISTER with the PBX (with `auth`) for this long, renewed at half-time; `None`: no
    /// registration (the PBX knows callbackd by its address).
    pub register: Option<std::time::Duration>,
    /// Certificates for `transport = "tls"` (ignored for UDP and TCP).
    pub tls: SipTls,
    /// SRTP on the media of this trunk's calls.
    pub srtp: SrtpMode,
    /// Addresses whose INVITEs to an `[intake]` user are answered (and whose
    /// P-Asserted-Identity is believed); empty: the PBX's address, resolved at start.
    pub trusted: Vec<std::net::IpAddr>,
}

/// How the patient's number appears in the Request-URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberFormat {
    /// `+358401234567`.
    E164,
    /// `0401234567` (Finnish numbers; foreign numbers stay in E.164).
    National,
}

/// Digest credentials; the password is read from a file (e.g. a systemd credential) at
/// start-up, never written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAuth {
    /// Digest user name.
    pub username: String,
    /// File holding the password (trailing newline ignored).
    pub password_file: PathBuf,
    /// Realm, if the PBX needs it fixed.
    pub realm: Option<String>,
}

/// HTTP settings (intake API, `/metrics`, health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// Local address of the HTTP API.
    pub bind: SocketAddr,
    /// File holding the API token (a systemd credential); when set, every `/v1/` request
    /// must carry `Authorization: Bearer TOKEN`. Health and `/metrics` stay open.
    pub token_file: Option<PathBuf>,
    /// A request head must arrive within this (also closes idle kept-alive connections).
    pub header_timeout: std::time::Duration,
    /// A request body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// A connection with no traffic and no request in progress is closed after this.
    pub idle_timeout: std::time::Duration,
    /// Connections held at once (lowered at start to stay below the file limit).
    pub max_connections: usize,
}

/// The daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The configuration file this came from.
    pub file: PathBuf,
    /// Directory of dialplans (`*.toml`, one per service).
    pub dialplans: PathBuf,
    /// Database URL: `sqlite:PATH` (default) or `postgres://…`.
    pub database: String,
    /// Directory of prompts.
    pub sounds: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Days a finished request's phone number is kept before it is erased.
    pub retention_days: u32,
    /// On SIGTERM, how long calls in progress may go on before they are hung up.
    pub shutdown_grace: std::time::Duration,
    /// With PostgreSQL (several servers): how long a claimed call stays this server's
    /// without renewal; after it another server takes the attempt over.
    pub lease: std::time::Duration,
    /// SIP trunk.
    pub sip: Sip,
    /// HTTP API.
    pub http: Http,
    /// The SMS gateway (`[sms]`); `None`: no SMS is sent (the outbox keeps its rows).
    pub sms: Option<crate::sms::config::SmsConfig>,
    /// The patient page (`[public]`); `None`: no page and no `{link}`.
    pub public: Option<crate::link::Public>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    bind: Option<Spanned<String>>,
    pbx: Spanned<String>,
    transport: Option<Transport>,
    max_calls: Option<Spanned<i64>>,
    calls_per_second: Option<Spanned<i64>>,
    domain: Option<Spanned<String>>,
    number_format: Option<NumberFormat>,
    dial_prefix: Option<Spanned<String>>,
    user_phone: Option<bool>,
    username: Option<Spanned<String>>,
    password_file: Option<String>,
    realm: Option<String>,
    hangup_after_answer: Option<Spanned<String>>,
    register: Option<Spanned<bool>>,
    register_expires: Option<Spanned<String>>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<Spanned<String>>,
    tls_key_file: Option<Spanned<String>>,
    srtp: Option<SrtpMode>,
    trusted: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    bind: Option<Spanned<String>>,
    token_file: Option<String>,
    header_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

impl Config {
    /// Parses a configuration; `file` locates messages and anchors relative paths.
    pub fn from_toml(file: &Path, src: &str) -> Result<Config, Vec<Diagnostic>> {
        let mut doc = TomlDoc::parse(file, src);
        let base = file.parent().unwrap_or(Path::new("."));
        let dialplans: Option<String> = doc.optional("dialplans");
        let database: Option<Spanned<String>> = doc.optional("database");
        let sounds: Option<String> = doc.optional("sounds");
        let log_format: Option<LogFormat> = doc.optional("log_format");
        let retention: Option<Spanned<i64>> = doc.optional("retention_days");
        let grace: Option<Spanned<String>> = doc.optional("shutdown_grace");
        let lease: Option<Spanned<String>> = doc.optional("lease");
        let sip: Option<RawSip> = doc.required("sip");
        let http: Option<RawHttp> = doc.optional("http");
        let sms: Option<crate::sms::config::RawSms> = doc.optional("sms");
        let public: Option<crate::link::RawPublic> = doc.optional("public");

        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
        };
        let database = match database {
            None => Some("sqlite:/var/lib/callbackd/callbackd.db".to_owned()),
            Some(db) => resolve_database(&mut doc, db, base),
        };
        let retention_days = match retention {
            None => Some(30),
            Some(r) if (1..=3650).contains(r.get_ref()) => Some(*r.get_ref() as u32),
            Some(r) => {
                doc.error(Some(r.span()), "retention_days must be between 1 and 3650");
                None
            }
        };
        let sip = sip.and_then(|s| check_sip(&mut doc, s, base));
        let shutdown_grace = match grace {
            None => Some(std::time::Duration::from_secs(30)),
            Some(g) => match g.get_ref().parse::<jiff::SignedDuration>() {
                Ok(d) if !d.is_negative() && d.as_secs() <= 600 => {
                    std::time::Duration::try_from(d).ok()
                }
                _ => {
                    doc.error(Some(g.span()), "shutdown_grace must be a duration from 0s to 10m");
                    None
                }
            },
        };
        let lease = match lease {
            None => Some(std::time::Duration::from_secs(30)),
            Some(l) => match l.get_ref().parse::<jiff::SignedDuration>() {
                Ok(d) if d.as_secs() >= 1 && d.as_secs() <= 600 => {
                    std::time::Duration::try_from(d).ok()
                }
                _ => {
                    doc.error(Some(l.span()), "lease must be a duration from 1s to 10m");
                    None
                }
            },
        };
        let http = check_http(&mut doc, http, &resolve);
        let sms = sms.map(|s| crate::sms::config::check(&mut doc, s, base));
        let public = public.map(|p| crate::link::check(&mut doc, p, base));
        let diags = doc.finish();
        match (database, retention_days, shutdown_grace, sip, http, lease) {
            (
                Some(database),
                Some(retention_days),
                Some(shutdown_grace),
                Some(sip),
                Some(http),
                Some(lease),
            ) if diags.is_empty() => Ok(Config {
                file: file.to_path_buf(),
                dialplans: resolve(dialplans.as_deref().unwrap_or("/etc/callbackd/dialplans")),
                database,
                sounds: resolve(sounds.as_deref().unwrap_or("/usr/share/callbackd/sounds")),
                log_format: log_format.unwrap_or(LogFormat::Text),
                retention_days,
                shutdown_grace,
                lease,
                sip,
                http,
                sms: sms.flatten(),
                public: public.flatten(),
            }),
            _ => Err(diags),
        }
    }

    /// Reads and parses a configuration file.
    pub fn load(file: &Path) -> Result<Config, Vec<Diagnostic>> {
        match std::fs::read_to_string(file) {
            Ok(src) => Config::from_toml(file, &src),
            Err(e) => {
                Err(vec![Diagnostic::whole_file(file, format!("cannot read configuration: {e}"))])
            }
        }
    }
}

/// `[http]`: the bind address, the token file and the server's limits.
fn check_http(
    doc: &mut TomlDoc<'_>,
    raw: Option<RawHttp>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<Http> {
    let raw = raw.unwrap_or(RawHttp {
        bind: None,
        token_file: None,
        header_timeout: None,
        body_timeout: None,
        idle_timeout: None,
        max_connections: None,
    });
    let mut timeout = |v: Option<Spanned<String>>, key: &str, default: u64| match v {
        None => Some(std::time::Duration::from_secs(default)),
        Some(v) => match v.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if d.as_millis() >= 100 && d.as_secs() <= 600 => {
                std::time::Duration::try_from(d).ok()
            }
            _ => {
                doc.error(
                    Some(v.span()),
                    format!("http.{key} must be a duration from 100ms to 10m"),
                );
                None
            }
        },
    };
    let header_timeout = timeout(raw.header_timeout, "header_timeout", 10);
    let body_timeout = timeout(raw.body_timeout, "body_timeout", 10);
    let idle_timeout = timeout(raw.idle_timeout, "idle_timeout", 60);
    let max_connections = match raw.max_connections {
        None => Some(512),
        Some(m) if (1..=100_000).contains(m.get_ref()) => usize::try_from(*m.get_ref()).ok(),
        Some(m) => {
            doc.error(Some(m.span()), "http.max_connections must be between 1 and 100000");
            None
        }
    };
    let token_file = raw.token_file.map(|f| resolve(&f));
    let bind = addr(doc, raw.bind, "http.bind", "127.0.0.1:8080");
    Some(Http {
        bind: bind?,
        token_file,
        header_timeout: header_timeout?,
        body_timeout: body_timeout?,
        idle_timeout: idle_timeout?,
        max_connections: max_connections?,
    })
}

fn resolve_database(doc: &mut TomlDoc<'_>, db: Spanned<String>, base: &Path) -> Option<String> {
    let url = db.get_ref().trim();
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
        if path.is_empty() {
            doc.error(
                Some(db.span()),
                "database: sqlite URL needs a file path, e.g. \"sqlite:callbackd.db\"",
            );
            return None;
        }
        let p = Path::new(path);
        let full = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let mut out = format!("sqlite:{}", full.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(url.to_owned())
    } else {
        doc.error(
            Some(db.span()),
            format!("database: {url:?} is neither a sqlite: nor a postgres:// URL"),
        );
        None
    }
}

fn addr(
    doc: &mut TomlDoc<'_>,
    raw: Option<Spanned<String>>,
    what: &str,
    default: &str,
) -> Option<SocketAddr> {
    let (text, span) = match &raw {
        Some(r) => (r.get_ref().as_str(), Some(r.span())),
        None => (default, None),
    };
    match text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            doc.error(
                span,
                format!("{what}: {text:?} is not an IP address and port like 127.0.0.1:8080"),
            );
            None
        }
    }
}

fn check_sip(doc: &mut TomlDoc<'_>, raw: RawSip, base: &Path) -> Option<Sip> {
    let bind = addr(doc, raw.bind, "sip.bind", "0.0.0.0:5060");
    let pbx = raw.pbx.get_ref().trim();
    let pbx_ok = pbx
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !pbx_ok {
        doc.error(
            Some(raw.pbx.span()),
            format!("sip.pbx: {pbx:?} must be host:port, e.g. \"pbx.example.fi:5060\""),
        );
    }
    let mut int = |v: Option<Spanned<i64>>, what: &str, default: u32, max: i64| match v {
        None => Some(default),
        Some(v) if (1..=max).contains(v.get_ref()) => Some(*v.get_ref() as u32),
        Some(v) => {
            doc.error(Some(v.span()), format!("{what} must be between 1 and {max}"));
            None
        }
    };
    let max_calls = int(raw.max_calls, "sip.max_calls", 30, 10_000);
    let cps = int(raw.calls_per_second, "sip.calls_per_second", 5, 10_000);
    let host = pbx.rsplit_once(':').map_or(pbx, |(h, _)| h).trim_matches(['[', ']']);
    let domain = match &raw.domain {
        None => Some(host.to_owned()),
        Some(d) if !d.get_ref().is_empty() && !d.get_ref().contains([' ', '@', ':', ';']) => {
            Some(d.get_ref().clone())
        }
        Some(d) => {
            doc.error(Some(d.span()), "sip.domain must be a host name or address");
            None
        }
    };
    let dial_prefix = match &raw.dial_prefix {
        None => Some(String::new()),
        Some(p) if p.get_ref().chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') => {
            Some(p.get_ref().clone())
        }
        Some(p) => {
            doc.error(Some(p.span()), "sip.dial_prefix may hold only digits, * and #");
            None
        }
    };
    let auth = match (raw.username, raw.password_file) {
        (None, None) => Some(None),
        (Some(u), Some(f)) => {
            let p = Path::new(&f);
            let file = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
            Some(Some(SipAuth { username: u.into_inner(), password_file: file, realm: raw.realm }))
        }
        (Some(u), None) => {
            doc.error(Some(u.span()), "sip.username needs sip.password_file");
            None
        }
        (None, Some(_)) => {
            doc.error(None, "sip.password_file needs sip.username");
            None
        }
    };
    let hold = match &raw.hangup_after_answer {
        None => Some(std::time::Duration::from_secs(2)),
        Some(h) => match h.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() && d.as_secs() <= 3600 => {
                std::time::Duration::try_from(d).ok()
            }
            _ => {
                doc.error(
                    Some(h.span()),
                    "sip.hangup_after_answer must be a duration from 0s to 1h",
                );
                None
            }
        },
    };
    let register = match (&raw.register, &raw.register_expires) {
        (None, None) | (Some(_), None) | (None, Some(_))
            if !raw.register.as_ref().is_some_and(|r| *r.get_ref()) =>
        {
            Some(None)
        }
        (_, expires) => {
            let default = std::time::Duration::from_secs(600);
            let expires = match expires {
                None => Some(default),
                Some(e) => match e.get_ref().parse::<jiff::SignedDuration>() {
                    Ok(d) if d.as_secs() >= 60 && d.as_secs() <= 86_400 => {
                        std::time::Duration::try_from(d).ok()
                    }
                    _ => {
                        doc.error(Some(e.span()), "sip.register_expires must be from 1m to 24h");
                        None
                    }
                },
            };
            if auth.as_ref().is_some_and(Option::is_none) {
                let span = raw.register.as_ref().map(Spanned::span);
                doc.error(span, "sip.register needs sip.username and sip.password_file");
                None
            } else {
                expires.map(Some)
            }
        }
    };
    let path = |f: &str| {
        let p = Path::new(f);
        if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
    };
    let transport = raw.transport.unwrap_or(Transport::Udp);
    let client = match (&raw.tls_cert_file, &raw.tls_key_file) {
        (None, None) => Some(None),
        (Some(c), Some(k)) => Some(Some((path(c.get_ref()), path(k.get_ref())))),
        (Some(c), None) => {
            doc.error(Some(c.span()), "sip.tls_cert_file needs sip.tls_key_file");
            None
        }
        (None, Some(k)) => {
            doc.error(Some(k.span()), "sip.tls_key_file needs sip.tls_cert_file");
            None
        }
    };
    let tls_keys = [raw.tls_ca_file.is_some(), raw.tls_cert_file.is_some()];
    if transport != Transport::Tls && tls_keys.contains(&true) {
        doc.error(None, "sip.tls_ca_file, tls_cert_file and tls_key_file need transport = \"tls\"");
    }
    let tls = client.map(|client| SipTls { ca_file: raw.tls_ca_file.as_deref().map(path), client });
    let mut trusted = Some(Vec::new());
    for t in raw.trusted.unwrap_or_default() {
        match t.get_ref().trim().parse::<std::net::IpAddr>() {
            Ok(ip) => {
                if let Some(list) = trusted.as_mut() {
                    list.push(ip);
                }
            }
            Err(_) => {
                let msg = format!("sip.trusted: {:?} must be an IP address", t.get_ref());
                doc.error(Some(t.span()), msg);
                trusted = None;
            }
        }
    }
    Some(Sip {
        bind: bind?,
        pbx: pbx_ok.then(|| pbx.to_owned())?,
        transport,
        max_calls: max_calls?,
        calls_per_second: cps?,
        domain: domain?,
        number_format: raw.number_format.unwrap_or(NumberFormat::E164),
        dial_prefix: dial_prefix?,
        user_phone: raw.user_phone.unwrap_or(true),
        auth: auth?,
        hangup_after_answer: hold?,
        register: register?,
        tls: tls?,
        srtp: raw.srtp.unwrap_or_default(),
        trusted: trusted?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c =
            Config::from_toml(Path::new("/etc/cb/callbackd.toml"), "[sip]\npbx = \"pbx:5060\"\n")
                .expect("valid");
        assert_eq!(c.dialplans, PathBuf::from("/etc/callbackd/dialplans"));
        assert_eq!(c.database, "sqlite:/var/lib/callbackd/callbackd.db");
        assert_eq!(c.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sip.bind.to_string(), "0.0.0.0:5060");
        let c = Config::from_toml(
            Path::new("/srv/cb/callbackd.toml"),
            "dialplans = \"dp\"\ndatabase = \"sqlite:var/q.db?mode=rwc\"\n[sip]\npbx = \"pbx:5060\"\n",
        )
        .expect("valid");
        assert_eq!(c.dialplans, PathBuf::from("/srv/cb/dp"));
        assert_eq!(c.database, "sqlite:/srv/cb/var/q.db?mode=rwc");
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let src = "dialplan = \"x\"\ndatabase = \"mysql://x\"\nlog_format = \"xml\"\n\
                   [sip]\npbx = \"nohost\"\nbind = \"1.2.3.4\"\n[http]\nbind = \"x\"\n";
        let errs = Config::from_toml(Path::new("c.toml"), src).expect_err("invalid");
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let joined = text.join("\n");
        assert!(joined.contains("c.toml:1:1: unknown key `dialplan`"), "{joined}");
        assert!(joined.contains("c.toml:2:12: database:"), "{joined}");
        assert!(joined.contains("c.toml:3:14: `log_format`"), "{joined}");
        assert!(joined.contains("c.toml:5:7: sip.pbx"), "{joined}");
        assert!(joined.contains("c.toml:6:8: sip.bind"), "{joined}");
        assert!(joined.contains("c.toml:8:8: http.bind"), "{joined}");
        assert_eq!(errs.len(), 6, "{joined}");
    }

    #[test]
    fn http_limits_have_defaults_and_ranges() {
        let sip = "[sip]\npbx = \"pbx:5060\"\n";
        let c = Config::from_toml(Path::new("c.toml"), sip).expect("valid");
        assert_eq!(c.http.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.http.body_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.http.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.http.max_connections, 512);
        let src = format!(
            "{sip}[http]\nheader_timeout = \"2s\"\nbody_timeout = \"500ms\"\n\
             idle_timeout = \"5m\"\nmax_connections = 64\n"
        );
        let c = Config::from_toml(Path::new("c.toml"), &src).expect("valid");
        assert_eq!(c.http.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.http.body_timeout, std::time::Duration::from_millis(500));
        assert_eq!(c.http.idle_timeout, std::time::Duration::from_secs(300));
        assert_eq!(c.http.max_connections, 64);
        let src = format!(
            "{sip}[http]\nheader_timeout = \"0s\"\nbody_timeout = \"x\"\n\
             idle_timeout = \"1h\"\nmax_connections = 0\n"
        );
        let errs = Config::from_toml(Path::new("c.toml"), &src).expect_err("invalid");
        let joined: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let joined = joined.join("\n");
        assert_eq!(errs.len(), 4, "{joined}");
        assert!(joined.contains("c.toml:4:18: http.header_timeout"), "{joined}");
        assert!(joined.contains("http.max_connections must be between 1 and 100000"), "{joined}");
    }

    #[test]
    fn tls_and_srtp_keys() {
        let c = Config::from_toml(
            Path::new("/etc/cb/callbackd.toml"),
            "[sip]\npbx = \"pbx.example.fi:5061\"\ntransport = \"tls\"\n\
             tls_ca_file = \"ca.pem\"\ntls_cert_file = \"/k/c.pem\"\n\
             tls_key_file = \"c.key\"\nsrtp = \"required\"\n",
        )
        .expect("valid");
        assert_eq!(c.sip.transport, Transport::Tls);
        assert_eq!(c.sip.tls.ca_file, Some(PathBuf::from("/etc/cb/ca.pem")));
        assert_eq!(
            c.sip.tls.client,
            Some((PathBuf::from("/k/c.pem"), PathBuf::from("/etc/cb/c.key")))
        );
        assert_eq!(c.sip.srtp, SrtpMode::Required);
        let c = Config::from_toml(Path::new("c.toml"), "[sip]\npbx = \"p:5060\"\n").expect("ok");
        assert_eq!((c.sip.srtp, c.sip.tls), (SrtpMode::Off, SipTls::default()));
        let text = |src: &str| {
            let errs = Config::from_toml(Path::new("c.toml"), src).expect_err("invalid");
            errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        };
        let e = text("[sip]\npbx = \"p:5061\"\ntransport = \"tls\"\ntls_cert_file = \"c.pem\"\n");
        assert!(e.contains("c.toml:4:17: sip.tls_cert_file needs sip.tls_key_file"), "{e}");
        let e = text("[sip]\npbx = \"p:5060\"\ntls_ca_file = \"ca.pem\"\n");
        assert!(e.contains("need transport = \"tls\""), "{e}");
        let e = text("[sip]\npbx = \"p:5060\"\nsrtp = \"maybe\"\n");
        assert!(
            e.contains("unknown variant `maybe`, expected one of `off`, `optional`, `required`"),
            "{e}"
        );
    }
}
