//! The load: M echo workers on one thread and N clients on another, each a
//! raw MDP DEALER socket, polled together so the harness stays light.
//!
//! A request body is S bytes: its sequence number, the time it was sent
//! (nanoseconds since the run started), then a fill byte derived from the
//! sequence number. A reply must come back on the client's own socket,
//! name a sequence number that client has in flight, have S bytes and the
//! right fill: only then does it count, and its latency is taken from the
//! time inside it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use majordomo::frame::{self, Frame};
use majordomo::protocol::{self, ClientRequest, Dialect, FromWorker, ReplyKind, ToWorker, Version};

/// Phases of a run, shared by the orchestrator and the client thread.
pub const WARMUP: u8 = 0;
pub const MEASURE: u8 = 1;
pub const DRAIN: u8 = 2;
pub const STOP: u8 = 3;

/// The smallest body that carries a sequence number and a send time.
pub const MIN_BODY: usize = 16;

/// The CURVE settings of every client and worker socket, with `--curve`.
pub static CURVE: std::sync::OnceLock<majordomo::curve::CurveClient> = std::sync::OnceLock::new();

fn dealer(context: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let socket = context.socket(zmq::DEALER).expect("socket");
    if let Some(curve) = CURVE.get() {
        curve.apply(&socket).expect("CURVE client");
    }
    socket.set_linger(0).expect("linger");
    socket.set_rcvhwm(100_000).expect("rcvhwm");
    socket.set_sndhwm(100_000).expect("sndhwm");
    socket.connect(endpoint).expect("connect");
    socket
}

/// Runs `count` echo workers until `phase` is STOP.
pub fn workers(endpoint: String, count: usize, version: Version, phase: Arc<AtomicU8>) {
    let context = zmq::Context::new();
    let dialect = Dialect::standard(version);
    let mut sockets: Vec<zmq::Socket> = (0..count).map(|_| dealer(&context, &endpoint)).collect();
    for socket in &mut sockets {
        let mut frames = Vec::new();
        protocol::encode_from_worker(
            &mut frames,
            dialect,
            FromWorker::Ready {
                service: super::SERVICE.into(),
            },
        );
        frame::send_multipart(socket, frames).expect("READY");
    }
    while phase.load(Ordering::Relaxed) != STOP {
        let readable = readable(sockets.iter(), 50);
        for n in readable {
            let socket = &mut sockets[n];
            while let Ok(frames) = frame::recv_multipart(socket, true) {
                let reply = match protocol::decode_at_worker(frames) {
                    Ok((_, ToWorker::Request { client, body })) => FromWorker::Final { client, body },
                    Ok((_, ToWorker::Heartbeat)) => FromWorker::Heartbeat,
                    _ => continue,
                };
                let mut frames = Vec::new();
                protocol::encode_from_worker(&mut frames, dialect, reply);
                frame::send_multipart(socket, frames).expect("reply");
            }
        }
    }
}

/// What the client thread measured.
#[derive(Debug, Default)]
pub struct ClientReport {
    /// Replies verified during the measured window.
    pub measured: u64,
    /// All replies verified, warm-up and drain included.
    pub checked: u64,
    /// Replies that failed a check, or requests never answered.
    pub failures: u64,
    /// Latencies of the measured replies, microseconds.
    pub latencies_us: Vec<u32>,
    /// Length of the measured window.
    pub window: Duration,
}

struct Conn {
    socket: zmq::Socket,
    next_seq: u64,
    in_flight: HashSet<u64>,
}

/// Runs `count` clients, each keeping `depth` requests of `size` bytes in
/// flight while `phase` is WARMUP or MEASURE; then waits for what is in
/// flight, up to a deadline.
pub fn clients(
    endpoint: String,
    count: usize,
    depth: usize,
    size: usize,
    version: Version,
    phase: Arc<AtomicU8>,
) -> ClientReport {
    let context = zmq::Context::new();
    let dialect = Dialect::standard(version);
    let started = Instant::now();
    let mut conns: Vec<Conn> = (0..count)
        .map(|_| Conn {
            socket: dealer(&context, &endpoint),
            next_seq: 0,
            in_flight: HashSet::new(),
        })
        .collect();
    let mut report = ClientReport::default();
    let mut window_start: Option<Instant> = None;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let current = phase.load(Ordering::Relaxed);
        let sending = current == WARMUP || current == MEASURE;
        if current == MEASURE && window_start.is_none() {
            window_start = Some(Instant::now());
        }
        if current >= DRAIN {
            if let (Some(start), None) = (window_start, drain_deadline) {
                report.window = start.elapsed();
            }
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
            let in_flight: usize = conns.iter().map(|c| c.in_flight.len()).sum();
            if in_flight == 0 || Instant::now() > deadline {
                report.failures += in_flight as u64;
                return report;
            }
        }
        if sending {
            for conn in &mut conns {
                while conn.in_flight.len() < depth {
                    let seq = conn.next_seq;
                    conn.next_seq += 1;
                    let body = request_body(seq, started.elapsed().as_nanos() as u64, size);
                    let cmd = ClientRequest {
                        service: super::SERVICE.into(),
                        body: vec![body],
                    };
                    let mut frames = Vec::new();
                    protocol::encode_request(&mut frames, dialect, cmd);
                    frame::send_multipart(&mut conn.socket, frames).expect("request");
                    conn.in_flight.insert(seq);
                }
            }
        }
        let readable = readable(conns.iter().map(|c| &c.socket), 20);
        let measuring = phase.load(Ordering::Relaxed) == MEASURE;
        for n in readable {
            let conn = &mut conns[n];
            while let Ok(frames) = frame::recv_multipart(&mut conn.socket, true) {
                match check_reply(frames, size, &mut conn.in_flight) {
                    Some(sent_ns) => {
                        report.checked += 1;
                        if measuring {
                            report.measured += 1;
                            let now_ns = started.elapsed().as_nanos() as u64;
                            let us = now_ns.saturating_sub(sent_ns) / 1000;
                            report.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                    }
                    None => report.failures += 1,
                }
            }
        }
    }
}

/// Polls `sockets` for input up to `timeout_ms`; the indices of the readable.
fn readable<'a>(sockets: impl Iterator<Item = &'a zmq::Socket>, timeout_ms: i64) -> Vec<usize> {
    let mut items: Vec<zmq::PollItem> = sockets.map(|s| s.as_poll_item(zmq::POLLIN)).collect();
    zmq::poll(&mut items, timeout_ms).expect("poll");
    items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.is_readable())
        .map(|(n, _)| n)
        .collect()
}

fn request_body(seq: u64, sent_ns: u64, size: usize) -> Frame {
    let mut body = vec![fill(seq); size];
    body[..8].copy_from_slice(&seq.to_le_bytes());
    body[8..16].copy_from_slice(&sent_ns.to_le_bytes());
    Frame::from(body)
}

fn fill(seq: u64) -> u8 {
    (seq % 251) as u8
}

/// Checks a reply against the requests in flight; returns its send time.
fn check_reply(frames: Vec<Frame>, size: usize, in_flight: &mut HashSet<u64>) -> Option<u64> {
    let (_, reply) = protocol::decode_at_client(frames, protocol::Flavor::Rfc).ok()?;
    if reply.kind != ReplyKind::Final || reply.body.len() != 1 {
        return None;
    }
    let body = &reply.body[0];
    if body.len() != size {
        return None;
    }
    let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
    let sent_ns = u64::from_le_bytes(body[8..16].try_into().ok()?);
    if body[16..].iter().any(|&b| b != fill(seq)) || !in_flight.remove(&seq) {
        return None;
    }
    Some(sent_ns)
}
