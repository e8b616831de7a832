//! One ZeroMQ message frame that can be moved and shared without copying.
//!
//! Why not `zmq::Message`? The broker must keep every request it hands to a
//! worker, so that it can give the request to another worker if the first one
//! dies (redelivery, a goal of 7/MDP). Keeping a request while also sending
//! it needs two handles on one body. libzmq has exactly that operation,
//! `zmq_msg_copy`, which bumps a reference count on the message's buffer
//! (bodies up to 33 bytes live inline and are copied, which is cheaper than
//! any refcount), but the `zmq` crate does not expose it. This module wraps
//! `zmq_msg_t` directly: receive, send, share, read. It is the only module
//! of the crate with `unsafe` code, and every block says why it is sound;
//! so the socket options the `zmq` crate does not wrap
//! ([`notify_disconnects`], [`set_max_frames`]) are set here too.
//!
//! Frames received from a socket are sent on without their bytes ever being
//! touched: the broker forwards bodies exactly as libzmq handed them over.

use std::alloc::{Layout, handle_alloc_error};
use std::cell::UnsafeCell;
use std::fmt;
use std::ops::Deref;
use std::os::raw::{c_int, c_void};

use zmq_sys::zmq_msg_t;

/// Bodies up to this size live inside the `zmq_msg_t` itself (libzmq's
/// "very small messages"): copying them is cheaper than any allocation.
const INLINE_MAX: usize = 33;

/// A single frame of a multipart ZeroMQ message.
///
/// A frame is `Send` (it may move to another thread) but not `Sync`: the
/// first [`Frame::share`] of a long frame writes into the source message
/// (libzmq turns it into a shared, reference-counted one), so two threads
/// must never share one `&Frame`. Shares made on one thread may go to
/// different threads: their common buffer is reference counted with atomics.
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<majordomo::frame::Frame>();
/// ```
pub struct Frame {
    /// Written through `&self` by [`Frame::share`], hence the cell.
    msg: UnsafeCell<zmq_msg_t>,
}

// SAFETY: a `zmq_msg_t` is owned by this value alone, and the buffer it may
// share with other frames is reference counted with atomics by libzmq (and
// freed by whichever thread drops the last share), so a frame can be moved
// to and dropped on another thread. `Sync` is deliberately not implemented.
unsafe impl Send for Frame {}

impl Frame {
    /// An empty (zero-length) frame, such as the MDP envelope delimiter.
    pub fn empty() -> Frame {
        let frame = Frame {
            msg: UnsafeCell::new(zmq_msg_t::default()),
        };
        // SAFETY: the message is fresh, writable storage; zmq_msg_init
        // cannot fail.
        unsafe { zmq_sys::zmq_msg_init(frame.msg.get()) };
        frame
    }

    /// A frame holding a copy of `data` (for small protocol frames and for
    /// bodies built by the application). Aborts, as Rust's own allocations
    /// do, if memory for it cannot be had.
    pub fn from_slice(data: &[u8]) -> Frame {
        let frame = Frame::empty();
        let msg = frame.msg.get();
        // SAFETY: `msg` is initialised (empty), so zmq_msg_init_size may
        // replace it; on failure it stays empty and we abort before any
        // copy. On success libzmq gives it a buffer of exactly `len` bytes
        // (inline up to 33), which nothing else references yet.
        unsafe {
            if zmq_sys::zmq_msg_init_size(msg, data.len()) != 0 {
                handle_alloc_error(Layout::array::<u8>(data.len()).unwrap_or(Layout::new::<u8>()));
            }
            if !data.is_empty() {
                let dst = zmq_sys::zmq_msg_data(msg).cast::<u8>();
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
        frame
    }

    /// A frame that takes `data`'s buffer without copying it; libzmq frees
    /// it (through Rust's allocator) when the last share is dropped or sent.
    /// Short bodies are copied inline instead, which is cheaper.
    pub fn from_vec(data: Vec<u8>) -> Frame {
        if data.len() <= INLINE_MAX {
            return Frame::from_slice(&data);
        }
        let mut data = std::mem::ManuallyDrop::new(data);
        let (ptr, len, capacity) = (data.as_mut_ptr(), data.len(), data.capacity());
        let frame = Frame::empty();
        // SAFETY: `ptr` is the start of a live allocation of `capacity`
        // bytes from the global allocator, holding `len` initialised bytes,
        // that we no longer own (ManuallyDrop). libzmq calls `free_vec` with
        // `ptr` and the hint (`capacity`) exactly once, when the last share
        // is released; `free_vec` rebuilds and drops the Vec. If libzmq
        // fails (no memory for its reference count), it has not taken the
        // buffer, so we free it ourselves before aborting.
        unsafe {
            let hint = capacity as *mut c_void;
            if zmq_sys::zmq_msg_init_data(frame.msg.get(), ptr.cast(), len, Some(free_vec), hint) != 0 {
                drop(std::mem::ManuallyDrop::into_inner(data));
                handle_alloc_error(Layout::new::<[usize; 4]>());
            }
        }
        frame
    }

    /// Another handle on the same bytes. For frames longer than 33 bytes no
    /// byte is copied: libzmq bumps the buffer's reference count.
    pub fn share(&self) -> Frame {
        let frame = Frame::empty();
        // SAFETY: both messages are initialised. zmq_msg_copy writes into
        // the source (on a long message's first copy it sets the shared flag
        // in the zmq_msg_t and the count in the buffer's heap header), which
        // is why `msg` is an UnsafeCell and Frame is not Sync: no other
        // thread can be using this frame meanwhile. The bytes a `&[u8]` from
        // `deref` may be borrowing are never written: a long message's data
        // is on the heap, apart from the flag, and an inline message is only
        // read. It fails only with EFAULT for an invalid source, which a live
        // Frame never is.
        unsafe {
            zmq_sys::zmq_msg_copy(frame.msg.get(), self.msg.get());
        }
        frame
    }

    /// The address of the peer that sent this frame (libzmq's
    /// `Peer-Address` property: an IP address for tcp://), if it has one.
    pub fn peer_address(&self) -> Option<String> {
        self.property(c"Peer-Address")
    }

    /// The name the peer's handshake established (libzmq's `User-Id`
    /// property: the user id of the ZAP reply that admitted the peer, see
    /// 27/ZAP), if it has one. Every frame a connection delivers carries
    /// it, so it is read per message rather than kept per peer.
    pub fn user_id(&self) -> Option<String> {
        self.property(c"User-Id")
    }

    /// A metadata property of the connection that delivered this frame.
    fn property(&self, name: &std::ffi::CStr) -> Option<String> {
        // SAFETY: the message is initialised, `name` is a NUL-terminated
        // string, and zmq_msg_gets only reads the message. What it returns
        // is NULL or a NUL-terminated string owned by the message's
        // metadata, which lives as long as the message: it is copied
        // before `self` can be released.
        unsafe {
            let value = zmq_sys::zmq_msg_gets(self.msg.get(), name.as_ptr());
            if value.is_null() {
                return None;
            }
            Some(std::ffi::CStr::from_ptr(value).to_string_lossy().into_owned())
        }
    }

    /// Receives one frame; returns it with libzmq's "more frames follow" flag.
    fn recv(socket: &mut zmq::Socket, flags: c_int) -> Result<(Frame, bool), zmq::Error> {
        let mut frame = Frame::empty();
        let msg = frame.msg.get_mut();
        // SAFETY: the socket pointer is live for the borrow; `msg` is
        // initialised, and on error libzmq leaves it empty.
        let rc = unsafe { zmq_sys::zmq_msg_recv(msg, socket.as_mut_ptr(), flags) };
        if rc == -1 {
            return Err(last_error());
        }
        // SAFETY: `msg` holds a received message.
        let more = unsafe { zmq_sys::zmq_msg_more(msg) } != 0;
        Ok((frame, more))
    }

    /// Sends this frame. On failure the frame is handed back untouched.
    fn send(mut self, socket: &mut zmq::Socket, flags: c_int) -> Result<(), (zmq::Error, Frame)> {
        // SAFETY: on success libzmq takes the content and leaves `msg` empty
        // (our Drop then closes an empty message); on failure it is unchanged.
        let rc = unsafe { zmq_sys::zmq_msg_send(self.msg.get_mut(), socket.as_mut_ptr(), flags) };
        if rc == -1 { Err((last_error(), self)) } else { Ok(()) }
    }
}

/// libzmq's callback for a buffer adopted by [`Frame::from_vec`].
///
/// # Safety
///
/// `data` and `hint` must be the pointer and capacity of a `Vec<u8>` that
/// [`Frame::from_vec`] gave up, and this must be the only call for it.
unsafe extern "C" fn free_vec(data: *mut c_void, hint: *mut c_void) {
    // SAFETY: by the contract above, `data` was allocated by the global
    // allocator for `hint` bytes of u8; a length of 0 drops no element and
    // frees exactly that allocation.
    drop(unsafe { Vec::from_raw_parts(data.cast::<u8>(), 0, hint as usize) });
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: `msg` is always initialised; closing releases our reference.
        unsafe { zmq_sys::zmq_msg_close(self.msg.get_mut()) };
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let msg = self.msg.get();
        // SAFETY: zmq_msg_data and zmq_msg_size only read the message, and
        // nothing writes the bytes while `self` is borrowed (see `share`);
        // they live as long as the message. A zero-length message may return
        // a dangling pointer, so it is special-cased.
        unsafe {
            let len = zmq_sys::zmq_msg_size(msg);
            if len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(zmq_sys::zmq_msg_data(msg).cast::<u8>(), len)
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({})", crate::hex::Hex(self))
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Frame {}

impl From<&[u8]> for Frame {
    fn from(data: &[u8]) -> Frame {
        Frame::from_slice(data)
    }
}

impl From<&str> for Frame {
    fn from(data: &str) -> Frame {
        Frame::from_slice(data.as_bytes())
    }
}

impl<const N: usize> From<&[u8; N]> for Frame {
    fn from(data: &[u8; N]) -> Frame {
        Frame::from_slice(data)
    }
}

impl From<String> for Frame {
    /// Takes the buffer without copying it (see [`Frame::from_vec`]).
    fn from(data: String) -> Frame {
        Frame::from_vec(data.into_bytes())
    }
}

impl From<Vec<u8>> for Frame {
    /// Takes the buffer without copying it (see [`Frame::from_vec`]).
    fn from(data: Vec<u8>) -> Frame {
        Frame::from_vec(data)
    }
}

/// Makes a ROUTER socket pass an empty message from a peer's routing id
/// when that peer's connection closes (`ZMQ_ROUTER_NOTIFY`, which the `zmq`
/// crate does not wrap). It lives here because this is the crate's one
/// module with `unsafe` code.
///
/// `ZMQ_ROUTER_NOTIFY` is in libzmq 4.3's draft API, which this workspace's
/// libzmq builds in; a libzmq without it (crates.io's `zmq-sys`, which a
/// program outside this workspace gets) fails with `EINVAL`.
pub fn notify_disconnects(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    // zmq.h's values (ZMQ_ROUTER_NOTIFY, ZMQ_NOTIFY_DISCONNECT), here rather
    // than from zmq_sys so that the crate builds on any zmq-sys 0.12.
    const ZMQ_ROUTER_NOTIFY: c_int = 97;
    const ZMQ_NOTIFY_DISCONNECT: c_int = 2;
    let value: c_int = ZMQ_NOTIFY_DISCONNECT;
    // SAFETY: the socket pointer is live for the borrow, and `value` is a
    // c_int that outlives the call, passed with its exact size, as
    // zmq_setsockopt(3) requires for an integer option.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            ZMQ_ROUTER_NOTIFY,
            (&raw const value).cast::<c_void>(),
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == -1 { Err(last_error()) } else { Ok(()) }
}

/// The socket option that bounds the frames of one incoming message, which
/// only this workspace's libzmq has (`zmq-sys/build/patches/max_frames.rs`;
/// the number is ours, far above zmq.h's).
const ZMQ_MAXFRAMES_MD: c_int = 0x4D44_0001;

/// Bounds the frames of each message the socket receives from a peer: a
/// peer that sends a message with more than `max` frames is disconnected by
/// libzmq, its partial message discarded, before the application sees any
/// of it; other peers are unaffected. `None` (or `Some(0)`) removes the
/// bound. Like every libzmq option that concerns connections, it applies to
/// connections made after it is set, so set it before `bind`. Values above
/// `i32::MAX` are taken as `i32::MAX`.
///
/// Why a bound on frames when `ZMQ_MAXMSGSIZE` bounds bytes: libzmq keeps
/// every frame of a message until its last one arrives, at 64 bytes of
/// bookkeeping per frame, and an empty frame is two bytes on the wire.
///
/// A libzmq without the option (crates.io's `zmq-sys`) fails with `EINVAL`.
pub fn set_max_frames(socket: &mut zmq::Socket, max: Option<u32>) -> Result<(), zmq::Error> {
    let value: c_int = match max {
        None => -1,
        Some(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
    };
    // SAFETY: the socket pointer is live for the borrow, and `value` is a
    // c_int that outlives the call, passed with its exact size, as
    // zmq_setsockopt(3) requires for an integer option.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            ZMQ_MAXFRAMES_MD,
            (&raw const value).cast::<c_void>(),
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == -1 { Err(last_error()) } else { Ok(()) }
}

/// The bound [`set_max_frames`] set: `None` when there is none.
pub fn max_frames(socket: &mut zmq::Socket) -> Result<Option<u32>, zmq::Error> {
    let mut value: c_int = 0;
    let mut size = std::mem::size_of::<c_int>();
    // SAFETY: the socket pointer is live for the borrow; `value` is a
    // writable c_int and `size` holds its exact size, so libzmq writes at
    // most that many bytes (zmq_getsockopt(3)) and stores the size it wrote.
    let rc = unsafe {
        zmq_sys::zmq_getsockopt(
            socket.as_mut_ptr(),
            ZMQ_MAXFRAMES_MD,
            (&raw mut value).cast::<c_void>(),
            &raw mut size,
        )
    };
    if rc == -1 {
        return Err(last_error());
    }
    Ok(u32::try_from(value).ok().filter(|&n| n > 0))
}

fn last_error() -> zmq::Error {
    // SAFETY: zmq_errno reads a thread-local errno.
    zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() })
}

/// Receives one whole multipart message. With `dontwait`, returns
/// `Err(EAGAIN)` when nothing is waiting. The frames of one message arrive
/// atomically, so only the first receive can block or fail with EAGAIN.
pub fn recv_multipart(socket: &mut zmq::Socket, dontwait: bool) -> Result<Vec<Frame>, zmq::Error> {
    let flags = if dontwait { zmq_sys::ZMQ_DONTWAIT as c_int } else { 0 };
    let mut frames = Vec::with_capacity(8);
    let (first, mut more) = Frame::recv(socket, flags)?;
    frames.push(first);
    while more {
        let (frame, next) = Frame::recv(socket, 0)?;
        frames.push(frame);
        more = next;
    }
    Ok(frames)
}

/// Sends a multipart message without ever blocking. Frames are moved into
/// libzmq. If the first frame cannot be sent (no route to that peer, or its
/// queue is full), nothing is sent and the error is returned; libzmq
/// accepts the rest of a message once its first frame went through.
pub fn send_multipart(socket: &mut zmq::Socket, frames: Vec<Frame>) -> Result<(), zmq::Error> {
    try_send_multipart(socket, frames).map_err(|(error, _)| error)
}

/// Like [`send_multipart`], but a message that could not be sent at all
/// comes back with the error, whole, to be sent again later (the frames
/// are empty if libzmq failed part way, which it does not do for a message
/// whose first frame it took).
pub fn try_send_multipart(socket: &mut zmq::Socket, frames: Vec<Frame>) -> Result<(), (zmq::Error, Vec<Frame>)> {
    let last = frames.len().saturating_sub(1);
    let mut frames = frames.into_iter();
    let mut i = 0;
    while let Some(frame) = frames.next() {
        let mut flags = zmq_sys::ZMQ_DONTWAIT as c_int;
        if i < last {
            flags |= zmq_sys::ZMQ_SNDMORE as c_int;
        }
        if let Err((error, frame)) = frame.send(socket, flags) {
            let unsent = if i == 0 {
                std::iter::once(frame).chain(frames).collect()
            } else {
                Vec::new()
            };
            return Err((error, unsent));
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_slice_round_trips_bytes() {
        assert_eq!(&Frame::from_slice(b"hello")[..], b"hello");
        assert_eq!(&Frame::empty()[..], b"");
        assert!(Frame::from_slice(b"").is_empty());
    }

    #[test]
    fn share_sees_the_same_bytes_for_short_and_long_frames() {
        for len in [0usize, 5, 33, 34, 4096] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let a = Frame::from_slice(&data);
            let b = a.share();
            drop(a);
            assert_eq!(&b[..], &data[..]);
        }
    }

    #[test]
    fn long_frames_are_shared_not_copied() {
        let a = Frame::from_slice(&[7u8; 1000]);
        let b = a.share();
        assert_eq!(a.as_ptr(), b.as_ptr(), "a long frame's share points at the same buffer");
    }

    #[test]
    fn a_vec_is_adopted_without_a_copy_and_freed_once() {
        let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let (ptr, expected) = (data.as_ptr(), data.clone());
        let frame = Frame::from(data);
        assert_eq!(frame.as_ptr(), ptr, "the frame uses the Vec's own buffer");
        let share = frame.share();
        drop(frame);
        assert_eq!(&share[..], &expected[..]);
        // Short, empty and spare-capacity Vecs too.
        assert_eq!(&Frame::from(vec![1u8, 2, 3])[..], &[1, 2, 3]);
        assert!(Frame::from(Vec::new()).is_empty());
        let mut spare = Vec::with_capacity(1000);
        spare.extend_from_slice(&[5u8; 100]);
        assert_eq!(&Frame::from(spare)[..], &[5u8; 100][..]);
        assert_eq!(
            &Frame::from(String::from("x").repeat(50))[..],
            "x".repeat(50).as_bytes()
        );
    }

    #[test]
    fn shares_of_one_frame_are_used_and_dropped_on_many_threads() {
        for len in [0usize, 5, 33, 34, 4096] {
            let original = Frame::from_vec((0..len).map(|i| i as u8).collect());
            let expected = original.to_vec();
            let shares: Vec<Frame> = (0..8).map(|_| original.share()).collect();
            let threads: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    let expected = expected.clone();
                    std::thread::spawn(move || {
                        // Each thread shares its own handle further, reads, drops.
                        let more: Vec<Frame> = (0..100).map(|_| share.share()).collect();
                        assert!(more.iter().all(|f| f[..] == expected[..]));
                        drop(more);
                        share
                    })
                })
                .collect();
            drop(original);
            for thread in threads {
                let share = thread.join().expect("thread");
                assert_eq!(&share[..], &expected[..]);
            }
        }
    }

    #[test]
    fn the_frame_bound_is_set_read_back_and_removed() {
        let ctx = zmq::Context::new();
        let mut socket = ctx.socket(zmq::ROUTER).unwrap();
        assert_eq!(max_frames(&mut socket).unwrap(), None, "no bound by default");
        set_max_frames(&mut socket, Some(100)).unwrap();
        assert_eq!(max_frames(&mut socket).unwrap(), Some(100));
        set_max_frames(&mut socket, Some(u32::MAX)).unwrap();
        assert_eq!(max_frames(&mut socket).unwrap(), Some(i32::MAX as u32));
        set_max_frames(&mut socket, Some(0)).unwrap();
        assert_eq!(max_frames(&mut socket).unwrap(), None);
        set_max_frames(&mut socket, Some(7)).unwrap();
        set_max_frames(&mut socket, None).unwrap();
        assert_eq!(max_frames(&mut socket).unwrap(), None);
    }

    #[test]
    fn frames_move_over_inproc_sockets_unchanged() {
        let ctx = zmq::Context::new();
        let mut a = ctx.socket(zmq::PAIR).unwrap();
        let mut b = ctx.socket(zmq::PAIR).unwrap();
        a.bind("inproc://frame-test").unwrap();
        b.connect("inproc://frame-test").unwrap();
        let frames = vec![Frame::from("one"), Frame::empty(), Frame::from_slice(&[9u8; 100])];
        send_multipart(&mut a, frames).unwrap();
        let got = recv_multipart(&mut b, false).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..], b"one");
        assert!(got[1].is_empty());
        assert_eq!(&got[2][..], &[9u8; 100][..]);
        assert_eq!(recv_multipart(&mut b, true).unwrap_err(), zmq::Error::EAGAIN);
    }
}
