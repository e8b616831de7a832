//! `mdkeygen`: makes a CURVE key pair (26/CURVEZMQ) and writes it as
//! ZeroMQ certificate files, for `mdbroker` and for the clients and
//! workers that connect to it:
//!
//! ```sh
//! mdkeygen broker --dir keys   # keys/broker.key, keys/broker.key_secret
//! ```
//!
//! `NAME.key` holds the public key, to hand to peers; `NAME.key_secret`
//! holds both keys, readable by its owner only. The files are the ones
//! czmq and pyzmq write, so keys made here work with their programs and
//! theirs here. Everything but the command line is
//! `majordomo::curve::Certificate`.
#![forbid(unsafe_code)]

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use majordomo::curve::{Certificate, KeyPair};

/// Make a CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret
/// (secret, mode 0600). Existing files are never overwritten.
#[derive(Parser, Debug)]
#[command(
    name = "mdkeygen",
    version,
    after_help = "Exit status: 0 on success; 1 on an error, said on one line; 2 for bad arguments."
)]
struct Args {
    /// The certificate's name: a file name without a directory.
    #[arg(value_parser = parse_name)]
    name: String,

    /// The directory to write the two files in (it must exist).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// A name that stays inside `--dir`.
fn parse_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err("a name is a file name, without '/'".to_owned());
    }
    Ok(name.to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln!, which panics when standard error is closed:
            // the exit status must stay the documented one.
            let _ = writeln!(std::io::stderr(), "mdkeygen: {}", one_line(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let keys = KeyPair::generate()?;
    let (public, secret) = Certificate::from(keys).save(&args.dir, &args.name)?;
    let _ = writeln!(
        std::io::stdout(),
        "wrote {} (public) and {} (secret)",
        public.display(),
        secret.display()
    );
    Ok(())
}

/// The error and its causes, joined by ": ".
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(&format!(": {error}"));
        cause = error.source();
    }
    line
}
