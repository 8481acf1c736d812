//! SMS templates: placeholders, rendering and the length of a message in SMS parts.
//!
//! Pure. A template is text with `{name}` placeholders; `{{` and `}}` are literal braces.
//! Length is counted the way the network does: GSM 03.38 (7-bit) when every character is
//! in the GSM alphabet (the extension characters `^{}\[~]|€` take two septets), otherwise
//! UCS-2 (UTF-16 code units). One part holds 160 septets or 70 UCS-2 units; a concatenated
//! message loses room for its header: 153 or 67 per part.

use std::collections::BTreeMap;
use std::fmt;

/// The three kinds of SMS callbackd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// "We will call you around …", when a request is accepted.
    Notice,
    /// "We could not reach you", after the last failed attempt or at expiry.
    Unreachable,
    /// A survey link, a configured delay after a connected callback (consent required).
    Feedback,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Notice, Kind::Unreachable, Kind::Feedback];

    /// The stored name (also the `kind` metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Notice => "notice",
            Kind::Unreachable => "unreachable",
            Kind::Feedback => "feedback",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The placeholders a template of this kind may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Kind::Notice => &["service", "number", "date", "from", "to", "late", "link"],
            Kind::Unreachable => &["service", "number"],
            Kind::Feedback => &["service", "number", "link"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without its `}`.
    #[error("unclosed `{{` at character {0} (write `{{{{` for a literal brace)")]
    Unclosed(usize),
    /// `}` without a `{`.
    #[error("unmatched `}}` at character {0} (write `}}}}` for a literal brace)")]
    Unmatched(usize),
    /// A placeholder this kind of message does not know.
    #[error("unknown placeholder {{{name}}}; {kind} messages may use {allowed}")]
    Unknown {
        /// The placeholder.
        name: String,
        /// The message kind.
        kind: Kind,
        /// The allowed placeholders, comma-separated.
        allowed: String,
    },
    /// Empty text.
    #[error("the message is empty")]
    Empty,
}

impl Template {
    /// Parses `src` as a template of `kind`.
    pub fn parse(src: &str, kind: Kind) -> Result<Template, TemplateError> {
        if src.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let chars: Vec<char> = src.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    text.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    text.push('}');
                    i += 2;
                }
                '{' => {
                    let Some(len) = chars[i + 1..].iter().position(|c| *c == '}') else {
                        return Err(TemplateError::Unclosed(i + 1));
                    };
                    let name: String = chars[i + 1..i + 1 + len].iter().collect();
                    let name = name.trim().to_owned();
                    if !kind.placeholders().contains(&name.as_str()) {
                        return Err(TemplateError::Unknown {
                            name,
                            kind,
                            allowed: kind
                                .placeholders()
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(name));
                    i += len + 2;
                }
                '}' => return Err(TemplateError::Unmatched(i + 1)),
                c => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// True when the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(v) if v == name))
    }

    /// Fills in the placeholders (a missing value renders as nothing).
    pub fn render(&self, values: &BTreeMap<&str, String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(values.get(v.as_str()).map_or("", String::as_str)),
            }
        }
        out
    }
}

/// How a message is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, 7 bits a character.
    Gsm7,
    /// UCS-2, 16 bits a unit.
    Ucs2,
}

/// The GSM 03.38 default alphabet (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (two septets each: escape + character).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// The encoding of `text` and its length in that encoding's units (septets or UTF-16 units).
pub fn measure(text: &str) -> (Encoding, usize) {
    let mut septets = 0;
    for c in text.chars() {
        if GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENDED.contains(c) {
            septets += 2;
        } else {
            return (Encoding::Ucs2, text.encode_utf16().count());
        }
    }
    (Encoding::Gsm7, septets)
}

/// How many SMS parts `text` takes.
pub fn parts(text: &str) -> usize {
    let (enc, len) = measure(text);
    let (single, multi) = match enc {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    };
    if len <= single { 1 } else { len.div_ceil(multi) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finnish_and_swedish_letters_are_gsm7_but_s_caron_is_not() {
        assert_eq!(measure("Hyvää päivää, Åbo"), (Encoding::Gsm7, 17));
        assert_eq!(measure("Šakki").0, Encoding::Ucs2);
        assert_eq!(measure("10:30–11:30").0, Encoding::Ucs2, "en dash is not GSM-7");
        assert_eq!(measure("a€b"), (Encoding::Gsm7, 4), "the euro sign takes two septets");
    }

    #[test]
    fn parts_follow_the_concatenation_limits() {
        assert_eq!(parts(&"a".repeat(160)), 1);
        assert_eq!(parts(&"a".repeat(161)), 2);
        assert_eq!(parts(&"a".repeat(306)), 2);
        assert_eq!(parts(&"a".repeat(307)), 3);
        assert_eq!(parts(&"š".repeat(70)), 1);
        assert_eq!(parts(&"š".repeat(71)), 2);
        assert_eq!(parts(&"š".repeat(134)), 2);
        assert_eq!(parts(&"š".repeat(135)), 3);
    }

    #[test]
    fn placeholders_are_checked_per_kind_and_rendered() {
        let t = Template::parse("Soitamme klo {from}-{to} {{ok}}", Kind::Notice).expect("valid");
        let mut v = BTreeMap::new();
        v.insert("from", "10:30".to_owned());
        v.insert("to", "11:30".to_owned());
        assert_eq!(t.render(&v), "Soitamme klo 10:30-11:30 {ok}");
        assert!(t.uses("from") && !t.uses("service"));
        let e = Template::parse("{link}", Kind::Unreachable).expect_err("no link in unreachable");
        assert!(e.to_string().contains("unknown placeholder {link}"), "{e}");
        assert!(Template::parse("{link}", Kind::Notice).is_ok(), "the patient page's link");
        assert!(matches!(
            Template::parse("a {from", Kind::Notice),
            Err(TemplateError::Unclosed(3))
        ));
        assert!(matches!(Template::parse("a } b", Kind::Notice), Err(TemplateError::Unmatched(3))));
        assert_eq!(Template::parse("  ", Kind::Feedback), Err(TemplateError::Empty));
    }
}
