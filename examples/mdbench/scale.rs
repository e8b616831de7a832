//! Scaling figures: the broker with thousands of other workers connected.
//!
//! Idle workers live in helper processes (this program with
//! `--serve-idle`), at most 5,000 sockets each: a process may hold 20,000
//! files here, and each libzmq socket holds two (its connection and its
//! mailbox). Each idle worker registers for one of the idle services and
//! heartbeats at the broker's default interval. A helper reports ready only
//! once every one of its sockets has received a HEARTBEAT from the broker,
//! which the broker sends only to registered workers.
//!
//! The helpers sweep their sockets twice a second instead of polling them
//! all: `zmq_poll` over thousands of sockets on every wake-up would cost
//! more CPU than the broker under test, on the same two cores. (Sweeping
//! every 100 ms instead cost the measured throughput with 10,000 workers a
//! further 14 points.) Heartbeats then go out up to half a second late,
//! well within the broker's 7.5 s expiry.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use majordomo::frame::{self, Frame};
use majordomo::protocol::{self, ClientCommand, ClientKind, Dialect, WorkerCommand};

/// Most worker sockets one helper process holds.
pub const PER_PROCESS: usize = 5_000;
const HEARTBEAT: Duration = Duration::from_millis(2500);
const SWEEP: Duration = Duration::from_millis(500);
const SOCKETS_PER_CONTEXT: usize = 1_000;

/// Helper process: `count` workers for services `idle-{first + i % services}`.
pub fn serve_idle(endpoint: &str, count: usize, first: usize, services: usize) -> ! {
    // A libzmq context holds at most 1,023 sockets by default, and the zmq
    // crate cannot raise that: one context per thousand sockets.
    let contexts: Vec<zmq::Context> = (0..count.div_ceil(SOCKETS_PER_CONTEXT))
        .map(|_| zmq::Context::new())
        .collect();
    let dialect = Dialect::V01;
    let mut sockets: Vec<zmq::Socket> = Vec::with_capacity(count);
    for i in 0..count {
        let socket = contexts[i / SOCKETS_PER_CONTEXT].socket(zmq::DEALER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.connect(endpoint).expect("connect");
        let service = format!("idle-{}", (first + i) % services.max(1));
        let mut frames = Vec::new();
        let _ = protocol::encode_worker(
            &mut frames,
            dialect,
            WorkerCommand::Ready {
                service: service.into(),
            },
        );
        let mut socket = socket;
        frame::send_multipart(&mut socket, frames).expect("READY");
        sockets.push(socket);
    }
    let start = Instant::now();
    let mut heard = vec![false; count];
    let mut unheard = count;
    let mut next_heartbeat: Vec<Instant> = (0..count)
        .map(|i| start + HEARTBEAT.mul_f64(i as f64 / count.max(1) as f64))
        .collect();
    loop {
        let now = Instant::now();
        for (i, socket) in sockets.iter_mut().enumerate() {
            while frame::recv_multipart(socket, true).is_ok() {
                if !heard[i] {
                    heard[i] = true;
                    unheard -= 1;
                    if unheard == 0 {
                        println!("READY");
                        let _ = std::io::stdout().flush();
                    }
                }
            }
            if now >= next_heartbeat[i] {
                let mut frames = Vec::new();
                let _ = protocol::encode_worker(&mut frames, dialect, WorkerCommand::Heartbeat);
                let _ = frame::send_multipart(socket, frames);
                next_heartbeat[i] += HEARTBEAT;
            }
        }
        std::thread::sleep(SWEEP.saturating_sub(now.elapsed()));
    }
}

/// Starts helpers holding `count` idle workers over `services` services and
/// waits until every worker is registered.
pub fn start_idle(endpoint: &str, count: usize, services: usize) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut helpers = Vec::new();
    let mut first = 0;
    while first < count {
        let n = PER_PROCESS.min(count - first);
        let child = Command::new(&exe)
            .args(["--serve-idle", &n.to_string(), "--idle-first", &first.to_string()])
            .args(["--idle-services", &services.to_string(), "--idle-endpoint", endpoint])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        helpers.push(child);
        first += n;
    }
    for helper in &mut helpers {
        let stdout = helper.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "READY" {
            return Err(format!("idle-worker helper failed: {line:?}"));
        }
    }
    Ok(helpers)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".to_string())
}

/// Queues `count` requests of `size` bytes for a service with no worker,
/// then waits for an mmi.service reply on the same connection: the broker
/// handles one connection's messages in order, so by then every request is
/// in its queue. (They stay there until they expire, whether or not the
/// client is still connected.)
pub fn queue_requests(endpoint: &str, count: usize, size: usize) -> Result<(), String> {
    let context = zmq::Context::new();
    let mut socket = context.socket(zmq::DEALER).map_err(|e| e.to_string())?;
    socket.set_sndhwm(0).map_err(|e| e.to_string())?;
    socket.set_linger(0).map_err(|e| e.to_string())?;
    socket.connect(endpoint).map_err(|e| e.to_string())?;
    let request = |service: &str, body: Frame| {
        let mut frames = Vec::new();
        let cmd = ClientCommand {
            kind: ClientKind::Request,
            service: service.into(),
            body: vec![body],
        };
        let _ = protocol::encode_client(&mut frames, Dialect::V01, cmd);
        frames
    };
    for _ in 0..count {
        frame::send_multipart(&mut socket, request("nobody", Frame::from(vec![7u8; size])))
            .map_err(|e| e.to_string())?;
    }
    frame::send_multipart(&mut socket, request("mmi.service", Frame::from("nobody"))).map_err(|e| e.to_string())?;
    socket.set_rcvtimeo(60_000).map_err(|e| e.to_string())?;
    frame::recv_multipart(&mut socket, false).map_err(|e| format!("no mmi reply: {e}"))?;
    Ok(())
}
