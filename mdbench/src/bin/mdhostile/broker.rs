//! The broker under test as a child process: started on a free loopback
//! port, watched (alive? memory?), signalled and stopped by its PID.
//!
//! Why a process and not the library in-process: the program measures a
//! binary, today's or tomorrow's, exactly as it ships, flags included; its
//! memory is read from /proc and its standard error is a real pipe, which
//! matters to the scenario where nobody reads it.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Failure;
use crate::peer::Peer;

/// Longest a broker may take to answer its first MMI request.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// Longest a broker may take to exit after SIGTERM before it is killed.
const TERM_WITHIN: Duration = Duration::from_secs(3);
/// How often a process is looked at while waited for.
const STEP: Duration = Duration::from_millis(10);
/// Characters of a log line kept for the report.
const KEPT_CHARS: usize = 160;

/// What became of the broker's standard error, read to its end.
#[derive(Debug, Default, Clone)]
pub struct LogSummary {
    pub lines: u64,
    pub warnings: u64,
    pub longest: usize,
    /// The start of the first WARN line.
    pub first_warning: Option<String>,
    /// The start of the line the broker prints when it stops (its stats).
    pub stopped: Option<String>,
}

impl LogSummary {
    fn add(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(&line[..line.len().min(4 * KEPT_CHARS)]);
        self.lines += 1;
        self.longest = self.longest.max(line.len());
        if text.contains(" WARN ") {
            self.warnings += 1;
            self.first_warning.get_or_insert_with(|| shorten(&text));
        }
        if text.contains("stopped;") {
            self.stopped = Some(text.trim_end().to_string());
        }
    }

    /// The counters of dropped things the broker printed in its stop line
    /// (`name: N`, Debug formatting of its stats), those above zero.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        let Some(stopped) = self.stopped.as_deref() else {
            return Vec::new();
        };
        let words: Vec<&str> = stopped
            .split([' ', ',', '{', '}', ';'])
            .filter(|w| !w.is_empty())
            .collect();
        words
            .windows(2)
            .filter_map(|pair| {
                let name = pair[0].strip_suffix(':')?;
                let count: u64 = pair[1].parse().ok()?;
                (count > 0 && (name.contains("dropped") || name.contains("broken"))).then(|| (name.to_string(), count))
            })
            .collect()
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim_end();
    match text.char_indices().nth(KEPT_CHARS) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// A running broker, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Broker {
    child: Child,
    pub endpoint: String,
    stderr: Option<ChildStderr>,
    reader: Option<JoinHandle<()>>,
    log: Arc<Mutex<LogSummary>>,
    exited: Option<ExitStatus>,
}

impl Broker {
    /// Starts `path` bound to a free loopback port with `args`, and waits
    /// until it answers MMI. Its standard error is a pipe that nobody reads
    /// until [`Broker::read_log`].
    pub fn start(path: &Path, args: &[String]) -> Result<Broker, Failure> {
        let endpoint = free_loopback_endpoint()?;
        let child = Command::new(path)
            .args(["--bind", &endpoint])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::Setup(format!("starting {}: {e}", path.display())))?;
        let mut broker = Broker {
            stderr: None,
            reader: None,
            log: Arc::default(),
            exited: None,
            endpoint,
            child,
        };
        broker.stderr = broker.child.stderr.take();
        match broker.wait_ready() {
            Ok(()) => Ok(broker),
            Err(Failure::BrokerDied(how)) => Err(Failure::BrokerDied(format!("{how}: {}", broker.last_words()))),
            Err(failure) => Err(failure),
        }
    }

    /// The first line a broker that has exited wrote to standard error.
    fn last_words(&mut self) -> String {
        let mut text = String::new();
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.take(64 << 10).read_to_string(&mut text);
        }
        shorten(
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("nothing on stderr"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> Result<(), Failure> {
        let context = zmq::Context::new();
        let probe = Peer::dealer(&context, &self.endpoint)?;
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            self.check()?;
            probe.send(&[b"", b"MDPC01", b"mmi.service", b"echo"])?;
            if probe.recv_within(Duration::from_millis(100))?.is_some() {
                return Ok(());
            }
        }
        Err(Failure::Setup(format!(
            "broker silent for {READY_WITHIN:?} after its start"
        )))
    }

    /// Starts reading (and summing up) the broker's standard error.
    pub fn read_log(&mut self) {
        if let Some(stderr) = self.stderr.take() {
            let log = Arc::clone(&self.log);
            self.reader = Some(std::thread::spawn(move || summarise(stderr, &log)));
        }
    }

    /// Fails if the broker has exited.
    pub fn check(&mut self) -> Result<(), Failure> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        match self.exited {
            Some(status) => Err(Failure::BrokerDied(describe(status))),
            None => Ok(()),
        }
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> Result<u64, Failure> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| Failure::Setup(format!("no {field} in /proc/{}/status", self.pid())))
    }

    pub fn signal(&self, name: &str) -> Result<(), Failure> {
        signal(self.pid(), name)
    }

    /// Stops the broker (SIGTERM, SIGKILL after a deadline), reads the rest
    /// of its standard error, and says how it ended.
    pub fn stop(mut self) -> (String, LogSummary) {
        let ending = self.terminate();
        self.read_log();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        (ending, log)
    }

    fn terminate(&mut self) -> String {
        if let Err(Failure::BrokerDied(how)) = self.check() {
            return format!("DIED during the scenario ({how})");
        }
        let _ = self.signal("TERM");
        let deadline = Instant::now() + TERM_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return format!("stopped on SIGTERM ({})", describe(status));
            }
            std::thread::sleep(STEP);
        }
        let _ = self.child.kill();
        let status = self.child.wait();
        self.exited = status.as_ref().ok().copied();
        let how = status.map(describe).unwrap_or_else(|e| e.to_string());
        format!("ignored SIGTERM for {TERM_WITHIN:?}; killed ({how})")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.exited.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads standard error to its end, line by line, into `log`.
fn summarise(stderr: ChildStderr, log: &Mutex<LogSummary>) {
    let mut reader = BufReader::with_capacity(1 << 16, stderr);
    let mut line = Vec::new();
    // Bounded by the pipe: it ends when the broker (its only writer) exits.
    loop {
        line.clear();
        match reader.by_ref().read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Ok(mut log) = log.lock() {
                    log.add(&line);
                }
            }
        }
    }
}

/// An exit status in words: the code, or the signal that ended it.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Sends signal `name` (TERM, STOP, CONT, HUP) to process `pid`, with
/// kill(1): this crate has no unsafe code, so no kill(2).
pub fn signal(pid: u32, name: &str) -> Result<(), Failure> {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status()?;
    match status.success() {
        true => Ok(()),
        false => Err(Failure::Setup(format!("kill -s {name} {pid} failed ({status})"))),
    }
}

/// A loopback endpoint on a port the kernel just said was free.
fn free_loopback_endpoint() -> Result<String, Failure> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(format!("tcp://127.0.0.1:{}", listener.local_addr()?.port()))
}

/// A helper program (an example worker), stopped by its PID when dropped;
/// resumed first, in case a scenario left it stopped.
pub struct Helper(Child);

impl Helper {
    pub fn start(path: &Path, args: &[&str]) -> Result<Helper, Failure> {
        Command::new(path)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Helper)
            .map_err(|e| Failure::Setup(format!("starting {}: {e}", path.display())))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = signal(self.pid(), "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
