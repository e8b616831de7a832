//! mdhostile: how a broker binary stands up to hostile and overloading
//! peers. It starts the given `mdbroker` itself, once per scenario, on a
//! free loopback port, plays the peers of the scenario, prints one figure
//! line, and stops the broker by its PID (SIGTERM, then SIGKILL). A table
//! of every figure ends the run.
//!
//! ```sh
//! cargo build --release -p mdbroker && cargo build --release --examples
//! cargo run -p mdbench --release --bin mdhostile -- --broker target/release/mdbroker
//! cargo run -p mdbench --release --bin mdhostile -- --broker target/release/mdbroker \
//!     --scenario flood-memory --broker-arg --max-queued --broker-arg 2000000
//! ```
//!
//! Why a separate program: the figures compare two binaries (before and
//! after a change), so nothing of the broker may be linked in; and each
//! scenario gets a fresh broker, so that one's damage does not leak into
//! the next. Every wait has a deadline, and a broker that dies is reported
//! with its exit status or signal, not waited for. The program exits 0
//! whatever it measured: the figures are the result.
#![forbid(unsafe_code)]

// A binary's root module looks for its modules beside it (src/bin/), where
// the other binaries are; this one's live in a directory of their own.
#[path = "mdhostile/broker.rs"]
mod broker;
#[path = "mdhostile/load.rs"]
mod load;
#[path = "mdhostile/peer.rs"]
mod peer;
#[path = "mdhostile/workers.rs"]
mod workers;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use broker::{Broker, LogSummary};

#[derive(Parser)]
#[command(about = "Measure how an mdbroker binary stands up to hostile and overloading peers")]
struct Args {
    /// The mdbroker binary under test.
    #[arg(long)]
    broker: PathBuf,
    /// Scenarios to run, in this order (repeat the flag); all by default.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<Scenario>,
    /// An argument for the broker (repeat the flag for each); it replaces
    /// a scenario's default value of the same flag.
    #[arg(long = "broker-arg", value_name = "ARG", allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// The example mdworker (default: examples/mdworker beside the broker).
    #[arg(long)]
    mdworker: Option<PathBuf>,
    /// flood-memory, flood-expiry: requests queued (random-services: a
    /// fifth of them, each for a service of its own).
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,
    /// big-messages: bytes of the one large body.
    #[arg(long, default_value_t = 512 << 20)]
    big_bytes: usize,
    /// Seconds a request may wait before it counts as unanswered.
    #[arg(long, default_value_t = 10)]
    patience: u64,
}

/// The scenarios, each one row of the issue's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    FrozenWorker,
    HeartbeatingHostage,
    Takeover,
    FloodMemory,
    FloodExpiry,
    RandomServices,
    PipeliningClient,
    BigMessages,
    LogFlood,
    Sighup,
}

impl Scenario {
    const ALL: [Scenario; 10] = [
        Scenario::FrozenWorker,
        Scenario::HeartbeatingHostage,
        Scenario::Takeover,
        Scenario::FloodMemory,
        Scenario::FloodExpiry,
        Scenario::RandomServices,
        Scenario::PipeliningClient,
        Scenario::BigMessages,
        Scenario::LogFlood,
        Scenario::Sighup,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::FrozenWorker => "frozen-worker",
            Scenario::HeartbeatingHostage => "heartbeating-hostage",
            Scenario::Takeover => "takeover",
            Scenario::FloodMemory => "flood-memory",
            Scenario::FloodExpiry => "flood-expiry",
            Scenario::RandomServices => "random-services",
            Scenario::PipeliningClient => "pipelining-client",
            Scenario::BigMessages => "big-messages",
            Scenario::LogFlood => "log-flood",
            Scenario::Sighup => "sighup",
        }
    }

    /// Broker flags the scenario needs, unless `--broker-arg` sets them.
    fn broker_defaults(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::FrozenWorker => &[("--heartbeat-interval", "100")],
            Scenario::HeartbeatingHostage => &[("--heartbeat-interval", "250"), ("--busy-timeout", "2000")],
            // Requests are kept until served, however long the flood takes.
            Scenario::FloodMemory => &[("--request-timeout", "0")],
            Scenario::FloodExpiry | Scenario::RandomServices => &[("--request-timeout", "3000")],
            _ => &[],
        }
    }

    fn run(self, scene: &mut Scene) -> Result<Report, Failure> {
        match self {
            Scenario::FrozenWorker => workers::frozen_worker(scene),
            Scenario::HeartbeatingHostage => workers::heartbeating_hostage(scene),
            Scenario::Takeover => workers::takeover(scene),
            Scenario::PipeliningClient => workers::pipelining_client(scene),
            Scenario::FloodMemory => load::flood_memory(scene),
            Scenario::FloodExpiry => load::flood_expiry(scene),
            Scenario::RandomServices => load::random_services(scene),
            Scenario::BigMessages => load::big_messages(scene),
            Scenario::LogFlood => load::log_flood(scene),
            Scenario::Sighup => load::sighup(scene),
        }
    }
}

/// Why a scenario could not give its figure.
#[derive(Debug)]
pub enum Failure {
    /// The harness could not set the scenario up.
    Setup(String),
    /// The broker exited while the scenario ran: how.
    BrokerDied(String),
    Zmq(zmq::Error),
    Io(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Setup(what) => write!(f, "setup failed: {what}"),
            Failure::BrokerDied(how) => write!(f, "BROKER DIED ({how})"),
            Failure::Zmq(e) => write!(f, "zmq: {e}"),
            Failure::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl From<zmq::Error> for Failure {
    fn from(e: zmq::Error) -> Self {
        Failure::Zmq(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

/// What a scenario measured: the figure line, and the few words of it
/// that go in the final table.
pub struct Report {
    pub figure: String,
    pub cell: String,
}

impl Report {
    /// A figure short enough to be its own cell.
    pub fn same(figure: &str) -> Report {
        Report {
            figure: figure.to_string(),
            cell: figure.to_string(),
        }
    }
}

/// What every scenario gets: the settings, the broker, its heartbeat.
pub struct Scene<'a> {
    pub context: zmq::Context,
    pub broker: &'a mut Broker,
    pub mdworker: &'a std::path::Path,
    /// The broker's heartbeat interval, which raw workers follow.
    pub heartbeat: Duration,
    pub requests: usize,
    pub big_bytes: usize,
    pub patience: Duration,
}

/// One line of the final table.
struct Row {
    scenario: Scenario,
    report: Report,
    ending: String,
    log: LogSummary,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mdworker = args.mdworker.clone().unwrap_or_else(|| {
        let dir = args.broker.parent().unwrap_or(std::path::Path::new("."));
        dir.join("examples").join("mdworker")
    });
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    println!(
        "mdhostile: broker {} {}",
        args.broker.display(),
        args.broker_args.join(" ")
    );
    let rows: Vec<Row> = scenarios.iter().map(|s| run(&args, &mdworker, *s)).collect();
    print_table(&rows);
    ExitCode::SUCCESS
}

/// Runs one scenario against a fresh broker and prints its figure line.
fn run(args: &Args, mdworker: &std::path::Path, scenario: Scenario) -> Row {
    let broker_args = merged(scenario.broker_defaults(), &args.broker_args);
    let (report, ending, log) = match Broker::start(&args.broker, &broker_args) {
        Err(failure) => (failed(&failure), "did not start".to_string(), LogSummary::default()),
        Ok(mut broker) => {
            // Only log-flood leaves standard error unread (for a while).
            if scenario != Scenario::LogFlood {
                broker.read_log();
            }
            let mut scene = Scene {
                context: zmq::Context::new(),
                broker: &mut broker,
                mdworker,
                heartbeat: heartbeat(&broker_args),
                requests: args.requests,
                big_bytes: args.big_bytes,
                patience: Duration::from_secs(args.patience),
            };
            let report = scenario.run(&mut scene).unwrap_or_else(|failure| failed(&failure));
            let (ending, log) = broker.stop();
            (report, ending, log)
        }
    };
    let row = Row {
        scenario,
        report,
        ending,
        log,
    };
    println!(
        "{}: {} | broker {} | stderr {}",
        row.scenario.name(),
        row.report.figure,
        row.ending,
        log_note(&row.log)
    );
    if let Some(warning) = &row.log.first_warning {
        println!("  first WARN: {warning}");
    }
    row
}

fn failed(failure: &Failure) -> Report {
    Report::same(&failure.to_string())
}

/// The scenario's defaults that `--broker-arg` does not set, then those.
fn merged(defaults: &[(&str, &str)], given: &[String]) -> Vec<String> {
    let sets = |flag: &str| {
        given
            .iter()
            .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    };
    let mut args: Vec<String> = defaults
        .iter()
        .filter(|(flag, _)| !sets(flag))
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect();
    args.extend(given.iter().cloned());
    args
}

/// The broker's heartbeat interval as these arguments set it.
fn heartbeat(args: &[String]) -> Duration {
    let value = args.iter().enumerate().find_map(|(i, arg)| match arg.as_str() {
        "--heartbeat-interval" => args.get(i + 1).map(String::as_str),
        _ => arg.strip_prefix("--heartbeat-interval="),
    });
    Duration::from_millis(value.and_then(|v| v.parse().ok()).unwrap_or(2500))
}

/// What the broker wrote to standard error, in a few words.
fn log_note(log: &LogSummary) -> String {
    let mut note = format!("{} lines, {} WARN, longest {} B", log.lines, log.warnings, log.longest);
    for (name, count) in log.dropped() {
        note.push_str(&format!(", {name} {count}"));
    }
    note
}

/// How the broker ended, in a table cell.
fn short_ending(ending: &str) -> &str {
    match ending {
        e if e.starts_with("stopped on SIGTERM (exit status 0)") => "ok",
        e => e,
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| scenario | figure | broker | stderr |");
    println!("| --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {} | {} WARN, longest line {} B |",
            row.scenario.name(),
            row.report.cell.replace('|', "/"),
            short_ending(&row.ending),
            row.log.warnings,
            row.log.longest
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_broker_args_replace_the_scenario_defaults() {
        let given = vec!["--busy-timeout=500".to_string(), "-v".to_string()];
        let args = merged(&[("--heartbeat-interval", "250"), ("--busy-timeout", "2000")], &given);
        assert_eq!(args, ["--heartbeat-interval", "250", "--busy-timeout=500", "-v"]);
        assert_eq!(heartbeat(&args), Duration::from_millis(250));
        assert_eq!(heartbeat(&given), Duration::from_millis(2500));
    }
}
