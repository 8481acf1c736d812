//! The languages callbackd speaks in: to patients (prompts, SMS, the patient page) and to
//! supervisors (`callbackd report --lang`). Each speaker keeps its words as one table per
//! language chosen by a [`Lang`] (`match lang { Lang::Fi => &FI, … }`); the words they
//! share, the weekdays' short names, are here.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A patient-facing language (Finland's two national languages and English).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Finnish.
    Fi,
    /// Swedish.
    Sv,
    /// English.
    En,
}

impl Lang {
    /// Every language, in the order prompts and templates are listed.
    pub const ALL: [Lang; 3] = [Lang::Fi, Lang::Sv, Lang::En];

    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fi => "fi",
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The short name of a weekday, 0 = Monday (`ma`, `mån`, `Mon`); out of range reads
    /// as Sunday.
    pub fn weekday(self, monday_zero: usize) -> &'static str {
        let names = match self {
            Lang::Fi => ["ma", "ti", "ke", "to", "pe", "la", "su"],
            Lang::Sv => ["mån", "tis", "ons", "tors", "fre", "lör", "sön"],
            Lang::En => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        };
        names[monday_zero.min(6)]
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A language code that is not one of `fi`, `sv`, `en`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?}, expected one of fi, sv, en")]
pub struct UnknownLang(pub String);

impl FromStr for Lang {
    type Err = UnknownLang;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fi" => Ok(Lang::Fi),
            "sv" => Ok(Lang::Sv),
            "en" => Ok(Lang::En),
            other => Err(UnknownLang(other.to_owned())),
        }
    }
}
