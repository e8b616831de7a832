//! Replies waiting for a client that reads slowly.
//!
//! libzmq queues at most `SNDHWM` messages (1,000) for one peer; past that
//! a non-blocking send fails with `EAGAIN`. Dropping that message, as the
//! broker once did, left holes in the middle of an MDP/0.2 stream and then
//! delivered its FINAL as if it were complete. Here a client whose pipe is
//! full gets a backlog of its own: its replies wait in order and are sent
//! as its pipe frees (the I/O loop retries every [`RETRY_INTERVAL`] while
//! any backlog is waiting), so a client that reads slowly, but within the
//! bounds, gets every part.
//!
//! Memory is bounded per client ([`Config::max_client_backlog`]) and for
//! all clients together ([`Config::max_total_backlog`]). A reply that would
//! cross a bound is not kept, and neither is anything else of its stream
//! after it: the stream **stops without its FINAL**, so the client's
//! timeout and retry apply (18/MDP), and never sees a complete-looking
//! stream with a hole in it. Broken streams are counted and logged
//! (warn, at most one line every 10 s: `ratelimit`).
//!
//! A client with a backlog does not read its replies as fast as they
//! come: the broker hands out no more of its requests until its backlog
//! has drained (see `queue`). The I/O loop learns who starts and stops
//! having one from [`Backlog::take_changes`].
//!
//! Why a backlog in the broker rather than only a larger `SNDHWM`: libzmq's
//! bound counts messages, not bytes, for every peer alike, workers
//! included; a byte bound per client and in total is what an operator can
//! size memory by.
//!
//! [`Config::max_client_backlog`]: super::Config::max_client_backlog
//! [`Config::max_total_backlog`]: super::Config::max_total_backlog

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::frame::Frame;
use crate::hex::Hex;

use super::core::StreamPart;
use super::ratelimit::RateLimit;

/// How often the I/O loop retries sending backlogs while any is waiting.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(2);
/// Most broken streams remembered at once.
const MAX_BROKEN: usize = 4096;
/// What one frame costs beyond its bytes (the frame and libzmq's message).
const FRAME_OVERHEAD: usize = 96;

/// What became of a reply offered to a client.
#[derive(Debug)]
pub enum Offer {
    /// Send it now (the client has nothing waiting).
    Send(Vec<Frame>),
    /// Kept behind the client's earlier replies.
    Held,
    /// Not kept: its stream is broken.
    Dropped,
}

/// Why a send to a client failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its pipe is full (`EAGAIN`): it may free up.
    Full,
    /// It is gone (`EHOSTUNREACH`, or anything else).
    Gone,
}

/// One reply waiting, with its stream and its cost in bytes.
#[derive(Debug)]
struct Waiting {
    frames: Vec<Frame>,
    part: StreamPart,
    bytes: usize,
}

/// One client's waiting replies, oldest first.
#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    bytes: usize,
}

/// Counts since the broker started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogStats {
    /// Streams stopped (without their FINAL) because a bound was reached.
    pub streams_broken: u64,
    /// Replies not kept: the broken streams' remaining parts.
    pub replies_dropped: u64,
    /// Replies discarded because their client had gone.
    pub replies_for_departed_clients: u64,
}

/// The backlogs of every client that has one.
#[derive(Debug)]
pub struct Backlog {
    queues: HashMap<Box<[u8]>, Queue>,
    /// Streams (requests) broken: their remaining parts are dropped until
    /// their last part passes. Bounded: the oldest are forgotten past
    /// [`MAX_BROKEN`] (a stream whose FINAL never comes).
    broken: HashSet<u64>,
    broken_order: VecDeque<u64>,
    bytes: usize,
    max_client: usize,
    max_total: usize,
    warnings: RateLimit,
    stats: BacklogStats,
    /// Clients whose backlog may have started or ended since the last
    /// [`Backlog::take_changes`].
    changed: Vec<Box<[u8]>>,
    /// Clients last reported as having a backlog.
    reported: HashSet<Box<[u8]>>,
}

impl Backlog {
    /// No backlog yet, with these bounds in bytes.
    pub fn new(max_client: usize, max_total: usize) -> Backlog {
        Backlog {
            queues: HashMap::new(),
            broken: HashSet::new(),
            broken_order: VecDeque::new(),
            bytes: 0,
            max_client,
            max_total,
            warnings: RateLimit::default(),
            stats: BacklogStats::default(),
            changed: Vec::new(),
            reported: HashSet::new(),
        }
    }

    /// What has been counted.
    pub fn stats(&self) -> &BacklogStats {
        &self.stats
    }

    /// Bytes waiting, all clients together.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reports each client whose backlog started (`true`) or ended
    /// (`false`) since the last call; a backlog that ended and started
    /// again in between (a retry that filled the pipe again) is no change.
    pub fn take_changes(&mut self, mut report: impl FnMut(&[u8], bool)) {
        for client in std::mem::take(&mut self.changed) {
            let waiting = self.queues.contains_key(&client);
            if waiting == self.reported.contains(&client) {
                continue;
            }
            report(&client, waiting);
            if waiting {
                self.reported.insert(client);
            } else {
                self.reported.remove(&client);
            }
        }
    }

    /// Whether any reply is waiting (the loop should retry soon).
    pub fn is_waiting(&self) -> bool {
        !self.queues.is_empty()
    }

    /// A reply for a client (`frames[0]` is its routing id): sent now if the
    /// client has nothing waiting, else kept in order behind the rest.
    pub fn offer(&mut self, frames: Vec<Frame>, part: StreamPart, now: Instant) -> Offer {
        // The common case, no backlog at all, costs no hashing.
        if self.queues.is_empty() && self.broken.is_empty() {
            return Offer::Send(frames);
        }
        if self.is_broken(part) {
            return Offer::Dropped;
        }
        let Some(client) = frames.first() else {
            return Offer::Dropped;
        };
        if !self.queues.contains_key(&client[..]) {
            return Offer::Send(frames);
        }
        if self.keep(frames, part, now) {
            Offer::Held
        } else {
            Offer::Dropped
        }
    }

    /// A send to a client failed: keep the reply (at the back, since nothing
    /// was waiting) if its pipe may free up and the bounds allow.
    pub fn failed(&mut self, frames: Vec<Frame>, part: StreamPart, failure: Failure, now: Instant) {
        match failure {
            Failure::Full => {
                self.keep(frames, part, now);
            }
            Failure::Gone => self.client_gone(frames.first().map(|f| &f[..]).unwrap_or_default(), part),
        }
    }

    /// Sends what is waiting, oldest first, with `send`, until each client's
    /// pipe is full again or its backlog is empty.
    pub fn retry(&mut self, mut send: impl FnMut(Vec<Frame>) -> Result<(), (Failure, Vec<Frame>)>) {
        let clients: Vec<Box<[u8]>> = self.queues.keys().cloned().collect();
        for client in clients {
            while let Some(waiting) = self.pop(&client) {
                let part = waiting.part;
                match send(waiting.frames) {
                    Ok(()) => self.finished(part),
                    Err((Failure::Full, frames)) => {
                        self.push_front(&client, Waiting { frames, ..waiting });
                        break;
                    }
                    Err((Failure::Gone, _)) => {
                        self.client_gone(&client, part);
                        break;
                    }
                }
            }
        }
    }

    fn is_broken(&mut self, part: StreamPart) -> bool {
        if !self.broken.contains(&part.request) {
            return false;
        }
        self.stats.replies_dropped += 1;
        self.finished(part);
        true
    }

    /// A stream's last part has left (or been dropped): forget it.
    fn finished(&mut self, part: StreamPart) {
        if part.last {
            self.broken.remove(&part.request);
        }
    }

    /// Keeps a reply at the back of its client's backlog; `false` if a
    /// bound broke its stream instead.
    fn keep(&mut self, frames: Vec<Frame>, part: StreamPart, now: Instant) -> bool {
        let bytes = frames.iter().map(|f| f.len() + FRAME_OVERHEAD).sum::<usize>();
        let client: Box<[u8]> = frames.first().map(|f| f[..].into()).unwrap_or_default();
        let queued = self.queues.get(&client).map_or(0, |q| q.bytes);
        if queued + bytes > self.max_client || self.bytes + bytes > self.max_total {
            self.break_stream(&client, part, now);
            return false;
        }
        if !self.queues.contains_key(&client) {
            self.changed.push(client.clone());
        }
        let queue = self.queues.entry(client).or_default();
        queue.bytes += bytes;
        queue.waiting.push_back(Waiting { frames, part, bytes });
        self.bytes += bytes;
        true
    }

    fn break_stream(&mut self, client: &[u8], part: StreamPart, now: Instant) {
        self.stats.streams_broken += 1;
        self.stats.replies_dropped += 1;
        if !part.last && self.broken.insert(part.request) {
            self.broken_order.push_back(part.request);
            if self.broken_order.len() > MAX_BROKEN
                && let Some(oldest) = self.broken_order.pop_front()
            {
                self.broken.remove(&oldest);
            }
        }
        if let Some(held_back) = self.warnings.allow(now) {
            warn!(
                "reply stream to client {} stopped without its FINAL: the client reads too slowly \
                 ({} bytes waiting for it, {} in all; {held_back} more since the last warning)",
                Hex(client),
                self.queues.get(client).map_or(0, |q| q.bytes),
                self.bytes,
            );
        }
    }

    fn client_gone(&mut self, client: &[u8], part: StreamPart) {
        self.finished(part);
        self.stats.replies_for_departed_clients += 1;
        self.closed(client);
    }

    /// `client`'s connection closed: what waits for it is dropped, so that
    /// a routing id that connects again does not get it.
    pub fn closed(&mut self, client: &[u8]) {
        let Some(queue) = self.queues.remove(client) else {
            return;
        };
        self.changed.push(client.into());
        self.bytes -= queue.bytes;
        for waiting in &queue.waiting {
            self.finished(waiting.part);
        }
        self.stats.replies_for_departed_clients += queue.waiting.len() as u64;
        debug!(
            "client {} gone: {} waiting replies dropped",
            Hex(client),
            queue.waiting.len()
        );
    }

    fn pop(&mut self, client: &[u8]) -> Option<Waiting> {
        let queue = self.queues.get_mut(client)?;
        let waiting = queue.waiting.pop_front()?;
        queue.bytes -= waiting.bytes;
        self.bytes -= waiting.bytes;
        if queue.waiting.is_empty() {
            self.queues.remove(client);
            self.changed.push(client.into());
        }
        Some(waiting)
    }

    fn push_front(&mut self, client: &[u8], waiting: Waiting) {
        if !self.queues.contains_key(client) {
            self.changed.push(client.into());
        }
        self.bytes += waiting.bytes;
        let queue = self.queues.entry(client.into()).or_default();
        queue.bytes += waiting.bytes;
        queue.waiting.push_front(waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(client: &str, body: usize) -> Vec<Frame> {
        vec![Frame::from(client), Frame::from_vec(vec![0; body])]
    }

    fn part(request: u64, last: bool) -> StreamPart {
        StreamPart { request, last }
    }

    /// A fake pipe that takes `room` messages, recording their bodies' sizes.
    fn pipe(room: &mut usize, got: &mut Vec<usize>) -> impl FnMut(Vec<Frame>) -> Result<(), (Failure, Vec<Frame>)> {
        move |frames| {
            if *room == 0 {
                return Err((Failure::Full, frames));
            }
            *room -= 1;
            got.push(frames[1].len());
            Ok(())
        }
    }

    #[test]
    fn a_slow_clients_replies_wait_in_order_and_leave_as_its_pipe_frees() {
        let now = Instant::now();
        let mut backlog = Backlog::new(1 << 20, 1 << 30);
        assert!(matches!(
            backlog.offer(reply("c", 1), part(1, false), now),
            Offer::Send(_)
        ));
        backlog.failed(reply("c", 1), part(1, false), Failure::Full, now);
        for n in 2..=5 {
            assert!(matches!(
                backlog.offer(reply("c", n), part(1, n == 5), now),
                Offer::Held
            ));
        }
        // Another client is not held up.
        assert!(matches!(
            backlog.offer(reply("d", 9), part(2, true), now),
            Offer::Send(_)
        ));
        let (mut room, mut got) = (2, Vec::new());
        backlog.retry(pipe(&mut room, &mut got));
        assert_eq!(got, vec![1, 2]);
        assert!(backlog.is_waiting());
        let (mut room, mut got) = (10, Vec::new());
        backlog.retry(pipe(&mut room, &mut got));
        assert_eq!(got, vec![3, 4, 5]);
        assert!(!backlog.is_waiting());
        assert_eq!(backlog.bytes(), 0);
    }

    #[test]
    fn past_the_client_bound_the_stream_stops_without_its_final() {
        let now = Instant::now();
        let per_reply = 100 + 2 * FRAME_OVERHEAD + 1;
        let mut backlog = Backlog::new(3 * per_reply, 1 << 30);
        backlog.failed(reply("c", 100), part(7, false), Failure::Full, now);
        backlog.offer(reply("c", 100), part(7, false), now);
        backlog.offer(reply("c", 100), part(7, false), now);
        // The fourth part crosses the bound: it and the rest are dropped.
        assert!(matches!(
            backlog.offer(reply("c", 100), part(7, false), now),
            Offer::Dropped
        ));
        assert!(matches!(
            backlog.offer(reply("c", 100), part(7, false), now),
            Offer::Dropped
        ));
        assert!(matches!(
            backlog.offer(reply("c", 5), part(7, true), now),
            Offer::Dropped
        ));
        assert_eq!(backlog.stats().streams_broken, 1);
        assert_eq!(backlog.stats().replies_dropped, 3);
        let (mut room, mut got) = (100, Vec::new());
        backlog.retry(pipe(&mut room, &mut got));
        assert_eq!(got, vec![100, 100, 100], "the parts before the break, and no FINAL");
        // The next stream to the same client starts afresh.
        assert!(matches!(
            backlog.offer(reply("c", 1), part(8, true), now),
            Offer::Send(_)
        ));
    }

    #[test]
    fn the_total_bound_holds_across_clients_and_a_gone_client_frees_its_share() {
        let now = Instant::now();
        let per_reply = 10 + 2 * FRAME_OVERHEAD + 1;
        let mut backlog = Backlog::new(1 << 20, 2 * per_reply);
        backlog.failed(reply("a", 10), part(1, false), Failure::Full, now);
        backlog.failed(reply("b", 10), part(2, false), Failure::Full, now);
        backlog.failed(reply("c", 10), part(3, true), Failure::Full, now);
        assert_eq!(backlog.stats().streams_broken, 1);
        let mut calls = 0;
        backlog.retry(|_| {
            calls += 1;
            Err((Failure::Gone, Vec::new()))
        });
        assert_eq!(calls, 2);
        assert_eq!((backlog.bytes(), backlog.is_waiting()), (0, false));
        assert_eq!(backlog.stats().replies_for_departed_clients, 2);
    }
}
