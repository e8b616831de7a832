//! A strict reader for the part of 4/ZPL (the ZeroMQ Property Language)
//! that certificate files use: named sections, `name = value` properties,
//! quoted or bare values, `#` comments, and hierarchy by indentation of
//! exactly 4 spaces a level.
//!
//! Strict because a key file is security configuration: a tab, a stray
//! indentation or a malformed name is reported with its line rather than
//! guessed at, so a damaged file never loads as some other key, or as none.
//! No crate reads ZPL (the `czmq` crate binds the C library, which would
//! need libczmq installed), and the subset is small.

use std::fmt;

/// One property: its path from the root (`curve/public-key`), its value if
/// it has one, and the line it is on (from 1).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Property {
    pub(super) path: String,
    pub(super) value: Option<String>,
    pub(super) line: usize,
}

/// Why a line is not ZPL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxError {
    /// A tab in the indentation: ZPL indents with spaces only.
    Tab,
    /// Indentation that is not a multiple of 4 spaces.
    Indentation {
        /// The number of leading spaces.
        spaces: usize,
    },
    /// A line indented more than one level below the line above it.
    Orphan,
    /// A line that does not start with a valid name (letters, digits and
    /// `$-_@.&+/`).
    Name,
    /// Text after a quoted value that is not a comment.
    TrailingText,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::Tab => write!(f, "tab in the indentation (ZPL indents with 4 spaces)"),
            SyntaxError::Indentation { spaces } => {
                write!(f, "indented by {spaces} spaces, not a multiple of 4")
            }
            SyntaxError::Orphan => write!(f, "indented more than one level below its parent"),
            SyntaxError::Name => write!(f, "not a ZPL name, or no '=' before the value"),
            SyntaxError::TrailingText => write!(f, "text after the closing quote"),
        }
    }
}

impl std::error::Error for SyntaxError {}

/// The properties of `text`, in order, or the first line that is not ZPL
/// (its number from 1, and why).
pub(super) fn parse(text: &str) -> Result<Vec<Property>, (usize, SyntaxError)> {
    // 4/ZPL: "\n", "\r" and "\r\n" all end a line.
    let text = text.replace("\r\n", "\n");
    let mut properties = Vec::new();
    let mut parents: Vec<&str> = Vec::new();
    for (index, line) in text.split(['\n', '\r']).enumerate() {
        let number = index + 1;
        let Some(Line { depth, name, value }) = parse_line(line).map_err(|e| (number, e))? else {
            continue;
        };
        if depth > parents.len() {
            return Err((number, SyntaxError::Orphan));
        }
        parents.truncate(depth);
        parents.push(name);
        properties.push(Property {
            path: parents.join("/"),
            value,
            line: number,
        });
    }
    Ok(properties)
}

/// One property's line: its depth (0 at the left margin), name and value.
struct Line<'a> {
    depth: usize,
    name: &'a str,
    value: Option<String>,
}

/// A line's property; `None` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<Line<'_>>, SyntaxError> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let rest = line.trim_start_matches(' ');
    let spaces = line.len() - rest.len();
    if rest.starts_with('\t') {
        return Err(SyntaxError::Tab);
    }
    if rest.starts_with('#') {
        return Ok(None);
    }
    if !spaces.is_multiple_of(4) {
        return Err(SyntaxError::Indentation { spaces });
    }
    let name_len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    let after = after.trim_start_matches([' ', '\t']);
    if name.is_empty() {
        return Err(SyntaxError::Name);
    }
    let depth = spaces / 4;
    if after.is_empty() || after.starts_with('#') {
        return Ok(Some(Line {
            depth,
            name,
            value: None,
        }));
    }
    let Some(value) = after.strip_prefix('=') else {
        return Err(SyntaxError::Name);
    };
    let value = Some(parse_value(value)?);
    Ok(Some(Line { depth, name, value }))
}

/// 4/ZPL's name characters.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "$-_@.&+/".contains(c)
}

/// A value: the text between matching quotes (which may hold `#`), or bare
/// text up to a comment, without surrounding whitespace. A value whose
/// opening quote is never closed is bare, as 4/ZPL says.
fn parse_value(text: &str) -> Result<String, SyntaxError> {
    let text = text.trim_start_matches([' ', '\t']);
    if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'')
        && let Some(end) = text[1..].find(quote)
    {
        let after = text[1 + end + 1..].trim_start_matches([' ', '\t']);
        if !after.is_empty() && !after.starts_with('#') {
            return Err(SyntaxError::TrailingText);
        }
        return Ok(text[1..1 + end].to_owned());
    }
    let bare = text.split('#').next().unwrap_or_default();
    Ok(bare.trim_end_matches([' ', '\t']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, Option<String>)> {
        parse(text)
            .expect("valid ZPL")
            .into_iter()
            .map(|p| (p.path, p.value))
            .collect()
    }

    fn owned(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(path, value)| (path.to_string(), value.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn sections_properties_quotes_and_comments() {
        let text = "#   a comment\n\nmetadata\n    name = bare value   # comment\ncurve\n    \
                    public-key = \"ab#cd=\"   # the key\n    other = 'single'\n";
        assert_eq!(
            values(text),
            owned(&[
                ("metadata", None),
                ("metadata/name", Some("bare value")),
                ("curve", None),
                ("curve/public-key", Some("ab#cd=")),
                ("curve/other", Some("single")),
            ])
        );
    }

    #[test]
    fn every_line_ending_and_an_unclosed_quote() {
        assert_eq!(
            values("a\r\n    b = \"x\rc\n    d = 1"),
            owned(&[("a", None), ("a/b", Some("\"x")), ("c", None), ("c/d", Some("1"))])
        );
    }

    #[test]
    fn a_shallower_line_closes_its_parents() {
        assert_eq!(
            values("a\n    b\n        c = 1\n    d = 2\ne = 3\n"),
            owned(&[
                ("a", None),
                ("a/b", None),
                ("a/b/c", Some("1")),
                ("a/d", Some("2")),
                ("e", Some("3")),
            ])
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            ("curve\n\tpublic-key = \"x\"\n", 2, SyntaxError::Tab),
            (
                "curve\n  public-key = \"x\"\n",
                2,
                SyntaxError::Indentation { spaces: 2 },
            ),
            ("curve\n        public-key = \"x\"\n", 2, SyntaxError::Orphan),
            ("curve\n    public key = \"x\"\n", 2, SyntaxError::Name),
            ("= 1\n", 1, SyntaxError::Name),
            ("curve\n    public-key = \"x\" y\n", 2, SyntaxError::TrailingText),
        ];
        for (text, line, error) in cases {
            assert_eq!(parse(text), Err((line, error)), "{text:?}");
        }
    }
}
