//! A synchronous client: sends N requests one after another, checks each
//! echo, and prints the rate.
//!
//! ```sh
//! cargo run --release --example mdclient -- --count 10000
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use majordomo::{Client, ClientConfig, Version};

#[derive(Parser)]
#[command(about = "MDP client: N sequential requests")]
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
    /// Attempts per request, each on a new socket.
    #[arg(long, default_value_t = 3)]
    retries: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = ClientConfig {
        version: if args.version == 2 { Version::V02 } else { Version::V01 },
        timeout: Duration::from_millis(args.timeout),
        retries: args.retries,
    };
    let mut client = Client::new(&args.broker, config);
    let started = Instant::now();
    for i in 0..args.count {
        let body = format!("request {i}");
        let reply = client.request(&args.service, [body.as_str()])?;
        if reply.last().map(|f| &f[..]) != Some(body.as_bytes()) {
            return Err(format!("reply to '{body}' does not echo it").into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} requests/replies in {secs:.3} s: {:.0} per second",
        args.count,
        args.count as f64 / secs
    );
    Ok(())
}
