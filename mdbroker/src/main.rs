//! `mdbroker`: the Majordomo broker daemon. Flags become a [`Config`] and a
//! list of endpoints, and log lines go through a writer thread of their own
//! (see `logging`); everything else lives in the library.
#![forbid(unsafe_code)]

mod logging;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use logging::Logging;
use majordomo::broker::{Config, Server};
use majordomo::security::{self, Security, SecurityConfig};

/// jemalloc rather than the C library's allocator: after a flood of
/// requests has been served or has expired, glibc's malloc keeps most of
/// the freed memory (77 MiB of 108 after 1,000,000 queued requests);
/// jemalloc, with the background thread `.cargo/config.toml` configures,
/// gives it back to the system within about a second, even if the broker
/// is idle by then (docs/operations.md, "Memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The library's defaults are the daemon's: each flag's default is read
/// from [`Config::default`], so the two cannot drift apart.
fn default_ms(pick: fn(&Config) -> Duration) -> u64 {
    u64::try_from(pick(&Config::default()).as_millis()).unwrap_or(u64::MAX)
}

/// A Majordomo Protocol broker (MDP/0.1 and MDP/0.2 on one socket, with MMI).
#[derive(Parser, Debug)]
#[command(name = "mdbroker", version)]
struct Args {
    /// Log every command in and out, whatever RUST_LOG says (without -v,
    /// RUST_LOG works as usual; the default is info).
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

    /// How long any worker may hold one request, in milliseconds. Past it,
    /// a worker that heartbeats while busy gets DISCONNECT, and one that
    /// does not (a classic single-threaded worker, which may stay silent
    /// this long) is taken for dead; its request goes to another worker,
    /// counting as a delivery. A worker that heartbeats while busy and then
    /// falls silent is dead after liveness x interval as usual.
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

    /// Most requests waiting in one service's queue; a request that
    /// arrives at a full queue is dropped (logged and counted), or makes
    /// room by dropping the newest request of the client with the most
    /// waiting. About 110 bytes each (16-byte body), plus the body beyond
    /// 33 bytes. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_queued.unwrap_or(0))]
    max_queued: usize,

    /// Most requests waiting in all services' queues together (requests
    /// for many service names get round --max-queued; about 1.5 KB each
    /// then); one that arrives when they are full is dropped (logged and
    /// counted). 0: no limit.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_queued_total.unwrap_or(0))]
    max_queued_total: usize,

    /// How long a new connection may take to complete ZeroMQ's handshake
    /// before it is closed, in milliseconds (a connection that never speaks
    /// holds a file descriptor meanwhile). 0: no limit.
    #[arg(long, value_name = "MS", default_value_t = default_ms(|c| c.handshake_timeout))]
    handshake_timeout: u64,

    /// Most bytes of replies kept for one client that reads slowly (its
    /// pipe is full); past it the reply stream being sent stops without its
    /// FINAL, so the client's timeout and retry apply.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_client_backlog)]
    max_client_backlog: usize,

    /// Most bytes of replies kept for all slow clients together.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_total_backlog)]
    max_total_backlog: usize,

    /// Largest message a peer may send, in bytes, all frames together; a
    /// peer that sends a larger one is disconnected (libzmq's
    /// ZMQ_MAXMSGSIZE, applied to whole messages). 0: no limit.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_message_size.unwrap_or(0))]
    max_message_size: u64,

    /// Most frames one message from a peer may have, in frames; a peer that
    /// sends more is disconnected and its partial message discarded (each
    /// frame held costs 64 bytes beyond its body). 0: no limit.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_frames_per_message.unwrap_or(0))]
    max_frames: u32,

    /// The broker's secret certificate (NAME.key_secret, as mdkeygen
    /// writes it): every endpoint then requires CURVE, and NULL and PLAIN
    /// peers are refused at the handshake. Default: no CURVE.
    #[arg(long, value_name = "FILE")]
    curve_secret_key: Option<PathBuf>,

    /// Directory of public certificates (NAME.key): only these keys are
    /// admitted, each peer named NAME. Re-read on SIGHUP. Without it, any
    /// CURVE key is admitted (encryption without authentication).
    #[arg(long, value_name = "DIR")]
    curve_clients: Option<PathBuf>,

    /// Source address block connections may come from (192.0.2.0/24,
    /// fd00::/8; a bare address is one host); repeat for several. With or
    /// without CURVE. Default: any address.
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = security::parse_net)]
    allow_ip: Vec<ipnet::IpNet>,

    /// Service access rules by peer name (TOML; see docs/security.md).
    /// Needs --curve-clients. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    acl: Option<PathBuf>,
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        config.heartbeat_liveness = self.heartbeat_liveness;
        config.busy_timeout = Duration::from_millis(self.busy_timeout);
        config.request_timeout = (self.request_timeout > 0).then(|| Duration::from_millis(self.request_timeout));
        config.max_deliveries = self.max_deliveries;
        config.max_queued = (self.max_queued > 0).then_some(self.max_queued);
        config.max_queued_total = (self.max_queued_total > 0).then_some(self.max_queued_total);
        config.handshake_timeout = Duration::from_millis(self.handshake_timeout);
        config.max_client_backlog = self.max_client_backlog;
        config.max_total_backlog = self.max_total_backlog;
        config.max_message_size = (self.max_message_size > 0).then_some(self.max_message_size);
        config.max_frames_per_message = (self.max_frames > 0).then_some(self.max_frames);
        config
    }

    fn security(&self) -> SecurityConfig {
        let mut security = SecurityConfig::default();
        security.curve_secret_key = self.curve_secret_key.clone();
        security.curve_clients = self.curve_clients.clone();
        security.allow_ip = self.allow_ip.clone();
        security.acl = self.acl.clone();
        security
    }
}

fn main() -> ExitCode {
    // SIGHUP's default action kills the process; the server makes it
    // harmless once it is bound, and until then this does (a supervisor
    // may send one at any time).
    if let Err(error) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Default::default()) {
        return fail(&format!("cannot handle SIGHUP: {error}"));
    }
    let args = Args::parse();
    let (logging, rejected_filter) = match Logging::install(args.verbose) {
        Ok(installed) => installed,
        Err(error) => return fail(&format!("cannot start logging: {error}")),
    };
    if let Some(filter) = rejected_filter {
        log::warn!(
            "RUST_LOG={filter:?} does not parse (levels: error, warn, info, debug, trace, off); logging at info"
        );
    }
    let result = run(&args);
    // The last lines, before the error line (which is written directly).
    logging.finish(logging::FLUSH_WAIT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

/// Says why the daemon stops, on standard error, and exits 1.
fn fail(why: &str) -> ExitCode {
    // Not eprintln!, which panics (exit 101) when standard error is closed
    // or a dead pipe: the exit status must stay the documented one whatever
    // became of standard error.
    let _ = writeln!(std::io::stderr(), "mdbroker: {why}");
    ExitCode::FAILURE
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // Each connected peer is a file, and the default soft limit (often
    // 1,024) caps the broker long before its memory does: raised to the
    // hard limit, and logged once the broker is up (a start-up failure
    // stays one line).
    let file_limit = rlimit::increase_nofile_limit(u64::MAX);
    if let Some(inproc) = args.binds.iter().find(|endpoint| endpoint.starts_with("inproc://")) {
        return Err(format!(
            "cannot bind {inproc}: inproc:// is reachable only inside the broker's own process; \
             use tcp:// or ipc:// for the daemon"
        )
        .into());
    }
    let security = args.security();
    let server = if security.is_on() {
        Server::bind_secure(&args.binds, args.config(), Security::load(security)?)?
    } else {
        Server::bind(&args.binds, args.config())?
    };
    match file_limit {
        Ok(limit) => log::info!("open files limit: {limit}"),
        Err(error) => log::warn!("cannot raise the open files limit: {error}"),
    }
    server.stop_on_signals()?;
    Ok(server.run()?)
}
