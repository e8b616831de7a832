//! Hex rendering of peer identities and frames for logs: ROUTER identities
//! are binary (libzmq's generated ones start with a zero byte), so they are
//! logged as hex, and long frames are cut so one log line stays one line.

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

#[cfg(test)]
mod tests {
    use super::Hex;

    #[test]
    fn renders_short_and_cuts_long() {
        assert_eq!(Hex(&[0, 0x80, 0x1f]).to_string(), "00801f");
        let long = [0xab_u8; 40];
        assert_eq!(Hex(&long).to_string(), format!("{}..", "ab".repeat(32)));
    }
}
