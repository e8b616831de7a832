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
//! Only requests taken back at least once are tracked, so the common path
//! costs one `is_empty` check.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::frame::Frame;
use crate::protocol::Dialect;

use super::clients::Connection;
use super::service::Request;

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
    /// For an MDP/0.1 client: `false` once a PARTIAL of this delivery could
    /// not be gathered into its one REPLY, which would then be incomplete.
    pub complete: bool,
}

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

/// Requests taken back from deleted workers.
#[derive(Debug)]
pub struct Reclaimed {
    /// By the deleted worker's routing id (a worker holds one request).
    held: HashMap<Box<[u8]>, Held>,
    /// Reply ownership of each tracked request, with its number of records
    /// in `expiry` (it is kept until the last expires, so that a request
    /// answered by a late reply stays answered for the retention).
    owners: HashMap<u64, (Owner, usize)>,
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
            owners: HashMap::new(),
            expiry: VecDeque::new(),
            retention,
        }
    }

    /// Whether nothing is tracked (the common case, checked first).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Remembers that the deleted worker `worker` held `request`.
    pub fn record(&mut self, worker: &[u8], request: &Request, complete: bool, now: Instant) {
        self.held.insert(
            worker.into(),
            Held {
                client: request.client.share(),
                dialect: request.dialect,
                connection: request.connection,
                service: request.service.share(),
                request: request.id,
                delivery: request.deliveries,
                complete,
            },
        );
        // A delivery whose stream has begun owns the reply already.
        let owner = if request.streamed {
            Owner::Delivery(request.deliveries)
        } else {
            Owner::Open
        };
        self.owners.entry(request.id).or_insert((owner, 0)).1 += 1;
        self.expiry.push_back((now + self.retention, worker.into(), request.id));
    }

    /// What the deleted worker `worker` held for `client`, if anything.
    pub fn held(&self, worker: &[u8], client: &[u8]) -> Option<&Held> {
        self.held.get(worker).filter(|held| held.client[..] == *client)
    }

    /// A part of the deleted worker's reply could not reach its MDP/0.1
    /// client: its FINAL alone would be an incomplete REPLY.
    pub fn incomplete(&mut self, worker: &[u8]) {
        if let Some(held) = self.held.get_mut(worker) {
            held.complete = false;
        }
    }

    /// Whether the deleted worker `worker` may still send a reply.
    pub fn awaits(&self, worker: &[u8]) -> bool {
        self.held.contains_key(worker)
    }

    /// Whether `request` has been answered (so it is not dispatched again).
    pub fn answered(&self, request: u64) -> bool {
        matches!(self.owners.get(&request), Some((Owner::Answered, _)))
    }

    /// A part of the reply to `request` from its `delivery`: whether it
    /// goes to the client, recording who owns the reply. `last` is the
    /// FINAL (or MDP/0.1 REPLY).
    pub fn claim(&mut self, request: u64, delivery: u32, last: bool) -> Verdict {
        let Some((owner, _)) = self.owners.get_mut(&request) else {
            return Verdict::Forward;
        };
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

    /// The deleted worker `worker` sent its FINAL: it is done.
    pub fn finished(&mut self, worker: &[u8]) {
        self.held.remove(worker);
    }

    /// Forgets what was recorded `retention` ago or earlier.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, worker, request)) = self.expiry.front() {
            if *at > now {
                return;
            }
            if self.held.get(worker).is_some_and(|held| held.request == *request) {
                self.held.remove(worker);
            }
            let request = *request;
            self.release(request);
            self.expiry.pop_front();
        }
    }

    fn release(&mut self, request: u64) {
        if let Some((_, entries)) = self.owners.get_mut(&request) {
            *entries -= 1;
            if *entries == 0 {
                self.owners.remove(&request);
            }
        }
    }
}
