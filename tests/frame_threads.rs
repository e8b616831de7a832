//! Frames shared across threads, as a plain program (no test harness, whose
//! own channels valgrind's helgrind cannot follow), so that it can run under
//! valgrind: see docs/architecture.md, "Checking `frame` under valgrind".
//! It also runs, like any test, under `cargo test`.

use majordomo::frame::{self, Frame};

fn main() {
    shares_across_threads();
    // valgrind's helgrind cannot follow libzmq's lock-free queues between
    // its own threads, so a helgrind run skips the sockets.
    if std::env::args().all(|arg| arg != "--shares-only") {
        release_on_the_io_thread();
    }
    println!("frame_threads: 1 passed, 0 failed");
}

/// Shares of one frame made on one thread are read, shared again and
/// dropped on others; the last drop frees the buffer, wherever it happens.
fn shares_across_threads() {
    for len in [0usize, 5, 33, 34, 4096] {
        let original = Frame::from_vec((0..len).map(|i| i as u8).collect());
        let expected = original.to_vec();
        let shares: Vec<Frame> = (0..4).map(|_| original.share()).collect();
        let threads: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let expected = expected.clone();
                std::thread::spawn(move || {
                    let more: Vec<Frame> = (0..50).map(|_| share.share()).collect();
                    assert!(more.iter().all(|f| f[..] == expected[..]));
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

/// A frame sent over a socket is released by libzmq's own threads.
fn release_on_the_io_thread() {
    let context = zmq::Context::new();
    let mut a = context.socket(zmq::PAIR).expect("socket");
    let mut b = context.socket(zmq::PAIR).expect("socket");
    a.bind("inproc://frame-threads").expect("bind");
    b.connect("inproc://frame-threads").expect("connect");
    let body = Frame::from(vec![7u8; 1000]);
    let kept = body.share();
    frame::send_multipart(&mut a, vec![body]).expect("send");
    let got = frame::recv_multipart(&mut b, false).expect("recv");
    assert_eq!(got[0][..], kept[..]);
}
