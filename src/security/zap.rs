//! The ZAP handler (27/ZAP): libzmq asks it, for every connection's
//! handshake on a socket with a ZAP domain or the CURVE mechanism, whether
//! to admit the peer, and with what User-Id.
//!
//! Two halves: [`decide`] turns one request's frames into the reply's
//! frames, with no socket (unit-tested directly); [`ZapHandler`] is the
//! thread that owns the REP socket bound to `inproc://zeromq.zap.01` in the
//! broker's context and feeds [`decide`].
//!
//! The handler must not die: libzmq admits every NULL peer of a socket with
//! a ZAP domain, and every CURVE peer, when no handler is bound (it fails
//! open). So a malformed request gets a 500 reply rather than a panic,
//! nothing in [`decide`] can panic, and if the thread ends any other way
//! than by [`ZapHandler`]'s drop (a socket error, or a panic after all),
//! it stops the whole broker, which is then no longer open to anyone.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use log::{error, warn};

use super::allow::AllowList;
use crate::broker::StopHandle;
use crate::broker::ratelimit::RateLimit;
use crate::curve::PublicKey;
use crate::hex::Text;

/// Where 27/ZAP says the handler binds.
const ENDPOINT: &str = "inproc://zeromq.zap.01";
/// Where the handler's thread is told to stop.
const STOP_ENDPOINT: &str = "inproc://majordomo.zap-handler.stop";
/// The ZAP domain the broker's socket declares: with NULL, libzmq asks
/// ZAP only when a domain is set (27/ZAP leaves its meaning to us).
pub(crate) const DOMAIN: &str = "majordomo";

/// The version frame of requests and replies (27/ZAP).
const VERSION: &[u8] = b"1.0";

/// What the handler admits; read afresh for each request, replaced as a
/// whole when the broker reloads (SIGHUP).
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Whether the broker's socket is a CURVE server (else only NULL peers
    /// reach the handler, filtered by address).
    pub curve: bool,
    /// The keys admitted, with their names (the User-Id of their
    /// connections); `None` admits every key.
    pub clients: Option<HashMap<PublicKey, String>>,
    /// The source addresses admitted.
    pub allow: AllowList,
}

/// The admission in force, shared by the handler and the reloader.
pub(crate) type SharedAdmission = Arc<RwLock<Arc<Admission>>>;

/// Why a peer was refused, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request is not 27/ZAP 1.0 (it did not come from libzmq).
    Malformed,
    /// The address is not in the allow list.
    Address { address: Vec<u8> },
    /// The key is not among the clients'.
    UnknownKey { address: Vec<u8>, key: PublicKey },
    /// A mechanism the broker does not take (PLAIN, or NULL with CURVE).
    Mechanism { address: Vec<u8>, mechanism: Vec<u8> },
}

impl Refusal {
    /// The index of its kind's allowance in the handler's rate limits.
    fn kind(&self) -> usize {
        match self {
            Refusal::Malformed => 0,
            Refusal::Address { .. } => 1,
            Refusal::UnknownKey { .. } => 2,
            Refusal::Mechanism { .. } => 3,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed => write!(f, "malformed ZAP request answered 500"),
            Refusal::Address { address } => {
                write!(f, "connection from {} refused: not in --allow-ip", Text(address))
            }
            Refusal::UnknownKey { address, key } => write!(
                f,
                "connection from {} refused: CURVE key {key} is not in --curve-clients",
                Text(address)
            ),
            Refusal::Mechanism { address, mechanism } => write!(
                f,
                "connection from {} refused: the {} mechanism is not accepted",
                Text(address),
                Text(mechanism)
            ),
        }
    }
}

/// A reply's frames, and the refusal it carries if it refuses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub reply: Vec<Vec<u8>>,
    pub refusal: Option<Refusal>,
}

/// The reply to one request (its frames after the REP envelope: version,
/// request id, domain, address, identity, mechanism, credentials...).
/// 200 admits, with the peer's name as User-Id; 400 refuses; 500 answers
/// what is not a 27/ZAP 1.0 request.
pub(crate) fn decide(request: &[Vec<u8>], admission: &Admission) -> Decision {
    let request_id = request.get(1).cloned().unwrap_or_default();
    let reply = |status: &[u8], text: &str, user_id: &str| {
        vec![
            VERSION.to_vec(),
            request_id.clone(),
            status.to_vec(),
            text.as_bytes().to_vec(),
            user_id.as_bytes().to_vec(),
            Vec::new(),
        ]
    };
    let [version, _id, _domain, address, _identity, mechanism, credentials @ ..] = request else {
        return Decision {
            reply: reply(b"500", "malformed request", ""),
            refusal: Some(Refusal::Malformed),
        };
    };
    if version != VERSION {
        return Decision {
            reply: reply(b"500", "unsupported version", ""),
            refusal: Some(Refusal::Malformed),
        };
    }
    let refuse = |text: &str, refusal| Decision {
        reply: reply(b"400", text, ""),
        refusal: Some(refusal),
    };
    let address_text = String::from_utf8_lossy(address);
    if !admission.allow.admits(&address_text) {
        let address = address.clone();
        return refuse("address not allowed", Refusal::Address { address });
    }
    let mechanism_refused = || Refusal::Mechanism {
        address: address.clone(),
        mechanism: mechanism.clone(),
    };
    match (&mechanism[..], credentials, admission.curve) {
        (b"CURVE", [key], true) => {
            let Ok(key) = PublicKey::from_bytes(key) else {
                return refuse("malformed key", mechanism_refused());
            };
            match &admission.clients {
                None => Decision {
                    reply: reply(b"200", "OK", ""),
                    refusal: None,
                },
                Some(clients) => match clients.get(&key) {
                    Some(name) => Decision {
                        reply: reply(b"200", "OK", name),
                        refusal: None,
                    },
                    None => {
                        let address = address.clone();
                        refuse("key not known", Refusal::UnknownKey { address, key })
                    }
                },
            }
        }
        (b"NULL", [], false) => Decision {
            reply: reply(b"200", "OK", ""),
            refusal: None,
        },
        _ => refuse("mechanism not accepted", mechanism_refused()),
    }
}

/// Why the handler could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ZapError {
    /// A socket call failed (`what` says which).
    Socket {
        /// The call.
        what: &'static str,
        /// What libzmq said.
        source: zmq::Error,
    },
    /// The handler's thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for ZapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZapError::Socket { what, source } => write!(f, "ZAP handler: {what} failed: {source}"),
            ZapError::Thread(e) => write!(f, "ZAP handler: cannot start its thread: {e}"),
        }
    }
}

impl std::error::Error for ZapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZapError::Socket { source, .. } => Some(source),
            ZapError::Thread(e) => Some(e),
        }
    }
}

fn socket_call<T>(what: &'static str, result: Result<T, zmq::Error>) -> Result<T, ZapError> {
    result.map_err(|source| ZapError::Socket { what, source })
}

/// The running handler; dropping it stops its thread and waits for it.
pub(crate) struct ZapHandler {
    stop: zmq::Socket,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ZapHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZapHandler").finish_non_exhaustive()
    }
}

impl ZapHandler {
    /// Binds the handler in `context` (before the broker binds anything,
    /// as 27/ZAP requires) and starts its thread. If the thread ever ends
    /// unasked, it stops the broker through `broker`.
    pub(crate) fn start(
        context: &zmq::Context,
        admission: SharedAdmission,
        broker: StopHandle,
    ) -> Result<ZapHandler, ZapError> {
        let socket = socket_call("creating the REP socket", context.socket(zmq::REP))?;
        socket_call("setting the linger", socket.set_linger(0))?;
        socket_call("binding inproc://zeromq.zap.01", socket.bind(ENDPOINT))?;
        let stop_rx = socket_call("creating the stop socket", context.socket(zmq::PAIR))?;
        socket_call("binding the stop socket", stop_rx.bind(STOP_ENDPOINT))?;
        let stop = socket_call("creating the stop socket", context.socket(zmq::PAIR))?;
        socket_call("connecting the stop socket", stop.connect(STOP_ENDPOINT))?;
        let thread = std::thread::Builder::new()
            .name("zap-handler".into())
            .spawn(move || serve(socket, stop_rx, admission, broker))
            .map_err(ZapError::Thread)?;
        Ok(ZapHandler {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        // inproc PAIR: the message is queued even if the thread is busy.
        if self.stop.send(&b"stop"[..], zmq::DONTWAIT).is_err() {
            error!("cannot tell the ZAP handler to stop");
            return;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Stops the broker when dropped, unless disarmed: the handler's thread
/// holds one, so that however it ends unasked (error or panic), the
/// broker does not run on without it.
struct Watchdog(Option<StopHandle>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(broker) = self.0.take() {
            error!("the ZAP handler stopped: stopping the broker, which would otherwise admit peers unchecked");
            broker.stop();
        }
    }
}

/// The handler's thread: answers requests until told to stop.
fn serve(socket: zmq::Socket, stop: zmq::Socket, admission: SharedAdmission, broker: StopHandle) {
    let mut watchdog = Watchdog(Some(broker));
    let mut limits: [RateLimit; 4] = Default::default();
    match answer_until_stopped(&socket, &stop, &admission, &mut limits) {
        Ok(()) => watchdog.0 = None,
        Err(e) => error!("ZAP handler: {e}"),
    }
}

fn answer_until_stopped(
    socket: &zmq::Socket,
    stop: &zmq::Socket,
    admission: &SharedAdmission,
    limits: &mut [RateLimit; 4],
) -> Result<(), ZapError> {
    loop {
        let mut items = [socket.as_poll_item(zmq::POLLIN), stop.as_poll_item(zmq::POLLIN)];
        match zmq::poll(&mut items, -1) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(source) => return Err(ZapError::Socket { what: "poll", source }),
        }
        let [request_ready, stop_ready] = &items;
        if stop_ready.is_readable() {
            return Ok(());
        }
        if !request_ready.is_readable() {
            continue;
        }
        let request = match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(request) => request,
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => continue,
            Err(source) => {
                return Err(ZapError::Socket {
                    what: "receive",
                    source,
                });
            }
        };
        let current = Arc::clone(&admission.read().unwrap_or_else(PoisonError::into_inner));
        let decision = decide(&request, &current);
        if let Some(refusal) = &decision.refusal
            && let Some(limit) = limits.get_mut(refusal.kind())
            && let Some(held_back) = limit.allow(Instant::now())
        {
            warn!("{refusal} ({held_back} more since the last warning)");
        }
        socket_call("reply", socket.send_multipart(decision.reply, 0))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::KeyPair;
    use crate::security::allow::parse_net;

    fn request(address: &str, mechanism: &str, credentials: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut frames = vec![
            b"1.0".to_vec(),
            b"0001".to_vec(),
            DOMAIN.as_bytes().to_vec(),
            address.as_bytes().to_vec(),
            Vec::new(),
            mechanism.as_bytes().to_vec(),
        ];
        frames.extend(credentials.iter().map(|c| c.to_vec()));
        frames
    }

    /// (status, user id) of a reply, after checking its shape.
    fn status(decision: &Decision) -> (String, String) {
        let reply = &decision.reply;
        assert_eq!(reply.len(), 6, "{reply:?}");
        assert_eq!((&reply[0][..], &reply[1][..]), (&b"1.0"[..], &b"0001"[..]));
        let text = |i: usize| String::from_utf8(reply[i].clone()).expect("ASCII");
        assert_eq!(text(2) == "200", decision.refusal.is_none(), "{decision:?}");
        (text(2), text(4))
    }

    fn curve_with(clients: &[(&str, PublicKey)]) -> Admission {
        Admission {
            curve: true,
            clients: Some(clients.iter().map(|(name, key)| (*key, name.to_string())).collect()),
            allow: AllowList::default(),
        }
    }

    fn key() -> PublicKey {
        KeyPair::generate().expect("key pair").public
    }

    #[test]
    fn a_listed_key_is_admitted_with_its_name_as_user_id() {
        let alice = key();
        let admission = curve_with(&[("alice", alice)]);
        let decision = decide(&request("127.0.0.1", "CURVE", &[alice.as_bytes()]), &admission);
        assert_eq!(status(&decision), ("200".into(), "alice".into()));
    }

    #[test]
    fn an_unlisted_key_is_refused_400_and_named_in_the_refusal() {
        let admission = curve_with(&[("alice", key())]);
        let mallory = key();
        let decision = decide(&request("192.0.2.1", "CURVE", &[mallory.as_bytes()]), &admission);
        assert_eq!(status(&decision), ("400".into(), String::new()));
        let refusal = decision.refusal.expect("refused");
        assert_eq!(
            refusal.to_string(),
            format!("connection from 192.0.2.1 refused: CURVE key {mallory} is not in --curve-clients")
        );
    }

    #[test]
    fn without_a_client_list_any_key_is_admitted_without_a_name() {
        let admission = Admission {
            curve: true,
            ..Admission::default()
        };
        let decision = decide(&request("127.0.0.1", "CURVE", &[key().as_bytes()]), &admission);
        assert_eq!(status(&decision), ("200".into(), String::new()));
    }

    #[test]
    fn null_and_plain_are_refused_under_curve_and_curve_without_it() {
        let curve = curve_with(&[]);
        for (mechanism, credentials) in [("NULL", &[][..]), ("PLAIN", &[&b"u"[..], b"p"])] {
            let decision = decide(&request("127.0.0.1", mechanism, credentials), &curve);
            assert_eq!(status(&decision).0, "400", "{mechanism}");
        }
        let null = Admission::default();
        assert_eq!(status(&decide(&request("127.0.0.1", "NULL", &[]), &null)).0, "200");
        let decision = decide(&request("127.0.0.1", "CURVE", &[key().as_bytes()]), &null);
        assert_eq!(status(&decision).0, "400");
    }

    #[test]
    fn addresses_outside_the_allow_list_are_refused_whatever_the_key() {
        let alice = key();
        let mut admission = curve_with(&[("alice", alice)]);
        admission.allow = AllowList::new(vec![parse_net("127.0.0.2").expect("valid")]);
        let from = |address| decide(&request(address, "CURVE", &[alice.as_bytes()]), &admission);
        assert_eq!(status(&from("127.0.0.2")), ("200".into(), "alice".into()));
        let refused = from("127.0.0.3");
        assert_eq!(status(&refused).0, "400");
        assert_eq!(
            refused.refusal.map(|r| r.to_string()),
            Some("connection from 127.0.0.3 refused: not in --allow-ip".into())
        );
    }

    #[test]
    fn malformed_requests_get_500_never_a_panic() {
        let admission = curve_with(&[]);
        let short_key = request("127.0.0.1", "CURVE", &[b"short"]);
        assert_eq!(status(&decide(&short_key, &admission)).0, "400");
        let two_keys = request("127.0.0.1", "CURVE", &[&[0; 32], &[0; 32]]);
        assert_eq!(status(&decide(&two_keys, &admission)).0, "400");
        let mut wrong_version = request("127.0.0.1", "NULL", &[]);
        wrong_version[0] = b"2.0".to_vec();
        assert_eq!(status(&decide(&wrong_version, &admission)).0, "500");
        for frames in 0..6 {
            let truncated = &request("127.0.0.1", "NULL", &[])[..frames];
            let decision = decide(truncated, &admission);
            assert_eq!(decision.reply[2], b"500");
            assert_eq!(decision.refusal, Some(Refusal::Malformed));
        }
        let hostile = request("\n\x1b[31mfake", "NU\nLL", &[]);
        let decision = decide(&hostile, &Admission::default());
        let line = decision.refusal.expect("refused").to_string();
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
    }
}
