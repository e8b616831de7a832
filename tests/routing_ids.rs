//! Routing ids peers choose (`ZMQ_ROUTING_ID`) against the broker's ROUTER
//! socket: none may crash the broker, take another peer's traffic, or take
//! an id libzmq hands out later; automatic ids are not predictable. These
//! hold because of our libzmq patch (`zmq-sys/build/patches.rs`).

use std::collections::HashSet;

use crate::common::*;

fn peer_claiming(endpoint: &str, id: &[u8]) -> Peer {
    Peer::connect_as(endpoint, Some(id))
}

/// One request through `worker` from `client`: returns the client address
/// the worker saw, after checking the client got the answer.
fn round_trip(worker: &Peer, client: &Peer, body: &[u8]) -> Vec<u8> {
    client.send(&[b"", b"MDPC01", b"echo", body]);
    let request = worker.recv_skipping_heartbeats();
    assert_eq!(request[5], body);
    let address = request[3].clone();
    worker.send(&[b"", b"MDPW01", &[3], &address, b"", body]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", body]));
    address
}

/// The counter value of the automatic id an anonymous peer gets now, as a
/// worker sees it in a REQUEST.
fn observed_counter(worker: &Peer, endpoint: &str) -> u32 {
    let id = round_trip(worker, &Peer::connect(endpoint), b"probe");
    assert_eq!((id.len(), id[0]), (5, 0), "an automatic id is a zero byte and 4 more");
    u32::from_be_bytes([id[1], id[2], id[3], id[4]])
}

#[test]
fn the_next_counter_values_claimed_before_and_after_anonymous_peers() {
    // In this process other ROUTER sockets have drawn from rand() already,
    // so the next values are taken from an id the broker handed out (the
    // literal 00 6b8b4567 input is the daemon test's, in a fresh process).
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let seen = observed_counter(&worker, &broker.endpoint);
    let claim = |values: std::ops::Range<u32>| -> Vec<Peer> {
        values
            .flat_map(|n| [seen.wrapping_add(n), STOCK_FIRST_ID.wrapping_add(n)])
            .map(|value| peer_claiming(&broker.endpoint, &automatic_id(value)))
            .collect()
    };
    let before = claim(0..16);
    for peer in &before {
        assert_served(peer);
    }
    let anonymous: Vec<Peer> = (0..20).map(|_| Peer::connect(&broker.endpoint)).collect();
    for peer in &anonymous {
        assert_served(peer);
    }
    let after = claim(16..32);
    for peer in after.iter().chain(&before).chain(&anonymous) {
        assert_served(peer);
    }
    round_trip(&worker, &anonymous[0], b"still serving");
    round_trip(&worker, &before[1], b"a claimer too");
}

#[test]
fn ids_a_worker_sees_do_not_predict_the_next_ones() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let clients: Vec<Peer> = (0..20).map(|_| Peer::connect(&broker.endpoint)).collect();
    let seen: Vec<Vec<u8>> = clients.iter().map(|c| round_trip(&worker, c, b"hi")).collect();
    let counters: Vec<u32> = seen
        .iter()
        .map(|id| {
            assert_eq!((id.len(), id[0]), (5, 0), "an automatic id is a zero byte and 4 more");
            u32::from_be_bytes([id[1], id[2], id[3], id[4]])
        })
        .collect();
    let steps = counters.windows(2).filter(|w| w[1].wrapping_sub(w[0]) < 1000).count();
    assert_eq!(steps, 0, "automatic ids follow a counter: {counters:x?}");

    // The worker claims what a counter would hand out next, and what comes
    // after every id it saw; then newcomers connect: all are served.
    let last = *counters.last().expect("ids");
    let mut claimers = Vec::new();
    for next in (1..=15)
        .map(|n| last.wrapping_add(n))
        .chain(counters.iter().map(|c| c.wrapping_add(1)))
    {
        claimers.push(peer_claiming(&broker.endpoint, &automatic_id(next)));
    }
    let newcomers: Vec<Peer> = (0..20).map(|_| Peer::connect(&broker.endpoint)).collect();
    for peer in claimers.iter().chain(&newcomers).chain(&clients) {
        assert_served(peer);
    }
    round_trip(&worker, &newcomers[0], b"still serving");
}

#[test]
fn claiming_a_connected_clients_automatic_id_takes_none_of_its_traffic() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = Peer::connect(&broker.endpoint);
    client.send(&[b"", b"MDPC01", b"echo", b"mine"]);
    let request = worker.recv_skipping_heartbeats();
    let address = request[3].clone();

    let thief = peer_claiming(&broker.endpoint, &address);
    assert_served(&thief);
    worker.send(&[b"", b"MDPW01", &[3], &address, b"", b"mine"]);
    assert_eq!(client.recv(), frames(&[b"", b"MDPC01", b"echo", b"mine"]));
    thief.expect_silence(INTERVAL * 4);
    round_trip(&worker, &client, b"and it keeps working");
}

#[test]
fn claiming_a_connected_clients_chosen_id_takes_none_of_its_traffic() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let client = peer_claiming(&broker.endpoint, b"alice");
    assert_eq!(round_trip(&worker, &client, b"first"), b"alice");

    let thief = peer_claiming(&broker.endpoint, b"alice");
    assert_served(&thief);
    let seen = round_trip(&worker, &client, b"second");
    assert_eq!(seen, b"alice", "the first holder keeps its id");
    thief.expect_silence(INTERVAL * 4);
    // The newcomer is served under an id of its own.
    let thief_seen = round_trip(&worker, &thief, b"the newcomer's own");
    assert_ne!(thief_seen, b"alice");
}

#[test]
fn many_anonymous_peers_get_distinct_ids() {
    let broker = TestBroker::start_with(patient_config());
    let worker = v01_worker(&broker.endpoint, "echo");
    let clients: Vec<Peer> = (0..200).map(|_| Peer::connect(&broker.endpoint)).collect();
    let ids: HashSet<Vec<u8>> = clients.iter().map(|c| round_trip(&worker, c, b"x")).collect();
    assert_eq!(ids.len(), clients.len());
}
