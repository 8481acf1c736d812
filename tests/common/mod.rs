//! The support module of the tests and the benches: a per-test configuration in a temporary
//! directory, a [`Daemon`] guard that runs the real binary and kills it on drop, a small
//! JSON-over-HTTP client, the log checks, the peers a test starts ([`tool`], [`skip`]),
//! sipp as the PBX ([`sipp`]) and a PostgreSQL database of a test's own ([`pg`]).
//!
//! Tests use it as `mod common;`; benches as
//! `#[path = "../tests/common/mod.rs"] mod common;`.
//!
//! A missing peer (a program, or the PostgreSQL server) never changes what is tested: the
//! test says `SKIPPED: <why>` and passes on a developer's machine, and fails under `CI=true`,
//! where `.ci/run` has installed every peer.

// Each test crate uses a different part of this module.
#![allow(dead_code, reason = "each test crate and bench uses a different part of this module")]

pub mod browser;
pub mod fill;
pub mod pg;
pub mod sipp;
pub mod tls;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Every wait in these tests is bounded by this. A bound, not a timing goal (those are in
/// the benches): generous, so a loaded machine (a CI runner, parallel builds) does not fail
/// a test that would pass.
pub const WAIT: Duration = Duration::from_secs(30);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A per-test directory holding `callbackd.toml` and the SQLite queue next to it, and the
/// fake PBX the configuration points at.
#[derive(Debug)]
pub struct Setup {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// The configuration file.
    pub config: PathBuf,
    /// Answers every call `486 Busy Here`.
    pub pbx: FakePbx,
}

impl Setup {
    /// Writes a configuration: HTTP and SIP on ephemeral ports, the repository's dialplans,
    /// `sqlite:queue.db` relative to the configuration file, and a [`FakePbx`] as the PBX.
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let pbx = FakePbx::start();
        let config = dir.path().join("callbackd.toml");
        let setup = Setup { dir, config, pbx };
        setup.point_at(&setup.pbx.addr, &repo().join("dialplans"), "");
        setup
    }

    /// Rewrites the configuration to use another PBX address (e.g. sipp's) and dialplan
    /// directory; `extra_sip` is appended to the `[sip]` table.
    pub fn point_at(&self, pbx: &str, dialplans: &std::path::Path, extra_sip: &str) {
        let config = ConfigFile {
            max_calls: Some(100),
            calls_per_second: Some(1000),
            extra_sip: extra_sip.to_owned(),
            ..ConfigFile::new(pbx, dialplans)
        };
        config.write(&self.config);
    }

    /// The configuration path as a string argument.
    pub fn config_arg(&self) -> &str {
        self.config.to_str().expect("temporary path is UTF-8")
    }

    /// The SQLite file the configuration names.
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("queue.db")
    }

    /// Runs a `callbackd` command (not `serve`) to completion, bounded by [`WAIT`].
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callbackd"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CALLBACKD_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run callbackd");
        // Drain the pipes on threads so a chatty child can never block on a full pipe.
        let mut out = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        let out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let status = wait_for_exit(&mut child, WAIT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`callbackd {}` did not finish within {WAIT:?}", args.join(" "));
        });
        Output {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

/// A `callbackd.toml` for tests and benches: HTTP and SIP on ephemeral loopback ports, the
/// repository's sounds, text logs.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The dialplan directory.
    pub dialplans: PathBuf,
    /// `database`; default `sqlite:queue.db`, next to the configuration file.
    pub database: String,
    /// `[sip] pbx`.
    pub pbx: String,
    /// `[sip] max_calls`; `None` leaves the daemon's default.
    pub max_calls: Option<u32>,
    /// `[sip] calls_per_second`; `None` leaves the daemon's default.
    pub calls_per_second: Option<u32>,
    /// More top-level lines (e.g. `shutdown_grace = "0s"`).
    pub extra_top: String,
    /// More lines of the `[sip]` table.
    pub extra_sip: String,
}

impl ConfigFile {
    /// The defaults above, with this PBX and dialplan directory.
    pub fn new(pbx: &str, dialplans: &std::path::Path) -> ConfigFile {
        ConfigFile {
            dialplans: dialplans.to_owned(),
            database: "sqlite:queue.db".to_owned(),
            pbx: pbx.to_owned(),
            max_calls: None,
            calls_per_second: None,
            extra_top: String::new(),
            extra_sip: String::new(),
        }
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let opt =
            |key: &str, v: Option<u32>| v.map(|v| format!("{key} = {v}\n")).unwrap_or_default();
        format!(
            "dialplans = {dialplans:?}\n\
             database = {database:?}\n\
             sounds = {sounds:?}\n\
             log_format = \"text\"\n\
             {extra_top}\n\
             \n\
             [sip]\n\
             bind = \"127.0.0.1:0\"\n\
             pbx = \"{pbx}\"\n\
             {max_calls}{cps}{extra_sip}\n\
             \n\
             [http]\n\
             bind = \"127.0.0.1:0\"\n",
            dialplans = self.dialplans.display().to_string(),
            database = self.database,
            sounds = repo().join("sounds").display().to_string(),
            extra_top = self.extra_top,
            pbx = self.pbx,
            max_calls = opt("max_calls", self.max_calls),
            cps = opt("calls_per_second", self.calls_per_second),
            extra_sip = self.extra_sip,
        )
    }

    /// Writes [`ConfigFile::render`] to `path`.
    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, self.render())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Polls `child` until it exits or `limit` passes.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `callbackd serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// When the process was spawned.
    pub spawned: Instant,
    /// From spawn to the `listening: http://` line.
    pub listening: Duration,
    /// From spawn to the first `/readyz` 200.
    pub ready: Duration,
    /// The SIP address once printed.
    sip: Arc<Mutex<Option<String>>>,
    /// The patient page's address once printed (`[public]` configured).
    public: Arc<Mutex<Option<String>>>,
    /// Everything the daemon wrote to stderr so far (its logs), unless they go to `log_file`.
    logs: Arc<Mutex<String>>,
    log_file: Option<PathBuf>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    http: reqwest::Client,
}

/// How [`Daemon::spawn`] starts the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// `RUST_LOG` (`None`: the daemon's default).
    pub rust_log: Option<String>,
    /// Write stderr to this file instead of keeping it in memory (long bench runs).
    pub log_file: Option<PathBuf>,
    /// Bound on start-up (up to `/readyz` 200).
    pub wait: Duration,
    /// A program (and its arguments) that execs the daemon, e.g. `prlimit`; empty: none.
    pub wrapper: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options { rust_log: None, log_file: None, wait: WAIT, wrapper: Vec::new() }
    }
}

impl Daemon {
    /// Starts the daemon on `setup`'s configuration and waits (bounded) until it prints
    /// `listening: http://ADDR` and `/readyz` answers 200.
    pub async fn start(setup: &Setup) -> Daemon {
        Daemon::start_logging(setup, None).await
    }

    /// [`Daemon::start`] with `RUST_LOG` set to `level` (`None`: the daemon's default).
    pub async fn start_logging(setup: &Setup, level: Option<&str>) -> Daemon {
        let options = Options { rust_log: level.map(str::to_owned), ..Options::default() };
        Daemon::spawn(setup.dir.path(), &setup.config, &options).await
    }

    /// [`Daemon::start_logging`] run through `wrapper`, a program that execs the daemon
    /// (e.g. `["prlimit", "--nofile=512:512"]` for a low file limit); empty: directly.
    pub async fn start_under(setup: &Setup, wrapper: &[&str], level: Option<&str>) -> Daemon {
        let options = Options {
            rust_log: level.map(str::to_owned),
            wrapper: wrapper.iter().map(|w| (*w).to_owned()).collect(),
            ..Options::default()
        };
        Daemon::spawn(setup.dir.path(), &setup.config, &options).await
    }

    /// `callbackd serve --config CONFIG` in `dir` (relative paths of the configuration are
    /// relative to it); waits (bounded by `options.wait`) until it prints
    /// `listening: http://ADDR` and `/readyz` answers 200, and records how long each took.
    pub async fn spawn(
        dir: &std::path::Path,
        config: &std::path::Path,
        options: &Options,
    ) -> Daemon {
        let mut cmd = match options.wrapper.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_callbackd")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_callbackd"));
                c
            }
        };
        cmd.env_remove("RUST_LOG");
        if let Some(level) = &options.rust_log {
            cmd.env("RUST_LOG", level);
        }
        let stderr = match &options.log_file {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
            ),
            None => Stdio::piped(),
        };
        let spawned = Instant::now();
        let mut child = cmd
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env_remove("CALLBACKD_CONFIG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start callbackd serve");

        let logs = Arc::new(Mutex::new(String::new()));
        let stderr_reader = child.stderr.take().map(|stderr| {
            let sink = logs.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stderr);
                let mut line = Vec::new();
                while lines.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
                    sink.lock().expect("log buffer").push_str(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            })
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        let sip = Arc::new(Mutex::new(None));
        let sip_sink = sip.clone();
        let public = Arc::new(Mutex::new(None));
        let public_sink = public.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening: http://") {
                    let _ = tx.send((format!("http://{}", addr.trim()), spawned.elapsed()));
                }
                if let Some(addr) = line.strip_prefix("listening: sip://") {
                    *sip_sink.lock().expect("sip address") = Some(addr.trim().to_owned());
                }
                if let Some(addr) = line.strip_prefix("listening: public http://") {
                    *public_sink.lock().expect("public address") =
                        Some(format!("http://{}", addr.trim()));
                }
            }
        });

        let http = reqwest::Client::builder().timeout(WAIT).build().expect("HTTP client");
        let mut daemon = Daemon {
            child,
            base: String::new(),
            spawned,
            listening: Duration::ZERO,
            ready: Duration::ZERO,
            sip,
            public,
            logs,
            log_file: options.log_file.clone(),
            stderr_reader,
            http,
        };
        let wait = options.wait;
        let deadline = spawned + wait;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((base, listening)) => {
                    daemon.base = base;
                    daemon.listening = listening;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed without the line: the daemon died; give its logs.
                    let _ = wait_for_exit(&mut daemon.child, wait);
                    panic!(
                        "callbackd exited before listening ({:?}); stderr:\n{}",
                        daemon.child.try_wait(),
                        daemon.logs()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "callbackd printed no `listening:` line within {wait:?}; stderr:\n{}",
                    daemon.logs()
                );
            }
        }
        assert!(daemon.base.starts_with("http://127.0.0.1:"), "listening on {}", daemon.base);
        daemon.wait_ready_within(deadline).await;
        daemon.ready = spawned.elapsed();
        daemon
    }

    /// The daemon's SIP address (`127.0.0.1:PORT`), bounded by [`WAIT`].
    pub fn sip_addr(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(a) = self.sip.lock().expect("sip address").clone() {
                return a;
            }
            assert!(Instant::now() < deadline, "no `listening: sip://` line");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The patient page's base URL (`http://127.0.0.1:PORT`; `[public]` configured),
    /// bounded by [`WAIT`].
    pub fn public_base(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(a) = self.public.lock().expect("public address").clone() {
                return a;
            }
            assert!(Instant::now() < deadline, "no `listening: public http://` line");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/readyz` until 200, bounded by [`WAIT`].
    pub async fn wait_ready(&self) {
        self.wait_ready_within(Instant::now() + WAIT).await;
    }

    async fn wait_ready_within(&self, deadline: Instant) {
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "/readyz not 200 in time:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A clone of the HTTP client (cheap; shares the connection pool).
    pub fn client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The daemon's stderr so far.
    pub fn logs(&self) -> String {
        match &self.log_file {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => self.logs.lock().expect("log buffer").clone(),
        }
    }

    /// How many lines of the logs so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.logs().lines().filter(|l| l.contains(needle)).count()
    }

    /// SIGTERM, then a wait bounded by `limit`; SIGKILL when it did not exit. The exit
    /// status (`None`: killed) and how long the exit took.
    pub fn stop(&mut self, limit: Duration) -> (Option<ExitStatus>, Duration) {
        let start = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let status = wait_for_exit(&mut self.child, limit);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (status, start.elapsed())
    }

    /// GET `path`: status and body as JSON (`Value::Null` if the body is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        json_of(self.http.get(self.url(path)).send().await.expect("GET"), path).await
    }

    /// GET `path` as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        json_of(self.http.delete(self.url(path)).send().await.expect("DELETE"), path).await
    }

    /// POST a JSON value to `/v1/callbacks`.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        post_json(&self.http, &self.url("/v1/callbacks"), body).await
    }

    /// POST raw bytes to `/v1/callbacks` as `application/json`.
    pub async fn post_raw(&self, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/callbacks"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST");
        json_of(r, "/v1/callbacks").await
    }

    /// Polls a request until the scheduler has nothing to do with it right now: final, or
    /// waiting (`retry_wait`, or `pending` with its due time ahead), never `dialing` and
    /// never `pending` while already due. Bounded by [`WAIT`]; returns its last status.
    pub async fn settled(&self, id: i64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, v) = self.get(&path_of(id)).await;
            assert_eq!(status, 200, "GET request {id}: {v}");
            let state = s(&v, "state");
            let due_ahead = || v["due_at"].is_string() && t(&v, "due_at") > jiff::Timestamp::now();
            let settled = match state {
                "dialing" => false,
                "pending" => due_ahead(),
                _ => true,
            };
            if settled {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} still {state} after {WAIT:?}: {v}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM (via `kill -TERM`) and waits, bounded, for the exit status.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = wait_for_exit(&mut self.child, WAIT).unwrap_or_else(|| {
            panic!("callbackd did not exit within {WAIT:?} of SIGTERM; stderr:\n{}", self.logs())
        });
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
        (status, self.logs())
    }

    /// SIGKILL (`kill -9`): no chance to flush or shut down. Returns the logs.
    pub fn kill9(mut self) -> String {
        self.child.kill().expect("SIGKILL callbackd");
        let _ = self.child.wait();
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
        self.logs()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A PBX that answers every INVITE with `486 Busy Here` at once, so calls end within
/// milliseconds: a request is dialled once, counted busy, and then waits `pause` in
/// `retry_wait`. Stops when dropped.
#[derive(Debug)]
pub struct FakePbx {
    /// `127.0.0.1:PORT` (UDP).
    pub addr: String,
    invites: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePbx {
    fn start() -> FakePbx {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the fake PBX");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let addr = socket.local_addr().expect("fake PBX address").to_string();
        let (invites, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopped) = (invites.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let msg = String::from_utf8_lossy(&buf[..n]);
                if msg.starts_with("INVITE ") {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(busy_response(&msg).as_bytes(), from);
                } else if msg.starts_with("OPTIONS ") {
                    let _ = socket.send_to(response(&msg, "200 OK").as_bytes(), from);
                }
            }
        });
        FakePbx { addr, invites, stop, thread: Some(thread) }
    }

    /// INVITEs received so far (retransmissions included).
    pub fn invites(&self) -> usize {
        self.invites.load(Ordering::Relaxed)
    }
}

impl Drop for FakePbx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn busy_response(invite: &str) -> String {
    response(invite, "486 Busy Here")
}

/// A final response to `request`, echoing its Via, From, To (tagged), Call-ID and CSeq.
fn response(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else { continue };
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" if value.contains("tag=") => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(line);
                out.push_str(";tag=fakepbx\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// POST a JSON body to a URL.
pub async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    json_of(http.post(url).json(body).send().await.expect("POST"), url).await
}

async fn json_of(r: reqwest::Response, what: &str) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_else(|e| panic!("body of {what}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Digits of every phone number the tests send: none may ever reach a log unmasked.
pub const TEST_NUMBER_DIGITS: &[&str] = &[
    "401234567",  // 040 123 4567
    "7654321",    // 040 765 4321
    "501112233",  // 050 111 2233
    "407778899",  // 040 777 8899
    "443332211",  // 044 333 2211
    "406543210",  // 040 654 3210
    "701234567",  // +46 70 123 45 67
    "51234567",   // +372 5123 4567
    "700123456",  // 0700 123 456
    "4055500",    // 040 555 00NN (persistence)
    "4555000",    // 045 550 00NN (concurrency, cancel)
    "4099988",    // 040 999 88NN (metrics)
    "1234567890", // garbage input
];

/// Asserts no test number appears unmasked in `text`, and no `+` is followed by more than
/// six digits (a masked E.164 number shows `+` and 5 digits, e.g. `+35840*****67`).
pub fn assert_no_unmasked_numbers(what: &str, text: &str) {
    for needle in TEST_NUMBER_DIGITS {
        if let Some(at) = text.find(needle) {
            let from = text[..at].char_indices().rev().nth(80).map_or(0, |(i, _)| i);
            let to = (at + needle.len() + 80).min(text.len());
            let to = (to..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            panic!("{what} contains the number digits {needle:?} unmasked: …{}…", &text[from..to]);
        }
    }
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'+' {
            let run = bytes[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            assert!(
                run <= 6,
                "{what} contains an unmasked E.164 number: {:?}",
                &text[i..(i + 1 + run).min(text.len())]
            );
        }
    }
}

/// [`assert_no_unmasked_numbers`] on every line of the daemon's logs.
pub fn assert_logs_masked(logs: &str) {
    assert_no_unmasked_numbers("daemon logs", logs);
}

/// The field of a JSON object as a string, or a panic naming it.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// The field of a JSON object as an integer, or a panic naming it.
pub fn i(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

/// Parses an API time (`2026-11-23T10:30:00+02:00`).
pub fn t(v: &Value, key: &str) -> jiff::Timestamp {
    s(v, key).parse().unwrap_or_else(|e| panic!("{key} {:?} is not an instant: {e}", v[key]))
}

/// Path of a request.
pub fn path_of(id: i64) -> String {
    format!("/v1/callbacks/{id}")
}

/// True when running under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says why a test does not run: `SKIPPED: <why>` on a developer's machine (the caller then
/// returns, and the test passes); under `CI=true` a panic, so CI never passes a test that
/// did not run.
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why}, and CI=true: every peer must be installed (see .ci/run)");
    eprintln!("SKIPPED: {why}");
}

/// The path of `program` on `PATH`; `None` after [`skip`] (`<program> not installed
/// (apt-get install <package>)`) when it is missing, which fails the test under `CI=true`.
/// Every program a test or bench starts is looked up here, and `.ci/run` installs its
/// `package`.
pub fn tool(program: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    if found.is_none() {
        skip(&format!("{program} not installed (apt-get install {package})"));
    }
    found
}

/// A running process's open-files limit, lowered and put back with `prlimit` (util-linux)
/// while the process runs: the fault of a host out of file descriptors.
#[derive(Debug)]
pub struct OpenFiles {
    prlimit: PathBuf,
    pid: u32,
    soft: String,
}

impl OpenFiles {
    /// The limit of `pid` as it is now; `None` after [`skip`] when `prlimit` is missing.
    pub fn of(pid: u32) -> Option<OpenFiles> {
        let prlimit = tool("prlimit", "util-linux")?;
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let soft = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .expect("the soft open-files limit")
            .to_owned();
        Some(OpenFiles { prlimit, pid, soft })
    }

    fn set(&self, soft: &str) {
        let status = Command::new(&self.prlimit)
            .args(["--pid", &self.pid.to_string(), &format!("--nofile={soft}:")])
            .status()
            .expect("prlimit runs");
        assert!(status.success(), "prlimit --nofile={soft}: {status}");
    }

    /// Sets the soft limit to the lowest descriptor number the process has free: it can
    /// open nothing more until [`OpenFiles::restore`].
    pub fn exhaust(&self) {
        let open: std::collections::BTreeSet<u64> =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid))
                .expect("the process's descriptors")
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
        self.set(&(0..).find(|n| !open.contains(n)).expect("a free number").to_string());
    }

    /// Puts the soft limit back as it was.
    pub fn restore(&self) {
        self.set(&self.soft);
    }
}

/// True when a bench runs as one: `cargo bench` passes `--bench`. `cargo test` builds and
/// starts every bench too (`test = true` in Cargo.toml), so none can rot unnoticed; then it
/// has no `--bench`, this says so and returns false, and the bench exits at once.
pub fn bench_requested(name: &str) -> bool {
    let requested = std::env::args().any(|a| a == "--bench");
    if !requested {
        println!("bench {name}: built and started; measure with `cargo bench --bench {name}`");
    }
    requested
}

/// `(VmRSS, VmHWM)` of a process, in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// [`tool`] for each `(program, package)`; true when all are installed. Every missing one
/// is named before the result (a panic under `CI=true` at the first).
pub fn tools(needed: &[(&str, &str)]) -> bool {
    needed.iter().fold(true, |all, (program, package)| tool(program, package).is_some() && all)
}

/// Writes the ends of `attempts` together as the scheduler does ([`Store::finish_all`],
/// without a dialplan): each an `Ended` event with its outcome, SIP 200 and `answered_at`,
/// under its fence, at `at`. The answer per end, in order.
pub async fn finish_together(
    store: &callbackd::store::Store,
    attempts: &[callbackd::store::Attempt],
    ends: &[(callbackd::store::Fence, callbackd::policy::Outcome)],
    answered_at: Option<jiff::Timestamp>,
    at: jiff::Timestamp,
) -> Vec<Result<callbackd::store::Applied, callbackd::store::StoreError>> {
    use callbackd::policy::lifecycle::{Event, step};
    use callbackd::store::{Finish, Request};
    let ends = attempts
        .iter()
        .zip(ends)
        .map(|(attempt, &(fence, outcome))| {
            let finish = Finish { attempt, sip_code: Some(200), answered_at, fence };
            let event = Event::Ended { seq: attempt.seq, outcome };
            (finish, move |req: &Request, records: &[_]| step(None, &req.facts(records), event, at))
        })
        .collect();
    store.finish_all(ends, at).await.expect("committed")
}
