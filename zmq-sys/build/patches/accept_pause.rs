//! A listener out of file descriptors pauses instead of spinning.
//!
//! Why: when `accept()` fails because the process or the system has no
//! descriptor left (`EMFILE`, `ENFILE`) or the kernel no memory for one
//! (`ENOBUFS`, `ENOMEM`), stock libzmq's TCP listener drops the attempt and
//! returns to its poller; the connection is still waiting in the listen
//! queue, so the socket is still readable, and epoll wakes the I/O thread
//! again at once. A broker whose 256 descriptors were in use, facing 2,000
//! connections, burned a whole core on about 15,000 failed accepts a second
//! for as long as they stayed queued, and its I/O thread (which also moves
//! every message of every connected peer) did nothing else useful. The IPC
//! listener is worse: its assertion does not allow `EMFILE`, `ENOBUFS` or
//! `ENOMEM`, so running out of descriptors aborted the process.
//!
//! What: after such a failure, `stream_listener_base_t` stops polling the
//! listening socket (`reset_pollin`) and arms an I/O-thread timer; when it
//! fires, 100 ms later, polling resumes and queued connections are accepted
//! if descriptors have come free meanwhile (or the pause starts again). The
//! queued connections are not refused: they wait in the kernel's listen
//! queue as they would behind a busy listener, and a peer whose connection
//! overflows the queue retries as TCP does. The cost of running out is then
//! ten failed accepts a second, and a connection made once descriptors are
//! free waits at most one pause. The IPC listener pauses the same way on the
//! same errors, instead of aborting.
//!
//! Why not the other cures: closing a reserved descriptor to accept and
//! drop the connection sheds it at once (ZeroMQ peers then reconnect at
//! once, which is a storm of its own), and it races with other threads that
//! open files; leaving the socket readable is the spin this replaces.
//!
//! Teardown: the timer is cancelled in `process_term` before the socket is
//! closed, as `stream_connecter_base_t` does with its reconnect timer, so
//! it can never fire at a destroyed listener; the destructor asserts that
//! no pause is pending. Other stream listeners (WebSocket, TIPC, VMCI)
//! inherit the pause but do not trigger it: the broker binds TCP and IPC.

use super::Patch;

pub const PATCHES: &[Patch] = &[
    Patch {
        file: "src/stream_listener_base.hpp",
        find: LISTENER_DECLARATIONS_STOCK,
        replace: LISTENER_DECLARATIONS_OURS,
    },
    Patch {
        file: "src/stream_listener_base.hpp",
        find: LISTENER_FIELDS_STOCK,
        replace: LISTENER_FIELDS_OURS,
    },
    Patch {
        file: "src/stream_listener_base.cpp",
        find: "    _socket (socket_)\n{\n}\n",
        replace: "    _socket (socket_),\n    _accept_paused (false)\n{\n}\n",
    },
    Patch {
        file: "src/stream_listener_base.cpp",
        find: "    zmq_assert (_s == retired_fd);\n    zmq_assert (!_handle);\n",
        replace: "    zmq_assert (_s == retired_fd);\n    zmq_assert (!_handle);\n    zmq_assert (!_accept_paused);\n",
    },
    Patch {
        file: "src/stream_listener_base.cpp",
        find: LISTENER_TERM_STOCK,
        replace: LISTENER_TERM_OURS,
    },
    Patch {
        file: "src/tcp_listener.cpp",
        find: TCP_ACCEPT_FAILED_STOCK,
        replace: TCP_ACCEPT_FAILED_OURS,
    },
    Patch {
        file: "src/ipc_listener.cpp",
        find: IPC_ACCEPT_FAILED_STOCK,
        replace: IPC_ACCEPT_FAILED_OURS,
    },
];

const LISTENER_DECLARATIONS_STOCK: &str = r#"    void process_term (int linger_) ZMQ_FINAL;

  protected:
    //  Close the listening socket.
    virtual int close ();
"#;

const LISTENER_DECLARATIONS_OURS: &str = r#"    void process_term (int linger_) ZMQ_FINAL;

    //  majordomo: the end of a pause in accepting (see pause_accepting).
    void timer_event (int id_) ZMQ_FINAL;

  protected:
    //  majordomo: after accept() failed with errno_ (saved and restored),
    //  stops polling the listening socket for a while if the failure was
    //  for want of descriptors or memory, which a retry at once would
    //  meet again (see zmq-sys/build/patches/accept_pause.rs).
    void pause_accepting_after (int errno_);

    //  Close the listening socket.
    virtual int close ();
"#;

const LISTENER_FIELDS_STOCK: &str = r#"    // String representation of endpoint to bind to
    std::string _endpoint;

    ZMQ_NON_COPYABLE_NOR_MOVABLE (stream_listener_base_t)
"#;

const LISTENER_FIELDS_OURS: &str = r#"    // String representation of endpoint to bind to
    std::string _endpoint;

  private:
    //  majordomo: how long accepting pauses, and the pause's timer.
    enum
    {
        accept_pause_ms = 100,
        accept_pause_timer_id = 1
    };

    //  majordomo: true while the pause timer is armed and the listening
    //  socket is not polled.
    bool _accept_paused;

    ZMQ_NON_COPYABLE_NOR_MOVABLE (stream_listener_base_t)
"#;

const LISTENER_TERM_STOCK: &str = r#"void zmq::stream_listener_base_t::process_term (int linger_)
{
    rm_fd (_handle);
"#;

const LISTENER_TERM_OURS: &str = r#"void zmq::stream_listener_base_t::pause_accepting_after (int errno_)
{
    if (errno_ == EMFILE || errno_ == ENFILE || errno_ == ENOBUFS
        || errno_ == ENOMEM) {
        if (!_accept_paused && _handle) {
            reset_pollin (_handle);
            add_timer (accept_pause_ms, accept_pause_timer_id);
            _accept_paused = true;
        }
    }
    errno = errno_;
}

void zmq::stream_listener_base_t::timer_event (int id_)
{
    zmq_assert (id_ == accept_pause_timer_id);
    zmq_assert (_accept_paused);
    _accept_paused = false;
    set_pollin (_handle);
}

void zmq::stream_listener_base_t::process_term (int linger_)
{
    //  majordomo: no pause timer may outlive the listener.
    if (_accept_paused) {
        cancel_timer (accept_pause_timer_id);
        _accept_paused = false;
    }
    rm_fd (_handle);
"#;

const TCP_ACCEPT_FAILED_STOCK: &str = r#"                      || errno == ENOBUFS || errno == ENOMEM || errno == EMFILE
                      || errno == ENFILE);
#endif
        return retired_fd;
    }
"#;

const TCP_ACCEPT_FAILED_OURS: &str = r#"                      || errno == ENOBUFS || errno == ENOMEM || errno == EMFILE
                      || errno == ENFILE);
#endif
#if !defined ZMQ_HAVE_WINDOWS
        pause_accepting_after (errno);
#endif
        return retired_fd;
    }
"#;

const IPC_ACCEPT_FAILED_STOCK: &str = r#"        errno_assert (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                      || errno == ECONNABORTED || errno == EPROTO
                      || errno == ENFILE);
#endif
        return retired_fd;
    }
"#;

const IPC_ACCEPT_FAILED_OURS: &str = r#"        //  majordomo: EMFILE, ENOBUFS and ENOMEM pause accepting instead of
        //  aborting the process.
        errno_assert (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                      || errno == ECONNABORTED || errno == EPROTO
                      || errno == ENFILE || errno == EMFILE || errno == ENOBUFS
                      || errno == ENOMEM);
        pause_accepting_after (errno);
#endif
        return retired_fd;
    }
"#;
