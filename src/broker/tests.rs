//! Unit tests of the broker state machine: no sockets, time driven by hand.
//! Each test names the rule of 7/MDP, 18/MDP or 8/MMI it proves.

use std::time::{Duration, Instant};

use super::*;
use crate::frame::Frame;

const INTERVAL: Duration = Duration::from_millis(100);

fn config() -> Config {
    Config {
        heartbeat_interval: INTERVAL,
        heartbeat_liveness: 3,
        busy_timeout: Duration::from_secs(10),
        request_timeout: Some(Duration::from_secs(2)),
        max_deliveries: 3,
        ..Config::default()
    }
}

/// A broker, a clock and what the broker sent.
struct Harness {
    broker: Broker,
    now: Instant,
}

/// One sent message as bytes: (recipient identity, frames after it).
type Sent = (Vec<u8>, Vec<Vec<u8>>);

impl Harness {
    fn new() -> Harness {
        Harness::with(config())
    }

    fn with(config: Config) -> Harness {
        let now = Instant::now();
        Harness {
            broker: Broker::new(config, now),
            now,
        }
    }

    fn send(&mut self, identity: &str, parts: &[&[u8]]) {
        let frames = parts.iter().map(|p| Frame::from_slice(p)).collect();
        self.broker.handle(Frame::from(identity), frames, self.now);
    }

    /// Moves time on by `by` as a running broker sees it: waking at each
    /// deadline (in steps of at most one timer step), never oversleeping.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        let step = self.broker.config().timer_resolution().max(Duration::from_millis(1));
        while self.now < end {
            self.now = (self.now + step).min(end);
            self.broker.tick(self.now);
        }
    }

    /// The broker process stops for `by` and continues: one late wake-up.
    fn pause(&mut self, by: Duration) {
        self.now += by;
    }

    fn sent(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        self.broker.take_outbox(&mut out);
        out.into_iter()
            .map(|o| {
                let mut frames = o.frames.iter().map(|f| f.to_vec());
                (frames.next().unwrap_or_default(), frames.collect())
            })
            .collect()
    }

    fn outbound(&mut self) -> Vec<Outbound> {
        let mut out = Vec::new();
        self.broker.take_outbox(&mut out);
        out
    }

    /// Two MDP/0.1 HEARTBEATs from a busy worker: what shows the broker
    /// that it heartbeats while busy (one does not; see `Worker::heartbeat`).
    fn busy_heartbeats(&mut self, worker: &str) {
        self.send(worker, &[b"", b"MDPW01", &[4]]);
        self.send(worker, &[b"", b"MDPW01", &[4]]);
    }

    fn ready_v01(&mut self, worker: &str, service: &str) {
        self.send(worker, &[b"", b"MDPW01", &[1], service.as_bytes()]);
    }

    fn ready_v02(&mut self, worker: &str, service: &str) {
        self.send(worker, &[b"MDPW02", &[1], service.as_bytes()]);
    }

    fn request_v01(&mut self, client: &str, service: &str, body: &str) {
        self.send(client, &[b"", b"MDPC01", service.as_bytes(), body.as_bytes()]);
    }

    fn request_v02(&mut self, client: &str, service: &str, body: &str) {
        self.send(client, &[b"MDPC02", &[1], service.as_bytes(), body.as_bytes()]);
    }
}

fn v(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

fn to(identity: &str, parts: &[&[u8]]) -> Sent {
    (identity.as_bytes().to_vec(), v(parts))
}

fn disconnect_v01(identity: &str) -> Sent {
    to(identity, &[b"", b"MDPW01", &[5]])
}

#[test]
fn v01_request_reaches_worker_and_reply_reaches_client() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "hello");
    assert_eq!(h.sent(), vec![to("w1", &[b"", b"MDPW01", &[2], b"c1", b"", b"hello"])]);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"world"]);
    assert_eq!(h.sent(), vec![to("c1", &[b"", b"MDPC01", b"echo", b"world"])]);
}

#[test]
fn v02_partials_then_final_are_forwarded_in_order() {
    let mut h = Harness::new();
    h.ready_v02("w1", "stream");
    h.request_v02("c1", "stream", "go");
    assert_eq!(h.sent(), vec![to("w1", &[b"MDPW02", &[2], b"c1", b"", b"go"])]);
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"p1"]);
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"p2"]);
    h.send("w1", &[b"MDPW02", &[4], b"c1", b"", b"done"]);
    assert_eq!(
        h.sent(),
        vec![
            to("c1", &[b"MDPC02", &[2], b"stream", b"p1"]),
            to("c1", &[b"MDPC02", &[2], b"stream", b"p2"]),
            to("c1", &[b"MDPC02", &[3], b"stream", b"done"]),
        ]
    );
}

#[test]
fn peers_are_answered_in_the_framing_they_used() {
    let mut h = Harness::new();
    // majortomo-style MDP/0.2 with a leading empty frame, on both sides.
    h.send("w1", &[b"", b"MDPW02", &[1], b"echo"]);
    h.send("c1", &[b"", b"MDPC02", &[1], b"echo", b"x"]);
    assert_eq!(h.sent(), vec![to("w1", &[b"", b"MDPW02", &[2], b"c1", b"", b"x"])]);
    h.send("w1", &[b"", b"MDPW02", &[4], b"c1", b"", b"y"]);
    assert_eq!(h.sent(), vec![to("c1", &[b"", b"MDPC02", &[3], b"echo", b"y"])]);
}

#[test]
fn v02_client_served_by_v01_worker_gets_final() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v02("c2", "echo", "q");
    assert_eq!(h.sent(), vec![to("w1", &[b"", b"MDPW01", &[2], b"c2", b"", b"q"])]);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c2", b"", b"a"]);
    assert_eq!(h.sent(), vec![to("c2", &[b"MDPC02", &[3], b"echo", b"a"])]);
}

#[test]
fn v01_client_served_by_v02_worker_gets_the_whole_stream_as_one_reply() {
    let mut h = Harness::new();
    h.ready_v02("w2", "echo");
    h.request_v01("c1", "echo", "q");
    assert_eq!(h.sent(), vec![to("w2", &[b"MDPW02", &[2], b"c1", b"", b"q"])]);
    h.send("w2", &[b"MDPW02", &[3], b"c1", b"", b"p1", b"p1b"]);
    h.send("w2", &[b"MDPW02", &[3], b"c1", b""]);
    h.send("w2", &[b"MDPW02", &[3], b"c1", b"", b"p3"]);
    assert_eq!(h.sent(), vec![], "MDP/0.1 has no PARTIAL: they are gathered");
    h.send("w2", &[b"MDPW02", &[4], b"c1", b"", b"final"]);
    assert_eq!(
        h.sent(),
        vec![to("c1", &[b"", b"MDPC01", b"echo", b"p1", b"p1b", b"p3", b"final"])]
    );
}

#[test]
fn a_gathered_stream_past_the_bounds_gives_the_v01_client_no_reply() {
    let mut h = Harness::with(Config {
        max_client_backlog: 10,
        ..config()
    });
    h.ready_v02("w2", "echo");
    h.request_v01("c1", "echo", "q");
    h.sent();
    h.send("w2", &[b"MDPW02", &[3], b"c1", b"", b"123456"]);
    h.send("w2", &[b"MDPW02", &[3], b"c1", b"", b"789012"]);
    h.send("w2", &[b"MDPW02", &[4], b"c1", b"", b"end"]);
    assert_eq!(h.sent(), vec![], "no incomplete REPLY: its timeout applies");
    assert_eq!(h.broker.stats().gathered_replies_dropped, 1);
    // The worker is free, and the next stream starts afresh.
    h.request_v01("c2", "echo", "q");
    h.sent();
    h.send("w2", &[b"MDPW02", &[4], b"c2", b"", b"ok"]);
    assert_eq!(h.sent(), vec![to("c2", &[b"", b"MDPC01", b"echo", b"ok"])]);
}

#[test]
fn multi_frame_bodies_pass_through_whole() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.send("c1", &[b"", b"MDPC01", b"echo", b"a", b"", b"c"]);
    assert_eq!(
        h.sent(),
        vec![to("w1", &[b"", b"MDPW01", &[2], b"c1", b"", b"a", b"", b"c"])]
    );
}

#[test]
fn requests_go_to_the_least_recently_used_idle_worker() {
    let mut h = Harness::new();
    for w in ["w1", "w2", "w3"] {
        h.ready_v01(w, "echo");
    }
    h.request_v01("c1", "echo", "1");
    h.request_v01("c2", "echo", "2");
    let first: Vec<Vec<u8>> = h.sent().into_iter().map(|s| s.0).collect();
    assert_eq!(first, vec![b"w1".to_vec(), b"w2".to_vec()]);
    // w2 finishes first, then w1: the idle order is now w3, w2, w1.
    h.send("w2", &[b"", b"MDPW01", &[3], b"c2", b"", b"r"]);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"r"]);
    h.sent();
    for (c, expected) in [("c3", "w3"), ("c4", "w2"), ("c5", "w1")] {
        h.request_v01(c, "echo", "x");
        assert_eq!(h.sent()[0].0, expected.as_bytes());
    }
}

#[test]
fn requests_for_a_service_without_workers_wait_then_flow_when_one_registers() {
    let mut h = Harness::new();
    h.request_v01("c1", "late", "1");
    h.request_v01("c2", "late", "2");
    assert_eq!(h.broker.queued(b"late"), 2);
    assert_eq!(h.sent(), vec![]);
    h.ready_v01("w1", "late");
    assert_eq!(h.sent(), vec![to("w1", &[b"", b"MDPW01", &[2], b"c1", b"", b"1"])]);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"r"]);
    let sent = h.sent();
    assert_eq!(sent[0].0, b"c1");
    assert_eq!(
        sent[1],
        to("w1", &[b"", b"MDPW01", &[2], b"c2", b"", b"2"]),
        "FIFO order"
    );
}

#[test]
fn queued_requests_expire_after_the_request_timeout() {
    let mut h = Harness::new();
    h.request_v01("c1", "nobody", "1");
    h.advance(Duration::from_millis(1000));
    h.request_v01("c2", "nobody", "2");
    h.advance(Duration::from_millis(1001));
    assert_eq!(
        h.broker.queued(b"nobody"),
        1,
        "the first expired, the second still waits"
    );
    h.advance(Duration::from_millis(1000));
    assert_eq!(h.broker.queued(b"nobody"), 0);
    assert_eq!(h.broker.service_count(), 0, "an empty service is dropped");
    h.ready_v01("w1", "nobody");
    assert_eq!(h.sent(), vec![], "expired requests are not delivered");
}

#[test]
fn no_request_timeout_keeps_requests() {
    let mut h = Harness::with(Config {
        request_timeout: None,
        ..config()
    });
    h.request_v01("c1", "nobody", "1");
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.broker.queued(b"nobody"), 1);
}

#[test]
fn broker_heartbeats_every_worker_each_interval() {
    let mut h = Harness::new();
    h.ready_v01("w1", "a");
    h.ready_v02("w2", "b");
    h.advance(INTERVAL);
    let mut sent = h.sent();
    sent.sort();
    assert_eq!(
        sent,
        vec![to("w1", &[b"", b"MDPW01", &[4]]), to("w2", &[b"MDPW02", &[5]])]
    );
    h.send("w1", &[b"", b"MDPW01", &[4]]);
    h.send("w2", &[b"MDPW02", &[5]]);
    h.advance(INTERVAL);
    assert_eq!(h.sent().len(), 2);
}

#[test]
fn heartbeats_due_within_one_timer_step_go_out_together_and_never_late() {
    let mut h = Harness::new();
    let (t0, step) = (h.now, config().timer_resolution());
    for (i, worker) in ["w1", "w2", "w3"].into_iter().enumerate() {
        h.now = t0 + step * i as u32 / 3;
        h.ready_v01(worker, "echo");
    }
    assert_eq!(
        h.broker.next_deadline(),
        Some(t0 + INTERVAL),
        "one wake-up for all three"
    );
    h.advance(t0 + INTERVAL - step / 2 - h.now);
    assert_eq!(h.sent(), vec![]);
    h.advance(step / 2);
    let heartbeats = h
        .sent()
        .into_iter()
        .filter(|s| s.1 == v(&[b"", b"MDPW01", &[4]]))
        .count();
    assert_eq!(heartbeats, 3, "each at most its interval after it registered");
}

#[test]
fn expiry_waits_for_the_next_timer_step_and_is_never_early() {
    let mut h = Harness::new();
    let (t0, step) = (h.now, config().timer_resolution());
    h.now = t0 + step / 2;
    h.ready_v01("w1", "echo");
    let expiry = h.now + config().expiry();
    h.advance(expiry - h.now - Duration::from_millis(1));
    assert_eq!(h.broker.worker_count(), 1, "not before liveness x interval");
    h.advance(t0 + config().expiry() + step - h.now - Duration::from_millis(1));
    assert_eq!(h.broker.worker_count(), 1, "the check waits for the next step");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.broker.worker_count(), 0);
}

#[test]
fn silent_worker_expires_after_liveness_times_interval() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.advance(INTERVAL * 2);
    assert_eq!(h.broker.worker_count(), 1);
    h.advance(INTERVAL);
    assert_eq!(h.broker.worker_count(), 0);
    h.request_v01("c1", "echo", "x");
    assert!(h.sent().iter().all(|s| s.0 != b"c1" && s.1.get(2) != Some(&vec![2])));
}

#[test]
fn any_command_counts_as_a_heartbeat() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    for i in 0..10 {
        h.advance(INTERVAL);
        let client = format!("c{i}");
        h.request_v01(&client, "echo", "x");
        h.send("w1", &[b"", b"MDPW01", &[3], client.as_bytes(), b"", b"y"]);
    }
    assert_eq!(h.broker.worker_count(), 1);
}

#[test]
fn a_live_worker_ahead_of_a_dead_one_does_not_shield_it() {
    let mut h = Harness::new();
    h.ready_v01("alive", "echo");
    h.ready_v01("dead", "echo");
    for _ in 0..3 {
        h.advance(INTERVAL);
        h.send("alive", &[b"", b"MDPW01", &[4]]);
    }
    assert_eq!(h.broker.worker_count(), 1);
    // The dead one is gone from the idle queue too.
    h.request_v01("c1", "echo", "1");
    h.request_v01("c2", "echo", "2");
    let to_workers: Vec<Vec<u8>> = h.sent().into_iter().filter(|s| s.1.len() > 3).map(|s| s.0).collect();
    assert_eq!(to_workers, vec![b"alive".to_vec()]);
}

#[test]
fn busy_worker_that_never_heartbeats_while_busy_gets_the_busy_timeout() {
    let mut h = Harness::new();
    h.ready_v01("classic", "slow");
    h.request_v01("c1", "slow", "x");
    h.sent();
    h.advance(Duration::from_secs(5));
    assert_eq!(h.broker.worker_count(), 1, "a classic worker may be silent while busy");
    h.send("classic", &[b"", b"MDPW01", &[3], b"c1", b"", b"done"]);
    assert!(h.sent().iter().any(|s| s.0 == b"c1"));
    h.request_v01("c2", "slow", "x");
    h.advance(Duration::from_secs(10));
    assert_eq!(h.broker.worker_count(), 0, "past the busy timeout it is dead");
}

#[test]
fn busy_worker_that_heartbeats_while_busy_keeps_normal_liveness() {
    let mut h = Harness::new();
    h.ready_v01("modern", "slow");
    h.request_v01("c1", "slow", "x");
    h.advance(INTERVAL);
    h.busy_heartbeats("modern");
    h.advance(INTERVAL * 2);
    assert_eq!(h.broker.worker_count(), 1);
    h.advance(INTERVAL);
    assert_eq!(h.broker.worker_count(), 0, "silent for liveness x interval while busy");
}

#[test]
fn request_of_an_expired_worker_goes_to_the_next_worker() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.send("w1", &[b"", b"MDPW01", &[4]]);
    h.advance(INTERVAL);
    h.request_v01("c1", "echo", "job");
    h.advance(INTERVAL);
    h.busy_heartbeats("w1");
    h.ready_v01("w2", "echo");
    h.sent();
    for _ in 0..3 {
        h.advance(INTERVAL); // ...then w1 falls silent; w2 stays alive.
        h.send("w2", &[b"", b"MDPW01", &[4]]);
    }
    let sent = h.sent();
    assert!(
        sent.contains(&to("w2", &[b"", b"MDPW01", &[2], b"c1", b"", b"job"])),
        "{sent:?}"
    );
    h.send("w2", &[b"", b"MDPW01", &[3], b"c1", b"", b"ok"]);
    assert_eq!(h.sent(), vec![to("c1", &[b"", b"MDPC01", b"echo", b"ok"])]);
}

#[test]
fn request_of_a_disconnecting_worker_goes_back_to_the_head_of_the_queue() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "first");
    h.request_v01("c2", "echo", "second");
    h.sent();
    h.send("w1", &[b"", b"MDPW01", &[5]]);
    assert_eq!(h.sent(), vec![], "no DISCONNECT back to a worker that disconnected");
    assert_eq!(h.broker.queued(b"echo"), 2);
    h.ready_v01("w2", "echo");
    assert_eq!(h.sent(), vec![to("w2", &[b"", b"MDPW01", &[2], b"c1", b"", b"first"])]);
}

#[test]
fn a_request_is_dropped_after_max_deliveries() {
    let mut h = Harness::new();
    h.request_v01("c1", "crash", "poison");
    for i in 0..3 {
        let w = format!("w{i}");
        h.ready_v01(&w, "crash");
        assert_eq!(h.sent().len(), 1, "delivery {}", i + 1);
        h.send(&w, &[b"", b"MDPW01", &[5]]);
    }
    assert_eq!(h.broker.queued(b"crash"), 0);
    h.ready_v01("w9", "crash");
    assert_eq!(h.sent(), vec![]);
}

#[test]
fn unreachable_worker_is_deleted_and_an_undelivered_request_does_not_count() {
    let mut h = Harness::with(Config {
        max_deliveries: 1,
        ..config()
    });
    h.ready_v01("gone", "echo");
    h.request_v01("c1", "echo", "x");
    let out = h.outbound();
    assert!(matches!(out[0].recipient, Recipient::WorkerRequest(_)));
    h.broker.send_failed(out[0].recipient, h.now);
    assert_eq!(h.broker.worker_count(), 0);
    assert_eq!(h.broker.queued(b"echo"), 1, "the request never reached a worker");
    h.ready_v01("w2", "echo");
    assert_eq!(h.sent()[0].0, b"w2");
}

#[test]
fn heartbeat_to_a_worker_names_it_for_unreachable_reports() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.advance(INTERVAL);
    let out = h.outbound();
    assert!(matches!(out[0].recipient, Recipient::Worker(_)));
}

#[test]
fn ready_twice_gets_disconnect_and_the_worker_is_forgotten() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.ready_v01("w1", "echo");
    assert_eq!(h.sent(), vec![disconnect_v01("w1")]);
    assert_eq!(h.broker.worker_count(), 0);
    h.request_v01("c1", "echo", "x");
    assert_eq!(h.sent(), vec![], "no further commands to that worker");
}

#[test]
fn ready_for_an_mmi_service_gets_disconnect() {
    let mut h = Harness::new();
    h.ready_v02("w1", "mmi.service");
    assert_eq!(h.sent(), vec![to("w1", &[b"MDPW02", &[6]])]);
    assert_eq!(h.broker.worker_count(), 0);
    assert_eq!(h.broker.service_count(), 0);
}

#[test]
fn commands_from_unknown_workers_get_disconnect_except_disconnect() {
    let mut h = Harness::new();
    h.send("u1", &[b"", b"MDPW01", &[4]]);
    h.send("u2", &[b"", b"MDPW01", &[3], b"c", b"", b"r"]);
    h.send("u3", &[b"MDPW02", &[3], b"c", b"", b"r"]);
    h.send("u4", &[b"", b"MDPW01", &[5]]);
    assert_eq!(
        h.sent(),
        vec![disconnect_v01("u1"), disconnect_v01("u2"), to("u3", &[b"MDPW02", &[6]])]
    );
}

#[test]
fn reply_from_an_idle_worker_or_for_another_client_gets_disconnect() {
    let mut h = Harness::new();
    h.ready_v01("idle", "echo");
    h.send("idle", &[b"", b"MDPW01", &[3], b"c1", b"", b"r"]);
    assert_eq!(h.sent(), vec![disconnect_v01("idle")]);

    h.ready_v01("busy", "echo");
    h.request_v01("c1", "echo", "x");
    h.sent();
    h.send("busy", &[b"", b"MDPW01", &[3], b"intruder", b"", b"r"]);
    assert_eq!(h.sent(), vec![disconnect_v01("busy")]);
    assert_eq!(h.broker.queued(b"echo"), 1, "its request is redelivered");
}

#[test]
fn worker_switching_protocol_version_gets_disconnect() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.send("w1", &[b"MDPW02", &[5]]);
    assert_eq!(h.sent(), vec![disconnect_v01("w1")]);
}

#[test]
fn invalid_messages_from_unregistered_peers_are_dropped_without_reply_or_state_change() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.send("u1", &[b"", b"MDPW01", &[9]]);
    h.send("u1", &[b"", b"MDPW01"]);
    h.send("c1", &[b"", b"MDPC01"]);
    h.send("c1", &[b"MDPC02", &[3], b"echo", b"x"]);
    h.send("x", &[]);
    assert_eq!(h.sent(), vec![]);
    assert_eq!(h.broker.worker_count(), 1);
    h.request_v01("c1", "echo", "ok");
    assert_eq!(h.sent().len(), 1);
}

#[test]
fn an_invalid_message_from_a_registered_worker_disconnects_it_and_its_request_goes_on() {
    // 18/MDP: drop an invalid message and treat the peer as invalid. A busy
    // worker that answered with a malformed reply would otherwise hold its
    // request for ever while it heartbeats.
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "job");
    assert_eq!(h.sent().len(), 1);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1"]); // no delimiter
    assert_eq!(h.sent(), vec![disconnect_v01("w1")]);
    assert_eq!(h.broker.worker_count(), 0);
    assert_eq!(h.broker.queued(b"echo"), 1, "the request waits for the next worker");
    h.ready_v01("w2", "echo");
    let sent = h.sent();
    assert_eq!((sent.len(), &sent[0].0[..]), (1, &b"w2"[..]));
    // An idle registered worker is treated the same way.
    h.ready_v02("w3", "other");
    h.send("w3", &[b"MDPW02", &[99]]);
    assert_eq!(h.sent(), vec![to("w3", &[b"MDPW02", &[6]])]);
}

#[test]
fn an_empty_reply_reaches_the_client_and_frees_the_worker_in_both_versions() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "q");
    h.sent();
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b""]);
    assert_eq!(h.sent(), vec![to("c1", &[b"", b"MDPC01", b"echo"])]);
    h.request_v01("c2", "echo", "next");
    assert_eq!(h.sent().len(), 1, "the worker is free again");

    h.ready_v02("w2", "stream");
    h.request_v02("c3", "stream", "q");
    h.sent();
    h.send("w2", &[b"MDPW02", &[3], b"c3", b""]);
    h.send("w2", &[b"MDPW02", &[4], b"c3", b""]);
    assert_eq!(
        h.sent(),
        vec![
            to("c3", &[b"MDPC02", &[2], b"stream"]),
            to("c3", &[b"MDPC02", &[3], b"stream"])
        ]
    );
    // A request with no body is refused (both specs require one).
    h.send("c4", &[b"MDPC02", &[1], b"stream"]);
    assert_eq!(h.sent(), vec![]);
}

#[test]
fn mmi_service_answers_200_404_and_501_without_creating_services() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "mmi.service", "echo");
    h.request_v02("c2", "mmi.service", "missing");
    h.request_v01("c3", "mmi.other", "echo");
    assert_eq!(
        h.sent(),
        vec![
            to("c1", &[b"", b"MDPC01", b"mmi.service", b"200"]),
            to("c2", &[b"MDPC02", &[3], b"mmi.service", b"404"]),
            to("c3", &[b"", b"MDPC01", b"mmi.other", b"501"]),
        ]
    );
    assert_eq!(
        h.broker.service_count(),
        1,
        "no phantom services for mmi.* or the names asked about"
    );
}

#[test]
fn mmi_service_counts_busy_workers() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "x");
    h.sent();
    h.request_v01("c2", "mmi.service", "echo");
    assert_eq!(h.sent(), vec![to("c2", &[b"", b"MDPC01", b"mmi.service", b"200"])]);
}

#[test]
fn a_service_is_dropped_when_its_last_worker_leaves() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    assert_eq!(h.broker.service_count(), 1);
    h.send("w1", &[b"", b"MDPW01", &[5]]);
    assert_eq!(h.broker.service_count(), 0);
}

#[test]
fn many_idle_workers_leaving_keeps_dispatch_correct() {
    let mut h = Harness::new();
    for i in 0..100 {
        h.ready_v01(&format!("w{i}"), "echo");
    }
    for i in 0..99 {
        h.send(&format!("w{i}"), &[b"", b"MDPW01", &[5]]);
    }
    h.request_v01("c1", "echo", "x");
    assert_eq!(h.sent()[0].0, b"w99");
}

#[test]
fn shutdown_disconnects_every_worker() {
    let mut h = Harness::new();
    h.ready_v01("w1", "a");
    h.ready_v02("w2", "b");
    h.broker.shutdown();
    let mut sent = h.sent();
    sent.sort();
    assert_eq!(sent, vec![disconnect_v01("w1"), to("w2", &[b"MDPW02", &[6]])]);
    assert_eq!(h.broker.worker_count(), 0);
}

#[test]
fn next_deadline_is_the_earliest_timer() {
    let mut h = Harness::new();
    assert_eq!(h.broker.next_deadline(), None);
    h.ready_v01("w1", "echo");
    assert_eq!(h.broker.next_deadline(), Some(h.now + INTERVAL));
}

#[test]
fn queued_requests_of_a_client_whose_connection_closed_are_not_dispatched() {
    let mut h = Harness::new();
    h.ready_v01("w1", "slow");
    h.request_v01("c1", "slow", "first");
    assert_eq!(h.sent().len(), 1, "the worker takes the first request");
    // The client times out, closes its socket, retries on new ones (7/MDP).
    h.send("c1", &[b""]);
    h.request_v01("c2", "slow", "retry 1");
    h.send("c2", &[b""]);
    h.request_v01("c3", "slow", "retry 2");
    // The departed retry was dropped as soon as it reached the head.
    assert_eq!(h.broker.queued(b"slow"), 1);
    assert_eq!(h.broker.stats().requests_for_departed_clients, 1);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"done"]);
    // The reply for the closed connection is dropped (a routing id that
    // connects again must not get it), and the live retry is served.
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, b"w1");
    assert_eq!(sent[0].1[5], b"retry 2");
    assert_eq!(h.broker.stats().replies_for_departed_clients, 1);
    // A routing id that connects again is a new client.
    h.request_v01("c2", "slow", "back again");
    assert_eq!(h.broker.queued(b"slow"), 1);
}

#[test]
fn a_worker_whose_connection_closed_is_deleted_and_its_request_redelivered() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "job");
    h.sent();
    h.send("w1", &[b""]);
    assert_eq!(h.broker.worker_count(), 0);
    assert_eq!(h.sent(), vec![], "no DISCONNECT to a closed connection");
    h.ready_v01("w2", "echo");
    assert_eq!(h.sent()[0].0, b"w2");
}

#[test]
fn a_pause_of_the_broker_shorter_than_the_expiry_deletes_no_worker() {
    // Field input (issue 14, section 5A): 500 ms heartbeats (expiry 1.5 s),
    // the broker stopped for 1.4 s while its workers kept heartbeating.
    let mut h = Harness::with(Config {
        heartbeat_interval: Duration::from_millis(500),
        ..config()
    });
    for n in 0..200 {
        h.ready_v01(&format!("w{n}"), "echo");
    }
    h.advance(Duration::from_millis(400));
    for n in 0..200 {
        h.send(&format!("w{n}"), &[b"", b"MDPW01", &[4]]);
    }
    h.sent();
    h.pause(Duration::from_millis(1400));
    // On waking the broker runs its timers before it has read anything.
    h.broker.tick(h.now);
    // Then the heartbeats sent during the pause come in.
    for n in 0..200 {
        h.send(&format!("w{n}"), &[b"", b"MDPW01", &[4]]);
    }
    assert_eq!(h.broker.worker_count(), 200);
    assert!(h.sent().iter().all(|(_, frames)| frames[2] == [4]), "only heartbeats");
    // Time then counts again: a worker silent for the expiry is deleted.
    h.advance(Duration::from_millis(1700));
    assert_eq!(h.broker.worker_count(), 0);
}

#[test]
fn a_late_reply_from_a_worker_taken_for_dead_reaches_the_client_once() {
    // Field input (issue 14, section 5B): w1's heartbeats queue behind its
    // large reply on a slow link; it is expired and its request goes to w2.
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "job");
    h.busy_heartbeats("w1");
    h.sent();
    h.advance(INTERVAL * 2);
    h.ready_v01("w2", "echo");
    h.advance(INTERVAL);
    assert_eq!(h.broker.worker_count(), 1, "w1 expired");
    let sent = h.sent();
    assert!(
        sent.iter().any(|(to, frames)| to == b"w2" && frames[2] == [2]),
        "redelivered to w2"
    );
    // w1's heartbeat, then its reply, arrive late.
    h.send("w1", &[b"", b"MDPW01", &[4]]);
    assert_eq!(h.sent(), vec![], "no DISCONNECT while its reply is awaited");
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"from w1"]);
    assert_eq!(
        h.sent(),
        vec![to("c1", &[b"", b"MDPC01", b"echo", b"from w1"]), disconnect_v01("w1")]
    );
    // w2's reply to the same request is dropped; w2 is free again.
    h.send("w2", &[b"", b"MDPW01", &[3], b"c1", b"", b"from w2"]);
    assert_eq!(h.sent(), vec![]);
    assert_eq!(h.broker.stats().late_replies_delivered, 1);
    assert_eq!(h.broker.stats().duplicate_reply_parts, 1);
    h.request_v01("c2", "echo", "next");
    assert_eq!(h.sent()[0].0, b"w2");
}

#[test]
fn a_request_answered_late_while_it_waits_for_redelivery_is_not_dispatched() {
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "job");
    h.busy_heartbeats("w1");
    h.advance(INTERVAL * 4);
    assert_eq!((h.broker.worker_count(), h.broker.queued(b"echo")), (0, 1));
    h.sent();
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"late"]);
    assert_eq!(h.sent()[0], to("c1", &[b"", b"MDPC01", b"echo", b"late"]));
    h.ready_v01("w2", "echo");
    assert_eq!(h.sent(), vec![], "the answered request is not run again");
    assert_eq!(h.broker.queued(b"echo"), 0);
}

#[test]
fn the_first_delivery_to_stream_a_part_owns_the_reply() {
    let mut h = Harness::new();
    h.ready_v02("w1", "stream");
    h.request_v02("c1", "stream", "job");
    h.send("w1", &[b"MDPW02", &[5]]);
    h.send("w1", &[b"MDPW02", &[5]]); // heartbeats while busy
    h.advance(INTERVAL * 2);
    h.ready_v02("w2", "stream");
    h.advance(INTERVAL);
    assert_eq!(h.broker.worker_count(), 1, "w1 expired");
    h.sent();
    // w2 (the current holder) streams first: it owns the reply.
    h.send("w2", &[b"MDPW02", &[3], b"c1", b"", b"w2 part"]);
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"w1 part"]);
    h.send("w1", &[b"MDPW02", &[4], b"c1", b"", b"w1 end"]);
    h.send("w2", &[b"MDPW02", &[4], b"c1", b"", b"w2 end"]);
    let to_client: Vec<Sent> = h.sent().into_iter().filter(|(to, _)| to == b"c1").collect();
    assert_eq!(
        to_client,
        vec![
            to("c1", &[b"MDPC02", &[2], b"stream", b"w2 part"]),
            to("c1", &[b"MDPC02", &[3], b"stream", b"w2 end"])
        ]
    );
}

#[test]
fn a_worker_heartbeating_less_often_than_the_broker_is_recognised_after_its_expiry() {
    // First-contact input: broker at 100 ms (expiry 300 ms), worker at 500 ms.
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.advance(INTERVAL * 4);
    assert_eq!(h.broker.worker_count(), 0, "expired before its first heartbeat");
    h.advance(INTERVAL);
    h.sent();
    h.send("w1", &[b"", b"MDPW01", &[4]]);
    assert_eq!(h.sent(), vec![disconnect_v01("w1")]);
    assert_eq!(h.broker.stats().heartbeat_mismatches, 1);
    // A worker that simply died and came back much later is not counted
    // twice, nor is an unknown peer that was never registered.
    h.send("w1", &[b"", b"MDPW01", &[4]]);
    h.send("stranger", &[b"", b"MDPW01", &[4]]);
    assert_eq!(h.broker.stats().heartbeat_mismatches, 1);
}

#[test]
fn a_stream_that_has_begun_is_not_spliced_with_another_delivery() {
    // A worker streams a PARTIAL, then its connection closes: its request is
    // not handed to another worker (whose stream would follow the first
    // one's PARTIALs and end in a FINAL); the client's timeout applies.
    let mut h = Harness::new();
    h.ready_v02("w1", "stream");
    h.request_v02("c1", "stream", "job");
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"part"]);
    h.sent();
    h.send("w1", &[b""]);
    h.ready_v02("w2", "stream");
    assert_eq!(h.sent(), vec![], "not redelivered");
    // Expired instead (it may still be working): its own later parts and
    // FINAL still reach the client, and nobody else's.
    let mut h = Harness::new();
    h.ready_v02("w1", "stream");
    h.request_v02("c1", "stream", "job");
    h.send("w1", &[b"MDPW02", &[5]]);
    h.send("w1", &[b"MDPW02", &[5]]);
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"part 1"]);
    h.advance(INTERVAL * 2);
    h.ready_v02("w2", "stream");
    h.advance(INTERVAL * 2);
    assert_eq!(h.broker.worker_count(), 1, "w1 expired");
    let to_w2 = h
        .sent()
        .into_iter()
        .filter(|(to, frames)| to == b"w2" && frames[1] == [2])
        .count();
    assert_eq!(to_w2, 0, "not redelivered");
    h.send("w1", &[b"MDPW02", &[3], b"c1", b"", b"part 2"]);
    h.send("w1", &[b"MDPW02", &[4], b"c1", b"", b"end"]);
    let to_client: Vec<Sent> = h.sent().into_iter().filter(|(to, _)| to == b"c1").collect();
    assert_eq!(
        to_client,
        vec![
            to("c1", &[b"MDPC02", &[2], b"stream", b"part 2"]),
            to("c1", &[b"MDPC02", &[3], b"stream", b"end"])
        ]
    );
}

#[test]
fn a_late_answer_holds_however_long_the_other_delivery_takes() {
    // The record of the deleted worker is forgotten after its retention
    // (busy timeout + expiry); the request's ownership is not.
    let mut h = Harness::with(Config {
        busy_timeout: INTERVAL * 2,
        ..config()
    });
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "job");
    h.busy_heartbeats("w1");
    h.advance(INTERVAL * 2);
    h.ready_v01("w2", "echo");
    h.advance(INTERVAL);
    assert_eq!(h.broker.worker_count(), 1, "w1 expired, the request went to w2");
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"w1 answers"]);
    h.sent();
    // w2 heartbeats while busy for well past the retention, then answers.
    for _ in 0..20 {
        h.send("w2", &[b"", b"MDPW01", &[4]]);
        h.advance(INTERVAL);
    }
    h.sent();
    h.send("w2", &[b"", b"MDPW01", &[3], b"c1", b"", b"w2 answers too"]);
    assert!(h.sent().iter().all(|(to, _)| to != b"c1"), "never a second reply");
}

/// The client each REQUEST sent to `worker` was for, in order.
fn requests_for(sent: &[Sent], worker: &str) -> Vec<Vec<u8>> {
    sent.iter()
        .filter(|(to, frames)| to == worker.as_bytes() && frames.get(2) == Some(&vec![2]))
        .filter_map(|(_, frames)| frames.get(3).cloned())
        .collect()
}

#[test]
fn clients_of_a_service_take_turns_whatever_their_backlog() {
    // 7/MDP: the broker SHOULD serve clients on a fair basis.
    let mut h = Harness::new();
    for i in 0..1000 {
        h.request_v01("greedy", "echo", &format!("g{i}"));
    }
    h.request_v01("polite", "echo", "p");
    h.ready_v01("w1", "echo");
    let mut order = requests_for(&h.sent(), "w1");
    for _ in 0..3 {
        let client = String::from_utf8(order.last().cloned().unwrap_or_default()).unwrap();
        h.send("w1", &[b"", b"MDPW01", &[3], client.as_bytes(), b"", b"ok"]);
        order.extend(requests_for(&h.sent(), "w1"));
    }
    assert_eq!(order, [&b"greedy"[..], b"polite", b"greedy", b"greedy"]);
}

#[test]
fn a_full_queue_drops_new_requests_and_counts_them() {
    let mut h = Harness::with(Config {
        max_queued: Some(2),
        ..config()
    });
    h.request_v01("c1", "nobody", "1");
    h.request_v01("c2", "nobody", "2");
    h.request_v01("c3", "nobody", "3");
    assert_eq!(h.broker.queued(b"nobody"), 2);
    assert_eq!(h.broker.stats().requests_dropped_queue_full, 1);
    h.ready_v01("w1", "nobody");
    assert_eq!(requests_for(&h.sent(), "w1"), [b"c1"]);
}

#[test]
fn a_worker_that_heartbeats_but_holds_a_request_past_the_busy_timeout_is_disconnected() {
    let mut h = Harness::with(Config {
        busy_timeout: INTERVAL * 10,
        ..config()
    });
    h.ready_v01("hostage", "echo");
    h.request_v01("c1", "echo", "job");
    h.sent();
    // It heartbeats on, for ever, and never answers.
    for _ in 0..9 {
        h.send("hostage", &[b"", b"MDPW01", &[4]]);
        h.advance(INTERVAL);
    }
    h.ready_v01("honest", "echo");
    assert_eq!(h.sent().iter().filter(|s| s.0 == b"honest").count(), 0);
    h.send("hostage", &[b"", b"MDPW01", &[4]]);
    h.advance(INTERVAL);
    let sent = h.sent();
    assert!(sent.contains(&disconnect_v01("hostage")), "{sent:?}");
    assert_eq!(
        requests_for(&sent, "honest"),
        [b"c1"],
        "the request goes to another worker"
    );
    assert_eq!(h.broker.stats().busy_timeouts, 1);
    // Its answer, should it come after all, is still the one delivered.
    h.send("hostage", &[b"", b"MDPW01", &[3], b"c1", b"", b"late"]);
    assert!(h.sent().contains(&to("c1", &[b"", b"MDPC01", b"echo", b"late"])));
}

#[test]
fn a_frozen_worker_that_heartbeated_while_busy_before_is_expired_on_liveness() {
    // "Whatever it did before": once it has heartbeated while busy, a
    // worker's later requests are held to liveness too.
    let mut h = Harness::new();
    h.ready_v01("w1", "echo");
    h.request_v01("c1", "echo", "first");
    h.busy_heartbeats("w1");
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"done"]);
    h.request_v01("c1", "echo", "second");
    h.sent();
    h.advance(INTERVAL * 3 + config().timer_resolution());
    assert_eq!(h.broker.worker_count(), 0);
}

#[test]
fn requests_of_a_client_that_does_not_read_wait_until_it_does() {
    let mut h = Harness::new();
    h.request_v01("slow", "echo", "s1");
    h.request_v01("slow", "echo", "s2");
    h.request_v01("fast", "echo", "f1");
    h.broker.client_blocked(b"slow");
    h.ready_v01("w1", "echo");
    h.ready_v01("w2", "echo");
    let sent = h.sent();
    let handed: Vec<_> = requests_for(&sent, "w1")
        .into_iter()
        .chain(requests_for(&sent, "w2"))
        .collect();
    assert_eq!(handed, [b"fast"], "the slow reader's requests wait");
    assert_eq!(h.broker.queued(b"echo"), 2);
    let now = h.now;
    h.broker.client_unblocked(b"slow", now);
    let sent = h.sent();
    assert_eq!(requests_for(&sent, "w2"), [b"slow"]);
}

#[test]
fn parked_requests_of_a_client_that_leaves_are_dropped() {
    let mut h = Harness::new();
    h.request_v01("slow", "echo", "s1");
    h.broker.client_blocked(b"slow");
    h.ready_v01("w1", "echo");
    assert!(requests_for(&h.sent(), "w1").is_empty());
    h.send("slow", &[b""]);
    assert_eq!(h.broker.queued(b"echo"), 0);
    assert_eq!(h.broker.stats().requests_for_departed_clients, 1);
}

#[test]
fn service_names_longer_than_the_bound_are_refused() {
    let mut h = Harness::new();
    let longest = "s".repeat(crate::protocol::MAX_SERVICE_NAME);
    h.ready_v01("w1", &longest);
    assert_eq!(h.broker.worker_count(), 1);
    let too_long = "s".repeat(crate::protocol::MAX_SERVICE_NAME + 1);
    h.ready_v01("w2", &too_long);
    h.request_v01("c1", &too_long, "x");
    assert_eq!((h.broker.worker_count(), h.broker.service_count()), (1, 1));
    assert_eq!(h.sent(), vec![]);
}

#[test]
fn a_request_whose_reply_could_not_fit_the_bounds_is_dropped() {
    let mut h = Harness::with(Config {
        max_frames_per_message: Some(10),
        max_message_size: Some(1024),
        ..config()
    });
    h.ready_v01("w1", "echo");
    // 3 + 4 frames: its echo would be 5 + 4 = 9 frames, within 10.
    h.send("c1", &[b"", b"MDPC01", b"echo", b"1", b"2", b"3", b"4"]);
    assert_eq!(requests_for(&h.sent(), "w1"), [b"c1"]);
    h.send("w1", &[b"", b"MDPW01", &[3], b"c1", b"", b"ok"]);
    h.sent();
    h.send("c2", &[b"", b"MDPC01", b"echo", b"1", b"2", b"3", b"4", b"5"]);
    h.send("c3", &[b"", b"MDPC01", b"echo", &[0; 600]]);
    assert_eq!(h.sent(), vec![]);
    assert_eq!(h.broker.stats().requests_too_large, 2);
}

#[test]
fn one_heartbeat_just_after_a_request_does_not_make_a_classic_worker_a_heartbeating_one() {
    // A classic worker busy past its heartbeat time sends one HEARTBEAT as it
    // finishes; it arrives after its reply, once the next request is its.
    let mut h = Harness::new();
    h.ready_v01("classic", "slow");
    h.request_v01("c1", "slow", "first");
    h.request_v01("c2", "slow", "second");
    h.sent();
    h.send("classic", &[b"", b"MDPW01", &[3], b"c1", b"", b"done"]);
    h.send("classic", &[b"", b"MDPW01", &[4]]);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.broker.worker_count(), 1, "still allowed the busy timeout");
    h.send("classic", &[b"", b"MDPW01", &[3], b"c2", b"", b"done"]);
    assert!(h.sent().contains(&to("c2", &[b"", b"MDPC01", b"slow", b"done"])));
}

#[test]
fn requests_for_many_services_are_bounded_in_all() {
    let mut h = Harness::with(Config {
        max_queued_total: Some(3),
        ..config()
    });
    for (client, service) in [("c1", "a"), ("c2", "b"), ("c3", "c"), ("c4", "d")] {
        h.request_v01(client, service, "x");
    }
    assert_eq!(h.broker.service_count(), 3, "the fourth name was not kept");
    assert_eq!(h.broker.stats().requests_dropped_queue_full, 1);
    h.ready_v01("w1", "a");
    assert_eq!(requests_for(&h.sent(), "w1"), [b"c1"]);
    h.request_v01("c5", "e", "x");
    assert_eq!(h.broker.queued(b"e"), 1, "room again once one was taken");
    h.advance(Duration::from_secs(3));
    h.request_v01("c6", "f", "x");
    h.request_v01("c7", "g", "x");
    assert_eq!(h.broker.queued(b"g"), 1, "expired requests make room too");
}

#[test]
fn a_client_that_fills_every_queue_does_not_keep_others_out() {
    let mut h = Harness::with(Config {
        max_queued: Some(10),
        max_queued_total: Some(30),
        ..config()
    });
    // Three full services, all the flooder's.
    for service in ["a", "b", "c"] {
        for i in 0..10 {
            h.request_v01("flood", service, &i.to_string());
        }
    }
    h.ready_v01("w1", "slow");
    h.request_v01("polite", "slow", "first");
    h.request_v01("polite", "slow", "second");
    assert_eq!(h.broker.queued(b"slow"), 1, "the second waits; the first went to w1");
    assert_eq!(
        h.broker.stats().requests_dropped_queue_full,
        1,
        "a flooder's request made room"
    );
    // The flooder's own newcomer is dropped, not one of its queued ones.
    h.request_v01("flood", "a", "more");
    assert_eq!(h.broker.stats().requests_dropped_queue_full, 2);
    assert_eq!(h.broker.queued(b"slow"), 1);
}

#[test]
fn heartbeats_read_just_after_a_pause_of_the_broker_do_not_make_a_classic_worker_a_heartbeating_one() {
    // The broker did not run for a second: a classic worker's HEARTBEATs,
    // sent while it was idle, are read after the request that arrived
    // meanwhile was handed to it.
    let mut h = Harness::new();
    h.ready_v01("classic", "slow");
    h.advance(INTERVAL);
    h.pause(Duration::from_secs(1));
    h.request_v01("c1", "slow", "long job");
    for _ in 0..4 {
        h.send("classic", &[b"", b"MDPW01", &[4]]);
    }
    h.advance(Duration::from_secs(5));
    assert_eq!(h.broker.worker_count(), 1, "still allowed the busy timeout");
    h.send("classic", &[b"", b"MDPW01", &[3], b"c1", b"", b"done"]);
    assert!(h.sent().contains(&to("c1", &[b"", b"MDPC01", b"slow", b"done"])));
}
