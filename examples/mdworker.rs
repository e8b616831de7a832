//! An echo worker: registers a service and answers each request with its
//! own body (for MDP/0.2, optionally after streaming some PARTIALs).
//!
//! ```sh
//! cargo run --release --example mdworker -- --service echo
//! ```
//!
//! `--curve-server-key keys/broker.key --curve-key keys/worker.key_secret`
//! connects with CURVE (key files from `mdkeygen`).
//!
//! Ctrl-C or SIGTERM stops it cleanly: the worker sends DISCONNECT (so the
//! broker forgets it at once) and the program exits 0. The pattern: a flag
//! that the signal sets, and `recv_timeout` so the loop looks at it.

mod curve;
mod exit;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::io::Write;

use clap::Parser;
use majordomo::protocol::Framing;
use majordomo::{Version, Worker, WorkerConfig};

#[derive(Parser)]
#[command(about = "MDP echo worker", after_help = exit::STATUS)]
struct Args {
    /// Broker endpoint.
    #[arg(long, default_value = "tcp://localhost:5555")]
    broker: String,
    /// Service to register.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Requests to serve before exiting (0: serve forever).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Protocol version: 1 (MDP/0.1) or 2 (MDP/0.2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// PARTIAL replies to stream before each FINAL (MDP/0.2 only).
    #[arg(long, default_value_t = 0)]
    partials: u32,
    /// Heartbeat interval in milliseconds (match the broker's).
    #[arg(long, default_value_t = 2500)]
    heartbeat_interval: u64,
    /// Milliseconds to work on each request before answering it (heartbeats
    /// keep flowing meanwhile).
    #[arg(long, default_value_t = 0)]
    work: u64,
    /// Speak MDP/0.2 with the leading empty frame, which majortomo's broker
    /// requires (implies --version 2).
    #[arg(long)]
    majortomo: bool,
    /// Log the worker's link to the broker.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    curve: curve::CurveArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit::finish("mdworker", run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // -v means debug whatever RUST_LOG says; otherwise RUST_LOG, or info.
    if args.verbose {
        env_logger::Builder::new().filter_level(log::LevelFilter::Debug).init();
    } else {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    }
    let mut config = WorkerConfig::default();
    config.version = if args.version == 2 { Version::V02 } else { Version::V01 };
    config.heartbeat_interval = std::time::Duration::from_millis(args.heartbeat_interval);
    config.curve = args.curve.load().map_err(exit::context("CURVE keys"))?;
    if args.majortomo {
        config.version = Version::V02;
        config.framing = Framing::Delimited;
    }
    if args.partials > 0 && config.version != Version::V02 {
        return Err("--partials needs --version 2".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let at = format!("worker for '{}' at {}", args.service, args.broker);
    let mut worker = Worker::connect(&args.broker, &args.service, config).map_err(exit::context(at.clone()))?;
    let mut served = 0u64;
    while (args.count == 0 || served < args.count) && !stop.load(Ordering::Relaxed) {
        let Some(mut request) = worker
            .recv_timeout(Some(Duration::from_millis(200)))
            .map_err(exit::context(at.clone()))?
        else {
            continue;
        };
        if !work(Duration::from_millis(args.work), &stop) {
            break; // stopped mid-request: the broker gives it to another worker
        }
        for i in 0..args.partials {
            worker.partial(&request, [format!("partial {i}")])?;
        }
        let body = std::mem::take(&mut request.body); // the frames move back out
        worker.reply(request, body)?;
        served += 1;
    }
    drop(worker); // sends DISCONNECT
    let _ = writeln!(std::io::stdout(), "served {served} requests");
    Ok(())
}

/// Simulated work of `length`, cut short by a stop signal: whether it was
/// done. Sleeps in short steps so that SIGTERM stops the worker at once.
fn work(length: Duration, stop: &AtomicBool) -> bool {
    let done_at = std::time::Instant::now() + length;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = done_at.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
