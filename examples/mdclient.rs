//! A synchronous client: sends N requests one after another, checks each
//! echo, and prints the rate.
//!
//! ```sh
//! cargo run --release --example mdclient -- --count 10000
//! ```
//!
//! `--curve-server-key keys/broker.key --curve-key keys/client.key_secret`
//! connects with CURVE (key files from `mdkeygen`).

use std::time::{Duration, Instant};

mod curve;
mod exit;

use std::process::ExitCode;

use std::io::Write;

use clap::Parser;
use majordomo::protocol::{Flavor, Framing};
use majordomo::{Client, ClientConfig, Version};

#[derive(Parser)]
#[command(about = "MDP client: N sequential requests", after_help = exit::STATUS)]
struct Args {
    /// Broker endpoint.
    #[arg(long, default_value = "tcp://localhost:5555")]
    broker: String,
    /// Service to call.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Number of requests.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Protocol version: 1 (MDP/0.1) or 2 (MDP/0.2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// Timeout per attempt, in milliseconds.
    #[arg(long, default_value_t = 2500)]
    timeout: u64,
    /// Attempts per request, each on a new socket (7/MDP calls them retries).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Speak majortomo's MDP/0.2 client dialect (leading empty frame, its
    /// command numbers), which majortomo's broker requires.
    #[arg(long)]
    majortomo: bool,
    #[command(flatten)]
    curve: curve::CurveArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit::finish("mdclient", run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::default();
    config.version = if args.version == 2 { Version::V02 } else { Version::V01 };
    config.timeout = Duration::from_millis(args.timeout);
    config.attempts = args.retries;
    config.curve = args.curve.load().map_err(exit::context("CURVE keys"))?;
    if args.majortomo {
        config.version = Version::V02;
        config.framing = Framing::Delimited;
        config.flavor = Flavor::Majortomo;
    }
    let mut client = Client::new(&args.broker, config);
    let started = Instant::now();
    for i in 0..args.count {
        let body = format!("request {i}");
        let what = format!("request {i} to '{}' at {}", args.service, args.broker);
        let reply = client
            .request(&args.service, [body.as_str()])
            .map_err(exit::context(what))?;
        if reply.last().map(|f| &f[..]) != Some(body.as_bytes()) {
            return Err(format!("reply to '{body}' does not echo it").into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stdout(),
        "{} requests/replies in {secs:.3} s: {:.0} per second",
        args.count,
        args.count as f64 / secs
    );
    Ok(())
}
