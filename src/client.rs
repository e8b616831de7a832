//! MDP clients: [`Client`] for one request at a time with timeout and
//! retries, [`AsyncClient`] for many requests in flight.
//!
//! [`Client`] follows the recovery strategy 7/MDP recommends: poll with a
//! timeout, and if no reply comes, close the socket, open a new one and send
//! the request again, a set number of times, then report failure. A socket
//! that saw a failed attempt is never used again, so a late reply to an
//! abandoned attempt can never be mistaken for the answer to the next one;
//! while requests succeed, the client keeps its one connection.
//!
//! Sockets are created with `ZMQ_IMMEDIATE`, so a request is only queued on
//! a completed connection: that is how a client tells "no broker there"
//! ([`ClientError::Unreachable`]) from "the broker took the request but no
//! reply came" ([`ClientError::Timeout`]).

use std::fmt;
use std::time::{Duration, Instant};

use log::debug;

use crate::curve::CurveClient;
use crate::frame::{self, Frame};
use crate::poll;
use crate::protocol::{self, ClientRequest, Dialect, Flavor, Framing, ProtocolError, ReplyKind, Version};

/// Settings shared by [`Client`] and [`AsyncClient`]. Start from
/// [`ClientConfig::default`] and change the fields you need:
///
/// ```
/// use std::time::Duration;
/// use majordomo::{ClientConfig, Version};
///
/// let mut config = ClientConfig::default();
/// config.version = Version::V02;
/// config.timeout = Duration::from_secs(1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The protocol version to speak (MDP/0.2 is needed for PARTIAL
    /// replies). Default: MDP/0.1.
    pub version: Version,
    /// MDP/0.2 only: whether commands start with an empty frame. 18/MDP
    /// drops it ([`Framing::Bare`], the default); majortomo's broker
    /// requires it ([`Framing::Delimited`]). MDP/0.1 always has it.
    pub framing: Framing,
    /// MDP/0.2 only: 18/MDP's client command numbers ([`Flavor::Rfc`], the
    /// default) or majortomo's ([`Flavor::Majortomo`], which its broker
    /// requires, together with [`Framing::Delimited`]).
    pub flavor: Flavor,
    /// How long to wait for a reply (for [`Client`], on each attempt; a
    /// PARTIAL restarts it). Default: 2,500 ms.
    pub timeout: Duration,
    /// How many times [`Client::request`] sends a request, each on a new
    /// socket, before it gives up (7/MDP's "retries"). Default: 3.
    pub attempts: u32,
    /// Connect with CURVE (26/CURVEZMQ): the broker's public key and this
    /// client's keys, set on every socket the client opens. A broker that
    /// refuses the handshake looks like one that cannot be reached
    /// ([`ClientError::Unreachable`]). Default: none (no encryption).
    pub curve: Option<CurveClient>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            version: Version::V01,
            framing: Framing::Bare,
            flavor: Flavor::Rfc,
            timeout: Duration::from_millis(2500),
            attempts: 3,
            curve: None,
        }
    }
}

impl ClientConfig {
    /// The dialect requests go out in.
    fn dialect(&self) -> Dialect {
        match self.version {
            Version::V01 => Dialect::V01,
            Version::V02 => Dialect {
                version: Version::V02,
                framing: self.framing,
                flavor: self.flavor,
            },
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker took the request but no reply came, on any attempt.
    Timeout {
        /// How many attempts were made.
        attempts: u32,
    },
    /// No connection to the broker could be made, on any attempt.
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
    },
    /// The reply did not decode as an MDP client reply.
    Malformed(ProtocolError),
    /// The reply named another service or protocol version than the request.
    Mismatched(String),
    /// A socket call failed (for example, a malformed endpoint).
    Socket(zmq::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Timeout { attempts } => write!(f, "no reply after {attempts} attempt(s)"),
            ClientError::Unreachable { endpoint } => write!(f, "broker at {endpoint} cannot be reached"),
            ClientError::Malformed(_) => write!(f, "malformed reply"),
            ClientError::Mismatched(what) => write!(f, "reply does not match the request: {what}"),
            ClientError::Socket(_) => write!(f, "socket call failed"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Malformed(e) => Some(e),
            ClientError::Socket(e) => Some(e),
            _ => None,
        }
    }
}

impl From<zmq::Error> for ClientError {
    fn from(e: zmq::Error) -> ClientError {
        ClientError::Socket(e)
    }
}

/// One reply (or piece of a streamed reply) as a client receives it.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// The service that answered (empty from brokers that omit it).
    pub service: Vec<u8>,
    /// The body frames.
    pub body: Vec<Frame>,
    /// `true` for the FINAL (or MDP/0.1 REPLY), `false` for a PARTIAL.
    pub last: bool,
}

fn dealer(context: &zmq::Context, endpoint: &str, curve: Option<&CurveClient>) -> Result<zmq::Socket, ClientError> {
    let socket = context.socket(zmq::DEALER)?;
    socket.set_linger(0)?;
    socket.set_immediate(true)?;
    // So that brokers at IPv6 addresses (tcp://[::1]:5555) can be reached.
    socket.set_ipv6(true)?;
    if let Some(curve) = curve {
        curve.apply(&socket)?;
    }
    socket.connect(endpoint)?;
    Ok(socket)
}

fn encode_request(dialect: Dialect, service: &[u8], body: &[Frame]) -> Vec<Frame> {
    let mut frames = Vec::with_capacity(5 + body.len());
    let request = ClientRequest {
        service: Frame::from_slice(service),
        body: body.iter().map(Frame::share).collect(),
    };
    protocol::encode_request(&mut frames, dialect, request);
    frames
}

/// Waits until `socket` has a completed connection to send on.
fn wait_writable(socket: &zmq::Socket, within: Duration) -> Result<bool, ClientError> {
    let ready = socket.poll(zmq::POLLOUT, poll::timeout_ms(within))?;
    Ok(ready > 0)
}

/// Receives and decodes one reply, checking it answers `service` in the
/// version of `expected`; `None` if nothing came before `deadline`.
/// Replies that name no service (majortomo's flavor) are not checked.
fn recv_reply(
    socket: &mut zmq::Socket,
    expected: Dialect,
    service: Option<&[u8]>,
    deadline: Instant,
) -> Result<Option<Reply>, ClientError> {
    if socket.poll(zmq::POLLIN, poll::until_ms(deadline))? == 0 {
        return Ok(None);
    }
    let frames = frame::recv_multipart(socket, false)?;
    let (dialect, cmd) = protocol::decode_at_client(frames, expected.flavor).map_err(ClientError::Malformed)?;
    if dialect.version != expected.version {
        return Err(ClientError::Mismatched(format!("answered in {}", dialect.version)));
    }
    if let Some(service) = service
        && !cmd.service.is_empty()
        && cmd.service[..] != *service
    {
        let got = String::from_utf8_lossy(&cmd.service).into_owned();
        return Err(ClientError::Mismatched(format!("answered by service '{got}'")));
    }
    Ok(Some(Reply {
        service: cmd.service.to_vec(),
        body: cmd.body,
        last: cmd.kind == ReplyKind::Final,
    }))
}

/// A synchronous MDP client: one request at a time, with timeout and
/// retries on a fresh socket.
///
/// # Examples
///
/// ```no_run
/// use majordomo::{Client, ClientConfig};
///
/// let mut client = Client::new("tcp://localhost:5555", ClientConfig::default());
/// let reply = client.request("echo", ["hello"])?;
/// assert_eq!(&reply[0][..], b"hello");
/// if !client.service_exists("billing")? {
///     eprintln!("no worker serves 'billing'");
/// }
/// # Ok::<(), majordomo::ClientError>(())
/// ```
pub struct Client {
    endpoint: String,
    config: ClientConfig,
    /// The connection, kept while requests succeed.
    socket: Option<zmq::Socket>,
    context: zmq::Context,
}

impl Client {
    /// A client for the broker at `endpoint`; it connects on first use.
    pub fn new(endpoint: &str, config: ClientConfig) -> Client {
        Client {
            endpoint: endpoint.to_owned(),
            config,
            socket: None,
            context: zmq::Context::new(),
        }
    }

    /// Sends `body` to `service` and returns the reply's body. For MDP/0.2,
    /// PARTIAL replies are skipped; use [`Client::request_streaming`] to see
    /// them.
    pub fn request<B: Into<Frame>>(
        &mut self,
        service: &str,
        body: impl IntoIterator<Item = B>,
    ) -> Result<Vec<Frame>, ClientError> {
        self.request_streaming(service, body, |_| {})
    }

    /// Like [`Client::request`], handing each PARTIAL's body to
    /// `on_partial` as it arrives. Each PARTIAL restarts the timeout.
    pub fn request_streaming<B: Into<Frame>>(
        &mut self,
        service: &str,
        body: impl IntoIterator<Item = B>,
        mut on_partial: impl FnMut(Vec<Frame>),
    ) -> Result<Vec<Frame>, ClientError> {
        let body: Vec<Frame> = body.into_iter().map(Into::into).collect();
        let attempts = self.config.attempts.max(1);
        let mut reached = false;
        for attempt in 1..=attempts {
            // Taken out, and put back only if this attempt succeeds: a
            // socket that saw a failure is never used again.
            let mut socket = match self.socket.take() {
                Some(socket) => socket,
                None => dealer(&self.context, &self.endpoint, self.config.curve.as_ref())?,
            };
            if !wait_writable(&socket, self.config.timeout)? {
                debug!("attempt {attempt}: no connection to {}", self.endpoint);
                continue;
            }
            reached = true;
            let dialect = self.config.dialect();
            frame::send_multipart(&mut socket, encode_request(dialect, service.as_bytes(), &body))?;
            let mut deadline = Instant::now() + self.config.timeout;
            while let Some(reply) = recv_reply(&mut socket, dialect, Some(service.as_bytes()), deadline)? {
                if reply.last {
                    self.socket = Some(socket);
                    return Ok(reply.body);
                }
                on_partial(reply.body);
                deadline = Instant::now() + self.config.timeout;
            }
            debug!(
                "attempt {attempt}: no reply from '{service}' within {:?}",
                self.config.timeout
            );
        }
        if reached {
            Err(ClientError::Timeout { attempts })
        } else {
            Err(ClientError::Unreachable {
                endpoint: self.endpoint.clone(),
            })
        }
    }

    /// Asks the broker (8/MMI `mmi.service`) whether `service` has at least
    /// one worker.
    pub fn service_exists(&mut self, service: &str) -> Result<bool, ClientError> {
        let reply = self.request("mmi.service", [service])?;
        match reply.first().map(|f| &f[..]) {
            Some(b"200") => Ok(true),
            Some(b"404") => Ok(false),
            other => Err(ClientError::Mismatched(format!(
                "mmi.service answered {:?}",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }
}

/// An asynchronous MDP client: sends requests without waiting and takes
/// replies as they arrive, over one DEALER socket.
///
/// MDP carries no request identifier, so replies come back in the order
/// workers finish; put whatever you need to match them in the body.
///
/// # Examples
///
/// ```no_run
/// use majordomo::{AsyncClient, ClientConfig};
///
/// let mut client = AsyncClient::connect("tcp://localhost:5555", ClientConfig::default())?;
/// for i in 0..100 {
///     client.send("echo", [format!("request {i}")])?;
/// }
/// while client.outstanding() > 0 {
///     let reply = client.recv()?;
///     println!("{}", String::from_utf8_lossy(&reply.body[0]));
/// }
/// # Ok::<(), majordomo::ClientError>(())
/// ```
pub struct AsyncClient {
    socket: zmq::Socket,
    config: ClientConfig,
    endpoint: String,
    outstanding: usize,
    _context: zmq::Context,
}

impl AsyncClient {
    /// Connects to the broker at `endpoint`.
    pub fn connect(endpoint: &str, config: ClientConfig) -> Result<AsyncClient, ClientError> {
        let context = zmq::Context::new();
        let socket = dealer(&context, endpoint, config.curve.as_ref())?;
        socket.set_sndtimeo(i32::try_from(config.timeout.as_millis()).unwrap_or(i32::MAX))?;
        Ok(AsyncClient {
            socket,
            config,
            endpoint: endpoint.to_owned(),
            outstanding: 0,
            _context: context,
        })
    }

    /// Sends a request. Waits at most the timeout for a connection to the
    /// broker; fails with [`ClientError::Unreachable`] if there is none.
    pub fn send<B: Into<Frame>>(
        &mut self,
        service: &str,
        body: impl IntoIterator<Item = B>,
    ) -> Result<(), ClientError> {
        let body: Vec<Frame> = body.into_iter().map(Into::into).collect();
        if !wait_writable(&self.socket, self.config.timeout)? {
            return Err(ClientError::Unreachable {
                endpoint: self.endpoint.clone(),
            });
        }
        frame::send_multipart(
            &mut self.socket,
            encode_request(self.config.dialect(), service.as_bytes(), &body),
        )?;
        self.outstanding += 1;
        Ok(())
    }

    /// The next reply or PARTIAL, waiting at most the timeout.
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + self.config.timeout;
        match recv_reply(&mut self.socket, self.config.dialect(), None, deadline)? {
            Some(reply) => {
                if reply.last {
                    self.outstanding = self.outstanding.saturating_sub(1);
                }
                Ok(reply)
            }
            None => Err(ClientError::Timeout { attempts: 1 }),
        }
    }

    /// Requests sent whose FINAL reply has not arrived yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .field("connected", &self.socket.is_some())
            .finish()
    }
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .field("outstanding", &self.outstanding)
            .finish()
    }
}
