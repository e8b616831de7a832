//! A service's waiting requests, handed out fairly across clients.
//!
//! 7/MDP says the broker SHOULD serve clients on a fair basis. One FIFO per
//! service is not fair: a client that pipelines 200,000 requests makes
//! every other client of the service wait behind all of them. So each
//! client (routing id) has a *lane* of its own, a FIFO that keeps its
//! requests in order, and the lanes with requests waiting take turns:
//! the next request comes from the lane at the front of `turns`, which then
//! goes to the back if it still holds requests. A client with one request
//! waiting behind another client's 10,000 is served within one request of
//! every other waiting client, and each dispatch costs O(1) whatever the
//! number of clients or requests.
//!
//! Requests given back by a worker (it died or was disconnected holding
//! one) wait in `redelivered`, served before any lane: they keep their
//! place at the head (7/MDP: the broker redelivers them), oldest first.
//!
//! **Expiry.** Each waiting request expires [`Config::request_timeout`]
//! after it arrived. Lanes are each in arrival order but interleave, so
//! the oldest request of the service is found through `arrivals`, a FIFO of
//! (request, lane, time) in arrival order. An entry whose request has left
//! its lane (dispatched, dropped) goes stale and is skipped; stale entries
//! are popped from the front after each dispatch, so the FIFO holds little
//! more than the requests still waiting. A request that is still waiting is
//! at the front of its lane when its entry reaches the front of `arrivals`
//! (everything that arrived before it has left), so both are checked and
//! popped in O(1).
//!
//! **A full queue.** At most [`Config::max_queued`] requests wait. When a
//! request arrives at a full queue, the newest request of the client with
//! the most waiting is dropped to make room for it, unless that client is
//! the newcomer itself or has barely more waiting ("longest queue drop"):
//! a client that floods the queue loses its own requests, not everyone
//! else's. The longest lane is tracked on arrival, as of the last time a
//! lane outgrew the one tracked, so finding it costs O(1); it can be out
//! of date when the tracked lane has been served from since, which only
//! makes the choice of victim approximate.
//!
//! **Slow clients.** A lane whose client does not read its replies (its
//! reply pipe is full: see `backlog`) is *parked* when its turn comes: it
//! leaves `turns` until the client reads again (`Queue::unpark`), so that
//! workers are not spent on replies that could only pile up or be dropped.
//! Its requests still expire.
//!
//! **Memory.** A waiting request is its id, its dialect and its body
//! (shrunk to its length): about 32 bytes, plus 64 bytes per body frame and
//! one `arrivals` entry. A lane is freed as soon as it empties, and the
//! deques shrink once three quarters empty, so a flood that has been
//! served or has expired gives its memory back.
//!
//! [`Config::request_timeout`]: super::Config::request_timeout
//! [`Config::max_queued`]: super::Config::max_queued

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::frame::Frame;
use crate::protocol::Dialect;

use super::clients::{Clients, Connection};
use super::service::Request;

/// Deques and maps shrink only past this capacity: small ones never do.
const SHRINK_MIN_CAPACITY: usize = 64;

/// A request waiting in its client's lane: what the lane does not already
/// say (the client, its connection) and the service does not (its name).
#[derive(Debug)]
pub struct Waiting {
    /// Names it (and its reply stream) for the broker's life.
    pub id: u64,
    /// How the client framed it.
    pub dialect: Dialect,
    /// The body, exactly as long as it is.
    pub body: Box<[Frame]>,
}

/// One client's waiting requests, in order.
#[derive(Debug)]
struct Lane {
    /// The client's routing identity.
    client: Frame,
    /// The client connection its requests came on.
    connection: Connection,
    requests: VecDeque<Waiting>,
    /// Out of turn while its client does not read its replies.
    parked: bool,
}

/// When a request arrived, to find the oldest one for expiry.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    request: u64,
    lane: u32,
    at: Instant,
}

/// What [`Queue::push`] did with a new request.
#[derive(Debug)]
pub enum Pushed {
    /// It waits in its client's lane.
    Queued,
    /// The queue was full: the request is dropped.
    Full,
    /// The queue was full: the newest request of the client with the most
    /// waiting (this one) was dropped to make room.
    Displaced(Frame),
}

/// What [`Queue::prepare`] found before a request could go out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Requests dropped because their client's connection has closed.
    pub departed: u64,
    /// Clients whose lanes were parked (they do not read their replies).
    pub parked: Vec<Box<[u8]>>,
}

/// A service's waiting requests (see the module docs).
#[derive(Debug)]
pub struct Queue {
    redelivered: VecDeque<(Request, Instant)>,
    lanes: HashMap<u32, Lane>,
    lane_of: HashMap<Box<[u8]>, u32>,
    turns: VecDeque<u32>,
    /// Arrival order, kept only when requests expire.
    arrivals: Option<VecDeque<Arrival>>,
    /// Requests in lanes (not counting `redelivered`).
    in_lanes: usize,
    /// The longest lane, as of the last time a lane outgrew it.
    longest: Option<u32>,
    next_lane: u32,
}

impl Queue {
    /// An empty queue; `expires` says whether requests expire (whether
    /// arrival order is worth keeping).
    pub fn new(expires: bool) -> Queue {
        Queue {
            redelivered: VecDeque::new(),
            lanes: HashMap::new(),
            lane_of: HashMap::new(),
            turns: VecDeque::new(),
            arrivals: expires.then(VecDeque::new),
            in_lanes: 0,
            longest: None,
            next_lane: 0,
        }
    }

    /// Requests waiting, redelivered ones included.
    pub fn len(&self) -> usize {
        self.in_lanes + self.redelivered.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new request from `client` (on `connection`) at `now`, at the back
    /// of its lane, unless `limit` requests already wait.
    pub fn push(
        &mut self,
        client: Frame,
        connection: Connection,
        request: Waiting,
        now: Instant,
        limit: Option<usize>,
    ) -> Pushed {
        let mut pushed = Pushed::Queued;
        if limit.is_some_and(|limit| self.len() >= limit) {
            match self.displace_for(&client, connection) {
                Some(victim) => pushed = Pushed::Displaced(victim),
                None => return Pushed::Full,
            }
        }
        let id = request.id;
        let lane = self.lane_for(client, connection);
        let mut length = 0;
        if let Some(entry) = self.lanes.get_mut(&lane) {
            entry.requests.push_back(request);
            length = entry.requests.len();
            self.in_lanes += 1;
        }
        if self
            .longest
            .is_none_or(|longest| longest != lane && self.lane_len(longest) < length)
        {
            self.longest = Some(lane);
        }
        if let Some(arrivals) = &mut self.arrivals {
            arrivals.push_back(Arrival {
                request: id,
                lane,
                at: now,
            });
        }
        pushed
    }

    /// The queue is full and `client` has a request to add: makes room by
    /// dropping the newest request of the longest lane, if that lane is
    /// longer than `client`'s would be (longest queue drop: no client can
    /// keep others out by filling the queue); returns whose request it was.
    /// The longest lane is tracked as of the last time a lane outgrew it,
    /// so it may be out of date (it has since been served from); the lane
    /// whose turn is next stands in when the tracked one has gone.
    pub fn displace_for(&mut self, client: &[u8], connection: Connection) -> Option<Frame> {
        let mine = self
            .lane_of
            .get(client)
            .and_then(|lane| self.lanes.get(lane))
            .filter(|entry| entry.connection == connection)
            .map_or(0, |entry| entry.requests.len());
        let candidate = self
            .longest
            .filter(|lane| self.lanes.contains_key(lane))
            .or_else(|| self.turns.front().copied())?;
        let entry = self.lanes.get_mut(&candidate)?;
        if entry.requests.len() <= mine + 1 {
            return None;
        }
        entry.requests.pop_back();
        self.in_lanes -= 1;
        Some(entry.client.share())
    }

    fn lane_len(&self, lane: u32) -> usize {
        self.lanes.get(&lane).map_or(0, |entry| entry.requests.len())
    }

    /// The lane of `client`'s `connection`, made (and given a turn) if it
    /// has none. A lane left by an earlier connection of the same routing
    /// id holds requests of a client that has gone: they are dropped.
    fn lane_for(&mut self, client: Frame, connection: Connection) -> u32 {
        if let Some(&lane) = self.lane_of.get(&client[..]) {
            if self.lanes.get(&lane).is_some_and(|l| l.connection == connection) {
                return lane;
            }
            self.remove_lane(lane);
        }
        let lane = self.next_lane;
        self.next_lane = self.next_lane.wrapping_add(1);
        self.lane_of.insert(client[..].into(), lane);
        self.lanes.insert(
            lane,
            Lane {
                client,
                connection,
                requests: VecDeque::new(),
                parked: false,
            },
        );
        self.turns.push_back(lane);
        lane
    }

    /// A request given back by a worker, `now`: served before any lane.
    pub fn push_redelivered(&mut self, request: Request, now: Instant) {
        self.redelivered.push_back((request, now));
    }

    /// Drops what cannot go out next (requests of departed clients, taken-
    /// back requests already answered) and parks the lanes of clients that
    /// do not read their replies, until the next request by the rules can
    /// be popped. Returns whether one can, and what was skipped.
    pub fn prepare(&mut self, clients: &Clients, skipped: &mut Skipped) -> bool {
        while let Some((front, _)) = self.redelivered.front() {
            let departed = !clients.is_open(&front.client, front.connection);
            let answered = front.ownership.as_ref().is_some_and(|ownership| !ownership.is_open());
            if !departed && !answered {
                return true;
            }
            skipped.departed += u64::from(departed);
            self.redelivered.pop_front();
        }
        while let Some(&lane) = self.turns.front() {
            let Some(entry) = self.lanes.get_mut(&lane) else {
                self.turns.pop_front();
                continue;
            };
            if !clients.is_open(&entry.client, entry.connection) {
                skipped.departed += entry.requests.len() as u64;
                self.turns.pop_front();
                self.remove_lane(lane);
            } else if clients.is_blocked(&entry.client) {
                entry.parked = true;
                skipped.parked.push(entry.client[..].into());
                self.turns.pop_front();
            } else {
                return true;
            }
        }
        false
    }

    /// The next request by the rules (call [`Queue::prepare`] first): a
    /// redelivered one, else the front of the lane whose turn it is. A
    /// request from a lane goes out under `service`, its name frame.
    pub fn pop(&mut self, service: &Frame) -> Option<Request> {
        if let Some((request, _)) = self.redelivered.pop_front() {
            shrink_deque(&mut self.redelivered);
            return Some(request);
        }
        let lane = self.turns.pop_front()?;
        let entry = self.lanes.get_mut(&lane)?;
        let waiting = entry.requests.pop_front()?;
        self.in_lanes -= 1;
        let request = Request {
            id: waiting.id,
            client: entry.client.share(),
            connection: entry.connection,
            dialect: waiting.dialect,
            service: service.share(),
            body: waiting.body,
            deliveries: 0,
            streamed: false,
            ownership: None,
        };
        if entry.requests.is_empty() {
            self.remove_lane(lane);
        } else {
            shrink_deque(&mut entry.requests);
            self.turns.push_back(lane);
        }
        self.trim_arrivals();
        Some(request)
    }

    /// Gives `client`'s parked lane its turns back; whether it had one.
    pub fn unpark(&mut self, client: &[u8]) -> bool {
        let Some(&lane) = self.lane_of.get(client) else {
            return false;
        };
        match self.lanes.get_mut(&lane) {
            Some(entry) if entry.parked => {
                entry.parked = false;
                self.turns.push_back(lane);
                true
            }
            _ => false,
        }
    }

    /// Drops `client`'s lane (its connection closed); how many requests
    /// it held.
    pub fn remove_client(&mut self, client: &[u8]) -> usize {
        let Some(&lane) = self.lane_of.get(client) else {
            return 0;
        };
        let held = self.lanes.get(&lane).map_or(0, |entry| entry.requests.len());
        self.remove_lane(lane);
        // Its turn, if it has one, is skipped when it comes.
        held
    }

    /// Drops the requests that have waited `timeout` or longer at `now`;
    /// returns how many, and when the next one expires.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> (usize, Option<Instant>) {
        let mut expired = 0;
        while self.redelivered.front().is_some_and(|(_, at)| *at + timeout <= now) {
            self.redelivered.pop_front();
            expired += 1;
        }
        shrink_deque(&mut self.redelivered);
        while let Some(arrival) = self.oldest_arrival() {
            if arrival.at + timeout > now {
                break;
            }
            if let Some(entry) = self.lanes.get_mut(&arrival.lane) {
                entry.requests.pop_front();
                self.in_lanes -= 1;
                expired += 1;
                if entry.requests.is_empty() {
                    self.remove_lane(arrival.lane);
                } else {
                    shrink_deque(&mut entry.requests);
                }
            }
            if let Some(arrivals) = &mut self.arrivals {
                arrivals.pop_front();
            }
        }
        let lanes = self.oldest_arrival().map(|arrival| arrival.at);
        let redelivered = self.redelivered.front().map(|(_, at)| *at);
        let next = match (lanes, redelivered) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (expired, next.map(|at| at + timeout))
    }

    /// The arrival of the oldest request still in a lane, after popping
    /// the stale entries before it.
    fn oldest_arrival(&mut self) -> Option<Arrival> {
        self.trim_arrivals();
        self.arrivals.as_ref()?.front().copied()
    }

    /// Pops stale arrivals (their request has left its lane) off the front.
    fn trim_arrivals(&mut self) {
        let Some(arrivals) = &mut self.arrivals else {
            return;
        };
        while let Some(arrival) = arrivals.front() {
            let waiting = self
                .lanes
                .get(&arrival.lane)
                .and_then(|entry| entry.requests.front())
                .is_some_and(|front| front.id == arrival.request);
            if waiting {
                break;
            }
            arrivals.pop_front();
        }
        shrink_deque(arrivals);
    }

    fn remove_lane(&mut self, lane: u32) {
        let Some(entry) = self.lanes.remove(&lane) else {
            return;
        };
        self.in_lanes -= entry.requests.len();
        if self.lane_of.get(&entry.client[..]) == Some(&lane) {
            self.lane_of.remove(&entry.client[..]);
        }
        shrink_map(&mut self.lanes);
        shrink_map(&mut self.lane_of);
        shrink_deque(&mut self.turns);
    }
}

/// Gives back most of a deque's memory once it is three quarters empty.
fn shrink_deque<T>(deque: &mut VecDeque<T>) {
    if deque.capacity() > SHRINK_MIN_CAPACITY && deque.len() < deque.capacity() / 4 {
        deque.shrink_to(deque.len() * 2);
    }
}

/// Gives back most of a map's memory once it is three quarters empty.
pub fn shrink_map<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > SHRINK_MIN_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    struct Fixture {
        queue: Queue,
        clients: Clients,
        next_id: u64,
        service: Frame,
        now: Instant,
    }

    impl Fixture {
        fn new(expires: bool) -> Fixture {
            Fixture {
                queue: Queue::new(expires),
                clients: Clients::default(),
                next_id: 0,
                service: Frame::from("echo"),
                now: Instant::now(),
            }
        }

        fn push(&mut self, client: &str, limit: Option<usize>) -> Pushed {
            self.next_id += 1;
            let connection = self.clients.connection(client.as_bytes());
            let waiting = Waiting {
                id: self.next_id,
                dialect: Dialect::V01,
                body: vec![Frame::from(format!("{client}-{}", self.next_id))].into_boxed_slice(),
            };
            self.queue
                .push(Frame::from(client), connection, waiting, self.now, limit)
        }

        /// Pops everything that can go out; (client, body) of each.
        fn drain(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            let mut skipped = Skipped::default();
            while self.queue.prepare(&self.clients, &mut skipped) {
                let Some(request) = self.queue.pop(&self.service) else {
                    break;
                };
                out.push(String::from_utf8_lossy(&request.body[0]).into_owned());
            }
            out
        }
    }

    #[test]
    fn clients_take_turns_and_each_keeps_its_order() {
        let mut f = Fixture::new(true);
        for _ in 0..3 {
            f.push("a", None);
        }
        f.push("b", None);
        f.push("c", None);
        f.push("c", None);
        assert_eq!(f.drain(), ["a-1", "b-4", "c-5", "a-2", "c-6", "a-3"]);
        assert!(f.queue.is_empty());
        assert!(f.queue.lanes.is_empty() && f.queue.lane_of.is_empty());
    }

    #[test]
    fn one_request_behind_ten_thousand_goes_out_second() {
        let mut f = Fixture::new(true);
        for _ in 0..10_000 {
            f.push("greedy", None);
        }
        f.push("polite", None);
        let first_two = f.drain().into_iter().take(2).collect::<Vec<_>>();
        assert_eq!(first_two, ["greedy-1", "polite-10001"]);
    }

    #[test]
    fn redelivered_requests_go_first() {
        let mut f = Fixture::new(true);
        f.push("a", None);
        f.push("b", None);
        let mut skipped = Skipped::default();
        assert!(f.queue.prepare(&f.clients, &mut skipped));
        let first = f.queue.pop(&f.service).unwrap();
        f.queue.push_redelivered(first, f.now);
        assert_eq!(f.drain(), ["a-1", "b-2"]);
    }

    #[test]
    fn a_full_queue_drops_new_requests_of_clients_with_no_more_than_others() {
        let mut f = Fixture::new(false);
        assert!(matches!(f.push("a", Some(2)), Pushed::Queued));
        assert!(matches!(f.push("b", Some(2)), Pushed::Queued));
        assert!(matches!(f.push("c", Some(2)), Pushed::Full));
        assert_eq!(f.queue.len(), 2);
    }

    #[test]
    fn a_full_queue_makes_room_by_dropping_the_flooders_newest_request() {
        let mut f = Fixture::new(true);
        for _ in 0..5 {
            f.push("flood", Some(5));
        }
        assert!(
            matches!(f.push("flood", Some(5)), Pushed::Full),
            "its own newcomer is dropped"
        );
        match f.push("polite", Some(5)) {
            Pushed::Displaced(victim) => assert_eq!(&victim[..], b"flood"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.queue.len(), 5);
        assert_eq!(f.drain(), ["flood-1", "polite-7", "flood-2", "flood-3", "flood-4"]);
        assert_eq!(
            f.queue.expire(f.now + TIMEOUT, TIMEOUT),
            (0, None),
            "no arrival left behind"
        );
    }

    #[test]
    fn requests_of_departed_clients_are_dropped_not_popped() {
        let mut f = Fixture::new(true);
        f.push("a", None);
        f.push("a", None);
        f.push("b", None);
        f.clients.closed(b"a");
        let mut skipped = Skipped::default();
        assert!(f.queue.prepare(&f.clients, &mut skipped));
        assert_eq!(skipped.departed, 2);
        assert_eq!(f.drain(), ["b-3"]);
    }

    #[test]
    fn a_blocked_client_is_parked_until_unparked() {
        let mut f = Fixture::new(true);
        f.push("a", None);
        f.push("a", None);
        f.push("b", None);
        f.clients.block(b"a");
        let mut skipped = Skipped::default();
        assert!(f.queue.prepare(&f.clients, &mut skipped));
        assert_eq!(skipped.parked, [Box::from(&b"a"[..])]);
        assert_eq!(f.drain(), ["b-3"]);
        assert_eq!(f.queue.len(), 2, "the parked requests still wait");
        f.clients.unblock(b"a");
        assert!(f.queue.unpark(b"a"));
        assert!(!f.queue.unpark(b"a"), "once");
        assert_eq!(f.drain(), ["a-1", "a-2"]);
    }

    #[test]
    fn requests_expire_oldest_first_across_lanes() {
        let mut f = Fixture::new(true);
        f.push("a", None);
        f.now += Duration::from_millis(300);
        f.push("b", None);
        f.now += Duration::from_millis(300);
        f.push("a", None);
        let t0 = f.now - Duration::from_millis(600);
        let (expired, next) = f.queue.expire(t0 + TIMEOUT, TIMEOUT);
        assert_eq!((expired, next), (1, Some(t0 + Duration::from_millis(300) + TIMEOUT)));
        let (expired, next) = f.queue.expire(t0 + Duration::from_millis(300) + TIMEOUT, TIMEOUT);
        assert_eq!((expired, next), (1, Some(t0 + Duration::from_millis(600) + TIMEOUT)));
        assert_eq!(f.drain(), ["a-3"]);
        assert_eq!(f.queue.expire(t0 + TIMEOUT * 10, TIMEOUT), (0, None));
    }

    #[test]
    fn dispatched_requests_leave_no_arrivals_behind() {
        let mut f = Fixture::new(true);
        for round in 0..1000 {
            f.push(if round % 2 == 0 { "a" } else { "b" }, None);
            assert_eq!(f.drain().len(), 1);
        }
        assert!(f.queue.arrivals.as_ref().unwrap().is_empty());
    }

    #[test]
    fn a_drained_flood_gives_its_memory_back() {
        let mut f = Fixture::new(true);
        for i in 0..20_000 {
            f.push(&format!("client{}", i % 500), None);
        }
        assert_eq!(f.drain().len(), 20_000);
        let q = &f.queue;
        assert!(q.turns.capacity() <= SHRINK_MIN_CAPACITY * 2, "{}", q.turns.capacity());
        assert!(q.arrivals.as_ref().unwrap().capacity() <= SHRINK_MIN_CAPACITY * 2);
        assert!(q.lanes.capacity() <= SHRINK_MIN_CAPACITY * 2, "{}", q.lanes.capacity());
    }

    #[test]
    fn a_new_connection_of_the_same_routing_id_drops_the_old_lane() {
        let mut f = Fixture::new(true);
        f.push("a", None);
        f.clients.closed(b"a");
        f.push("a", None);
        assert_eq!(f.queue.len(), 1);
        assert_eq!(f.drain(), ["a-2"]);
    }
}
