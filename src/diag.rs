//! Located diagnostics: every configuration or dialplan problem is reported as
//! `file:line:col: message`, and a file reports all of its problems at once.
//!
//! Pure: turns byte spans from the TOML parser into 1-based line and column numbers.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the operator named it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column in characters; 0 together with `line == 0`.
    pub col: usize,
    /// What is wrong, in words an operator understands.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a byte span of `src`.
    pub fn at(
        file: &Path,
        src: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = match span {
            Some(span) => line_col(src, span.start),
            None => (1, 1),
        };
        Diagnostic { file: file.to_path_buf(), line, col, message: message.into() }
    }

    /// A problem with the whole file (unreadable, missing).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic { file: file.to_path_buf(), line: 0, col: 0, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
        }
    }
}

/// 1-based (line, column) of a byte offset; the column counts characters, not bytes.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Turns a `toml` error into a located diagnostic, keeping only its first message line
/// (the parser's multi-line rendering repeats the file excerpt, which we print ourselves).
pub fn from_toml(file: &Path, src: &str, err: &toml::de::Error) -> Diagnostic {
    let message = err.message().trim().replace('\n', " ");
    Diagnostic::at(file, src, err.span(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_characters() {
        let src = "a = 1\nnäme = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // "nä" is 3 bytes; offset 9 is the 'm'
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 999), (3, 1));
    }

    #[test]
    fn display_is_file_line_col_message() {
        let d = Diagnostic::at(Path::new("d/x.toml"), "a\nbc", Some(3..4), "bad");
        assert_eq!(d.to_string(), "d/x.toml:2:2: bad");
        let w = Diagnostic::whole_file(Path::new("x.toml"), "cannot read");
        assert_eq!(w.to_string(), "x.toml: cannot read");
    }
}

/// A parsed TOML document whose keys are deserialized one by one, so that a problem in one
/// key does not hide the problems in the others.
///
/// Syntax errors are all collected (the parser recovers); each key is then deserialized on
/// its own, at the top level or inside a [`Section`]; keys nobody asked for are reported
/// when the section is closed ([`TomlDoc::close`]) or the document finished
/// ([`TomlDoc::finish`]).
#[derive(Debug)]
pub struct TomlDoc<'a> {
    file: &'a Path,
    src: &'a str,
    root: Section<'a>,
    diags: Vec<Diagnostic>,
}

/// One table of a [`TomlDoc`] (the root, or a `[section]`), with the keys asked for so far.
#[derive(Debug)]
pub struct Section<'a> {
    /// Dotted name used in messages (`hours`); empty for the root.
    path: String,
    table: toml::de::DeTable<'a>,
    span: Range<usize>,
    taken: Vec<String>,
}

impl<'a> Section<'a> {
    /// True when the table has `key` (whether or not it was well-formed).
    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// The table's keys, in file order (for tables whose keys are names, like `[teams]`).
    pub fn keys(&self) -> Vec<String> {
        self.table.iter().map(|(k, _)| k.get_ref().to_string()).collect()
    }

    /// The table's byte span in the source.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    fn qualified(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn value(&self, key: &str) -> Option<&toml::Spanned<toml::de::DeValue<'a>>> {
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
    }
}

impl<'a> TomlDoc<'a> {
    /// Parses `src`, recording every syntax error.
    pub fn parse(file: &'a Path, src: &'a str) -> Self {
        let (table, errors) = toml::de::DeTable::parse_recoverable(src);
        let diags = errors.iter().map(|e| from_toml(file, src, e)).collect();
        let span = table.span();
        let root =
            Section { path: String::new(), table: table.into_inner(), span, taken: Vec::new() };
        TomlDoc { file, src, root, diags }
    }

    /// Records a problem at a byte span.
    pub fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at(self.file, self.src, span, message));
    }

    fn take<T: serde::Deserialize<'a>>(
        diags: &mut Vec<Diagnostic>,
        file: &Path,
        src: &str,
        section: &mut Section<'a>,
        key: &str,
        required: bool,
    ) -> Option<T> {
        section.taken.push(key.to_owned());
        let name = section.qualified(key);
        let Some(value) = section.value(key).cloned() else {
            if required {
                let at = if section.path.is_empty() { 0..0 } else { section.span.clone() };
                diags.push(Diagnostic::at(
                    file,
                    src,
                    Some(at),
                    format!("missing required key `{name}`"),
                ));
            }
            return None;
        };
        match T::deserialize(toml::de::ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let d = from_toml(file, src, &e);
                diags.push(Diagnostic { message: format!("`{name}`: {}", d.message), ..d });
                None
            }
        }
    }

    /// Deserializes an optional top-level key; `None` when absent or malformed (the
    /// problem is recorded).
    pub fn optional<T: serde::Deserialize<'a>>(&mut self, key: &str) -> Option<T> {
        Self::take(&mut self.diags, self.file, self.src, &mut self.root, key, false)
    }

    /// Deserializes a required top-level key, recording a problem when it is missing.
    pub fn required<T: serde::Deserialize<'a>>(&mut self, key: &str) -> Option<T> {
        Self::take(&mut self.diags, self.file, self.src, &mut self.root, key, true)
    }

    /// Deserializes an optional key of a section.
    pub fn get<T: serde::Deserialize<'a>>(
        &mut self,
        section: &mut Section<'a>,
        key: &str,
    ) -> Option<T> {
        Self::take(&mut self.diags, self.file, self.src, section, key, false)
    }

    /// Deserializes a required key of a section.
    pub fn need<T: serde::Deserialize<'a>>(
        &mut self,
        section: &mut Section<'a>,
        key: &str,
    ) -> Option<T> {
        Self::take(&mut self.diags, self.file, self.src, section, key, true)
    }

    /// Opens the top-level table `key`. A missing table is an error when `required`; a
    /// missing optional table is an empty section (so defaults apply key by key).
    pub fn section(&mut self, key: &str, required: bool) -> Option<Section<'a>> {
        self.root.taken.push(key.to_owned());
        let Some(value) = self.root.value(key).cloned() else {
            if required {
                self.error(Some(0..0), format!("missing required table `[{key}]`"));
                return None;
            }
            return Some(Section {
                path: key.to_owned(),
                table: toml::de::DeTable::new(),
                span: 0..0,
                taken: Vec::new(),
            });
        };
        let span = value.span();
        match value.into_inner() {
            toml::de::DeValue::Table(table) => {
                Some(Section { path: key.to_owned(), table, span, taken: Vec::new() })
            }
            other => {
                let msg = format!("`{key}` must be a table, found {}", other.type_str());
                self.error(Some(span), msg);
                None
            }
        }
    }

    /// Reports the keys of `section` that were never asked for.
    pub fn close(&mut self, section: Section<'a>) {
        report_unknown(&mut self.diags, self.file, self.src, &section);
    }

    /// Reports top-level keys that were never asked for and returns every problem found,
    /// in file order.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        report_unknown(&mut self.diags, self.file, self.src, &self.root);
        self.diags.sort_by_key(|d| (d.line, d.col));
        self.diags
    }
}

fn report_unknown(diags: &mut Vec<Diagnostic>, file: &Path, src: &str, section: &Section<'_>) {
    let mut known = section.taken.clone();
    known.sort();
    known.dedup();
    for (k, _) in section.table.iter() {
        let key = k.get_ref().as_ref();
        if !section.taken.iter().any(|t| t == key) {
            let msg = format!(
                "unknown key `{}`, expected one of: {}",
                section.qualified(key),
                known.join(", ")
            );
            diags.push(Diagnostic::at(file, src, Some(k.span()), msg));
        }
    }
}
