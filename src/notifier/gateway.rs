//! Delivering one message to an SMS gateway. [`SmsGateway`] is the seam: the HTTP gateway
//! here, SMPP later, doubles in tests.
//!
//! The client reference (`callbackd-42`, from the outbox row) goes in the gateway's
//! reference field and, if configured, an idempotency header, identically on every try: a
//! gateway that honours it sends one SMS however often a crash makes us repeat the request.
//! Errors carry the HTTP status only: never the number, the text or the gateway's answer
//! (which may echo them).

use crate::number::E164;
use crate::sms::config::{Auth, BodyFormat, HttpGateway, Method, RecipientFormat};
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The client reference / idempotency key (stable across tries).
    pub reference: String,
    /// The sender ID.
    pub sender: String,
    /// The patient's number.
    pub recipient: E164,
    /// The rendered text.
    pub text: String,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No answer within the timeout.
    #[error("the SMS gateway did not answer in time")]
    Timeout,
    /// Connection refused, reset, TLS failure …
    #[error("cannot reach the SMS gateway: {0}")]
    Transport(#[source] reqwest::Error),
    /// The gateway answered with a non-success status.
    #[error("the SMS gateway answered HTTP {0}")]
    Status(u16),
    /// The gateway's secret could not be read.
    #[error("cannot read the SMS gateway secret {file}: {source}")]
    Secret {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl GatewayError {
    /// True when trying again may help (timeouts, transport errors, 408, 429, 5xx); a
    /// 4xx answer means the request itself is refused.
    pub fn retryable(&self) -> bool {
        match self {
            GatewayError::Timeout | GatewayError::Transport(_) => true,
            GatewayError::Status(s) => *s == 408 || *s == 429 || *s >= 500,
            GatewayError::Secret { .. } | GatewayError::Client(_) => false,
        }
    }

    /// A fixed label for metrics and the outbox row's reason.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::Timeout => "timeout",
            GatewayError::Transport(_) => "transport",
            GatewayError::Status(s) if *s >= 500 => "http_5xx",
            GatewayError::Status(_) => "http_4xx",
            GatewayError::Secret { .. } | GatewayError::Client(_) => "setup",
        }
    }
}

/// Sends SMS.
pub trait SmsGateway: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers one message; `Ok` once the gateway accepted it.
    fn send(
        &self,
        msg: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'static>>;
}

/// The generic HTTP gateway.
#[derive(Debug, Clone)]
pub struct HttpSmsGateway {
    cfg: HttpGateway,
    secret: Option<String>,
    client: reqwest::Client,
}

/// Reads the gateway secret (trailing newline ignored).
pub fn read_secret(auth: &Auth) -> Result<String, GatewayError> {
    let file = auth.secret_file();
    std::fs::read_to_string(file)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|source| GatewayError::Secret { file: file.to_path_buf(), source })
}

impl HttpSmsGateway {
    /// A gateway from its configuration and its secret (see [`read_secret`]).
    pub fn new(cfg: HttpGateway, secret: Option<String>) -> Result<Self, GatewayError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("callbackd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GatewayError::Client)?;
        Ok(HttpSmsGateway { cfg, secret, client })
    }

    fn request(&self, msg: &Outgoing) -> reqwest::RequestBuilder {
        let cfg = &self.cfg;
        let recipient = match cfg.recipient_format {
            RecipientFormat::E164 => msg.recipient.as_str().to_owned(),
            RecipientFormat::Digits => msg.recipient.as_str().trim_start_matches('+').to_owned(),
        };
        let mut fields: Vec<(&str, &str)> = cfg
            .constants
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([
                (cfg.fields.sender.as_str(), msg.sender.as_str()),
                (cfg.fields.recipient.as_str(), recipient.as_str()),
                (cfg.fields.text.as_str(), msg.text.as_str()),
            ])
            .collect();
        if let Some(r) = &cfg.fields.reference {
            fields.push((r.as_str(), msg.reference.as_str()));
        }
        let mut req = match cfg.method {
            Method::Post => self.client.post(&cfg.url),
            Method::Put => self.client.put(&cfg.url),
        };
        req = match cfg.body {
            BodyFormat::Json => {
                let mut body = Value::Object(Map::new());
                for (k, v) in &fields {
                    set_path(&mut body, k, Value::String((*v).to_owned()));
                }
                req.json(&body)
            }
            BodyFormat::Form => req.form(&fields),
        };
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        if let Some(h) = &cfg.idempotency_header {
            req = req.header(h, &msg.reference);
        }
        let secret = self.secret.as_deref().unwrap_or_default();
        match &cfg.auth {
            None => req,
            Some(Auth::Basic { username, .. }) => req.basic_auth(username, Some(secret)),
            Some(Auth::Bearer { .. }) => req.bearer_auth(secret),
            Some(Auth::Header { header, prefix, .. }) => {
                req.header(header.as_str(), format!("{prefix}{secret}"))
            }
        }
    }
}

impl SmsGateway for HttpSmsGateway {
    fn send(
        &self,
        msg: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'static>> {
        let req = self.request(&msg);
        Box::pin(async move {
            let resp = req.send().await.map_err(|e| {
                if e.is_timeout() {
                    GatewayError::Timeout
                } else {
                    GatewayError::Transport(e.without_url())
                }
            })?;
            let status = resp.status();
            if status.is_success() { Ok(()) } else { Err(GatewayError::Status(status.as_u16())) }
        })
    }
}

/// Sets `value` at a dotted path (`recipients.0.msisdn`): a number segment indexes an array.
fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next_is_index = segments.get(i + 1).is_some_and(|s| s.parse::<usize>().is_ok());
        let fresh =
            || if next_is_index { Value::Array(Vec::new()) } else { Value::Object(Map::new()) };
        cur = match (seg.parse::<usize>(), cur) {
            (Ok(idx), Value::Array(items)) => {
                while items.len() <= idx {
                    items.push(Value::Null);
                }
                let slot = &mut items[idx];
                if last {
                    *slot = value;
                    return;
                }
                if slot.is_null() {
                    *slot = fresh();
                }
                slot
            }
            (_, Value::Object(map)) => {
                if last {
                    map.insert((*seg).to_owned(), value);
                    return;
                }
                map.entry((*seg).to_owned()).or_insert_with(fresh)
            }
            // A path that clashes with an earlier field: the earlier one wins.
            (_, _) => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_build_nested_json() {
        let mut v = Value::Object(Map::new());
        set_path(&mut v, "sender", Value::from("18220"));
        set_path(&mut v, "recipients.0.msisdn", Value::from("358401234567"));
        set_path(&mut v, "message", Value::from("hei"));
        assert_eq!(
            v,
            serde_json::json!({"sender": "18220", "recipients": [{"msisdn": "358401234567"}], "message": "hei"})
        );
    }

    #[test]
    fn only_server_side_failures_are_retried() {
        assert!(GatewayError::Timeout.retryable());
        assert!(GatewayError::Status(500).retryable());
        assert!(GatewayError::Status(429).retryable());
        assert!(!GatewayError::Status(400).retryable());
        assert!(!GatewayError::Status(401).retryable());
    }
}
