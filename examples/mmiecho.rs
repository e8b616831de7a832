//! Asks the broker whether a service has workers (8/MMI `mmi.service`).
//!
//! ```sh
//! cargo run --example mmiecho -- --service echo
//! ```

use std::process::ExitCode;
use std::time::Duration;

use std::io::Write;

use clap::Parser;
use majordomo::{Client, ClientConfig, Version};

mod curve;

#[derive(Parser)]
#[command(
    about = "Ask mmi.service whether a service has workers",
    after_help = "Exit status: 0 if the service has workers (200); 1 if not (404); 2 on an error (said on one line) or for bad arguments."
)]
struct Args {
    /// Broker endpoint.
    #[arg(long, default_value = "tcp://localhost:5555")]
    broker: String,
    /// Service to look up.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Protocol version: 1 (MDP/0.1) or 2 (MDP/0.2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 2500)]
    timeout: u64,
    #[command(flatten)]
    curve: curve::CurveArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = ClientConfig::default();
    config.version = if args.version == 2 { Version::V02 } else { Version::V01 };
    config.timeout = Duration::from_millis(args.timeout);
    config.attempts = 1;
    config.curve = match args.curve.load() {
        Ok(curve) => curve,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "mmiecho: CURVE keys: {error}");
            return ExitCode::from(2);
        }
    };
    match Client::new(&args.broker, config).service_exists(&args.service) {
        Ok(true) => {
            let _ = writeln!(std::io::stdout(), "{}: 200 (has workers)", args.service);
            ExitCode::SUCCESS
        }
        Ok(false) => {
            let _ = writeln!(std::io::stdout(), "{}: 404 (no workers)", args.service);
            ExitCode::from(1)
        }
        Err(error) => {
            let mut line = format!("mmiecho: asking {} about '{}': {error}", args.broker, args.service);
            let mut cause = std::error::Error::source(&error);
            while let Some(error) = cause {
                line.push_str(&format!(": {error}"));
                cause = error.source();
            }
            let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
            ExitCode::from(2)
        }
    }
}
