//! `mdbench --peers DIR`: our client and worker examples side by side with
//! the zguide's C ones, through our release `mdbroker`.
//!
//! Why: our worker must be at least as fast as the zguide C worker that
//! most MDP users start from, and our clients as fast as theirs (issue 8).
//! What a user gets is the programs, so whole programs are measured, as
//! shipped: `mdclient` + `mdworker` against the C `mdclient` + `mdworker`
//! (one request at a time), `mdclient_async` + `mdworker` against the C
//! `mdclient2` + `mdworker` (every request sent before the first reply is
//! read, as `mdclient2` does), and the two mixed synchronous pairs, which
//! tell the client's share from the worker's.
//!
//! How: each run starts a fresh broker on a free loopback port (a worker
//! killed at the end of a run would otherwise stay registered and be handed
//! the next run's first request), starts the worker, waits until the broker
//! says the service has it (8/MMI), runs the client to the end, and stops
//! the worker and the broker by their PIDs. Each client checks every reply
//! against its request and exits non-zero on a mismatch; the rate is the
//! one the client reports (its own clock, so process start-up is not
//! counted). Pairs alternate within a round, in the opposite order every
//! other round, so that slow drifts of the machine fall on both sides.
//!
//! Where the programs come from: ours from the directory this program runs
//! from (`target/release`, after `cargo build --release -p mdbroker` and
//! `cargo build --release --examples`); the C ones from DIR, which
//! `../shared/anchors/build-zguide-c.sh` fills. Nothing requires them: a
//! pair whose program is missing is reported and skipped.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use majordomo::{Client, ClientConfig};

use crate::{Reaped, SERVICE, median};

/// Longest a worker may take to register, from its start.
const REGISTER_WITHIN: Duration = Duration::from_secs(10);
/// Longest one client run may take.
const CLIENT_WITHIN: Duration = Duration::from_secs(120);
/// How often a running child is looked at.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Whose program: built here, or the zguide's in DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Ours,
    Zguide,
}

/// One program of a pair.
#[derive(Debug, Clone, Copy)]
struct Program {
    origin: Origin,
    name: &'static str,
}

const OUR_CLIENT: Program = Program::ours("mdclient");
const OUR_ASYNC_CLIENT: Program = Program::ours("mdclient_async");
const OUR_WORKER: Program = Program::ours("mdworker");
const C_CLIENT: Program = Program::zguide("mdclient");
const C_ASYNC_CLIENT: Program = Program::zguide("mdclient2");
const C_WORKER: Program = Program::zguide("mdworker");

impl Program {
    const fn ours(name: &'static str) -> Program {
        Program {
            origin: Origin::Ours,
            name,
        }
    }

    const fn zguide(name: &'static str) -> Program {
        Program {
            origin: Origin::Zguide,
            name,
        }
    }

    fn path(self, places: &Places) -> PathBuf {
        match self.origin {
            Origin::Ours => places.examples.join(self.name),
            Origin::Zguide => places.peers.join(self.name),
        }
    }

    /// The command that runs this program against `endpoint`; a client
    /// makes `count` requests. The C examples read their settings from
    /// the environment (see ../shared/anchors/README.md).
    fn command(self, places: &Places, endpoint: &str, count: u64) -> Command {
        let mut command = Command::new(self.path(places));
        match self.origin {
            Origin::Ours => {
                command.args(["--broker", endpoint, "--service", SERVICE]);
                command.env("RUST_LOG", "warn");
                if self.name != "mdworker" {
                    command.args(["--count", &count.to_string()]);
                }
                if self.name == "mdclient_async" {
                    command.args(["--window", &count.to_string()]);
                }
            }
            Origin::Zguide => {
                command
                    .env("MDP_ENDPOINT", endpoint)
                    .env("MDP_COUNT", count.to_string());
            }
        }
        command
    }
}

/// A client and a worker measured together.
#[derive(Debug)]
struct Pair {
    label: &'static str,
    client: Program,
    worker: Program,
}

/// The pairs, in the order a round runs them.
const PAIRS: [Pair; 6] = [
    Pair {
        label: "sync  ours: mdclient + mdworker",
        client: OUR_CLIENT,
        worker: OUR_WORKER,
    },
    Pair {
        label: "sync  C:    mdclient + mdworker",
        client: C_CLIENT,
        worker: C_WORKER,
    },
    Pair {
        label: "sync  our mdclient + C mdworker",
        client: OUR_CLIENT,
        worker: C_WORKER,
    },
    Pair {
        label: "sync  C mdclient + our mdworker",
        client: C_CLIENT,
        worker: OUR_WORKER,
    },
    Pair {
        label: "async ours: mdclient_async + mdworker",
        client: OUR_ASYNC_CLIENT,
        worker: OUR_WORKER,
    },
    Pair {
        label: "async C:    mdclient2 + mdworker",
        client: C_ASYNC_CLIENT,
        worker: C_WORKER,
    },
];

/// Where the programs are.
#[derive(Debug)]
struct Places {
    broker: PathBuf,
    examples: PathBuf,
    peers: PathBuf,
}

impl Places {
    fn find(peers: &Path) -> Result<Places, String> {
        let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
        let target = exe.parent().ok_or("mdbench has no parent directory")?;
        let places = Places {
            broker: target.join("mdbroker"),
            examples: target.join("examples"),
            peers: peers.to_path_buf(),
        };
        for ours in [
            places.broker.clone(),
            OUR_CLIENT.path(&places),
            OUR_WORKER.path(&places),
        ] {
            if !ours.is_file() {
                return Err(format!(
                    "{} is missing; build ours first: cargo build --release -p mdbroker && cargo build --release --examples",
                    ours.display()
                ));
            }
        }
        Ok(places)
    }

    /// Whether every program of `pair` is there; says which is not.
    fn has(&self, pair: &Pair) -> bool {
        for program in [pair.client, pair.worker] {
            let path = program.path(self);
            if !path.is_file() {
                println!("skipping \"{}\": {} is missing", pair.label.trim(), path.display());
                return false;
            }
        }
        true
    }
}

/// Runs every pair whose programs exist, `rounds` times, and prints each
/// run and the medians.
pub fn run(peers: &Path, rounds: usize, count: u64) -> Result<(), String> {
    let places = Places::find(peers)?;
    let pairs: Vec<&Pair> = PAIRS.iter().filter(|pair| places.has(pair)).collect();
    println!(
        "mdbench --peers {}: {count} requests per run, {rounds} rounds, through {} (a fresh one per run), \
         every reply checked by its client",
        peers.display(),
        places.broker.display()
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            let rate = measure(&places, pairs[i], count).map_err(|e| format!("{}: {e}", pairs[i].label.trim()))?;
            println!("run {round} {:<40} {rate:>8.0} req/s", pairs[i].label);
            rates[i].push(rate);
        }
    }
    println!("medians of {rounds} runs:");
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    for (pair, rate) in pairs.iter().zip(&medians) {
        println!("  {:<40} {rate:>8.0} req/s", pair.label);
    }
    compare(
        &pairs,
        &medians,
        "sync  ours: mdclient + mdworker",
        "sync  C:    mdclient + mdworker",
    );
    compare(
        &pairs,
        &medians,
        "async ours: mdclient_async + mdworker",
        "async C:    mdclient2 + mdworker",
    );
    Ok(())
}

/// Prints ours / theirs for two pairs, when both were measured.
fn compare(pairs: &[&Pair], medians: &[f64], ours: &str, theirs: &str) {
    let find = |label: &str| pairs.iter().position(|p| p.label == label).map(|i| medians[i]);
    if let (Some(ours_rate), Some(their_rate)) = (find(ours), find(theirs)) {
        println!(
            "  {}: ours / C = {:.2}",
            ours.split_whitespace().next().unwrap_or(""),
            ours_rate / their_rate
        );
    }
}

/// One run of one pair through a fresh broker: the client's reported rate.
fn measure(places: &Places, pair: &Pair, count: u64) -> Result<f64, String> {
    let endpoint = free_loopback_endpoint()?;
    let mut broker = start(
        Command::new(&places.broker)
            .args(["--bind", &endpoint])
            .env("RUST_LOG", "warn"),
    )?;
    let mut worker = start(&mut pair.worker.command(places, &endpoint, count))?;
    wait_registered(&endpoint, &mut [&mut broker.0, &mut worker.0])?;
    let (status, stdout) = finish(pair.client.command(places, &endpoint, count), CLIENT_WITHIN)?;
    if !status.success() {
        return Err(format!("client failed ({status}): {}", stdout.trim()));
    }
    // The zguide clients stop early, and still exit 0, when a request fails.
    match reported(&stdout) {
        Some((answered, rate)) if answered == count => Ok(rate),
        Some((answered, _)) => Err(format!("only {answered} of {count} requests were answered")),
        None => Err(format!("no rate in the client's output: {:?}", stdout.trim())),
    }
}

/// A loopback endpoint on a port the kernel just said was free.
fn free_loopback_endpoint() -> Result<String, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("finding a free port: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    Ok(format!("tcp://127.0.0.1:{port}"))
}

/// Starts a background program, to be stopped (by its PID) when dropped.
fn start(command: &mut Command) -> Result<Reaped, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .map_err(|e| format!("starting {:?}: {e}", command.get_program()))
}

/// Waits until the broker at `endpoint` says the service has a worker,
/// failing early if one of `children` exits.
fn wait_registered(endpoint: &str, children: &mut [&mut Child]) -> Result<(), String> {
    let mut config = ClientConfig::default();
    config.timeout = Duration::from_millis(200);
    config.attempts = 1;
    let mut mmi = Client::new(endpoint, config);
    let deadline = Instant::now() + REGISTER_WITHIN;
    while Instant::now() < deadline {
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("process {} exited early ({status})", child.id()));
            }
        }
        if mmi.service_exists(SERVICE).unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(POLL_EVERY);
    }
    Err(format!("no worker registered within {REGISTER_WITHIN:?}"))
}

/// Runs a client to its end, or stops it (by its PID) after `within`; its
/// exit status and what it printed.
fn finish(mut command: Command, within: Duration) -> Result<(ExitStatus, String), String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", command.get_program()))?;
    let mut child = Reaped(child);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match child.0.try_wait() {
            Ok(Some(_)) => return output(child),
            Ok(None) => std::thread::sleep(POLL_EVERY),
            Err(e) => return Err(format!("waiting for the client: {e}")),
        }
    }
    Err(format!("client still running after {within:?}; stopped"))
}

/// The exit status and output of a client that has exited.
fn output(mut child: Reaped) -> Result<(ExitStatus, String), String> {
    let mut stdout = String::new();
    if let Some(mut pipe) = child.0.stdout.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stdout).map_err(|e| format!("reading the client: {e}"))?;
    }
    let status = child.0.wait().map_err(|e| format!("waiting for the client: {e}"))?;
    Ok((status, stdout))
}

/// How many requests a client says were answered, and at what rate. Ours
/// print "N requests/replies in S s[, W in flight]: R per second"; the
/// zguide examples as the anchors scripts build them print
/// "ANCHOR n=N elapsed_s=S req_s=R".
fn reported(output: &str) -> Option<(u64, f64)> {
    output
        .lines()
        .find_map(|line| ours_report(line).or_else(|| zguide_report(line)))
}

fn ours_report(line: &str) -> Option<(u64, f64)> {
    let (count, rest) = line.split_once(" requests/replies in ")?;
    let rate = rest.strip_suffix(" per second")?.rsplit(' ').next()?;
    Some((count.parse().ok()?, rate.parse().ok()?))
}

fn zguide_report(line: &str) -> Option<(u64, f64)> {
    let fields = line.strip_prefix("ANCHOR ")?;
    let field = |name: &str| fields.split_whitespace().find_map(|word| word.strip_prefix(name));
    Some((field("n=")?.parse().ok()?, field("req_s=")?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_count_and_rate_each_client_prints() {
        let ours = "5000 requests/replies in 1.234 s: 4052 per second\n";
        assert_eq!(reported(ours), Some((5000, 4052.0)));
        let ours_async = "5000 requests/replies in 0.8 s, 5000 in flight: 6250 per second\n";
        assert_eq!(reported(ours_async), Some((5000, 6250.0)));
        let theirs = "ANCHOR n=4999 elapsed_s=1.1 req_s=4545\n4999 requests/replies processed\n";
        assert_eq!(reported(theirs), Some((4999, 4545.0)));
        assert_eq!(reported("E: interrupted\n"), None);
    }
}
