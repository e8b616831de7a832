//! mdstream: streams PARTIALs to a client that reads late, through a broker
//! that is already running, and reports what the client got: how many
//! parts, how many holes, whether they came in order, and whether the FINAL
//! came. It measures the field input of a stream to a slow reader:
//!
//! ```sh
//! mdstream --broker tcp://127.0.0.1:5555 --parts 20000 --size 1024 --stall-ms 3000
//! mdstream --broker tcp://127.0.0.1:5555 --parts 5000 --size 16384 --stall-ms 3000
//! ```
//!
//! It plays both the MDP/0.2 worker (service `mdstream`) and the client, on
//! loopback, and exits 0 whatever it saw (the report is the result).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Stream PARTIALs to a client that reads late, and report what it got")]
struct Args {
    /// Broker endpoint.
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    broker: String,
    /// PARTIALs to stream before the FINAL.
    #[arg(long, default_value_t = 20_000)]
    parts: u32,
    /// Bytes per PARTIAL (at least 4: each carries its sequence number).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(4..))]
    size: u32,
    /// How long the client reads nothing after sending its request, in ms.
    #[arg(long, default_value_t = 3000)]
    stall_ms: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let context = zmq::Context::new();
    let worker = context.socket(zmq::DEALER)?;
    worker.set_linger(0)?;
    worker.connect(&args.broker)?;
    worker.send_multipart([&b"MDPW02"[..], &[1], b"mdstream"], 0)?;
    let client = context.socket(zmq::DEALER)?;
    client.set_linger(0)?;
    client.connect(&args.broker)?;
    // Wait until the broker knows the worker (mmi.service answers 200).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        client.send_multipart([&b"MDPC02"[..], &[1], b"mmi.service", b"mdstream"], 0)?;
        if client.poll(zmq::POLLIN, 1000)? > 0 && client.recv_multipart(0)?.get(3).is_some_and(|c| c == b"200") {
            break;
        }
        if Instant::now() > deadline {
            return Err("the broker never registered the worker".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    client.send_multipart([&b"MDPC02"[..], &[1], b"mdstream", b"go"], 0)?;
    let started = Instant::now();
    let request = loop {
        let msg = worker.recv_multipart(0)?;
        if msg.get(1).is_some_and(|c| c == &[2]) {
            break msg;
        }
    };
    let address = request.get(2).ok_or("REQUEST without a client address")?.clone();
    let mut body = vec![0u8; args.size as usize];
    for seq in 0..args.parts {
        body[..4].copy_from_slice(&seq.to_be_bytes());
        worker.send_multipart([&b"MDPW02"[..], &[3], &address, b"", &body], 0)?;
    }
    worker.send_multipart([&b"MDPW02"[..], &[4], &address, b"", b"end"], 0)?;
    let sent_in = started.elapsed();
    if let Some(rest) = Duration::from_millis(args.stall_ms).checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let (mut received, mut holes, mut in_order, mut final_came) = (0u32, 0u32, true, false);
    let mut expected = 0u32;
    while client.poll(zmq::POLLIN, 2000)? > 0 {
        let msg = client.recv_multipart(0)?;
        match msg.get(1).map(|c| &c[..]) {
            Some([2]) => {
                let seq = msg
                    .get(3)
                    .and_then(|b| b.get(..4))
                    .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                received += 1;
                if seq > expected {
                    holes += seq - expected;
                } else if seq < expected {
                    in_order = false;
                }
                expected = seq.saturating_add(1);
            }
            Some([3]) => {
                final_came = true;
                break;
            }
            _ => {}
        }
    }
    holes += args.parts.saturating_sub(expected);
    println!(
        "MDSTREAM parts={} size={} stall_ms={} sent_in_ms={} received={} missing={} in_order={} final={}",
        args.parts,
        args.size,
        args.stall_ms,
        sent_in.as_millis(),
        received,
        holes,
        in_order,
        final_came
    );
    Ok(())
}
