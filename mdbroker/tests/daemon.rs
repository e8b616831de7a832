//! Tests of the `mdbroker` binary as an operator runs it: flags, the bound
//! endpoint in its log, SIGTERM handling and exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/common/mod.rs"]
mod common;

use common::*;
use majordomo::curve::{Certificate, CurveClient, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_mdbroker");

/// A running `mdbroker`, killed if a test ends (or fails) with it running.
struct Daemon(Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `mdbroker` (on an ephemeral loopback port unless `extra` binds)
/// and reads the first endpoint it logs.
fn spawn_broker(extra: &[&str]) -> (Daemon, String) {
    let interval: &[&str] = if extra.contains(&"--heartbeat-interval") {
        &[]
    } else {
        &["--heartbeat-interval", "100"]
    };
    let bind: &[&str] = if extra.contains(&"--bind") {
        &[]
    } else {
        &["--bind", "tcp://127.0.0.1:*"]
    };
    let (daemon, rx) = spawn_lines(
        Command::new(BIN)
            .args(bind)
            .args(interval)
            .args(extra)
            .env_remove("RUST_LOG"),
    );
    let endpoint = first_endpoint(&rx);
    (daemon, endpoint)
}

/// Spawns `command` (standard error piped, the rest null), killed when
/// the returned guard drops, and hands every line it logs to the receiver.
fn spawn_lines(command: &mut Command) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mdbroker");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Daemon(child), rx)
}

/// Starts `mdbroker` with `args` (at the default log level), hands every
/// line it logs to the receiver, and waits for the first endpoint it binds.
fn spawn_logging(args: &[&str]) -> (Daemon, std::sync::mpsc::Receiver<String>, String) {
    let (daemon, rx) = spawn_lines(Command::new(BIN).args(args).env_remove("RUST_LOG"));
    let endpoint = first_endpoint(&rx);
    (daemon, rx, endpoint)
}

/// The first endpoint the broker says it listens on, from its log lines.
fn first_endpoint(rx: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = rx.recv_timeout(WAIT).expect("mdbroker never logged its endpoint");
        if let Some(endpoint) = line.split("listening on ").nth(1) {
            return endpoint.trim().to_string();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_disconnects_workers_and_exits_zero_within_a_second() {
    let (mut child, endpoint) = spawn_broker(&[]);
    let w1 = v01_worker(&endpoint, "echo");
    let w2 = v02_worker(&endpoint, "echo2");
    let sent = Instant::now();
    signal(&child, "TERM");
    assert_eq!(w1.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
    assert_eq!(w2.recv_skipping_heartbeats(), frames(&[b"MDPW02", &[6]]));
    let status = wait_exit(&mut child, Duration::from_secs(1)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("mdbroker still running 1 s after SIGTERM")
    });
    assert!(status.success(), "exit status {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(1));
}

#[test]
fn sigint_also_stops_it_cleanly() {
    let (mut child, endpoint) = spawn_broker(&["-v"]);
    let _worker = v01_worker(&endpoint, "echo");
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(1)).expect("still running after SIGINT");
    assert!(status.success());
}

/// Runs `mdbroker` with `args`, which must make it fail within [`WAIT`];
/// returns what it wrote to standard error.
fn run_expecting_failure(args: &[&str]) -> String {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mdbroker");
    let mut daemon = Daemon(child);
    let status = wait_exit(&mut daemon, WAIT).unwrap_or_else(|| panic!("mdbroker {args:?} should fail, and runs"));
    assert!(!status.success(), "mdbroker {args:?} should fail");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.0.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    stderr
}

#[test]
fn bind_failures_print_one_clear_line_and_exit_non_zero() {
    let broker = TestBroker::start();
    let in_use = run_expecting_failure(&["--bind", &broker.endpoint]);
    assert!(
        in_use.contains("cannot bind") && in_use.contains(&broker.endpoint),
        "{in_use}"
    );
    assert_eq!(in_use.trim().lines().filter(|l| l.contains("cannot bind")).count(), 1);
    let malformed = run_expecting_failure(&["--bind", "not-an-endpoint"]);
    assert!(malformed.contains("cannot bind not-an-endpoint"), "{malformed}");
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        &["--heartbeat-interval", "0"][..],
        &["--heartbeat-liveness", "x"],
        &["--no-such-flag"],
    ] {
        let stderr = run_expecting_failure(args);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_peer_claiming_the_first_automatic_id_cannot_crash_the_daemon() {
    // The field input: in a fresh broker process, stock libzmq's first
    // automatic id is 00 6b8b4567; a peer claims it, then an anonymous peer
    // connects (stock libzmq aborts on an assertion here).
    let (mut child, endpoint) = spawn_broker(&[]);
    let claimer = Peer::connect_as(&endpoint, Some(&automatic_id(STOCK_FIRST_ID)));
    assert_served(&claimer);
    let anonymous: Vec<Peer> = (0..16).map(|_| Peer::connect(&endpoint)).collect();
    for peer in &anonymous {
        assert_served(peer);
    }
    assert_served(&claimer);
    assert!(child.try_wait().expect("try_wait").is_none(), "the broker died");
    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_stopped_and_continued_broker_deletes_none_of_its_live_workers() {
    // Field input (issue 14, section 5A): --heartbeat-interval 500 (expiry
    // 1.5 s), workers heartbeating every 500 ms, the broker stopped for
    // 1.4 s (SIGSTOP) and continued.
    let (mut child, endpoint) = spawn_broker(&["--heartbeat-interval", "500"]);
    let workers: Vec<Peer> = (0..40).map(|_| Peer::connect(&endpoint)).collect();
    for worker in &workers {
        worker.send(&[b"", b"MDPW01", &[1], b"echo"]);
    }
    wait_for_service(&endpoint, "echo");
    let stop_at = Instant::now() + Duration::from_millis(700);
    let resume_at = stop_at + Duration::from_millis(1400);
    let watch_until = resume_at + Duration::from_millis(1500);
    let (mut stopped, mut continued) = (false, false);
    let mut next_heartbeat = Instant::now();
    while Instant::now() < watch_until {
        if Instant::now() >= next_heartbeat {
            for worker in &workers {
                worker.send(&[b"", b"MDPW01", &[4]]);
            }
            next_heartbeat += Duration::from_millis(500);
        }
        if !stopped && Instant::now() >= stop_at {
            signal(&child, "STOP");
            stopped = true;
        }
        if !continued && Instant::now() >= resume_at {
            signal(&child, "CONT");
            continued = true;
        }
        for worker in &workers {
            while let Ok(msg) = worker.socket.recv_multipart(zmq::DONTWAIT) {
                assert!(is_heartbeat(&msg), "a live worker got {msg:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_broker_on_a_live_ipc_path_refuses_to_start_and_the_first_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("mdbroker-daemon-ipc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ipc = format!("ipc://{}/mdp.sock", dir.display());
    let (mut first, endpoint) = spawn_broker(&["--bind", &ipc]);
    assert_eq!(endpoint, ipc);
    let refused = run_expecting_failure(&["--bind", &ipc]);
    assert_eq!(refused.trim().lines().count(), 1, "one line: {refused}");
    assert!(
        refused.contains("cannot bind") && refused.contains("listening on this ipc path"),
        "{refused}"
    );
    wait_for_mmi(&ipc, "echo", b"404");
    signal(&first, "TERM");
    let status = wait_exit(&mut first, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
    assert!(!dir.join("mdp.sock").exists(), "the broker removed its socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_endpoint_it_cannot_bind_says_what_to_write_instead() {
    let interface = run_expecting_failure(&["--bind", "tcp://no-such-interface:5555"]);
    assert!(
        interface.contains("tcp://*:5555") && interface.contains("127.0.0.1"),
        "{interface}"
    );
    let transport = run_expecting_failure(&["--bind", "udp://127.0.0.1:5555"]);
    assert!(transport.contains("tcp://ADDRESS:PORT"), "{transport}");
    let unknown = run_expecting_failure(&["--bind", "foo://x"]);
    assert!(unknown.contains("tcp://ADDRESS:PORT"), "{unknown}");
}

#[test]
fn a_start_up_failure_exits_1_even_when_standard_error_is_a_dead_pipe() {
    let mut child = Command::new(BIN)
        .args(["--bind", "not-an-endpoint"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mdbroker");
    drop(child.stderr.take()); // nobody will ever read it
    let mut daemon = Daemon(child);
    let status = wait_exit(&mut daemon, WAIT).expect("mdbroker did not exit");
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn verbose_logs_every_command_whatever_rust_log_says_and_a_bad_rust_log_is_reported() {
    for (rust_log, verbose, expect) in [
        ("majordomo=info", true, "<- client"),
        ("majordomo=dbug", false, "does not parse"),
    ] {
        let (_daemon, rx) = spawn_lines(
            Command::new(BIN)
                .args(["--bind", "tcp://127.0.0.1:*"])
                .args(if verbose { &["-v"][..] } else { &[] })
                .env("RUST_LOG", rust_log),
        );
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        let done = |seen: &[String]| {
            seen.iter().any(|l| l.contains(expect)) && seen.iter().any(|l| l.contains("listening on"))
        };
        while Instant::now() < deadline && !done(&seen) {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            if let Some(endpoint) = line.split("listening on ").nth(1) {
                wait_for_mmi(endpoint.trim(), "echo", b"404");
            }
            seen.push(line);
        }
        assert!(
            seen.iter().any(|l| l.contains(expect)),
            "RUST_LOG={rust_log} -v={verbose}: {seen:?}"
        );
        assert!(
            seen.iter().any(|l| l.contains("listening on")),
            "the endpoint line is logged: {seen:?}"
        );
    }
}

#[test]
fn a_heartbeat_mismatch_is_named_in_the_log_with_both_figures() {
    // First-contact input: --heartbeat-interval 100 and a worker
    // heartbeating every 500 ms (as a default worker against a broker at
    // 500 ms, scaled down).
    let (_daemon, rx, endpoint) = spawn_logging(&["--bind", "tcp://127.0.0.1:*", "--heartbeat-interval", "100"]);
    let worker = Peer::connect(&endpoint);
    worker.send(&[b"", b"MDPW01", &[1], b"echo"]);
    let deadline = Instant::now() + WAIT;
    let mut next_heartbeat = Instant::now() + Duration::from_millis(500);
    let mut found = None;
    while Instant::now() < deadline && found.is_none() {
        if Instant::now() >= next_heartbeat {
            worker.send(&[b"", b"MDPW01", &[4]]);
            next_heartbeat += Duration::from_millis(500);
        }
        while let Ok(msg) = worker.socket.recv_multipart(zmq::DONTWAIT) {
            if msg == frames(&[b"", b"MDPW01", &[5]]) {
                worker.send(&[b"", b"MDPW01", &[1], b"echo"]); // registers again, as workers do
            }
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(20))
            && line.contains("heartbeat interval seems longer")
        {
            found = Some(line);
        }
    }
    let line = found.expect("the mismatch is named at the default log level");
    assert!(
        line.contains("'echo'") && line.contains("100ms") && line.contains("300ms"),
        "{line}"
    );
}

#[test]
fn mistyped_ports_inproc_and_duplicates_are_refused_and_leave_no_socket_file() {
    for endpoint in [
        "tcp://127.0.0.1:70000",
        "tcp://127.0.0.1:5555junk",
        "tcp://127.0.0.1",
        "inproc://mdp",
    ] {
        let refused = run_expecting_failure(&["--bind", endpoint]);
        assert!(
            refused.contains("cannot bind") && refused.trim().lines().count() == 1,
            "{endpoint}: {refused}"
        );
    }
    let dir = std::env::temp_dir().join(format!("mdbroker-daemon-leftover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ipc = format!("ipc://{}/a.sock", dir.display());
    let refused = run_expecting_failure(&["--bind", &ipc, "--bind", "udp://127.0.0.1:5555"]);
    assert!(refused.contains("udp://"), "{refused}");
    assert!(
        !dir.join("a.sock").exists(),
        "a broker that does not start leaves no socket file"
    );
    let twice = run_expecting_failure(&["--bind", &ipc, "--bind", &ipc]);
    assert!(twice.contains("given twice"), "{twice}");
    assert!(!dir.join("a.sock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn worker_lines_give_its_address_and_its_service_escaped() {
    let (_daemon, rx) = spawn_lines(
        Command::new(BIN)
            .args(["--bind", "tcp://127.0.0.1:*", "--heartbeat-interval", "100"])
            .env_remove("RUST_LOG"),
    );
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut worker = None;
    while Instant::now() < deadline && !lines.iter().any(|l: &String| l.contains("deleted")) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        if let Some(endpoint) = line.split("listening on ").nth(1) {
            let peer = Peer::connect(endpoint.trim());
            peer.send(&[b"", b"MDPW01", &[1], b"echo\nINFO forged"]); // then silent: expires
            worker = Some(peer);
        }
        lines.push(line);
    }
    drop(worker);
    let ready = lines
        .iter()
        .find(|l| l.contains("ready for"))
        .expect("a registration line");
    assert!(ready.contains("at 127.0.0.1 ready for 'echo\\nINFO forged'"), "{ready}");
    let deleted = lines.iter().find(|l| l.contains("deleted")).expect("a deletion line");
    assert!(deleted.contains("of 'echo\\nINFO forged' deleted"), "{deleted}");
    assert!(!lines.iter().any(|l| l.starts_with("INFO forged")), "{lines:?}");
}

#[test]
fn sighup_does_not_kill_the_broker() {
    let (mut child, endpoint) = spawn_broker(&[]);
    signal(&child, "HUP");
    wait_for_mmi(&endpoint, "echo", b"404");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "SIGHUP killed the broker"
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
}

/// Whether the process catches SIGHUP (bit 0 of `SigCgt` in /proc).
fn catches_sighup(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & 1 != 0)
}

#[test]
fn sighup_is_harmless_from_the_start_of_main() {
    // A supervisor may send SIGHUP before the broker has bound: it is
    // caught from the first thing main does, not from when the server runs.
    let (mut child, rx) = spawn_lines(Command::new(BIN).args(["--bind", "tcp://127.0.0.1:*"]));
    let deadline = std::time::Instant::now() + WAIT;
    while !catches_sighup(child.id()) {
        assert!(std::time::Instant::now() < deadline, "SIGHUP never caught");
        assert!(child.try_wait().expect("try_wait").is_none(), "exited early");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    signal(&child, "HUP");
    let endpoint = first_endpoint(&rx);
    assert_served(&Peer::connect(&endpoint));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_worker_misbehaving_in_a_loop_cannot_flood_the_log() {
    let (_daemon, rx, endpoint) = spawn_logging(&["--bind", "tcp://127.0.0.1:*"]);
    let peer = Peer::connect(&endpoint);
    for _ in 0..3000 {
        peer.send(&[b"", b"MDPW01", &[1], b"echo"]); // READY, READY again: a violation
    }
    wait_for_mmi(&endpoint, "nothing", b"404"); // the broker has read them all
    let mut lines = 0;
    while rx.recv_timeout(std::time::Duration::from_millis(300)).is_ok() {
        lines += 1;
    }
    assert!(lines < 300, "{lines} log lines for 3,000 misbehaving messages");
}

#[test]
fn the_soft_file_limit_is_raised_to_the_hard_one_and_logged() {
    let (_daemon, rx) = spawn_lines(
        Command::new("sh")
            .args(["-c", &format!("ulimit -Sn 256; exec {BIN} --bind tcp://127.0.0.1:*")])
            .env_remove("RUST_LOG"),
    );
    let line = std::iter::from_fn(|| rx.recv_timeout(WAIT).ok())
        .take(10)
        .find(|line| line.contains("open files limit: "))
        .expect("the limit is logged");
    let limit: u64 = line
        .split("open files limit: ")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(limit >= 256, "{line}");
}

/// The broker's CPU time so far (utime + stime from `/proc`), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let per_second: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100);
    ticks as f64 / per_second as f64
}

/// More connections than the broker has descriptors for: the listeners
/// pause instead of spinning on accept (our libzmq patch, accept_pause),
/// the IPC one does not abort the process, peers connected before are
/// served throughout, and queued connections are accepted once descriptors
/// come free.
#[test]
fn a_connection_storm_beyond_the_file_limit_neither_spins_nor_starves_anyone() {
    let dir = std::env::temp_dir().join(format!("mdbroker-daemon-storm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket_path = dir.join("mdp.sock");
    let ipc = format!("ipc://{}", socket_path.display());
    let script = format!("ulimit -n 64; exec {BIN} --bind tcp://127.0.0.1:* --bind {ipc} --heartbeat-interval 10000");
    let (mut daemon, rx) = spawn_lines(Command::new("sh").args(["-c", &script]).env_remove("RUST_LOG"));
    let tcp = std::iter::from_fn(|| rx.recv_timeout(WAIT).ok())
        .take(20)
        .find_map(|line| {
            let endpoint = line.split("listening on ").nth(1)?.trim();
            endpoint.starts_with("tcp://").then(|| endpoint.to_string())
        })
        .expect("the tcp endpoint is logged");
    let worker = v01_worker(&tcp, "echo");
    let client = Peer::connect(&tcp);
    assert_served(&client);

    let addr: std::net::SocketAddr = tcp.trim_start_matches("tcp://").parse().expect("address");
    let tcp_storm: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect();
    let ipc_storm: Vec<std::os::unix::net::UnixStream> = (0..50)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket_path).ok())
        .collect();
    assert!(tcp_storm.len() > 100 && !ipc_storm.is_empty(), "the storm connects");

    let (start, cpu) = (Instant::now(), cpu_seconds(daemon.id()));
    std::thread::sleep(Duration::from_secs(1));
    let share = (cpu_seconds(daemon.id()) - cpu) / start.elapsed().as_secs_f64();
    assert!(
        share < 0.3,
        "the broker used {:.0}% of a core during the storm",
        share * 100.0
    );
    assert!(daemon.try_wait().expect("try_wait").is_none(), "the broker is alive");

    client.send(&[b"", b"MDPC01", b"echo", b"during"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"served"]);
    assert_eq!(client.recv()[3], b"served", "a client connected before is served");

    drop(tcp_storm);
    drop(ipc_storm);
    let newcomer = Peer::connect(&tcp);
    assert_served(&newcomer);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_standard_error_nobody_reads_loses_log_lines_not_service() {
    // With -v the broker logs every command, about four lines per round
    // trip: 5,000 round trips write some 2 MB, thirty times what a pipe
    // holds. Standard error is not read until they are done.
    const ROUND_TRIPS: usize = 5000;
    let mut child = Command::new(BIN)
        .args(["--bind", "tcp://127.0.0.1:*", "-v"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mdbroker");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut daemon = Daemon(child);
    // Read only up to the endpoint; the reader comes back unread beyond it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        for _ in 0..100 {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(endpoint) = line.split("listening on ").nth(1) {
                let _ = tx.send((endpoint.trim().to_string(), stderr));
                return;
            }
        }
    });
    let (endpoint, stderr) = rx.recv_timeout(WAIT).expect("mdbroker never logged its endpoint");

    let deadline = Instant::now() + Duration::from_secs(60);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (endpoint, stop) = (endpoint.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut worker =
                majordomo::Worker::connect(&endpoint, "echo", majordomo::WorkerConfig::default()).expect("worker");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                if let Some(mut request) = worker.recv_timeout(Some(Duration::from_millis(50))).expect("recv") {
                    let body = std::mem::take(&mut request.body);
                    worker.reply(request, body).expect("reply");
                }
            }
        })
    };
    let mut config = majordomo::ClientConfig::default();
    config.timeout = WAIT;
    config.attempts = 1;
    let mut client = majordomo::Client::new(&endpoint, config);
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        assert!(
            Instant::now() < deadline,
            "only {i} round trips in {:?}",
            started.elapsed()
        );
        let body = format!("request {i}");
        let reply = client
            .request("echo", [body.as_str()])
            .unwrap_or_else(|error| panic!("round trip {i} of {ROUND_TRIPS}: {error}: the broker stopped serving"));
        assert_eq!(reply.len(), 1);
        assert_eq!(&reply[0][..], body.as_bytes());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().expect("worker thread");

    // Now the pipe is read: the writer catches up and says what it lost.
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let read_until = Instant::now() + WAIT;
    let lost_line = loop {
        let left = read_until.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("no 'log lines lost' line once standard error was read");
        if line.contains("log lines lost") {
            break line;
        }
    };
    let lost: u64 = lost_line
        .strip_prefix("mdbroker: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{lost_line}"));
    assert!(lost > 0, "{lost_line}");
    assert!(
        lost_line.ends_with("log lines lost while stderr was blocked"),
        "{lost_line}"
    );
    signal(&daemon, "TERM");
    let status = wait_exit(&mut daemon, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_last_log_lines_are_written_before_a_normal_exit() {
    // Lines go through the writer thread: the exit waits for it, so the
    // line logged as the broker stops is not lost.
    let (mut daemon, rx, endpoint) = spawn_logging(&["--bind", "tcp://127.0.0.1:*"]);
    wait_for_mmi(&endpoint, "echo", b"404"); // serving: its signal handlers are set
    signal(&daemon, "TERM");
    let status = wait_exit(&mut daemon, WAIT).expect("mdbroker did not exit");
    assert!(status.success(), "{status:?}");
    let lines: Vec<String> = std::iter::from_fn(|| rx.recv_timeout(WAIT).ok()).take(100).collect();
    assert!(lines.iter().any(|line| line.contains("stopped;")), "{lines:?}");
}

/// Key files for a secured daemon: the broker's pair in `DIR`, public
/// certificates in `DIR/clients`, peers' secret ones in `DIR/secrets`.
struct KeyDir(tempfile::TempDir);

impl KeyDir {
    fn new() -> KeyDir {
        let dir = KeyDir(tempfile::tempdir().expect("temporary directory"));
        for sub in ["clients", "secrets"] {
            std::fs::create_dir(dir.path(sub)).expect("mkdir");
        }
        Certificate::from(KeyPair::generate().expect("keys"))
            .save(dir.0.path(), "broker")
            .expect("save");
        dir
    }

    fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().expect("UTF-8 path").to_owned()
    }

    /// Makes `name`'s pair and lists its public key.
    fn add(&self, name: &str) {
        let (public, _) = Certificate::from(KeyPair::generate().expect("keys"))
            .save(self.path("secrets"), name)
            .expect("save");
        std::fs::copy(public, self.path(&format!("clients/{name}.key"))).expect("copy");
    }

    fn client(&self, name: &str) -> CurveClient {
        let secret = self.path(&format!("secrets/{name}.key_secret"));
        CurveClient::from_files(self.path("broker.key"), secret).expect("client keys")
    }
}

/// Waits for a logged line containing `needle`; fails after [`WAIT`].
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn security_settings_that_cannot_work_are_one_line_and_exit_non_zero() {
    let keys = KeyDir::new();
    let acl = keys.path("acl.toml");
    std::fs::write(&acl, "default = \"perhaps\"\n").expect("write");
    let (secret, public, clients) = (
        keys.path("broker.key_secret"),
        keys.path("broker.key"),
        keys.path("clients"),
    );
    let missing = keys.path("missing");
    for (args, says) in [
        (&["--curve-secret-key", &missing][..], "missing"),
        (&["--curve-secret-key", &public], "no curve secret-key"),
        (&["--curve-secret-key", &secret, "--curve-clients", &missing], "missing"),
        (
            &["--curve-clients", &clients],
            "--curve-clients needs --curve-secret-key",
        ),
        (
            &["--curve-secret-key", &secret, "--acl", &acl],
            "--acl needs --curve-clients",
        ),
        (
            &[
                "--curve-secret-key",
                &secret,
                "--curve-clients",
                &clients,
                "--acl",
                &acl,
            ],
            "acl.toml",
        ),
        (&["--allow-ip", "10.0.0.0/33"], "not an IP address or a CIDR block"),
    ] {
        let stderr = run_expecting_failure(&[&["--bind", "tcp://127.0.0.1:*"], args].concat());
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.iter().any(|l| l.contains(says)), "{args:?}: {stderr}");
        assert!(!stderr.contains("listening on"), "{args:?}: {stderr}");
        if !args.contains(&"--allow-ip") {
            assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        }
    }
}

#[test]
fn curve_without_a_client_list_warns_at_start() {
    let keys = KeyDir::new();
    let secret = keys.path("broker.key_secret");
    let (_daemon, rx) = spawn_lines(
        Command::new(BIN)
            .args(["--bind", "tcp://127.0.0.1:*", "--curve-secret-key", &secret])
            .env_remove("RUST_LOG"),
    );
    let line = wait_line(&rx, "without --curve-clients");
    assert!(
        line.contains("WARN") && line.contains("any CURVE key is admitted"),
        "{line}"
    );
}

#[test]
fn sighup_rereads_the_client_keys_and_the_rules() {
    let keys = KeyDir::new();
    for name in ["alice", "bob", "worker"] {
        keys.add(name);
    }
    let acl = keys.path("acl.toml");
    let rules = |client: &str| {
        format!("default = \"deny\"\n[[rule]]\nservice = \"echo\"\nworkers = [\"worker\"]\nclients = [\"{client}\"]\n")
    };
    std::fs::write(&acl, rules("alice")).expect("write");
    let secret = keys.path("broker.key_secret");
    let clients = keys.path("clients");
    let (mut daemon, rx, endpoint) = spawn_logging(&[
        "--bind",
        "tcp://127.0.0.1:*",
        "--curve-secret-key",
        &secret,
        "--curve-clients",
        &clients,
        "--acl",
        &acl,
    ]);
    let worker = Watched::connect(&endpoint, Some(&keys.client("worker")), None);
    worker.send(&[b"", b"MDPW01", &[1], b"echo"]);
    let alice = Watched::connect(&endpoint, Some(&keys.client("alice")), None);
    wait_served(&alice, "echo");

    // A new key is admitted and a removed one refused, on new connections.
    keys.add("carol");
    std::fs::remove_file(keys.path("clients/bob.key")).expect("remove");
    signal(&daemon, "HUP");
    wait_line(&rx, "SIGHUP: reloaded 3 client keys and 1 access rules");
    let carol = Watched::connect(&endpoint, Some(&keys.client("carol")), None);
    assert_eq!(mmi_service(&carol, "echo"), b"200");
    let bob = Watched::connect(&endpoint, Some(&keys.client("bob")), None);
    assert_eq!(bob.handshake(), zmq::SocketEvent::HANDSHAKE_FAILED_AUTH);

    // A rule change applies to the next message of a peer connected before.
    std::fs::write(&acl, rules("carol")).expect("write");
    signal(&daemon, "HUP");
    wait_line(&rx, "SIGHUP: reloaded");
    alice.send(&[b"", b"MDPC01", b"echo", b"from alice"]);
    assert_eq!(mmi_service(&alice, "echo"), b"200");
    wait_line(&rx, "may not request 'echo'");
    carol.send(&[b"", b"MDPC01", b"echo", b"from carol"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request.last().map(Vec::as_slice), Some(&b"from carol"[..]));

    // A file that does not parse is reported; the old rules stay.
    std::fs::write(&acl, "[[rule]]\nservice = \"a*b\"\n").expect("write");
    signal(&daemon, "HUP");
    let line = wait_line(&rx, "SIGHUP:");
    assert!(line.contains("acl.toml") && line.contains("stay in force"), "{line}");
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"done"]);
    assert_eq!(carol.recv().last().map(Vec::as_slice), Some(&b"done"[..]));
    carol.send(&[b"", b"MDPC01", b"echo", b"again"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request.last().map(Vec::as_slice), Some(&b"again"[..]));

    // A registered worker the new rules no longer allow is cut off at once:
    // DISCONNECT, and the service has no worker.
    std::fs::write(
        &acl,
        "default = \"deny\"\n[[rule]]\nservice = \"echo\"\nworkers = [\"alice\"]\nclients = [\"carol\"]\n",
    )
    .expect("write");
    signal(&daemon, "HUP");
    wait_line(&rx, "SIGHUP: reloaded");
    let disconnect = frames(&[b"", b"MDPW01", &[5]]);
    assert!(
        std::iter::from_fn(|| worker.recv_within(std::time::Duration::from_millis(200)))
            .take(25)
            .any(|msg| msg == disconnect),
        "the revoked worker gets DISCONNECT"
    );
    assert_eq!(mmi_service(&carol, "echo"), b"404");
    signal(&daemon, "TERM");
    assert!(wait_exit(&mut daemon, WAIT).expect("exit").success());
}
