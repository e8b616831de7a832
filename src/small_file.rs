//! Reading the small text files an operator points the broker at (key
//! certificates, access rules) without trusting what is at the path: a
//! FIFO would block the broker's thread (at start, or on SIGHUP, in the
//! middle of serving), and `/dev/zero` or a huge file would be read until
//! memory ran out. Only a regular file of at most [`MAX_BYTES`] is read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// The largest file read, in bytes: a certificate is a few hundred bytes,
/// a rules file a few kilobytes.
pub const MAX_BYTES: u64 = 1 << 20;

/// The text of the regular file at `path` (symbolic links followed), or an
/// error if it is not a regular file, is larger than [`MAX_BYTES`] or is
/// not UTF-8.
pub fn read(path: &Path) -> io::Result<String> {
    if !fs::metadata(path)?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    File::open(path)?.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_BYTES} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let small = dir.path().join("small");
        fs::write(&small, "ok").expect("write");
        assert_eq!(read(&small).expect("small file"), "ok");
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; MAX_BYTES as usize + 1]).expect("write");
        assert_eq!(read(&big).map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
        assert_eq!(read(dir.path()).map_err(|e| e.kind()), Err(io::ErrorKind::InvalidInput));
        assert_eq!(
            read(Path::new("/dev/zero")).map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
    }
}
