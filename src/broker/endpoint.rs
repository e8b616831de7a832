//! What the broker checks before and after binding an endpoint, and what it
//! tells an operator when a bind fails.
//!
//! libzmq binds an `ipc://` path by deleting whatever file is there first.
//! A second broker started on the path of a running one therefore takes
//! the path over silently: new peers reach the newcomer, and the first
//! broker, still serving its workers, can be reached by no one once the
//! newcomer stops and leaves its socket file behind. So before an ipc bind
//! the broker connects to the path: if someone answers, the path is in use
//! and the bind is refused, exactly as for a TCP port in use; if nobody
//! does, the file is a stale leftover and libzmq may replace it. A file
//! that is not a socket is never deleted. When it stops, the broker
//! removes the socket files it created, if they are still its own.
//!
//! A failed bind names the endpoint, libzmq's reason, and what to write
//! instead.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A socket file this broker created, identified by device, inode and
/// change time (an inode number is soon reused), so that a file another
/// process put there since is left alone.
#[derive(Debug)]
pub struct IpcFile {
    path: PathBuf,
    identity: (u64, u64, i64, i64),
}

fn identity(metadata: &fs::Metadata) -> (u64, u64, i64, i64) {
    (metadata.dev(), metadata.ino(), metadata.ctime(), metadata.ctime_nsec())
}

impl IpcFile {
    /// The socket file an `ipc://` endpoint just bound, if it is a file
    /// (not libzmq's temporary `ipc://*` nor the abstract `ipc://@name`).
    pub fn bound(endpoint: &str) -> Option<IpcFile> {
        let path = ipc_path(endpoint)?;
        let metadata = fs::symlink_metadata(path).ok()?;
        Some(IpcFile {
            path: path.to_path_buf(),
            identity: identity(&metadata),
        })
    }

    /// Removes the file if it is still the one this broker created.
    pub fn remove(&self) -> io::Result<()> {
        match fs::symlink_metadata(&self.path) {
            Ok(metadata) if identity(&metadata) == self.identity => fs::remove_file(&self.path),
            _ => Ok(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why an endpoint must not be bound, found before libzmq tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another process listens on this ipc path.
    InUse,
    /// The path exists and is not a socket.
    NotASocket,
    /// A `tcp://` endpoint without a port, or with one that is not a
    /// number from 1 to 65535 or `*` (libzmq would wrap `:70000` around to
    /// another port, and ignore junk after the digits).
    BadPort,
}

impl Refusal {
    /// libzmq's error for the same situation.
    pub fn error(self) -> zmq::Error {
        match self {
            Refusal::InUse => zmq::Error::EADDRINUSE,
            Refusal::NotASocket => zmq::Error::EADDRINUSE,
            Refusal::BadPort => zmq::Error::EINVAL,
        }
    }

    /// What the operator should do.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::InUse => {
                "another process (another broker?) is listening on this ipc path; stop it or choose another path"
            }
            Refusal::NotASocket => {
                "the path exists and is not a socket, and the broker will not delete it; choose another path"
            }
            Refusal::BadPort => "write tcp://ADDRESS:PORT with a PORT from 1 to 65535, or * for any free port",
        }
    }
}

/// Checks an endpoint before it is bound.
pub fn check(endpoint: &str) -> Result<(), Refusal> {
    if let Some(address) = endpoint.strip_prefix("tcp://") {
        return check_port(address);
    }
    let Some(path) = ipc_path(endpoint) else {
        return Ok(());
    };
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return Ok(()); // nothing there
    };
    if !metadata.file_type().is_socket() {
        return Err(Refusal::NotASocket);
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(Refusal::InUse),
        Err(_) => Ok(()), // nobody listens: a stale file, which libzmq replaces
    }
}

/// A `tcp://` address's port must be `*` or a number from 1 to 65535.
fn check_port(address: &str) -> Result<(), Refusal> {
    let Some((_, port)) = address.rsplit_once(':') else {
        return Err(Refusal::BadPort);
    };
    let digits = port.bytes().all(|b| b.is_ascii_digit());
    let valid = port == "*" || (digits && port.parse::<u16>().is_ok_and(|p| p > 0));
    if valid { Ok(()) } else { Err(Refusal::BadPort) }
}

/// Whether a `tcp://` endpoint should be bound with IPv6 enabled: the
/// wildcard (both families) and bracketed IPv6 addresses. IPv4 addresses,
/// interface names and host names are bound as libzmq binds them by
/// default, IPv4 (with IPv6 on, `tcp://lo:PORT` would bind `[::1]` alone).
pub fn wants_ipv6(endpoint: &str) -> bool {
    endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(host, _)| host == "*" || host.starts_with('['))
}

/// The file path of an `ipc://` endpoint; `None` for other transports, for
/// `ipc://*` (a temporary path libzmq picks) and for abstract `ipc://@name`.
fn ipc_path(endpoint: &str) -> Option<&Path> {
    let path = endpoint.strip_prefix("ipc://")?;
    if path.is_empty() || path == "*" || path.starts_with('@') {
        return None;
    }
    Some(Path::new(path))
}

/// What to write instead, for libzmq's bind errors.
pub fn hint(endpoint: &str, error: zmq::Error) -> &'static str {
    let ipc = endpoint.starts_with("ipc://");
    match error {
        zmq::Error::EADDRINUSE => "another process is listening there; stop it or choose another port or path",
        zmq::Error::ENODEV | zmq::Error::EADDRNOTAVAIL if !ipc => {
            "bind to an address of this host: an interface name (lo, eth0), an IP address (127.0.0.1, [::1]) \
             or * for every interface, as in tcp://*:5555; host names such as localhost are not resolved for binding"
        }
        zmq::Error::EPROTONOSUPPORT | zmq::Error::ENOCOMPATPROTO => {
            "the broker serves tcp://ADDRESS:PORT and ipc:///PATH"
        }
        zmq::Error::EINVAL => "write tcp://ADDRESS:PORT (PORT may be *) or ipc:///PATH",
        zmq::Error::EACCES if ipc => "the ipc path's directory is not writable by this user",
        zmq::Error::EACCES => "ports below 1024 need privileges; choose a port from 1024 up",
        zmq::Error::ENOENT => "the ipc path's directory does not exist",
        zmq::Error::ENAMETOOLONG => "ipc paths are limited to 107 bytes; choose a shorter path",
        _ => "check the endpoint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mdbroker-endpoint-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("mdp.sock")
    }

    #[test]
    fn a_live_path_is_in_use_a_stale_one_is_free_and_a_file_is_left_alone() {
        let path = temp_path("check");
        let endpoint = format!("ipc://{}", path.display());
        assert_eq!(check(&endpoint), Ok(()), "nothing there");
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(check(&endpoint), Err(Refusal::InUse));
        drop(listener); // leaves the file: stale
        assert!(path.exists());
        assert_eq!(check(&endpoint), Ok(()));
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"precious").unwrap();
        assert_eq!(check(&endpoint), Err(Refusal::NotASocket));
        assert_eq!(check("tcp://*:5555"), Ok(()));
        assert_eq!(check("ipc://*"), Ok(()));
        assert_eq!(check("ipc://@abstract"), Ok(()));
    }

    #[test]
    fn only_the_file_this_broker_created_is_removed() {
        let path = temp_path("remove");
        let endpoint = format!("ipc://{}", path.display());
        let listener = UnixListener::bind(&path).unwrap();
        let ours = IpcFile::bound(&endpoint).unwrap();
        // Someone else's socket at the same path now (made elsewhere while
        // ours existed, so it is surely another inode, and moved there).
        let elsewhere = path.with_extension("other");
        let theirs = UnixListener::bind(&elsewhere).unwrap();
        fs::rename(&elsewhere, &path).unwrap();
        drop(listener);
        ours.remove().unwrap();
        assert!(path.exists(), "another process's file stays");
        drop(theirs);
        let now_ours = IpcFile::bound(&endpoint).unwrap();
        now_ours.remove().unwrap();
        assert!(!path.exists());
        assert!(IpcFile::bound("ipc://*").is_none() && IpcFile::bound("tcp://*:1").is_none());
    }

    #[test]
    fn only_the_wildcard_and_ipv6_addresses_are_bound_with_ipv6() {
        assert!(wants_ipv6("tcp://*:5555") && wants_ipv6("tcp://[::1]:*"));
        for other in [
            "tcp://127.0.0.1:5555",
            "tcp://lo:5555",
            "tcp://localhost:1",
            "ipc:///x:1",
        ] {
            assert!(!wants_ipv6(other), "{other}");
        }
    }

    #[test]
    fn tcp_ports_are_checked_before_libzmq_wraps_or_trims_them() {
        for good in ["tcp://*:5555", "tcp://127.0.0.1:*", "tcp://[::1]:1", "tcp://lo:65535"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "tcp://127.0.0.1:70000",
            "tcp://127.0.0.1:155550",
            "tcp://127.0.0.1:-1",
            "tcp://127.0.0.1:5555junk",
            "tcp://127.0.0.1:5555/",
            "tcp://127.0.0.1:+5555",
            "tcp://127.0.0.1: 5555",
            "tcp://127.0.0.1:0",
            "tcp://127.0.0.1",
            "tcp://[::1]",
        ] {
            assert_eq!(check(bad), Err(Refusal::BadPort), "{bad}");
        }
    }
}
