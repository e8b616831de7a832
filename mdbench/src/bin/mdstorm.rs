//! mdstorm: starts `mdbroker` with a low limit on open files, opens more
//! TCP connections to it than it can accept, holds them, and reports the
//! broker's CPU use meanwhile and whether an MDP client and worker that
//! were there before the storm are still served. It measures the field
//! input of a connection storm beyond the file limit:
//!
//! ```sh
//! mdstorm --mdbroker target/debug/mdbroker --nofile 256 --connections 2000 --hold-ms 5000
//! ```
//!
//! With `--frames N` it first sends the broker one REQUEST of N empty
//! frames and reports the broker's peak memory before and after; flags
//! after `--` go to mdbroker:
//!
//! ```sh
//! mdstorm --mdbroker target/debug/mdbroker --frames 1000000 --connections 0 -- --max-frames 0
//! ```
//!
//! The broker runs under `sh -c 'ulimit -n NOFILE; exec mdbroker ...'`, so
//! its hard limit is NOFILE and it cannot raise it. This process needs a
//! soft limit above `--connections` (run it under `ulimit -n 4096`).
//! Linux only: it reads the broker's CPU time from `/proc/PID/stat`.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;

type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(about = "Open more connections than mdbroker may accept, and report its CPU use")]
struct Args {
    /// Path of the mdbroker binary to run.
    #[arg(long)]
    mdbroker: String,
    /// The broker's limit on open files (soft and hard).
    #[arg(long, default_value_t = 256)]
    nofile: u32,
    /// TCP connections to open against it.
    #[arg(long, default_value_t = 2000)]
    connections: u32,
    /// How long to hold them open, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    hold_ms: u64,
    /// First send one REQUEST of this many empty frames (0: none).
    #[arg(long, default_value_t = 0)]
    frames: u32,
    /// More flags for mdbroker, after `--` (such as `--max-frames 0`).
    #[arg(last = true)]
    broker_args: Vec<String>,
}

/// The broker process, killed when this value drops.
struct Broker {
    child: Child,
    endpoint: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(path: &str, nofile: u32, extra: &[String]) -> Result<Broker, Error> {
        let script =
            format!("ulimit -n {nofile}; exec \"$0\" --bind tcp://127.0.0.1:* --heartbeat-interval 10000 \"$@\"");
        let mut child = Command::new("sh")
            .args(["-c", &script, path])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(endpoint) = line.split("listening on ").nth(1) {
                    let _ = tx.send(endpoint.trim().to_string());
                }
            }
        });
        let mut broker = Broker {
            child,
            endpoint: String::new(),
        };
        broker.endpoint = rx.recv_timeout(Duration::from_secs(10))?;
        Ok(broker)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime, in clock ticks.
    fn cpu_ticks(&self) -> Result<u64, Error> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // The fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').ok_or("odd /proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    }

    /// A line of /proc/PID/status, such as VmHWM, in KiB.
    fn status_kib(&self, name: &str) -> Result<u64, Error> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .ok_or("no such status line")?;
        Ok(line.split_whitespace().nth(1).ok_or("odd status line")?.parse()?)
    }
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// A raw MDP/0.1 echo worker on its own thread, until `stop`.
fn echo_worker(context: &zmq::Context, endpoint: &str, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, Error> {
    let worker = context.socket(zmq::DEALER)?;
    worker.set_linger(0)?;
    worker.set_rcvtimeo(50)?;
    worker.connect(endpoint)?;
    worker.send_multipart([&b""[..], b"MDPW01", &[1], b"echo"], 0)?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok(msg) = worker.recv_multipart(0) else { continue };
            // [empty, MDPW01, REQUEST, client, empty, body...]
            if msg.len() >= 6 && msg[2] == [2] {
                let mut reply = vec![b"".to_vec(), b"MDPW01".to_vec(), vec![3], msg[3].clone(), b"".to_vec()];
                reply.extend_from_slice(&msg[5..]);
                let _ = worker.send_multipart(reply, 0);
            }
        }
    }))
}

/// An MDP/0.1 client that asks `echo` every 100 ms until `stop`, and
/// counts what it sent, what came back, and the slowest round trip (µs).
struct Prober {
    sent: AtomicU64,
    served: AtomicU64,
    slowest_us: AtomicU64,
}

fn probe(
    context: &zmq::Context,
    endpoint: &str,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<Prober>, JoinHandle<()>), Error> {
    let client = context.socket(zmq::DEALER)?;
    client.set_linger(0)?;
    client.set_rcvtimeo(2000)?;
    client.connect(endpoint)?;
    let prober = Arc::new(Prober {
        sent: AtomicU64::new(0),
        served: AtomicU64::new(0),
        slowest_us: AtomicU64::new(0),
    });
    let counts = prober.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            if client
                .send_multipart([&b""[..], b"MDPC01", b"echo", b"ping"], 0)
                .is_err()
            {
                break;
            }
            counts.sent.fetch_add(1, Ordering::Relaxed);
            if let Ok(reply) = client.recv_multipart(0)
                && reply.last().is_some_and(|body| body == b"ping")
            {
                counts.served.fetch_add(1, Ordering::Relaxed);
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                counts.slowest_us.fetch_max(us, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Ok((prober, thread))
}

/// Sends one REQUEST of `frames` empty frames and reports the broker's
/// memory before and after.
fn many_frames(context: &zmq::Context, broker: &Broker, frames: u32) -> Result<(), Error> {
    let before = broker.status_kib("VmHWM:")?;
    let vandal = context.socket(zmq::DEALER)?;
    vandal.set_linger(0)?;
    vandal.connect(&broker.endpoint)?;
    let mut message: Vec<&[u8]> = vec![b"", b"MDPC01", b"echo"];
    message.extend(std::iter::repeat_n(&b""[..], frames as usize));
    vandal.send_multipart(message, 0)?;
    // The broker has it all (or has dropped the sender) once its memory
    // stops growing; give it a few seconds.
    std::thread::sleep(Duration::from_secs(3));
    let after = broker.status_kib("VmHWM:")?;
    let rss = broker.status_kib("VmRSS:")?;
    println!(
        "one REQUEST of {frames} empty frames ({} bytes on the wire): broker peak RSS {before} KiB -> {after} KiB (+{} KiB), RSS now {rss} KiB",
        2 * (frames as u64 + 3) + 13,
        after.saturating_sub(before)
    );
    Ok(())
}

/// Opens up to `n` connections (each waits at most 200 ms for the kernel).
fn storm(addr: SocketAddr, n: u32) -> (Vec<TcpStream>, u32) {
    let mut open = Vec::with_capacity(n as usize);
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => open.push(stream),
            Err(_) => failed += 1,
        }
    }
    (open, failed)
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let ticks = clock_ticks_per_second() as f64;
    let broker = Broker::start(&args.mdbroker, args.nofile, &args.broker_args)?;
    let addr: SocketAddr = broker.endpoint.trim_start_matches("tcp://").parse()?;
    let context = zmq::Context::new();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = echo_worker(&context, &broker.endpoint, stop.clone())?;
    let (prober, client) = probe(&context, &broker.endpoint, stop.clone())?;
    std::thread::sleep(Duration::from_millis(500));
    if args.frames > 0 {
        many_frames(&context, &broker, args.frames)?;
    }

    let quiet_start = (Instant::now(), broker.cpu_ticks()?);
    std::thread::sleep(Duration::from_secs(1));
    let quiet = (broker.cpu_ticks()? - quiet_start.1) as f64 / ticks / quiet_start.0.elapsed().as_secs_f64();

    let before = (
        prober.sent.load(Ordering::Relaxed),
        prober.served.load(Ordering::Relaxed),
    );
    prober.slowest_us.store(0, Ordering::Relaxed);
    let opening = Instant::now();
    let (streams, failed) = storm(addr, args.connections);
    let opened_in = opening.elapsed();
    let hold_start = (Instant::now(), broker.cpu_ticks()?);
    std::thread::sleep(Duration::from_millis(args.hold_ms));
    let hold = (broker.cpu_ticks()? - hold_start.1) as f64 / ticks / hold_start.0.elapsed().as_secs_f64();
    let after = (
        prober.sent.load(Ordering::Relaxed),
        prober.served.load(Ordering::Relaxed),
    );
    drop(streams);
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    let _ = worker.join();

    println!(
        "mdbroker under `ulimit -n {}`: {} connections opened in {:.1} s ({failed} failed)",
        args.nofile,
        args.connections - failed,
        opened_in.as_secs_f64()
    );
    println!(
        "broker CPU: {:.1}% of a core before the storm, {:.1}% while holding them {} ms",
        quiet * 100.0,
        hold * 100.0,
        args.hold_ms
    );
    println!(
        "MDP client during the storm: {} of {} requests served, slowest round trip {:.1} ms",
        after.1 - before.1,
        after.0 - before.0,
        prober.slowest_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
    Ok(())
}
