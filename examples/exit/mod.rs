//! How the examples end: on an error, one line that says what failed and
//! why, cause by cause (`mdclient: request 3 to 'echo' at tcp://...: no
//! reply after 3 attempt(s)`), and a documented exit status.

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// The examples' exit statuses, for their `--help`.
pub const STATUS: &str = "Exit status: 0 on success; 1 on an error, said on one line; 2 for bad arguments.";

/// Exits with 0, or with 1 after printing the error and its causes.
pub fn finish(program: &str, result: Result<(), Box<dyn Error>>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    let mut line = format!("{program}: {error}");
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(&format!(": {error}"));
        cause = error.source();
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    ExitCode::FAILURE
}

/// An error that says what was being done, with the error as its cause.
#[derive(Debug)]
pub struct Context {
    what: String,
    cause: Box<dyn Error>,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl Error for Context {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// Wraps an error with what was being done.
pub fn context<E: Error + 'static>(what: impl Into<String>) -> impl FnOnce(E) -> Box<dyn Error> {
    let what = what.into();
    move |cause| {
        Box::new(Context {
            what,
            cause: Box::new(cause),
        })
    }
}
