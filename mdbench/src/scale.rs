//! Scaling figures: the broker with thousands of other workers connected.
//!
//! Each round runs one broker and measures throughput without other
//! workers; memory before and after the idle workers register; CPU with
//! only them; throughput with them; memory per queued request. Then the
//! same idle workers are pointed at a heartbeat echo (a ROUTER that answers
//! each heartbeat at once and keeps no state) and its CPU is measured: the
//! floor under the broker's idle figure, set by libzmq and the kernel.
//!
//! Idle workers live in helper processes (this program with
//! `--serve-idle`), at most 5,000 sockets each: a process may hold 20,000
//! files here, and each libzmq socket holds two (its connection and its
//! mailbox). Each idle worker registers for one of the idle services and
//! heartbeats at the broker's interval. A helper reports ready only once
//! every one of its sockets has received a HEARTBEAT from the broker, which
//! the broker sends only to registered workers; it exits (and the round
//! fails) if the broker ever disconnects one of them.
//!
//! Like real workers, each idle worker heartbeats on its own schedule, and
//! the schedules are spread evenly over the interval: the broker sees a
//! steady 4,000 heartbeats a second from 10,000 workers, not bursts. A
//! helper wakes every 20 ms and touches only the sockets that are due, so
//! its cost is per heartbeat, not per socket: `zmq_poll` over thousands of
//! sockets on every wake-up would cost more CPU than the broker under test.
//! The helpers stand in for workers on other machines, so they run at the
//! lowest priority (`nice -n 19`) and take only the CPU that the broker and
//! the load leave idle on these two cores. A worker reads the broker's
//! heartbeats when it sends its own; until every worker has heard one, the
//! helper also checks the rest every 100 ms.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use majordomo::Version;
use majordomo::frame::{self, Frame};
use majordomo::protocol::{self, ClientRequest, Dialect, FromWorker, ToWorker};

use super::{Args, Reaped, System, cpu_ns, load_run, median, show, spawn, spawn_serving};

/// Most worker sockets one helper process holds.
pub const PER_PROCESS: usize = 5_000;
/// How often a helper wakes to send the heartbeats that are due.
const TICK: Duration = Duration::from_millis(20);
/// How often a helper checks which of its workers have been registered.
const REGISTRATION_CHECK: Duration = Duration::from_millis(100);
const SOCKETS_PER_CONTEXT: usize = 1_000;

/// Helper process: `count` workers for services `idle-{first + i % services}`.
pub fn serve_idle(endpoint: &str, count: usize, first: usize, services: usize, interval: Duration) -> ! {
    // A libzmq context holds at most 1,023 sockets by default, and the zmq
    // crate cannot raise that: one context per thousand sockets.
    let contexts: Vec<zmq::Context> = (0..count.div_ceil(SOCKETS_PER_CONTEXT))
        .map(|_| zmq::Context::new())
        .collect();
    let dialect = Dialect::V01;
    let mut sockets: Vec<zmq::Socket> = Vec::with_capacity(count);
    for i in 0..count {
        let socket = contexts[i / SOCKETS_PER_CONTEXT].socket(zmq::DEALER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.connect(endpoint).expect("connect");
        let service = format!("idle-{}", (first + i) % services.max(1));
        let mut frames = Vec::new();
        protocol::encode_from_worker(
            &mut frames,
            dialect,
            FromWorker::Ready {
                service: service.into(),
            },
        );
        let mut socket = socket;
        frame::send_multipart(&mut socket, frames).expect("READY");
        sockets.push(socket);
    }
    let start = Instant::now();
    let mut heard = vec![false; count];
    let mut unheard = count;
    let mut next_heartbeat: Vec<Instant> = (0..count)
        .map(|i| start + interval.mul_f64(i as f64 / count.max(1) as f64))
        .collect();
    let mut due = 0;
    let mut next_check = start;
    let mut announced = false;
    let mut heartbeat = Vec::new();
    loop {
        let now = Instant::now();
        // Schedules are in socket order, so the due ones come round in turn.
        while next_heartbeat.get(due).is_some_and(|at| *at <= now) {
            let socket = &mut sockets[due];
            while let Ok(frames) = frame::recv_multipart(socket, true) {
                if let Ok((_, ToWorker::Disconnect)) = protocol::decode_at_worker(frames) {
                    eprintln!(
                        "idle worker {} was disconnected: its heartbeats were too late",
                        first + due
                    );
                    std::process::exit(3);
                }
                if !heard[due] {
                    heard[due] = true;
                    unheard -= 1;
                }
            }
            heartbeat.clear();
            protocol::encode_from_worker(&mut heartbeat, dialect, FromWorker::Heartbeat);
            let _ = frame::send_multipart(socket, std::mem::take(&mut heartbeat));
            next_heartbeat[due] += interval;
            due = (due + 1) % count;
        }
        if !announced && now >= next_check {
            next_check = now + REGISTRATION_CHECK;
            for (socket, heard) in sockets.iter_mut().zip(heard.iter_mut()) {
                if !*heard && frame::recv_multipart(socket, true).is_ok() {
                    *heard = true;
                    unheard -= 1;
                }
            }
            if unheard == 0 {
                announced = true;
                println!("READY");
                let _ = std::io::stdout().flush();
            }
        }
        std::thread::sleep(TICK);
    }
}

/// Helper processes holding idle workers; ended when dropped.
pub struct Helpers(Vec<Child>);

impl Helpers {
    /// Fails if a helper has exited: the broker disconnected one of its
    /// workers, so the figures were not taken with every worker connected.
    fn check(&mut self) -> Result<(), String> {
        for helper in &mut self.0 {
            if let Ok(Some(status)) = helper.try_wait() {
                return Err(format!("an idle-worker helper exited ({status})"));
            }
        }
        Ok(())
    }

    /// Total CPU time of the helpers, in nanoseconds.
    fn cpu_ns(&self) -> Result<u64, String> {
        self.0.iter().map(|h| cpu_ns(h.id())).sum()
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for helper in &mut self.0 {
            let _ = helper.kill();
            let _ = helper.wait();
        }
    }
}

/// Starts helpers holding `args.idle_workers` idle workers and waits until
/// the system at `endpoint` has answered every one of them.
fn start_idle(args: &Args, endpoint: &str) -> Result<Helpers, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut helpers = Helpers(Vec::new());
    let mut first = 0;
    while first < args.idle_workers {
        let n = PER_PROCESS.min(args.idle_workers - first);
        // The helpers stand in for workers on other machines: at the lowest
        // priority, they take only what the broker and the load leave idle.
        let child = Command::new("nice")
            .args(["-n", "19"])
            .arg(&exe)
            .args(["--serve-idle", &n.to_string(), "--idle-first", &first.to_string()])
            .args([
                "--idle-services",
                &args.idle_services.to_string(),
                "--idle-endpoint",
                endpoint,
            ])
            .args(["--heartbeat-interval", &args.heartbeat_interval.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        helpers.0.push(child);
        first += n;
    }
    for helper in &mut helpers.0 {
        let stdout = helper.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "READY" {
            return Err(format!("idle-worker helper failed: {line:?}"));
        }
    }
    Ok(helpers)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".to_string())
}

/// Queues `count` requests of `size` bytes for a service with no worker,
/// then waits for an mmi.service reply on the same connection: the broker
/// handles one connection's messages in order, so by then every request is
/// in its queue. (They stay there until they expire, whether or not the
/// client is still connected.)
pub fn queue_requests(endpoint: &str, count: usize, size: usize) -> Result<(), String> {
    let context = zmq::Context::new();
    let mut socket = context.socket(zmq::DEALER).map_err(|e| e.to_string())?;
    socket.set_sndhwm(0).map_err(|e| e.to_string())?;
    socket.set_linger(0).map_err(|e| e.to_string())?;
    socket.connect(endpoint).map_err(|e| e.to_string())?;
    let request = |service: &str, body: Frame| {
        let mut frames = Vec::new();
        let cmd = ClientRequest {
            service: service.into(),
            body: vec![body],
        };
        protocol::encode_request(&mut frames, Dialect::V01, cmd);
        frames
    };
    for _ in 0..count {
        frame::send_multipart(&mut socket, request("nobody", Frame::from(vec![7u8; size])))
            .map_err(|e| e.to_string())?;
    }
    frame::send_multipart(&mut socket, request("mmi.service", Frame::from("nobody"))).map_err(|e| e.to_string())?;
    socket.set_rcvtimeo(60_000).map_err(|e| e.to_string())?;
    frame::recv_multipart(&mut socket, false).map_err(|e| format!("no mmi reply: {e}"))?;
    Ok(())
}

/// What one round of the scaling measurement found.
struct Round {
    ratio: f64,
    kib_per_worker: f64,
    idle_cpu: f64,
    helpers_cpu: f64,
    floor_cpu: f64,
    bytes_per_request: f64,
    failures: u64,
}

/// The scaling figures: `--runs` rounds, each on a fresh broker process and
/// a fresh heartbeat echo, then the medians.
pub fn run(args: &Args, version: Version) -> Result<(), String> {
    println!(
        "scaling: {} idle workers over {} services, heartbeat interval {} ms",
        args.idle_workers, args.idle_services, args.heartbeat_interval
    );
    let mut rounds = Vec::new();
    for round in 1..=args.runs.max(1) {
        println!("round {round}:");
        let mut figures = broker_round(args, version)?;
        figures.floor_cpu = floor_round(args, version)?;
        println!(
            "  heartbeat echo (no broker, answers each heartbeat at once) with the same idle workers: {:.2}% of one core",
            figures.floor_cpu
        );
        rounds.push(figures);
    }
    let pick = |f: fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<f64>>());
    println!("medians of {} round(s):", rounds.len());
    println!("  throughput with / without idle workers: {:.3}", pick(|r| r.ratio));
    println!(
        "  idle CPU: broker {:.2}%, heartbeat echo {:.2}%, helpers {:.2}% of one core",
        pick(|r| r.idle_cpu),
        pick(|r| r.floor_cpu),
        pick(|r| r.helpers_cpu)
    );
    println!(
        "  memory: {:.1} KiB per connected worker, {:.0} B per queued request",
        pick(|r| r.kib_per_worker),
        pick(|r| r.bytes_per_request)
    );
    if rounds.iter().any(|r| r.failures > 0) {
        return Err("some replies failed verification".into());
    }
    Ok(())
}

/// CPU of process `pid` (and of the helpers) over `seconds`, in % of a core.
fn cpu_share(pid: u32, helpers: &Helpers, seconds: f64) -> Result<(f64, f64), String> {
    let (before, helpers_before) = (cpu_ns(pid)?, helpers.cpu_ns()?);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let share = |ns: u64| ns as f64 / 1e9 / seconds * 100.0;
    Ok((share(cpu_ns(pid)? - before), share(helpers.cpu_ns()? - helpers_before)))
}

fn broker_round(args: &Args, version: Version) -> Result<Round, String> {
    let (child, endpoint) = spawn(args, System::Broker, version)?;
    let broker = Reaped(child);
    let pid = broker.0.id();
    let alone = load_run(args, &endpoint, pid, version)?;
    println!("  without idle workers:    {}", show(&alone));
    let rss_before = rss_kib(pid)?;
    let started = Instant::now();
    let mut helpers = start_idle(args, &endpoint)?;
    let rss_after = rss_kib(pid)?;
    let kib_per_worker = rss_after.saturating_sub(rss_before) as f64 / args.idle_workers.max(1) as f64;
    println!(
        "  {} idle workers registered in {:.1} s; broker RSS {rss_before} -> {rss_after} KiB: {kib_per_worker:.1} KiB per worker",
        args.idle_workers,
        started.elapsed().as_secs_f64(),
    );
    let (idle_cpu, helpers_cpu) = cpu_share(pid, &helpers, args.idle_seconds)?;
    println!(
        "  broker CPU with only the idle workers: {idle_cpu:.2}% of one core over {} s (helpers: {helpers_cpu:.2}%)",
        args.idle_seconds
    );
    let crowded = load_run(args, &endpoint, pid, version)?;
    helpers.check()?;
    let ratio = crowded.rate / alone.rate.max(f64::EPSILON);
    println!("  with the idle workers:   {}", show(&crowded));
    println!("  throughput with / without: {ratio:.3}");
    drop(helpers);
    let rss_before = rss_kib(pid)?;
    queue_requests(&endpoint, args.queued, args.size)?;
    let rss_after = rss_kib(pid)?;
    let bytes_per_request = rss_after.saturating_sub(rss_before) as f64 * 1024.0 / args.queued.max(1) as f64;
    println!(
        "  {} queued requests of {} B: broker RSS {rss_before} -> {rss_after} KiB: {bytes_per_request:.0} B per request",
        args.queued, args.size,
    );
    Ok(Round {
        ratio,
        kib_per_worker,
        idle_cpu,
        helpers_cpu,
        floor_cpu: 0.0,
        bytes_per_request,
        failures: alone.failures + crowded.failures,
    })
}

/// The idle CPU of the heartbeat echo with the same idle workers: what
/// their heartbeat traffic alone costs libzmq and the kernel.
fn floor_round(args: &Args, version: Version) -> Result<f64, String> {
    let (child, endpoint) = spawn_serving(args, &["--serve-heartbeat-echo"], version)?;
    let echo = Reaped(child);
    let helpers = start_idle(args, &endpoint)?;
    Ok(cpu_share(echo.0.id(), &helpers, args.idle_seconds)?.0)
}
