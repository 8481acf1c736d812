//! TLS peers for tests: a throw-away CA and a server certificate for 127.0.0.1 made with the
//! `openssl` command, and `socat` terminating TLS in front of a plain-TCP sipp.
//!
//! Debian packages `openssl` and `socat`. Without them a test says SKIPPED, except under
//! `CI=true`, where they must be there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// True when `cmd` runs; otherwise says SKIPPED (panics under `CI=true`).
pub fn have(cmd: &str, package: &str) -> bool {
    let found = Command::new(cmd)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .or_else(|_| {
            Command::new(cmd).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status()
        })
        .is_ok();
    if !found {
        assert!(!super::in_ci(), "{cmd} (Debian package {package}) is missing in CI");
        eprintln!("SKIPPED: {cmd} is not installed (apt-get install {package})");
    }
    found
}

/// A CA and a server certificate it signed, in a temporary directory.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    /// A CA named `name` and a certificate for 127.0.0.1 (subjectAltName IP and DNS
    /// `localhost`) signed by it; EC P-256 keys in PKCS#8.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Pki { dir }
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server key (PEM, PKCS#8).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Certificate and key in one file (what baresip's `sip_certificate` takes).
    pub fn combined(&self) -> PathBuf {
        let path = self.dir.path().join("server-combined.pem");
        let mut pem = std::fs::read(self.cert()).expect("cert");
        pem.extend(std::fs::read(self.key()).expect("key"));
        std::fs::write(&path, pem).expect("combined");
        path
    }
}

/// `socat` accepting TLS connections on `port` with `pki`'s server certificate and
/// relaying each, decrypted, to plain TCP at `to`; killed on drop.
#[derive(Debug)]
pub struct TlsFront {
    child: Child,
    /// The TLS port.
    pub port: u16,
}

impl TlsFront {
    /// Starts it and waits (bounded) until it listens.
    pub fn start(pki: &Pki, port: u16, to: u16) -> TlsFront {
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            pki.cert().display(),
            pki.key().display()
        );
        let child = Command::new("socat")
            .arg(listen)
            .arg(format!("TCP:127.0.0.1:{to}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        for _ in 0..100 {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsFront { child, port }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
