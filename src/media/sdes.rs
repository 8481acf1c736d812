//! SDES key exchange (RFC 4568): the `a=crypto` lines of our offer and the choice of keys
//! from the answer. Pure, except for [`Offer::new`], which draws fresh keys.
//!
//! Our offer carries one line per suite, each with its own fresh key, in order of
//! preference:
//!
//! ```text
//! a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<base64 of 16-byte key ‖ 14-byte salt>
//! a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:<…>
//! ```
//!
//! on an `RTP/SAVP` media line when SRTP is required, on `RTP/AVP` when it is optional
//! (the "best effort" offer Asterisk, FreeSWITCH and baresip accept: an answerer that
//! knows SDES picks a line, one that does not ignores the attribute and answers plain
//! RTP). The answer accepts one line by echoing its tag and suite with the answerer's own
//! key (§6.1): we send with our key of that line, and receive with theirs.

use super::srtp::{MasterKey, Protector, SrtpError, Suite, Unprotector};
use crate::config::SrtpMode;
use base64::Engine;

/// One `a=crypto` attribute: tag, suite, and the (single) master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag that pairs an answer with an offered line.
    pub tag: u32,
    /// The suite.
    pub suite: Suite,
    /// Key ‖ salt.
    pub key: MasterKey,
}

/// Why an `a=crypto` line or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    /// Not `TAG SUITE inline:KEY[|LIFETIME][|MKI:LEN] [SESSION-PARAMS]`.
    #[error("malformed a=crypto line")]
    Malformed,
    /// A suite we do not implement (e.g. an AEAD or 256-bit one).
    #[error("unsupported SRTP suite {0}")]
    UnsupportedSuite(String),
    /// The line needs something we do not do: several keys, an MKI, or session
    /// parameters such as `UNENCRYPTED_SRTP` (RFC 4568 §6.1 says to refuse such a line).
    #[error("unsupported a=crypto parameter {0}")]
    Unsupported(String),
    /// SRTP is required and the answer accepted none of our lines.
    #[error("SRTP is required but the answer accepts none of the offered a=crypto lines")]
    Refused,
    /// The answer names a tag we did not offer, or changes its suite.
    #[error("the answer's a=crypto tag {0} does not match an offered line")]
    Mismatch(u32),
}

impl Crypto {
    /// Parses the value of an `a=crypto:` attribute (the text after `crypto:`).
    pub fn parse(value: &str) -> Result<Crypto, SdesError> {
        let mut fields = value.split_whitespace();
        let (Some(tag), Some(suite), Some(params)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(SdesError::Malformed);
        };
        if let Some(session_param) = fields.next() {
            return Err(SdesError::Unsupported(session_param.to_owned()));
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::Malformed)?;
        if tag > 999_999_999 {
            return Err(SdesError::Malformed);
        }
        let suite =
            Suite::from_name(suite).ok_or_else(|| SdesError::UnsupportedSuite(suite.to_owned()))?;
        if params.contains(';') {
            return Err(SdesError::Unsupported("several keys".to_owned()));
        }
        let inline = params.strip_prefix("inline:").ok_or(SdesError::Malformed)?;
        let mut parts = inline.split('|');
        let b64 = parts.next().unwrap_or_default();
        for part in parts {
            // A lifetime (`2^31` or a number) is a limit we never reach in one call; an MKI
            // would have to be carried in every packet.
            let lifetime = part.strip_prefix("2^").unwrap_or(part);
            if part.contains(':') || lifetime.parse::<u64>().is_err() {
                return Err(SdesError::Unsupported(format!("|{part}")));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SdesError::Malformed)?;
        let key = MasterKey::from_bytes(&bytes).ok_or(SdesError::Malformed)?;
        Ok(Crypto { tag, suite, key })
    }

    /// The attribute line, without the line end: `a=crypto:TAG SUITE inline:KEY`.
    pub fn line(&self) -> String {
        format!("a=crypto:{}", self.value())
    }

    /// The attribute's value (after `a=crypto:`): `TAG SUITE inline:KEY`.
    pub fn value(&self) -> String {
        let key = base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes());
        format!("{} {} inline:{key}", self.tag, self.suite.name())
    }
}

/// What our offer proposed: the mode and one keyed line per suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Optional or required (an `off` trunk makes no offer).
    pub required: bool,
    /// Our lines, tags 1, 2, … in order of preference.
    pub lines: Vec<Crypto>,
}

impl Offer {
    /// Fresh keys for one call under `mode`; `None` when SRTP is off.
    pub fn new(mode: SrtpMode) -> Result<Option<Offer>, SrtpError> {
        let required = match mode {
            SrtpMode::Off => return Ok(None),
            SrtpMode::Optional => false,
            SrtpMode::Required => true,
        };
        let lines = Suite::ALL
            .into_iter()
            .zip(1..)
            .map(|(suite, tag)| Ok(Crypto { tag, suite, key: MasterKey::random()? }))
            .collect::<Result<_, SrtpError>>()?;
        Ok(Some(Offer { required, lines }))
    }

    /// The transport protocol of our `m=` line.
    pub fn profile(&self) -> &'static str {
        if self.required { "RTP/SAVP" } else { "RTP/AVP" }
    }
}

/// The two keys of a leg: ours for sending, the far end's for receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The accepted suite.
    pub suite: Suite,
    /// Our master key (the offered line's).
    pub local: MasterKey,
    /// The far end's master key (from the answer).
    pub remote: MasterKey,
}

impl Keys {
    /// The contexts for the two directions.
    pub fn contexts(&self) -> Result<(Protector, Unprotector), SrtpError> {
        Ok((Protector::new(self.suite, &self.local)?, Unprotector::new(self.suite, &self.remote)?))
    }
}

/// Chooses the leg's keys from the answer's `a=crypto` values (see
/// [`super::sdp::audio_crypto`]).
///
/// | offer | answer | result |
/// |---|---|---|
/// | none (off) | anything | plain RTP |
/// | optional or required | a line with an offered tag and its suite | SRTP with it |
/// | optional | no `a=crypto` at all | plain RTP |
/// | required | no `a=crypto` at all | [`SdesError::Refused`] |
/// | either | only unusable or unmatched lines | the first line's error |
pub fn negotiate(offer: Option<&Offer>, answer: &[&str]) -> Result<Option<Keys>, SdesError> {
    let Some(offer) = offer else { return Ok(None) };
    let mut first_error = None;
    for value in answer {
        let theirs = match Crypto::parse(value) {
            Ok(c) => c,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        match offer.lines.iter().find(|ours| ours.tag == theirs.tag && ours.suite == theirs.suite) {
            Some(ours) => {
                return Ok(Some(Keys {
                    suite: ours.suite,
                    local: ours.key.clone(),
                    remote: theirs.key,
                }));
            }
            None => {
                first_error.get_or_insert(SdesError::Mismatch(theirs.tag));
            }
        }
    }
    match (first_error, offer.required) {
        (Some(e), _) => Err(e),
        (None, true) => Err(SdesError::Refused),
        (None, false) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4568 §5.1's example key.
    const EXAMPLE: &str = "1 AES_CM_128_HMAC_SHA1_80 \
                           inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
    const PLAIN_KEY: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn parses_and_formats_a_line() {
        let c = Crypto::parse(PLAIN_KEY).expect("ok");
        assert_eq!((c.tag, c.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_eq!(c.line(), format!("a=crypto:{PLAIN_KEY}"));
        let with_lifetime = Crypto::parse(&format!("{PLAIN_KEY}|2^31")).expect("lifetime ok");
        assert_eq!(with_lifetime.key, c.key);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert_eq!(Crypto::parse(EXAMPLE), Err(SdesError::Unsupported("|1:4".into())));
        assert_eq!(
            Crypto::parse(&format!("{PLAIN_KEY} UNENCRYPTED_SRTP")),
            Err(SdesError::Unsupported("UNENCRYPTED_SRTP".into()))
        );
        assert!(matches!(
            Crypto::parse("1 AEAD_AES_128_GCM inline:AAAA"),
            Err(SdesError::UnsupportedSuite(_))
        ));
        assert_eq!(Crypto::parse("1 AES_CM_128_HMAC_SHA1_80"), Err(SdesError::Malformed));
        assert_eq!(
            Crypto::parse(
                "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
            ),
            Err(SdesError::Malformed)
        );
        // 24 bytes, not 30.
        assert_eq!(
            Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhc"),
            Err(SdesError::Malformed)
        );
    }

    #[test]
    fn offer_has_fresh_keys_per_suite_and_the_right_profile() {
        assert_eq!(Offer::new(SrtpMode::Off).expect("ok"), None);
        let o = Offer::new(SrtpMode::Optional).expect("ok").expect("offer");
        assert_eq!(o.profile(), "RTP/AVP");
        assert_eq!(o.lines.len(), 2);
        assert_ne!(o.lines[0].key, o.lines[1].key);
        assert_eq!((o.lines[0].tag, o.lines[1].tag), (1, 2));
        let r = Offer::new(SrtpMode::Required).expect("ok").expect("offer");
        assert_eq!(r.profile(), "RTP/SAVP");
        assert_ne!(r.lines[0].key, o.lines[0].key);
        // What we offer parses back.
        for c in &r.lines {
            let line = c.line();
            assert_eq!(&Crypto::parse(line.trim_start_matches("a=crypto:")).expect("ok"), c);
        }
    }

    #[test]
    fn negotiation_follows_the_table() {
        let optional = Offer::new(SrtpMode::Optional).expect("ok");
        let required = Offer::new(SrtpMode::Required).expect("ok");
        let answer_32 = "2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        // Off: nothing, whatever the answer says.
        assert_eq!(negotiate(None, &[answer_32]), Ok(None));
        // A matching line: our key of that tag, theirs from the answer.
        for offer in [&optional, &required] {
            let offer = offer.as_ref().expect("offer");
            let keys = negotiate(Some(offer), &[answer_32]).expect("ok").expect("keys");
            assert_eq!(keys.suite, Suite::AesCm128HmacSha1_32);
            assert_eq!(keys.local, offer.lines[1].key);
            assert_eq!(keys.remote, Crypto::parse(answer_32).expect("ok").key);
        }
        // No crypto in the answer.
        assert_eq!(negotiate(optional.as_ref(), &[]), Ok(None));
        assert_eq!(negotiate(required.as_ref(), &[]), Err(SdesError::Refused));
        // A tag we never offered, or tag 1 with the other suite.
        let wrong = "7 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        assert_eq!(negotiate(optional.as_ref(), &[wrong]), Err(SdesError::Mismatch(7)));
        let swapped = "1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        assert_eq!(negotiate(required.as_ref(), &[swapped]), Err(SdesError::Mismatch(1)));
        // A usable line after an unusable one wins.
        assert!(negotiate(required.as_ref(), &[EXAMPLE, answer_32]).expect("ok").is_some());
    }

    #[test]
    fn negotiated_keys_make_working_contexts_in_both_directions() {
        let offer = Offer::new(SrtpMode::Required).expect("ok").expect("offer");
        // The far end answers line 1 with its own key.
        let theirs = Crypto {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::random().expect("k"),
        };
        let value = theirs.line();
        let keys = negotiate(Some(&offer), &[value.trim_start_matches("a=crypto:")])
            .expect("ok")
            .expect("keys");
        let (mut our_tx, mut our_rx) = keys.contexts().expect("contexts");
        let mut far_tx = Protector::new(theirs.suite, &theirs.key).expect("ctx");
        let mut far_rx = Unprotector::new(offer.lines[0].suite, &offer.lines[0].key).expect("ctx");
        let packet = [0x80, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0xd5, 0xd5, 0xd5, 0xd5];
        let sent = our_tx.protect(&packet).expect("protect");
        assert_eq!(far_rx.unprotect(&sent).expect("far end decrypts"), packet);
        let back = far_tx.protect(&packet).expect("protect");
        assert_eq!(our_rx.unprotect(&back).expect("we decrypt"), packet);
    }
}
