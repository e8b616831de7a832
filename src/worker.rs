//! An MDP worker: registers one service with a broker, hands the program
//! each request, sends its replies, and keeps the link to the broker alive.
//!
//! Why a thread: the classic worker API (zguide mdwrkapi) only talks to the
//! broker when the program calls it, so it cannot heartbeat while the
//! program works on a request, and a broker must then either wait a long
//! time before declaring it dead or kill long requests. This worker's
//! socket belongs to a background thread that heartbeats on schedule
//! whatever the program is doing. The broker therefore holds it to the
//! normal liveness even while busy and notices its death within
//! liveness x interval, and its request is redelivered quickly.
//!
//! The same thread watches the broker: if the broker falls silent for
//! liveness x interval, or sends DISCONNECT, it closes the socket, waits
//! (doubling the wait on each failed attempt, up to a limit), and registers
//! again on a new socket. The program never notices, except that a request
//! received before a reconnection can no longer be answered: its reply is
//! dropped, because the broker that sent it has forgotten it (and has
//! redelivered it, or the client retries).
//!
//! The program and the thread talk over an inproc PAIR socket, so request
//! and reply bodies move between them without copies.

use std::fmt;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::frame::{self, Frame};
use crate::poll;
use crate::protocol::{self, Dialect, FromWorker, ToWorker, Version};

/// How a worker talks to its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The protocol version to speak (MDP/0.2 is needed for PARTIAL replies).
    pub version: Version,
    /// How often to send HEARTBEAT; should match the broker's interval.
    pub heartbeat_interval: Duration,
    /// Missed intervals after which the broker is taken for dead.
    pub heartbeat_liveness: u32,
    /// First wait before reconnecting; doubles on each failed attempt.
    pub reconnect_delay: Duration,
    /// Longest wait before reconnecting.
    pub max_reconnect_delay: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            version: Version::V01,
            heartbeat_interval: Duration::from_millis(2500),
            heartbeat_liveness: 3,
            reconnect_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_secs(5),
        }
    }
}

/// Why a worker call failed.
#[derive(Debug)]
pub enum WorkerError {
    /// The worker's link thread has stopped.
    Stopped,
    /// PARTIAL replies need MDP/0.2.
    PartialNeedsV02,
    /// A socket call failed (for example, a malformed endpoint).
    Zmq(zmq::Error),
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Stopped => write!(f, "the worker has stopped"),
            WorkerError::PartialNeedsV02 => write!(f, "PARTIAL replies need MDP/0.2"),
            WorkerError::Zmq(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for WorkerError {}

impl From<zmq::Error> for WorkerError {
    fn from(e: zmq::Error) -> WorkerError {
        WorkerError::Zmq(e)
    }
}

/// A request to answer, as the program receives it.
#[derive(Debug)]
pub struct Request {
    /// The request body.
    pub body: Vec<Frame>,
    client: Frame,
    generation: u64,
}

/// Tags of the messages the program sends the link thread.
const TAG_FINAL: u8 = b'F';
const TAG_PARTIAL: u8 = b'P';
const TAG_STOP: u8 = b'S';

/// A worker registered for one service.
pub struct Worker {
    pipe: zmq::Socket,
    version: Version,
    thread: Option<JoinHandle<()>>,
    _context: zmq::Context,
}

impl Worker {
    /// Connects to the broker at `endpoint` and registers for `service`.
    pub fn connect(endpoint: &str, service: &str, config: WorkerConfig) -> Result<Worker, WorkerError> {
        let context = zmq::Context::new();
        let pipe = context.socket(zmq::PAIR)?;
        // The context is this worker's own, so one fixed name is enough.
        pipe.bind("inproc://majordomo-worker")?;
        let link_pipe = context.socket(zmq::PAIR)?;
        link_pipe.connect("inproc://majordomo-worker")?;
        // Fail now on a malformed endpoint, not later on the thread.
        let link = Link::new(&context, endpoint, service, config.clone())?;
        let thread = std::thread::Builder::new()
            .name(format!("mdp-worker-{service}"))
            .spawn(move || link.run(link_pipe))
            .map_err(|_| WorkerError::Stopped)?;
        Ok(Worker {
            pipe,
            version: config.version,
            thread: Some(thread),
            _context: context,
        })
    }

    /// Waits for the next request.
    pub fn recv(&mut self) -> Result<Request, WorkerError> {
        self.recv_timeout(None)?.ok_or(WorkerError::Stopped)
    }

    /// Waits at most `timeout` (forever if `None`) for the next request.
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Request>, WorkerError> {
        let timeout_ms = timeout.map_or(-1, poll::timeout_ms);
        if self.pipe.poll(zmq::POLLIN, timeout_ms)? == 0 {
            return Ok(None);
        }
        let mut frames = frame::recv_multipart(&mut self.pipe, false)?.into_iter();
        let (Some(generation), Some(client)) = (frames.next(), frames.next()) else {
            return Err(WorkerError::Stopped);
        };
        let generation = u64::from_le_bytes(generation[..].try_into().map_err(|_| WorkerError::Stopped)?);
        Ok(Some(Request {
            body: frames.collect(),
            client,
            generation,
        }))
    }

    /// Sends the final reply to `request` (MDP/0.1 REPLY, MDP/0.2 FINAL).
    pub fn reply<B: Into<Frame>>(
        &mut self,
        request: Request,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), WorkerError> {
        self.send_to_link(TAG_FINAL, request.generation, request.client, body)
    }

    /// Sends one PARTIAL reply to `request` (MDP/0.2 only); the final reply
    /// must follow.
    pub fn partial<B: Into<Frame>>(
        &mut self,
        request: &Request,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), WorkerError> {
        if self.version != Version::V02 {
            return Err(WorkerError::PartialNeedsV02);
        }
        self.send_to_link(TAG_PARTIAL, request.generation, request.client.share(), body)
    }

    fn send_to_link<B: Into<Frame>>(
        &mut self,
        tag: u8,
        generation: u64,
        client: Frame,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), WorkerError> {
        let mut frames = vec![
            Frame::from_slice(&[tag]),
            Frame::from_slice(&generation.to_le_bytes()),
            client,
        ];
        frames.extend(body.into_iter().map(Into::into));
        frame::send_multipart(&mut self.pipe, frames).map_err(|_| WorkerError::Stopped)
    }
}

impl Drop for Worker {
    /// Sends DISCONNECT to the broker and stops the link thread.
    fn drop(&mut self) {
        let _ = frame::send_multipart(&mut self.pipe, vec![Frame::from_slice(&[TAG_STOP])]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The link thread's state: the socket to the broker and its timers.
struct Link {
    context: zmq::Context,
    endpoint: String,
    service: String,
    config: WorkerConfig,
    socket: Option<zmq::Socket>,
    /// Counts connections; a reply for an older one is dropped.
    generation: u64,
    /// When the broker is taken for dead unless heard from.
    broker_expires_at: Instant,
    heartbeat_at: Instant,
    /// While disconnected: when to connect again.
    reconnect_at: Option<Instant>,
    delay: Duration,
}

impl Link {
    fn new(context: &zmq::Context, endpoint: &str, service: &str, config: WorkerConfig) -> Result<Link, zmq::Error> {
        let now = Instant::now();
        let mut link = Link {
            context: context.clone(),
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
            delay: config.reconnect_delay,
            config,
            socket: None,
            generation: 0,
            broker_expires_at: now,
            heartbeat_at: now,
            reconnect_at: None,
        };
        link.connect()?;
        Ok(link)
    }

    fn dialect(&self) -> Dialect {
        Dialect::standard(self.config.version)
    }

    fn expiry(&self) -> Duration {
        self.config.heartbeat_interval * self.config.heartbeat_liveness
    }

    /// A new socket, and READY on it.
    fn connect(&mut self) -> Result<(), zmq::Error> {
        let socket = self.context.socket(zmq::DEALER)?;
        socket.set_linger(100)?;
        socket.connect(&self.endpoint)?;
        self.socket = Some(socket);
        self.generation += 1;
        self.reconnect_at = None;
        let now = Instant::now();
        self.broker_expires_at = now + self.expiry();
        self.send(FromWorker::Ready {
            service: Frame::from(self.service.as_str()),
        });
        info!("worker for '{}' registering with {}", self.service, self.endpoint);
        Ok(())
    }

    fn send(&mut self, cmd: FromWorker) {
        let dialect = self.dialect();
        let Some(socket) = self.socket.as_mut() else { return };
        let mut frames = Vec::new();
        protocol::encode_from_worker(&mut frames, dialect, cmd);
        if frame::send_multipart(socket, frames).is_err() {
            debug!("send to broker failed; heartbeating will notice if it is gone");
        }
        self.heartbeat_at = Instant::now() + self.config.heartbeat_interval;
    }

    /// Closes the socket and schedules the next connection attempt.
    fn schedule_reconnect(&mut self, delay: Duration) {
        self.socket = None;
        self.reconnect_at = Some(Instant::now() + delay);
    }

    fn run(mut self, mut pipe: zmq::Socket) {
        loop {
            self.on_time();
            let timeout_ms = poll::until_ms(self.next_deadline());
            let (pipe_ready, socket_ready) = {
                let mut items = vec![pipe.as_poll_item(zmq::POLLIN)];
                if let Some(socket) = &self.socket {
                    items.push(socket.as_poll_item(zmq::POLLIN));
                }
                if zmq::poll(&mut items, timeout_ms).is_err() {
                    continue;
                }
                (items[0].is_readable(), items.get(1).is_some_and(|i| i.is_readable()))
            };
            if pipe_ready && !self.handle_program(&mut pipe) {
                self.send(FromWorker::Disconnect);
                return;
            }
            if socket_ready {
                self.handle_broker(&mut pipe);
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        match self.reconnect_at {
            Some(at) => at,
            None => self.heartbeat_at.min(self.broker_expires_at),
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
        if now >= self.broker_expires_at {
            warn!(
                "broker at {} silent for {:?}; reconnecting in {:?}",
                self.endpoint,
                self.expiry(),
                self.delay
            );
            self.schedule_reconnect(self.delay);
            self.delay = (self.delay * 2).min(self.config.max_reconnect_delay);
        } else if now >= self.heartbeat_at {
            self.send(FromWorker::Heartbeat);
        }
    }

    /// Handles one message from the program; `false` means stop.
    fn handle_program(&mut self, pipe: &mut zmq::Socket) -> bool {
        let Ok(frames) = frame::recv_multipart(pipe, false) else {
            return false;
        };
        let mut frames = frames.into_iter();
        let (Some(tag), Some(generation), Some(client)) = (frames.next(), frames.next(), frames.next()) else {
            return false; // TAG_STOP, alone
        };
        let generation = generation[..].try_into().map(u64::from_le_bytes).unwrap_or(0);
        if generation != self.generation || self.socket.is_none() {
            debug!("reply to a request from an earlier connection dropped");
            return true;
        }
        let body = frames.collect();
        match tag[..] {
            [TAG_PARTIAL] => {
                if let Some(streaming) = self.dialect().streaming() {
                    self.send(FromWorker::Partial {
                        streaming,
                        client,
                        body,
                    });
                }
            }
            [TAG_FINAL] => self.send(FromWorker::Final { client, body }),
            _ => {}
        }
        true
    }

    /// Handles what the broker sent.
    fn handle_broker(&mut self, pipe: &mut zmq::Socket) {
        while let Some(socket) = self.socket.as_mut() {
            let frames = match frame::recv_multipart(socket, true) {
                Ok(frames) => frames,
                Err(_) => return,
            };
            let cmd = match protocol::decode_at_worker(frames) {
                Ok((_, cmd)) => cmd,
                Err(error) => {
                    debug!("invalid message from broker dropped: {error}");
                    continue;
                }
            };
            self.broker_expires_at = Instant::now() + self.expiry();
            self.delay = self.config.reconnect_delay;
            match cmd {
                ToWorker::Request { client, body } => {
                    let mut frames = vec![Frame::from_slice(&self.generation.to_le_bytes()), client];
                    frames.extend(body);
                    if frame::send_multipart(pipe, frames).is_err() {
                        debug!("program not reading; request dropped");
                    }
                }
                ToWorker::Disconnect => {
                    info!("broker sent DISCONNECT; registering again");
                    self.schedule_reconnect(Duration::ZERO);
                }
                _ => {}
            }
        }
    }
}
