//! CURVE keys and certificate files, for encrypting and authenticating the
//! links between clients, workers and the broker with ZeroMQ's own
//! security (26/CURVEZMQ).
//!
//! A CURVE peer has a long-term key pair: a 32-byte public key it may show
//! anyone and a 32-byte secret key it must not. A client (or worker) needs
//! its own pair and the server's public key; the server needs its own pair
//! and, to choose whom it accepts, its clients' public keys.
//!
//! Keys live in ZeroMQ's certificate files, as czmq's `zcert_save` and
//! pyzmq's `zmq.auth.create_certificates` write them, so that keys can be
//! shared with programs in other languages: a public certificate `NAME.key`
//! and a secret one `NAME.key_secret`, both 4/ZPL text with a `metadata`
//! section and a `curve` section holding the keys in Z85 (32/Z85: 40
//! printable characters for 32 bytes):
//!
//! ```text
//! metadata
//! curve
//!     public-key = "jcb2dmPKfx{=EYm*0k%>uae2^byYpXy2pPSS(rj9"
//!     secret-key = "r{[k73<yqm]5B7d>3*zr=uoytb*af(Ul$3QaAMVM"
//! ```
//!
//! The secret certificate is written readable by its owner only (mode
//! 0600). The reader is strict (see [`SyntaxError`]): a damaged key file
//! fails with its path and line instead of loading as something else.
//! Metadata is accepted and ignored.
//!
//! [`CurveClient`] is what [`ClientConfig`](crate::ClientConfig) and
//! [`WorkerConfig`](crate::WorkerConfig) take to connect with CURVE;
//! [`CurveServer`] sets up the listening side.

mod zpl;

pub use zpl::SyntaxError;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The length of a CURVE key, in bytes.
pub const KEY_BYTES: usize = 32;
/// The length of a CURVE key in Z85 text, in characters.
pub const KEY_Z85_CHARS: usize = 40;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not [`KEY_BYTES`] bytes (binary) or [`KEY_Z85_CHARS`]
    /// characters (Z85 text) long.
    Length {
        /// The length required (bytes or characters).
        expected: usize,
        /// The length found (bytes or characters).
        found: usize,
    },
    /// The text has characters that are not Z85, or encodes no 32-bit
    /// value.
    NotZ85,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Length { expected, found } => write!(f, "key is {found} long, not {expected}"),
            KeyError::NotZ85 => write!(f, "key is not Z85 text"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a certificate file could not be read or written, or keys made.
#[derive(Debug)]
#[non_exhaustive]
pub enum CurveError {
    /// libzmq was built without CURVE (`zmq::has("curve")` is false).
    Unavailable,
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line of a certificate file is not ZPL.
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// Why.
        source: SyntaxError,
    },
    /// A key in a certificate file is malformed.
    Key {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// Why.
        source: KeyError,
    },
    /// A certificate file names a key twice.
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The line of the second one, from 1.
        line: usize,
        /// The property (`public-key` or `secret-key`).
        name: &'static str,
    },
    /// A certificate file has no `curve`/`public-key`.
    NoPublicKey {
        /// The file.
        path: PathBuf,
    },
    /// A secret certificate was needed, and this one has no secret key.
    NoSecretKey {
        /// The file.
        path: PathBuf,
    },
    /// libzmq could not generate a key pair.
    Generate(zmq::Error),
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurveError::Unavailable => write!(f, "libzmq was built without CURVE"),
            CurveError::Io { path, .. } => write!(f, "{}", path.display()),
            CurveError::Syntax { path, line, .. } | CurveError::Key { path, line, .. } => {
                write!(f, "{}, line {line}", path.display())
            }
            CurveError::Duplicate { path, line, name } => {
                write!(f, "{}, line {line}: a second {name}", path.display())
            }
            CurveError::NoPublicKey { path } => write!(f, "{}: no curve public-key", path.display()),
            CurveError::NoSecretKey { path } => {
                write!(f, "{}: no curve secret-key (not a secret certificate)", path.display())
            }
            CurveError::Generate(_) => write!(f, "generating a key pair failed"),
        }
    }
}

impl std::error::Error for CurveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CurveError::Io { source, .. } => Some(source),
            CurveError::Syntax { source, .. } => Some(source),
            CurveError::Key { source, .. } => Some(source),
            CurveError::Generate(source) => Some(source),
            _ => None,
        }
    }
}

/// Fails with [`CurveError::Unavailable`] if libzmq lacks CURVE.
fn ensure_available() -> Result<(), CurveError> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err(CurveError::Unavailable)
    }
}

/// 32 bytes from binary.
fn key_from_bytes(bytes: &[u8]) -> Result<[u8; KEY_BYTES], KeyError> {
    bytes.try_into().map_err(|_| KeyError::Length {
        expected: KEY_BYTES,
        found: bytes.len(),
    })
}

/// 32/Z85's alphabet: digit `i` of a base-85 number is `Z85[i]`.
const Z85: &[u8; 85] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// 32 bytes from Z85 text: each 5 characters are a base-85 number that
/// must fit 32 bits, written big-endian. Decoded here rather than with
/// `zmq::z85_decode`, which leaks its input (41 bytes a call) and lets
/// some bad characters through.
fn key_from_z85(text: &str) -> Result<[u8; KEY_BYTES], KeyError> {
    if !text.is_ascii() {
        return Err(KeyError::NotZ85);
    }
    if text.len() != KEY_Z85_CHARS {
        return Err(KeyError::Length {
            expected: KEY_Z85_CHARS,
            found: text.len(),
        });
    }
    let mut key = [0; KEY_BYTES];
    for (chunk, out) in text.as_bytes().chunks(5).zip(key.chunks_mut(4)) {
        let mut value: u64 = 0;
        for c in chunk {
            let digit = Z85.iter().position(|z| z == c).ok_or(KeyError::NotZ85)?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).map_err(|_| KeyError::NotZ85)?;
        out.copy_from_slice(&value.to_be_bytes());
    }
    Ok(key)
}

fn to_z85(key: &[u8; KEY_BYTES]) -> String {
    zmq::z85_encode(key).expect("32 bytes are a multiple of 4, and Z85 is ASCII")
}

/// A CURVE public key. Shows as Z85 text; parses from it with `str::parse`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_BYTES]);

impl PublicKey {
    /// A key from its 32 bytes (as a ZAP request carries it).
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        key_from_bytes(bytes).map(PublicKey)
    }

    /// A key from its 40 characters of Z85.
    pub fn from_z85(text: &str) -> Result<PublicKey, KeyError> {
        key_from_z85(text).map(PublicKey)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The key as 40 characters of Z85.
    pub fn to_z85(&self) -> String {
        to_z85(&self.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_z85(text)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_z85())
    }
}

/// A CURVE secret key. Its `Debug` does not show it, and it has no
/// `Display`: only [`SecretKey::to_z85`] spells it out.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_BYTES]);

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        key_from_bytes(bytes).map(SecretKey)
    }

    /// A key from its 40 characters of Z85.
    pub fn from_z85(text: &str) -> Result<SecretKey, KeyError> {
        key_from_z85(text).map(SecretKey)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The key as 40 characters of Z85.
    pub fn to_z85(&self) -> String {
        to_z85(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A public key and the secret key that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The key to give to peers.
    pub public: PublicKey,
    /// The key to keep.
    pub secret: SecretKey,
}

impl KeyPair {
    /// A new random key pair, from libzmq (and so libsodium).
    pub fn generate() -> Result<KeyPair, CurveError> {
        ensure_available()?;
        let pair = zmq::CurveKeyPair::new().map_err(CurveError::Generate)?;
        Ok(KeyPair {
            public: PublicKey(pair.public_key),
            secret: SecretKey(pair.secret_key),
        })
    }
}

/// The contents of a certificate file: a public key, and the secret key if
/// it is a secret certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The public key.
    pub public: PublicKey,
    /// The secret key (`NAME.key_secret` files only).
    pub secret: Option<SecretKey>,
}

impl From<KeyPair> for Certificate {
    fn from(keys: KeyPair) -> Certificate {
        Certificate {
            public: keys.public,
            secret: Some(keys.secret),
        }
    }
}

impl Certificate {
    /// Reads a public (`NAME.key`) or secret (`NAME.key_secret`)
    /// certificate file.
    pub fn load(path: impl AsRef<Path>) -> Result<Certificate, CurveError> {
        let path = path.as_ref();
        let text = crate::small_file::read(path).map_err(|source| CurveError::Io {
            path: path.to_owned(),
            source,
        })?;
        Certificate::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Certificate, CurveError> {
        let properties = zpl::parse(text).map_err(|(line, source)| CurveError::Syntax {
            path: path.to_owned(),
            line,
            source,
        })?;
        let public = find_key(path, &properties, "public-key", PublicKey::from_z85)?;
        let secret = find_key(path, &properties, "secret-key", SecretKey::from_z85)?;
        let public = public.ok_or_else(|| CurveError::NoPublicKey { path: path.to_owned() })?;
        Ok(Certificate { public, secret })
    }

    /// The key pair, if this is a secret certificate.
    pub fn key_pair(&self) -> Option<KeyPair> {
        let secret = self.secret.clone()?;
        Some(KeyPair {
            public: self.public,
            secret,
        })
    }

    /// Writes `DIR/NAME.key` (the public key) and `DIR/NAME.key_secret`
    /// (both keys, mode 0600), and returns their paths in that order.
    /// Refuses, with [`CurveError::Io`] of kind `AlreadyExists`, to
    /// overwrite either file; on an error, leaves neither behind. Fails
    /// with [`CurveError::NoSecretKey`] if there is no secret key to write.
    pub fn save(&self, dir: impl AsRef<Path>, name: &str) -> Result<(PathBuf, PathBuf), CurveError> {
        let public_path = dir.as_ref().join(format!("{name}.key"));
        let secret_path = dir.as_ref().join(format!("{name}.key_secret"));
        let Some(secret) = &self.secret else {
            return Err(CurveError::NoSecretKey { path: secret_path });
        };
        let public_text = certificate_text(PUBLIC_BANNER, &self.public, None);
        let secret_text = certificate_text(SECRET_BANNER, &self.public, Some(secret));
        write_new(&public_path, 0o644, &public_text)?;
        if let Err(e) = write_new(&secret_path, 0o600, &secret_text) {
            let _ = fs::remove_file(&public_path);
            return Err(e);
        }
        Ok((public_path, secret_path))
    }
}

/// The one key named `name` in the `curve` section, if there is one.
fn find_key<K>(
    path: &Path,
    properties: &[zpl::Property],
    name: &'static str,
    parse: fn(&str) -> Result<K, KeyError>,
) -> Result<Option<K>, CurveError> {
    let wanted = format!("curve/{name}");
    let mut found = None;
    for property in properties.iter().filter(|p| p.path == wanted) {
        if found.is_some() {
            return Err(CurveError::Duplicate {
                path: path.to_owned(),
                line: property.line,
                name,
            });
        }
        let text = property.value.as_deref().unwrap_or_default();
        let key = parse(text).map_err(|source| CurveError::Key {
            path: path.to_owned(),
            line: property.line,
            source,
        })?;
        found = Some(key);
    }
    Ok(found)
}

const PUBLIC_BANNER: &str = "#   CURVE public certificate, written by majordomo.\n\
                             #   Give it to the peers that must recognise this key.\n";
const SECRET_BANNER: &str = "#   CURVE SECRET certificate, written by majordomo.\n\
                             #   Keep it private: whoever reads it can pose as its owner.\n";

/// A certificate file's text. Z85 has no quote characters, so quoting the
/// keys is always safe (and needed: Z85 uses `#`).
fn certificate_text(banner: &str, public: &PublicKey, secret: Option<&SecretKey>) -> String {
    let mut text = format!("{banner}\nmetadata\ncurve\n    public-key = \"{}\"\n", public.to_z85());
    if let Some(secret) = secret {
        text.push_str(&format!("    secret-key = \"{}\"\n", secret.to_z85()));
    }
    text
}

/// Creates `path` (never over an existing file) with `mode`, and writes
/// `text`; on an error, removes what it created.
fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), CurveError> {
    let io_error = |source| CurveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_error(e));
    }
    Ok(())
}

/// The public certificates in `dir` (its `*.key` files; `*.key_secret`
/// and other files are skipped), each with its name (the file name without
/// `.key`), sorted by name. Fails on the first file that does not load.
pub fn load_public_dir(dir: impl AsRef<Path>) -> Result<Vec<(String, PublicKey)>, CurveError> {
    let dir = dir.as_ref();
    let io_error = |source| CurveError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.extension().is_none_or(|ext| ext != "key") || path.is_dir() {
            continue;
        }
        let Some(name) = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()) else {
            continue;
        };
        let certificate = Certificate::load(&path)?;
        if certificate.secret.is_some() {
            log::warn!(
                "{} holds a secret key: a directory of clients' keys should hold public certificates only \
                 (NAME.key, not NAME.key_secret renamed)",
                path.display()
            );
        }
        keys.push((name, certificate.public));
    }
    keys.sort();
    Ok(keys)
}

/// What a client or worker needs to connect with CURVE: the server's
/// public key and its own key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveClient {
    /// The server's (the broker's) public key.
    pub server: PublicKey,
    /// This peer's own keys.
    pub keys: KeyPair,
}

impl CurveClient {
    /// From the server's public certificate (`broker.key`) and this peer's
    /// secret certificate (`me.key_secret`).
    pub fn from_files(
        server_cert: impl AsRef<Path>,
        own_secret_cert: impl AsRef<Path>,
    ) -> Result<CurveClient, CurveError> {
        ensure_available()?;
        let server = Certificate::load(server_cert)?.public;
        let own = own_secret_cert.as_ref();
        let keys = Certificate::load(own)?
            .key_pair()
            .ok_or_else(|| CurveError::NoSecretKey { path: own.to_owned() })?;
        Ok(CurveClient { server, keys })
    }

    /// Makes `socket` a CURVE client; call it before `connect`.
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_curve_serverkey(self.server.as_bytes())?;
        socket.set_curve_publickey(self.keys.public.as_bytes())?;
        socket.set_curve_secretkey(self.keys.secret.as_bytes())
    }
}

/// What a server needs to accept CURVE clients: its own key pair. Which
/// clients it lets in is up to its ZAP handler (27/ZAP); without one,
/// libzmq admits every client that completes the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveServer {
    /// The server's keys; clients need the public one.
    pub keys: KeyPair,
}

impl CurveServer {
    /// From the server's secret certificate (`broker.key_secret`).
    pub fn from_file(secret_cert: impl AsRef<Path>) -> Result<CurveServer, CurveError> {
        ensure_available()?;
        let path = secret_cert.as_ref();
        let keys = Certificate::load(path)?
            .key_pair()
            .ok_or_else(|| CurveError::NoSecretKey { path: path.to_owned() })?;
        Ok(CurveServer { keys })
    }

    /// Makes `socket` a CURVE server; call it before `bind`.
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_curve_server(true)?;
        socket.set_curve_secretkey(self.keys.secret.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = "jcb2dmPKfx{=EYm*0k%>uae2^byYpXy2pPSS(rj9";
    const SECRET: &str = "r{[k73<yqm]5B7d>3*zr=uoytb*af(Ul$3QaAMVM";

    #[test]
    fn keys_parse_and_format_as_z85() {
        let key: PublicKey = PUBLIC.parse().expect("valid key");
        assert_eq!(key.to_string(), PUBLIC);
        assert_eq!(PublicKey::from_bytes(key.as_bytes()), Ok(key));
        assert_eq!(SecretKey::from_z85(SECRET).expect("valid key").to_z85(), SECRET);
    }

    #[test]
    fn z85_decoding_undoes_libzmqs_encoding() {
        for _ in 0..100 {
            let keys = KeyPair::generate().expect("key pair");
            let text = keys.public.to_z85();
            assert_eq!(PublicKey::from_z85(&text), Ok(keys.public), "{text}");
        }
        let top = [0xff; KEY_BYTES];
        assert_eq!(SecretKey::from_z85(&to_z85(&top)).map(|k| k.0), Ok(top));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(
            PublicKey::from_z85(&PUBLIC[1..]),
            Err(KeyError::Length {
                expected: 40,
                found: 39
            })
        );
        assert_eq!(
            PublicKey::from_bytes(&[0; 31]),
            Err(KeyError::Length {
                expected: 32,
                found: 31
            })
        );
        // '"', '~' and 'é' are not Z85; "%%%%%" encodes more than 32 bits.
        for bad in [
            PUBLIC.replace('r', "\""),
            PUBLIC.replace('r', "~"),
            format!("%%%%%{}", &PUBLIC[5..]),
            format!("é{}", &PUBLIC[2..]),
        ] {
            assert_eq!(PublicKey::from_z85(&bad), Err(KeyError::NotZ85), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_show_a_secret_key() {
        let keys = KeyPair {
            public: PUBLIC.parse().expect("valid key"),
            secret: SecretKey::from_z85(SECRET).expect("valid key"),
        };
        let shown = format!("{keys:?} {:?}", Certificate::from(keys.clone()));
        assert!(shown.contains(PUBLIC), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }

    #[test]
    fn certificate_text_reads_back() {
        let public: PublicKey = PUBLIC.parse().expect("valid key");
        let secret = SecretKey::from_z85(SECRET).expect("valid key");
        let text = certificate_text(SECRET_BANNER, &public, Some(&secret));
        let cert = Certificate::parse(Path::new("x.key_secret"), &text).expect("loads");
        assert_eq!(cert.public, public);
        assert_eq!(cert.secret, Some(secret));
        let text = certificate_text(PUBLIC_BANNER, &public, None);
        let cert = Certificate::parse(Path::new("x.key"), &text).expect("loads");
        assert_eq!(cert.secret, None);
    }

    #[test]
    fn bad_certificates_say_where() {
        let path = Path::new("x.key");
        let bad_key = "curve\n    public-key = \"short\"\n";
        assert!(matches!(
            Certificate::parse(path, bad_key),
            Err(CurveError::Key { line: 2, .. })
        ));
        let twice = format!("curve\n    public-key = \"{PUBLIC}\"\n    public-key = \"{PUBLIC}\"\n");
        assert!(matches!(
            Certificate::parse(path, &twice),
            Err(CurveError::Duplicate { line: 3, .. })
        ));
        let elsewhere = format!("metadata\n    public-key = \"{PUBLIC}\"\n");
        assert!(matches!(
            Certificate::parse(path, &elsewhere),
            Err(CurveError::NoPublicKey { .. })
        ));
        assert!(matches!(
            Certificate::parse(path, "curve\n public-key = x\n"),
            Err(CurveError::Syntax { line: 2, .. })
        ));
    }
}
