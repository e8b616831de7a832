//! The broker's I/O loop: one ROUTER socket, bound to every endpoint given,
//! owned by one thread together with the [`Broker`] state.
//!
//! The loop is: poll (the socket, and a stop pipe) until the broker's next
//! deadline; receive what is waiting; feed it to the broker; send what the
//! broker queued; do what is due. Nothing here knows the protocol.
//!
//! Sends never block: the socket is in `ROUTER_MANDATORY` mode and every
//! send is non-blocking, so a message for a peer that is gone, or whose
//! queue is full, fails at once instead of stalling everyone. The loop
//! reports each failed send to the broker ([`Broker::send_failed`]), which
//! decides what it means.
//!
//! Stopping is a byte written to a pipe the loop polls: the same path serves
//! SIGTERM/SIGINT (through `signal-hook`) and [`StopHandle::stop`] for
//! programs and tests that run a broker on a thread.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::backlog::{self, Backlog, Failure, Offer};
use super::core::StreamPart;
use super::endpoint::{self, IpcFile};
use super::{Broker, Config, Outbound, Recipient};
use crate::frame::{self, Frame};
use crate::poll;
use crate::security::{Security, ZapError, ZapHandler};

/// How long the socket may spend flushing DISCONNECTs when the broker stops.
const LINGER: Duration = Duration::from_millis(500);
/// Pending connections the kernel may queue per endpoint (it caps this at
/// net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 4096;
/// Messages received in one go before timers get a turn.
const RECV_BATCH: usize = 1024;

/// Why the broker could not start or had to stop.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// An endpoint could not be bound (in use, malformed, no such interface).
    Bind {
        /// The endpoint as given.
        endpoint: String,
        /// Why (libzmq's error, or the same error for a refusal of ours).
        source: zmq::Error,
        /// What to write or do instead.
        hint: &'static str,
    },
    /// A call on the broker's socket failed (`what` says which).
    Socket {
        /// The call that failed.
        what: &'static str,
        /// What libzmq said.
        source: zmq::Error,
    },
    /// The stop pipe could not be made, or a signal handler installed.
    Signals(io::Error),
    /// The ZAP handler could not start.
    Zap(ZapError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The cause is on the same line: operators read this one line.
            ServerError::Bind { endpoint, source, hint } => write!(f, "cannot bind {endpoint}: {source} ({hint})"),
            ServerError::Socket { what, .. } => write!(f, "broker socket: {what} failed"),
            ServerError::Signals(_) => write!(f, "cannot set up the stop pipe or signal handlers"),
            ServerError::Zap(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind { source, .. } | ServerError::Socket { source, .. } => Some(source),
            ServerError::Signals(e) => Some(e),
            ServerError::Zap(e) => Some(e),
        }
    }
}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> ServerError {
        ServerError::Signals(e)
    }
}

/// Binds every endpoint, recording the socket files of ipc ones; returns
/// the endpoints as bound (wildcard ports resolved).
fn bind_all<S: AsRef<str>>(
    socket: &zmq::Socket,
    endpoints: &[S],
    ipc_files: &mut Vec<IpcFile>,
) -> Result<Vec<String>, ServerError> {
    // Everything that can be checked without binding is checked for every
    // endpoint first, so that a refusal comes before any "listening on".
    for endpoint in endpoints {
        let endpoint = endpoint.as_ref();
        let refused = |source, hint| bind_error(endpoint, source, hint);
        if endpoints.iter().filter(|e| e.as_ref() == endpoint).count() > 1 {
            return Err(refused(zmq::Error::EINVAL, "the same endpoint is given twice"));
        }
        endpoint::check(endpoint).map_err(|refusal| refused(refusal.error(), refusal.hint()))?;
    }
    let mut bound: Vec<String> = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let endpoint = endpoint.as_ref();
        let refused = |source, hint| bind_error(endpoint, source, hint);
        // IPv6 as well as IPv4 (libzmq reads the option at each bind):
        // tcp://[::1]:PORT binds, and tcp://*:PORT serves both families
        // where the host has IPv6 (libzmq falls back to IPv4 alone where it
        // has not). Other hosts are bound as IPv4, libzmq's default (see
        // endpoint::wants_ipv6).
        socket_call("setting IPV6", socket.set_ipv6(endpoint::wants_ipv6(endpoint)))?;
        socket
            .bind(endpoint)
            .map_err(|source| refused(source, endpoint::hint(endpoint, source)))?;
        ipc_files.extend(IpcFile::bound(endpoint));
        let resolved = match socket_call("reading the bound endpoint", socket.get_last_endpoint())? {
            Ok(resolved) => resolved,
            Err(_) => endpoint.to_owned(),
        };
        bound.push(resolved);
    }
    Ok(bound)
}

/// A refused or failed bind of `endpoint`.
fn bind_error(endpoint: &str, source: zmq::Error, hint: &'static str) -> ServerError {
    ServerError::Bind {
        endpoint: endpoint.to_owned(),
        source,
        hint,
    }
}

/// Names the socket call that failed, for [`ServerError::Socket`].
fn socket_call<T>(what: &'static str, result: Result<T, zmq::Error>) -> Result<T, ServerError> {
    result.map_err(|source| ServerError::Socket { what, source })
}

/// Bounds the frames of each message a peer may send. A libzmq without
/// our option (crates.io's) refuses it with `EINVAL`: the broker then runs
/// without the bound, and says so once, as it does for `ZMQ_ROUTER_NOTIFY`.
fn set_max_frames(socket: &mut zmq::Socket, max: Option<u32>) -> Result<(), ServerError> {
    match frame::set_max_frames(socket, max) {
        Err(zmq::Error::EINVAL) if max.is_some_and(|n| n > 0) => {
            error!(
                "this is not the workspace's patched libzmq (it lacks ZMQ_MAXFRAMES_MD): a peer can make the broker \
                 hold a message of any number of frames; build with majordomo's zmq-sys (docs/architecture.md, \
                 \"libzmq\")"
            );
            Ok(())
        }
        result => socket_call("setting MAXFRAMES", result),
    }
}

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    pipe: Arc<UnixStream>,
}

impl StopHandle {
    /// Asks the server to send DISCONNECT to its workers and return.
    pub fn stop(&self) {
        // A full pipe already holds a stop request, so an error is harmless.
        let _ = (&*self.pipe).write(&[1]);
    }
}

/// A bound broker, ready to [`run`](Server::run).
///
/// Built in this workspace, it runs on the workspace's patched libzmq; a
/// program outside it gets crates.io's stock libzmq unless it adds the
/// workspace's `[patch.crates-io]` for `zmq-sys`, and a `Server` on stock
/// libzmq can be crashed by peers' chosen routing ids (it logs an error at
/// start; see docs/architecture.md, "libzmq").
///
/// # Examples
///
/// A broker on a thread of a program, stopped from another thread:
///
/// ```no_run
/// use majordomo::broker::{Config, Server};
///
/// let server = Server::bind(&["tcp://127.0.0.1:*"], Config::default())?;
/// println!("serving on {}", server.endpoints()[0]);
/// let stop = server.stop_handle();
/// let thread = std::thread::spawn(move || server.run());
/// // ... later:
/// stop.stop();
/// thread.join().expect("broker thread")?;
/// # Ok::<(), majordomo::broker::ServerError>(())
/// ```
///
/// A daemon that stops on SIGINT and SIGTERM:
///
/// ```no_run
/// use majordomo::broker::{Config, Server};
///
/// let server = Server::bind(&["tcp://*:5555"], Config::default())?;
/// server.stop_on_signals()?;
/// server.run()?;
/// # Ok::<(), majordomo::broker::ServerError>(())
/// ```
pub struct Server {
    socket: zmq::Socket,
    /// Answers the handshakes of a secured broker; dropped (stopped) after
    /// the socket is closed, since a socket with no handler admits peers.
    _zap: Option<ZapHandler>,
    /// The keys and rules in force, read again on SIGHUP.
    security: Option<Security>,
    endpoints: Vec<String>,
    /// Socket files of the ipc endpoints, removed when the broker stops.
    ipc_files: Vec<IpcFile>,
    broker: Broker,
    /// Replies waiting for clients whose pipes are full.
    backlog: Backlog,
    /// When the backlog is next retried, while it holds anything.
    retry_at: Option<Instant>,
    stop_rx: UnixStream,
    stop_tx: Arc<UnixStream>,
    /// SIGHUP's pipe: the signal must not kill the broker (its default);
    /// until the configuration can be reloaded it is logged and ignored.
    hangup_rx: UnixStream,
    hangup_tx: UnixStream,
    // Dropped last: terminating the context waits for the socket's linger.
    _context: zmq::Context,
}

impl Server {
    /// Creates the ROUTER socket and binds every endpoint.
    pub fn bind<S: AsRef<str>>(endpoints: &[S], config: Config) -> Result<Server, ServerError> {
        Server::open(endpoints, config, None)
    }

    /// As [`Server::bind`], with `security` on every endpoint: its ZAP
    /// handler starts before anything is bound, and SIGHUP (with
    /// [`Server::stop_on_signals`]) reads its key list and rules again.
    pub fn bind_secure<S: AsRef<str>>(
        endpoints: &[S],
        config: Config,
        security: Security,
    ) -> Result<Server, ServerError> {
        Server::open(endpoints, config, Some(security))
    }

    fn open<S: AsRef<str>>(endpoints: &[S], config: Config, security: Option<Security>) -> Result<Server, ServerError> {
        let context = zmq::Context::new();
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        let stop_tx = Arc::new(stop_tx);
        let zap = match &security {
            Some(security) => {
                let broker = StopHandle {
                    pipe: Arc::clone(&stop_tx),
                };
                Some(security.start_handler(&context, broker).map_err(ServerError::Zap)?)
            }
            None => None,
        };
        let socket = socket_call("creating the ROUTER socket", context.socket(zmq::ROUTER))?;
        socket_call("setting ROUTER_MANDATORY", socket.set_router_mandatory(true))?;
        // The core drops queued requests of clients that have gone, and
        // deletes a worker as soon as its connection closes.
        let mut socket = socket;
        let departure_notices = match frame::notify_disconnects(&mut socket) {
            Ok(()) => true,
            Err(zmq::Error::EINVAL) => {
                error!(
                    "this is not the workspace's patched libzmq (it lacks ZMQ_ROUTER_NOTIFY): peers that choose \
                     routing ids can crash this broker, and requests of departed clients are dispatched; build \
                     with majordomo's zmq-sys (docs/architecture.md, \"libzmq\")"
                );
                false
            }
            Err(source) => {
                return Err(ServerError::Socket {
                    what: "setting ROUTER_NOTIFY",
                    source,
                });
            }
        };
        // libzmq's default listen backlog is 100: thousands of workers
        // reconnecting at once (after a broker restart) would overflow it and
        // wait out the kernel's SYN retries for tens of seconds.
        socket_call("setting the listen backlog", socket.set_backlog(LISTEN_BACKLOG))?;
        let handshake_ms = i32::try_from(config.handshake_timeout.as_millis()).unwrap_or(i32::MAX);
        socket_call("setting the handshake timeout", socket.set_handshake_ivl(handshake_ms))?;
        socket_call("setting the linger", socket.set_linger(LINGER.as_millis() as i32))?;
        let max_message_size = config
            .max_message_size
            .map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
        socket_call("setting MAXMSGSIZE", socket.set_maxmsgsize(max_message_size))?;
        set_max_frames(&mut socket, config.max_frames_per_message)?;
        if let Some(security) = &security {
            socket_call("setting up CURVE and ZAP", security.apply(&socket))?;
        }
        let mut ipc_files = Vec::new();
        let bound = match bind_all(&socket, endpoints, &mut ipc_files) {
            Ok(bound) => bound,
            Err(error) => {
                // A broker that does not start leaves no socket file behind.
                for file in &ipc_files {
                    let _ = file.remove();
                }
                return Err(error);
            }
        };
        let mut broker = Broker::new(config.clone(), Instant::now());
        if !departure_notices {
            broker.without_departure_notices();
        }
        if let Some(access) = security.as_ref().and_then(Security::access) {
            broker.set_access(access, Instant::now());
        }
        let (hangup_rx, hangup_tx) = UnixStream::pair()?;
        for end in [&stop_rx, &stop_tx, &hangup_rx, &hangup_tx] {
            end.set_nonblocking(true)?;
        }
        Ok(Server {
            socket,
            _zap: zap,
            security,
            endpoints: bound,
            ipc_files,
            backlog: Backlog::new(config.max_client_backlog, config.max_total_backlog),
            retry_at: None,
            broker,
            stop_rx,
            stop_tx,
            hangup_rx,
            hangup_tx,
            _context: context,
        })
    }

    /// The endpoints actually bound, with wildcard ports resolved (bind
    /// `tcp://127.0.0.1:*` and read the port here).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            pipe: Arc::clone(&self.stop_tx),
        }
    }

    /// Makes SIGINT and SIGTERM stop the server (as [`StopHandle::stop`]),
    /// and SIGHUP read the security settings' key list and rules again
    /// (logged and ignored without them; it would otherwise kill the
    /// process).
    pub fn stop_on_signals(&self) -> Result<(), ServerError> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(signal, self.stop_tx.try_clone()?)?;
        }
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, self.hangup_tx.try_clone()?)?;
        Ok(())
    }

    /// Serves until stopped; then sends DISCONNECT to every worker.
    pub fn run(mut self) -> Result<(), ServerError> {
        // Said here rather than at bind: a supervisor (or a test) that
        // waits for this line may signal at once, and a daemon installs its
        // signal handlers between bind and run.
        for endpoint in &self.endpoints {
            info!("listening on {endpoint}");
        }
        let mut outbox = Vec::new();
        loop {
            self.broker.tick(Instant::now());
            // Replies first, then what the core queued meanwhile (requests
            // of clients whose backlog has drained, among them).
            self.retry_backlog();
            self.flush(&mut outbox);
            let (readable, stop) = self.wait()?;
            if stop {
                break;
            }
            if readable {
                self.receive(&mut outbox)?;
            }
        }
        self.broker.shutdown();
        self.flush(&mut outbox);
        for file in &self.ipc_files {
            if let Err(error) = file.remove() {
                warn!("cannot remove {}: {error}", file.path().display());
            }
        }
        info!("stopped; {:?}; {:?}", self.broker.stats(), self.backlog.stats());
        Ok(())
    }

    /// Polls until a message arrives, a stop is requested, or the broker's
    /// next deadline. Returns (socket readable, stop requested).
    fn wait(&mut self) -> Result<(bool, bool), ServerError> {
        let wake_at = match (self.broker.next_deadline(), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = wake_at.map_or(-1, poll::until_ms);
        let mut items = [
            self.socket.as_poll_item(zmq::POLLIN),
            zmq::PollItem::from_fd(self.stop_rx.as_raw_fd(), zmq::POLLIN),
            zmq::PollItem::from_fd(self.hangup_rx.as_raw_fd(), zmq::POLLIN),
        ];
        match zmq::poll(&mut items, timeout) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => return Ok((false, false)),
            Err(source) => return Err(ServerError::Socket { what: "poll", source }),
        }
        let [socket, stop, hangup] = &items;
        let (readable, stop, hangup) = (socket.is_readable(), stop.is_readable(), hangup.is_readable());
        if hangup && drain(&mut self.hangup_rx) {
            self.reload();
        }
        Ok((readable, stop && self.stop_requested()))
    }

    /// SIGHUP: the security settings' files are read again.
    fn reload(&mut self) {
        match &mut self.security {
            Some(security) => {
                if let Some(access) = security.reload() {
                    self.broker.set_access(access, Instant::now());
                }
            }
            None => info!("SIGHUP: nothing to reload (no security settings); ignored"),
        }
    }

    fn stop_requested(&mut self) -> bool {
        let mut buf = [0u8; 16];
        matches!(self.stop_rx.read(&mut buf), Ok(n) if n > 0)
    }

    /// Receives what is waiting (up to a batch) and handles it.
    fn receive(&mut self, outbox: &mut Vec<Outbound>) -> Result<(), ServerError> {
        for _ in 0..RECV_BATCH {
            let frames = match frame::recv_multipart(&mut self.socket, true) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(source) => {
                    return Err(ServerError::Socket {
                        what: "receive",
                        source,
                    });
                }
            };
            let mut frames = frames.into_iter();
            let Some(identity) = frames.next() else { continue };
            let frames: Vec<Frame> = frames.collect();
            if let [only] = &frames[..]
                && only.is_empty()
            {
                // libzmq's notice that this peer's connection closed (see
                // frame::notify_disconnects): what waits for it is dropped.
                self.backlog.closed(&identity);
            }
            self.broker.handle(identity, frames, Instant::now());
            self.flush(outbox);
        }
        Ok(())
    }

    /// Sends everything the broker queued, reporting each failed send to
    /// the broker (which may queue more, such as a redelivered request),
    /// until nothing is left.
    fn flush(&mut self, outbox: &mut Vec<Outbound>) {
        loop {
            self.broker.take_outbox(outbox);
            if outbox.is_empty() {
                return;
            }
            let now = Instant::now();
            for out in outbox.drain(..) {
                match out.recipient {
                    Recipient::Client(part) => self.send_to_client(out.frames, part, now),
                    recipient => {
                        if let Err(error) = frame::send_multipart(&mut self.socket, out.frames) {
                            debug!("send failed: {error}");
                            self.broker.send_failed(recipient, now);
                        }
                    }
                }
            }
            self.report_backlog_changes(now);
        }
    }

    /// Tells the core which clients started or stopped having a backlog
    /// (their requests wait meanwhile: see `Broker::client_blocked`).
    fn report_backlog_changes(&mut self, now: Instant) {
        let broker = &mut self.broker;
        self.backlog.take_changes(|client, blocked| {
            if blocked {
                broker.client_blocked(client);
            } else {
                broker.client_unblocked(client, now);
            }
        });
    }

    /// Sends a reply to a client, unless it must wait behind others in the
    /// backlog, which also decides what a full pipe means.
    fn send_to_client(&mut self, frames: Vec<frame::Frame>, part: StreamPart, now: Instant) {
        let Offer::Send(frames) = self.backlog.offer(frames, part, now) else {
            return;
        };
        if let Err((failure, frames)) = send_reply(&mut self.socket, frames) {
            self.backlog.failed(frames, part, failure, now);
            if self.retry_at.is_none() {
                self.retry_at = Some(now + backlog::RETRY_INTERVAL);
            }
        }
    }

    /// Sends what clients' backlogs hold, if it is time to try again.
    fn retry_backlog(&mut self) {
        let Some(at) = self.retry_at else { return };
        let now = Instant::now();
        if now < at {
            return;
        }
        let socket = &mut self.socket;
        self.backlog.retry(|frames| send_reply(socket, frames));
        self.retry_at = self.backlog.is_waiting().then(|| now + backlog::RETRY_INTERVAL);
        self.report_backlog_changes(now);
    }
}

/// Empties a signal pipe; whether it held anything.
fn drain(pipe: &mut UnixStream) -> bool {
    let mut buf = [0u8; 16];
    let mut any = false;
    while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {
        any = true;
    }
    any
}

/// Sends a reply to a client; a full pipe and a gone client fail apart.
fn send_reply(socket: &mut zmq::Socket, frames: Vec<frame::Frame>) -> Result<(), (Failure, Vec<frame::Frame>)> {
    frame::try_send_multipart(socket, frames).map_err(|(error, frames)| match error {
        zmq::Error::EAGAIN => (Failure::Full, frames),
        _ => (Failure::Gone, frames),
    })
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoints", &self.endpoints)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}
