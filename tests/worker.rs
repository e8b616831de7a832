//! Tests of the crate's `Worker` on its own: what it puts on the wire in
//! each version and framing, that its registration outlives a program that
//! works for longer than the broker's expiry, how it reacts to a broker
//! that sends DISCONNECT while it works, and that dropping it says goodbye
//! without hanging. A fake broker (a raw ROUTER) shows the exact frames;
//! the real broker shows the behaviour a user sees.

use std::error::Error;
use std::time::{Duration, Instant};

use crate::common::*;
use majordomo::protocol::Framing;
use majordomo::{Client, ClientConfig, Version, Worker, WorkerConfig, WorkerError};

/// A raw ROUTER standing in for a broker, so tests see the worker's frames
/// exactly. Every receive has a deadline.
struct FakeBroker {
    socket: zmq::Socket,
    endpoint: String,
}

impl FakeBroker {
    fn bind() -> FakeBroker {
        let socket = context().socket(zmq::ROUTER).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.set_sndtimeo(1000).expect("sndtimeo");
        socket.bind("tcp://127.0.0.1:*").expect("bind");
        let endpoint = socket.get_last_endpoint().expect("endpoint").expect("utf-8");
        FakeBroker { socket, endpoint }
    }

    /// The next message (routing id first), or None after `within`.
    fn recv_within(&self, within: Duration) -> Option<Vec<Vec<u8>>> {
        poll_recv(&self.socket, within)
    }

    /// The next message; fails the test after [`WAIT`].
    fn recv(&self) -> Vec<Vec<u8>> {
        self.recv_within(WAIT)
            .expect("no message from the worker within the deadline")
    }

    /// The next message that is not a heartbeat, split into routing id and
    /// the rest; fails the test after [`WAIT`].
    fn recv_command(&self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut msg = self
                .recv_within(deadline.saturating_duration_since(Instant::now()))
                .expect("no command from the worker within the deadline");
            let rest = msg.split_off(1);
            if !is_heartbeat(&rest) {
                return (msg.remove(0), rest);
            }
        }
    }

    fn send(&self, id: &[u8], parts: &[&[u8]]) {
        self.socket.send(id, zmq::SNDMORE).expect("send id");
        self.socket.send_multipart(parts.iter(), 0).expect("send");
    }
}

#[test]
fn each_version_and_framing_puts_the_documented_frames_on_the_wire() {
    // 7/MDP: MDP/0.1 always has the leading empty frame, whatever `framing`
    // says; 18/MDP drops it for MDP/0.2 unless the worker asks for it (as
    // majortomo's broker requires).
    let cases: [(Version, Framing, &[&[u8]]); 4] = [
        (Version::V01, Framing::Bare, &[b"", b"MDPW01"]),
        (Version::V01, Framing::Delimited, &[b"", b"MDPW01"]),
        (Version::V02, Framing::Bare, &[b"MDPW02"]),
        (Version::V02, Framing::Delimited, &[b"", b"MDPW02"]),
    ];
    for (version, framing, header) in cases {
        let broker = FakeBroker::bind();
        let mut config = worker_config(version);
        config.framing = framing;
        let mut worker = Worker::connect(&broker.endpoint, "wire", config).expect("worker");
        let (id, ready) = broker.recv_command();
        let mut expected: Vec<&[u8]> = header.to_vec();
        expected.extend([&[1u8][..], b"wire"]);
        assert_eq!(ready, frames(&expected), "READY in {version} {framing:?}");

        let mut sent: Vec<&[u8]> = header.to_vec();
        sent.extend([&[2u8][..], b"client-address", b"", b"ping"]);
        broker.send(&id, &sent);
        let mut got = worker.recv_timeout(Some(WAIT)).expect("recv").expect("a request");
        assert_eq!(got.body.len(), 1);
        let body = std::mem::take(&mut got.body);
        worker.reply(got, body).expect("reply");
        let (_, reply) = broker.recv_command();
        let mut expected: Vec<&[u8]> = header.to_vec();
        let final_byte: &[u8] = if version == Version::V01 { &[3] } else { &[4] };
        expected.extend([final_byte, b"client-address", b"", b"ping"]);
        assert_eq!(reply, frames(&expected), "FINAL in {version} {framing:?}");
    }
}

#[test]
fn a_program_that_works_longer_than_the_expiry_stays_registered_and_its_reply_is_delivered() {
    // The program works for ten intervals, over three times liveness x
    // interval, without calling the worker; the broker holds a worker that
    // heartbeats while busy to liveness x interval (and to the busy timeout,
    // here well past the work). Its registration must hold the whole time
    // (mmi.service answers 200) and its reply, sent on the same connection,
    // must reach the client: a reconnection would have dropped it.
    let mut config = test_config();
    config.busy_timeout = INTERVAL * 40;
    let broker = TestBroker::start_with(config);
    let mut worker = Worker::connect(&broker.endpoint, "long", worker_config(Version::V01)).expect("worker");
    wait_for_service(&broker.endpoint, "long");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"long", b"work"]);
    let request = worker.recv().expect("request");

    let expiry = worker_config(Version::V01).expiry();
    let mut mmi = Client::new(&broker.endpoint, ClientConfig::default());
    let busy_until = Instant::now() + INTERVAL * 10;
    assert!(INTERVAL * 10 > expiry * 3);
    while Instant::now() < busy_until {
        std::thread::sleep(INTERVAL);
        assert!(mmi.service_exists("long").expect("mmi"), "the busy worker was dropped");
    }
    worker.reply(request, ["done"]).expect("reply");
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"long", b"done"]));
}

#[test]
fn heartbeats_keep_their_interval_while_the_program_works() {
    let broker = FakeBroker::bind();
    let mut worker = Worker::connect(&broker.endpoint, "steady", worker_config(Version::V02)).expect("worker");
    let (id, _ready) = broker.recv_command();
    broker.send(&id, &[b"MDPW02", &[2], b"client", b"", b"job"]);
    let request = worker.recv().expect("request");
    // The program is busy from here on. The fake broker answers each
    // HEARTBEAT, so the worker has no reason to reconnect; each must come
    // about one interval after the last (with slack for a loaded machine,
    // but less than the broker's expiry).
    let mut last = Instant::now();
    for _ in 0..5 {
        let msg = broker.recv();
        assert_eq!(msg[1..], frames(&[b"MDPW02", &[5]])[..], "expected HEARTBEAT");
        let gap = last.elapsed();
        assert!(gap < INTERVAL * 5 / 2, "heartbeat after {gap:?}, interval {INTERVAL:?}");
        last = Instant::now();
        broker.send(&id, &[b"MDPW02", &[5]]);
    }
    drop(request);
}

#[test]
fn a_broker_that_does_not_heartbeat_busy_workers_is_not_taken_for_dead_while_the_program_works() {
    // The zguide's and majortomo's brokers heartbeat idle workers only.
    let broker = FakeBroker::bind();
    let mut worker = Worker::connect(&broker.endpoint, "quiet", worker_config(Version::V02)).expect("worker");
    let (id, _ready) = broker.recv_command();
    broker.send(&id, &[b"MDPW02", &[2], b"client", b"", b"job"]);
    let request = worker.recv().expect("request");
    let expiry = worker_config(Version::V02).expiry();
    std::thread::sleep(expiry * 2); // silence from the broker throughout
    worker.reply(request, ["done"]).expect("reply");
    let (reply_id, reply) = broker.recv_command();
    assert_eq!(reply_id, id, "the reply comes on the original connection");
    assert_eq!(reply, frames(&[b"MDPW02", &[4], b"client", b"", b"done"]));
    // Idle again: now the broker's silence counts, from the reply on.
    let (new_id, ready) = broker.recv_command();
    assert_eq!(ready, frames(&[b"MDPW02", &[1], b"quiet"]));
    assert_ne!(new_id, id);
}

#[test]
fn disconnect_while_the_program_works_makes_it_register_again_and_drops_the_stale_reply() {
    let broker = FakeBroker::bind();
    let mut worker = Worker::connect(&broker.endpoint, "fickle", worker_config(Version::V01)).expect("worker");
    let (id, _ready) = broker.recv_command();
    broker.send(&id, &[b"", b"MDPW01", &[2], b"client", b"", b"job"]);
    let request = worker.recv().expect("request");
    broker.send(&id, &[b"", b"MDPW01", &[5]]);
    // Within about an interval the worker, though busy, registers again.
    let (new_id, ready) = broker.recv_command();
    assert_eq!(ready, frames(&[b"", b"MDPW01", &[1], b"fickle"]));
    assert_ne!(new_id, id, "READY comes on a new socket");
    // The broker that sent the request has forgotten it: no reply goes out
    // (on any connection; the silent fake broker may see more READYs).
    worker.reply(request, ["too late"]).expect("reply");
    let deadline = Instant::now() + INTERVAL * 4;
    while let Some(msg) = broker.recv_within(deadline.saturating_duration_since(Instant::now())) {
        assert!(!msg.contains(&b"too late".to_vec()), "stale reply sent: {msg:?}");
    }
}

#[test]
fn dropping_a_worker_sends_disconnect() {
    // Patient broker: the worker is gone at once because it said so, not
    // because its heartbeats stopped.
    let broker = TestBroker::start_with(patient_config());
    let worker = Worker::connect(&broker.endpoint, "brief", worker_config(Version::V02)).expect("worker");
    wait_for_service(&broker.endpoint, "brief");
    let dropped = Instant::now();
    drop(worker);
    wait_for_mmi(&broker.endpoint, "brief", b"404");
    assert!(
        dropped.elapsed() < Duration::from_secs(1),
        "took {:?}",
        dropped.elapsed()
    );
}

#[test]
fn dropping_never_waits_for_a_heartbeat_or_a_missing_broker() {
    // An hour-long interval: the background thread sleeps for an hour
    // unless the drop wakes it.
    let mut config = worker_config(Version::V02);
    config.heartbeat_interval = Duration::from_secs(3600);
    let broker = FakeBroker::bind();
    let worker = Worker::connect(&broker.endpoint, "sleepy", config.clone()).expect("worker");
    broker.recv_command();
    let dropped = Instant::now();
    drop(worker);
    assert!(
        dropped.elapsed() < Duration::from_millis(500),
        "took {:?}",
        dropped.elapsed()
    );
    let (_, goodbye) = broker.recv_command();
    assert_eq!(goodbye, frames(&[b"MDPW02", &[6]]));

    // Nobody listening at all: the DISCONNECT cannot be delivered.
    let endpoint = broker.endpoint.clone();
    drop(broker);
    let worker = Worker::connect(&endpoint, "sleepy", config).expect("worker");
    let dropped = Instant::now();
    drop(worker);
    assert!(
        dropped.elapsed() < Duration::from_millis(500),
        "took {:?}",
        dropped.elapsed()
    );
}

#[test]
fn partial_needs_mdp_0_2() {
    let broker = TestBroker::start();
    let mut worker = Worker::connect(&broker.endpoint, "old", worker_config(Version::V01)).expect("worker");
    wait_for_service(&broker.endpoint, "old");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"old", b"x"]);
    let request = worker.recv().expect("request");
    let result = worker.partial(&request, ["nope"]);
    assert!(matches!(result, Err(WorkerError::PartialNeedsV02)), "{result:?}");
    worker.reply(request, ["ok"]).expect("reply");
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"old", b"ok"]));
}

#[test]
fn errors_say_what_happened_and_chain_their_cause() {
    let error = Worker::connect("garbage", "echo", WorkerConfig::default()).expect_err("malformed endpoint");
    assert!(matches!(error, WorkerError::Socket(zmq::Error::EINVAL)), "{error:?}");
    assert_eq!(error.to_string(), "socket call failed");
    let cause = error.source().expect("the socket error as source");
    assert_eq!(cause.to_string(), zmq::Error::EINVAL.to_string());
    assert!(WorkerError::PartialNeedsV02.source().is_none());
}

#[test]
fn the_first_request_on_each_connection_is_followed_at_once_by_two_heartbeats_and_no_more() {
    // The broker learns that a worker heartbeats while busy only from a
    // HEARTBEAT sent while it holds a request. A long interval, so that no
    // heartbeat falls due on its own during the exchanges.
    let mut config = worker_config(Version::V01);
    config.heartbeat_interval = Duration::from_secs(5);
    let broker = FakeBroker::bind();
    let mut worker = Worker::connect(&broker.endpoint, "eager", config).expect("worker");
    let heartbeat = frames(&[b"", b"MDPW01", &[4]]);
    for round in 0..2 {
        let (id, ready) = broker.recv_command();
        assert_eq!(ready, frames(&[b"", b"MDPW01", &[1], b"eager"]), "round {round}");
        for job in [&b"first"[..], b"second", b"third"] {
            broker.send(&id, &[b"", b"MDPW01", &[2], b"client", b"", job]);
            let mut request = worker.recv_timeout(Some(WAIT)).expect("recv").expect("a request");
            let body = std::mem::take(&mut request.body);
            worker.reply(request, body).expect("reply");
            let mut expected = Vec::new();
            if job == b"first" {
                // Two, sent before recv returned: the broker's sign.
                expected.push(heartbeat.clone());
                expected.push(heartbeat.clone());
            }
            expected.push(frames(&[b"", b"MDPW01", &[3], b"client", b"", job]));
            for want in expected {
                let got = broker.recv();
                assert_eq!(got[0], id, "round {round}");
                assert_eq!(got[1..], want[..], "round {round}, request {job:?}");
            }
        }
        // No second HEARTBEAT while commands keep flowing, nor soon after.
        if let Some(msg) = broker.recv_within(INTERVAL * 4) {
            panic!("round {round}: unexpected {msg:?}");
        }
        // A new connection: the broker there has not seen it yet.
        broker.send(&id, &[b"", b"MDPW01", &[5]]);
    }
}

/// A child process, killed (even when stopped) and reaped on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

#[test]
fn a_frozen_worker_that_answered_back_to_back_has_its_request_redelivered_within_liveness() {
    // The field report: the example worker, heartbeat 100 ms, answers
    // requests back to back, then its process is stopped (SIGSTOP). The
    // broker's busy timeout stays at its default (300 s), so only the
    // normal liveness can explain a quick redelivery.
    let Some(mdworker) = built_example("mdworker") else {
        eprintln!("skipped: the mdworker example is not built (cargo test builds it)");
        return;
    };
    let interval = Duration::from_millis(100);
    let mut config = majordomo::broker::Config::default();
    config.heartbeat_interval = interval;
    config.heartbeat_liveness = 3;
    assert!(config.busy_timeout >= Duration::from_secs(60));
    let bound = config.expiry() + config.timer_resolution() + Duration::from_secs(1);
    let broker = TestBroker::start_with(config);
    let child = std::process::Command::new(&mdworker)
        .args([
            "--broker",
            &broker.endpoint,
            "--service",
            "frozen",
            "--heartbeat-interval",
            "100",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn mdworker");
    let child = ChildGuard(child);
    wait_for_service(&broker.endpoint, "frozen");
    let mut client_config = ClientConfig::default();
    client_config.timeout = WAIT;
    client_config.attempts = 1;
    let mut client = Client::new(&broker.endpoint, client_config);
    for i in 0..20 {
        let body = format!("quick {i}");
        let reply = client.request("frozen", [body.as_str()]).expect("a quick reply");
        assert_eq!(&reply[0][..], body.as_bytes());
    }

    // Frozen while idle, then handed a request it never reads: to the
    // broker, a worker that hangs mid-request.
    signal(&child.0, "STOP");
    let held = Peer::connect(&broker.endpoint);
    let sent = Instant::now();
    held.send(&[b"", b"MDPC01", b"frozen", b"held"]);
    // The broker reads one peer's messages in order: once this is
    // answered, the request has gone to the only worker, the frozen one
    // (unless the machine stalled for longer than the expiry since the
    // worker's last heartbeat: then it waits in the queue, and the test
    // proves nothing but does not fail).
    held.send(&[b"", b"MDPC01", b"mmi.service", b"frozen"]);
    assert_eq!(held.recv()[..3], frames(&[b"", b"MDPC01", b"mmi.service"])[..]);

    let mut second = Worker::connect(&broker.endpoint, "frozen", {
        let mut config = worker_config(Version::V01);
        config.heartbeat_interval = interval;
        config
    })
    .expect("second worker");
    let mut request = second
        .recv_timeout(Some(WAIT))
        .expect("recv")
        .expect("the held request is redelivered");
    let waited = sent.elapsed();
    assert_eq!(request.body.len(), 1);
    assert_eq!(&request.body[0][..], b"held");
    assert!(waited < bound, "redelivered after {waited:?}; bound {bound:?}");
    let body = std::mem::take(&mut request.body);
    second.reply(request, body).expect("reply");
    assert_eq!(held.recv(), frames(&[b"", b"MDPC01", b"frozen", b"held"]));
}
