//! How peer-supplied bytes appear in logs. ROUTER identities are binary
//! (libzmq's generated ones start with a zero byte), so they are logged as
//! hex ([`Hex`]); names (services) as text with every byte that is not
//! printable ASCII escaped ([`Text`]), so that a name cannot forge log
//! lines. Both are cut, so one log line stays one short line whatever a
//! peer sends.

use std::fmt;

/// Shows bytes as lowercase hex, at most 32 of them, then `..`.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 32;
        for byte in self.0.iter().take(MAX) {
            write!(f, "{byte:02x}")?;
        }
        if self.0.len() > MAX {
            write!(f, "..")?;
        }
        Ok(())
    }
}

/// Shows bytes as text: printable ASCII as is, anything else escaped
/// (`\n`, `\x00`), at most 64 bytes, then `..`.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        let shown = self.0.get(..MAX).unwrap_or(self.0);
        write!(f, "{}", shown.escape_ascii())?;
        if self.0.len() > MAX {
            write!(f, "..")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Hex, Text};

    #[test]
    fn text_escapes_what_could_forge_a_line_and_is_cut() {
        assert_eq!(Text(b"echo").to_string(), "echo");
        assert_eq!(Text(b"a\nINFO fake").to_string(), "a\\nINFO fake");
        assert_eq!(Text(&[0, 0xff]).to_string(), "\\x00\\xff");
        assert_eq!(Text(&[b'x'; 100]).to_string(), format!("{}..", "x".repeat(64)));
    }

    #[test]
    fn renders_short_and_cuts_long() {
        assert_eq!(Hex(&[0, 0x80, 0x1f]).to_string(), "00801f");
        let long = [0xab_u8; 40];
        assert_eq!(Hex(&long).to_string(), format!("{}..", "ab".repeat(32)));
    }
}
