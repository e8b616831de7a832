//! Requests taken back from workers that were taken for dead, so that a
//! reply that comes after all still reaches its client, once.
//!
//! A worker is deleted when it is silent for liveness x interval (or past
//! the busy timeout), and its request goes to another worker. But silence
//! is not death: a worker behind a slow link sends its heartbeats and then
//! a large reply, and the heartbeats queue behind the reply on the same
//! connection; a worker on a paused host resumes. Throwing its reply away
//! when it arrives, as the broker once did, made the request run again and
//! again and, with every worker behind a slow link, never be answered.
//!
//! So the broker remembers, for a while, which request each deleted worker
//! held. A reply from that worker (now unknown) for that request is still
//! delivered if the client has not been answered. One reply per request:
//! the first delivery to send a part of the reply owns it (for MDP/0.1 the
//! REPLY; for MDP/0.2 its first PARTIAL or its FINAL), and the parts of any
//! other delivery are dropped and counted; a request answered while it
//! waits for redelivery is not dispatched again. A reply slower to arrive
//! than liveness x interval therefore means the request may run more than
//! once (at-least-once execution), never that its client gets two replies.
//!
//! Only requests taken back at least once carry an ownership record, so
//! the common path costs one `Option` check.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::frame::Frame;
use crate::protocol::Dialect;

use super::clients::Connection;
use super::service::Request;

/// Who may send a request's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// No delivery has sent a part yet.
    Open,
    /// This delivery sent the first part; others are dropped.
    Delivery(u32),
    /// The client has its FINAL.
    Answered,
}

/// Whether a part of a reply goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Forward,
    /// Drop it: another delivery owns the reply, or it was answered.
    Drop,
}

/// Who owns a taken-back request's reply, shared by the request (wherever
/// it goes: its queue, another worker) and by the record of each deleted
/// worker that held it, so that it lasts exactly as long as either does:
/// no delivery can answer a second time, however late.
#[derive(Debug, Clone)]
pub struct Ownership(Arc<Mutex<Owner>>);

impl Ownership {
    /// Ownership of a request taken back from its `delivery`: already that
    /// delivery's if its stream had begun, else open.
    fn new(delivery: u32, streamed: bool) -> Ownership {
        let owner = if streamed {
            Owner::Delivery(delivery)
        } else {
            Owner::Open
        };
        Ownership(Arc::new(Mutex::new(owner)))
    }

    fn owner(&self) -> std::sync::MutexGuard<'_, Owner> {
        // Nothing can panic while holding it; and a poisoned owner is still
        // the last one written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A part of the reply from `delivery`: whether it goes to the client,
    /// recording who owns the reply. `last` is the FINAL (MDP/0.1 REPLY).
    pub fn claim(&self, delivery: u32, last: bool) -> Verdict {
        let mut owner = self.owner();
        match *owner {
            Owner::Answered => Verdict::Drop,
            Owner::Delivery(d) if d != delivery => Verdict::Drop,
            _ => {
                *owner = if last {
                    Owner::Answered
                } else {
                    Owner::Delivery(delivery)
                };
                Verdict::Forward
            }
        }
    }

    /// Whether no delivery has sent a part yet (so another may run it).
    pub fn is_open(&self) -> bool {
        *self.owner() == Owner::Open
    }
}

/// What the broker keeps of a request a deleted worker held.
#[derive(Debug)]
pub struct Held {
    /// The client's routing id.
    pub client: Frame,
    /// How the client frames its commands.
    pub dialect: Dialect,
    /// The client connection the request came on.
    pub connection: Connection,
    /// The service name, for the reply.
    pub service: Frame,
    /// The request's id.
    pub request: u64,
    /// Which delivery of the request the worker had.
    pub delivery: u32,
    /// Who owns the reply (shared with the request).
    pub ownership: Ownership,
    /// For an MDP/0.1 client: `false` once a PARTIAL of this delivery could
    /// not be gathered into its one REPLY, which would then be incomplete.
    pub complete: bool,
}

/// Requests taken back from deleted workers.
#[derive(Debug)]
pub struct Reclaimed {
    /// By the deleted worker's routing id (a worker holds one request).
    held: HashMap<Box<[u8]>, Held>,
    /// Entries of `held` in the order they expire.
    expiry: VecDeque<(Instant, Box<[u8]>, u64)>,
    /// How long a deleted worker's reply is waited for.
    retention: Duration,
}

impl Reclaimed {
    /// Nothing tracked; replies are waited for `retention`.
    pub fn new(retention: Duration) -> Reclaimed {
        Reclaimed {
            held: HashMap::new(),
            expiry: VecDeque::new(),
            retention,
        }
    }

    /// Remembers that the deleted worker `worker` held `request`, and makes
    /// the request's reply ownership shared (if it was not already).
    pub fn record(&mut self, worker: &[u8], request: &mut Request, complete: bool, now: Instant) {
        let ownership = request
            .ownership
            .get_or_insert_with(|| Ownership::new(request.deliveries, request.streamed))
            .clone();
        self.held.insert(
            worker.into(),
            Held {
                client: request.client.share(),
                dialect: request.dialect,
                connection: request.connection,
                service: request.service.share(),
                request: request.id,
                delivery: request.deliveries,
                ownership,
                complete,
            },
        );
        self.expiry.push_back((now + self.retention, worker.into(), request.id));
    }

    /// What the deleted worker `worker` held for `client`, if anything.
    pub fn held(&self, worker: &[u8], client: &[u8]) -> Option<&Held> {
        self.held.get(worker).filter(|held| held.client[..] == *client)
    }

    /// Whether the deleted worker `worker` may still send a reply.
    pub fn awaits(&self, worker: &[u8]) -> bool {
        self.held.contains_key(worker)
    }

    /// A part of the deleted worker's reply could not reach its MDP/0.1
    /// client: its FINAL alone would be an incomplete REPLY.
    pub fn incomplete(&mut self, worker: &[u8]) {
        if let Some(held) = self.held.get_mut(worker) {
            held.complete = false;
        }
    }

    /// The deleted worker `worker` sent its FINAL: it is done.
    pub fn finished(&mut self, worker: &[u8]) {
        self.held.remove(worker);
    }

    /// Forgets the records made `retention` ago or earlier (a request still
    /// alive keeps its ownership).
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, worker, request)) = self.expiry.front() {
            if *at > now {
                return;
            }
            if self.held.get(worker).is_some_and(|held| held.request == *request) {
                self.held.remove(worker);
            }
            self.expiry.pop_front();
        }
    }
}
