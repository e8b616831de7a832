//! Frame-level tests of a real broker over loopback TCP, with raw DEALER
//! (and REQ) sockets. Each test names the rule it proves.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn v01_echo_through_dealer_and_req_clients() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"hello", b"two"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(&request[..3], &frames(&[b"", b"MDPW01", &[2]])[..]);
    assert_eq!(request[4], b"");
    assert_eq!(&request[5..], &frames(&[b"hello", b"two"])[..]);
    let client_address = request[3].clone();
    worker.send(&[b"", b"MDPW01", &[3], &client_address, b"", b"world"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", b"world"]));

    // A REQ socket, as 7/MDP recommends for synchronous clients.
    let req = context().socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    req.connect(&broker.endpoint).unwrap();
    req.send_multipart([&b"MDPC01"[..], b"echo", b"via req"], 0).unwrap();
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"req reply"]);
    assert_eq!(
        req.recv_multipart(0).unwrap(),
        frames(&[b"MDPC01", b"echo", b"req reply"])
    );
}

#[test]
fn v02_partials_and_final_in_both_framings() {
    let broker = TestBroker::start();
    let worker = v02_worker(&broker.endpoint, "stream");
    // 18/MDP as written: no leading empty frame.
    let bare = Peer::connect(&broker.endpoint);
    bare.send(&[b"MDPC02", &[1], b"stream", b"go"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[..2], frames(&[b"MDPW02", &[2]])[..]);
    assert_eq!(request[3..], frames(&[b"", b"go"])[..]);
    let client = request[2].clone();
    worker.send(&[b"MDPW02", &[3], &client, b"", b"p1"]);
    worker.send(&[b"MDPW02", &[4], &client, b"", b"end"]);
    assert_eq!(bare.recv(), frames(&[b"MDPC02", &[2], b"stream", b"p1"]));
    assert_eq!(bare.recv(), frames(&[b"MDPC02", &[3], b"stream", b"end"]));

    // majortomo's style: a leading empty frame; answered the same way.
    let delimited = Peer::connect(&broker.endpoint);
    delimited.send(&[b"", b"MDPC02", &[1], b"stream", b"go"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"MDPW02", &[4], &request[2], b"", b"end"]);
    assert_eq!(delimited.recv(), frames(&[b"", b"MDPC02", &[3], b"stream", b"end"]));
}

#[test]
fn delimited_v02_worker_is_answered_with_a_leading_empty_frame() {
    let broker = TestBroker::start();
    let worker = Peer::connect(&broker.endpoint);
    worker.send(&[b"", b"MDPW02", &[1], b"echo"]);
    wait_for_service(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"MDPC02", &[1], b"echo", b"x"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[..3], frames(&[b"", b"MDPW02", &[2]])[..]);
    assert_eq!(request[4..], frames(&[b"", b"x"])[..]);
}

#[test]
fn cross_version_v02_client_gets_v01_reply_as_final() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"MDPC02", &[1], b"echo", b"q"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[2], vec![2]);
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"a"]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"echo", b"a"]));
}

#[test]
fn cross_version_v01_client_gets_exactly_one_reply_from_a_v02_worker() {
    let broker = TestBroker::start();
    let worker = v02_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"q"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"MDPW02", &[3], &request[2], b"", b"partial 1"]);
    worker.send(&[b"MDPW02", &[3], &request[2], b"", b"partial 2"]);
    worker.send(&[b"MDPW02", &[4], &request[2], b"", b"final"]);
    assert_eq!(
        client.recv(),
        frames(&[b"", b"MDPC01", b"echo", b"partial 1", b"partial 2", b"final"])
    );
    assert_eq!(
        client.recv_within(Duration::from_millis(200)),
        None,
        "exactly one reply"
    );
}

#[test]
fn least_recently_used_worker_gets_the_request() {
    let broker = TestBroker::start();
    let w1 = v01_worker(&broker.endpoint, "lru");
    let w2 = v01_worker(&broker.endpoint, "lru");
    let client = Peer::connect(&broker.endpoint);
    for round in 0..3 {
        for (name, worker) in [("w1", &w1), ("w2", &w2)] {
            client.send(&[b"", b"MDPC01", b"lru", name.as_bytes()]);
            let request = worker.recv_skipping_heartbeats();
            assert_eq!(request[5], name.as_bytes(), "round {round}");
            worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
            client.recv();
        }
    }
}

#[test]
fn broker_sends_heartbeats_to_workers_of_each_version() {
    let broker = TestBroker::start();
    let w1 = v01_worker(&broker.endpoint, "a");
    let w2 = v02_worker(&broker.endpoint, "b");
    assert_eq!(w1.recv_within(INTERVAL * 4), Some(frames(&[b"", b"MDPW01", &[4]])));
    assert_eq!(w2.recv_within(INTERVAL * 4), Some(frames(&[b"MDPW02", &[5]])));
}

#[test]
fn silent_worker_is_purged_after_liveness_times_interval() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "quiet");
    let started = Instant::now();
    wait_for_mmi(&broker.endpoint, "quiet", b"404");
    let took = started.elapsed();
    assert!(took >= INTERVAL * 2, "purged too early: {took:?}");
    drop(worker);
}

#[test]
fn heartbeating_worker_stays_registered() {
    let broker = TestBroker::start();
    let worker = v02_worker(&broker.endpoint, "alive");
    let until = Instant::now() + INTERVAL * 10;
    while Instant::now() < until {
        worker.send(&[b"MDPW02", &[5]]);
        worker.recv_within(INTERVAL);
    }
    wait_for_mmi(&broker.endpoint, "alive", b"200");
}

#[test]
fn request_of_a_worker_that_vanishes_is_redelivered() {
    let broker = TestBroker::start();
    let doomed = v01_worker(&broker.endpoint, "job");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"job", b"important"]);
    assert_eq!(doomed.recv_skipping_heartbeats()[5], b"important");
    let rescuer = v01_worker(&broker.endpoint, "job");
    drop(doomed); // its connection closes; the broker notices on its next send
    let request = rescuer.recv_skipping_heartbeats();
    assert_eq!(request[5], b"important");
    rescuer.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"done"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"job", b"done"]));
}

#[test]
fn request_of_a_worker_that_goes_silent_is_redelivered() {
    let broker = TestBroker::start();
    let frozen = v02_worker(&broker.endpoint, "job");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"MDPC02", &[1], b"job", b"work"]);
    frozen.recv_skipping_heartbeats();
    frozen.send(&[b"MDPW02", &[5]]); // shows it heartbeats while busy, then freezes
    let rescuer = v02_worker(&broker.endpoint, "job");
    let deadline = Instant::now() + WAIT;
    let request = loop {
        assert!(Instant::now() < deadline, "never redelivered");
        rescuer.send(&[b"MDPW02", &[5]]);
        match rescuer.recv_within(INTERVAL) {
            Some(msg) if !is_heartbeat(&msg) => break msg,
            _ => {}
        }
    };
    assert_eq!(request[4], b"work");
    rescuer.send(&[b"MDPW02", &[4], &request[2], b"", b"ok"]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"job", b"ok"]));
}

#[test]
fn classic_worker_busy_longer_than_liveness_is_not_purged() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "slow");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"slow", b"x"]);
    let request = worker.recv_skipping_heartbeats();
    worker.expect_silence(INTERVAL * 8); // busy, silent, well past liveness
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"finally"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"slow", b"finally"]));
}

#[test]
fn queued_request_for_a_missing_service_expires() {
    let mut config = patient_config();
    config.request_timeout = Some(Duration::from_millis(100));
    let broker = TestBroker::start_with(config);
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"later", b"stale"]);
    // Wait past the timeout, proving it with the clock, not a sleep.
    let sent = Instant::now();
    while sent.elapsed() < Duration::from_millis(300) {
        client.recv_within(INTERVAL);
    }
    let worker = v01_worker(&broker.endpoint, "later");
    worker.expect_silence(INTERVAL * 4);
    client.send(&[b"", b"MDPC01", b"later", b"fresh"]);
    assert_eq!(worker.recv_skipping_heartbeats()[5], b"fresh");
}

#[test]
fn queued_request_is_served_when_a_worker_arrives_in_time() {
    let broker = TestBroker::start();
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"MDPC02", &[1], b"later", b"waiting"]);
    let worker = v02_worker(&broker.endpoint, "later");
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"MDPW02", &[4], &request[2], b"", b"served"]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"later", b"served"]));
}

#[test]
fn ready_twice_gets_disconnect() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "twice");
    worker.send(&[b"", b"MDPW01", &[1], b"twice"]);
    assert_eq!(worker.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
    wait_for_mmi(&broker.endpoint, "twice", b"404");
    worker.expect_silence(INTERVAL * 4);
}

#[test]
fn ready_for_mmi_namespace_gets_disconnect_in_both_versions() {
    let broker = TestBroker::start();
    let w1 = Peer::connect(&broker.endpoint);
    w1.send(&[b"", b"MDPW01", &[1], b"mmi.service"]);
    assert_eq!(w1.recv(), frames(&[b"", b"MDPW01", &[5]]));
    let w2 = Peer::connect(&broker.endpoint);
    w2.send(&[b"MDPW02", &[1], b"mmi.custom"]);
    assert_eq!(w2.recv(), frames(&[b"MDPW02", &[6]]));
    // The broker still answers mmi.service itself.
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"mmi.service", b"mmi.service"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"mmi.service", b"404"]));
}

#[test]
fn heartbeat_and_reply_from_unknown_workers_get_disconnect() {
    let broker = TestBroker::start();
    let stranger = Peer::connect(&broker.endpoint);
    stranger.send(&[b"", b"MDPW01", &[4]]);
    assert_eq!(stranger.recv(), frames(&[b"", b"MDPW01", &[5]]));
    let stranger2 = Peer::connect(&broker.endpoint);
    stranger2.send(&[b"MDPW02", &[4], b"someone", b"", b"reply"]);
    assert_eq!(stranger2.recv(), frames(&[b"MDPW02", &[6]]));
    let stranger3 = Peer::connect(&broker.endpoint);
    stranger3.send(&[b"MDPW02", &[6]]);
    assert_eq!(
        stranger3.recv_within(Duration::from_millis(200)),
        None,
        "DISCONNECT is not answered"
    );
}

#[test]
fn reply_for_a_request_the_worker_does_not_hold_gets_disconnect() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "echo");
    worker.send(&[b"", b"MDPW01", &[3], b"\0fake", b"", b"forged"]);
    assert_eq!(worker.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
}

#[test]
fn mmi_service_answers_200_404_501_in_the_clients_version() {
    let broker = TestBroker::start();
    let _worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"mmi.service", b"echo"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"mmi.service", b"200"]));
    client.send(&[b"MDPC02", &[1], b"mmi.service", b"nothing"]);
    assert_eq!(client.recv(), frames(&[b"MDPC02", &[3], b"mmi.service", b"404"]));
    client.send(&[b"", b"MDPC01", b"mmi.workers", b"echo"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"mmi.workers", b"501"]));
}

#[test]
fn client_gone_before_its_reply_changes_nothing() {
    let broker = TestBroker::start();
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"x"]);
    let request = worker.recv_skipping_heartbeats();
    drop(client);
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"nobody listens"]);
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"y"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[5], b"y", "the worker is idle again and serves the next request");
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"z"]);
    assert_eq!(client.recv()[3], b"z");
}

#[test]
fn invalid_messages_are_dropped_and_the_broker_keeps_serving() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let vandal = Peer::connect(&broker.endpoint);
    vandal.send(&[b"garbage"]);
    vandal.send(&[b"", b"MDPW01", &[9]]);
    vandal.send(&[b"", b"MDPC01"]);
    vandal.send(&[b"MDPC02", &[3], b"echo", b"x"]);
    assert_eq!(vandal.recv_within(Duration::from_millis(200)), None);
    // A registered worker that sends an invalid message is treated as
    // invalid (18/MDP): DISCONNECT; it may register again.
    worker.send(&[b"", b"MDPW01", &[1]]); // READY without a service
    assert_eq!(worker.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
    worker.send(&[b"", b"MDPW01", &[1], b"echo"]);
    wait_for_service(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"still"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"works"]);
    assert_eq!(client.recv()[3], b"works");
}

/// Thousands of malformed and half-valid messages from a seeded generator,
/// from many peers, then an echo must still work. The storm may register
/// the vandals as workers and queue their requests; the real workers echo
/// whatever they get until the client's own request comes through.
#[test]
fn seeded_random_frames_never_break_the_broker() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 14] = [
        b"",
        b"MDPC01",
        b"MDPC02",
        b"MDPW01",
        b"MDPW02",
        &[1],
        &[2],
        &[3],
        &[4],
        &[5],
        &[6],
        b"echo",
        b"mmi.service",
        b"\xff\x00junk",
    ];
    let vandals: Vec<Peer> = (0..8).map(|_| Peer::connect(&broker.endpoint)).collect();
    for i in 0..5_000 {
        let n = (next() % 8) as usize;
        let mut parts: Vec<Vec<u8>> = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize].to_vec())
            .collect();
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        vandals[i % vandals.len()]
            .socket
            .send_multipart(parts, zmq::DONTWAIT)
            .ok();
    }
    drop(vandals);
    let fresh = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"after the storm"]);
    let deadline = Instant::now() + WAIT;
    let mut reply = None;
    while Instant::now() < deadline && reply.is_none() {
        for w in [&worker, &fresh] {
            if let Some(msg) = w.recv_within(Duration::from_millis(5))
                && msg.len() >= 5
                && msg[1] == b"MDPW01"
                && msg[2] == [2]
            {
                let mut echo: Vec<&[u8]> = vec![b"", b"MDPW01", &[3]];
                echo.extend(msg[3..].iter().map(|f| f.as_slice()));
                w.send(&echo);
            }
        }
        reply = client.recv_within(Duration::from_millis(1));
    }
    assert_eq!(reply, Some(frames(&[b"", b"MDPC01", b"echo", b"after the storm"])));
}

#[test]
fn every_bound_endpoint_serves() {
    let dir = std::env::temp_dir().join(format!("mdbroker-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ipc = format!("ipc://{}/broker.sock", dir.display());
    let broker = TestBroker::bind(&["tcp://127.0.0.1:*".to_string(), ipc.clone()], test_config());
    assert_eq!(broker.endpoints.len(), 2);
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoints[1]);
    client.send(&[b"", b"MDPC01", b"echo", b"over ipc"]);
    let request = worker.recv_skipping_heartbeats();
    worker.send(&[b"", b"MDPW01", &[3], &request[3], b"", b"ok"]);
    assert_eq!(client.recv()[3], b"ok");
    drop(broker);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stopping_the_broker_disconnects_workers_of_both_versions() {
    let mut broker = TestBroker::start();
    let w1 = v01_worker(&broker.endpoint, "a");
    let w2 = v02_worker(&broker.endpoint, "b");
    broker.stop();
    assert_eq!(w1.recv_skipping_heartbeats(), frames(&[b"", b"MDPW01", &[5]]));
    assert_eq!(w2.recv_skipping_heartbeats(), frames(&[b"MDPW02", &[6]]));
}

#[test]
fn majortomo_flavored_client_gets_partials_and_final_in_its_flavor() {
    let broker = TestBroker::start();
    let worker = v02_worker(&broker.endpoint, "stream");
    let client = Peer::connect(&broker.endpoint);
    // majortomo numbers client commands with the worker table (REQUEST 0x02)
    // and its replies carry no service name.
    client.send(&[b"", b"MDPC02", &[2], b"stream", b"go"]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[4], b"go");
    worker.send(&[b"MDPW02", &[3], &request[2], b"", b"p"]);
    worker.send(&[b"MDPW02", &[4], &request[2], b"", b"f"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC02", &[3], b"p"]));
    assert_eq!(client.recv(), frames(&[b"", b"MDPC02", &[4], b"f"]));
}
