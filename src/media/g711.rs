//! G.711 (ITU-T G.711) μ-law and A-law: 16-bit linear PCM ↔ 8-bit codes. Pure.
//!
//! The segment algorithms of the ITU reference (as in Sun's public-domain `g711.c`):
//! μ-law with bias 0x84 and clipping at 32635, A-law on the 13 most significant bits with
//! even-bit inversion (XOR 0x55).

/// The two G.711 codecs callbackd offers in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A-law (`PCMA/8000`, static payload type 8), the European default.
    Pcma,
    /// μ-law (`PCMU/8000`, static payload type 0).
    Pcmu,
}

impl Codec {
    /// The static RTP payload type (RFC 3551): 8 for PCMA, 0 for PCMU.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcma => 8,
            Codec::Pcmu => 0,
        }
    }

    /// The codec of a static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            8 => Some(Codec::Pcma),
            0 => Some(Codec::Pcmu),
            _ => None,
        }
    }

    /// The code of digital silence: 0xD5 (A-law) or 0xFF (μ-law).
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcma => 0xD5,
            Codec::Pcmu => 0xFF,
        }
    }

    /// Encodes one sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcma => alaw_encode(sample),
            Codec::Pcmu => ulaw_encode(sample),
        }
    }

    /// Decodes one code.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Codec::Pcma => alaw_decode(code),
            Codec::Pcmu => ulaw_decode(code),
        }
    }

    /// Encodes `samples` into `out` (same length; extra `out` bytes are left alone).
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) {
        for (o, s) in out.iter_mut().zip(samples) {
            *o = self.encode(*s);
        }
    }

    /// Re-encodes `codes` of codec `from` as codec `self`, in place.
    pub fn transcode_from(self, from: Codec, codes: &mut [u8]) {
        if from != self {
            for c in codes {
                *c = self.encode(from.decode(*c));
            }
        }
    }

    /// The SDP encoding name (`PCMA`, `PCMU`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcma => "PCMA",
            Codec::Pcmu => "PCMU",
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Linear → μ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // pcm >> 7 is in 1..=255: the exponent is the position of its highest set bit.
    let top = ((pcm >> 7) & 0xFF) as u8;
    let exponent = 7 - top.leading_zeros() as i32;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// μ-law → linear.
pub fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS }) as i16
}

/// Upper ends of the A-law segments (13-bit magnitude).
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Linear → A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let Some(seg) = ALAW_SEG_END.iter().position(|&end| pcm <= end) else {
        return 0x7F ^ mask;
    };
    let mantissa = if seg < 2 { (pcm >> 1) & 0x0F } else { (pcm >> seg) & 0x0F };
    (((seg as i32) << 4) as u8 | mantissa as u8) ^ mask
}

/// A-law → linear.
pub fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xCE), 988);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xFA), 1008);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            // μ-law has two zeros (0xFF and 0x7F); both decode to 0, which encodes to 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected, "μ-law {code:#04x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_segment_step() {
        for x in i16::MIN..=i16::MAX {
            let x32 = i32::from(x);
            // Each segment doubles the step; the error is at most about 1/32 of the value
            // (plus the smallest step near zero), and clipped values may lose a bit more.
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            let bound = if x32.abs() > 32124 { 644 } else { x32.abs() / 32 + 16 };
            assert!((u - x32).abs() <= bound, "μ-law {x} -> {u}");
            let a = i32::from(alaw_decode(alaw_encode(x)));
            let bound = if x32.abs() > 32256 { 512 } else { x32.abs() / 32 + 16 };
            assert!((a - x32).abs() <= bound, "A-law {x} -> {a}");
            // Monotonic: the sign is kept.
            assert!(u.signum() * x32.signum() >= 0 && a.signum() * x32.signum() >= 0);
        }
    }

    #[test]
    fn transcoding_goes_through_linear() {
        let mut codes = [Codec::Pcma.encode(1000), Codec::Pcma.silence()];
        Codec::Pcmu.transcode_from(Codec::Pcma, &mut codes);
        // A-law silence is +8, the smallest μ-law step above zero.
        assert_eq!(codes, [ulaw_encode(1008), 0xFE]);
        assert_eq!(ulaw_encode(1008), 0xCE);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(101), None);
    }
}
