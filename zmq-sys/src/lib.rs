//! libzmq 4.3's C API (`zmq.h`), declared for the `zmq` crate and for
//! majordomo's `frame` module, over the libzmq that `build/main.rs` compiles
//! with our patches.
//!
//! This crate stands in for crates.io's `zmq-sys` 0.12 (the workspace's
//! `[patch.crates-io]`), so it declares the names that `zmq` 0.10 uses, with
//! the types `zmq.h` gives them. It is written from `zmq.h`, not derived
//! from another binding.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_short, c_uint, c_void};

// libzmq's CURVE calls libsodium. Naming the crate is what links its static
// library into every program: rustc leaves a dependency that no code uses
// (and its native libraries) out of the link.
use libsodium_sys as _;

/// A socket's file descriptor, as `ZMQ_FD` and `zmq_pollitem_t` carry it.
pub type RawFd = c_int;

/// The opaque message type: 64 bytes, pointer-aligned (`zmq.h`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct zmq_msg_t {
    _opaque: [u8; 64],
}

impl Default for zmq_msg_t {
    /// All zeroes: storage for `zmq_msg_init*` to initialise.
    fn default() -> zmq_msg_t {
        zmq_msg_t { _opaque: [0; 64] }
    }
}

impl std::fmt::Debug for zmq_msg_t {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("zmq_msg_t")
    }
}

/// One entry of `zmq_poll`'s array: a socket, or a file descriptor when
/// `socket` is null.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct zmq_pollitem_t {
    pub socket: *mut c_void,
    pub fd: RawFd,
    pub events: c_short,
    pub revents: c_short,
}

/// The function libzmq calls to free a buffer given to `zmq_msg_init_data`.
pub type zmq_free_fn = unsafe extern "C" fn(data: *mut c_void, hint: *mut c_void);

extern "C" {
    pub fn zmq_errno() -> c_int;
    pub fn zmq_strerror(errnum: c_int) -> *const c_char;
    pub fn zmq_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int);
    pub fn zmq_has(capability: *const c_char) -> c_int;

    pub fn zmq_ctx_new() -> *mut c_void;
    pub fn zmq_ctx_term(context: *mut c_void) -> c_int;
    pub fn zmq_ctx_shutdown(context: *mut c_void) -> c_int;
    pub fn zmq_ctx_set(context: *mut c_void, option: c_int, optval: c_int) -> c_int;
    pub fn zmq_ctx_get(context: *mut c_void, option: c_int) -> c_int;

    pub fn zmq_msg_init(msg: *mut zmq_msg_t) -> c_int;
    pub fn zmq_msg_init_size(msg: *mut zmq_msg_t, size: usize) -> c_int;
    pub fn zmq_msg_init_data(
        msg: *mut zmq_msg_t,
        data: *mut c_void,
        size: usize,
        ffn: Option<zmq_free_fn>,
        hint: *mut c_void,
    ) -> c_int;
    pub fn zmq_msg_send(msg: *mut zmq_msg_t, socket: *mut c_void, flags: c_int) -> c_int;
    pub fn zmq_msg_recv(msg: *mut zmq_msg_t, socket: *mut c_void, flags: c_int) -> c_int;
    pub fn zmq_msg_close(msg: *mut zmq_msg_t) -> c_int;
    pub fn zmq_msg_move(dest: *mut zmq_msg_t, src: *mut zmq_msg_t) -> c_int;
    pub fn zmq_msg_copy(dest: *mut zmq_msg_t, src: *mut zmq_msg_t) -> c_int;
    pub fn zmq_msg_data(msg: *mut zmq_msg_t) -> *mut c_void;
    pub fn zmq_msg_size(msg: *const zmq_msg_t) -> usize;
    pub fn zmq_msg_more(msg: *const zmq_msg_t) -> c_int;
    pub fn zmq_msg_get(msg: *const zmq_msg_t, property: c_int) -> c_int;
    pub fn zmq_msg_set(msg: *mut zmq_msg_t, property: c_int, optval: c_int) -> c_int;
    pub fn zmq_msg_gets(msg: *const zmq_msg_t, property: *const c_char) -> *const c_char;

    pub fn zmq_socket(context: *mut c_void, kind: c_int) -> *mut c_void;
    pub fn zmq_close(socket: *mut c_void) -> c_int;
    pub fn zmq_setsockopt(socket: *mut c_void, option: c_int, optval: *const c_void, optvallen: usize) -> c_int;
    pub fn zmq_getsockopt(socket: *mut c_void, option: c_int, optval: *mut c_void, optvallen: *mut usize) -> c_int;
    pub fn zmq_bind(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    pub fn zmq_connect(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    pub fn zmq_unbind(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    pub fn zmq_disconnect(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    pub fn zmq_send(socket: *mut c_void, buf: *const c_void, len: usize, flags: c_int) -> c_int;
    pub fn zmq_recv(socket: *mut c_void, buf: *mut c_void, len: usize, flags: c_int) -> c_int;
    pub fn zmq_socket_monitor(socket: *mut c_void, endpoint: *const c_char, events: c_int) -> c_int;

    pub fn zmq_poll(items: *mut zmq_pollitem_t, nitems: c_int, timeout: c_long) -> c_int;
    pub fn zmq_proxy(frontend: *mut c_void, backend: *mut c_void, capture: *mut c_void) -> c_int;
    pub fn zmq_proxy_steerable(
        frontend: *mut c_void,
        backend: *mut c_void,
        capture: *mut c_void,
        control: *mut c_void,
    ) -> c_int;

    pub fn zmq_z85_encode(dest: *mut c_char, data: *const u8, size: usize) -> *mut c_char;
    pub fn zmq_z85_decode(dest: *mut u8, string: *const c_char) -> *mut u8;
    pub fn zmq_curve_keypair(z85_public_key: *mut c_char, z85_secret_key: *mut c_char) -> c_int;
    pub fn zmq_curve_public(z85_public_key: *mut c_char, z85_secret_key: *const c_char) -> c_int;
}

// Socket types.
pub const ZMQ_PAIR: c_uint = 0;
pub const ZMQ_PUB: c_uint = 1;
pub const ZMQ_SUB: c_uint = 2;
pub const ZMQ_REQ: c_uint = 3;
pub const ZMQ_REP: c_uint = 4;
pub const ZMQ_DEALER: c_uint = 5;
pub const ZMQ_ROUTER: c_uint = 6;
pub const ZMQ_PULL: c_uint = 7;
pub const ZMQ_PUSH: c_uint = 8;
pub const ZMQ_XPUB: c_uint = 9;
pub const ZMQ_XSUB: c_uint = 10;
pub const ZMQ_STREAM: c_uint = 11;

// Context options.
pub const ZMQ_IO_THREADS: c_uint = 1;
pub const ZMQ_MAX_SOCKETS: c_uint = 2;

// Socket options.
pub const ZMQ_AFFINITY: c_uint = 4;
pub const ZMQ_ROUTING_ID: c_uint = 5;
pub const ZMQ_SUBSCRIBE: c_uint = 6;
pub const ZMQ_UNSUBSCRIBE: c_uint = 7;
pub const ZMQ_RATE: c_uint = 8;
pub const ZMQ_RECOVERY_IVL: c_uint = 9;
pub const ZMQ_SNDBUF: c_uint = 11;
pub const ZMQ_RCVBUF: c_uint = 12;
pub const ZMQ_RCVMORE: c_uint = 13;
pub const ZMQ_FD: c_uint = 14;
pub const ZMQ_EVENTS: c_uint = 15;
pub const ZMQ_TYPE: c_uint = 16;
pub const ZMQ_LINGER: c_uint = 17;
pub const ZMQ_RECONNECT_IVL: c_uint = 18;
pub const ZMQ_BACKLOG: c_uint = 19;
pub const ZMQ_RECONNECT_IVL_MAX: c_uint = 21;
pub const ZMQ_MAXMSGSIZE: c_uint = 22;
pub const ZMQ_SNDHWM: c_uint = 23;
pub const ZMQ_RCVHWM: c_uint = 24;
pub const ZMQ_MULTICAST_HOPS: c_uint = 25;
pub const ZMQ_RCVTIMEO: c_uint = 27;
pub const ZMQ_SNDTIMEO: c_uint = 28;
pub const ZMQ_LAST_ENDPOINT: c_uint = 32;
pub const ZMQ_ROUTER_MANDATORY: c_uint = 33;
pub const ZMQ_TCP_KEEPALIVE: c_uint = 34;
pub const ZMQ_TCP_KEEPALIVE_CNT: c_uint = 35;
pub const ZMQ_TCP_KEEPALIVE_IDLE: c_uint = 36;
pub const ZMQ_TCP_KEEPALIVE_INTVL: c_uint = 37;
pub const ZMQ_IMMEDIATE: c_uint = 39;
pub const ZMQ_XPUB_VERBOSE: c_uint = 40;
pub const ZMQ_ROUTER_RAW: c_uint = 41;
pub const ZMQ_IPV6: c_uint = 42;
pub const ZMQ_MECHANISM: c_uint = 43;
pub const ZMQ_PLAIN_SERVER: c_uint = 44;
pub const ZMQ_PLAIN_USERNAME: c_uint = 45;
pub const ZMQ_PLAIN_PASSWORD: c_uint = 46;
pub const ZMQ_CURVE_SERVER: c_uint = 47;
pub const ZMQ_CURVE_PUBLICKEY: c_uint = 48;
pub const ZMQ_CURVE_SECRETKEY: c_uint = 49;
pub const ZMQ_CURVE_SERVERKEY: c_uint = 50;
pub const ZMQ_PROBE_ROUTER: c_uint = 51;
pub const ZMQ_REQ_CORRELATE: c_uint = 52;
pub const ZMQ_REQ_RELAXED: c_uint = 53;
pub const ZMQ_CONFLATE: c_uint = 54;
pub const ZMQ_ZAP_DOMAIN: c_uint = 55;
pub const ZMQ_ROUTER_HANDOVER: c_uint = 56;
pub const ZMQ_TOS: c_uint = 57;
pub const ZMQ_CONNECT_ROUTING_ID: c_uint = 61;
pub const ZMQ_GSSAPI_SERVER: c_uint = 62;
pub const ZMQ_GSSAPI_PRINCIPAL: c_uint = 63;
pub const ZMQ_GSSAPI_SERVICE_PRINCIPAL: c_uint = 64;
pub const ZMQ_GSSAPI_PLAINTEXT: c_uint = 65;
pub const ZMQ_HANDSHAKE_IVL: c_uint = 66;
pub const ZMQ_SOCKS_PROXY: c_uint = 68;
pub const ZMQ_XPUB_NODROP: c_uint = 69;
pub const ZMQ_BLOCKY: c_uint = 70;
pub const ZMQ_XPUB_MANUAL: c_uint = 71;
pub const ZMQ_XPUB_WELCOME_MSG: c_uint = 72;
pub const ZMQ_STREAM_NOTIFY: c_uint = 73;
pub const ZMQ_INVERT_MATCHING: c_uint = 74;
pub const ZMQ_HEARTBEAT_IVL: c_uint = 75;
pub const ZMQ_HEARTBEAT_TTL: c_uint = 76;
pub const ZMQ_HEARTBEAT_TIMEOUT: c_uint = 77;
pub const ZMQ_XPUB_VERBOSER: c_uint = 78;
pub const ZMQ_CONNECT_TIMEOUT: c_uint = 79;
pub const ZMQ_TCP_MAXRT: c_uint = 80;
pub const ZMQ_THREAD_SAFE: c_uint = 81;
pub const ZMQ_MULTICAST_MAXTPDU: c_uint = 84;
pub const ZMQ_USE_FD: c_uint = 89;
pub const ZMQ_BINDTODEVICE: c_uint = 92;
/// Draft in libzmq 4.3 (built in here): a ROUTER passes an empty message
/// from a peer's routing id when the peer connects or disconnects.
pub const ZMQ_ROUTER_NOTIFY: c_uint = 97;
/// `ZMQ_ROUTER_NOTIFY` flag: notify connections.
pub const ZMQ_NOTIFY_CONNECT: c_int = 1;
/// `ZMQ_ROUTER_NOTIFY` flag: notify disconnections.
pub const ZMQ_NOTIFY_DISCONNECT: c_int = 2;

// Security mechanisms.
pub const ZMQ_NULL: c_uint = 0;
pub const ZMQ_PLAIN: c_uint = 1;
pub const ZMQ_CURVE: c_uint = 2;
pub const ZMQ_GSSAPI: c_uint = 3;

// Send and receive flags.
pub const ZMQ_DONTWAIT: c_uint = 1;
pub const ZMQ_SNDMORE: c_uint = 2;

// Poll events.
pub const ZMQ_POLLIN: c_uint = 1;
pub const ZMQ_POLLOUT: c_uint = 2;
pub const ZMQ_POLLERR: c_uint = 4;
pub const ZMQ_POLLPRI: c_uint = 8;

// Socket monitor events.
pub const ZMQ_EVENT_CONNECTED: c_uint = 0x0001;
pub const ZMQ_EVENT_CONNECT_DELAYED: c_uint = 0x0002;
pub const ZMQ_EVENT_CONNECT_RETRIED: c_uint = 0x0004;
pub const ZMQ_EVENT_LISTENING: c_uint = 0x0008;
pub const ZMQ_EVENT_BIND_FAILED: c_uint = 0x0010;
pub const ZMQ_EVENT_ACCEPTED: c_uint = 0x0020;
pub const ZMQ_EVENT_ACCEPT_FAILED: c_uint = 0x0040;
pub const ZMQ_EVENT_CLOSED: c_uint = 0x0080;
pub const ZMQ_EVENT_CLOSE_FAILED: c_uint = 0x0100;
pub const ZMQ_EVENT_DISCONNECTED: c_uint = 0x0200;
pub const ZMQ_EVENT_MONITOR_STOPPED: c_uint = 0x0400;
pub const ZMQ_EVENT_ALL: c_uint = 0xFFFF;
pub const ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: c_uint = 0x0800;
pub const ZMQ_EVENT_HANDSHAKE_SUCCEEDED: c_uint = 0x1000;
pub const ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: c_uint = 0x2000;
pub const ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: c_uint = 0x4000;

/// Error numbers: the system's, and libzmq's own above `ZMQ_HAUSNUMERO`.
pub mod errno {
    use std::os::raw::c_int;

    pub use libc::{
        EACCES, EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EAGAIN, EBUSY, ECONNABORTED, ECONNREFUSED, ECONNRESET, EFAULT,
        EHOSTUNREACH, EINPROGRESS, EINTR, EINVAL, EMFILE, EMSGSIZE, ENAMETOOLONG, ENETDOWN, ENETRESET, ENETUNREACH,
        ENOBUFS, ENODEV, ENOENT, ENOMEM, ENOTCONN, ENOTSOCK, ENOTSUP, EPROTO, EPROTONOSUPPORT, ETIMEDOUT,
    };

    /// The base of libzmq's own error numbers (`zmq.h`).
    pub const ZMQ_HAUSNUMERO: c_int = 156_384_712;
    /// The operation is not allowed in the socket's current state.
    pub const EFSM: c_int = ZMQ_HAUSNUMERO + 51;
    /// The peer's protocol is not compatible.
    pub const ENOCOMPATPROTO: c_int = ZMQ_HAUSNUMERO + 52;
    /// The context was terminated.
    pub const ETERM: c_int = ZMQ_HAUSNUMERO + 53;
    /// No I/O thread is available.
    pub const EMTHREAD: c_int = ZMQ_HAUSNUMERO + 54;

    // The numbers zmq.h gives these where the system has none (never on
    // Linux, where the system's are used; kept so that both are recognised).
    pub const ENOTSUP_ALT: c_int = ZMQ_HAUSNUMERO + 1;
    pub const EPROTONOSUPPORT_ALT: c_int = ZMQ_HAUSNUMERO + 2;
    pub const ENOBUFS_ALT: c_int = ZMQ_HAUSNUMERO + 3;
    pub const ENETDOWN_ALT: c_int = ZMQ_HAUSNUMERO + 4;
    pub const EADDRINUSE_ALT: c_int = ZMQ_HAUSNUMERO + 5;
    pub const EADDRNOTAVAIL_ALT: c_int = ZMQ_HAUSNUMERO + 6;
    pub const ECONNREFUSED_ALT: c_int = ZMQ_HAUSNUMERO + 7;
    pub const EINPROGRESS_ALT: c_int = ZMQ_HAUSNUMERO + 8;
    pub const ENOTSOCK_ALT: c_int = ZMQ_HAUSNUMERO + 9;
    pub const EMSGSIZE_ALT: c_int = ZMQ_HAUSNUMERO + 10;
    pub const EAFNOSUPPORT_ALT: c_int = ZMQ_HAUSNUMERO + 11;
    pub const ENETUNREACH_ALT: c_int = ZMQ_HAUSNUMERO + 12;
    pub const ECONNABORTED_ALT: c_int = ZMQ_HAUSNUMERO + 13;
    pub const ECONNRESET_ALT: c_int = ZMQ_HAUSNUMERO + 14;
    pub const ENOTCONN_ALT: c_int = ZMQ_HAUSNUMERO + 15;
    pub const ETIMEDOUT_ALT: c_int = ZMQ_HAUSNUMERO + 16;
    pub const EHOSTUNREACH_ALT: c_int = ZMQ_HAUSNUMERO + 17;
    pub const ENETRESET_ALT: c_int = ZMQ_HAUSNUMERO + 18;
}
