//! ROUTER routing ids. Stock libzmq 4.3 gives a peer that chooses no
//! routing id an automatic one: a zero byte and a counter that starts at the
//! C library's `rand()`, which nothing seeds, so every process starts at
//! `00 6b8b4567`. It inserts that id without checking whether a peer has
//! already chosen it, and `routing_socket_base_t::add_out_pipe` asserts: one
//! connection that chooses the next id, and one anonymous connection after
//! it, abort the process (and every id a broker forwards tells a worker the
//! next ones). With `ZMQ_ROUTER_HANDOVER`, a peer that chooses an id in use
//! takes that id's traffic from the peer that had it; without it, the
//! newcomer is never read from. After this patch:
//!
//! * an automatic id is a zero byte and four bytes from the kernel's random
//!   source (`getrandom`), drawn again while another peer holds it: no peer
//!   can predict one, and none can collide;
//! * a chosen id that starts with a zero byte (reserved for libzmq's own ids,
//!   `zmq_setsockopt(3)`, `ZMQ_ROUTING_ID`) is not honoured: the peer gets an
//!   automatic id, as if it had chosen none;
//! * without handover, a chosen id that another peer holds stays with that
//!   peer, and the newcomer is served under an automatic id of its own.

use super::Patch;

pub const PATCHES: &[Patch] = &[
    Patch {
        file: "src/router.cpp",
        find: "#include \"err.hpp\"\n",
        replace: "#include \"err.hpp\"\n\
#if defined __linux__\n\
#include <sys/random.h>\n\
#endif\n",
    },
    Patch {
        file: "src/router.cpp",
        find: ROUTER_IDENTIFY_PEER_STOCK,
        replace: ROUTER_IDENTIFY_PEER_OURS,
    },
];

const ROUTER_IDENTIFY_PEER_STOCK: &str = r#"    msg_t msg;
    blob_t routing_id;

    if (locally_initiated_ && connect_routing_id_is_set ()) {
        const std::string connect_routing_id = extract_connect_routing_id ();
        routing_id.set (
          reinterpret_cast<const unsigned char *> (connect_routing_id.c_str ()),
          connect_routing_id.length ());
        //  Not allowed to duplicate an existing rid
        zmq_assert (!has_out_pipe (routing_id));
    } else if (
      options
        .raw_socket) { //  Always assign an integral routing id for raw-socket
        unsigned char buf[5];
        buf[0] = 0;
        put_uint32 (buf + 1, _next_integral_routing_id++);
        routing_id.set (buf, sizeof buf);
    } else if (!options.raw_socket) {
        //  Pick up handshake cases and also case where next integral routing id is set
        msg.init ();
        const bool ok = pipe_->read (&msg);
        if (!ok)
            return false;

        if (msg.size () == 0) {
            //  Fall back on the auto-generation
            unsigned char buf[5];
            buf[0] = 0;
            put_uint32 (buf + 1, _next_integral_routing_id++);
            routing_id.set (buf, sizeof buf);
            msg.close ();
        } else {
            routing_id.set (static_cast<unsigned char *> (msg.data ()),
                            msg.size ());
            msg.close ();

            //  Try to remove an existing routing id entry to allow the new
            //  connection to take the routing id.
            const out_pipe_t *const existing_outpipe =
              lookup_out_pipe (routing_id);

            if (existing_outpipe) {
                if (!_handover)
                    //  Ignore peers with duplicate ID
                    return false;

                //  We will allow the new connection to take over this
                //  routing id. Temporarily assign a new routing id to the
                //  existing pipe so we can terminate it asynchronously.
                unsigned char buf[5];
                buf[0] = 0;
                put_uint32 (buf + 1, _next_integral_routing_id++);
                blob_t new_routing_id (buf, sizeof buf);
"#;

const ROUTER_IDENTIFY_PEER_OURS: &str = r#"    msg_t msg;
    blob_t routing_id;

    //  majordomo: an automatic id is a zero byte and 4 random bytes, drawn
    //  again while another peer holds it (see zmq-sys/build/patches.rs).
    const auto fresh_routing_id = [this] (blob_t &id_) {
        unsigned char buf[5];
        buf[0] = 0;
        do {
            uint32_t value = _next_integral_routing_id++;
#if defined __linux__
            uint32_t random_value;
            if (getrandom (&random_value, sizeof random_value, 0)
                == static_cast<ssize_t> (sizeof random_value))
                value = random_value;
#endif
            put_uint32 (buf + 1, value);
            id_.set (buf, sizeof buf);
        } while (has_out_pipe (id_));
    };

    if (locally_initiated_ && connect_routing_id_is_set ()) {
        const std::string connect_routing_id = extract_connect_routing_id ();
        routing_id.set (
          reinterpret_cast<const unsigned char *> (connect_routing_id.c_str ()),
          connect_routing_id.length ());
        //  Not allowed to duplicate an existing rid
        zmq_assert (!has_out_pipe (routing_id));
    } else if (
      options
        .raw_socket) { //  Always assign an integral routing id for raw-socket
        fresh_routing_id (routing_id);
    } else if (!options.raw_socket) {
        //  Pick up handshake cases and also case where next integral routing id is set
        msg.init ();
        const bool ok = pipe_->read (&msg);
        if (!ok)
            return false;

        //  majordomo: a chosen id that starts with a zero byte lies among
        //  the automatic ones (reserved) and is not honoured.
        if (msg.size () == 0
            || *static_cast<const unsigned char *> (msg.data ()) == 0) {
            fresh_routing_id (routing_id);
            msg.close ();
        } else {
            routing_id.set (static_cast<unsigned char *> (msg.data ()),
                            msg.size ());
            msg.close ();

            //  Try to remove an existing routing id entry to allow the new
            //  connection to take the routing id.
            const out_pipe_t *const existing_outpipe =
              lookup_out_pipe (routing_id);

            if (existing_outpipe && !_handover)
                //  majordomo: the id stays with the peer that holds it; the
                //  newcomer is served under an automatic id of its own.
                fresh_routing_id (routing_id);
            else if (existing_outpipe) {
                //  We will allow the new connection to take over this
                //  routing id. Temporarily assign a new routing id to the
                //  existing pipe so we can terminate it asynchronously.
                blob_t new_routing_id;
                fresh_routing_id (new_routing_id);
"#;
