//! The inputs of the first-contact issue (misconfigured peers, logs,
//! examples), through the libraries and a real broker.

use crate::common::*;
use majordomo::{Client, ClientConfig, Version, Worker, WorkerConfig};

/// Section 5: an MDP/0.1 client of an MDP/0.2 worker that streams gets
/// the whole reply as one REPLY: every PARTIAL's frames, then the FINAL's.
#[test]
fn a_v01_client_of_a_streaming_worker_gets_the_whole_stream_as_one_reply() {
    let broker = TestBroker::start_with(patient_config());
    let mut config = WorkerConfig::default();
    config.version = Version::V02;
    config.heartbeat_interval = INTERVAL;
    let mut worker = Worker::connect(&broker.endpoint, "stream", config).expect("worker");
    let serve = std::thread::spawn(move || {
        let request = worker.recv().expect("a request");
        for n in 0..3 {
            worker.partial(&request, [format!("part {n}")]).expect("partial");
        }
        worker.reply(request, ["end"]).expect("reply");
    });
    wait_for_service(&broker.endpoint, "stream");
    let mut client = Client::new(&broker.endpoint, ClientConfig::default()); // MDP/0.1
    let reply = client.request("stream", ["go"]).expect("one reply");
    let texts: Vec<String> = reply.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    assert_eq!(texts, ["part 0", "part 1", "part 2", "end"]);
    serve.join().expect("worker thread");
}

/// Section 1: the library refuses, before connecting, every service name
/// the broker would refuse.
#[test]
fn the_worker_library_refuses_names_the_broker_would_refuse() {
    for name in ["", "mmi.foo", "mmi.service"] {
        let result = Worker::connect("tcp://127.0.0.1:1", name, WorkerConfig::default());
        match result {
            Err(majordomo::WorkerError::ReservedService(got)) => assert_eq!(got, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let error = Worker::connect("tcp://127.0.0.1:1", "mmi.foo", WorkerConfig::default()).expect_err("refused");
    assert!(error.to_string().contains("reserves"), "{error}");
}

/// Section 1: a worker the broker refuses (DISCONNECT to every READY) comes
/// back only after its growing, jittered back-off, never in a tight loop,
/// and says in its error that it is refused.
#[test]
fn a_refused_worker_backs_off_and_says_why() {
    use std::time::{Duration, Instant};
    let context = zmq::Context::new();
    let broker = context.socket(zmq::ROUTER).expect("router");
    broker.set_linger(0).expect("linger");
    broker.bind("tcp://127.0.0.1:*").expect("bind");
    let endpoint = broker.get_last_endpoint().expect("endpoint").expect("utf-8");
    let mut config = WorkerConfig::default();
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_secs(1);
    let mut worker = Worker::connect(&endpoint, "refused", config).expect("worker");
    let recv = std::thread::spawn(move || worker.recv_timeout(Some(Duration::from_secs(5))));
    let started = Instant::now();
    let mut readies = Vec::new();
    while started.elapsed() < WAIT && readies.len() < 5 {
        if broker.poll(zmq::POLLIN, 100).expect("poll") == 0 {
            continue;
        }
        let msg = broker.recv_multipart(0).expect("recv");
        if msg.get(3).is_some_and(|c| c == &[1]) {
            readies.push(started.elapsed());
            broker
                .send_multipart([&msg[0][..], b"", b"MDPW01", &[5]], 0)
                .expect("DISCONNECT");
        }
    }
    let result = recv.join().expect("worker thread");
    assert!(
        matches!(result, Err(majordomo::WorkerError::Refused { times: 5 })),
        "{result:?}"
    );
    // Back-off: 20, 40, 80, 160 ms (each x 0.5-1.5) between the first five.
    assert!(readies.len() >= 5, "{readies:?}");
    assert!(
        readies[4] - readies[0] >= Duration::from_millis(150),
        "a tight loop: {readies:?}"
    );
}

/// Section 4: the example worker stops cleanly on SIGTERM and SIGINT: it
/// sends DISCONNECT and exits 0.
#[test]
fn the_example_worker_stops_cleanly_on_sigterm_and_sigint() {
    use std::time::{Duration, Instant};
    let Some(mdworker) = built_example("mdworker") else {
        eprintln!("skipped: the mdworker example is not built (cargo test builds it)");
        return;
    };
    for signal in ["TERM", "INT"] {
        let context = zmq::Context::new();
        let broker = context.socket(zmq::ROUTER).expect("router");
        broker.set_linger(0).expect("linger");
        broker.bind("tcp://127.0.0.1:*").expect("bind");
        let endpoint = broker.get_last_endpoint().expect("endpoint").expect("utf-8");
        let mut child = std::process::Command::new(&mdworker)
            .args(["--broker", &endpoint])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mdworker");
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        let mut signalled = false;
        while Instant::now() < deadline && !seen.iter().any(|c: &Vec<u8>| c == &[5]) {
            if broker.poll(zmq::POLLIN, 50).expect("poll") == 0 {
                continue;
            }
            let msg = broker.recv_multipart(0).expect("recv");
            let command = msg.get(3).cloned().unwrap_or_default();
            if command == [1] && !signalled {
                std::process::Command::new("kill")
                    .args([&format!("-{signal}"), &child.id().to_string()])
                    .status()
                    .expect("kill");
                signalled = true;
            }
            seen.push(command);
        }
        let status = (0..100)
            .find_map(|_| {
                let status = child.try_wait().expect("try_wait");
                if status.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                status
            })
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("mdworker did not exit on SIG{signal}")
            });
        assert!(
            seen.iter().any(|c| c == &[5]),
            "SIG{signal}: no DISCONNECT, saw {seen:?}"
        );
        assert!(status.success(), "SIG{signal}: {status:?}");
    }
}

/// Section 4: an example's error is one readable line naming what failed,
/// with exit status 1.
#[test]
fn an_example_error_is_one_line_naming_what_failed() {
    let Some(mdclient) = built_example("mdclient") else {
        eprintln!("skipped: the mdclient example is not built (cargo test builds it)");
        return;
    };
    let output = std::process::Command::new(&mdclient)
        .args([
            "--broker",
            "tcp://127.0.0.1:1",
            "--count",
            "1",
            "--timeout",
            "100",
            "--retries",
            "1",
        ])
        .output()
        .expect("run mdclient");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("mdclient: request 0 to 'echo' at tcp://127.0.0.1:1") && stderr.contains("cannot be reached"),
        "{stderr}"
    );
}
