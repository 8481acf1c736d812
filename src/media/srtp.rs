//! SRTP (RFC 3711) for an RTP leg: the AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32
//! suites of SDES (RFC 4568 §6.2).
//!
//! The transform itself (key derivation, AES counter mode, HMAC-SHA1, the rollover counter
//! and the replay window) is `rtc-srtp`'s (webrtc-rs, sans-I/O, with the `ring` backend
//! that rustls already uses). This module owns the key material and the two directions:
//! a [`Protector`] for what a leg sends (our key), an [`Unprotector`] for what it receives
//! (the far end's key). Each keeps per-SSRC state, so a far end that changes its SSRC
//! mid-call is still decrypted.
//!
//! - **Rollover counter**: the index of a packet is ROC × 2¹⁶ + SEQ (RFC 3711 §3.3.1); the
//!   ROC is advanced when the sequence number wraps, on both sides, from the sequence
//!   numbers alone.
//! - **Replay**: a received packet whose index was already accepted, or is older than the
//!   last [`REPLAY_WINDOW`] packets, is refused ([`SrtpError::Replay`]), as is one whose
//!   authentication tag does not verify ([`SrtpError::Auth`]); the leg drops both.
//! - **Keys** come from the operating system's CSPRNG (`ring`'s `SystemRandom`), are
//!   never formatted by `Debug`, and are zeroed when dropped.

use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCryptoProvider;
use rtc_srtp::option::srtp_replay_protection;
use rtc_srtp::protection_profile::ProtectionProfile;
use std::sync::{Arc, OnceLock};
use zeroize::Zeroize;

/// Packets the receiver's replay window spans (libsrtp's default; RFC 3711 asks for 64 at
/// least).
pub const REPLAY_WINDOW: usize = 128;
/// Master key length of the AES-128 suites, in bytes.
pub const KEY_LEN: usize = 16;
/// Master salt length, in bytes.
pub const SALT_LEN: usize = 14;

/// An SRTP crypto suite we offer and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`: 80-bit authentication tag (the usual one).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 32-bit authentication tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Every suite, in our order of preference.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The name in `a=crypto` lines.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite of an `a=crypto` name; `None` for suites we do not implement.
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes the authentication tag adds to each packet.
    pub fn tag_len(self) -> usize {
        self.profile().rtp_auth_tag_len()
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// A master key and master salt (16 + 14 bytes, the `inline:` key of RFC 4568). Its
/// `Debug` hides the bytes; it is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_LEN + SALT_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// A fresh key and salt from the operating system's CSPRNG.
    pub fn random() -> Result<MasterKey, SrtpError> {
        let mut k = [0u8; KEY_LEN + SALT_LEN];
        provider()?.random().fill(&mut k).map_err(SrtpError::Random)?;
        Ok(MasterKey(k))
    }

    /// Key ‖ salt as carried in SDP; `None` unless exactly 30 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        Some(MasterKey(bytes.try_into().ok()?))
    }

    /// Key ‖ salt.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn context(&self, suite: Suite, replay: bool) -> Result<Context, SrtpError> {
        let (key, salt) = self.0.split_at(KEY_LEN);
        let window = replay.then(|| srtp_replay_protection(REPLAY_WINDOW));
        Context::new(key, salt, suite.profile(), window, None, provider()?.crypto())
            .map_err(SrtpError::Transform)
    }
}

/// Why a packet could not be protected or unprotected, or a context not made.
#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    /// The authentication tag did not verify: a forged, damaged, or wrongly keyed packet.
    #[error("SRTP authentication failed")]
    Auth,
    /// The packet was already received, or is older than the replay window.
    #[error("SRTP replay refused (SSRC {ssrc:08x}, sequence {seq})")]
    Replay {
        /// Its SSRC.
        ssrc: u32,
        /// Its sequence number.
        seq: u16,
    },
    /// Anything else the transform refused (a packet too short, not RTP, the key limit).
    #[error("SRTP: {0}")]
    Transform(#[source] rtc_shared::error::Error),
    /// The random source failed.
    #[error("no random key: {0}")]
    Random(#[source] rtc_srtp::crypto::CryptoError),
    /// No crypto backend is built in (cannot happen with the `ring` feature).
    #[error("no SRTP crypto backend: {0}")]
    Backend(#[source] rtc_srtp::crypto::CryptoError),
}

impl From<rtc_shared::error::Error> for SrtpError {
    fn from(e: rtc_shared::error::Error) -> Self {
        match e {
            rtc_shared::error::Error::RtpFailedToVerifyAuthTag => SrtpError::Auth,
            rtc_shared::error::Error::SrtpSsrcDuplicated(ssrc, seq) => {
                SrtpError::Replay { ssrc, seq }
            }
            other => SrtpError::Transform(other),
        }
    }
}

/// The crypto backend, made once.
fn provider() -> Result<&'static Arc<dyn RTCCryptoProvider>, SrtpError> {
    static PROVIDER: OnceLock<Arc<dyn RTCCryptoProvider>> = OnceLock::new();
    if let Some(p) = PROVIDER.get() {
        return Ok(p);
    }
    let p = rtc_srtp::crypto::default_provider().map_err(SrtpError::Backend)?;
    Ok(PROVIDER.get_or_init(|| p))
}

/// Protects the packets a leg sends, with our master key.
pub struct Protector {
    ctx: Context,
    suite: Suite,
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protector").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl Protector {
    /// A sending context for `suite` keyed with `key`.
    pub fn new(suite: Suite, key: &MasterKey) -> Result<Protector, SrtpError> {
        Ok(Protector { ctx: key.context(suite, false)?, suite })
    }

    /// The SRTP packet for an RTP packet: the payload encrypted, the tag appended.
    pub fn protect(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        Ok(self.ctx.encrypt_rtp(rtp)?.to_vec())
    }
}

/// Authenticates and decrypts the packets a leg receives, with the far end's master key.
pub struct Unprotector {
    ctx: Context,
    suite: Suite,
}

impl std::fmt::Debug for Unprotector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unprotector").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl Unprotector {
    /// A receiving context for `suite` keyed with `key`, with replay protection.
    pub fn new(suite: Suite, key: &MasterKey) -> Result<Unprotector, SrtpError> {
        Ok(Unprotector { ctx: key.context(suite, true)?, suite })
    }

    /// The RTP packet inside an SRTP packet, once its tag verified and it is no replay.
    pub fn unprotect(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        Ok(self.ctx.decrypt_rtp(srtp)?.to_vec())
    }
}

#[cfg(test)]
mod tests;
