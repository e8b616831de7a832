//! Inputs of the hostile-peers issue, with raw sockets against an
//! in-process broker.

use std::time::{Duration, Instant};

use crate::common::*;

/// A frame larger than `--max-message-size` gets its sender disconnected
/// by libzmq before the broker holds it; everyone else is served.
#[test]
fn a_frame_over_the_size_limit_is_refused_without_harming_anyone_else() {
    let mut config = patient_config();
    config.max_message_size = Some(64 * 1024);
    let broker = TestBroker::start_with(config);
    let worker = v01_worker(&broker.endpoint, "echo");
    let vandal = Peer::connect(&broker.endpoint);
    vandal.send(&[b"", b"MDPC01", b"echo", &vec![7u8; 256 * 1024]]);
    worker.expect_silence(Duration::from_millis(200));
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", &vec![1u8; 60 * 1024]]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[5].len(), 60 * 1024, "a frame within the limit passes");
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    assert_eq!(client.recv()[3], b"ok");
}

/// Sends `mmi.service` through `peer` and waits for its answer: everything
/// `peer` sent before has reached the broker (one connection is ordered).
fn sync(peer: &Peer) {
    assert_served(peer);
}

/// 7/MDP: the broker SHOULD serve clients on a fair basis. A client with
/// one request waiting behind another client's 10,000 gets the next
/// worker but one.
#[test]
fn a_client_behind_another_clients_ten_thousand_requests_is_served_next() {
    let mut config = patient_config();
    config.request_timeout = None;
    let broker = TestBroker::start_with(config);
    let greedy = Peer::connect(&broker.endpoint);
    for i in 0..10_000u32 {
        greedy.send(&[b"", b"MDPC01", b"fair", &i.to_be_bytes()]);
    }
    sync(&greedy);
    let polite = Peer::connect(&broker.endpoint);
    polite.send(&[b"", b"MDPC01", b"fair", b"polite"]);
    sync(&polite);
    let worker = Peer::connect(&broker.endpoint);
    worker.send(&[b"", b"MDPW01", &[1], b"fair"]);
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let request = worker.recv_skipping_heartbeats();
        bodies.push(request[5].clone());
        worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    }
    assert_eq!(bodies[0], 0u32.to_be_bytes(), "the greedy client's first request");
    assert_eq!(bodies[1], b"polite", "then the polite client's, not 9,999 more");
    assert_eq!(
        bodies[2],
        1u32.to_be_bytes(),
        "each client's own requests keep their order"
    );
    assert_eq!(polite.recv()[3], b"ok");
}

/// `--max-queued`: what arrives at a full queue is dropped; the rest is
/// served.
#[test]
fn requests_beyond_max_queued_are_dropped() {
    let mut config = patient_config();
    config.max_queued = Some(100);
    let broker = TestBroker::start_with(config);
    let client = Peer::connect(&broker.endpoint);
    for i in 0..150u32 {
        client.send(&[b"", b"MDPC01", b"bounded", &i.to_be_bytes()]);
    }
    sync(&client);
    let worker = Peer::connect(&broker.endpoint);
    worker.send(&[b"", b"MDPW01", &[1], b"bounded"]);
    let mut served = 0u32;
    while let Some(request) = worker.recv_within(Duration::from_millis(300)) {
        if is_heartbeat(&request) {
            continue;
        }
        assert_eq!(request[5], served.to_be_bytes(), "the first 100, in order");
        served += 1;
        worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    }
    assert_eq!(served, 100);
}

/// A worker that heartbeats but never answers holds a request for the busy
/// timeout at most: then it gets DISCONNECT and the request goes to
/// another worker.
#[test]
fn a_worker_that_heartbeats_but_never_answers_loses_its_request_at_the_busy_timeout() {
    let mut config = test_config();
    config.busy_timeout = Duration::from_millis(500);
    let broker = TestBroker::start_with(config);
    let hostage = v01_worker(&broker.endpoint, "held");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"held", b"job"]);
    let taken = hostage.recv_skipping_heartbeats();
    assert_eq!(taken[5], b"job");
    let since = Instant::now();
    let honest = v01_worker(&broker.endpoint, "held");
    let mut disconnected = false;
    let request = loop {
        assert!(since.elapsed() < WAIT, "the request stayed with the hostage");
        hostage.send(&[b"", b"MDPW01", &[4]]);
        honest.send(&[b"", b"MDPW01", &[4]]);
        if let Some(msg) = hostage.recv_within(INTERVAL / 2) {
            disconnected |= msg == frames(&[b"", b"MDPW01", &[5]]);
        }
        if let Some(msg) = honest.recv_within(INTERVAL / 2)
            && !is_heartbeat(&msg)
        {
            break msg;
        }
    };
    let waited = since.elapsed();
    assert_eq!(request[5], b"job");
    assert!(
        waited >= Duration::from_millis(400),
        "not before the busy timeout: {waited:?}"
    );
    honest.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"done"]);
    assert_eq!(client.recv()[3], b"done");
    let deadline = Instant::now() + WAIT;
    while !disconnected && Instant::now() < deadline {
        disconnected = hostage
            .recv_within(INTERVAL)
            .is_some_and(|msg| msg == frames(&[b"", b"MDPW01", &[5]]));
    }
    assert!(disconnected, "the hostage got DISCONNECT");
}

/// A client that pipelines requests and does not read its replies gets no
/// more of them handed out once its reply pipe is full: the workers serve
/// the other clients, and its requests flow again when it reads.
#[test]
fn requests_of_a_client_that_does_not_read_wait_while_others_are_served() {
    const SLOW: u32 = 3_000;
    let broker = TestBroker::start_with(patient_config());
    let slow = Peer::connect(&broker.endpoint);
    slow.socket.set_rcvhwm(1).expect("rcvhwm");
    for i in 0..SLOW {
        slow.send(&[b"", b"MDPC01", b"big", &i.to_be_bytes()]);
    }
    let served_slow = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = {
        let (endpoint, served_slow, stop) = (broker.endpoint.clone(), served_slow.clone(), stop.clone());
        std::thread::spawn(move || big_reply_workers(&endpoint, &served_slow, &stop))
    };
    // The slow client's replies fill its pipe; then it gets no more.
    let stalled = wait_until_stable(&served_slow);
    assert!(
        stalled < SLOW,
        "all {SLOW} were handed out to a client that does not read"
    );
    let fast = Peer::connect(&broker.endpoint);
    for _ in 0..20 {
        fast.send(&[b"", b"MDPC01", b"big", b"fast"]);
        assert_eq!(fast.recv()[3].len(), 64 * 1024);
    }
    assert_eq!(
        served_slow.load(std::sync::atomic::Ordering::SeqCst),
        stalled,
        "the workers served the fast client, not the one that does not read"
    );
    // It reads: every reply comes (two workers may answer out of order).
    let mut answered = vec![false; SLOW as usize];
    for _ in 0..SLOW {
        let reply = slow.recv();
        let number = u32::from_be_bytes(reply[4][..].try_into().expect("request number"));
        answered[number as usize] = true;
    }
    assert!(answered.iter().all(|&a| a));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    workers.join().expect("workers");
}

/// Two raw workers of `big` that answer each request with 64 KiB, its
/// body (the request number) in a frame after it, counting the requests
/// that are not the fast client's, until `stop`.
fn big_reply_workers(endpoint: &str, served_slow: &std::sync::atomic::AtomicU32, stop: &std::sync::atomic::AtomicBool) {
    let workers = [v01_worker(endpoint, "big"), v01_worker(endpoint, "big")];
    let reply = vec![0u8; 64 * 1024];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for worker in &workers {
            let Some(request) = worker.recv_within(Duration::from_millis(5)) else {
                continue;
            };
            if is_heartbeat(&request) {
                continue;
            }
            if request[5] != b"fast" {
                served_slow.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", &reply, &request[5]]);
        }
    }
}

/// Waits until `counter` has not moved for 300 ms; its value then.
fn wait_until_stable(counter: &std::sync::atomic::AtomicU32) -> u32 {
    let deadline = Instant::now() + WAIT;
    let mut last = counter.load(std::sync::atomic::Ordering::SeqCst);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = counter.load(std::sync::atomic::Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(300) && now > 0 {
            return now;
        }
    }
    panic!("the count never settled (last {last})");
}

/// A client that fills a service's queue cannot keep others out: a request
/// that arrives at a full queue takes the place of the flooder's newest.
#[test]
fn a_client_that_fills_the_queue_does_not_keep_others_out() {
    let mut config = patient_config();
    config.max_queued = Some(100);
    let broker = TestBroker::start_with(config);
    let flooder = Peer::connect(&broker.endpoint);
    for i in 0..500u32 {
        flooder.send(&[b"", b"MDPC01", b"full", &i.to_be_bytes()]);
    }
    sync(&flooder);
    let polite = Peer::connect(&broker.endpoint);
    polite.send(&[b"", b"MDPC01", b"full", b"polite"]);
    sync(&polite);
    let worker = Peer::connect(&broker.endpoint);
    worker.send(&[b"", b"MDPW01", &[1], b"full"]);
    let mut bodies = Vec::new();
    while let Some(request) = worker.recv_within(Duration::from_millis(300)) {
        if is_heartbeat(&request) {
            continue;
        }
        bodies.push(request[5].clone());
        worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    }
    assert_eq!(bodies.len(), 100, "the queue held 100");
    assert_eq!(bodies[1], b"polite", "the polite client's turn came second");
    assert_eq!(polite.recv()[3], b"ok");
}

/// A connection that never completes ZeroMQ's handshake is closed after
/// the handshake timeout: idle connections cannot hold the broker's file
/// descriptors for long.
#[test]
fn a_connection_that_never_speaks_is_closed_after_the_handshake_timeout() {
    use std::io::Read;
    let mut config = patient_config();
    config.handshake_timeout = Duration::from_millis(300);
    let broker = TestBroker::start_with(config);
    let address = broker.endpoint.trim_start_matches("tcp://").to_owned();
    let mut silent = std::net::TcpStream::connect(&address).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("read timeout");
    let since = Instant::now();
    let mut buf = [0u8; 256];
    // The broker's own greeting may come first; then the end of stream.
    loop {
        match silent.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the connection stayed open: {error}"),
        }
    }
    let waited = since.elapsed();
    assert!(waited >= Duration::from_millis(250), "closed after {waited:?}");
    assert!(waited < WAIT, "closed after {waited:?}");
}
