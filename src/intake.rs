//! Intake: turning a patient's callback request (from the HTTP API, the CLI or the PBX's
//! IVR) into a stored request.
//!
//! [`validate`] is pure: the raw input and the services in, a [`NewRequest`] with its
//! [`Plan`] or a field-naming [`IntakeError`] out. Nothing is stored for a rejected request.

use crate::calendar::DayRange;
use crate::dialplan::{Service, Services};
use crate::lang::Lang;
use crate::number::NumberError;
use crate::policy::{self, Decision, Plan, RequestFacts};
use crate::store::NewRequest;
use jiff::Timestamp;
use serde::Deserialize;

/// Where a request came from: one of a fixed set (it is also the `channel` label of
/// metrics, so a client cannot add series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The HTTP API (the API's default).
    Api,
    /// `callbackd request` (the CLI's default).
    Cli,
    /// The PBX's IVR ("press 1 for a callback").
    Ivr,
    /// A web form.
    Web,
    /// A chat service.
    Chat,
    /// A mobile app.
    App,
    /// Staff taking the request by phone.
    Phone,
}

impl Channel {
    /// Every channel, in the README's order.
    pub const ALL: [Channel; 7] = [
        Channel::Api,
        Channel::Cli,
        Channel::Ivr,
        Channel::Web,
        Channel::Chat,
        Channel::App,
        Channel::Phone,
    ];

    /// As written in requests, stored and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Cli => "cli",
            Channel::Ivr => "ivr",
            Channel::Web => "web",
            Channel::Chat => "chat",
            Channel::App => "app",
            Channel::Phone => "phone",
        }
    }

    /// The channel named exactly `s`, if any.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A callback request as a patient or the PBX sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// Service id.
    pub service: String,
    /// The number to call back, as written (`040 123 4567`, `+358…`, `00358…`).
    pub number: String,
    /// A window the service offers, `HH:MM-HH:MM`.
    #[serde(default)]
    pub window: Option<String>,
    /// `fi`, `sv` or `en`; default the service's.
    #[serde(default)]
    pub lang: Option<String>,
    /// Consent to SMS (notice, survey).
    #[serde(default)]
    pub sms_consent: Option<bool>,
    /// Where it came from (`web`, `ivr`, `chat`, …); default given by the edge.
    #[serde(default)]
    pub channel: Option<String>,
    /// The patient's care team, one of the dialplan's `[teams]`; default none (the
    /// service's own `[connect] target`).
    #[serde(default)]
    pub team: Option<String>,
}

/// Why a request was refused; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// No such service (the name as given, cut to a few characters).
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The number is refused by the service's number policy.
    #[error("number: {0}")]
    Number(#[from] NumberError),
    /// The window is not one the service offers.
    #[error("window {given:?} is not offered by this service; offered: {offered}")]
    Window {
        /// As given.
        given: String,
        /// The service's windows, comma-separated, or "none".
        offered: String,
    },
    /// The language is unknown or not offered.
    #[error("lang {0:?} is not offered by this service")]
    Lang(String),
    /// The channel is not one of [`Channel::ALL`].
    #[error("channel must be one of api, cli, ivr, web, chat, app, phone")]
    Channel,
    /// The service cannot serve the request (never open in its window before expiry).
    #[error("the service has no time to call back before the request would expire")]
    NoTime,
    /// The team is not one of the service's `[teams]`.
    #[error("team {given:?} is not a team of this service; teams: {teams}")]
    Team {
        /// As given.
        given: String,
        /// The service's teams, comma-separated, or "none".
        teams: String,
    },
}

impl IntakeError {
    /// A stable machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::UnknownService(_) => "unknown_service",
            IntakeError::Number(NumberError::Invalid) => "invalid_number",
            IntakeError::Number(NumberError::PremiumRate) => "premium_rate_number",
            IntakeError::Number(NumberError::Service(_)) => "service_number",
            IntakeError::Number(NumberError::Foreign(_)) => "foreign_number",
            IntakeError::Number(NumberError::KindNotAllowed(_)) => "number_kind_not_allowed",
            IntakeError::Window { .. } => "window_not_offered",
            IntakeError::Lang(_) => "unknown_language",
            IntakeError::Channel => "invalid_channel",
            IntakeError::NoTime => "no_time",
            IntakeError::Team { .. } => "unknown_team",
        }
    }

    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            IntakeError::UnknownService(_) | IntakeError::NoTime => "service",
            IntakeError::Number(_) => "number",
            IntakeError::Window { .. } => "window",
            IntakeError::Lang(_) => "lang",
            IntakeError::Channel => "channel",
            IntakeError::Team { .. } => "team",
        }
    }
}

/// A validated request and its plan.
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    /// What to store.
    pub request: NewRequest,
    /// When it will be dialled.
    pub plan: Plan,
    /// Its service.
    pub service: &'a Service,
    /// Where it came from.
    pub channel: Channel,
}

/// The most characters of a client's value an error message repeats.
pub const CUT: usize = 40;

/// `s` cut to [`CUT`] characters, with `…` when something was cut: error messages never
/// echo a long value back.
pub fn cut(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(CUT).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// Validates a request against the services' dialplans at `now`.
pub fn validate<'a>(
    services: &'a Services,
    raw: &RawRequest,
    default_channel: &str,
    now: Timestamp,
) -> Result<Accepted<'a>, IntakeError> {
    let service = services
        .get(raw.service.trim())
        .ok_or_else(|| IntakeError::UnknownService(cut(&raw.service)))?;
    let number = service.numbers.check(&raw.number)?;
    let window = match raw.window.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => {
            let offered = || {
                if service.windows.is_empty() {
                    "none".to_owned()
                } else {
                    service.windows.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
            };
            let range = w
                .parse::<DayRange>()
                .ok()
                .filter(|r| service.windows.contains(r))
                .ok_or_else(|| IntakeError::Window { given: cut(w), offered: offered() })?;
            Some(range)
        }
    };
    let lang = match raw.lang.as_deref() {
        None => service.language.default,
        Some(l) => l
            .parse::<Lang>()
            .ok()
            .filter(|l| service.language.offered.contains(l))
            .ok_or_else(|| IntakeError::Lang(cut(l)))?,
    };
    let channel = Channel::parse(raw.channel.as_deref().unwrap_or(default_channel))
        .ok_or(IntakeError::Channel)?;
    let team = match raw.team.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) if service.teams.contains_key(t) => Some(t.to_owned()),
        Some(t) => {
            let teams = if service.teams.is_empty() {
                "none".to_owned()
            } else {
                service.teams.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(IntakeError::Team { given: cut(t), teams });
        }
    };
    let facts = RequestFacts { created_at: now, window, attempts: &[] };
    let plan = match policy::decide(&service.calendar, &service.attempts, &facts) {
        Decision::Dial(plan) => plan,
        Decision::End { .. } => return Err(IntakeError::NoTime),
    };
    Ok(Accepted {
        request: NewRequest {
            service: service.id.clone(),
            number,
            channel: channel.as_str().to_owned(),
            lang,
            window,
            sms_consent: raw.sms_consent.unwrap_or(false),
            sms_notice: service.sms.as_ref().is_some_and(|s| s.notice),
            created_at: now,
            team,
            told: None,
        },
        plan,
        service,
        channel,
    })
}

/// The windows of `service` a request made at `now` can still be served in (the policy
/// plans a call in them before the request would expire), in the dialplan's order: the
/// intake call offers only these.
pub fn servable_windows(service: &Service, now: Timestamp) -> Vec<DayRange> {
    service
        .windows
        .iter()
        .copied()
        .filter(|w| {
            let facts = RequestFacts { created_at: now, window: Some(*w), attempts: &[] };
            matches!(
                policy::decide(&service.calendar, &service.attempts, &facts),
                Decision::Dial(_)
            )
        })
        .collect()
}

/// Asks the service's `[team_lookup]` for the team of a request that has none; a team
/// that is not one of the service's `[teams]`, an error, a bad answer or no answer within
/// the timeout leaves it without (logged, the number masked). Does nothing without a
/// lookup or when the request has a team.
pub async fn look_up_team(service: &Service, request: &mut NewRequest) {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let (Some(lookup), None) = (&service.team_lookup, &request.team) else { return };
    let client = CLIENT.get_or_init(reqwest::Client::new);
    #[derive(Deserialize)]
    struct Answer {
        team: Option<String>,
    }
    let asked = client
        .get(&lookup.url)
        .query(&[("number", request.number.as_str())])
        .timeout(lookup.timeout)
        .send();
    let answer = match tokio::time::timeout(lookup.timeout, asked).await {
        Ok(Ok(r)) if r.status().is_success() => r.json::<Answer>().await.ok(),
        Ok(Ok(r)) => {
            tracing::warn!(service = %service.id, status = r.status().as_u16(), "team lookup refused: stored without a team");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(service = %service.id, error = %e.without_url(), "team lookup failed: stored without a team");
            return;
        }
        Err(_) => {
            tracing::warn!(service = %service.id, "team lookup timed out: stored without a team");
            return;
        }
    };
    match answer.map(|a| a.team) {
        Some(Some(team)) if service.teams.contains_key(&team) => request.team = Some(team),
        Some(Some(team)) => {
            tracing::warn!(service = %service.id, team = %cut(&team), number = %request.number, "team lookup answered a team the dialplan does not list: stored without a team");
        }
        Some(None) => {}
        None => {
            tracing::warn!(service = %service.id, "team lookup answer is not JSON with \"team\": stored without a team")
        }
    }
}

/// Stores requests taken on the phone ([`crate::sip::intake`]): the same validation, dedup
/// and store write as the HTTP API, with `channel = ivr`, and then what the caller is told
/// (read from the store in [`crate::eta`], after the write).
#[derive(Clone)]
pub struct PhoneDesk {
    /// The queue.
    pub store: crate::store::Store,
    /// The current dialplans (sender: the reloader).
    pub services: tokio::sync::watch::Receiver<std::sync::Arc<Services>>,
    /// The clock.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Wakes the scheduler after a new request.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for PhoneDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneDesk").finish_non_exhaustive()
    }
}

/// Why a request taken on the phone was not stored.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// Intake refused it (e.g. no time left before it would expire).
    #[error(transparent)]
    Refused(#[from] IntakeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl PhoneDesk {
    /// The current services.
    pub fn services(&self) -> std::sync::Arc<Services> {
        self.services.borrow().clone()
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Validates and stores a request taken on the phone; a number already waiting is not
    /// stored again, the caller is told its place.
    pub async fn take(
        &self,
        service: &str,
        number: &crate::number::E164,
        window: Option<DayRange>,
        lang: Lang,
    ) -> Result<crate::call::intake::Told, DeskError> {
        use crate::call::intake::{Told, spoken};
        let services = self.services();
        let raw = RawRequest {
            service: service.to_owned(),
            number: number.as_str().to_owned(),
            window: window.map(|w| w.to_string()),
            lang: Some(lang.code().to_owned()),
            sms_consent: None,
            channel: Some(Channel::Ivr.as_str().to_owned()),
            team: None,
        };
        let now = self.now();
        let accepted = match validate(&services, &raw, Channel::Ivr.as_str(), now) {
            Ok(a) => a,
            Err(e) => {
                crate::metrics::request(service, Channel::Ivr.as_str(), "rejected");
                return Err(e.into());
            }
        };
        let svc = accepted.service;
        let mut accepted = accepted;
        look_up_team(svc, &mut accepted.request).await;
        let stored = self.store.enqueue(&accepted.request, &accepted.plan).await?;
        self.store.confirm()?;
        let result = if stored.duplicate { "duplicate" } else { "accepted" };
        crate::metrics::request(&svc.id, Channel::Ivr.as_str(), result);
        if !stored.duplicate {
            tracing::info!(service = %svc.id, request = stored.request.id, number = %accepted.request.number, channel = "ivr", "request accepted");
        }
        // The one ETA: the window told (and recorded) as the API and the notice SMS tell it.
        // The scheduler is woken after it is recorded (also when telling failed), so the
        // first call is judged against the window told here.
        let told = crate::eta::tell(&self.store, svc, &stored.request, now).await;
        if !stored.duplicate {
            self.wake.notify_one();
        }
        let crate::eta::Answer { place, eta, .. } = told?;
        let tz = svc.calendar.tz();
        let eta = eta.map(|e| spoken(&e, tz, now));
        Ok(if stored.duplicate {
            Told::Waiting { place, eta }
        } else {
            Told::New { eta, sms: accepted.request.sms_notice }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn services(teams: &str) -> Services {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(path).expect("the example dialplan") + teams;
        crate::dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid")
    }

    fn raw(team: Option<&str>) -> RawRequest {
        RawRequest {
            service: "kallio".into(),
            number: "0401234567".into(),
            window: None,
            lang: None,
            sms_consent: None,
            channel: None,
            team: team.map(str::to_owned),
        }
    }

    #[test]
    fn a_team_must_be_one_of_the_services() {
        let now: Timestamp = "2026-11-30T08:00:00Z".parse().expect("instant");
        let s = services("\n[teams]\ntiimi-a = \"sip:tiimi-a@pbx.hel.example\"\n");
        let ok = validate(&s, &raw(Some("tiimi-a")), "api", now).expect("accepted");
        assert_eq!(ok.request.team.as_deref(), Some("tiimi-a"));
        assert_eq!(validate(&s, &raw(None), "api", now).expect("accepted").request.team, None);
        let e = validate(&s, &raw(Some("tiimi-x")), "api", now).expect_err("refused");
        assert_eq!((e.code(), e.field()), ("unknown_team", "team"));
        assert_eq!(e.to_string(), "team \"tiimi-x\" is not a team of this service; teams: tiimi-a");
        let none = services("");
        let e = validate(&none, &raw(Some("tiimi-a")), "api", now).expect_err("refused");
        assert!(e.to_string().ends_with("teams: none"), "{e}");
    }

    #[test]
    fn only_windows_that_can_be_served_are_offered() {
        let s = services("");
        let svc = &s["kallio"];
        // Monday 30 November 2026, 15:30 in Helsinki: today's windows are over, but with a
        // day left before expiry every window can still be served tomorrow.
        let now: Timestamp = "2026-11-30T13:30:00Z".parse().expect("instant");
        assert_eq!(servable_windows(svc, now), svc.windows);
    }
}
