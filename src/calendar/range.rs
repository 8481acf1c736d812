//! Time ranges within one local day ([`DayRange`]), their parsing and validation.

use std::fmt;
use std::str::FromStr;

/// Minutes in a day; the largest valid closing minute (24:00).
pub const MINUTES_PER_DAY: u16 = 1440;

/// A time range within one local day, minute resolution: `[start, end)`, end may be 24:00.
///
/// Invariant: `0 <= start < end <= 1440` (minutes since local midnight), so a `DayRange` is
/// never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DayRange {
    start: u16,
    end: u16,
}

/// Why a [`DayRange`] or a day's list of ranges is invalid. Messages are meant for operators.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RangeError {
    /// The text is not of the form `HH:MM-HH:MM`.
    #[error("expected HH:MM-HH:MM, got {input:?}")]
    Format {
        /// The rejected text.
        input: String,
    },
    /// One of the two times is not a valid clock time (hours 00-23, minutes 00-59, or 24:00 as
    /// closing time).
    #[error(
        "invalid time {time:?} in {input:?} (hours 00-23, minutes 00-59; \
         24:00 only as closing time)"
    )]
    InvalidTime {
        /// The offending `HH:MM` part.
        time: String,
        /// The whole rejected text.
        input: String,
    },
    /// A minute number is past the end of the day.
    #[error(
        "minute {minute} is past the end of the day (opening at most 1439, closing at most 1440)"
    )]
    MinuteOutOfRange {
        /// The offending minute number.
        minute: u16,
    },
    /// The closing time is before the opening time.
    #[error("closing time {} is before opening time {}", Hhmm(*.close), Hhmm(*.open))]
    CloseBeforeOpen {
        /// Opening minute.
        open: u16,
        /// Closing minute.
        close: u16,
    },
    /// Opening and closing time are equal.
    #[error("opening and closing time are both {} (empty range)", Hhmm(*.at))]
    Empty {
        /// The minute given as both opening and closing time.
        at: u16,
    },
    /// Two ranges of the same day overlap.
    #[error("ranges {first} and {second} overlap")]
    Overlap {
        /// The earlier of the two ranges.
        first: DayRange,
        /// The later of the two ranges.
        second: DayRange,
    },
}

/// Formats a minute-of-day as `HH:MM` (1440 as `24:00`).
struct Hhmm(u16);

impl fmt::Display for Hhmm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl DayRange {
    /// Creates the range `[start_minute, end_minute)` (minutes since local midnight).
    ///
    /// Requires `start_minute < end_minute <= 1440`.
    pub fn new(start_minute: u16, end_minute: u16) -> Result<DayRange, RangeError> {
        if start_minute >= MINUTES_PER_DAY {
            return Err(RangeError::MinuteOutOfRange { minute: start_minute });
        }
        if end_minute > MINUTES_PER_DAY {
            return Err(RangeError::MinuteOutOfRange { minute: end_minute });
        }
        if end_minute < start_minute {
            return Err(RangeError::CloseBeforeOpen { open: start_minute, close: end_minute });
        }
        if end_minute == start_minute {
            return Err(RangeError::Empty { at: start_minute });
        }
        Ok(DayRange { start: start_minute, end: end_minute })
    }

    /// Parses `"HH:MM-HH:MM"`: exactly two-digit hours (00-23) and minutes (00-59); the closing
    /// time may be `24:00`. No whitespace is accepted.
    ///
    /// `"16:00-08:00"` gives [`RangeError::CloseBeforeOpen`], `"08:00-08:00"`
    /// [`RangeError::Empty`], `"8:00-16:00"` [`RangeError::Format`], `"08:60-16:00"`
    /// [`RangeError::InvalidTime`].
    pub fn parse(s: &str) -> Result<DayRange, RangeError> {
        let format_error = || RangeError::Format { input: s.to_owned() };
        let b = s.as_bytes();
        if b.len() != 11 || b[2] != b':' || b[5] != b'-' || b[8] != b':' {
            return Err(format_error());
        }
        let digit_positions = [0, 1, 3, 4, 6, 7, 9, 10];
        if !digit_positions.iter().all(|&i| b[i].is_ascii_digit()) {
            return Err(format_error());
        }
        // All bytes checked above are ASCII, so these slices fall on char boundaries.
        let start = parse_clock(&s[0..5], false).ok_or_else(|| RangeError::InvalidTime {
            time: s[0..5].to_owned(),
            input: s.to_owned(),
        })?;
        let end = parse_clock(&s[6..11], true).ok_or_else(|| RangeError::InvalidTime {
            time: s[6..11].to_owned(),
            input: s.to_owned(),
        })?;
        DayRange::new(start, end)
    }

    /// Opening minute (since local midnight), `0..=1439`.
    pub fn start_minute(self) -> u16 {
        self.start
    }

    /// Closing minute (since local midnight, exclusive), `1..=1440`.
    pub fn end_minute(self) -> u16 {
        self.end
    }

    /// Whether minute `m` (since local midnight) lies in `[start, end)`.
    pub fn contains_minute(self, m: u16) -> bool {
        self.start <= m && m < self.end
    }

    /// The common part of two ranges, or `None` if they share no minute.
    pub fn intersect(self, other: DayRange) -> Option<DayRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(DayRange { start, end })
    }

    /// Whether the ranges share at least one minute (touching ranges do not overlap).
    pub fn overlaps(self, other: DayRange) -> bool {
        self.intersect(other).is_some()
    }
}

/// Parses a validated `HH:MM` of ASCII digits into minutes; `24:00` only if `allow_24`.
fn parse_clock(s: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if allow_24 => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl fmt::Display for DayRange {
    /// Formats as `HH:MM-HH:MM`, e.g. `08:00-16:00` or `00:00-24:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", Hhmm(self.start), Hhmm(self.end))
    }
}

impl FromStr for DayRange {
    type Err = RangeError;

    /// Same as [`DayRange::parse`].
    fn from_str(s: &str) -> Result<DayRange, RangeError> {
        DayRange::parse(s)
    }
}

/// Checks one day's list of ranges: no two may overlap (touching, like `08:00-12:00` and
/// `12:00-16:00`, is fine). Each [`DayRange`] is valid by construction.
///
/// Returns the list sorted by time, or [`RangeError::Overlap`] naming the first overlapping pair
/// (in time order).
pub fn normalize_ranges(ranges: &[DayRange]) -> Result<Vec<DayRange>, RangeError> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    // Sorted by start: if any two ranges overlap, some adjacent pair does.
    for pair in sorted.windows(2) {
        if let [first, second] = *pair {
            if first.overlaps(second) {
                return Err(RangeError::Overlap { first, second });
            }
        }
    }
    Ok(sorted)
}

/// Sorts ranges and merges overlapping ones into their union (touching ranges stay separate).
///
/// For a list accepted by [`normalize_ranges`] this is the same as sorting.
pub(crate) fn canonicalize(ranges: &mut Vec<DayRange>) {
    ranges.sort_unstable();
    let mut merged: Vec<DayRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match merged.last_mut() {
            Some(last) if last.end > r.start => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    *ranges = merged;
}
