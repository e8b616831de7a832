//! Who may connect to the broker, and what they may do once in: ZeroMQ's
//! own security (CURVE, 26/CURVEZMQ; ZAP, 27/ZAP) on every endpoint,
//! without touching the MDP frames, so that every MDP peer able to set
//! libzmq's three CURVE options works unchanged.
//!
//! 7/MDP has none of this: any process that reaches the broker may
//! register for any service and receive its requests. Three mechanisms,
//! each optional, close that:
//!
//! * CURVE (`curve_secret_key`): every connection is encrypted and the
//!   broker proves its key; with `curve_clients`, only the keys in that
//!   directory's `*.key` files are admitted, each under its file's name.
//! * An allow list of source addresses (`allow_ip`), with or without CURVE.
//! * Service rules (`acl`, see [`acl`]) on those names: who may serve and
//!   who may request which services. They are checked per message in the
//!   broker's core, through [`crate::broker::Access`].
//!
//! The first two are decided at the handshake by the ZAP handler ([`zap`]),
//! so a refused peer never gets a message to the broker. The key list and
//! the rules can be read again while the broker runs
//! ([`Security::reload`], on SIGHUP). docs/security.md has the threat
//! model.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod acl;
pub mod allow;
mod zap;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use ipnet::IpNet;
use log::{error, info, warn};

pub use acl::{Acl, AclError, Role};
pub use allow::{AllowList, BadNet, parse_net};
pub use zap::ZapError;

use crate::broker::ratelimit::RateLimit;
use crate::broker::{Access, StopHandle};
use crate::curve::{self, CurveError, CurveServer, PublicKey};
use crate::frame::Frame;
use crate::hex::Text;
pub(crate) use zap::ZapHandler;
use zap::{Admission, SharedAdmission};

/// What to secure the broker with; every field is optional, and the
/// default secures nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// The broker's secret certificate (`NAME.key_secret`): every endpoint
    /// then requires CURVE.
    pub curve_secret_key: Option<PathBuf>,
    /// A directory of public certificates (`NAME.key`): only their keys
    /// are admitted, each peer named by its file's name. Needs
    /// `curve_secret_key`; without it, any CURVE key is admitted.
    pub curve_clients: Option<PathBuf>,
    /// Source addresses connections may come from; empty: any.
    pub allow_ip: Vec<IpNet>,
    /// Service rules (TOML, see [`acl`]). Needs `curve_clients`.
    pub acl: Option<PathBuf>,
}

impl SecurityConfig {
    /// Whether any setting is given.
    pub fn is_on(&self) -> bool {
        self.curve_secret_key.is_some()
            || self.curve_clients.is_some()
            || !self.allow_ip.is_empty()
            || self.acl.is_some()
    }
}

/// Why the security settings cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum SecurityError {
    /// A certificate or the clients' directory could not be read (or
    /// libzmq has no CURVE).
    Curve {
        /// The flag that names the file or directory.
        setting: &'static str,
        /// What went wrong.
        error: CurveError,
    },
    /// A setting that needs another was given without it (the flags are
    /// named in the message).
    Needs {
        /// The setting given.
        setting: &'static str,
        /// The one it needs.
        needs: &'static str,
    },
    /// Two files in the clients' directory hold the same key, so which
    /// name it has is ambiguous.
    DuplicateKey {
        /// The key.
        key: PublicKey,
        /// The two names.
        names: (String, String),
    },
    /// The ACL file cannot be used.
    Acl(AclError),
}

impl fmt::Display for SecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // One line with every cause: operators read this one line.
            SecurityError::Curve { setting, error } => {
                write!(f, "{setting}: {error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            SecurityError::Needs { setting, needs } => write!(f, "{setting} needs {needs}"),
            SecurityError::DuplicateKey { key, names } => write!(
                f,
                "--curve-clients: {}.key and {}.key hold the same key {key}; keep one",
                names.0, names.1
            ),
            SecurityError::Acl(e) => write!(f, "--acl {e}"),
        }
    }
}

impl std::error::Error for SecurityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecurityError::Curve { error, .. } => Some(error),
            SecurityError::Acl(e) => Some(e),
            _ => None,
        }
    }
}

impl SecurityError {
    /// A CURVE error about what `setting` names.
    fn curve(setting: &'static str) -> impl Fn(CurveError) -> SecurityError {
        move |error| SecurityError::Curve { setting, error }
    }
}

/// The settings loaded, ready for [`Server::bind_secure`](crate::broker::Server::bind_secure).
#[derive(Debug)]
pub struct Security {
    config: SecurityConfig,
    curve: Option<CurveServer>,
    admission: SharedAdmission,
    acl: Option<Arc<Acl>>,
}

/// The files that may be read again: the keys' names and the rules.
struct Reloadable {
    clients: Option<HashMap<PublicKey, String>>,
    acl: Option<Acl>,
}

impl Security {
    /// Reads every file `config` names and checks that the settings fit
    /// together. Warns if CURVE admits any key.
    pub fn load(config: SecurityConfig) -> Result<Security, SecurityError> {
        let needs = |setting, needs| SecurityError::Needs { setting, needs };
        if config.curve_clients.is_some() && config.curve_secret_key.is_none() {
            return Err(needs("--curve-clients", "--curve-secret-key"));
        }
        if config.acl.is_some() && config.curve_clients.is_none() {
            return Err(needs("--acl", "--curve-clients (the rules name the peers it lists)"));
        }
        let curve = config
            .curve_secret_key
            .as_ref()
            .map(CurveServer::from_file)
            .transpose()
            .map_err(SecurityError::curve("--curve-secret-key"))?;
        let files = Security::read_reloadable(&config)?;
        if let Some(curve) = &curve {
            // What clients must have as the server key: a secret file whose
            // public key is not its secret key's shows here as a surprise.
            info!("CURVE on; the broker's public key is {}", curve.keys.public);
        }
        if let Some(clients) = &files.clients {
            info!("--curve-clients: {} client keys", clients.len());
        }
        if curve.is_some() && files.clients.is_none() {
            warn!(
                "--curve-secret-key without --curve-clients: connections are encrypted, but any CURVE key is \
                 admitted (no authentication)"
            );
        }
        let admission = Admission {
            curve: curve.is_some(),
            clients: files.clients,
            allow: AllowList::new(config.allow_ip.clone()),
        };
        Ok(Security {
            config,
            curve,
            admission: Arc::new(RwLock::new(Arc::new(admission))),
            acl: files.acl.map(Arc::new),
        })
    }

    /// The broker's public key, if it speaks CURVE (clients need it).
    pub fn public_key(&self) -> Option<PublicKey> {
        self.curve.as_ref().map(|curve| curve.keys.public)
    }

    /// Reads the clients' keys and the rules, checking them together.
    fn read_reloadable(config: &SecurityConfig) -> Result<Reloadable, SecurityError> {
        let clients = config.curve_clients.as_ref().map(read_clients).transpose()?;
        let acl = config
            .acl
            .as_ref()
            .map(Acl::load)
            .transpose()
            .map_err(SecurityError::Acl)?;
        if let (Some(clients), Some(acl)) = (&clients, &acl) {
            let known: Vec<&str> = clients.values().map(String::as_str).collect();
            let unknown = acl.unknown_names(&known);
            if !unknown.is_empty() {
                warn!(
                    "--acl names peers that --curve-clients has no key for: {}",
                    unknown.join(", ")
                );
            }
        }
        if let Some(clients) = &clients
            && clients.is_empty()
        {
            warn!("--curve-clients has no *.key files: nobody will be admitted");
        }
        Ok(Reloadable { clients, acl })
    }

    /// Sets up the broker's socket: CURVE server if asked, and the ZAP
    /// domain, so that the handler is asked for NULL peers too. Call it
    /// before binding.
    pub(crate) fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        if let Some(curve) = &self.curve {
            curve.apply(socket)?;
        }
        socket.set_zap_domain(zap::DOMAIN)
    }

    /// Starts the ZAP handler in the broker's `context`; if it ever stops
    /// unasked, it stops the broker through `broker`.
    pub(crate) fn start_handler(&self, context: &zmq::Context, broker: StopHandle) -> Result<ZapHandler, ZapError> {
        ZapHandler::start(context, Arc::clone(&self.admission), broker)
    }

    /// The service rules, for the broker's core; `None` without `--acl`.
    pub(crate) fn access(&self) -> Option<Box<dyn Access>> {
        let acl = self.acl.as_ref()?;
        Some(Box::new(AclAccess::new(Arc::clone(acl))))
    }

    /// Reads the clients' directory and the ACL file again. On success
    /// new connections are checked against the new keys at once, and the
    /// new rules are returned for the core (which applies them from the
    /// next message). On failure the error is logged and the old ones
    /// stay in force.
    pub(crate) fn reload(&mut self) -> Option<Box<dyn Access>> {
        if self.config.curve_clients.is_none() && self.config.acl.is_none() {
            info!("SIGHUP: nothing to reload (no --curve-clients, no --acl); ignored");
            return None;
        }
        let files = match Security::read_reloadable(&self.config) {
            Ok(files) => files,
            Err(e) => {
                error!("SIGHUP: {e}; the previous keys and rules stay in force");
                return None;
            }
        };
        let keys = files.clients.as_ref().map_or(0, HashMap::len);
        let rules = files.acl.as_ref().map(Acl::rule_count);
        {
            let mut current = self.admission.write().unwrap_or_else(PoisonError::into_inner);
            let admission = Admission {
                curve: current.curve,
                clients: files.clients,
                allow: current.allow.clone(),
            };
            *current = Arc::new(admission);
        }
        self.acl = files.acl.map(Arc::new);
        match rules {
            Some(rules) => info!("SIGHUP: reloaded {keys} client keys and {rules} access rules"),
            None => info!("SIGHUP: reloaded {keys} client keys"),
        }
        self.access()
    }
}

/// Reads `--curve-clients`: each key with its file's name.
fn read_clients(dir: &PathBuf) -> Result<HashMap<PublicKey, String>, SecurityError> {
    let mut clients: HashMap<PublicKey, String> = HashMap::new();
    for (name, key) in curve::load_public_dir(dir).map_err(SecurityError::curve("--curve-clients"))? {
        if let Some(other) = clients.insert(key, name.clone()) {
            return Err(SecurityError::DuplicateKey {
                key,
                names: (other, name),
            });
        }
    }
    Ok(clients)
}

/// The ACL as the core's [`Access`]: the name is each message's User-Id.
#[derive(Debug)]
struct AclAccess {
    acl: Arc<Acl>,
    refused_ready: RateLimit,
    refused_request: RateLimit,
}

impl AclAccess {
    fn new(acl: Arc<Acl>) -> AclAccess {
        AclAccess {
            acl,
            refused_ready: RateLimit::default(),
            refused_request: RateLimit::default(),
        }
    }

    fn check(&mut self, service: &[u8], role: Role, peer: &Frame) -> bool {
        let name = peer.user_id();
        if self.acl.allows(service, role, name.as_deref()) {
            return true;
        }
        let (limit, outcome) = match role {
            Role::Worker => (&mut self.refused_ready, "READY refused, sending DISCONNECT"),
            Role::Client => (&mut self.refused_request, "request dropped"),
        };
        if let Some(held_back) = limit.allow(Instant::now()) {
            warn!(
                "'{}' at {} may not {} '{}' (--acl): {outcome} ({held_back} more since the last warning)",
                Text(name.as_deref().unwrap_or("?").as_bytes()),
                peer.peer_address().unwrap_or_else(|| "?".into()),
                role.verb(),
                Text(service),
            );
        }
        false
    }
}

impl Access for AclAccess {
    fn may_register(&mut self, service: &[u8], peer: &Frame) -> bool {
        self.check(service, Role::Worker, peer)
    }

    fn may_request(&mut self, service: &[u8], peer: &Frame) -> bool {
        self.check(service, Role::Client, peer)
    }
}
