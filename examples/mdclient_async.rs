//! A pipelined client: keeps up to `--window` requests in flight on one
//! socket, checks every echo, and prints the rate.
//!
//! ```sh
//! cargo run --release --example mdclient_async -- --count 100000 --window 100
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

mod curve;
mod exit;

use std::process::ExitCode;

use std::io::Write;

use clap::Parser;
use majordomo::{AsyncClient, ClientConfig, Version};

#[derive(Parser)]
#[command(about = "MDP client: N pipelined requests", after_help = exit::STATUS)]
struct Args {
    /// Broker endpoint.
    #[arg(long, default_value = "tcp://localhost:5555")]
    broker: String,
    /// Service to call.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Number of requests.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Protocol version: 1 (MDP/0.1) or 2 (MDP/0.2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// How long to wait for each reply, in milliseconds.
    #[arg(long, default_value_t = 2500)]
    timeout: u64,
    #[command(flatten)]
    curve: curve::CurveArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit::finish("mdclient_async", run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::default();
    config.version = if args.version == 2 { Version::V02 } else { Version::V01 };
    config.timeout = Duration::from_millis(args.timeout);
    config.attempts = 1;
    config.curve = args.curve.load().map_err(exit::context("CURVE keys"))?;
    let at = format!("'{}' at {}", args.service, args.broker);
    let mut client = AsyncClient::connect(&args.broker, config).map_err(exit::context(at.clone()))?;
    let mut waiting: HashSet<u64> = HashSet::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let started = Instant::now();
    while received < args.count {
        while sent < args.count && (sent - received) < args.window {
            client.send(&args.service, [&sent.to_le_bytes()])?;
            waiting.insert(sent);
            sent += 1;
        }
        let reply = client.recv().map_err(exit::context(at.clone()))?;
        if !reply.last {
            continue;
        }
        let id = reply
            .body
            .last()
            .and_then(|f| f[..].try_into().ok())
            .map(u64::from_le_bytes);
        if !id.is_some_and(|id| waiting.remove(&id)) {
            return Err("reply that matches no request in flight".into());
        }
        received += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stdout(),
        "{received} requests/replies in {secs:.3} s, {} in flight: {:.0} per second",
        args.window,
        received as f64 / secs
    );
    Ok(())
}
