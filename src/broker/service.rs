//! A service: the requests waiting for it (`queue`) and the queue of its
//! idle workers, least recently used first.
//!
//! The idle queue is a `VecDeque` of `(worker, ticket)` pairs with lazy
//! deletion: a worker that leaves while idle is not searched for; its entry
//! goes stale (the worker's current ticket no longer matches) and is
//! skipped when it reaches the front. Stale entries are counted and swept
//! out once they outnumber live ones, so every operation stays O(1)
//! amortised whatever the number of workers.

use std::collections::VecDeque;
use std::time::Instant;

use crate::frame::Frame;
use crate::protocol::Dialect;

use super::clients::Connection;
use super::core::WorkerKey;
use super::queue::Queue;
use super::reclaimed::Ownership;

/// Stale idle entries are swept only past this many, so that a service
/// with a handful of workers never sweeps.
const SWEEP_MIN_STALE: usize = 16;

/// A client's request once it has left its client's lane (see `queue`),
/// kept by the broker until its final reply has gone out: held by the
/// worker processing it, or waiting for redelivery.
#[derive(Debug)]
pub struct Request {
    /// Names it (and its reply stream) for the broker's life.
    pub id: u64,
    /// The client's routing identity, as the ROUTER socket gave it.
    pub client: Frame,
    /// The client connection it came on.
    pub connection: Connection,
    /// How the client framed its request; the reply is framed the same way.
    pub dialect: Dialect,
    /// The service name frame, echoed in the reply.
    pub service: Frame,
    /// The body, shared (not copied) with each worker it is sent to.
    pub body: Box<[Frame]>,
    /// How many workers it has been handed to so far.
    pub deliveries: u32,
    /// Whether a part of its reply (a PARTIAL) has reached the client: the
    /// reply then belongs to that delivery, and the request is not handed
    /// to another worker (the client would get two streams spliced).
    pub streamed: bool,
    /// Who owns its reply, once it has been taken back from a worker taken
    /// for dead (shared with that worker's record; see `reclaimed`).
    pub ownership: Option<Ownership>,
}

/// One service and its two queues.
#[derive(Debug)]
pub struct Service {
    /// The name workers registered and clients ask for (a frame of its
    /// own, shared into every request handed out and every reply).
    pub name: Frame,
    /// Requests waiting for a worker.
    pub queue: Queue,
    /// Idle workers, least recently used first (may hold stale entries).
    idle: VecDeque<(WorkerKey, u64)>,
    /// How many entries of `idle` are stale.
    stale_idle: usize,
    /// Registered workers, idle or busy.
    pub workers: usize,
    /// The instant of this service's request-expiry timer entry, if any.
    pub expiry_timer: Option<Instant>,
}

impl Service {
    /// An empty service; `expires` says whether its requests expire.
    pub fn new(name: &[u8], expires: bool) -> Service {
        Service {
            name: Frame::from_slice(name),
            queue: Queue::new(expires),
            idle: VecDeque::new(),
            stale_idle: 0,
            workers: 0,
            expiry_timer: None,
        }
    }

    /// Appends a worker to the back of the idle queue under `ticket`.
    pub fn push_idle(&mut self, worker: WorkerKey, ticket: u64) {
        self.idle.push_back((worker, ticket));
    }

    /// Pops the least recently used idle worker, skipping stale entries:
    /// `is_live` says whether an entry is still its worker's current one.
    pub fn pop_idle(&mut self, is_live: impl Fn(WorkerKey, u64) -> bool) -> Option<WorkerKey> {
        while let Some((worker, ticket)) = self.idle.pop_front() {
            if is_live(worker, ticket) {
                return Some(worker);
            }
            self.stale_idle = self.stale_idle.saturating_sub(1);
        }
        None
    }

    /// Records that an idle worker left; sweeps stale entries once they
    /// are the majority.
    pub fn forget_idle(&mut self, is_live: impl Fn(WorkerKey, u64) -> bool) {
        self.stale_idle += 1;
        if self.stale_idle > SWEEP_MIN_STALE && self.stale_idle * 2 > self.idle.len() {
            self.idle.retain(|&(worker, ticket)| is_live(worker, ticket));
            self.stale_idle = 0;
        }
    }

    /// Whether the service holds nothing and can be dropped.
    pub fn is_unused(&self) -> bool {
        self.workers == 0 && self.queue.is_empty()
    }
}
