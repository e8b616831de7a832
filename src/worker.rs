//! An MDP worker: registers one service with a broker, hands the program
//! each request, sends its replies, and keeps the link to the broker alive.
//!
//! # Why two owners of one socket
//!
//! The classic worker API (zguide mdwrkapi) only talks to the broker when
//! the program calls it, so it cannot heartbeat while the program works on
//! a request; a broker must then either wait a long time before declaring
//! it dead or kill long requests. This worker heartbeats on schedule
//! whatever the program is doing, so the broker holds it to the normal
//! liveness even while busy, notices its death within liveness x interval,
//! and hands its request to another worker quickly.
//!
//! Giving the socket to a background thread for good does that, but then
//! every request and every reply crosses between two threads: those two
//! wake-ups per request cost a third of the worker's CPU and about a sixth
//! of the round-trip rate (measured against the zguide C worker, see
//! docs/benchmarks.md). So the socket and its timers (the link) sit behind
//! a mutex, and whoever holds the mutex does the link's work:
//!
//! * inside [`Worker::recv`] the program's own thread holds it: it polls
//!   the socket, heartbeats, watches the broker and reconnects while it
//!   waits, and returns with the request it read, as the C worker does;
//! * inside [`Worker::reply`] and [`Worker::partial`] it holds it just long
//!   enough to send;
//! * between the two, while the program works, a background thread (the
//!   keeper) takes it at each deadline to send HEARTBEAT, read what the
//!   broker sent (heartbeats, DISCONNECT) and reconnect if need be.
//!
//! The keeper never waits for the mutex: it only tries it, and if the
//! program holds it the keeper sleeps until the next deadline the program
//! published when it last let go (or, when that has passed because the
//! program is waiting in `recv` and doing the work itself, until the
//! program lets go). A request therefore costs one uncontended lock and no
//! thread hop, and a program that waits for requests costs the keeper no
//! wake-ups at all. While the program is busy the broker's messages are
//! read at the keeper's deadlines, at least once per heartbeat interval,
//! so a DISCONNECT then takes up to one interval to act on.
//!
//! # Reconnecting
//!
//! If the broker falls silent for [`WorkerConfig::expiry`], or sends
//! DISCONNECT, the link closes its socket, waits (doubling the wait on each
//! failed attempt, up to a limit), and registers again on a new socket.
//! The program never notices, except that a request received before a
//! reconnection can no longer be answered: its reply is dropped, because
//! the broker that sent it has forgotten it (and has given it to another
//! worker, or the client retries).
//!
//! Silence counts only while the program holds no request. Our broker
//! heartbeats busy workers, but the zguide's and majortomo's send HEARTBEAT
//! to idle ones only (majortomo gives a busy worker a timeout of its own),
//! so a request that took longer than the expiry would otherwise make the
//! worker reconnect and lose its reply. While the program works, the worker
//! still heartbeats and still acts on DISCONNECT (which is how a restarted
//! broker tells it to register again); the broker's clock restarts when the
//! final reply goes out.
//!
//! # Telling the broker that it heartbeats while busy
//!
//! A broker cannot tell a worker like this one from a classic one until it
//! sees a HEARTBEAT from it while it holds a request: until then it must
//! allow a busy worker the long busy timeout (our broker's default is five
//! minutes), and only afterwards holds it to the normal liveness while
//! busy. A worker that answers each request within an interval never sends
//! a HEARTBEAT while busy in the normal course (see below), so if it froze
//! while holding a request (a stopped process, a host gone without a FIN),
//! that request would wait out the busy timeout. (A program thread that
//! deadlocks while this worker's thread heartbeats on cannot be told from
//! one that works long: the broker's busy timeout bounds that case.) So on
//! each connection the worker sends two HEARTBEATs as soon as the program
//! takes its first request (from that connection): from then on the broker
//! knows, and a worker that hangs mid-request has its request redelivered
//! within liveness x interval, whatever it did before. Two, because one
//! HEARTBEAT just after a request was handed out does not tell: a classic
//! worker that was busy past its heartbeat time sends one as it finishes,
//! which reaches the broker after its reply, when the next request has
//! already gone to it; our broker needs two within one request. It costs
//! two three-frame messages per registration.
//!
//! Every send is non-blocking and, as 7/MDP asks, a HEARTBEAT is otherwise
//! only sent when nothing else was sent for a whole interval: any command
//! restarts the heartbeat clock, busy or not.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::curve::CurveClient;
use crate::frame::{self, Frame};
use crate::poll;
use crate::protocol::{self, Dialect, Framing, FromWorker, Streaming, ToWorker, Version};

/// How a worker talks to its broker. Start from
/// [`WorkerConfig::default`] and change the fields you need:
///
/// ```
/// use std::time::Duration;
/// use majordomo::protocol::Framing;
/// use majordomo::{Version, WorkerConfig};
///
/// let mut config = WorkerConfig::default();
/// config.version = Version::V02;
/// config.framing = Framing::Delimited; // for majortomo's broker
/// config.heartbeat_interval = Duration::from_secs(1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The protocol version to speak (MDP/0.2 is needed for PARTIAL
    /// replies). Default: MDP/0.1.
    pub version: Version,
    /// MDP/0.2 only: whether commands start with an empty frame. 18/MDP
    /// drops it ([`Framing::Bare`], the default); majortomo's broker
    /// requires it ([`Framing::Delimited`]). MDP/0.1 always has it.
    pub framing: Framing,
    /// How often to send HEARTBEAT when nothing else was sent; should match
    /// the broker's interval. Default: 2,500 ms.
    pub heartbeat_interval: Duration,
    /// Heartbeat intervals the broker may stay silent before the worker
    /// takes it for dead and reconnects. Default: 3.
    pub heartbeat_liveness: u32,
    /// First wait before reconnecting; doubles on each failed attempt.
    /// Default: 100 ms.
    pub reconnect_delay: Duration,
    /// Longest wait before reconnecting. Default: 5 s.
    pub max_reconnect_delay: Duration,
    /// Connect with CURVE (26/CURVEZMQ): the broker's public key and this
    /// worker's keys, set on every socket, reconnections included.
    /// Default: none (no encryption).
    pub curve: Option<CurveClient>,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            version: Version::V01,
            framing: Framing::Bare,
            heartbeat_interval: Duration::from_millis(2500),
            heartbeat_liveness: 3,
            reconnect_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_secs(5),
            curve: None,
        }
    }
}

impl WorkerConfig {
    /// How long the broker may stay silent before the worker takes it for
    /// dead: `heartbeat_liveness` x `heartbeat_interval`.
    pub fn expiry(&self) -> Duration {
        self.heartbeat_interval.saturating_mul(self.heartbeat_liveness)
    }

    /// The dialect commands go out in.
    fn dialect(&self) -> Dialect {
        match self.version {
            Version::V01 => Dialect::V01,
            Version::V02 => Dialect {
                framing: self.framing,
                ..Dialect::V02
            },
        }
    }
}

/// Why a worker call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerError {
    /// The background thread that heartbeats while the program works could
    /// not be started.
    Spawn(std::io::Error),
    /// A socket call failed (for example, a malformed endpoint).
    Socket(zmq::Error),
    /// The worker's background thread has ended (it panicked), so it can no
    /// longer keep its registration alive while the program works.
    Stopped,
    /// PARTIAL replies need MDP/0.2.
    PartialNeedsV02,
    /// The broker answered this worker's registration with DISCONNECT this
    /// many times in a row, with nothing else between: it refuses the worker
    /// (its log says why). The worker keeps trying, with back-off.
    Refused {
        /// DISCONNECTs in a row.
        times: u32,
    },
    /// A service name no broker accepts: empty, or in the `mmi.` namespace
    /// that 8/MMI reserves for the broker. Refused before connecting.
    ReservedService(String),
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Spawn(_) => write!(f, "could not start the worker's heartbeat thread"),
            WorkerError::Socket(_) => write!(f, "socket call failed"),
            WorkerError::Stopped => write!(f, "the worker's heartbeat thread has stopped"),
            WorkerError::PartialNeedsV02 => write!(f, "PARTIAL replies need MDP/0.2"),
            WorkerError::Refused { times } => write!(
                f,
                "the broker answered this worker's READY with DISCONNECT {times} times in a row: it refuses the \
                 registration (its log says why)"
            ),
            WorkerError::ReservedService(name) if name.is_empty() => write!(f, "a service name cannot be empty"),
            WorkerError::ReservedService(name) => {
                write!(
                    f,
                    "service '{name}' is in the mmi. namespace, which 8/MMI reserves for the broker"
                )
            }
        }
    }
}

impl std::error::Error for WorkerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerError::Spawn(e) => Some(e),
            WorkerError::Socket(e) => Some(e),
            WorkerError::Stopped
            | WorkerError::PartialNeedsV02
            | WorkerError::Refused { .. }
            | WorkerError::ReservedService(_) => None,
        }
    }
}

impl From<zmq::Error> for WorkerError {
    fn from(e: zmq::Error) -> WorkerError {
        WorkerError::Socket(e)
    }
}

/// A request to answer, as the program receives it.
#[derive(Debug)]
pub struct Request {
    /// The request body.
    pub body: Vec<Frame>,
    /// The client's address, echoed in every reply.
    client: Frame,
    /// The connection the request came on; a reply on a later one is dropped.
    generation: u64,
}

/// A worker registered for one service.
///
/// The program calls [`recv`](Worker::recv) for a request, works on it, and
/// answers with [`reply`](Worker::reply) (after any number of
/// [`partial`](Worker::partial) replies, for MDP/0.2). Heartbeats keep
/// flowing however long the work takes, and the worker reconnects by
/// itself if the broker goes away. Dropping it sends DISCONNECT.
///
/// # Examples
///
/// An echo worker:
///
/// ```no_run
/// use majordomo::{Version, Worker, WorkerConfig};
///
/// let mut config = WorkerConfig::default();
/// config.version = Version::V02;
/// let mut worker = Worker::connect("tcp://localhost:5555", "echo", config)?;
/// for _ in 0..1000 {
///     let mut request = worker.recv()?;
///     worker.partial(&request, ["working on it"])?;
///     let body = std::mem::take(&mut request.body); // moved, not copied
///     worker.reply(request, body)?;
/// }
/// # Ok::<(), majordomo::WorkerError>(())
/// ```
pub struct Worker {
    shared: Arc<Shared>,
    /// The keeper thread; `None` only while dropping.
    keeper: Option<JoinHandle<()>>,
    /// Present for MDP/0.2: what a PARTIAL needs.
    streaming: Option<Streaming>,
    endpoint: String,
    service: String,
}

impl Worker {
    /// Connects to the broker at `endpoint` and registers for `service`.
    pub fn connect(endpoint: &str, service: &str, config: WorkerConfig) -> Result<Worker, WorkerError> {
        // What the broker would refuse (answering DISCONNECT to every READY)
        // is refused here, before connecting: the same rule, protocol::is_mmi.
        if service.is_empty() || crate::protocol::is_mmi(service.as_bytes()) {
            return Err(WorkerError::ReservedService(service.to_owned()));
        }
        let streaming = config.dialect().streaming();
        // Fails now on a malformed endpoint, not later on another thread.
        let link = Link::new(endpoint, service, config)?;
        let shared = Arc::new(Shared::new(link));
        let keeper = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("mdp-worker-{service}"))
                .spawn(move || shared.keep())
                .map_err(WorkerError::Spawn)?
        };
        Ok(Worker {
            shared,
            keeper: Some(keeper),
            streaming,
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
        })
    }

    /// Waits for the next request.
    pub fn recv(&mut self) -> Result<Request, WorkerError> {
        loop {
            if let Some(request) = self.recv_timeout(None)? {
                return Ok(request);
            }
        }
    }

    /// Waits at most `timeout` (forever if `None`) for the next request.
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Request>, WorkerError> {
        let give_up_at = timeout.map(|t| later(Instant::now(), t));
        let mut link = self.hold()?;
        let request = link.recv_until(give_up_at);
        self.shared.release(link);
        request
    }

    /// Sends the final reply to `request` (MDP/0.1 REPLY, MDP/0.2 FINAL).
    pub fn reply<B: Into<Frame>>(
        &mut self,
        request: Request,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), WorkerError> {
        let body = body.into_iter().map(Into::into).collect();
        let client = request.client;
        self.answer(request.generation, FromWorker::Final { client, body })
    }

    /// Sends one PARTIAL reply to `request` (MDP/0.2 only); the final reply
    /// must follow.
    pub fn partial<B: Into<Frame>>(
        &mut self,
        request: &Request,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), WorkerError> {
        let streaming = self.streaming.ok_or(WorkerError::PartialNeedsV02)?;
        let body = body.into_iter().map(Into::into).collect();
        let client = request.client.share();
        let partial = FromWorker::Partial {
            streaming,
            client,
            body,
        };
        self.answer(request.generation, partial)
    }

    /// Sends a reply on the connection its request came from.
    fn answer(&mut self, generation: u64, reply: FromWorker) -> Result<(), WorkerError> {
        let mut link = self.hold()?;
        link.answer(generation, reply);
        self.shared.release(link);
        Ok(())
    }

    /// Takes the link for the program. The keeper only ever holds it for a
    /// few non-blocking socket calls, so this waits at most that long.
    fn hold(&self) -> Result<MutexGuard<'_, Link>, WorkerError> {
        if self.keeper.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err(WorkerError::Stopped);
        }
        Ok(self.shared.link())
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("endpoint", &self.endpoint)
            .field("service", &self.service)
            .field("streaming", &self.streaming.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Worker {
    /// Stops the keeper and sends DISCONNECT to the broker. Never blocks for
    /// long: the keeper is woken and makes no blocking call, the send does
    /// not wait, and the socket lingers at most 100 ms to deliver it.
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
        self.shared.link().disconnect();
    }
}

/// What the program and the keeper share.
struct Shared {
    /// The socket and its timers, held by whoever is doing the link's work.
    link: Mutex<Link>,
    /// When the keeper is next needed, and whether it should stop.
    schedule: Mutex<Schedule>,
    /// Wakes the keeper: a deadline moved earlier, the program let go of
    /// the link while the keeper waited for it, or the worker is dropped.
    wake: Condvar,
}

/// The keeper's timetable, written by the program each time it lets go of
/// the link.
#[derive(Debug)]
struct Schedule {
    /// The link's next deadline when the program last let go of it.
    due: Instant,
    /// When the keeper will wake by itself; `None` while it waits for the
    /// program to let go of the link.
    keeper_wakes_at: Option<Instant>,
    /// Set when the worker is dropped.
    stopped: bool,
}

impl Shared {
    fn new(link: Link) -> Shared {
        Shared {
            schedule: Mutex::new(Schedule {
                due: link.next_deadline(),
                keeper_wakes_at: None,
                stopped: false,
            }),
            link: Mutex::new(link),
            wake: Condvar::new(),
        }
    }

    /// The link, waiting for the keeper if it holds it. A panic while
    /// holding it leaves nothing half-done that matters (each socket call
    /// is whole), so a poisoned lock is used as it is.
    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The program lets go of the link: it publishes the link's next
    /// deadline and wakes the keeper only if the keeper would otherwise
    /// sleep past it. In steady work that is never: each reply pushes the
    /// next heartbeat later.
    fn release(&self, link: MutexGuard<'_, Link>) {
        let due = link.next_deadline();
        drop(link);
        let mut schedule = self.schedule();
        schedule.due = due;
        if schedule.keeper_wakes_at.is_none_or(|at| due < at) {
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        self.schedule().stopped = true;
        self.wake.notify_one();
    }

    /// The keeper thread: at each deadline, does the link's work if the
    /// program is not doing it.
    fn keep(&self) {
        let mut schedule = self.schedule();
        while !schedule.stopped {
            let wake_at = match self.link.try_lock() {
                Ok(mut link) => Some(link.tick()),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner().tick()),
                // The program holds the link; if its deadline has passed,
                // the program is in `recv` doing the work itself.
                Err(TryLockError::WouldBlock) => (schedule.due > Instant::now()).then_some(schedule.due),
            };
            schedule.keeper_wakes_at = wake_at;
            schedule = match wake_at {
                Some(at) => {
                    let timeout = at.saturating_duration_since(Instant::now());
                    self.wake
                        .wait_timeout(schedule, timeout)
                        .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard)
                }
                None => self.wake.wait(schedule).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// The link to the broker: the socket and its timers.
struct Link {
    context: zmq::Context,
    endpoint: String,
    service: String,
    config: WorkerConfig,
    dialect: Dialect,
    /// `None` while waiting to reconnect.
    socket: Option<zmq::Socket>,
    /// Counts connections; a reply for an older one is dropped.
    generation: u64,
    /// When the broker is taken for dead unless heard from.
    broker_expires_at: Instant,
    /// Whether the program holds a request on this connection (from `recv`
    /// returning it to its final reply or the next `recv`). Meanwhile the
    /// broker's silence is not taken for death: see the module docs.
    holding: bool,
    /// Whether this connection has sent a HEARTBEAT while the program held
    /// one of its requests, which shows the broker that this worker
    /// heartbeats while busy (see the module docs).
    told_busy_heartbeats: bool,
    heartbeat_at: Instant,
    /// While disconnected: when to connect again.
    reconnect_at: Option<Instant>,
    /// The next reconnection back-off (before jitter): it doubles on each
    /// failure, and returns to the configured delay once the broker sends a
    /// heartbeat or a request (proof that it accepted the registration).
    delay: Duration,
    /// DISCONNECTs in a row with nothing else from the broker between them:
    /// the broker refuses this worker's registration.
    refusals: u32,
    /// Requests read while the program was busy (normally none: a broker
    /// sends a request only to an idle worker, but a reconnection makes a
    /// busy worker idle in the broker's eyes).
    requests: VecDeque<Request>,
}

impl Link {
    fn new(endpoint: &str, service: &str, config: WorkerConfig) -> Result<Link, zmq::Error> {
        let now = Instant::now();
        let mut link = Link {
            context: zmq::Context::new(),
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
            dialect: config.dialect(),
            delay: config.reconnect_delay,
            refusals: 0,
            config,
            socket: None,
            generation: 0,
            broker_expires_at: now,
            holding: false,
            told_busy_heartbeats: false,
            heartbeat_at: now,
            reconnect_at: None,
            requests: VecDeque::new(),
        };
        link.connect()?;
        Ok(link)
    }

    /// A new socket, and READY on it.
    fn connect(&mut self) -> Result<(), zmq::Error> {
        let socket = self.context.socket(zmq::DEALER)?;
        socket.set_linger(100)?;
        // So that brokers at IPv6 addresses (tcp://[::1]:5555) can be reached.
        socket.set_ipv6(true)?;
        if let Some(curve) = &self.config.curve {
            curve.apply(&socket)?;
        }
        socket.connect(&self.endpoint)?;
        self.socket = Some(socket);
        self.generation += 1;
        self.reconnect_at = None;
        // A held request belongs to the old connection; on this one the
        // broker sees an idle worker, and heartbeats it. It has not yet
        // seen this worker heartbeat while busy.
        self.holding = false;
        self.told_busy_heartbeats = false;
        self.restart_broker_clock();
        let service = Frame::from(self.service.as_str());
        self.send(FromWorker::Ready { service });
        info!("worker for '{}' registering with {}", self.service, self.endpoint);
        Ok(())
    }

    /// Sends a command without waiting, and restarts the heartbeat clock.
    /// Returns whether the command went out.
    fn send(&mut self, cmd: FromWorker) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        let mut frames = Vec::new();
        protocol::encode_from_worker(&mut frames, self.dialect, cmd);
        let sent = frame::send_multipart(socket, frames).is_ok();
        if !sent {
            debug!("send to broker failed; heartbeating will notice if it is gone");
        }
        self.heartbeat_at = later(Instant::now(), self.config.heartbeat_interval);
        sent
    }

    /// Sends a reply, unless its request came on an earlier connection. A
    /// final reply ends the holding of the request.
    fn answer(&mut self, generation: u64, reply: FromWorker) {
        let last = matches!(reply, FromWorker::Final { .. });
        if generation != self.generation || self.socket.is_none() {
            debug!("reply to a request from an earlier connection dropped");
            return;
        }
        self.send(reply);
        if last {
            self.stop_holding();
        }
    }

    /// The program no longer works on a request: the broker, which sends
    /// heartbeats again now, gets a whole expiry to be heard from.
    fn stop_holding(&mut self) {
        if self.holding {
            self.holding = false;
            self.restart_broker_clock();
        }
    }

    /// Says goodbye to the broker, if connected.
    fn disconnect(&mut self) {
        self.send(FromWorker::Disconnect);
    }

    /// The program has just taken `request`: if it is the first it holds
    /// from this connection, two HEARTBEATs show the broker that this worker
    /// heartbeats while busy (see the module docs). Tried again with the
    /// next request if they could not be sent.
    fn tell_busy_heartbeats(&mut self, request: &Request) {
        if !self.told_busy_heartbeats && request.generation == self.generation {
            self.told_busy_heartbeats = self.send(FromWorker::Heartbeat) && self.send(FromWorker::Heartbeat);
        }
    }

    /// The broker is taken for dead if it stays silent for the expiry from now.
    fn restart_broker_clock(&mut self) {
        self.broker_expires_at = later(Instant::now(), self.config.expiry());
    }

    /// Closes the socket and schedules the next connection attempt after the
    /// back-off with random jitter (so that workers disconnected together do
    /// not come back in lock step), then doubles the back-off.
    fn back_off(&mut self) {
        self.schedule_reconnect(jitter(self.delay));
        self.delay = self.delay.saturating_mul(2).min(self.config.max_reconnect_delay);
    }

    /// Closes the socket and schedules the next connection attempt.
    fn schedule_reconnect(&mut self, delay: Duration) {
        self.socket = None;
        self.reconnect_at = Some(later(Instant::now(), delay));
    }

    fn next_deadline(&self) -> Instant {
        match self.reconnect_at {
            Some(at) => at,
            None if self.holding => self.heartbeat_at,
            None => self.heartbeat_at.min(self.broker_expires_at),
        }
    }

    /// The keeper's turn: what the broker sent, then the timers. Returns
    /// the next deadline.
    fn tick(&mut self) -> Instant {
        self.read_broker(Reading::All);
        self.on_time();
        self.next_deadline()
    }

    /// The program's wait for a request (until `give_up_at`, if given),
    /// doing the link's work meanwhile; the request it returns is held.
    fn recv_until(&mut self, give_up_at: Option<Instant>) -> Result<Option<Request>, WorkerError> {
        self.stop_holding();
        let request = self.wait_for_request(give_up_at)?;
        self.holding = request.is_some();
        if let Some(request) = &request {
            self.tell_busy_heartbeats(request);
        }
        Ok(request)
    }

    fn wait_for_request(&mut self, give_up_at: Option<Instant>) -> Result<Option<Request>, WorkerError> {
        loop {
            if let Some(request) = self.requests.pop_front() {
                return Ok(Some(request));
            }
            if self.refusals >= REFUSALS_REPORTED {
                let times = std::mem::take(&mut self.refusals);
                return Err(WorkerError::Refused { times });
            }
            self.on_time();
            if give_up_at.is_some_and(|at| at <= Instant::now()) {
                return Ok(None);
            }
            let wake_at = give_up_at.map_or(self.next_deadline(), |at| at.min(self.next_deadline()));
            if self.wait_readable(wake_at)? {
                self.read_broker(Reading::UntilRequest);
            }
        }
    }

    /// Waits until the broker sent something (`true`) or `deadline`.
    fn wait_readable(&self, deadline: Instant) -> Result<bool, WorkerError> {
        let Some(socket) = &self.socket else {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            return Ok(false);
        };
        match socket.poll(zmq::POLLIN, poll::until_ms(deadline)) {
            Ok(ready) => Ok(ready > 0),
            Err(zmq::Error::EINTR) => Ok(false),
            Err(e) => Err(WorkerError::Socket(e)),
        }
    }

    /// Heartbeats, broker expiry, reconnection.
    fn on_time(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.reconnect_at {
            if now >= at && self.connect().is_err() {
                self.schedule_reconnect(self.config.max_reconnect_delay);
            }
            return;
        }
        if !self.holding && now >= self.broker_expires_at {
            warn!(
                "worker for '{}': broker at {} silent for {:?} (liveness {} x interval {:?}); reconnecting. If the \
                 broker is alive, its --heartbeat-interval is longer than this worker's: give both the same",
                self.service,
                self.endpoint,
                self.config.expiry(),
                self.config.heartbeat_liveness,
                self.config.heartbeat_interval,
            );
            self.back_off();
        } else if now >= self.heartbeat_at {
            self.send(FromWorker::Heartbeat);
        }
    }

    /// Reads what the broker sent, without waiting; requests join the queue.
    fn read_broker(&mut self, reading: Reading) {
        while let Some(socket) = self.socket.as_mut() {
            let Ok(frames) = frame::recv_multipart(socket, true) else {
                return;
            };
            let cmd = match protocol::decode_at_worker(frames) {
                Ok((_, cmd)) => cmd,
                Err(error) => {
                    debug!("invalid message from broker dropped: {error}");
                    continue;
                }
            };
            self.restart_broker_clock();
            if !matches!(cmd, ToWorker::Disconnect) {
                self.delay = self.config.reconnect_delay;
                self.refusals = 0;
            }
            match cmd {
                ToWorker::Request { client, body } => {
                    let generation = self.generation;
                    self.requests.push_back(Request {
                        body,
                        client,
                        generation,
                    });
                    if reading == Reading::UntilRequest {
                        return;
                    }
                }
                ToWorker::Disconnect => {
                    self.refusals = self.refusals.saturating_add(1);
                    info!("broker sent DISCONNECT; registering again in about {:?}", self.delay);
                    self.back_off();
                }
                ToWorker::Heartbeat => {}
            }
        }
    }
}

/// How much [`Link::read_broker`] reads: the program stops at a request
/// (the rest can wait for its next `recv`); the keeper reads everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    UntilRequest,
    All,
}

/// DISCONNECTs in a row after which `recv` reports that the broker refuses
/// the worker.
const REFUSALS_REPORTED: u32 = 5;

/// `delay` scaled by a random factor from 0.5 to 1.5.
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // Each RandomState has fresh random keys: a random u64 without a crate.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    delay.mul_f64(0.5 + (random >> 11) as f64 / (1u64 << 53) as f64)
}

/// `from + after`, or a time too far off to matter if that overflows (so
/// that no configured duration can make the worker panic).
fn later(from: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    from.checked_add(after.min(FAR)).unwrap_or(from)
}
