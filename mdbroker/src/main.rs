//! `mdbroker`: the Majordomo broker daemon. Flags become a [`Config`] and a
//! list of endpoints; everything else lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use majordomo::broker::{Config, Server};

/// The library's defaults are the daemon's: each flag's default is read
/// from [`Config::default`], so the two cannot drift apart.
fn default_ms(pick: fn(&Config) -> Duration) -> u64 {
    u64::try_from(pick(&Config::default()).as_millis()).unwrap_or(u64::MAX)
}

/// A Majordomo Protocol broker (MDP/0.1 and MDP/0.2 on one socket, with MMI).
#[derive(Parser, Debug)]
#[command(name = "mdbroker", version)]
struct Args {
    /// Log every command in and out (RUST_LOG also works as usual).
    #[arg(short, long)]
    verbose: bool,

    /// Endpoint to bind; repeat for several (tcp://, ipc://).
    #[arg(long = "bind", value_name = "ENDPOINT", default_value = "tcp://*:5555")]
    binds: Vec<String>,

    /// Interval between heartbeats to and from each worker, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = default_ms(|c| c.heartbeat_interval), value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_interval: u64,

    /// Missed heartbeat intervals after which a worker is dead.
    #[arg(long, value_name = "N", default_value_t = Config::default().heartbeat_liveness, value_parser = clap::value_parser!(u32).range(1..))]
    heartbeat_liveness: u32,

    /// How long a busy worker that does not heartbeat while busy (classic
    /// single-threaded workers) may take on one request before it is taken
    /// for dead and its request is given to another worker, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = default_ms(|c| c.busy_timeout), value_parser = clap::value_parser!(u64).range(1..))]
    busy_timeout: u64,

    /// How long a request may wait in its service's queue for a worker
    /// before it is dropped, in milliseconds; 0 keeps requests forever.
    #[arg(long, value_name = "MS", default_value_t = default_ms(|c| c.request_timeout.unwrap_or(Duration::ZERO)))]
    request_timeout: u64,

    /// How many workers one request may be handed to (after each dies while
    /// holding it) before the broker drops it.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_deliveries, value_parser = clap::value_parser!(u32).range(1..))]
    max_deliveries: u32,

    /// Most bytes of replies kept for one client that reads slowly (its
    /// pipe is full); past it the reply stream being sent stops without its
    /// FINAL, so the client's timeout and retry apply.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_client_backlog)]
    max_client_backlog: usize,

    /// Most bytes of replies kept for all slow clients together.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_total_backlog)]
    max_total_backlog: usize,
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        config.heartbeat_liveness = self.heartbeat_liveness;
        config.busy_timeout = Duration::from_millis(self.busy_timeout);
        config.request_timeout = (self.request_timeout > 0).then(|| Duration::from_millis(self.request_timeout));
        config.max_deliveries = self.max_deliveries;
        config.max_client_backlog = self.max_client_backlog;
        config.max_total_backlog = self.max_total_backlog;
        config
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if args.verbose {
        logger.filter_level(log::LevelFilter::Debug);
    }
    logger.init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mdbroker: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), majordomo::broker::ServerError> {
    let server = Server::bind(&args.binds, args.config())?;
    server.stop_on_signals()?;
    server.run()
}
