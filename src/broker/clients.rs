//! Client connections the broker knows to be open.
//!
//! libzmq tells the broker when a peer's connection closes
//! (`ZMQ_ROUTER_NOTIFY`: an empty message from that peer's routing id; see
//! `server`). A request whose client has gone is not worth a worker's time:
//! 7/MDP's recommended client closes its socket when it times out and sends
//! the request again on a new one, so every retry of an overloaded service
//! would otherwise be executed once more for nobody. Each request records
//! the connection it came on; a request whose connection has closed is
//! dropped when it reaches the head of its queue (or is due for
//! redelivery), instead of being searched for when the connection closes.
//! A routing id that connects again gets a new connection number, so its
//! new requests are not mistaken for the old ones.
//!
//! It also knows which clients do not read their replies (their reply pipe
//! is full: the I/O loop says so, see `backlog`), and in which services
//! their lanes are parked meanwhile (see `queue`), so that they get their
//! turns back when the client reads again.

use std::collections::HashMap;

use super::core::ServiceKey;

/// One client connection, for as long as it is open; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection(u64);

/// The open client connections, by routing id.
#[derive(Debug, Default)]
pub struct Clients {
    open: HashMap<Box<[u8]>, Connection>,
    next: u64,
    /// Set when libzmq cannot tell of closed connections: then nothing is
    /// recorded (it would never be removed) and every connection is open.
    untracked: bool,
    /// Clients whose reply pipe is full, with the services where one of
    /// their lanes is parked.
    blocked: HashMap<Box<[u8]>, Vec<ServiceKey>>,
}

impl Clients {
    /// Stops tracking: no closing will ever be heard of.
    pub fn untrack(&mut self) {
        self.untracked = true;
        self.open.clear();
    }

    /// The connection a request from `identity` came on, recorded as open.
    pub fn connection(&mut self, identity: &[u8]) -> Connection {
        if self.untracked {
            return Connection(0);
        }
        if let Some(connection) = self.open.get(identity) {
            return *connection;
        }
        self.next += 1;
        let connection = Connection(self.next);
        self.open.insert(identity.into(), connection);
        connection
    }

    /// Records that `identity`'s connection closed; whether it was a client.
    pub fn closed(&mut self, identity: &[u8]) -> bool {
        self.open.remove(identity).is_some()
    }

    /// Whether `connection` is still open.
    pub fn is_open(&self, identity: &[u8], connection: Connection) -> bool {
        self.untracked || self.open.get(identity) == Some(&connection)
    }

    /// `identity` does not read its replies: its requests wait.
    pub fn block(&mut self, identity: &[u8]) {
        self.blocked.entry(identity.into()).or_default();
    }

    /// Whether `identity`'s requests wait for it to read its replies.
    pub fn is_blocked(&self, identity: &[u8]) -> bool {
        !self.blocked.is_empty() && self.blocked.contains_key(identity)
    }

    /// `identity`'s lane in `service` has been parked.
    pub fn parked(&mut self, identity: &[u8], service: ServiceKey) {
        if let Some(services) = self.blocked.get_mut(identity) {
            services.push(service);
        }
    }

    /// `identity` reads its replies again (or has gone): the services
    /// where its lanes are parked.
    pub fn unblock(&mut self, identity: &[u8]) -> Vec<ServiceKey> {
        self.blocked.remove(identity).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_is_not_open_and_a_new_one_is_another() {
        let mut clients = Clients::default();
        let first = clients.connection(b"c1");
        assert_eq!(clients.connection(b"c1"), first);
        assert!(clients.is_open(b"c1", first));
        assert!(clients.closed(b"c1"));
        assert!(!clients.is_open(b"c1", first));
        assert!(!clients.closed(b"c1"), "closing twice finds nothing");
        let second = clients.connection(b"c1");
        assert_ne!(first, second);
        assert!(clients.is_open(b"c1", second) && !clients.is_open(b"c1", first));
    }
}
