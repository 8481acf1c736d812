//! SIP over TLS to the PBX (`[sip] transport = "tls"`): the trust anchors the PBX's
//! certificate is verified against, the optional client certificate, and the process-wide
//! rustls crypto provider.
//!
//! rsipstack dials the TLS connection itself when the first request goes out (and again
//! after the connection is lost); it takes PEM bytes in its [`TlsConfig`]. Everything here
//! is read and checked once at start-up, so a missing or unreadable file stops `serve`
//! (and fails `callbackd check`) instead of failing every call later.
//!
//! Verification: the PBX's certificate must chain to `tls_ca_file` (or, without it, to the
//! system's trust anchors, read with `rustls-native-certs`: `/etc/ssl/certs`, or the file
//! named by `SSL_CERT_FILE`) and name the host of `[sip] pbx` (a DNS name, or an IP
//! address in its subjectAltName). There is no way to switch verification off.

use crate::config::SipTls;
use base64::Engine;
use rsipstack::transport::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM section could not be decoded.
    #[error("{path}: bad PEM: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// A CA certificate is not a usable trust anchor.
    #[error("{path}: not a usable CA certificate: {source}")]
    Anchor {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The key file holds no private key in a form the SIP stack reads.
    #[error(
        "{path} holds no PKCS#8 (\"BEGIN PRIVATE KEY\") or PKCS#1 (\"BEGIN RSA PRIVATE KEY\") \
         key; convert it with `openssl pkcs8 -topk8 -nocrypt`"
    )]
    Key {
        /// The file.
        path: PathBuf,
    },
    /// No `tls_ca_file` and no usable system trust anchors.
    #[error("no tls_ca_file and no system trust anchors could be loaded ({0} errors)")]
    NoSystemRoots(usize),
}

/// Installs rustls's `ring` crypto provider for the whole process, unless one is already
/// installed. rsipstack, sqlx and reqwest all use rustls; were a second backend (aws-lc-rs)
/// ever linked, rustls could no longer choose and would panic at the first handshake, so
/// the choice is made here, explicitly, at start-up.
pub fn install_crypto_provider() {
    // An error means a provider is already installed: that one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS configuration rsipstack dials the PBX with: trust anchors (PEM) and, when
/// configured, the client certificate and key.
pub fn client_config(cfg: &SipTls) -> Result<TlsConfig, TlsError> {
    install_crypto_provider();
    let ca_certs = match &cfg.ca_file {
        Some(path) => {
            let pem = read(path)?;
            let certs = certificates(path, &pem)?;
            let mut store = rustls::RootCertStore::empty();
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|source| TlsError::Anchor { path: path.clone(), source })?;
            }
            pem
        }
        None => system_roots()?,
    };
    let (client_cert, client_key) = match &cfg.client {
        None => (None, None),
        Some((cert_path, key_path)) => {
            let cert = read(cert_path)?;
            certificates(cert_path, &cert)?;
            let key = read(key_path)?;
            match PrivateKeyDer::from_pem_slice(&key) {
                Ok(PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Pkcs1(_)) => {}
                Ok(_) | Err(_) => return Err(TlsError::Key { path: key_path.clone() }),
            }
            (Some(cert), Some(key))
        }
    };
    Ok(TlsConfig { ca_certs: Some(ca_certs), client_cert, client_key, ..Default::default() })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_path_buf(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The system's trust anchors as PEM (what rsipstack takes), leaving out any that rustls
/// cannot use (rsipstack would refuse the whole set for one of them).
fn system_roots() -> Result<Vec<u8>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut pem = Vec::new();
    for cert in found.certs {
        if rustls::RootCertStore::empty().add(cert.clone()).is_ok() {
            pem.extend_from_slice(to_pem(&cert).as_bytes());
        }
    }
    if pem.is_empty() {
        return Err(TlsError::NoSystemRoots(found.errors.len()));
    }
    Ok(pem)
}

fn to_pem(cert: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Why a test handshake with the PBX failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No TCP connection (refused, unreachable, timed out).
    #[error("cannot connect to {pbx}: {source}")]
    Connect {
        /// The PBX address.
        pbx: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake failed: the PBX's certificate (`invalid peer certificate: …`), ours,
    /// or the protocol.
    #[error("TLS handshake with {pbx} failed: {source}")]
    Handshake {
        /// The PBX address.
        pbx: String,
        /// Why (rustls's error inside).
        source: std::io::Error,
    },
    /// The settings themselves are unusable (bad host name, key, certificates).
    #[error("TLS settings for {pbx}: {reason}")]
    Settings {
        /// The PBX address.
        pbx: String,
        /// Why.
        reason: rustls::Error,
    },
}

/// Connects to `pbx` (`host:port`) and completes one TLS handshake with exactly the trust
/// anchors and client certificate rsipstack uses, then closes. rsipstack keeps the reason
/// a connection failed to itself (the INVITE just gets no answer), so the trunk runs this
/// at start-up and after a call over TLS got no response, to log the reason (e.g.
/// `invalid peer certificate: UnknownIssuer`). Blocking; bounded by `limit`.
pub fn probe(pbx: &str, cfg: &TlsConfig, limit: std::time::Duration) -> Result<(), ProbeError> {
    use std::net::ToSocketAddrs;
    let settings = |reason| ProbeError::Settings { pbx: pbx.to_owned(), reason };
    let connect = |source| ProbeError::Connect { pbx: pbx.to_owned(), source };
    let handshake = |source| ProbeError::Handshake { pbx: pbx.to_owned(), source };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_slice_iter(cfg.ca_certs.as_deref().unwrap_or_default()).flatten()
    {
        let _ = roots.add(cert);
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert).flatten().collect();
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| settings(rustls::Error::General("unreadable client key".into())))?;
            builder.with_client_auth_cert(chain, key).map_err(settings)?
        }
        _ => builder.with_no_client_auth(),
    };
    let host = pbx.rsplit_once(':').map_or(pbx, |(h, _)| h).trim_matches(['[', ']']);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| settings(rustls::Error::General(format!("bad server name {host:?}"))))?;
    let addr = pbx
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::ErrorKind::NotFound.into()))?;
    let mut sock = std::net::TcpStream::connect_timeout(&addr, limit).map_err(connect)?;
    sock.set_read_timeout(Some(limit)).map_err(connect)?;
    sock.set_write_timeout(Some(limit)).map_err(connect)?;
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(settings)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(handshake)?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(())
}

/// Runs [`probe`] off the async threads and logs its result: `warn` with the reason when
/// the handshake fails, `info` when it succeeds and `quiet` is false.
pub async fn check_pbx(pbx: String, cfg: TlsConfig, quiet: bool) {
    let limit = std::time::Duration::from_secs(5);
    let target = pbx.clone();
    match tokio::task::spawn_blocking(move || probe(&target, &cfg, limit)).await {
        Ok(Ok(())) if quiet => {}
        Ok(Ok(())) => tracing::info!(%pbx, "TLS to the PBX verified"),
        Ok(Err(e)) => tracing::warn!(%pbx, error = %e, "SIP over TLS to the PBX fails"),
        Err(e) => tracing::debug!(error = %e, "TLS check did not run"),
    }
}

/// The URI scheme of our requests: `sips` over TLS (RFC 3261 §19.1.2, §26.2: a `sips:`
/// Request-URI asks every hop to use TLS, and its Contact must be `sips:` too), `sip`
/// otherwise.
pub fn scheme(transport: crate::config::Transport) -> &'static str {
    match transport {
        crate::config::Transport::Tls => "sips",
        crate::config::Transport::Udp | crate::config::Transport::Tcp => "sip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        let cfg = SipTls { ca_file: Some(ca.clone()), client: None };
        assert!(matches!(client_config(&cfg), Err(TlsError::Read { path, .. }) if path == ca));
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let e = client_config(&cfg).expect_err("no certificate");
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn system_roots_are_found_and_re_encoded() {
        // Debian's ca-certificates is on every machine that runs the daemon.
        let Ok(pem) = system_roots() else {
            eprintln!("SKIPPED: no system trust anchors on this machine");
            return;
        };
        let n = CertificateDer::pem_slice_iter(&pem).filter(Result::is_ok).count();
        assert!(n > 10, "{n} anchors");
        let cfg = client_config(&SipTls::default()).expect("system roots");
        assert_eq!(cfg.ca_certs.as_deref(), Some(pem.as_slice()));
    }

    #[test]
    fn tls_uses_sips() {
        assert_eq!(scheme(crate::config::Transport::Tls), "sips");
        assert_eq!(scheme(crate::config::Transport::Udp), "sip");
    }
}
