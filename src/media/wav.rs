//! Prompts: 8 kHz mono 16-bit PCM WAV files, read once with hound into shared samples.

use super::g711::Codec;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The only sample rate callbackd plays (G.711 is 8 kHz).
pub const SAMPLE_RATE: u32 = 8000;

/// The command that converts any audio file to the required format.
pub const CONVERT_HINT: &str = "convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`";

/// One prompt's audio: 8 kHz mono linear samples, shared by every call that plays it,
/// and its G.711 encoding in each codec, made once on first use and shared too.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The samples; cloning a `Prompt` clones the `Arc`, never the audio.
    pub samples: Arc<[i16]>,
    /// The encodings made so far (shared by every clone).
    encoded: Arc<Encoded>,
}

/// A prompt's encodings, each made once.
#[derive(Debug, Default)]
struct Encoded {
    pcma: OnceLock<Arc<[u8]>>,
    pcmu: OnceLock<Arc<[u8]>>,
}

impl PartialEq for Prompt {
    fn eq(&self, other: &Prompt) -> bool {
        self.samples == other.samples
    }
}

impl Eq for Prompt {}

impl Prompt {
    /// A prompt from samples already at 8 kHz (tests, generated tones).
    pub fn from_samples(samples: Vec<i16>) -> Prompt {
        Prompt { samples: samples.into(), encoded: Arc::default() }
    }

    /// The prompt in `codec`: whole 20 ms frames of 160 codes, the last one padded with
    /// silence. Encoded on the first call for each codec; later calls (every other call
    /// that plays the prompt) share it.
    pub fn encoded(&self, codec: Codec) -> Arc<[u8]> {
        let cell = match codec {
            Codec::Pcma => &self.encoded.pcma,
            Codec::Pcmu => &self.encoded.pcmu,
        };
        cell.get_or_init(|| {
            let mut codes = vec![codec.silence(); self.frames() * 160];
            codec.encode_into(&self.samples, &mut codes);
            codes.into()
        })
        .clone()
    }

    /// How long it plays.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// Number of 20 ms RTP frames (160 samples; the last one padded with silence).
    pub fn frames(&self) -> usize {
        self.samples.len().div_ceil(160)
    }
}

/// Why a prompt file cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// There is no such file.
    #[error("file not found")]
    Missing,
    /// The file exists but cannot be read.
    #[error("cannot read: {0}")]
    Unreadable(String),
    /// Not a RIFF/WAVE file, or a malformed one.
    #[error("not a WAV file ({0})")]
    NotWav(String),
    /// A WAV file, but not 16-bit integer PCM (e.g. 8-bit, 24-bit, float, μ-law, A-law).
    #[error("not 16-bit PCM ({0}); {CONVERT_HINT}")]
    NotPcm16(String),
    /// A sample rate other than 8000 Hz.
    #[error("sample rate is {0} Hz, not 8000 Hz; {CONVERT_HINT}")]
    NotRate8000(u32),
    /// More than one channel.
    #[error("{0} channels, not mono; {CONVERT_HINT}")]
    NotMono(u16),
    /// No samples at all.
    #[error("empty: the file has no samples")]
    Empty,
}

/// Reads a prompt file (the edge: file I/O), then [`parse`]s it.
pub fn load(path: &Path) -> Result<Prompt, PromptError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PromptError::Missing),
        Err(e) => Err(PromptError::Unreadable(e.to_string())),
    }
}

/// Parses WAV bytes and checks the format: 16-bit integer PCM, 8000 Hz, mono, non-empty.
/// Pure.
pub fn parse(bytes: &[u8]) -> Result<Prompt, PromptError> {
    let reader = match hound::WavReader::new(std::io::Cursor::new(bytes)) {
        Ok(r) => r,
        Err(hound::Error::Unsupported) => {
            return Err(PromptError::NotPcm16(
                "unsupported encoding, e.g. μ-law, A-law or ADPCM".to_owned(),
            ));
        }
        Err(e) => return Err(PromptError::NotWav(e.to_string())),
    };
    let spec = reader.spec();
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => {}
        (hound::SampleFormat::Int, bits) => {
            return Err(PromptError::NotPcm16(format!("{bits}-bit integer samples")));
        }
        (hound::SampleFormat::Float, bits) => {
            return Err(PromptError::NotPcm16(format!("{bits}-bit float samples")));
        }
    }
    if spec.sample_rate != SAMPLE_RATE {
        return Err(PromptError::NotRate8000(spec.sample_rate));
    }
    if spec.channels != 1 {
        return Err(PromptError::NotMono(spec.channels));
    }
    let samples: Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
    let samples = samples.map_err(|e| PromptError::NotWav(e.to_string()))?;
    if samples.is_empty() {
        return Err(PromptError::Empty);
    }
    Ok(Prompt::from_samples(samples))
}

/// Writes `samples` as a WAV file of the given format (tests and tools).
pub fn write(
    path: &Path,
    samples: &[i16],
    sample_rate: u32,
    channels: u16,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in samples {
        w.write_sample(*s)?;
    }
    w.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(spec: hound::WavSpec, samples: &[i32]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).expect("writer");
        for s in samples {
            if spec.sample_format == hound::SampleFormat::Float {
                w.write_sample(*s as f32).expect("write");
            } else {
                w.write_sample(*s).expect("write");
            }
        }
        w.finalize().expect("finalize");
        buf.into_inner()
    }

    fn spec(rate: u32, channels: u16, bits: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn a_good_prompt_is_read() {
        let p = parse(&wav(spec(8000, 1, 16), &[1, -2, 300])).expect("ok");
        assert_eq!(&*p.samples, &[1, -2, 300]);
        assert_eq!(p.frames(), 1);
        assert_eq!(Prompt::from_samples(vec![0; 8000]).duration(), Duration::from_secs(1));
        assert_eq!(Prompt::from_samples(vec![0; 161]).frames(), 2);
    }

    #[test]
    fn a_prompt_is_encoded_once_per_codec_in_whole_frames() {
        let p = Prompt::from_samples(vec![1000; 161]);
        let copy = p.clone();
        for codec in [Codec::Pcma, Codec::Pcmu] {
            let codes = p.encoded(codec);
            assert_eq!(codes.len(), 320, "two frames");
            assert!(codes[..161].iter().all(|c| *c == codec.encode(1000)));
            assert!(codes[161..].iter().all(|c| *c == codec.silence()), "padded with silence");
            assert!(Arc::ptr_eq(&codes, &copy.encoded(codec)), "made once, shared by clones");
        }
        assert_ne!(p.encoded(Codec::Pcma), p.encoded(Codec::Pcmu));
    }

    #[test]
    fn each_wrong_format_names_its_reason() {
        assert_eq!(parse(&wav(spec(44100, 1, 16), &[0])), Err(PromptError::NotRate8000(44100)));
        assert_eq!(parse(&wav(spec(8000, 2, 16), &[0, 0])), Err(PromptError::NotMono(2)));
        assert!(matches!(parse(&wav(spec(8000, 1, 8), &[0])), Err(PromptError::NotPcm16(_))));
        let float =
            hound::WavSpec { sample_format: hound::SampleFormat::Float, ..spec(8000, 1, 32) };
        assert!(
            matches!(parse(&wav(float, &[0])), Err(PromptError::NotPcm16(m)) if m.contains("float"))
        );
        assert_eq!(parse(&wav(spec(8000, 1, 16), &[])), Err(PromptError::Empty));
        assert!(matches!(parse(b"ID3 this is an mp3"), Err(PromptError::NotWav(_))));
        let msg = PromptError::NotRate8000(44100).to_string();
        assert!(msg.contains("44100 Hz") && msg.contains("sox in.wav -r 8000 -c 1 -b 16"), "{msg}");
    }

    #[test]
    fn a_mulaw_wav_is_not_pcm() {
        // A WAVE_FORMAT_MULAW (7) header with one sample.
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(4 + 8 + 18 + 8 + 1u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&18u32.to_le_bytes());
        for v in [7u16, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        for v in [1u16, 8, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(b"data");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(0xFF);
        assert!(matches!(parse(&b), Err(PromptError::NotPcm16(_))), "{:?}", parse(&b));
    }

    #[test]
    fn a_missing_file_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(&dir.path().join("nope.wav")), Err(PromptError::Missing));
        let f = dir.path().join("ok.wav");
        write(&f, &[5; 200], 8000, 1).expect("write");
        assert_eq!(load(&f).expect("load").samples.len(), 200);
    }
}
