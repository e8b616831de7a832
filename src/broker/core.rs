//! The broker's protocol state: services, workers, queues and timers,
//! with no socket (see the module docs of [`crate::broker`]).
//!
//! Rules this module keeps, each in one place:
//!
//! * a request goes to the least recently used idle worker of its service,
//!   clients of a service taking turns (`Broker::dispatch`, `queue`); at
//!   most [`Config::max_queued`] wait per service (`Broker::client_request`);
//! * a worker holding a request that dies, disconnects or is disconnected
//!   gives the request back to the head of its queue, up to
//!   [`Config::max_deliveries`] deliveries (`Broker::delete_worker`);
//! * a worker silent for liveness x interval is deleted, whatever its place
//!   in any queue; a busy worker that never heartbeated while busy gets
//!   [`Config::busy_timeout`] instead, and one that heartbeats while busy
//!   gets DISCONNECT once it has held one request for the busy timeout
//!   (`Worker::deadline`, `Broker::worker_timer`);
//! * a client that does not read its replies gets no more requests handed
//!   out until it reads again (`Broker::client_blocked`);
//! * a valid but unexpected worker command gets DISCONNECT and the worker is
//!   forgotten (`Broker::violation`); an invalid message is dropped.
//!
//! Replies go back in the dialect the client used. An MDP/0.2 client served
//! by an MDP/0.1 worker gets the REPLY as FINAL. An MDP/0.1 client served by
//! an MDP/0.2 worker gets one REPLY with the frames of every PARTIAL and
//! then the FINAL's (MDP/0.1 cannot express PARTIAL), gathered within the
//! backlog bounds; past them, no reply (`Broker::gather`).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::frame::Frame;
use crate::hex::{Hex, Text};
use crate::protocol::{
    self, ClientReply, ClientRequest, Dialect, FromWorker, Inbound, ProtocolError, ReplyKind, ToWorker,
};

use super::access::{Access, Open};
use super::clients::{Clients, Connection};
use super::clock::Clock;
use super::config::Config;
use super::expired::{Expired, Silent};
use super::mmi;
use super::queue::{Pushed, Skipped, Waiting, shrink_map};
use super::ratelimit::RateLimit;
use super::reclaimed::{Ownership, Reclaimed, Verdict};
use super::service::{Request, Service};
use super::stats::Stats;
use super::timers::{Grid, Timers};
use super::worker::{Gathered, Job, Registration, Worker};

/// Names one registered worker for as long as it lives; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerKey(u64);

/// Names one service for as long as it exists; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKey(u64);

/// Which reply stream a message to a client belongs to: one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPart {
    /// The request this replies to (unique for the broker's life).
    pub request: u64,
    /// Whether this is its FINAL (or MDP/0.1 REPLY).
    pub last: bool,
}

/// One allowance per kind of warning a peer can cause (see `ratelimit`).
#[derive(Debug)]
struct Warnings {
    refused_ready: RateLimit,
    invalid_message: RateLimit,
    unknown_worker: RateLimit,
    heartbeat_mismatch: RateLimit,
    gathered_too_large: RateLimit,
    violation: RateLimit,
    queue_full: RateLimit,
    busy_timeout: RateLimit,
    late_reply: RateLimit,
    max_deliveries: RateLimit,
    request_too_large: RateLimit,
    /// Lines each worker causes once in normal running (registered,
    /// deleted), which only a misbehaving peer floods.
    worker_lines: RateLimit,
}

impl Default for Warnings {
    fn default() -> Warnings {
        Warnings {
            refused_ready: RateLimit::default(),
            invalid_message: RateLimit::default(),
            unknown_worker: RateLimit::default(),
            heartbeat_mismatch: RateLimit::default(),
            gathered_too_large: RateLimit::default(),
            violation: RateLimit::default(),
            queue_full: RateLimit::default(),
            busy_timeout: RateLimit::default(),
            late_reply: RateLimit::default(),
            max_deliveries: RateLimit::default(),
            request_too_large: RateLimit::default(),
            worker_lines: RateLimit::with_burst(WORKER_LINES_PER_WINDOW),
        }
    }
}

/// Frames a worker's reply has around its body, at most (MDP/0.1: empty,
/// header, command, client address, empty).
const REPLY_FRAMES: usize = 6;
/// Bytes a worker's reply has around its body, at most: header and command
/// (7), a client address (libzmq allows 255) and room to spare.
const REPLY_BYTES: u64 = 512;

/// How many worker registration and deletion lines are written per 10 s
/// before they are held back (and counted): a restart of many workers logs
/// this many, a peer that registers in a loop no more.
const WORKER_LINES_PER_WINDOW: u32 = 200;

/// The client a reply goes to, and the request (stream) it answers.
struct ReplyTo {
    client: Frame,
    dialect: Dialect,
    request: u64,
}

impl ReplyTo {
    fn request(request: &Request) -> ReplyTo {
        ReplyTo {
            client: request.client.share(),
            dialect: request.dialect,
            request: request.id,
        }
    }
}

/// Who an outbound message is for, which says what a failed send means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// A client, with the reply stream the message belongs to: if its pipe
    /// is full the reply waits (see `backlog`); if it is gone, it is lost.
    Client(StreamPart),
    /// A registered worker: if it cannot be reached, it is dead.
    Worker(WorkerKey),
    /// A registered worker, and the message hands it a request: if it
    /// cannot be reached, the request was never delivered.
    WorkerRequest(WorkerKey),
    /// A worker the broker has already forgotten (DISCONNECT).
    Departing,
}

/// A message for the I/O loop to send: the first frame is the identity.
#[derive(Debug)]
pub struct Outbound {
    /// Who it is for.
    pub recipient: Recipient,
    /// Routing identity, then the command's frames.
    pub frames: Vec<Frame>,
}

/// The broker's protocol state: services, workers, queues and timers.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    services: HashMap<ServiceKey, Service>,
    service_keys: HashMap<Box<[u8]>, ServiceKey>,
    workers: HashMap<WorkerKey, Worker>,
    worker_keys: HashMap<Box<[u8]>, WorkerKey>,
    /// Open client connections.
    clients: Clients,
    /// Requests taken back from deleted workers, whose replies may come.
    reclaimed: Reclaimed,
    /// Workers recently expired, to recognise a heartbeat mismatch.
    expired: Expired,
    /// Allowances of the warnings peers can cause.
    warnings: Warnings,
    /// Bytes of PARTIALs gathered for MDP/0.1 clients, all together.
    gathered_bytes: usize,
    /// Requests waiting in all services' queues together.
    queued_total: usize,
    /// The service with the most waiting, as of the last time one outgrew
    /// it (see `make_room`).
    largest_service: Option<ServiceKey>,
    stats: Stats,
    /// Source of worker keys, service keys and idle tickets.
    next_key: u64,
    /// The broker's time, which stands still while the broker cannot run;
    /// every deadline below is in it.
    clock: Clock,
    /// The ticks every timer entry falls on.
    grid: Grid,
    /// When each worker next needs a heartbeat or an expiry check.
    worker_timers: Timers,
    /// When each service's oldest waiting request expires.
    request_timers: Timers,
    outbox: Vec<Outbound>,
    /// Who may register and request what (see `access`).
    access: Box<dyn Access>,
}

impl Broker {
    /// A broker with no services and no workers, whose timer grid starts
    /// at `now`.
    pub fn new(config: Config, now: Instant) -> Broker {
        Broker {
            // A taken-back request's reply is awaited as long as any worker
            // may hold a request, and one expiry more.
            reclaimed: Reclaimed::new(config.busy_timeout + config.expiry()),
            expired: Expired::new(config.expiry() * 4),
            warnings: Warnings::default(),
            gathered_bytes: 0,
            queued_total: 0,
            largest_service: None,
            clock: Clock::new(),
            grid: Grid::new(now, config.timer_resolution()),
            config,
            services: HashMap::new(),
            service_keys: HashMap::new(),
            workers: HashMap::new(),
            worker_keys: HashMap::new(),
            clients: Clients::default(),
            stats: Stats::default(),
            next_key: 0,
            worker_timers: Timers::default(),
            request_timers: Timers::default(),
            outbox: Vec::new(),
            access: Box::new(Open),
        }
    }

    /// Puts `access` in force from the next message on (a READY or request
    /// it refuses is refused whoever sent it before), and asks it again about
    /// every registered worker: one it no longer lets serve its service gets
    /// DISCONNECT and is forgotten (its request goes to another worker), so
    /// that revoking a worker does not wait for it to reconnect.
    pub fn set_access(&mut self, access: Box<dyn Access>, now: Instant) {
        let now = self.broker_time(now);
        self.access = access;
        let revoked: Vec<WorkerKey> = self
            .workers
            .iter()
            .filter(|(_, worker)| {
                let service = self.services.get(&worker.service).map_or(&[][..], |s| &s.name[..]);
                !self.access.may_register(service, &worker.credentials)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in revoked {
            self.violation(key, "may no longer serve its service (access rules reloaded)", now);
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the broker has counted since it started.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// libzmq cannot tell of closed connections (it lacks
    /// `ZMQ_ROUTER_NOTIFY`): client connections are not tracked, so
    /// requests of departed clients are dispatched.
    pub fn without_departure_notices(&mut self) {
        self.clients.untrack();
    }

    /// A service's name, for logs.
    fn service_name(&self, key: ServiceKey) -> Text<'_> {
        Text(self.services.get(&key).map_or(&[][..], |service| &service.name[..]))
    }

    /// `client`'s reply pipe is full (the I/O loop could not send to it):
    /// requests it has waiting are not handed out until it reads again, so
    /// that workers are not spent on replies that would pile up in its
    /// backlog or be dropped. Its requests still expire.
    pub fn client_blocked(&mut self, client: &[u8]) {
        debug!("client {} does not read its replies: its requests wait", Hex(client));
        self.clients.block(client);
    }

    /// `client` reads its replies again: its parked requests get their
    /// turns back.
    pub fn client_unblocked(&mut self, client: &[u8], now: Instant) {
        let now = self.broker_time(now);
        debug!("client {} reads its replies again", Hex(client));
        for key in self.clients.unblock(client) {
            if let Some(service) = self.services.get_mut(&key)
                && service.queue.unpark(client)
            {
                self.dispatch(key, now);
            }
        }
    }

    /// Number of registered workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Number of services that currently exist (with workers or requests).
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Number of requests waiting in `service`'s queue.
    pub fn queued(&self, service: &[u8]) -> usize {
        self.service_keys
            .get(service)
            .and_then(|key| self.services.get(key))
            .map_or(0, |s| s.queue.len())
    }

    /// Moves the queued outbound messages into `into` (which should be
    /// empty; its allocation is reused by the broker next time).
    pub fn take_outbox(&mut self, into: &mut Vec<Outbound>) {
        std::mem::swap(&mut self.outbox, into);
    }

    /// When [`Broker::tick`] next has work to do (a real instant).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_timer().map(|at| self.clock.real(at))
    }

    /// The earliest timer entry, in broker time.
    fn next_timer(&self) -> Option<Instant> {
        match (self.worker_timers.next(), self.request_timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Broker time at the real instant `now` (see `clock`): every entry
    /// point converts its `now` here first.
    fn broker_time(&mut self, now: Instant) -> Instant {
        let due = self.next_timer();
        self.clock.now(now, due)
    }

    fn new_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Handles one message a peer sent: `frames` are those after the
    /// ROUTER identity. Invalid messages are logged at debug level and
    /// dropped.
    pub fn handle(&mut self, identity: Frame, frames: Vec<Frame>, now: Instant) {
        let now = self.broker_time(now);
        if let [only] = &frames[..]
            && only.is_empty()
        {
            return self.connection_closed(&identity, now);
        }
        match protocol::decode_at_broker(frames) {
            Err(error) => self.invalid_message(&identity, &error, now),
            Ok((dialect, Inbound::Client(cmd))) => self.client_request(identity, dialect, cmd, now),
            Ok((dialect, Inbound::Worker(cmd))) => self.worker_command(identity, dialect, cmd, now),
        }
    }

    /// A peer's connection closed (libzmq's disconnect notification, an
    /// empty message from its routing id; a peer that sends one itself only
    /// closes its own affairs). A worker is deleted at once, and its
    /// request goes to another worker; a client's queued requests will not
    /// be dispatched.
    fn connection_closed(&mut self, identity: &[u8], now: Instant) {
        if self.clients.closed(identity) {
            debug!("client {} disconnected", Hex(identity));
        }
        // Its parked lanes have no turn in which to be dropped.
        for key in self.clients.unblock(identity) {
            if let Some(service) = self.services.get_mut(&key) {
                let dropped = service.queue.remove_client(identity);
                self.queued_total -= dropped;
                self.stats.requests_for_departed_clients += dropped as u64;
            }
            self.drop_service_if_unused(key);
        }
        if let Some(key) = self.worker_keys.get(identity).copied() {
            self.delete_worker(key, "its connection closed", false, now);
        }
    }

    /// 18/MDP: an invalid message is dropped and its peer treated as
    /// invalid. A registered worker gets DISCONNECT and is forgotten (so a
    /// request it holds goes to another worker, instead of waiting for ever
    /// on a worker that answered with a malformed reply and heartbeats on);
    /// anyone else is only ignored.
    fn invalid_message(&mut self, identity: &[u8], error: &ProtocolError, now: Instant) {
        match self.worker_keys.get(identity).copied() {
            Some(key) => self.violation(key, &format!("sent an invalid message ({error})"), now),
            None => {
                if let Some(held_back) = self.warnings.invalid_message.allow(now) {
                    warn!(
                        "dropped invalid message from {}: {error} ({held_back} more since the last warning)",
                        Hex(identity)
                    );
                }
            }
        }
    }

    fn client_request(&mut self, client: Frame, dialect: Dialect, cmd: ClientRequest, now: Instant) {
        debug!(
            "<- client {} {dialect} REQUEST for '{}' ({} body frames)",
            Hex(&client),
            Text(&cmd.service),
            cmd.body.len()
        );
        if protocol::is_mmi(&cmd.service) {
            let status = mmi::answer(&cmd.service, &cmd.body, |name| self.has_workers(name));
            let body = vec![Frame::from_slice(status.code())];
            let request = self.new_key();
            let to = ReplyTo {
                client,
                dialect,
                request,
            };
            self.reply_to_client(to, ReplyKind::Final, cmd.service, body);
            return;
        }
        if !self.access.may_request(&cmd.service, &cmd.service) {
            self.stats.requests_refused += 1;
            return;
        }
        if !self.reply_would_fit(&cmd.body) {
            return self.request_too_large(&client, &cmd.service, now);
        }
        let key = self.require_service(&cmd.service);
        let connection = self.clients.connection(&client);
        let waiting = Waiting {
            id: self.new_key(),
            dialect,
            body: cmd.body.into_boxed_slice(),
        };
        let limit = self.config.max_queued;
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        // Nobody waits and a worker is idle (the common case short of
        // overload): straight to it, without a lane.
        if service.queue.is_empty() && !self.clients.is_blocked(&client) {
            let workers = &mut self.workers;
            if let Some(worker_key) = service.pop_idle(|key, ticket| holds_ticket(workers, key, ticket))
                && let Some(worker) = workers.get_mut(&worker_key)
            {
                let request = Request {
                    id: waiting.id,
                    service: service.name.share(),
                    client,
                    connection,
                    dialect,
                    body: waiting.body,
                    deliveries: 0,
                    streamed: false,
                    ownership: None,
                };
                return hand_out(worker_key, worker, request, now, &self.config, &mut self.outbox);
            }
        }
        if self.config.max_queued_total.is_some_and(|max| self.queued_total >= max)
            && !self.make_room(key, &client, connection, now)
        {
            self.all_queues_full(key, &client, now);
            return self.drop_service_if_unused(key);
        }
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        let pushed = service.queue.push(client.share(), connection, waiting, now, limit);
        let len_after = service.queue.len();
        match pushed {
            Pushed::Queued => {
                self.queued_total += 1;
                if self
                    .largest_service
                    .is_none_or(|largest| self.services.get(&largest).is_none_or(|s| s.queue.len() < len_after))
                {
                    self.largest_service = Some(key);
                }
                self.arm_expiry(key, now);
                self.dispatch(key, now);
            }
            Pushed::Full => self.queue_full(key, &client, now),
            Pushed::Displaced(victim) => {
                self.queue_full(key, &victim, now);
                self.arm_expiry(key, now);
                self.dispatch(key, now);
            }
        }
    }

    /// Whether a worker's reply with this body, which adds up to 2 frames and
    /// the client's address to the request's, fits the bounds every peer's
    /// messages are held to ([`Config::max_frames_per_message`],
    /// [`Config::max_message_size`]): a reply over them would cost the
    /// worker its connection, and the request would go on to the next.
    fn reply_would_fit(&self, body: &[Frame]) -> bool {
        let frames_fit = self
            .config
            .max_frames_per_message
            .is_none_or(|max| max == 0 || body.len() + REPLY_FRAMES <= max as usize);
        frames_fit
            && self.config.max_message_size.is_none_or(|max| {
                let bytes: u64 = body.iter().map(|frame| frame.len() as u64).sum();
                bytes + REPLY_BYTES <= max
            })
    }

    /// A request whose reply could not reach the broker: dropped.
    fn request_too_large(&mut self, client: &[u8], service: &[u8], now: Instant) {
        self.stats.requests_too_large += 1;
        if let Some(held_back) = self.warnings.request_too_large.allow(now) {
            warn!(
                "request from client {} for '{}' dropped: its reply could not fit in --max-frames or \
                 --max-message-size ({held_back} more since the last warning)",
                Hex(client),
                Text(service),
            );
        }
    }

    /// All queues together hold [`Config::max_queued_total`] and `client`
    /// has a request for `key`: makes room by dropping another client's
    /// newest request in the service with the most waiting, from its
    /// longest lane, if that lane is longer than `client`'s there by two
    /// (longest queue drop across services: a client that fills every queue
    /// loses its own requests, not everyone else's). The service with the
    /// most waiting is tracked as of the last time one outgrew it, which
    /// keeps this O(1). A flood of one request per service name leaves no
    /// lane to spare: then the newcomer is dropped (requests that find an
    /// idle worker are not queued, so they are unaffected). Whether room
    /// was made.
    fn make_room(&mut self, key: ServiceKey, client: &[u8], connection: Connection, now: Instant) -> bool {
        let victim = self.largest_service.and_then(|largest| {
            let service = self.services.get_mut(&largest)?;
            Some((largest, service.queue.displace_for(client, connection)?))
        });
        let Some((service, victim)) = victim else {
            return false;
        };
        self.queued_total -= 1;
        self.all_queues_full(service, &victim, now);
        if service != key {
            self.drop_service_if_unused(service);
        }
        true
    }

    /// A request of `client` for `key` was dropped because all queues
    /// together hold [`Config::max_queued_total`]: counted and logged.
    fn all_queues_full(&mut self, key: ServiceKey, client: &[u8], now: Instant) {
        self.stats.requests_dropped_queue_full += 1;
        if let Some(held_back) = self.warnings.queue_full.allow(now) {
            warn!(
                "request from client {} for '{}' dropped: {} requests wait in all services together already \
                 (--max-queued-total) ({held_back} more since the last warning)",
                Hex(client),
                self.service_name(key),
                self.queued_total,
            );
        }
    }

    /// A request came for a service whose queue is full: it is dropped.
    fn queue_full(&mut self, key: ServiceKey, client: &[u8], now: Instant) {
        self.stats.requests_dropped_queue_full += 1;
        if let Some(held_back) = self.warnings.queue_full.allow(now) {
            warn!(
                "request from client {} for '{}' dropped: {} requests wait for the service already \
                 (--max-queued), and that client has the most of them ({held_back} more since the last \
                 warning)",
                Hex(client),
                self.service_name(key),
                self.config.max_queued.unwrap_or(0),
            );
        }
        self.drop_service_if_unused(key);
    }

    fn has_workers(&self, name: &[u8]) -> bool {
        self.service_keys
            .get(name)
            .and_then(|key| self.services.get(key))
            .is_some_and(|s| s.workers > 0)
    }

    /// The service named `name`, created on first mention.
    fn require_service(&mut self, name: &[u8]) -> ServiceKey {
        if let Some(key) = self.service_keys.get(name) {
            return *key;
        }
        let key = ServiceKey(self.new_key());
        self.service_keys.insert(name.into(), key);
        let expires = self.config.request_timeout.is_some();
        self.services.insert(key, Service::new(name, expires));
        debug!("service '{}' created", Text(name));
        key
    }

    /// Drops a service that has neither workers nor requests, so that
    /// clients asking for random names cannot grow the broker without end.
    fn drop_service_if_unused(&mut self, key: ServiceKey) {
        if self.services.get(&key).is_some_and(Service::is_unused)
            && let Some(service) = self.services.remove(&key)
        {
            self.service_keys.remove(&service.name[..]);
            // A flood of requests for random names made them large.
            shrink_map(&mut self.services);
            shrink_map(&mut self.service_keys);
            debug!("service '{}' dropped", Text(&service.name));
        }
    }

    /// A request entered `key`'s queue at `now`: arms the service's expiry
    /// timer if it has none (an armed one is due no later).
    fn arm_expiry(&mut self, key: ServiceKey, now: Instant) {
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        if let (Some(timeout), None) = (self.config.request_timeout, service.expiry_timer) {
            let at = self.grid.ceil(now + timeout);
            service.expiry_timer = Some(at);
            self.request_timers.schedule(at, key.0);
        }
    }

    /// Hands waiting requests to idle workers, least recently used first.
    fn dispatch(&mut self, key: ServiceKey, now: Instant) {
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        let workers = &mut self.workers;
        let mut skipped = Skipped::default();
        let waiting_before = service.queue.len();
        loop {
            // Requests of departed clients, or answered by a late reply
            // meanwhile, are dropped; clients that do not read are parked.
            if !service.queue.prepare(&self.clients, &mut skipped) {
                break;
            }
            let Some(worker_key) = service.pop_idle(|key, ticket| holds_ticket(workers, key, ticket)) else {
                break;
            };
            let (Some(worker), Some(request)) = (workers.get_mut(&worker_key), service.queue.pop(&service.name)) else {
                break;
            };
            hand_out(worker_key, worker, request, now, &self.config, &mut self.outbox);
        }
        self.queued_total -= waiting_before.saturating_sub(service.queue.len());
        if skipped.departed > 0 {
            debug!("{} requests of departed clients dropped", skipped.departed);
            self.stats.requests_for_departed_clients += skipped.departed;
        }
        for client in skipped.parked {
            self.clients.parked(&client, key);
        }
    }

    fn reply_to_client(&mut self, to: ReplyTo, kind: ReplyKind, service: Frame, body: Vec<Frame>) {
        let ReplyTo {
            client,
            dialect,
            request,
        } = to;
        debug!(
            "-> client {} {dialect} {} ({} body frames)",
            Hex(&client),
            kind.name(),
            body.len()
        );
        let mut frames = Vec::with_capacity(4 + body.len());
        frames.push(client);
        protocol::encode_reply(&mut frames, dialect, ClientReply { kind, service, body });
        let last = kind == ReplyKind::Final;
        self.outbox.push(Outbound {
            recipient: Recipient::Client(StreamPart { request, last }),
            frames,
        });
    }

    /// Queues a command to a worker identity, registered or not.
    fn send_to_worker(&mut self, identity: &[u8], dialect: Dialect, cmd: ToWorker, recipient: Recipient) {
        queue_for_worker(&mut self.outbox, identity, dialect, cmd, recipient);
    }

    fn worker_command(&mut self, identity: Frame, dialect: Dialect, cmd: FromWorker, now: Instant) {
        debug!("<- worker {} {dialect} {}", Hex(&identity), cmd.name());
        match (self.worker_keys.get(&identity[..]).copied(), cmd) {
            (Some(key), cmd) => self.known_worker(key, dialect, cmd, now),
            (None, FromWorker::Ready { service }) => self.worker_ready(&identity, dialect, &service, now),
            (None, FromWorker::Disconnect) => {}
            (None, FromWorker::Final { client, body }) if self.reclaimed.held(&identity, &client).is_some() => {
                self.late_reply(&identity, &client, true, body, now);
                self.send_to_worker(&identity, dialect, ToWorker::Disconnect, Recipient::Departing);
            }
            (None, FromWorker::Partial { client, body, .. }) if self.reclaimed.held(&identity, &client).is_some() => {
                self.late_reply(&identity, &client, false, body, now);
            }
            // A worker whose reply is awaited is not disconnected for its
            // heartbeats: that would make it drop the reply it is sending.
            (None, FromWorker::Heartbeat) if self.reclaimed.awaits(&identity) => {}
            (None, cmd) => {
                self.heard_after_expiry(&identity, now);
                if let Some(held_back) = self.warnings.unknown_worker.allow(now) {
                    warn!(
                        "{} from unknown worker {}: sending DISCONNECT ({held_back} more since the last warning)",
                        cmd.name(),
                        Hex(&identity)
                    );
                }
                self.send_to_worker(&identity, dialect, ToWorker::Disconnect, Recipient::Departing);
            }
        }
    }

    /// An unknown worker spoke: if it was expired lately, it heartbeats
    /// less often than the broker expects, which is worth saying, with
    /// both figures, since it shows otherwise only as a flapping worker.
    fn heard_after_expiry(&mut self, identity: &[u8], now: Instant) {
        let Some(silent) = self.expired.heard_again(identity, now) else {
            return;
        };
        let gap = now.saturating_duration_since(silent.last_heard);
        let gap = Duration::from_millis(u64::try_from(gap.as_millis()).unwrap_or(u64::MAX));
        if gap <= self.config.heartbeat_interval {
            return;
        }
        self.stats.heartbeat_mismatches += 1;
        if let Some(held_back) = self.warnings.heartbeat_mismatch.allow(now) {
            warn!(
                "worker {} of '{}' was expired after {:?} of silence and spoke again {gap:?} after its last \
                 message: its heartbeat interval seems longer than the broker's ({:?}, liveness {}); give \
                 workers and broker the same --heartbeat-interval ({held_back} more since the last warning)",
                Hex(identity),
                Text(&silent.service),
                self.config.expiry(),
                self.config.heartbeat_interval,
                self.config.heartbeat_liveness,
            );
        }
    }

    fn worker_ready(&mut self, identity: &[u8], dialect: Dialect, service_frame: &Frame, now: Instant) {
        let service: &[u8] = service_frame;
        let name = Text(service);
        if protocol::is_mmi(service) {
            if let Some(held_back) = self.warnings.refused_ready.allow(now) {
                warn!(
                    "READY from worker {} at {} refused: '{name}' is in the mmi. namespace, which 8/MMI reserves \
                     for the broker; sending DISCONNECT ({held_back} more since the last warning)",
                    Hex(identity),
                    service_frame.peer_address().unwrap_or_else(|| "?".into())
                );
            }
            self.send_to_worker(identity, dialect, ToWorker::Disconnect, Recipient::Departing);
            return;
        }
        if !self.access.may_register(service, service_frame) {
            self.stats.registrations_refused += 1;
            self.send_to_worker(identity, dialect, ToWorker::Disconnect, Recipient::Departing);
            return;
        }
        // Where it connects from: libzmq's Peer-Address of the READY.
        let address: Box<str> = service_frame.peer_address().unwrap_or_else(|| "?".into()).into();
        if let Some(held_back) = self.warnings.worker_lines.allow(now) {
            info!(
                "worker {} at {address} ready for '{name}' ({dialect}){}",
                Hex(identity),
                held_lines(held_back)
            );
        }
        let service_key = self.require_service(service);
        let key = WorkerKey(self.new_key());
        let ticket = self.new_key();
        let registration = Registration {
            identity: identity.into(),
            address,
            dialect,
            service: service_key,
            credentials: service_frame.share(),
        };
        let worker = Worker::new(registration, ticket, now, &self.config, &self.grid);
        self.worker_timers.schedule(worker.timer_at, key.0);
        self.worker_keys.insert(identity.into(), key);
        self.workers.insert(key, worker);
        if let Some(service) = self.services.get_mut(&service_key) {
            service.workers += 1;
            service.push_idle(key, ticket);
        }
        self.dispatch(service_key, now);
    }

    fn known_worker(&mut self, key: WorkerKey, dialect: Dialect, cmd: FromWorker, now: Instant) {
        let Some(worker) = self.workers.get_mut(&key) else {
            return;
        };
        if worker.dialect.version != dialect.version {
            return self.violation(key, "switched protocol version", now);
        }
        worker.heard_from(now, &self.config);
        match cmd {
            FromWorker::Heartbeat => {
                // After a gap of an interval or more, a classic worker's
                // idle heartbeats may be read after the request that came
                // during the gap (see `Worker::heartbeat`).
                let interval = self.config.heartbeat_interval;
                let stale = self.clock.recent_gap(now).is_some_and(|gap| gap >= interval);
                worker.heartbeat(stale)
            }
            FromWorker::Disconnect => self.delete_worker(key, "disconnected", false, now),
            FromWorker::Partial { client, body, .. } => self.worker_partial(key, &client, body, now),
            FromWorker::Final { client, body } => self.worker_final(key, &client, body, now),
            FromWorker::Ready { .. } => self.violation(key, "sent READY twice", now),
        }
    }

    /// The job of worker `key`, if it holds one for `client`.
    fn job_for(&mut self, key: WorkerKey, client: &[u8]) -> Option<&mut Job> {
        self.workers
            .get_mut(&key)
            .and_then(|w| w.job.as_mut())
            .filter(|job| job.request.client[..] == *client)
    }

    fn worker_partial(&mut self, key: WorkerKey, client: &[u8], body: Vec<Frame>, now: Instant) {
        let Some(job) = self.job_for(key, client) else {
            return self.violation(key, "sent PARTIAL for no request it holds", now);
        };
        let request = &job.request;
        let Some(streaming) = request.dialect.streaming() else {
            return self.gather(key, client, body, now);
        };
        let (delivery, connection, ownership) = (request.deliveries, request.connection, request.ownership.clone());
        let service = request.service.share();
        let to = ReplyTo::request(request);
        if !self.may_reply(&to, connection, (delivery, ownership.as_ref()), false) {
            return;
        }
        if let Some(job) = self.job_for(key, client) {
            job.request.streamed = true;
        }
        self.reply_to_client(to, ReplyKind::Partial(streaming), service, body);
    }

    /// A PARTIAL for an MDP/0.1 client, which has no PARTIAL: its frames
    /// are kept and sent with the FINAL's as one REPLY, within the bounds of
    /// slow clients' backlogs (per client, and for all clients together);
    /// past them, the whole reply is dropped and the client's timeout
    /// applies.
    fn gather(&mut self, key: WorkerKey, client: &[u8], body: Vec<Frame>, now: Instant) {
        let bytes: usize = body.iter().map(|frame| frame.len()).sum();
        let (max_one, max_all) = (self.config.max_client_backlog, self.config.max_total_backlog);
        let total = self.gathered_bytes;
        let Some(job) = self.job_for(key, client) else { return };
        let Some(gathered) = job.gathered.as_mut() else { return };
        if gathered.bytes + bytes > max_one || total + bytes > max_all {
            let dropped = gathered.bytes;
            job.gathered = None;
            self.gathered_bytes -= dropped;
            self.stats.gathered_replies_dropped += 1;
            if let Some(held_back) = self.warnings.gathered_too_large.allow(now) {
                warn!(
                    "reply stream for MDP/0.1 client {} is larger than the backlog bounds \
                     (--max-client-backlog {max_one}, --max-total-backlog {max_all} bytes): it gets no reply \
                     ({held_back} more since the last warning)",
                    Hex(client)
                );
            }
            return;
        }
        gathered.bytes += bytes;
        gathered.frames.extend(body);
        self.gathered_bytes += bytes;
    }

    /// Whether a part of the reply to `to.request` from its `delivery` goes
    /// to the client: not if the client's connection has closed (a routing
    /// id that connects again is another client, which must not get it),
    /// nor if another delivery answers (see `reclaimed`). Counts what is
    /// dropped.
    fn may_reply(&mut self, to: &ReplyTo, connection: Connection, from: (u32, Option<&Ownership>), last: bool) -> bool {
        let (delivery, ownership) = from;
        if !self.clients.is_open(&to.client, connection) {
            debug!("reply for departed client {} dropped", Hex(&to.client));
            self.stats.replies_for_departed_clients += 1;
            return false;
        }
        if ownership.is_some_and(|ownership| ownership.claim(delivery, last) == Verdict::Drop) {
            debug!(
                "reply part for client {} dropped: answered by another delivery",
                Hex(&to.client)
            );
            self.stats.duplicate_reply_parts += 1;
            return false;
        }
        true
    }

    /// A reply from a worker that was taken for dead, for the request it
    /// held then: delivered unless another delivery answered first.
    fn late_reply(&mut self, worker: &[u8], client: &[u8], last: bool, body: Vec<Frame>, now: Instant) {
        let Some(held) = self.reclaimed.held(worker, client) else {
            return;
        };
        let (delivery, connection, complete) = (held.delivery, held.connection, held.complete);
        let ownership = held.ownership.clone();
        let to = ReplyTo {
            client: held.client.share(),
            dialect: held.dialect,
            request: held.request,
        };
        let service = held.service.share();
        if last {
            self.reclaimed.finished(worker);
        }
        let kind = match (last, to.dialect.streaming()) {
            (true, Some(_)) => ReplyKind::Final,
            (true, None) if complete => ReplyKind::Final,
            (false, Some(streaming)) => ReplyKind::Partial(streaming),
            // An MDP/0.1 client gets one whole REPLY or nothing: the parts
            // gathered before this worker was taken for dead are gone.
            (true, None) => {
                self.stats.gathered_replies_dropped += 1;
                return;
            }
            (false, None) => return self.reclaimed.incomplete(worker),
        };
        if !self.may_reply(&to, connection, (delivery, Some(&ownership)), last) {
            return;
        }
        if last {
            self.stats.late_replies_delivered += 1;
            if let Some(held_back) = self.warnings.late_reply.allow(now) {
                info!(
                    "late reply from worker {} of '{}' (taken for dead) delivered to client {} \
                     ({held_back} more since the last such line)",
                    Hex(worker),
                    Text(&service),
                    Hex(&to.client)
                );
            }
        }
        self.reply_to_client(to, kind, service, body);
    }

    fn worker_final(&mut self, key: WorkerKey, client: &[u8], body: Vec<Frame>, now: Instant) {
        if self.job_for(key, client).is_none() {
            return self.violation(key, "sent a reply for no request it holds", now);
        }
        let ticket = self.new_key();
        let Some(worker) = self.workers.get_mut(&key) else {
            return;
        };
        let Some(job) = worker.job.take() else { return };
        worker.idle_ticket = Some(ticket);
        let service_key = worker.service;
        if let Some(service) = self.services.get_mut(&service_key) {
            service.push_idle(key, ticket);
        }
        let request = job.request;
        let body = match job.gathered {
            // An MDP/0.1 client gets every PARTIAL's frames, then the FINAL's.
            Some(mut gathered) if !gathered.frames.is_empty() => {
                self.gathered_bytes -= gathered.bytes;
                gathered.frames.extend(body);
                Some(gathered.frames)
            }
            Some(_) => Some(body),
            None => None, // outgrew the bounds: no reply (its timeout applies)
        };
        let to = ReplyTo::request(&request);
        if let Some(body) = body
            && self.may_reply(
                &to,
                request.connection,
                (request.deliveries, request.ownership.as_ref()),
                true,
            )
        {
            self.reply_to_client(to, ReplyKind::Final, request.service, body);
        }
        self.dispatch(service_key, now);
    }

    /// A valid but unexpected command: 7/MDP says DISCONNECT, then nothing.
    fn violation(&mut self, key: WorkerKey, what: &str, now: Instant) {
        let Some(worker) = self.workers.get(&key) else { return };
        if let Some(held_back) = self.warnings.violation.allow(now) {
            warn!(
                "worker {} at {} of '{}' {what}: sending DISCONNECT ({held_back} more since the last warning)",
                Hex(&worker.identity),
                worker.address,
                self.service_name(worker.service)
            );
        }
        let disconnect = ToWorker::Disconnect;
        queue_for_worker(
            &mut self.outbox,
            &worker.identity,
            worker.dialect,
            disconnect,
            Recipient::Departing,
        );
        self.delete_worker(key, what, false, now);
    }

    /// Forgets a worker wherever it stands; a request it held goes back to
    /// the head of its service's queue, and, if the worker `may_still_reply`
    /// (it was only taken for dead), its reply is still awaited.
    fn delete_worker(&mut self, key: WorkerKey, why: &str, may_still_reply: bool, now: Instant) {
        let Some(worker) = self.workers.remove(&key) else {
            return;
        };
        if let Some(held_back) = self.warnings.worker_lines.allow(now) {
            info!(
                "worker {} at {} of '{}' deleted: {why}{}",
                Hex(&worker.identity),
                worker.address,
                self.service_name(worker.service),
                held_lines(held_back)
            );
        }
        self.worker_keys.remove(&worker.identity);
        shrink_map(&mut self.workers);
        shrink_map(&mut self.worker_keys);
        let workers = &self.workers;
        if let Some(service) = self.services.get_mut(&worker.service) {
            service.workers = service.workers.saturating_sub(1);
            if worker.idle_ticket.is_some() {
                service.forget_idle(|key, ticket| holds_ticket(workers, key, ticket));
            }
        }
        if let Some(mut job) = worker.job {
            // PARTIALs gathered for an MDP/0.1 client are gone with the job.
            self.gathered_bytes -= job.gathered.as_ref().map_or(0, |g| g.bytes);
            if may_still_reply {
                let complete = job.gathered.as_ref().is_some_and(|g| g.frames.is_empty());
                self.reclaimed.record(&worker.identity, &mut job.request, complete, now);
            }
            // A delivery's stream has begun (this one's, or a deleted one's
            // that owns the reply): another's would be spliced onto it.
            let owned = job
                .request
                .ownership
                .as_ref()
                .is_some_and(|ownership| !ownership.is_open());
            if job.request.streamed || owned {
                // Its client has part of this delivery's stream: another
                // delivery's would be spliced onto it. Its client's timeout
                // and retry apply instead (or its late parts, if it lives).
                debug!(
                    "request from client {} not redelivered: its stream had begun",
                    Hex(&job.request.client)
                );
            } else {
                self.redeliver(worker.service, job.request, now);
            }
        }
        self.drop_service_if_unused(worker.service);
    }

    /// Puts a request back at the head of its queue, unless it has been
    /// delivered as often as allowed.
    fn redeliver(&mut self, key: ServiceKey, request: Request, now: Instant) {
        if request.deliveries >= self.config.max_deliveries {
            self.stats.requests_dropped_max_deliveries += 1;
            if let Some(held_back) = self.warnings.max_deliveries.allow(now) {
                warn!(
                    "request from client {} for '{}' dropped after {} deliveries to workers that died or were \
                     disconnected holding it (--max-deliveries) ({held_back} more since the last warning)",
                    Hex(&request.client),
                    Text(&request.service),
                    request.deliveries
                );
            }
            return;
        }
        debug!(
            "request from client {} goes back to the head of its queue",
            Hex(&request.client)
        );
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        service.queue.push_redelivered(request, now);
        self.queued_total += 1;
        self.arm_expiry(key, now);
        self.dispatch(key, now);
    }

    /// The I/O loop could not deliver a message to `recipient` (its
    /// connection is gone, or its queue is full). What that means is decided
    /// here: a registered worker is dead, and if the message handed it a
    /// request, that delivery does not count; a client's reply, or a
    /// DISCONNECT to a forgotten worker, is simply lost.
    pub fn send_failed(&mut self, recipient: Recipient, now: Instant) {
        let now = self.broker_time(now);
        match recipient {
            Recipient::Worker(key) => self.worker_unreachable(key, false, now),
            Recipient::WorkerRequest(key) => self.worker_unreachable(key, true, now),
            Recipient::Client(_) | Recipient::Departing => debug!("message to a departed peer dropped"),
        }
    }

    /// A registered worker cannot be reached: it is forgotten, and if the
    /// failed message was its request, that delivery does not count.
    fn worker_unreachable(&mut self, key: WorkerKey, request_lost: bool, now: Instant) {
        if request_lost && let Some(job) = self.workers.get_mut(&key).and_then(|w| w.job.as_mut()) {
            job.request.deliveries = job.request.deliveries.saturating_sub(1);
        }
        self.delete_worker(key, "unreachable", true, now);
    }

    /// Does what is due at `now`: heartbeats, worker expiry, request expiry.
    pub fn tick(&mut self, now: Instant) {
        let now = self.broker_time(now);
        while let Some((at, raw)) = self.worker_timers.pop_due(now) {
            self.worker_timer(WorkerKey(raw), at, now);
        }
        while let Some((at, raw)) = self.request_timers.pop_due(now) {
            self.request_timer(ServiceKey(raw), at, now);
        }
        self.reclaimed.expire(now);
    }

    fn worker_timer(&mut self, key: WorkerKey, at: Instant, now: Instant) {
        let Some(worker) = self.workers.get_mut(&key) else {
            return;
        };
        if worker.timer_at != at {
            return;
        }
        if now >= worker.deadline(&self.config) {
            if worker.busy_for_too_long(now, &self.config) {
                return self.busy_timeout(key, now);
            }
            let silent = Silent {
                service: self
                    .services
                    .get(&worker.service)
                    .map(|s| Box::from(&s.name[..]))
                    .unwrap_or_default(),
                last_heard: worker.last_heard,
            };
            self.expired.record(&worker.identity, silent, now);
            return self.delete_worker(key, "expired (no heartbeat)", true, now);
        }
        if worker.heartbeat_due(now, &self.grid) {
            worker.sent_command(now, &self.config);
            let heartbeat = ToWorker::Heartbeat;
            queue_for_worker(
                &mut self.outbox,
                &worker.identity,
                worker.dialect,
                heartbeat,
                Recipient::Worker(key),
            );
        }
        worker.timer_at = worker.next_timer(&self.config, &self.grid);
        self.worker_timers.schedule(worker.timer_at, key.0);
    }

    /// A worker has held one request for the busy timeout. One that
    /// heartbeats while busy is alive but not answering (hung program, or
    /// a peer that keeps requests hostage): it gets DISCONNECT. One that
    /// never did is taken for dead, as silence past the busy timeout means
    /// for a classic worker. Either way its request goes to another worker
    /// (the delivery counts), and its reply is still awaited should it come.
    fn busy_timeout(&mut self, key: WorkerKey, now: Instant) {
        let Some(worker) = self.workers.get(&key) else { return };
        if !worker.heartbeats_while_busy {
            return self.delete_worker(key, "busy for longer than the busy timeout", true, now);
        }
        self.stats.busy_timeouts += 1;
        if let Some(held_back) = self.warnings.busy_timeout.allow(now) {
            warn!(
                "worker {} at {} of '{}' heartbeats but has held one request for {:?} (--busy-timeout): \
                 sending DISCONNECT ({held_back} more since the last warning)",
                Hex(&worker.identity),
                worker.address,
                self.service_name(worker.service),
                self.config.busy_timeout,
            );
        }
        queue_for_worker(
            &mut self.outbox,
            &worker.identity,
            worker.dialect,
            ToWorker::Disconnect,
            Recipient::Departing,
        );
        self.delete_worker(key, "held a request for longer than the busy timeout", true, now);
    }

    fn request_timer(&mut self, key: ServiceKey, at: Instant, now: Instant) {
        let Some(timeout) = self.config.request_timeout else {
            return;
        };
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        if service.expiry_timer != Some(at) {
            return;
        }
        service.expiry_timer = None;
        let (expired, next) = service.queue.expire(now, timeout);
        self.queued_total -= expired;
        if expired > 0 {
            debug!(
                "{expired} requests for '{}' expired after waiting {timeout:?}",
                Text(&service.name)
            );
            self.stats.requests_expired += expired as u64;
        }
        if let Some(next) = next {
            let next = self.grid.ceil(next);
            service.expiry_timer = Some(next);
            self.request_timers.schedule(next, key.0);
        }
        self.drop_service_if_unused(key);
    }

    /// Sends DISCONNECT to every worker and forgets all state: the broker is
    /// stopping.
    pub fn shutdown(&mut self) {
        let workers: Vec<Worker> = self.workers.drain().map(|(_, w)| w).collect();
        info!("shutting down: sending DISCONNECT to {} worker(s)", workers.len());
        for worker in workers {
            self.send_to_worker(
                &worker.identity,
                worker.dialect,
                ToWorker::Disconnect,
                Recipient::Departing,
            );
        }
        self.worker_keys.clear();
        self.queued_total = 0;
        self.services.clear();
        self.service_keys.clear();
    }
}

/// Encodes a command for a worker identity and queues it. A function of the
/// outbox alone, so callers can borrow a worker's identity while calling it.
fn queue_for_worker(outbox: &mut Vec<Outbound>, identity: &[u8], dialect: Dialect, cmd: ToWorker, to: Recipient) {
    debug!("-> worker {} {dialect} {}", Hex(identity), cmd.name());
    let mut frames = Vec::with_capacity(4);
    frames.push(Frame::from_slice(identity));
    protocol::encode_to_worker(&mut frames, dialect, cmd);
    outbox.push(Outbound { recipient: to, frames });
}

/// Hands `request` to the idle `worker`: the REQUEST goes out, the worker is
/// busy with it from `now`, and the delivery counts.
fn hand_out(
    key: WorkerKey,
    worker: &mut Worker,
    mut request: Request,
    now: Instant,
    config: &Config,
    outbox: &mut Vec<Outbound>,
) {
    request.deliveries += 1;
    let mut frames = Vec::with_capacity(6 + request.body.len());
    frames.push(Frame::from_slice(&worker.identity));
    let cmd = ToWorker::Request {
        client: request.client.share(),
        body: request.body.iter().map(Frame::share).collect(),
    };
    protocol::encode_to_worker(&mut frames, worker.dialect, cmd);
    debug!(
        "-> worker {} {} REQUEST from client {} (delivery {})",
        Hex(&worker.identity),
        worker.dialect,
        Hex(&request.client),
        request.deliveries
    );
    worker.idle_ticket = None;
    worker.sent_command(now, config);
    worker.job = Some(Job {
        request,
        since: now,
        gathered: Some(Gathered::default()),
        heartbeats: 0,
    });
    outbox.push(Outbound {
        recipient: Recipient::WorkerRequest(key),
        frames,
    });
}

/// What a rate-limited line adds about the lines held back before it.
fn held_lines(held_back: u64) -> String {
    if held_back == 0 {
        String::new()
    } else {
        format!(" ({held_back} worker lines held back before this one)")
    }
}

/// The idle-ticket rule, in one place: an entry in a service's idle queue
/// stands for its worker only while the worker still holds that ticket (a
/// worker gets a fresh ticket each time it becomes idle, and none while
/// busy or once deleted), so stale entries are recognised without a search.
fn holds_ticket(workers: &HashMap<WorkerKey, Worker>, key: WorkerKey, ticket: u64) -> bool {
    workers
        .get(&key)
        .is_some_and(|worker| worker.idle_ticket == Some(ticket))
}
