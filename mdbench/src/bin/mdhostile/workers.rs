//! Scenarios about who holds a request and who gets its reply: a worker
//! that freezes, a worker that heartbeats and never answers, a peer that
//! claims another client's routing id, and a client that pipelines without
//! reading while a polite one waits its turn.
//!
//! Each measures what a client sees (how long until its reply, or whether
//! it gets it at all), since that is what a broker's defence is for.

use std::time::{Duration, Instant};

use crate::broker::{Helper, signal};
use crate::peer::{EchoPool, Peer, RawWorker, wait_service};
use crate::{Failure, Report, Scene};

/// Longest a worker takes to register, from its start.
const REGISTER_WITHIN: Duration = Duration::from_secs(5);
/// frozen-worker: requests sent, one at a time.
const FROZEN_REQUESTS: u32 = 30;
/// frozen-worker: how long the first worker works on each request, so that
/// a request still unanswered after [`HOLD_PROBE`] is the one it holds.
const FROZEN_WORK_MS: &str = "300";
const HOLD_PROBE: Duration = Duration::from_millis(100);
/// pipelining-client: what the greedy client sends, and the polite one.
const GREEDY_REQUESTS: usize = 200_000;
const POLITE_REQUESTS: usize = 1_000;
const POLITE_FOR: Duration = Duration::from_secs(20);

/// Two example workers, the first slow; a client sends requests one at a
/// time; the first worker is frozen (SIGSTOP) while it holds one. How long
/// do requests then wait?
pub fn frozen_worker(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let interval = scene.heartbeat.as_millis().to_string();
    let args = |work: &'static str| {
        [
            "--broker",
            &endpoint,
            "--service",
            "frozen",
            "--heartbeat-interval",
            &interval,
            "--work",
            work,
        ]
        .map(str::to_string)
    };
    let slow_args = args(FROZEN_WORK_MS);
    let fast_args = args("0");
    let frozen = Helper::start(scene.mdworker, &slow_args.each_ref().map(String::as_str))?;
    let _other = Helper::start(scene.mdworker, &fast_args.each_ref().map(String::as_str))?;
    wait_service(&scene.context, &endpoint, "frozen", REGISTER_WITHIN)?;
    std::thread::sleep(Duration::from_millis(300)); // the second one too
    let client = Peer::dealer(&scene.context, &endpoint)?;
    let (mut waits, mut held, mut unanswered) = (Vec::new(), None, 0);
    for seq in 0..FROZEN_REQUESTS {
        scene.broker.check()?;
        let body = seq.to_be_bytes();
        let sent = Instant::now();
        client.request(b"frozen", &body)?;
        let mut reply = client.reply_to(b"frozen", &body, sent + HOLD_PROBE)?;
        if reply.is_none() && held.is_none() {
            signal(frozen.pid(), "STOP")?;
            held = Some(seq);
        }
        if reply.is_none() {
            reply = client.reply_to(b"frozen", &body, sent + scene.patience)?;
        }
        unanswered += u32::from(reply.is_none());
        waits.push((seq, sent.elapsed()));
    }
    let held_wait = held
        .and_then(|h| waits.iter().find(|(seq, _)| *seq == h))
        .map(|(_, w)| *w);
    let max = waits.iter().map(|(_, w)| *w).max().unwrap_or_default();
    let over_1s = waits.iter().filter(|(_, w)| *w > Duration::from_secs(1)).count();
    let (held_note, held_cell) = match (held, held_wait) {
        (Some(seq), Some(wait)) => (
            format!("request #{seq}, held by the frozen worker, waited {} ms", ms(wait)),
            format!("held {} ms", ms(wait)),
        ),
        _ => (
            "the slow worker never held a request (nothing frozen)".to_string(),
            "not frozen".to_string(),
        ),
    };
    Ok(Report {
        figure: format!(
            "{held_note}; max wait {} ms over {FROZEN_REQUESTS} requests, {over_1s} over 1 s, {unanswered} \
             unanswered within {} s",
            ms(max),
            scene.patience.as_secs()
        ),
        cell: format!(
            "{held_cell}, max {} ms, {over_1s} > 1 s, {unanswered} unanswered",
            ms(max)
        ),
    })
}

/// A raw worker that heartbeats and never answers, beside a real one: how
/// long until the request it holds is answered by the real one?
pub fn heartbeating_hostage(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let mut hostage = RawWorker::ready(&scene.context, &endpoint, "hostage", scene.heartbeat)?;
    hostage.rejoins = false;
    wait_service(&scene.context, &endpoint, "hostage", REGISTER_WITHIN)?;
    let interval = scene.heartbeat.as_millis().to_string();
    let args = [
        "--broker",
        &endpoint,
        "--service",
        "hostage",
        "--heartbeat-interval",
        &interval,
    ];
    let _real = Helper::start(scene.mdworker, &args)?;
    std::thread::sleep(Duration::from_millis(300)); // registers
    let client = Peer::dealer(&scene.context, &endpoint)?;
    let Some((seq, sent)) = until_held(scene, &client, &mut hostage)? else {
        return Ok(Report::same("the heartbeating worker never got a request"));
    };
    let body = seq.to_be_bytes();
    let deadline = sent + scene.patience;
    while Instant::now() < deadline {
        scene.broker.check()?;
        hostage.pump(Duration::from_millis(10))?; // heartbeats; holds the rest too
        if client
            .reply_to(b"hostage", &body, Instant::now() + Duration::from_millis(10))?
            .is_some()
        {
            let took = ms(sent.elapsed());
            return Ok(Report {
                figure: format!("request held by the heartbeating worker answered by the real one after {took} ms"),
                cell: format!("answered after {took} ms"),
            });
        }
    }
    let patience = scene.patience.as_secs();
    Ok(Report {
        figure: format!("request held by the heartbeating worker UNANSWERED after {patience} s"),
        cell: format!("unanswered after {patience} s"),
    })
}

/// Sends requests one at a time until the hostage worker gets one: which,
/// and when it was sent.
fn until_held(scene: &mut Scene, client: &Peer, hostage: &mut RawWorker) -> Result<Option<(u32, Instant)>, Failure> {
    for seq in 0..10u32 {
        let sent = Instant::now();
        client.request(b"hostage", &seq.to_be_bytes())?;
        while sent.elapsed() < Duration::from_secs(2) {
            scene.broker.check()?;
            if !hostage.pump(Duration::from_millis(5))?.is_empty() {
                return Ok(Some((seq, sent)));
            }
            let reply = client.reply_to(
                b"hostage",
                &seq.to_be_bytes(),
                Instant::now() + Duration::from_millis(5),
            )?;
            if reply.is_some() {
                break;
            }
        }
    }
    Ok(None)
}

/// A client with a chosen routing id waits for a reply; an intruder
/// connects with the same id. Who gets the reply, and does the client
/// still work?
pub fn takeover(scene: &mut Scene) -> Result<Report, Failure> {
    const ID: &[u8] = b"victim-client";
    let endpoint = scene.broker.endpoint.clone();
    let mut worker = RawWorker::ready(&scene.context, &endpoint, "slow", scene.heartbeat)?;
    wait_service(&scene.context, &endpoint, "slow", REGISTER_WITHIN)?;
    let victim = Peer::dealer_with(&scene.context, &endpoint, Some(ID), false)?;
    victim.request(b"slow", b"first")?;
    let first = hold_one(scene, &mut worker)?;
    let intruder = Peer::dealer_with(&scene.context, &endpoint, Some(ID), false)?;
    intruder.request(b"mmi.service", b"slow")?;
    let answered = intruder.recv_within(Duration::from_secs(1))?.is_some();
    worker.reply(&first)?;
    let victim_got = victim.reply_to(b"slow", b"first", Instant::now() + Duration::from_secs(1))?;
    let intruder_got = intruder.reply_to(b"slow", b"first", Instant::now() + Duration::from_millis(500))?;
    victim.request(b"slow", b"second")?;
    let second = hold_one(scene, &mut worker)?;
    worker.reply(&second)?;
    let victim_again = victim.reply_to(b"slow", b"second", Instant::now() + Duration::from_secs(2))?;
    let (intruder_got, victim_got, victim_again) = (
        yes(intruder_got.is_some()),
        yes(victim_got.is_some()),
        yes(victim_again.is_some()),
    );
    Ok(Report {
        figure: format!(
            "intruder with the client's routing id served (its MMI answered): {}; intruder got the client's \
             reply: {intruder_got}; client got it: {victim_got}; client served afterwards: {victim_again}",
            yes(answered)
        ),
        cell: format!("intruder got reply: {intruder_got}; client got it: {victim_got}, later: {victim_again}"),
    })
}

/// The next request the raw worker gets (heartbeating meanwhile).
fn hold_one(scene: &mut Scene, worker: &mut RawWorker) -> Result<crate::peer::Held, Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        scene.broker.check()?;
        if let Some(held) = worker.pump(Duration::from_millis(50))?.into_iter().next() {
            return Ok(held);
        }
    }
    Err(Failure::Setup("the worker got no request within 5 s".to_string()))
}

/// A greedy client pipelines requests and reads no reply; a polite one
/// sends one at a time. The polite one's round trips.
pub fn pipelining_client(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let pool = EchoPool::start(&scene.context, &endpoint, "echo", 2, scene.heartbeat)?;
    wait_service(&scene.context, &endpoint, "echo", REGISTER_WITHIN)?;
    let greedy = Peer::dealer_with(&scene.context, &endpoint, None, true)?;
    for seq in 0..GREEDY_REQUESTS {
        greedy.request(b"echo", &(seq as u64).to_be_bytes())?;
    }
    let polite = Peer::dealer(&scene.context, &endpoint)?;
    let started = Instant::now();
    let mut trips = Vec::with_capacity(POLITE_REQUESTS);
    let mut lost = 0;
    for seq in 0..POLITE_REQUESTS as u32 {
        if started.elapsed() > POLITE_FOR {
            break;
        }
        scene.broker.check()?;
        let body = seq.to_be_bytes();
        let sent = Instant::now();
        polite.request(b"echo", &body)?;
        match polite.reply_to(
            b"echo",
            &body,
            (started + POLITE_FOR).max(sent + Duration::from_secs(1)),
        )? {
            Some(_) => trips.push(sent.elapsed()),
            None => lost += 1,
        }
    }
    trips.sort();
    let at = |q: f64| trips.get(((trips.len() as f64 * q) as usize).min(trips.len().saturating_sub(1)));
    let show = |d: Option<&Duration>| d.map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
    let (p50, p99, max) = (show(at(0.5)), show(at(0.99)), show(trips.last()));
    Ok(Report {
        figure: format!(
            "polite client: {} round trips in {:.1} s, p50 {p50} ms, p99 {p99} ms, max {max} ms, {lost} \
             unanswered; workers served {} of the greedy's {GREEDY_REQUESTS}",
            trips.len(),
            started.elapsed().as_secs_f64(),
            pool.served().saturating_sub(trips.len() as u64),
        ),
        cell: format!("{} trips, p50/p99/max {p50}/{p99}/{max} ms", trips.len()),
    })
}

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

pub fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
