//! Our changes to libzmq's source, applied to a copy before it is compiled.
//!
//! Each patch replaces one exact passage, which must occur exactly once in
//! its file: a new libzmq release that moves the passage fails the build
//! loudly instead of shipping an unpatched library. Each submodule is one
//! change, and its documentation says what stock libzmq does and why we
//! change it:
//!
//! * [`router`]: a ROUTER's automatic routing ids are random and unique,
//!   and no peer can crash it or take another peer's traffic by choosing one;
//! * [`max_frames`]: a socket option bounds the frames of one incoming
//!   message, so one peer cannot make the broker hold millions of frames;
//! * [`accept_pause`]: a listener that runs out of file descriptors pauses
//!   instead of spinning on a socket it cannot accept from.

mod accept_pause;
mod max_frames;
mod router;

use std::fs;
use std::io;
use std::path::Path;

/// One exact replacement in one file.
struct Patch {
    file: &'static str,
    find: &'static str,
    replace: &'static str,
}

/// Every change, in the order it is applied.
const PATCHES: &[&[Patch]] = &[router::PATCHES, max_frames::PATCHES, accept_pause::PATCHES];

/// Applies every patch under `root` (a copy of libzmq's source tree).
pub fn apply(root: &Path) -> io::Result<()> {
    for patch in PATCHES.iter().copied().flatten() {
        let path = root.join(patch.file);
        let text = fs::read_to_string(&path)?;
        let found = text.matches(patch.find).count();
        if found != 1 {
            return Err(io::Error::other(format!(
                "{}: the passage to patch occurs {found} times, not once:\n{}",
                patch.file, patch.find
            )));
        }
        fs::write(&path, text.replacen(patch.find, patch.replace, 1))?;
    }
    Ok(())
}
