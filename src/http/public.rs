//! The patient page, on its own listener (`[public] bind`): `GET /r/{token}` shows one
//! request, `POST /r/{token}/window`, `POST /r/{token}/next-day` and `POST /r/{token}/cancel`
//! change it,
//! `GET /r/{token}/contact.vcf` gives the caller ID as a contact, and `/static/page.css`,
//! `/static/page.js` are the page's own files (`/favicon.ico` answers 204). Nothing else answers here: no staff route,
//! no health, no metrics.
//!
//! Every change goes through the lifecycle ([`crate::policy::lifecycle::step`]) with the
//! actor `web`, written by the store with its audit row, exactly as the staff API's.
//!
//! Abuse: a fixed-window rate limit per client address and per link ([`Limiter`]); a
//! token that is unknown, expired or tampered with gets the same neutral page with the
//! same status; forms carry a MAC bound to the page's token and are refused from another
//! origin (`Origin`, `Sec-Fetch-Site`); bodies are capped at [`MAX_FORM`]; every answer
//! carries a strict Content-Security-Policy, `Referrer-Policy: no-referrer` (the token is
//! in the URL) and `Cache-Control: no-store`.

pub mod page;

use crate::clock::Clock;
use crate::dialplan::{Service, Services};
use crate::eta;
use crate::lang::Lang;
use crate::link::{self, Keys, Public};
use crate::policy::lifecycle::{self, Cancelled};
use crate::policy::{self, Eta};
use crate::store::{Applied, Request, Store, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use page::{Done, View};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

/// The largest form body read (the forms send two short fields).
pub const MAX_FORM: usize = 1024;

/// The Content-Security-Policy of every answer: only this origin's stylesheet and script,
/// forms only to this origin, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// What the page's handlers share.
#[derive(Debug, Clone)]
pub struct PublicState {
    /// The queue.
    pub store: Store,
    /// Current dialplans (sent by the reloader).
    pub services: watch::Receiver<Arc<Services>>,
    /// Notified after a change, so the scheduler re-evaluates.
    pub wake: Arc<tokio::sync::Notify>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// `[public]`.
    pub public: Arc<Public>,
    /// The link key.
    pub keys: Arc<Keys>,
    /// Per client address; locked briefly by each request.
    pub by_address: Arc<Mutex<Limiter<IpAddr>>>,
    /// Per request (link); locked briefly by each request.
    pub by_link: Arc<Mutex<Limiter<i64>>>,
    /// Each service's recent rate, recomputed at most every [`super::DEPTH_TTL`].
    pub rates: Arc<tokio::sync::Mutex<HashMap<String, super::RateSnapshot>>>,
    /// Each service's waiting order (serving keys), re-read at most every
    /// [`super::DEPTH_TTL`]: a page's place is a binary search in it instead of a count of
    /// up to [`eta::AHEAD_CAP`] rows per load.
    pub orders: Arc<tokio::sync::Mutex<HashMap<String, OrderSnapshot>>>,
    /// Where the daemon started, for the limiters' minutes.
    pub started: tokio::time::Instant,
}

impl PublicState {
    /// The state for `public`, with empty limiters and caches.
    pub fn new(
        store: Store,
        services: watch::Receiver<Arc<Services>>,
        wake: Arc<tokio::sync::Notify>,
        clock: Arc<dyn Clock>,
        public: Public,
        keys: Keys,
    ) -> PublicState {
        PublicState {
            store,
            services,
            wake,
            clock,
            by_address: Arc::new(Mutex::new(Limiter::new(public.per_address))),
            by_link: Arc::new(Mutex::new(Limiter::new(public.per_link))),
            public: Arc::new(public),
            keys: Arc::new(keys),
            rates: Arc::default(),
            orders: Arc::default(),
            started: tokio::time::Instant::now(),
        }
    }

    fn minute(&self) -> u64 {
        tokio::time::Instant::now().saturating_duration_since(self.started).as_secs() / 60
    }

    /// Requests served before `req` (capped at [`eta::AHEAD_CAP`]), from the service's
    /// waiting order at most [`super::DEPTH_TTL`] old: the same set and order as
    /// [`eta::ahead`], so the ETA fed from it is the one [`crate::eta`] gives.
    async fn ahead(&self, req: &Request) -> Result<i64, StoreError> {
        let mut cache = self.orders.lock().await;
        let fresh = cache.get(&req.service).is_some_and(|(at, _)| {
            tokio::time::Instant::now().saturating_duration_since(*at) < super::DEPTH_TTL
        });
        if !fresh {
            let order = Arc::new(self.store.waiting_order(&req.service).await?);
            cache.insert(req.service.clone(), (tokio::time::Instant::now(), order));
        }
        let order = cache.get(&req.service).map(|(_, o)| Arc::clone(o)).unwrap_or_default();
        drop(cache);
        Ok(ahead_in(&order, &req.facts(&[]).serving_key()))
    }

    async fn rate(&self, service: &Service, now: Timestamp) -> Result<f64, StoreError> {
        let mut cache = self.rates.lock().await;
        if let Some((at, r)) = cache.get(&service.id) {
            if tokio::time::Instant::now().saturating_duration_since(*at) < super::DEPTH_TTL {
                return Ok(*r);
            }
        }
        let r = eta::rate(&self.store, service, now).await?;
        cache.insert(service.id.clone(), (tokio::time::Instant::now(), r));
        Ok(r)
    }
}

/// A fixed-window counter: at most `per_minute` hits per key in each minute (pure: the
/// caller gives the minute). Keys of past minutes are dropped when the map grows.
#[derive(Debug)]
pub struct Limiter<K> {
    per_minute: u32,
    hits: HashMap<K, (u64, u32)>,
}

/// Keys kept before the limiter drops those of past minutes.
const LIMITER_KEYS: usize = 50_000;

impl<K: std::hash::Hash + Eq + Copy> Limiter<K> {
    /// A limiter of `per_minute` hits per key.
    pub fn new(per_minute: u32) -> Limiter<K> {
        Limiter { per_minute, hits: HashMap::new() }
    }

    /// Counts a hit of `key` in `minute`; false when the key is over its limit.
    pub fn allow(&mut self, key: K, minute: u64) -> bool {
        if self.hits.len() >= LIMITER_KEYS {
            self.hits.retain(|_, (m, _)| *m == minute);
        }
        let entry = self.hits.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.per_minute
    }
}

/// The client's address: the peer's, or, when the peer is a reverse proxy on this host
/// (a loopback address), the last address it added to `X-Forwarded-For`.
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !peer.is_loopback() {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(peer))
}

/// True when a form post comes from the page itself: the browser says the request is
/// same-origin (or user-initiated), and its `Origin`, when sent, is the public URL's or
/// the `Host` it was sent to.
///
/// The page's `Referrer-Policy: no-referrer` makes browsers send `Origin: null` with its
/// own forms, so `null` is taken as "not told" and `Sec-Fetch-Site` decides; a browser
/// too old to send either is stopped by the form MAC (and a forger would need the link's
/// token in the first place).
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let origin = match text("origin") {
        None | Some("null") => return true,
        Some(o) => o,
    };
    let ours = origin_of(public_url);
    if origin == ours {
        return true;
    }
    match text("host") {
        Some(host) => origin == format!("http://{host}") || origin == format!("https://{host}"),
        None => false,
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// The page's routes.
pub fn router(state: PublicState) -> Router {
    Router::new()
        .route("/r/{token}", get(show))
        .route("/r/{token}/contact.vcf", get(contact))
        .route("/r/{token}/window", post(window))
        .route("/r/{token}/next-day", post(next_day))
        .route("/r/{token}/cancel", post(cancel))
        .route("/static/page.css", get(|| async { asset("text/css; charset=utf-8", page::CSS) }))
        .route(
            "/static/page.js",
            get(|| async { asset("text/javascript; charset=utf-8", page::JS) }),
        )
        // Browsers ask for it unprompted; there is none (no 404 in the console).
        .route(
            "/favicon.ico",
            get(|| async {
                (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "public, max-age=86400")])
            }),
        )
        .fallback(|| async { neutral() })
        .with_state(state)
        .layer(axum::middleware::from_fn(read_form))
        .layer(axum::middleware::from_fn(secure))
}

/// Adds the security headers to every answer.
async fn secure(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("interest-cohort=()"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Reads a body of at most [`MAX_FORM`] bytes within the body timeout (`413`, `408`).
async fn read_form(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use http_body_util::BodyExt;
    let timeout = req
        .extensions()
        .get::<super::serve::BodyTimeout>()
        .map_or(super::Limits::default().body_timeout, |t| t.0);
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_FORM);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(c)) => next.run(axum::extract::Request::from_parts(parts, c.to_bytes().into())).await,
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Ok(Err(_)) => plain(StatusCode::BAD_REQUEST, "request body could not be read"),
        Err(_) => plain(StatusCode::REQUEST_TIMEOUT, "request body did not arrive in time"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body)
        .into_response()
}

/// The one answer for a link that does not work: the same status and bytes whatever the
/// reason.
fn neutral() -> Response {
    html(StatusCode::NOT_FOUND, page::neutral())
}

fn unavailable(e: &StoreError) -> Response {
    warn!(error = %e, "patient page: store unavailable");
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable, try again soon");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    r
}

/// Query parameters of the page.
#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    lang: Option<String>,
    done: Option<String>,
}

/// What the rate limits and the token say about one request.
enum Gate {
    /// A live link of this request.
    Open(Box<Request>),
    /// Stop with this answer.
    Stop(Response),
}

/// Checks the limits, the token and the link's lifetime.
async fn gate(
    st: &PublicState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    token: &str,
) -> Gate {
    let minute = st.minute();
    if let Some(addr) = client_address(peer, headers) {
        let ok = st.by_address.lock().map(|mut l| l.allow(addr, minute)).unwrap_or(true);
        if !ok {
            return Gate::Stop(slow_down());
        }
    }
    let Some(id) = st.keys.verify(token) else { return Gate::Stop(neutral()) };
    let ok = st.by_link.lock().map(|mut l| l.allow(id, minute)).unwrap_or(true);
    if !ok {
        return Gate::Stop(slow_down());
    }
    let req = match st.store.request(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Gate::Stop(neutral()),
        Err(e) => return Gate::Stop(unavailable(&e)),
    };
    if !link::alive(req.final_at, st.public.lifetime, st.clock.now()) {
        return Gate::Stop(neutral());
    }
    Gate::Open(Box::new(req))
}

fn slow_down() -> Response {
    let mut r = html(StatusCode::TOO_MANY_REQUESTS, page::slow_down());
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// A service's waiting order and when it was read.
pub type OrderSnapshot = (tokio::time::Instant, Arc<Vec<lifecycle::ServingKey>>);

/// The number of keys before `key` in a waiting order sorted in serving order, capped at
/// [`eta::AHEAD_CAP`] (as [`crate::store::Store::ahead_of`] counts).
pub fn ahead_in(order: &[lifecycle::ServingKey], key: &lifecycle::ServingKey) -> i64 {
    let n = order.partition_point(|k| k < key);
    i64::try_from(n).unwrap_or(i64::MAX).min(eta::AHEAD_CAP)
}

fn peer_of(req_peer: Option<&super::serve::Peer>) -> Option<SocketAddr> {
    req_peer.map(|p| p.0)
}

async fn show(
    AxState(st): AxState<PublicState>,
    peer: Option<axum::Extension<super::serve::Peer>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let req = match gate(&st, peer_of(peer.as_deref()), &headers, &token).await {
        Gate::Open(r) => r,
        Gate::Stop(r) => return r,
    };
    let lang = q.lang.as_deref().and_then(|l| l.parse::<Lang>().ok()).unwrap_or(req.lang);
    let done = q.done.as_deref().and_then(Done::parse);
    match render(&st, &req, &token, lang, done).await {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => unavailable(&e),
    }
}

/// The windows a waiting request may move to (`None` = any time), each with the ETA it
/// would give with `ahead` requests before it at `rate` calls an hour: "any time" first,
/// then the service's windows in order, only those that can still be served.
pub fn offers(
    service: &Service,
    req: &Request,
    ahead: i64,
    rate: f64,
    now: Timestamp,
) -> Vec<(Option<crate::calendar::DayRange>, Option<Eta>)> {
    if service.windows.is_empty() || !req.state.is_waiting() {
        return Vec::new();
    }
    let rules = crate::scheduler::rules_of(service);
    let facts = req.facts(&[]);
    let ahead = u32::try_from(ahead).ok().filter(|a| i64::from(*a) < eta::AHEAD_CAP);
    std::iter::once(None)
        .chain(service.windows.iter().copied().map(Some))
        .filter_map(|w| {
            let plan = lifecycle::replan(&rules, &facts, w, now)?;
            let eta = ahead.and_then(|a| {
                let a = policy::Ahead::due(a);
                policy::eta(&service.calendar, &service.attempts, w, &plan, now, a, rate)
            });
            Some((w, eta))
        })
        .collect()
}

/// Whether a waiting request may move to the next open day ([`lifecycle::next_day`]) and,
/// if so, the ETA it would give there (`Some(None)`: allowed, no estimate).
pub fn next_day_offer(
    service: &Service,
    req: &Request,
    ahead: i64,
    rate: f64,
    now: Timestamp,
) -> Option<Option<Eta>> {
    let rules = crate::scheduler::rules_of(service);
    let plan = lifecycle::next_day(&rules, &req.facts(&[]), now)?;
    let ahead = u32::try_from(ahead).ok().filter(|a| i64::from(*a) < eta::AHEAD_CAP);
    Some(ahead.and_then(|a| {
        let a = policy::Ahead::due(a);
        policy::eta(&service.calendar, &service.attempts, req.window, &plan, now, a, rate)
    }))
}

async fn render(
    st: &PublicState,
    req: &Request,
    token: &str,
    lang: Lang,
    done: Option<Done>,
) -> Result<String, StoreError> {
    let services = st.services.borrow().clone();
    let service = services.get(&req.service);
    let now = st.clock.now();
    let utc = jiff::tz::TimeZone::UTC;
    let tz = service.map_or(&utc, |s| s.calendar.tz());
    let mut place = None;
    let mut eta_now = None;
    let mut offered = Vec::new();
    let mut next_day = None;
    if let (true, Some(svc)) = (req.state.is_waiting(), service) {
        let ahead = st.ahead(req).await?;
        let rate = st.rate(svc, now).await?;
        place = Some(ahead + 1);
        // The one window told everywhere (API, SMS, IVR, this page): recorded when first
        // told, told again until it slipped. The page's snapshot has the serving order,
        // not the states: a fresh estimate counts every request ahead as due.
        let counted = eta::ahead_of_counts(ahead, 0);
        eta_now = eta::tell_at(&st.store, svc, req, counted, rate, now).await?.eta;
        offered = offers(svc, req, ahead, rate, now);
        next_day = next_day_offer(svc, req, ahead, rate, now);
    }
    let form = st.keys.form(token);
    let view = View {
        lang,
        token,
        form: &form,
        service: service.map_or(req.service.as_str(), |s| s.name.as_str()),
        tz,
        state: req.state,
        cancel_requested: req.cancel_requested,
        place,
        eta: eta_now,
        number: req.number.as_ref().map(|n| n.masked().to_string()),
        window: req.window.map(|w| w.to_string()),
        caller: service.map(|s| {
            (crate::sms::national(&s.caller_id.number), s.caller_id.number.as_str().to_owned())
        }),
        offers: offered.into_iter().map(|(w, e)| (w.map(|w| w.to_string()), e)).collect(),
        next_day,
        done,
        now,
    };
    Ok(page::render(&view))
}

async fn contact(
    AxState(st): AxState<PublicState>,
    peer: Option<axum::Extension<super::serve::Peer>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let req = match gate(&st, peer_of(peer.as_deref()), &headers, &token).await {
        Gate::Open(r) => r,
        Gate::Stop(r) => return r,
    };
    let services = st.services.borrow().clone();
    let Some(svc) = services.get(&req.service) else { return neutral() };
    (
        [
            (header::CONTENT_TYPE, "text/vcard; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"contact.vcf\""),
        ],
        page::vcard(&svc.name, svc.caller_id.number.as_str()),
    )
        .into_response()
}

/// The fields of a form post.
fn fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Checks a form post: same origin, the form MAC of this page. `None`: go on.
fn refuse_form(
    st: &PublicState,
    headers: &HeaderMap,
    token: &str,
    f: &HashMap<String, String>,
) -> Option<Response> {
    if !same_origin(headers, &st.public.url) {
        return Some(plain(StatusCode::FORBIDDEN, "forms are accepted only from the page itself"));
    }
    let mac = f.get("f").map_or("", String::as_str);
    if !st.keys.form_ok(token, mac) {
        return Some(plain(StatusCode::FORBIDDEN, "the form has expired: reload the page"));
    }
    None
}

/// Back to the page after a form (303, so a reload does not post again).
fn back(token: &str, lang: Option<&str>, done: Done) -> Response {
    let lang = lang.and_then(|l| l.parse::<Lang>().ok());
    let q = match lang {
        Some(l) => format!("?lang={}&done={}", l.code(), done.as_str()),
        None => format!("?done={}", done.as_str()),
    };
    let location = format!("/r/{token}{q}");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A form post that passed the [`gate`] (rate limits, a live link) and [`refuse_form`]:
/// the request it names and the form's fields; otherwise the answer to send.
async fn posted(
    st: &PublicState,
    peer: Option<&super::serve::Peer>,
    headers: &HeaderMap,
    token: &str,
    body: &[u8],
) -> Result<(Box<Request>, HashMap<String, String>), Response> {
    let req = match gate(st, peer_of(peer), headers, token).await {
        Gate::Open(r) => r,
        Gate::Stop(r) => return Err(r),
    };
    let f = fields(body);
    match refuse_form(st, headers, token, &f) {
        Some(r) => Err(r),
        None => Ok((req, f)),
    }
}

/// The page's answer to a change through the lifecycle: back to the page with `done` when
/// written (the scheduler woken, the change logged as `what`), refused when the lifecycle
/// refused it or the request is gone, 503 when the store failed.
fn applied(
    st: &PublicState,
    written: Result<Applied, StoreError>,
    (token, lang): (&str, Option<&str>),
    (req, service): (&Request, &str),
    (done, what): (Done, &str),
) -> Response {
    match written {
        Ok(Applied::Written(_)) => {
            st.wake.notify_one();
            info!(request = req.id, service, "{what} on the patient page");
            back(token, lang, done)
        }
        Ok(Applied::Refused(_) | Applied::Gone) => back(token, lang, Done::Refused),
        Err(e) => unavailable(&e),
    }
}

async fn window(
    AxState(st): AxState<PublicState>,
    peer: Option<axum::Extension<super::serve::Peer>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    body: Bytes,
) -> Response {
    let (req, f) = match posted(&st, peer.as_deref(), &headers, &token, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let services = st.services.borrow().clone();
    let Some(svc) = services.get(&req.service) else {
        return back(&token, q.lang.as_deref(), Done::Refused);
    };
    let chosen = match f.get("window").map(String::as_str) {
        Some("any") => None,
        Some(w) => match w.parse::<crate::calendar::DayRange>() {
            Ok(r) if svc.windows.contains(&r) => Some(r),
            _ => {
                return plain(StatusCode::UNPROCESSABLE_ENTITY, "not one of the service's windows");
            }
        },
        None => return plain(StatusCode::UNPROCESSABLE_ENTITY, "no window chosen"),
    };
    if svc.windows.is_empty() {
        return plain(StatusCode::UNPROCESSABLE_ENTITY, "the service offers no windows");
    }
    let rules = crate::scheduler::rules_of(svc);
    let written = st.store.set_window(req.id, &rules, chosen, "web", st.clock.now()).await;
    let what = format!("window changed to {}", chosen.map_or("any".to_owned(), |w| w.to_string()));
    applied(&st, written, (&token, q.lang.as_deref()), (&req, &svc.id), (Done::Window, &what))
}

async fn next_day(
    AxState(st): AxState<PublicState>,
    peer: Option<axum::Extension<super::serve::Peer>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    body: Bytes,
) -> Response {
    let (req, _) = match posted(&st, peer.as_deref(), &headers, &token, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let services = st.services.borrow().clone();
    let Some(svc) = services.get(&req.service) else {
        return back(&token, q.lang.as_deref(), Done::Refused);
    };
    if !svc.next_open_day {
        return plain(StatusCode::UNPROCESSABLE_ENTITY, "the service does not offer this");
    }
    let rules = crate::scheduler::rules_of(svc);
    let written = st.store.set_next_open_day(req.id, &rules, "web", st.clock.now()).await;
    let what = "moved to the next open day";
    applied(&st, written, (&token, q.lang.as_deref()), (&req, &svc.id), (Done::NextDay, what))
}

async fn cancel(
    AxState(st): AxState<PublicState>,
    peer: Option<axum::Extension<super::serve::Peer>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    body: Bytes,
) -> Response {
    let (req, _) = match posted(&st, peer.as_deref(), &headers, &token, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let done = match st.store.cancel(req.id, "web", st.clock.now()).await {
        Ok(Cancelled::Now) => {
            st.wake.notify_one();
            info!(request = req.id, "cancelled on the patient page");
            Done::Cancelled
        }
        Ok(Cancelled::AfterLiveAttempt) => Done::CancelAfterCall,
        Ok(Cancelled::AlreadyFinal(_) | Cancelled::NotFound) => Done::Refused,
        Err(e) => return unavailable(&e),
    };
    back(&token, q.lang.as_deref(), done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_place_is_the_count_of_keys_before_it_capped() {
        let t = |s: i64| Timestamp::from_second(s).expect("ts");
        let key = |d: i64, c: i64, id: i64| lifecycle::ServingKey {
            deadline: t(d),
            created_at: t(c),
            id,
        };
        let mut order = vec![key(10, 1, 5), key(10, 1, 3), key(5, 9, 9), key(10, 2, 1)];
        order.sort();
        assert_eq!(ahead_in(&order, &key(5, 9, 9)), 0);
        assert_eq!(ahead_in(&order, &key(10, 1, 5)), 2, "ties go by id");
        assert_eq!(ahead_in(&order, &key(10, 2, 1)), 3);
        assert_eq!(ahead_in(&order, &key(11, 0, 0)), 4, "not in the order: all before it");
        let many: Vec<_> = (0..6000).map(|i| key(1, i, i)).collect();
        assert_eq!(ahead_in(&many, &key(2, 0, 0)), eta::AHEAD_CAP);
    }

    #[test]
    fn the_limiter_counts_per_key_and_minute() {
        let mut l = Limiter::new(2);
        assert!(l.allow(1, 0) && l.allow(1, 0));
        assert!(!l.allow(1, 0), "third in the minute");
        assert!(l.allow(2, 0), "another key");
        assert!(l.allow(1, 1), "the next minute");
    }

    #[test]
    fn the_client_is_the_peer_unless_a_local_proxy_forwards() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.7"));
        let remote: SocketAddr = "192.0.2.1:5000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(client_address(Some(remote), &h), Some(remote.ip()), "not trusted");
        assert_eq!(client_address(Some(local), &h), "198.51.100.7".parse().ok());
        assert_eq!(client_address(Some(local), &HeaderMap::new()), Some(local.ip()));
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let url = "https://soita.example.fi";
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("origin", "https://soita.example.fi")]), url));
        assert!(same_origin(&h(&[]), url), "no Origin: not a browser's cross-site post");
        assert!(!same_origin(&h(&[("origin", "https://evil.example")]), url));
        assert!(same_origin(&h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), url));
        assert!(!same_origin(&h(&[("origin", "null"), ("sec-fetch-site", "cross-site")]), url));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")]), url));
        assert!(!same_origin(
            &h(&[("sec-fetch-site", "same-site"), ("origin", "https://soita.example.fi")]),
            url
        ));
        assert!(same_origin(
            &h(&[("origin", "http://127.0.0.1:8081"), ("host", "127.0.0.1:8081")]),
            url
        ));
        assert_eq!(origin_of("https://a.fi/x/y"), "https://a.fi");
        assert_eq!(origin_of("http://a.fi:81"), "http://a.fi:81");
    }
}
