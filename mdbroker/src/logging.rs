//! How the daemon logs, and why a stalled standard error cannot stop the
//! broker.
//!
//! The broker serves every peer from one thread, and that thread logs. If
//! it wrote its lines to standard error itself, a pipe that nobody reads
//! (a stalled supervisor or log shipper) would fill up (64 KiB on Linux)
//! and the next line would block the broker in `write`: no peer would be
//! served until someone read the pipe. So a line is formatted on the thread
//! that logs it (by env_logger, with its usual filter and format) and put
//! on a queue, and a writer thread of its own takes everything queued,
//! writes it to standard error in one write, and lets the next lines gather
//! for a millisecond ([`GATHER`]): a busy log (`-v`) costs a few writes and
//! wake-ups per millisecond at most, not one per line.
//!
//! The queue holds at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes,
//! counting those the writer is writing. When it is full a new line is
//! dropped and counted, and the thread that logged it goes on at once.
//! Where lines were dropped, the writer writes one line of its own saying
//! how many (`mdbroker: 1234 log lines lost while stderr was blocked`), as
//! soon as it gets there. Losing log lines is the price of a stalled
//! reader; losing service is not.
//!
//! On a normal exit the daemon gives the writer up to [`FLUSH_WAIT`] to
//! write what is queued, so the last lines are not lost; a writer still
//! stuck in `write` after that is left behind with the process.
//!
//! env_logger hands each record to a [`Target::Pipe`] in one `write_all` of
//! the whole formatted line (env_logger 0.11; a test below keeps that true),
//! and [`QueueWriter`] takes everything it is given in one `write`, so one
//! `write` call here is one whole log line.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use env_logger::{Target, WriteStyle};

/// Most lines waiting for the writer; a line more is dropped.
pub const MAX_LINES: usize = 1024;

/// Most bytes waiting for the writer (1 MiB); a line that would pass it is
/// dropped.
pub const MAX_BYTES: usize = 1 << 20;

/// How long a normal exit waits for the queued lines to be written.
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// The installed logger's writer thread, to be finished on exit.
#[derive(Debug)]
pub struct Logging {
    queue: Arc<Queue>,
}

impl Logging {
    /// Installs the daemon's logger: `info` by default, `RUST_LOG` as
    /// usual, and with `verbose` every command whatever `RUST_LOG` says.
    /// Also returns `RUST_LOG` if it was set but does not parse (it is then
    /// ignored).
    pub fn install(verbose: bool) -> io::Result<(Logging, Option<String>)> {
        let queue = Arc::new(Queue::new(MAX_LINES, MAX_BYTES));
        let sink = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("mdbroker-log".to_owned())
            .spawn(move || sink.write_all_to(&mut io::stderr()))?;
        let mut builder = env_logger::Builder::new();
        let rejected = filter(&mut builder, verbose);
        // Colours on a terminal, as env_logger gives when it writes to
        // standard error itself (a pipe target gets none by default).
        if io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            builder.write_style(WriteStyle::Always);
        }
        builder
            .target(Target::Pipe(Box::new(QueueWriter(Arc::clone(&queue)))))
            .try_init()
            .map_err(io::Error::other)?;
        Ok((Logging { queue }, rejected))
    }

    /// Lets the writer write what is queued, waiting at most `within`;
    /// whether it wrote everything. Lines logged afterwards are dropped.
    pub fn finish(self, within: Duration) -> bool {
        self.queue.close();
        self.queue.wait_written(Instant::now() + within)
    }
}

/// Sets `builder`'s filter: `info`, `RUST_LOG` if it parses, `debug` with
/// `verbose`. Returns `RUST_LOG` if it was set but does not parse.
fn filter(builder: &mut env_logger::Builder, verbose: bool) -> Option<String> {
    builder.filter_level(log::LevelFilter::Info);
    if verbose {
        builder.filter_level(log::LevelFilter::Debug);
        return None;
    }
    let filter = std::env::var("RUST_LOG").ok()?;
    if filter_parses(&filter) {
        builder.parse_filters(&filter);
        None
    } else {
        Some(filter)
    }
}

/// Whether a `RUST_LOG` value is a list of `level`, `module` or
/// `module=level` directives with at least one directive (env_logger
/// silently drops the rest, and with nothing left logs errors only).
fn filter_parses(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |word: &str| LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word));
    // A regex part ('/...') is refused: env_logger reports a bad one itself,
    // on standard error, with a write that panics when standard error is
    // closed or a dead pipe.
    if filter.contains('/') {
        return false;
    }
    let mut directives = filter.split(',').map(str::trim).filter(|d| !d.is_empty()).peekable();
    directives.peek().is_some()
        && directives.all(|directive| match directive.split_once('=') {
            Some((module, level)) => !module.is_empty() && is_level(level),
            None => true, // a level, or a module at every level
        })
}

/// env_logger's target: each `write` is one formatted line, queued or
/// dropped, never waited for.
struct QueueWriter(Arc<Queue>);

impl Write for QueueWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.push(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lines between the threads that log and the writer.
#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: a line arrived, or the queue closed.
    work: Condvar,
    /// Wakes [`Queue::wait_written`]: the writer is done.
    done: Condvar,
    max_lines: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The lines queued, one after the other, with any loss notices
    /// between them.
    queued: Vec<u8>,
    /// Lines in `queued`.
    queued_lines: usize,
    /// Lines and bytes queued or being written, against the bounds.
    lines: usize,
    bytes: usize,
    /// Lines dropped since the last loss notice was queued.
    lost: u64,
    /// Whether the writer is asleep waiting for work (the only time a
    /// logging thread needs to wake it).
    writer_waiting: bool,
    /// No more lines are taken; the writer ends once the queue is empty.
    closed: bool,
    /// The writer has ended.
    written: bool,
}

/// What the writer took to write: the bytes, and what they count against
/// the bounds until written.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: usize,
    counted: usize,
}

/// How long the writer lets lines gather after a write, so that a busy log
/// (with `-v`, several lines per request) costs the writer at most about a
/// thousand wake-ups and writes a second, not one per line.
const GATHER: Duration = Duration::from_millis(1);

/// The line that stands for `lost` dropped lines.
fn lost_notice(lost: u64) -> String {
    format!("mdbroker: {lost} log lines lost while stderr was blocked\n")
}

impl Queue {
    fn new(max_lines: usize, max_bytes: usize) -> Queue {
        Queue {
            state: Mutex::default(),
            work: Condvar::new(),
            done: Condvar::new(),
            max_lines,
            max_bytes,
        }
    }

    /// The state; a panic elsewhere leaves it consistent (every change is
    /// made whole under the lock), so a poisoned lock is used as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `line`, or drops and counts it if the queue is full. Never
    /// waits for the writer.
    fn push(&self, line: &[u8]) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        if state.lines >= self.max_lines || state.bytes.saturating_add(line.len()) > self.max_bytes {
            state.lost = state.lost.saturating_add(1);
            return;
        }
        if state.lost > 0 {
            let notice = lost_notice(std::mem::take(&mut state.lost));
            state.queued.extend_from_slice(notice.as_bytes());
            state.bytes += notice.len();
        }
        state.queued.extend_from_slice(line);
        state.queued_lines += 1;
        state.lines += 1;
        state.bytes += line.len();
        if state.writer_waiting {
            self.work.notify_one();
        }
    }

    /// Moves everything queued into `batch` (which must be empty), waiting
    /// for something; `false` once the queue is closed and empty. The
    /// batch counts against the bounds until [`Queue::written`], so lines
    /// waiting and lines being written together stay within them.
    fn take(&self, batch: &mut Batch) -> bool {
        let mut state = self.state();
        loop {
            if state.lost > 0 && state.queued.is_empty() {
                let notice = lost_notice(std::mem::take(&mut state.lost));
                state.queued.extend_from_slice(notice.as_bytes());
                state.bytes += notice.len();
            }
            if !state.queued.is_empty() {
                std::mem::swap(&mut state.queued, &mut batch.bytes);
                batch.lines = std::mem::take(&mut state.queued_lines);
                batch.counted = batch.bytes.len();
                return true;
            }
            if state.closed {
                return false;
            }
            state.writer_waiting = true;
            state = self.work.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.writer_waiting = false;
        }
    }

    /// The writer is done with `batch`, which is emptied for the next.
    fn written(&self, batch: &mut Batch) {
        let mut state = self.state();
        state.lines -= batch.lines;
        state.bytes -= batch.counted;
        batch.bytes.clear();
    }

    /// The writer thread: writes everything queued to `out`, in one write
    /// each time, until the queue is closed and empty. A failed write loses
    /// its lines: there is nowhere else to say so.
    fn write_all_to(&self, out: &mut dyn Write) {
        let mut batch = Batch::default();
        while self.take(&mut batch) {
            let _ = out.write_all(&batch.bytes);
            self.written(&mut batch);
            if !self.state().closed {
                std::thread::sleep(GATHER);
            }
        }
        self.state().written = true;
        self.done.notify_all();
    }

    /// Takes no more lines, and lets the writer end once it has written
    /// what is queued.
    fn close(&self) {
        self.state().closed = true;
        self.work.notify_one();
    }

    /// Waits until the writer has ended, or `deadline`; whether it ended.
    fn wait_written(&self, deadline: Instant) -> bool {
        let mut state = self.state();
        while !state.written {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .done
                .wait_timeout(state, left)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_that_env_logger_would_half_drop_are_refused() {
        for good in [
            "info",
            "majordomo=debug",
            "warn,majordomo::broker=trace",
            "majordomo",
            "DEBUG",
        ] {
            assert!(filter_parses(good), "{good}");
        }
        for bad in [
            "majordomo=dbug",
            ",,,",
            "",
            "=info",
            "majordomo=debug,x=loud",
            "info/[",
            "info/a/b",
        ] {
            assert!(!filter_parses(bad), "{bad}");
        }
    }

    /// The writer's next batch, as text, and the batch to hand back.
    fn take(queue: &Queue) -> Option<(String, Batch)> {
        let mut batch = Batch::default();
        queue
            .take(&mut batch)
            .then(|| (String::from_utf8(batch.bytes.clone()).expect("utf-8"), batch))
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_says_so_where_the_lines_went_missing() {
        let queue = Queue::new(3, 10);
        queue.push(b"aaa\n");
        queue.push(b"bbb\n");
        queue.push(b"cc\n"); // 11 bytes: over the byte bound
        queue.push(b"c\n"); // the loss is told before it
        let (text, mut batch) = take(&queue).expect("a batch");
        let one_lost = lost_notice(1);
        assert_eq!(text, format!("aaa\nbbb\n{one_lost}c\n"));
        queue.push(b"d\n"); // lines being written still count: dropped
        queue.push(b"e\n");
        queue.written(&mut batch);
        // Emptied with a loss not yet told: the writer tells it.
        let (text, mut batch) = take(&queue).expect("a batch");
        assert_eq!(text, lost_notice(2));
        queue.written(&mut batch);
        for line in ["f\n", "g\n", "h\n", "i\n"] {
            queue.push(line.as_bytes()); // a fourth line: over the line bound
        }
        queue.close();
        queue.push(b"too late\n");
        let (text, mut batch) = take(&queue).expect("a batch");
        assert_eq!(text, "f\ng\nh\n");
        queue.written(&mut batch);
        let (text, mut batch) = take(&queue).expect("the last loss is told");
        assert_eq!(text, lost_notice(1));
        queue.written(&mut batch);
        assert!(take(&queue).is_none());
        let state = queue.state();
        assert_eq!((state.lines, state.bytes), (0, 0));
    }

    /// What a [`Stalled`] output has seen.
    #[derive(Default)]
    struct Gate {
        /// A write has started.
        entered: bool,
        /// Writes may complete.
        open: bool,
        written: Vec<u8>,
    }

    /// An output whose writes block until the test opens it, as a pipe
    /// that nobody reads does.
    #[derive(Clone, Default)]
    struct Stalled {
        gate: Arc<(Mutex<Gate>, Condvar)>,
    }

    impl Stalled {
        fn gate(&self) -> MutexGuard<'_, Gate> {
            self.gate.0.lock().expect("lock")
        }

        /// Waits (at most five seconds) until `what` holds.
        fn wait_until(&self, what: impl Fn(&Gate) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut gate = self.gate();
            while !what(&gate) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "the writer never got there");
                gate = self.gate.1.wait_timeout(gate, left).expect("wait").0;
            }
        }

        fn open(&self) {
            self.gate().open = true;
            self.gate.1.notify_all();
        }

        fn written(&self) -> String {
            String::from_utf8(self.gate().written.clone()).expect("utf-8")
        }
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.gate().entered = true;
            self.gate.1.notify_all();
            self.wait_until(|gate| gate.open);
            self.gate().written.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_never_blocks_a_logging_thread_and_reports_the_loss_when_it_recovers() {
        let queue = Arc::new(Queue::new(4, MAX_BYTES));
        let output = Stalled::default();
        let writer = {
            let (queue, mut output) = (Arc::clone(&queue), output.clone());
            std::thread::spawn(move || queue.write_all_to(&mut output))
        };
        queue.push(b"first\n");
        output.wait_until(|gate| gate.entered); // the writer is stuck writing it
        let started = Instant::now();
        for i in 0..1000 {
            queue.push(format!("line {i}\n").as_bytes());
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging waited for the writer"
        );
        output.open();
        queue.close();
        assert!(queue.wait_written(Instant::now() + Duration::from_secs(5)));
        writer.join().expect("writer");
        assert_eq!(
            output.written(),
            "first\nline 0\nline 1\nline 2\nmdbroker: 997 log lines lost while stderr was blocked\n"
        );
    }

    #[test]
    fn env_logger_hands_the_pipe_one_whole_record_per_write() {
        let queue = Arc::new(Queue::new(MAX_LINES, MAX_BYTES));
        let logger = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Info)
            .target(Target::Pipe(Box::new(QueueWriter(Arc::clone(&queue)))))
            .build();
        let service = "echo";
        log::Log::log(
            &logger,
            &log::Record::builder()
                .args(format_args!("worker 7 ready\nfor '{service}'"))
                .level(log::Level::Info)
                .target("majordomo::broker")
                .build(),
        );
        queue.close();
        let (line, batch) = take(&queue).expect("a line");
        assert_eq!(batch.lines, 1, "one write per record: {line:?}");
        assert!(line.contains("INFO") && line.contains("worker 7 ready\n"), "{line:?}");
        assert!(line.contains("for 'echo'"), "{line:?}");
        assert!(line.ends_with('\n'), "{line:?}");
    }
}
