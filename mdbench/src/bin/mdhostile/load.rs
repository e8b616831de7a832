//! Scenarios about what a peer can make the broker hold or do: a flood of
//! requests nobody serves, very large messages, log lines into a pipe
//! nobody reads, and a signal.
//!
//! Memory is read from /proc/PID/status (VmRSS now, VmHWM the peak), since
//! what matters is what the broker's process costs the machine.

use std::time::{Duration, Instant};

use crate::peer::{EchoPool, Message, Peer, RawWorker, round_trip, wait_service};
use crate::workers::{ms, yes};
use crate::{Failure, Report, Scene};

const REGISTER_WITHIN: Duration = Duration::from_secs(5);
/// flood-memory: how many DEALERs flood, and serve the flood.
const FLOODERS: usize = 4;
const FLOOD_WORKERS: usize = 16;
/// flood-memory: longest the broker may take to take in, or to serve, the
/// whole flood.
const FLOOD_WITHIN: Duration = Duration::from_secs(90);
/// flood-memory: the serving stops early after this long without a reply.
const STALL: Duration = Duration::from_secs(10);
/// big-messages: frames of the many-frames message, and of each of the
/// five held ones (empty frames: 2 bytes each on the wire).
const MANY_FRAMES: usize = 1_000_000;
const HELD_MESSAGES: usize = 5;
/// big-messages: longest the broker may take to take in one message.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// log-flood: the service name's size, and the unregistered heartbeaters.
const NAME_BYTES: usize = 10 << 20;
const HEARTBEATERS: usize = 600;
const ECHO_WITHIN: Duration = Duration::from_secs(5);

/// Requests for a service with no worker: the broker's memory per queued
/// request, then after all are served.
pub fn flood_memory(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let before = scene.broker.memory_kib("VmRSS")?;
    let (flooders, started) = flood(scene)?;
    // Each flooder's MMI request is answered after all its requests are in.
    for flooder in &flooders {
        flooder.request(b"mmi.service", b"flood")?;
    }
    let mut all_in = 0;
    for flooder in &flooders {
        all_in += usize::from(answered(scene, flooder, started + FLOOD_WITHIN)?);
    }
    let taken_in = started.elapsed();
    let queued = scene.broker.memory_kib("VmRSS")?;
    let pool = EchoPool::start(&scene.context, &endpoint, "flood", FLOOD_WORKERS, scene.heartbeat)?;
    let served_from = Instant::now();
    let replies = count_replies(scene, &flooders, scene.requests)?;
    let serving = served_from.elapsed();
    drop(pool);
    let after = scene.broker.memory_kib("VmRSS")?;
    // Per request the broker kept: all of them were served from the queue
    // (a broker with a smaller --max-queued keeps fewer than were sent).
    let per_request = (queued.saturating_sub(before) * 1024) as f64 / replies.max(1) as f64;
    let (requests, left) = (scene.requests, mib(after.saturating_sub(before)));
    Ok(Report {
        figure: format!(
            "RSS {} MiB before; {requests} requests sent, {all_in} of {FLOODERS} flooders' MMI answered after \
             theirs, within {:.1} s: +{} MiB = {per_request:.0} B per \
             queued request; {replies} of {requests} served in {:.1} s; after: +{left} MiB over before",
            mib(before),
            taken_in.as_secs_f64(),
            mib(queued.saturating_sub(before)),
            serving.as_secs_f64(),
        ),
        cell: format!("{per_request:.0} B/queued request; {replies}/{requests} served; +{left} MiB after"),
    })
}

/// The broker's `--request-timeout` in flood-expiry and random-services,
/// and how long after it the memory is read (the broker idle by then).
const EXPIRY: Duration = Duration::from_secs(3);
const AFTER_EXPIRY: Duration = Duration::from_secs(4);

/// Requests for a service with no worker, left to expire: the broker's
/// memory per queued request, then once all have expired and it is idle.
pub fn flood_expiry(scene: &mut Scene) -> Result<Report, Failure> {
    let before = scene.broker.memory_kib("VmRSS")?;
    let (flooders, started) = flood(scene)?;
    expire_and_measure(scene, &flooders, started, before, scene.requests)
}

/// Sends the scene's requests (16-byte bodies: their number) for `flood`
/// from [`FLOODERS`] DEALERs without high-water marks; the DEALERs, and
/// when the flood began.
fn flood(scene: &Scene) -> Result<(Vec<Peer>, Instant), Failure> {
    let flooders = (0..FLOODERS)
        .map(|_| Peer::dealer_with(&scene.context, &scene.broker.endpoint, None, true))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    for seq in 0..scene.requests {
        flooders[seq % FLOODERS].request(b"flood", &(seq as u128).to_be_bytes())?;
    }
    Ok((flooders, started))
}

/// Requests each for a service of its own (`--max-queued` is per service):
/// the broker's memory per request, then once all have expired.
pub fn random_services(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let before = scene.broker.memory_kib("VmRSS")?;
    let flooder = Peer::dealer_with(&scene.context, &endpoint, None, true)?;
    let requests = scene.requests / 5;
    let started = Instant::now();
    for seq in 0..requests {
        let name = format!("random.{seq:012}");
        flooder.request(name.as_bytes(), &(seq as u128).to_be_bytes())?;
    }
    expire_and_measure(scene, std::slice::from_ref(&flooder), started, before, requests)
}

/// Waits until the flooders' requests are in, reads the memory, waits for
/// them to expire, and reads it again.
fn expire_and_measure(
    scene: &mut Scene,
    flooders: &[Peer],
    started: Instant,
    before: u64,
    requests: usize,
) -> Result<Report, Failure> {
    for flooder in flooders {
        flooder.request(b"mmi.service", b"flood")?;
    }
    let mut all_in = 0;
    for flooder in flooders {
        all_in += usize::from(answered(scene, flooder, started + FLOOD_WITHIN)?);
    }
    let queued = scene.broker.memory_kib("VmRSS")?;
    let in_at = Instant::now();
    while in_at.elapsed() < EXPIRY + AFTER_EXPIRY {
        scene.broker.check()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = scene.broker.memory_kib("VmRSS")?;
    let per_request = (queued.saturating_sub(before) * 1024) as f64 / requests.max(1) as f64;
    let left = mib(after.saturating_sub(before));
    Ok(Report {
        figure: format!(
            "RSS {} MiB before; {requests} requests, {all_in} of {} senders' MMI answered after theirs: +{} MiB = \
             {per_request:.0} B per request; {:.0} s after they expired (broker idle): +{left} MiB over before",
            mib(before),
            flooders.len(),
            mib(queued.saturating_sub(before)),
            AFTER_EXPIRY.as_secs_f64(),
        ),
        cell: format!("{per_request:.0} B/request; +{left} MiB after expiry"),
    })
}

/// Whether the MMI answer `peer` is owed comes before `deadline`.
fn answered(scene: &mut Scene, peer: &Peer, deadline: Instant) -> Result<bool, Failure> {
    while Instant::now() < deadline {
        scene.broker.check()?;
        if let Some(reply) = peer.recv_within(Duration::from_millis(100))?
            && reply.get(2).is_some_and(|s| s == b"mmi.service")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads replies on every flooder until `expected` came, or none came for
/// [`STALL`]: how many came.
fn count_replies(scene: &mut Scene, flooders: &[Peer], expected: usize) -> Result<usize, Failure> {
    let deadline = Instant::now() + FLOOD_WITHIN;
    let (mut count, mut last) = (0, Instant::now());
    while count < expected && Instant::now() < deadline && last.elapsed() < STALL {
        scene.broker.check()?;
        let mut items: Vec<_> = flooders.iter().map(|f| f.socket().as_poll_item(zmq::POLLIN)).collect();
        if zmq::poll(&mut items, 100)? == 0 {
            continue;
        }
        for flooder in flooders {
            while let Ok(reply) = flooder.socket().recv_multipart(zmq::DONTWAIT) {
                count += usize::from(reply.get(2).is_some_and(|s| s == b"flood"));
                last = Instant::now();
            }
        }
    }
    Ok(count)
}

/// One very large body, one message of a million frames, five held
/// messages of a million empty frames: the broker's peak memory, whether
/// each sender was disconnected, and whether the broker still serves.
pub fn big_messages(scene: &mut Scene) -> Result<Report, Failure> {
    let big = vec![b'x'; scene.big_bytes];
    let mut many: Vec<&[u8]> = vec![b"", majordomo::protocol::MDPC01, b"held"];
    many.extend(std::iter::repeat_n(&b"y"[..], MANY_FRAMES));
    let big_fate = send_and_settle(scene, "big", &[b"", majordomo::protocol::MDPC01, b"held", &big])?;
    drop(big);
    let many_fate = send_and_settle(scene, "many", &many)?;
    for frame in &mut many[3..] {
        *frame = b"";
    }
    let mut held_fates = Vec::new();
    for i in 0..HELD_MESSAGES {
        held_fates.push(send_and_settle(scene, &format!("held-{i}"), &many)?);
    }
    let peak = scene.broker.memory_kib("VmHWM")?;
    let now = scene.broker.memory_kib("VmRSS")?;
    let echo = echo_check(scene)?;
    let refused = held_fates.iter().filter(|f| f.disconnected).count();
    let answered = held_fates.iter().filter(|f| f.answered).count();
    let (peak, big_mib) = (mib(peak), scene.big_bytes >> 20);
    Ok(Report {
        figure: format!(
            "{big_mib} MiB body: {big_fate}; {MANY_FRAMES}-frame message: {many_fate}; {HELD_MESSAGES} held \
             messages of {MANY_FRAMES} empty frames: {answered} senders kept (MMI after answered), {refused} disconnected; broker \
             peak RSS {peak} MiB (now {} MiB); echo afterwards: {echo}",
            mib(now)
        ),
        cell: format!(
            "peak {peak} MiB; {big_mib} MiB: {big_fate}; 1M frames: {many_fate}; {answered}/{HELD_MESSAGES} held answered after; \
             echo {echo}"
        ),
    })
}

/// What became of one message's sender, which stays connected (a broker
/// may drop what a departed client asked for).
struct Fate {
    disconnected: bool,
    answered: bool,
    _sender: (Peer, zmq::Socket),
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.disconnected, self.answered) {
            (true, _) => write!(f, "sender disconnected"),
            (false, true) => write!(f, "sender kept (its MMI after it answered)"),
            (false, false) => write!(f, "no answer, sender kept"),
        }
    }
}

/// Sends `frames` from a fresh DEALER followed by an MMI request, and waits
/// until the MMI answer comes (all taken in) or the DEALER is disconnected.
fn send_and_settle(scene: &mut Scene, name: &str, frames: &[&[u8]]) -> Result<Fate, Failure> {
    let (sender, monitor) = Peer::watched(&scene.context, &scene.broker.endpoint, name)?;
    sender.send(frames)?;
    sender.request(b"mmi.service", b"held")?;
    let deadline = Instant::now() + SETTLE_WITHIN;
    let (mut disconnected, mut answered) = (false, false);
    while Instant::now() < deadline && !answered && !disconnected {
        scene.broker.check()?;
        disconnected = monitor.poll(zmq::POLLIN, 0)? > 0;
        let answer: Option<Message> = sender.recv_within(Duration::from_millis(50))?;
        answered = answer.is_some_and(|a| a.get(2).is_some_and(|s| s == b"mmi.service"));
    }
    Ok(Fate {
        disconnected,
        answered,
        _sender: (sender, monitor),
    })
}

/// Whether an echo round trip through a fresh worker and client completes.
fn echo_check(scene: &mut Scene) -> Result<String, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    scene.broker.check()?;
    let _pool = EchoPool::start(&scene.context, &endpoint, "echo", 1, scene.heartbeat)?;
    if let Err(failure) = wait_service(&scene.context, &endpoint, "echo", ECHO_WITHIN) {
        scene.broker.check()?;
        return Ok(format!("NONE ({failure})"));
    }
    Ok(match round_trip(&scene.context, &endpoint, "echo", ECHO_WITHIN)? {
        Some(took) => format!("ok in {} ms", ms(took)),
        None => format!("NONE within {} s", ECHO_WITHIN.as_secs()),
    })
}

/// Standard error is a pipe nobody reads; a READY with a huge service name
/// and heartbeats from unregistered peers. Does an echo round trip still
/// complete?
pub fn log_flood(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let _pool = EchoPool::start(&scene.context, &endpoint, "echo", 1, scene.heartbeat)?;
    wait_service(&scene.context, &endpoint, "echo", REGISTER_WITHIN)?;
    let name = "n".repeat(NAME_BYTES);
    let _huge = RawWorker::ready(&scene.context, &endpoint, &name, scene.heartbeat)?;
    let heartbeaters = (0..HEARTBEATERS)
        .map(|_| {
            let peer = Peer::dealer(&scene.context, &endpoint)?;
            peer.send(&[b"", majordomo::protocol::MDPW01, &[4]])?;
            Ok(peer)
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    std::thread::sleep(Duration::from_millis(500));
    let unread = round_trip(&scene.context, &endpoint, "echo", ECHO_WITHIN)?;
    scene.broker.read_log();
    std::thread::sleep(Duration::from_secs(1));
    let read = round_trip(&scene.context, &endpoint, "echo", ECHO_WITHIN)?;
    drop(heartbeaters);
    let show = |trip: Option<Duration>| {
        trip.map_or(format!("NONE within {} s", ECHO_WITHIN.as_secs()), |t| {
            format!("ok in {} ms", ms(t))
        })
    };
    let (unread, read) = (show(unread), show(read));
    Ok(Report {
        figure: format!(
            "10 MiB service name + {HEARTBEATERS} unregistered HEARTBEATs: echo while stderr unread: {unread}; \
             after it is read: {read}"
        ),
        cell: format!("echo, stderr unread: {unread}; read: {read}"),
    })
}

/// SIGHUP: alive a second later, and still serving?
pub fn sighup(scene: &mut Scene) -> Result<Report, Failure> {
    let endpoint = scene.broker.endpoint.clone();
    let _pool = EchoPool::start(&scene.context, &endpoint, "echo", 1, scene.heartbeat)?;
    wait_service(&scene.context, &endpoint, "echo", REGISTER_WITHIN)?;
    scene.broker.signal("HUP")?;
    std::thread::sleep(Duration::from_secs(1));
    let alive = scene.broker.check().is_ok();
    let trip = round_trip(&scene.context, &endpoint, "echo", ECHO_WITHIN)?;
    let echo = trip.map_or("NONE within 5 s".to_string(), |t| format!("ok in {} ms", ms(t)));
    Ok(Report::same(&format!(
        "alive 1 s after SIGHUP: {}; echo: {echo}",
        yes(alive)
    )))
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}
