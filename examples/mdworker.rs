//! An echo worker: registers a service and answers each request with its
//! own body (for MDP/0.2, optionally after streaming some PARTIALs).
//!
//! ```sh
//! cargo run --release --example mdworker -- --service echo
//! ```

use clap::Parser;
use majordomo::protocol::Framing;
use majordomo::{Version, Worker, WorkerConfig};

#[derive(Parser)]
#[command(about = "MDP echo worker")]
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
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let level = if args.verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let mut config = WorkerConfig::default();
    config.version = if args.version == 2 { Version::V02 } else { Version::V01 };
    config.heartbeat_interval = std::time::Duration::from_millis(args.heartbeat_interval);
    if args.majortomo {
        config.version = Version::V02;
        config.framing = Framing::Delimited;
    }
    if args.partials > 0 && config.version != Version::V02 {
        return Err("--partials needs --version 2".into());
    }
    let mut worker = Worker::connect(&args.broker, &args.service, config)?;
    let mut served = 0u64;
    while args.count == 0 || served < args.count {
        let mut request = worker.recv()?;
        std::thread::sleep(std::time::Duration::from_millis(args.work));
        for i in 0..args.partials {
            worker.partial(&request, [format!("partial {i}")])?;
        }
        let body = std::mem::take(&mut request.body); // the frames move back out
        worker.reply(request, body)?;
        served += 1;
    }
    println!("served {served} requests");
    Ok(())
}
