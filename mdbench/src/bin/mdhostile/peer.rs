//! Raw 7/MDP peers: DEALER sockets that say exactly what a scenario needs,
//! well-formed or not, and an echo pool of raw workers on one thread.
//!
//! Why raw frames and not the library's `Client` and `Worker`: hostile
//! peers do what those refuse to (pipeline without reading, claim another
//! peer's routing id, heartbeat and never answer), and the polite ones must
//! not retry or reconnect behind the measurement's back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use majordomo::protocol::{MDPC01, MDPW01};

use crate::Failure;

/// A multipart message, frame by frame.
pub type Message = Vec<Vec<u8>>;

const READY: u8 = 1;
const REQUEST: u8 = 2;
const REPLY: u8 = 3;
const HEARTBEAT: u8 = 4;
const DISCONNECT: u8 = 5;
/// Longest an echo pool runs, whatever its owner does.
const POOL_LIFETIME: Duration = Duration::from_secs(300);

/// A DEALER connected to the broker.
pub struct Peer {
    socket: zmq::Socket,
}

impl Peer {
    pub fn dealer(context: &zmq::Context, endpoint: &str) -> Result<Peer, Failure> {
        Peer::dealer_with(context, endpoint, None, false)
    }

    /// A DEALER with a chosen routing id, and no high-water marks if
    /// `unbounded` (every message sent is kept until it is delivered).
    pub fn dealer_with(
        context: &zmq::Context,
        endpoint: &str,
        routing_id: Option<&[u8]>,
        unbounded: bool,
    ) -> Result<Peer, Failure> {
        let socket = context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        if let Some(id) = routing_id {
            socket.set_identity(id)?;
        }
        if unbounded {
            socket.set_sndhwm(0)?;
            socket.set_rcvhwm(0)?;
        }
        socket.connect(endpoint)?;
        Ok(Peer { socket })
    }

    /// Watches this DEALER's disconnections on a PAIR socket; call before
    /// the connection is made, i.e. use [`Peer::watched`].
    pub fn watched(context: &zmq::Context, endpoint: &str, name: &str) -> Result<(Peer, zmq::Socket), Failure> {
        let socket = context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        socket.set_sndhwm(0)?;
        let address = format!("inproc://mdhostile-monitor-{name}");
        socket.monitor(&address, zmq::SocketEvent::DISCONNECTED as i32)?;
        let monitor = context.socket(zmq::PAIR)?;
        monitor.connect(&address)?;
        socket.connect(endpoint)?;
        Ok((Peer { socket }, monitor))
    }

    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    pub fn send(&self, frames: &[&[u8]]) -> Result<(), Failure> {
        Ok(self.socket.send_multipart(frames, 0)?)
    }

    /// Sends a 7/MDP client request.
    pub fn request(&self, service: &[u8], body: &[u8]) -> Result<(), Failure> {
        self.send(&[b"", MDPC01, service, body])
    }

    /// The next message, if one comes within `wait`.
    pub fn recv_within(&self, wait: Duration) -> Result<Option<Message>, Failure> {
        let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        if self.socket.poll(zmq::POLLIN, ms)? == 0 {
            return Ok(None);
        }
        Ok(Some(self.socket.recv_multipart(0)?))
    }

    /// The reply to a request for `service` whose body is `body`, if it
    /// comes before `deadline`; other messages (late replies to earlier
    /// requests, MMI answers) are skipped.
    pub fn reply_to(&self, service: &[u8], body: &[u8], deadline: Instant) -> Result<Option<Message>, Failure> {
        loop {
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            match self.recv_within(wait)? {
                Some(reply) if is_reply(&reply, service, body) => return Ok(Some(reply)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }
}

/// Whether `message` is a 7/MDP client reply from `service` carrying `body`.
pub fn is_reply(message: &Message, service: &[u8], body: &[u8]) -> bool {
    message.len() == 4 && message[1] == MDPC01 && message[2] == service && message[3] == body
}

/// Waits until the broker says `service` has a worker (8/MMI).
pub fn wait_service(context: &zmq::Context, endpoint: &str, service: &str, within: Duration) -> Result<(), Failure> {
    let probe = Peer::dealer(context, endpoint)?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        probe.request(b"mmi.service", service.as_bytes())?;
        let answer = probe.reply_to(b"mmi.service", b"200", Instant::now() + Duration::from_millis(100))?;
        if answer.is_some() {
            return Ok(());
        }
    }
    Err(Failure::Setup(format!("no worker for '{service}' within {within:?}")))
}

/// One echo round trip through `service` by a fresh client: how long it
/// took, if it came within `within`.
pub fn round_trip(
    context: &zmq::Context,
    endpoint: &str,
    service: &str,
    within: Duration,
) -> Result<Option<Duration>, Failure> {
    let client = Peer::dealer(context, endpoint)?;
    let started = Instant::now();
    client.request(service.as_bytes(), b"are you there?")?;
    let reply = client.reply_to(service.as_bytes(), b"are you there?", started + within)?;
    Ok(reply.map(|_| started.elapsed()))
}

/// A request a raw worker holds: whom to answer, and the body.
pub struct Held {
    pub client: Vec<u8>,
    pub body: Message,
}

/// A raw 7/MDP worker: READY at connection, HEARTBEAT every interval
/// while it is pumped, and answers only when told to.
pub struct RawWorker {
    /// Whether a DISCONNECT is answered with a new READY (an echo worker
    /// does; a hostage holder must not, lest it be handed its request again).
    pub rejoins: bool,
    peer: Peer,
    service: Vec<u8>,
    interval: Duration,
    next_heartbeat: Instant,
}

impl RawWorker {
    pub fn ready(context: &zmq::Context, endpoint: &str, service: &str, interval: Duration) -> Result<Self, Failure> {
        let peer = Peer::dealer(context, endpoint)?;
        peer.send(&[b"", MDPW01, &[READY], service.as_bytes()])?;
        Ok(RawWorker {
            rejoins: true,
            peer,
            service: service.as_bytes().to_vec(),
            interval,
            next_heartbeat: Instant::now() + interval,
        })
    }

    /// Heartbeats (when due) for `wait`, or until requests come: those.
    pub fn pump(&mut self, wait: Duration) -> Result<Vec<Held>, Failure> {
        let deadline = Instant::now() + wait;
        loop {
            self.heartbeat_if_due()?;
            let until = deadline.min(self.next_heartbeat);
            let step = until.saturating_duration_since(Instant::now());
            let ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
            if self.peer.socket.poll(zmq::POLLIN, ms)? > 0 {
                let held = self.drain()?;
                if !held.is_empty() {
                    return Ok(held);
                }
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Everything that has arrived, without waiting: the requests. A
    /// DISCONNECT is answered with a new READY if the worker rejoins.
    fn drain(&mut self) -> Result<Vec<Held>, Failure> {
        let mut held = Vec::new();
        // Bounded by what has arrived; a broker flooding us still ends it,
        // as the caller's deadline is checked between calls.
        for _ in 0..10_000 {
            let Ok(mut message) = self.peer.socket.recv_multipart(zmq::DONTWAIT) else {
                break;
            };
            match message.get(2).map(|c| c.as_slice()) {
                Some([REQUEST]) if message.len() >= 5 => {
                    let body = message.split_off(5);
                    held.push(Held {
                        client: std::mem::take(&mut message[3]),
                        body,
                    });
                }
                Some([DISCONNECT]) if self.rejoins => self.peer.send(&[b"", MDPW01, &[READY], &self.service])?,
                _ => {}
            }
        }
        Ok(held)
    }

    fn heartbeat_if_due(&mut self) -> Result<(), Failure> {
        if Instant::now() >= self.next_heartbeat {
            self.peer.send(&[b"", MDPW01, &[HEARTBEAT]])?;
            self.next_heartbeat = Instant::now() + self.interval;
        }
        Ok(())
    }

    /// Answers a held request with its own body.
    pub fn reply(&self, held: &Held) -> Result<(), Failure> {
        let mut frames: Vec<&[u8]> = vec![b"", MDPW01, &[REPLY], &held.client, b""];
        frames.extend(held.body.iter().map(Vec::as_slice));
        self.peer.send(&frames)
    }
}

/// Raw echo workers served by one thread until dropped.
pub struct EchoPool {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl EchoPool {
    /// `count` workers of `service`, their READYs sent before this returns.
    pub fn start(
        context: &zmq::Context,
        endpoint: &str,
        service: &str,
        count: usize,
        interval: Duration,
    ) -> Result<EchoPool, Failure> {
        let workers = (0..count)
            .map(|_| RawWorker::ready(context, endpoint, service, interval))
            .collect::<Result<Vec<_>, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            std::thread::spawn(move || {
                let _ = serve(workers, &stop, &served);
            })
        };
        Ok(EchoPool {
            stop,
            served,
            thread: Some(thread),
        })
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for EchoPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut workers: Vec<RawWorker>, stop: &AtomicBool, served: &AtomicU64) -> Result<(), Failure> {
    let until = Instant::now() + POOL_LIFETIME;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        let readable: Vec<bool> = {
            let mut items: Vec<_> = workers
                .iter()
                .map(|w| w.peer.socket.as_poll_item(zmq::POLLIN))
                .collect();
            zmq::poll(&mut items, 20)?;
            items.iter().map(zmq::PollItem::is_readable).collect()
        };
        for (worker, readable) in workers.iter_mut().zip(readable) {
            if readable {
                for held in worker.drain()? {
                    worker.reply(&held)?;
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
            worker.heartbeat_if_due()?;
        }
    }
    Ok(())
}
