//! mdbench: measures the broker against two baselines in one run.
//!
//! For each system (mdbroker, an LRU forwarder with MDP's dispatch rule, a
//! blind round-robin forwarder) it starts the system as a child process of
//! its own (this program, re-run with `--serve`), puts M echo workers and N
//! clients with K requests of S bytes in flight each on it, and prints
//! requests per second, latency percentiles, the system's CPU time per
//! request (from the kernel's accounting of that process, all threads), and
//! how many replies were checked against their requests. Systems alternate
//! over `--runs` rounds and the summary gives medians and the ratios of
//! the broker to the LRU forwarder.
//!
//! ```sh
//! cargo run --release -p mdbench -- --workers 16 --clients 2 --depth 50 --size 16
//! ```
#![forbid(unsafe_code)]

mod chart;
mod forwarder;
mod load;
mod peers;
mod scale;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use clap::Parser;
use majordomo::Version;
use majordomo::broker::{Config, Server};
use majordomo::curve::{Certificate, CurveClient, KeyPair};
use majordomo::security::{Security, SecurityConfig};

/// The one service the benchmark uses.
pub const SERVICE: &str = "echo";
/// Where every system under test binds: an ephemeral loopback port.
const LOOPBACK: &str = "tcp://127.0.0.1:*";

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark mdbroker against an LRU forwarder and a round-robin forwarder")]
struct Args {
    /// Systems to measure, in turn: broker, lru, rr.
    #[arg(long, value_delimiter = ',', default_value = "broker,lru,rr")]
    systems: Vec<System>,
    /// Echo workers.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Requests each client keeps in flight.
    #[arg(long, default_value_t = 50)]
    depth: usize,
    /// Request (and reply) body size in bytes, at least 16.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Protocol version: 1 (MDP/0.1) or 2 (MDP/0.2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Rounds; each measures every system once, and the summary takes medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Measure scaling instead: throughput with and without --idle-workers
    /// other workers connected, the broker's CPU with only those, and its
    /// memory per worker and per queued request.
    #[arg(long)]
    scale: bool,
    /// Sweep workers, in-flight depth and body size for every system
    /// (medians over --runs) and write a chart of throughput to this SVG.
    #[arg(long, value_name = "FILE.svg")]
    sweep: Option<std::path::PathBuf>,
    /// Scaling: idle heartbeating workers connected beside the load.
    #[arg(long, default_value_t = 10_000)]
    idle_workers: usize,
    /// Scaling: services the idle workers are spread over.
    #[arg(long, default_value_t = 1_000)]
    idle_services: usize,
    /// Scaling: seconds the broker's CPU is measured with only idle workers.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// The broker's heartbeat interval in ms (and, when scaling, its idle
    /// workers').
    #[arg(long, default_value_t = 2500)]
    heartbeat_interval: u64,
    /// Scaling: requests queued for a service with no worker, for memory.
    #[arg(long, default_value_t = 100_000)]
    queued: usize,
    /// Compare our mdclient, mdclient_async and mdworker with the zguide C
    /// mdclient, mdclient2 and mdworker found in this directory, through
    /// our release mdbroker, over --runs rounds (at least 3).
    #[arg(long, value_name = "DIR")]
    peers: Option<std::path::PathBuf>,
    /// With --peers: requests per client run.
    #[arg(long, default_value_t = 5000)]
    peers_count: u64,
    /// Secure the broker with CURVE (every client and worker connection
    /// encrypted; any key admitted, so the ZAP handler answers once per
    /// connection): what encryption costs. The broker system only.
    #[arg(long)]
    curve: bool,
    /// Internal: serve as this system on an ephemeral port, print it, run.
    #[arg(long, hide = true)]
    serve: Option<System>,
    /// Internal: the served broker's secret certificate (with --curve).
    #[arg(long, hide = true)]
    serve_curve_key: Option<std::path::PathBuf>,
    /// Internal: serve as the heartbeat echo floor on an ephemeral port.
    #[arg(long, hide = true)]
    serve_heartbeat_echo: bool,
    /// Internal: hold this many idle workers (a helper process).
    #[arg(long, hide = true)]
    serve_idle: Option<usize>,
    /// Internal: index of a helper's first idle worker.
    #[arg(long, hide = true, default_value_t = 0)]
    idle_first: usize,
    /// Internal: the broker a helper's idle workers connect to.
    #[arg(long, hide = true, default_value = "")]
    idle_endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum System {
    Broker,
    Lru,
    Rr,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Broker => "mdbroker",
            System::Lru => "(a) lru forwarder",
            System::Rr => "(b) round-robin",
        }
    }
}

/// One measurement of one system.
#[derive(Debug, Clone)]
struct Figures {
    rate: f64,
    p50: u32,
    p99: u32,
    max: u32,
    cpu_us_per_request: f64,
    /// Share of all the machine's cores busy (anyone's) while measured.
    machine_busy: f64,
    checked: u64,
    failures: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let version = if args.version == 2 { Version::V02 } else { Version::V01 };
    if args.serve.is_some() || args.serve_idle.is_some() || args.serve_heartbeat_echo {
        exit_with_parent();
    }
    if args.serve_heartbeat_echo {
        let (_context, socket) = announced_router();
        let _ = forwarder::serve_heartbeat_echo(socket, version);
        return ExitCode::FAILURE;
    }
    if let Some(system) = args.serve {
        return serve(
            system,
            version,
            Duration::from_millis(args.heartbeat_interval),
            args.serve_curve_key.clone(),
        );
    }
    if let Some(count) = args.serve_idle {
        let interval = Duration::from_millis(args.heartbeat_interval);
        scale::serve_idle(
            &args.idle_endpoint,
            count,
            args.idle_first,
            args.idle_services,
            interval,
        );
    }
    if let Some(dir) = &args.peers {
        return match peers::run(dir, args.runs.max(3), args.peers_count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mdbench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.size < load::MIN_BODY {
        eprintln!("mdbench: --size must be at least {}", load::MIN_BODY);
        return ExitCode::FAILURE;
    }
    println!(
        "mdbench: {} workers, {} clients x {} in flight, {} B bodies, {}, {} s measured after {} s warm-up, {} run(s)",
        args.workers, args.clients, args.depth, args.size, version, args.duration, args.warmup, args.runs
    );
    if let Some(path) = &args.sweep {
        return match sweep(&args, version, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mdbench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.scale {
        return match scale::run(&args, version) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mdbench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.curve {
        if args.systems.iter().any(|s| *s != System::Broker) {
            eprintln!("mdbench: --curve needs --systems broker (the forwarders speak no CURVE)");
            return ExitCode::FAILURE;
        }
        if let Err(e) = curve_keys() {
            eprintln!("mdbench: --curve: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut results: Vec<(System, Vec<Figures>)> = args.systems.iter().map(|s| (*s, Vec::new())).collect();
    for run in 1..=args.runs {
        for (system, figures) in &mut results {
            match measure(&args, *system, version) {
                Ok(f) => {
                    println!("run {run} {:<18} {}", system.label(), show(&f));
                    figures.push(f);
                }
                Err(e) => {
                    eprintln!("mdbench: {}: {e}", system.label());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    summarise(&results)
}

/// The broker's secret certificate with `--curve`, for the child.
static CURVE_KEY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// With `--curve`: a broker key pair in a temporary directory (for the
/// child broker) and a client key pair for every load socket.
fn curve_keys() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mdbench-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let broker = KeyPair::generate()?;
    let _ = std::fs::remove_file(dir.join("broker.key"));
    let _ = std::fs::remove_file(dir.join("broker.key_secret"));
    let (_, secret) = Certificate::from(broker.clone()).save(&dir, "broker")?;
    let _ = CURVE_KEY.set(secret);
    let _ = load::CURVE.set(CurveClient {
        server: broker.public,
        keys: KeyPair::generate()?,
    });
    Ok(())
}

/// The broker, bound with CURVE if `curve_key` is given.
fn bind_broker(config: Config, curve_key: Option<std::path::PathBuf>) -> Result<Server, Box<dyn std::error::Error>> {
    let Some(path) = curve_key else {
        return Ok(Server::bind(&[LOOPBACK], config)?);
    };
    let mut security = SecurityConfig::default();
    security.curve_secret_key = Some(path);
    Ok(Server::bind_secure(&[LOOPBACK], config, Security::load(security)?)?)
}

/// Child process: bind an ephemeral loopback port, print it, serve.
fn serve(
    system: System,
    version: Version,
    heartbeat_interval: Duration,
    curve_key: Option<std::path::PathBuf>,
) -> ExitCode {
    let mut config = Config::default();
    config.heartbeat_interval = heartbeat_interval;
    let result: Result<(), Box<dyn std::error::Error>> = match system {
        System::Broker => bind_broker(config, curve_key).and_then(|server| {
            announce(&server.endpoints()[0]);
            server.stop_on_signals()?;
            Ok(server.run()?)
        }),
        System::Lru | System::Rr => {
            let (_context, socket) = announced_router();
            let rule = if system == System::Lru {
                forwarder::Rule::LeastRecentlyUsed
            } else {
                forwarder::Rule::RoundRobin
            };
            forwarder::serve(socket, rule, version).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdbench --serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// In a child process: exits when the parent's end of stdin closes, so a
/// benchmark that is killed leaves nothing running behind it.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// A ROUTER bound to an ephemeral loopback port, announced to the parent.
fn announced_router() -> (zmq::Context, zmq::Socket) {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::ROUTER).expect("socket");
    socket.bind(LOOPBACK).expect("bind");
    announce(&socket.get_last_endpoint().expect("endpoint").expect("utf-8"));
    (context, socket)
}

fn announce(endpoint: &str) {
    println!("ENDPOINT {endpoint}");
    let _ = std::io::stdout().flush();
}

/// Starts a system in a child process and reads its endpoint.
fn spawn(args: &Args, system: System, version: Version) -> Result<(Child, String), String> {
    let serve_flag = match system {
        System::Broker => "broker",
        System::Lru => "lru",
        System::Rr => "rr",
    };
    spawn_serving(args, &["--serve", serve_flag], version)
}

/// Re-runs this program with `serve` (an internal flag saying what to
/// serve) and reads the endpoint it announces.
fn spawn_serving(args: &Args, serve: &[&str], version: Version) -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let version_flag = if version == Version::V02 { "2" } else { "1" };
    let mut child = Command::new(exe)
        .args(serve)
        .args(["--version", version_flag])
        .args(["--heartbeat-interval", &args.heartbeat_interval.to_string()])
        .args(
            CURVE_KEY
                .get()
                .map(|path| ["--serve-curve-key".as_ref(), path.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    match line.trim().strip_prefix("ENDPOINT ") {
        Some(endpoint) => Ok((child, endpoint.to_string())),
        None => {
            let _ = child.kill();
            Err(format!("child did not announce its endpoint: {line:?}"))
        }
    }
}

/// CPU time of every thread of a process, in nanoseconds.
fn cpu_ns(pid: u32) -> Result<u64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// The machine's (busy, total) CPU time so far, in clock ticks, from the
/// first line of /proc/stat.
fn machine_ticks() -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| e.to_string())?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or("no cpu line in /proc/stat")?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    // Fields 3 and 4 are idle and iowait.
    let idle: u64 = ticks.iter().skip(3).take(2).sum();
    Ok((total - idle, total))
}

fn measure(args: &Args, system: System, version: Version) -> Result<Figures, String> {
    let (child, endpoint) = spawn(args, system, version)?;
    let child = Reaped(child);
    load_run(args, &endpoint, child.0.id(), version)
}

/// Ends a child process when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Puts the load on the system at `endpoint` (process `pid`) and measures.
fn load_run(args: &Args, endpoint: &str, pid: u32, version: Version) -> Result<Figures, String> {
    let phase = Arc::new(AtomicU8::new(load::WARMUP));
    let workers = {
        let (endpoint, phase, count) = (endpoint.to_string(), Arc::clone(&phase), args.workers);
        std::thread::spawn(move || load::workers(endpoint, count, version, phase))
    };
    let clients = {
        let (endpoint, phase) = (endpoint.to_string(), Arc::clone(&phase));
        let (count, depth, size) = (args.clients, args.depth, args.size);
        std::thread::spawn(move || load::clients(endpoint, count, depth, size, version, phase))
    };
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let (cpu_before, machine_before) = (cpu_ns(pid)?, machine_ticks()?);
    phase.store(load::MEASURE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    phase.store(load::DRAIN, Ordering::Relaxed);
    let (cpu_after, machine_after) = (cpu_ns(pid)?, machine_ticks()?);
    let report = clients.join().map_err(|_| "client thread panicked")?;
    phase.store(load::STOP, Ordering::Relaxed);
    workers.join().map_err(|_| "worker thread panicked")?;

    let mut latencies = report.latencies_us;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let window = report.window.as_secs_f64().max(f64::EPSILON);
    Ok(Figures {
        rate: report.measured as f64 / window,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or(0),
        cpu_us_per_request: (cpu_after - cpu_before) as f64 / 1000.0 / report.measured.max(1) as f64,
        machine_busy: (machine_after.0 - machine_before.0) as f64 / (machine_after.1 - machine_before.1).max(1) as f64,
        checked: report.checked,
        failures: report.failures,
    })
}

/// One swept parameter of [`sweep`].
struct Axis {
    title: &'static str,
    set: fn(&mut Args, usize),
    values: &'static [usize],
    label: fn(usize) -> String,
}

/// Throughput of every system across workers, depth and body size.
fn sweep(args: &Args, version: Version, path: &std::path::Path) -> Result<(), String> {
    let axes = [
        Axis {
            title: "workers (4 clients x 25, 16 B)",
            set: |a, v| a.workers = v,
            values: &[2, 8, 16, 64],
            label: |v| v.to_string(),
        },
        Axis {
            title: "in flight per client (16 workers, 2 clients)",
            set: |a, v| a.depth = v,
            values: &[1, 5, 20, 50],
            label: |v| v.to_string(),
        },
        Axis {
            title: "body size (16 workers, 2 x 50)",
            set: |a, v| a.size = v,
            values: &[16, 1024, 4096, 65536],
            label: |v| {
                if v >= 1024 {
                    format!("{} KiB", v / 1024)
                } else {
                    format!("{v} B")
                }
            },
        },
    ];
    let mut panels = Vec::new();
    println!("panel,value,system,median_req_per_s");
    for (
        n,
        Axis {
            title,
            set,
            values,
            label,
        },
    ) in axes.iter().enumerate()
    {
        let mut base = args.clone();
        (base.workers, base.clients, base.depth, base.size) = if n == 0 { (16, 4, 25, 16) } else { (16, 2, 50, 16) };
        let mut lines: Vec<(String, Vec<f64>)> = args
            .systems
            .iter()
            .map(|s| (s.label().to_string(), Vec::new()))
            .collect();
        for &value in values.iter() {
            let mut point = base.clone();
            set(&mut point, value);
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); args.systems.len()];
            for _ in 0..args.runs {
                for (i, system) in args.systems.iter().enumerate() {
                    let figures = measure(&point, *system, version)?;
                    if figures.failures > 0 || figures.checked == 0 {
                        return Err(format!("{}: replies failed verification", system.label()));
                    }
                    rates[i].push(figures.rate);
                }
            }
            for (i, system) in args.systems.iter().enumerate() {
                let rate = median(&mut rates[i]);
                println!("{title},{},{},{rate:.0}", label(value), system.label());
                lines[i].1.push(rate);
            }
        }
        panels.push(chart::Panel {
            title: title.to_string(),
            x_labels: values.iter().map(|v| label(*v)).collect(),
            lines,
        });
    }
    let caption = format!(
        "mdbench --sweep, {version}, medians of {} run(s) of {} s; every reply verified",
        args.runs, args.duration
    );
    std::fs::write(path, chart::render(&panels, &caption)).map_err(|e| e.to_string())?;
    println!("chart written to {}", path.display());
    Ok(())
}

fn show(f: &Figures) -> String {
    format!(
        "{:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  max {:>7} us  cpu {:>6.2} us/req  machine {:>3.0}% busy  {} replies checked, {} failures",
        f.rate,
        f.p50,
        f.p99,
        f.max,
        f.cpu_us_per_request,
        f.machine_busy * 100.0,
        f.checked,
        f.failures
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn summarise(results: &[(System, Vec<Figures>)]) -> ExitCode {
    println!("medians:");
    let mut medians = Vec::new();
    for (system, figures) in results {
        let mut rates: Vec<f64> = figures.iter().map(|f| f.rate).collect();
        let mut cpus: Vec<f64> = figures.iter().map(|f| f.cpu_us_per_request).collect();
        let (rate, cpu) = (median(&mut rates), median(&mut cpus));
        println!("  {:<18} {:>9.0} req/s  cpu {:>6.2} us/req", system.label(), rate, cpu);
        medians.push((*system, rate, cpu));
    }
    let find = |s: System| medians.iter().find(|m| m.0 == s).map(|m| (m.1, m.2));
    if let (Some((broker_rate, broker_cpu)), Some((lru_rate, lru_cpu))) = (find(System::Broker), find(System::Lru)) {
        println!(
            "ratios: throughput broker/(a) = {:.2}, cpu per request broker/(a) = {:.2}",
            broker_rate / lru_rate,
            broker_cpu / lru_cpu
        );
    }
    let failures: u64 = results.iter().flat_map(|(_, f)| f).map(|f| f.failures).sum();
    let unchecked = results.iter().flat_map(|(_, f)| f).any(|f| f.checked == 0);
    if failures > 0 || unchecked {
        eprintln!("mdbench: {failures} failed replies; a run with no checked reply: {unchecked}");
        return ExitCode::FAILURE;
    }
    println!("every reply verified");
    ExitCode::SUCCESS
}
