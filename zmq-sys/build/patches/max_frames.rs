//! A bound on the frames of one incoming message: the socket option
//! `ZMQ_MAXFRAMES_MD` (number 0x4D44_0001, "MD" and 1).
//!
//! Why: libzmq hands a multipart message to the socket only once its last
//! frame has arrived (the pipe's writer flushes at a message's end), so it
//! holds every earlier frame, at 64 bytes of `zmq_msg_t` each, however
//! short. A frame without a body costs two bytes on the wire, so one peer
//! sending one message of a million empty frames makes the receiver hold
//! 64 MB for 2 MB of traffic, and nothing bounds the count: `ZMQ_MAXMSGSIZE`
//! bounds each frame's size, the high-water mark counts whole messages.
//!
//! The option is an `int`: a positive value is the most frames one message
//! may have; 0 and -1 (the default) mean no limit; other values are EINVAL.
//! `zmq_getsockopt` reads it back. Its number lies far above zmq.h's
//! options (stable and draft ones end below 200), so no libzmq release can
//! give it another meaning unnoticed.
//!
//! Where: `session_base_t::push_msg`, the one door through which every
//! engine (ZMTP 1.0, 2.0 and 3.x over TCP and IPC, and WebSocket) hands a
//! connection's frames to the socket. The session counts the frames of the
//! message it is writing to the pipe; the frame after the limit is refused
//! with `EMSGSIZE`. The stream engine treats any error but `EAGAIN` from
//! the session as fatal for the connection (`error (protocol_error)` in
//! `in_event_internal` and `restart_input`), exactly as it does when a
//! decoder refuses a frame over `ZMQ_MAXMSGSIZE`: `engine_error` rolls the
//! pipe back (the partial message is never flushed to the socket, and its
//! frames are freed), the connection is closed, and other connections are
//! untouched. The count restarts with each message, and whenever the pipe
//! is rolled back: `stream_engine_base_t::error` rolls back before it
//! pushes a ROUTER's disconnect notice (`ZMQ_ROUTER_NOTIFY`), and that
//! notice must not be refused as the limit's next frame.
//!
//! **Bytes.** The same door bounds the bytes of one message: with this
//! patch `ZMQ_MAXMSGSIZE` limits a whole incoming message, all its frames
//! together, and not only each frame (stock libzmq checks each frame in
//! the decoder, which still happens). Otherwise a peer could send 4,096
//! frames of 64 MiB each and the receiver would hold them all before
//! seeing any. A message over the limit costs its sender the connection,
//! as above. A socket without `ZMQ_MAXMSGSIZE` (-1) counts nothing.
//!
//! Caveat: the UDP engine (RADIO/DISH) asserts that the session accepts
//! what it pushes, and its messages have two frames; a limit of 1 on a
//! DISH socket would abort. The broker sets the option on its ROUTER only.

use super::Patch;

pub const PATCHES: &[Patch] = &[
    Patch {
        file: "src/options.hpp",
        find: OPTIONS_INCLUDES_STOCK,
        replace: OPTIONS_INCLUDES_OURS,
    },
    Patch {
        file: "src/options.hpp",
        find: OPTIONS_FIELD_STOCK,
        replace: OPTIONS_FIELD_OURS,
    },
    Patch {
        file: "src/options.cpp",
        find: "    maxmsgsize (-1),\n",
        replace: "    maxmsgsize (-1),\n    max_frames (-1),\n",
    },
    Patch {
        file: "src/options.cpp",
        find: OPTIONS_SET_STOCK,
        replace: OPTIONS_SET_OURS,
    },
    Patch {
        file: "src/options.cpp",
        find: OPTIONS_GET_STOCK,
        replace: OPTIONS_GET_OURS,
    },
    Patch {
        file: "src/session_base.hpp",
        find: SESSION_FIELD_STOCK,
        replace: SESSION_FIELD_OURS,
    },
    Patch {
        file: "src/session_base.cpp",
        find: "    _incomplete_in (false),\n",
        replace: "    _incomplete_in (false),\n    _frames_in (0),\n    _bytes_in (0),\n",
    },
    Patch {
        file: "src/session_base.cpp",
        find: SESSION_PUSH_MSG_STOCK,
        replace: SESSION_PUSH_MSG_OURS,
    },
    Patch {
        file: "src/session_base.cpp",
        find: SESSION_ROLLBACK_STOCK,
        replace: SESSION_ROLLBACK_OURS,
    },
];

const OPTIONS_INCLUDES_STOCK: &str = "#include \"tcp_address.hpp\"\n";

const OPTIONS_INCLUDES_OURS: &str = r#"#include "tcp_address.hpp"

//  majordomo: the most frames one incoming message may have (an int; 0 or
//  -1 for no limit). See zmq-sys/build/patches/max_frames.rs.
#define ZMQ_MAXFRAMES_MD 0x4D440001
"#;

const OPTIONS_FIELD_STOCK: &str = r#"    //  Maximal size of message to handle.
    int64_t maxmsgsize;
"#;

const OPTIONS_FIELD_OURS: &str = r#"    //  Maximal size of message to handle.
    int64_t maxmsgsize;

    //  majordomo: most frames in one incoming message; 0 or -1 for no
    //  limit (ZMQ_MAXFRAMES_MD).
    int max_frames;
"#;

const OPTIONS_SET_STOCK: &str = r#"        case ZMQ_MAXMSGSIZE:
            return do_setsockopt (optval_, optvallen_, &maxmsgsize);
"#;

const OPTIONS_SET_OURS: &str = r#"        case ZMQ_MAXMSGSIZE:
            return do_setsockopt (optval_, optvallen_, &maxmsgsize);

        case ZMQ_MAXFRAMES_MD:
            if (is_int && value >= -1) {
                max_frames = value;
                return 0;
            }
            break;
"#;

const OPTIONS_GET_STOCK: &str = r#"                *(static_cast<int64_t *> (optval_)) = maxmsgsize;
                *optvallen_ = sizeof (int64_t);
                return 0;
            }
            break;
"#;

const OPTIONS_GET_OURS: &str = r#"                *(static_cast<int64_t *> (optval_)) = maxmsgsize;
                *optvallen_ = sizeof (int64_t);
                return 0;
            }
            break;

        case ZMQ_MAXFRAMES_MD:
            if (is_int) {
                *value = max_frames;
                return 0;
            }
            break;
"#;

const SESSION_FIELD_STOCK: &str = r#"    //  is still in the in pipe.
    bool _incomplete_in;
"#;

const SESSION_FIELD_OURS: &str = r#"    //  is still in the in pipe.
    bool _incomplete_in;

    //  majordomo: frames and bytes of the incoming message written to the
    //  pipe so far (see ZMQ_MAXFRAMES_MD and ZMQ_MAXMSGSIZE).
    int _frames_in;
    int64_t _bytes_in;
"#;

const SESSION_PUSH_MSG_STOCK: &str = r#"    if (_pipe && _pipe->write (msg_)) {
        const int rc = msg_->init ();
        errno_assert (rc == 0);
        return 0;
    }
"#;

const SESSION_PUSH_MSG_OURS: &str = r#"    //  majordomo: a message with more frames than options.max_frames costs
    //  the connection (the engine closes it, and the pipe is rolled back).
    if (options.max_frames > 0 && _frames_in >= options.max_frames) {
        errno = EMSGSIZE;
        return -1;
    }
    //  majordomo: so does a message whose frames together exceed
    //  options.maxmsgsize.
    const int64_t size = static_cast<int64_t> (msg_->size ());
    if (options.maxmsgsize >= 0 && size > options.maxmsgsize - _bytes_in) {
        errno = EMSGSIZE;
        return -1;
    }
    const bool more = (msg_->flags () & msg_t::more) != 0;
    if (_pipe && _pipe->write (msg_)) {
        _frames_in = more ? _frames_in + 1 : 0;
        _bytes_in = more ? _bytes_in + size : 0;
        const int rc = msg_->init ();
        errno_assert (rc == 0);
        return 0;
    }
"#;

const SESSION_ROLLBACK_STOCK: &str = r#"void zmq::session_base_t::rollback ()
{
    if (_pipe)
        _pipe->rollback ();
}

void zmq::session_base_t::clean_pipes ()
{
    zmq_assert (_pipe != NULL);

    //  Get rid of half-processed messages in the out pipe. Flush any
    //  unflushed messages upstream.
    _pipe->rollback ();
"#;

const SESSION_ROLLBACK_OURS: &str = r#"void zmq::session_base_t::rollback ()
{
    _frames_in = 0;
    _bytes_in = 0;
    if (_pipe)
        _pipe->rollback ();
}

void zmq::session_base_t::clean_pipes ()
{
    zmq_assert (_pipe != NULL);

    //  Get rid of half-processed messages in the out pipe. Flush any
    //  unflushed messages upstream.
    _frames_in = 0;
    _bytes_in = 0;
    _pipe->rollback ();
"#;
