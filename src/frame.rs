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
//! of the crate with `unsafe` code, and every block says why it is sound.
//!
//! Frames received from a socket are sent on without their bytes ever being
//! touched: the broker forwards bodies exactly as libzmq handed them over.

use std::fmt;
use std::ops::Deref;
use std::os::raw::c_int;

use zmq_sys::zmq_msg_t;

/// A single frame of a multipart ZeroMQ message.
pub struct Frame {
    msg: zmq_msg_t,
}

// SAFETY: a `zmq_msg_t` is plain data owned by this value; libzmq's shared
// buffers are reference counted with atomics, so a frame (or a share of it)
// may move to, and be read from, another thread.
unsafe impl Send for Frame {}
unsafe impl Sync for Frame {}

impl Frame {
    /// An empty (zero-length) frame, such as the MDP envelope delimiter.
    pub fn empty() -> Frame {
        let mut msg = zmq_msg_t::default();
        // SAFETY: `msg` is a fresh, writable zmq_msg_t; zmq_msg_init cannot fail.
        unsafe { zmq_sys::zmq_msg_init(&mut msg) };
        Frame { msg }
    }

    /// A frame holding a copy of `data` (for small protocol frames and for
    /// bodies built by the application).
    pub fn from_slice(data: &[u8]) -> Frame {
        let mut msg = zmq_msg_t::default();
        // SAFETY: zmq_msg_init_size allocates `len` bytes (it aborts inside
        // libzmq on out-of-memory rather than returning), and the copy writes
        // exactly `len` bytes into that fresh buffer.
        unsafe {
            zmq_sys::zmq_msg_init_size(&mut msg, data.len());
            if !data.is_empty() {
                let dst = zmq_sys::zmq_msg_data(&mut msg) as *mut u8;
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
        Frame { msg }
    }

    /// Another handle on the same bytes. For frames longer than 33 bytes no
    /// byte is copied: libzmq bumps the buffer's reference count.
    pub fn share(&self) -> Frame {
        let mut msg = zmq_msg_t::default();
        // SAFETY: zmq_msg_copy needs an initialised destination; the source is
        // only read (libzmq takes `*mut` for the refcount, which is atomic).
        // It fails only with EFAULT for an invalid source, which a live Frame
        // never is.
        unsafe {
            zmq_sys::zmq_msg_init(&mut msg);
            zmq_sys::zmq_msg_copy(&mut msg, &self.msg as *const zmq_msg_t as *mut zmq_msg_t);
        }
        Frame { msg }
    }

    /// Receives one frame; returns it with libzmq's "more frames follow" flag.
    fn recv(socket: &mut zmq::Socket, flags: c_int) -> Result<(Frame, bool), zmq::Error> {
        let mut frame = Frame::empty();
        // SAFETY: the socket pointer is live for the borrow; `frame.msg` is
        // initialised, and on error libzmq leaves it empty.
        let rc = unsafe { zmq_sys::zmq_msg_recv(&mut frame.msg, socket.as_mut_ptr(), flags) };
        if rc == -1 {
            return Err(last_error());
        }
        // SAFETY: `frame.msg` holds a received message.
        let more = unsafe { zmq_sys::zmq_msg_more(&frame.msg) } != 0;
        Ok((frame, more))
    }

    /// Sends this frame. On failure the frame is handed back untouched.
    fn send(mut self, socket: &mut zmq::Socket, flags: c_int) -> Result<(), (zmq::Error, Frame)> {
        // SAFETY: on success libzmq takes the content and leaves `msg` empty
        // (our Drop then closes an empty message); on failure it is unchanged.
        let rc = unsafe { zmq_sys::zmq_msg_send(&mut self.msg, socket.as_mut_ptr(), flags) };
        if rc == -1 { Err((last_error(), self)) } else { Ok(()) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: `msg` is always initialised; closing releases our reference.
        unsafe { zmq_sys::zmq_msg_close(&mut self.msg) };
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let ptr = &self.msg as *const zmq_msg_t as *mut zmq_msg_t;
        // SAFETY: zmq_msg_data and zmq_msg_size only read the message; the
        // bytes stay valid while `self` is borrowed. A zero-length message
        // may return a dangling pointer, so it is special-cased.
        unsafe {
            let len = zmq_sys::zmq_msg_size(ptr);
            if len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(zmq_sys::zmq_msg_data(ptr) as *const u8, len)
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
    fn from(data: String) -> Frame {
        Frame::from_slice(data.as_bytes())
    }
}

impl From<Vec<u8>> for Frame {
    fn from(data: Vec<u8>) -> Frame {
        Frame::from_slice(&data)
    }
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
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.into_iter().enumerate() {
        let mut flags = zmq_sys::ZMQ_DONTWAIT as c_int;
        if i < last {
            flags |= zmq_sys::ZMQ_SNDMORE as c_int;
        }
        frame.send(socket, flags).map_err(|(e, _)| e)?;
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
