//! Storage faults against the real daemon and real storage, each during intake: SQLite on
//! a tiny file system that fills up and is freed, the database directory (and file)
//! removed, the file read-only at start, and a private PostgreSQL cluster stopped and
//! started. Afterwards every acknowledged request is present (also after a restart),
//! readiness followed the fault, and the daemon recovered by itself.
//!
//! Mounting a tmpfs and starting a private PostgreSQL cluster need root: without it those
//! tests print `SKIPPED: …` and pass, except under `CI=true`.

mod common;

use common::{Daemon, Setup, in_ci, path_of, wait_for_exit};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound on every wait for the daemon to notice a fault or a recovery. Generous: a
/// rescued file holds the write lock for the busy timeout, and the machine is shared.
const LIMIT: Duration = Duration::from_secs(40);

/// The tests each drive intake from 8 clients through a fault: one at a time, so a shared
/// machine keeps every daemon's start-up within the helpers' bounds.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Passes with a message, or fails under `CI=true`.
fn skip(why: &str) {
    assert!(!in_ci(), "{why} (CI=true: this test must run)");
    println!("SKIPPED: {why}");
}

/// Points `setup`'s configuration at another database URL.
fn use_database(setup: &Setup, url: &str) {
    let text = std::fs::read_to_string(&setup.config).expect("read callbackd.toml");
    let text = text.replace("database = \"sqlite:queue.db\"", &format!("database = {url:?}"));
    std::fs::write(&setup.config, text).expect("write callbackd.toml");
}

/// A tmpfs of `size` mounted on a new directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t tmpfs failed");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// What the intake saw: acknowledged ids, and how many answers were 503.
#[derive(Default)]
struct Tally {
    acked: Vec<i64>,
    refused: u64,
}

/// Posts requests with distinct numbers from `workers` tasks until stopped.
struct Intake {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

static NEXT_NUMBER: AtomicU64 = AtomicU64::new(0);

fn number() -> String {
    let n = NEXT_NUMBER.fetch_add(1, Ordering::Relaxed);
    format!("040 {:07}", 1_000_000 + n % 8_000_000)
}

impl Intake {
    fn start(base: &str, workers: usize) -> Intake {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let url = format!("{base}/v1/callbacks");
        let tasks = (0..workers)
            .map(|_| {
                let (stop, tally, http, url) =
                    (stop.clone(), tally.clone(), http.clone(), url.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let body = json!({ "service": "kotka-neuvonta", "number": number() });
                        let Ok(r) = http.post(&url).json(&body).send().await else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        match status {
                            200 | 201 => {
                                let id =
                                    v["id"].as_i64().expect("an acknowledged request has an id");
                                tally.lock().expect("tally").acked.push(id);
                            }
                            503 => {
                                tally.lock().expect("tally").refused += 1;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            other => panic!("intake answered {other}: {v}"),
                        }
                    }
                })
            })
            .collect();
        Intake { stop, tally, tasks }
    }

    fn refused(&self) -> u64 {
        self.tally.lock().expect("tally").refused
    }

    fn acked(&self) -> usize {
        self.tally.lock().expect("tally").acked.len()
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("intake task");
        }
        Arc::try_unwrap(self.tally).ok().expect("tally owned").into_inner().expect("tally")
    }
}

async fn status_of(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

/// Polls `/readyz` until it answers `code`, bounded by [`LIMIT`].
async fn ready_becomes(base: &str, code: u16, logs: impl Fn() -> String) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let deadline = Instant::now() + LIMIT;
    loop {
        if status_of(&http, &format!("{base}/readyz")).await == Some(code) {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never answered {code}:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `callbackd_store_writable` on `/metrics`.
async fn writable_gauge(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("callbackd_store_writable "))
        .and_then(|v| v.trim().parse().ok())
}

/// Asserts every id is a stored request; returns how many were checked.
async fn all_present(daemon: &Daemon, ids: &[i64]) -> usize {
    for id in ids {
        let (status, v) = daemon.get(&path_of(*id)).await;
        assert_eq!(status, 200, "acknowledged request {id} is gone: {v}\n{}", daemon.logs());
    }
    ids.len()
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create the ballast file");
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_requests_and_recovers_when_space_returns() {
    let _serial = SERIAL.lock().await;
    if !is_root() {
        return skip("needs root to mount a tmpfs");
    }
    let fs = Tmpfs::mount("6m");
    let setup = Setup::new();
    let db = fs.path().join("queue.db");
    use_database(&setup, &format!("sqlite:{}", db.display()));
    let daemon = Daemon::start(&setup).await;
    let mut acked = Vec::new();
    let mut refused = 0;
    const EPISODES: usize = 3;
    for episode in 0..EPISODES {
        let intake = Intake::start(&daemon.base, 8);
        let ballast = fs.path().join(format!("ballast-{episode}"));
        fill(&ballast);
        // Writes keep going until the WAL or the file needs a page the disk lacks.
        let deadline = Instant::now() + LIMIT;
        while intake.refused() == 0 {
            assert!(
                Instant::now() < deadline,
                "no request refused on a full disk:\n{}",
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ready_becomes(&daemon.base, 503, || daemon.logs()).await;
        assert_eq!(writable_gauge(&daemon.base).await, Some(0.0), "the gauge says not writable");
        std::fs::remove_file(&ballast).expect("free the space");
        ready_becomes(&daemon.base, 200, || daemon.logs()).await;
        assert_eq!(writable_gauge(&daemon.base).await, Some(1.0), "the gauge says writable");
        let before = intake.acked();
        let deadline = Instant::now() + LIMIT;
        while intake.acked() == before {
            assert!(Instant::now() < deadline, "intake did not recover:\n{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tally = intake.finish().await;
        refused += tally.refused;
        acked.extend(tally.acked);
    }
    let logs = daemon.logs();
    assert!(
        !logs.contains("non-zero transaction depth"),
        "a connection was reused mid-transaction:\n{logs}"
    );
    let refusals = logs.matches("store cannot keep its promise").count();
    assert!(refusals <= EPISODES * 2, "one line per change, not one per failure:\n{logs}");
    let checked = all_present(&daemon, &acked).await;
    let (status, _) = daemon.terminate();
    assert!(status.success(), "clean shutdown");
    let daemon = Daemon::start(&setup).await;
    all_present(&daemon, &acked).await;
    println!(
        "disk full: {EPISODES} episodes, {checked} requests acknowledged, {refused} refused \
         with 503, 0 acknowledged requests lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_database_is_written_back_and_never_silently_recreated() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new();
    let dir = setup.dir.path().join("var");
    let db = dir.join("queue.db");
    use_database(&setup, "sqlite:var/queue.db");
    let daemon = Daemon::start(&setup).await;
    assert!(
        db.exists() && common_marker(&db).exists(),
        "the first start creates the queue and its marker"
    );
    let mut acked = Vec::new();
    let mut refused = 0;
    // Remove the whole directory, then the file alone (with its -wal and -shm).
    let removals: [&dyn Fn(); 2] =
        [&|| std::fs::remove_dir_all(&dir).expect("remove the database directory"), &|| {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }];
    for remove in removals {
        let intake = Intake::start(&daemon.base, 8);
        let deadline = Instant::now() + LIMIT;
        while intake.acked() < 20 {
            assert!(Instant::now() < deadline, "intake is not taking requests:\n{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rescues = daemon.logs().matches("written back to its path").count();
        remove();
        let deadline = Instant::now() + LIMIT;
        while daemon.logs().matches("written back to its path").count() == rescues {
            assert!(
                Instant::now() < deadline,
                "the removed file was not written back:\n{}",
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ready_becomes(&daemon.base, 200, || daemon.logs()).await;
        let before = intake.acked();
        let deadline = Instant::now() + LIMIT;
        while intake.acked() == before {
            assert!(Instant::now() < deadline, "intake did not recover:\n{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tally = intake.finish().await;
        refused += tally.refused;
        acked.extend(tally.acked);
        assert!(db.exists(), "the file is back at its path");
    }
    let checked = all_present(&daemon, &acked).await;
    let (status, _) = daemon.terminate();
    assert!(status.success(), "clean shutdown");
    let daemon = Daemon::start(&setup).await;
    all_present(&daemon, &acked).await;
    let (status, _) = daemon.terminate();
    assert!(status.success(), "clean shutdown");
    println!(
        "database removed: 2 removals (directory, file), {checked} requests acknowledged, \
         {refused} refused with 503, 0 acknowledged requests lost"
    );

    // Removed while stopped: the marker makes the start fail instead of starting empty.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["serve", "--config", setup.config_arg()])
        .current_dir(setup.dir.path())
        .env_remove("CALLBACKD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callbackd serve");
    let status = wait_for_exit(&mut child, LIMIT).expect("callbackd exits on a missing database");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success(), "a missing queue is an error: {err}");
    assert!(err.contains("refusing to start on a new empty queue"), "{err}");
    assert!(!db.exists(), "no new empty database was created");
    // The operator's explicit decision: remove the marker, and an empty queue starts.
    std::fs::remove_file(common_marker(&db)).expect("remove the marker");
    let daemon = Daemon::start(&setup).await;
    assert!(db.exists(), "created again on the operator's word");
    drop(daemon);
}

fn common_marker(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.created", db.display()))
}

/// A daemon started without waiting for readiness, optionally as another user.
struct Started {
    child: Child,
    base: String,
    logs: Arc<Mutex<String>>,
}

impl Started {
    fn spawn(setup: &Setup, as_nobody: bool) -> Started {
        let bin = env!("CARGO_BIN_EXE_callbackd");
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            Command::new(bin)
        };
        let mut child = cmd
            .args(["serve", "--config", setup.config_arg()])
            .current_dir(setup.dir.path())
            .env_remove("CALLBACKD_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start callbackd serve");
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().expect("logs");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening: http://") {
                    let _ = tx.send(format!("http://{}", a.trim()));
                }
            }
        });
        let base = rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
            panic!("callbackd did not listen:\n{}", logs.lock().expect("logs"))
        });
        Started { child, base, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if wait_for_exit(&mut self.child, LIMIT).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_database_is_not_ready_and_recovers_when_writable() {
    let _serial = SERIAL.lock().await;
    // Root writes whatever the permissions say: run the daemon as nobody then.
    let as_nobody = is_root();
    let setup = Setup::new();
    if as_nobody {
        let ok = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(setup.dir.path())
            .status()
            .expect("chown");
        assert!(ok.success(), "chown the test directory to nobody");
    }
    let db = setup.database();
    let first = Started::spawn(&setup, as_nobody);
    ready_becomes(&first.base, 200, || first.logs()).await;
    let http = reqwest::Client::new();
    let (status, v) = common::post_json(
        &http,
        &format!("{}/v1/callbacks", first.base),
        &json!({ "service": "kotka-neuvonta", "number": number() }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let first_id = v["id"].as_i64().expect("id");
    // Made read-only while running, during intake: the open file keeps taking writes,
    // and what was acknowledged is kept.
    let intake = Intake::start(&first.base, 4);
    chmod(&db, 0o444);
    let deadline = Instant::now() + LIMIT;
    while intake.acked() < 20 {
        assert!(Instant::now() < deadline, "intake stopped:\n{}", first.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut acked = intake.finish().await.acked;
    acked.push(first_id);
    drop(first);
    // Without a `-shm` file (it holds no data, and no process has it open now), SQLite
    // creates it with the read-only file's permissions: the case an operator meets.
    let _ = std::fs::remove_file(format!("{}-shm", db.display()));

    // Read-only at start: never ready, intake refused, and ready once writable again.
    let started = Started::spawn(&setup, as_nobody);
    ready_becomes(&started.base, 503, || started.logs()).await;
    let url = format!("{}/v1/callbacks", started.base);
    let (status, v) =
        common::post_json(&http, &url, &json!({ "service": "kotka-neuvonta", "number": number() }))
            .await;
    assert_eq!(status, 503, "a read-only store refuses requests: {v}");
    assert_eq!(v["error"], "store_unavailable", "{v}");
    assert_eq!(writable_gauge(&started.base).await, Some(0.0));
    assert!(started.logs().contains("read-only"), "the log says why:\n{}", started.logs());
    chmod(&db, 0o644);
    ready_becomes(&started.base, 200, || started.logs()).await;
    let (status, v) =
        common::post_json(&http, &url, &json!({ "service": "kotka-neuvonta", "number": number() }))
            .await;
    assert_eq!(status, 201, "writable again without a restart: {v}");
    acked.push(v["id"].as_i64().expect("id"));
    for id in &acked {
        let r = http.get(format!("{}{}", started.base, path_of(*id))).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "acknowledged request {id} is kept");
    }
    println!(
        "read-only: 1 change while running, 1 start read-only, {} requests acknowledged, \
         0 acknowledged requests lost",
        acked.len()
    );
}

/// A private PostgreSQL cluster in a temporary directory on a free port, run as the
/// `postgres` user when the tests run as root (initdb refuses root). Stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// `None` when no PostgreSQL server binaries are installed.
    fn init() -> Option<Cluster> {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        bins.sort();
        let bin = bins.pop()?;
        let dir = tempfile::tempdir().expect("cluster directory");
        if is_root() {
            let ok = Command::new("chown").arg("postgres:postgres").arg(dir.path()).status();
            assert!(ok.is_ok_and(|s| s.success()), "chown the cluster directory to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster { dir, bin, port };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A PostgreSQL tool, as the `postgres` user when root.
    fn tool(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.tool(tool).args(args).stdin(Stdio::null()).output().expect("run a tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.tool("pg_ctl").args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_postgresql_refuses_requests_and_recovers_when_started() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = Cluster::init() else {
        return skip("no PostgreSQL server binaries under /usr/lib/postgresql");
    };
    let setup = Setup::new();
    use_database(&setup, &cluster.url());
    let daemon = Daemon::start(&setup).await;
    let mut acked = Vec::new();
    let mut refused = 0;
    const STOPS: usize = 2;
    for _ in 0..STOPS {
        let intake = Intake::start(&daemon.base, 8);
        let deadline = Instant::now() + LIMIT;
        while intake.acked() < 20 {
            assert!(Instant::now() < deadline, "intake is not taking requests:\n{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.stop();
        ready_becomes(&daemon.base, 503, || daemon.logs()).await;
        assert_eq!(writable_gauge(&daemon.base).await, Some(0.0), "the gauge says not writable");
        cluster.start();
        ready_becomes(&daemon.base, 200, || daemon.logs()).await;
        let before = intake.acked();
        let deadline = Instant::now() + LIMIT;
        while intake.acked() == before {
            assert!(Instant::now() < deadline, "intake did not recover:\n{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tally = intake.finish().await;
        refused += tally.refused;
        acked.extend(tally.acked);
    }
    let checked = all_present(&daemon, &acked).await;
    let (status, _) = daemon.terminate();
    assert!(status.success(), "clean shutdown");
    let daemon = Daemon::start(&setup).await;
    all_present(&daemon, &acked).await;
    println!(
        "PostgreSQL stopped: {STOPS} stops, {checked} requests acknowledged, {refused} refused \
         with 503, 0 acknowledged requests lost"
    );
}
