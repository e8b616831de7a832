//! Tests of the `mdkeygen` binary as an operator runs it: the two files it
//! writes load as one key pair, it never overwrites, and it fails with one
//! line and a non-zero status.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use majordomo::curve::Certificate;

const BIN: &str = env!("CARGO_BIN_EXE_mdkeygen");

fn mdkeygen(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("mdkeygen runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn writes_a_public_and_a_secret_certificate_of_one_key_pair() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = mdkeygen(&["broker"], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let public = Certificate::load(dir.path().join("broker.key")).expect("public certificate");
    let secret = Certificate::load(dir.path().join("broker.key_secret")).expect("secret certificate");
    assert_eq!(public.secret, None);
    assert_eq!(public.public, secret.public);
    assert!(secret.secret.is_some());
    let mode = std::fs::metadata(dir.path().join("broker.key_secret"))
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn refuses_to_overwrite_and_says_so_on_one_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    assert!(mdkeygen(&["worker"], dir.path()).status.success());
    let before = std::fs::read(dir.path().join("worker.key_secret")).expect("secret");
    let output = mdkeygen(&["worker"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("mdkeygen: ") && message.contains("worker.key"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("worker.key_secret")).expect("secret"),
        before
    );
}

#[test]
fn an_existing_secret_file_alone_also_stops_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("client.key_secret"), "keep me").expect("write");
    let output = mdkeygen(&["client"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!dir.path().join("client.key").exists(), "left a public file behind");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("client.key_secret")).expect("read"),
        "keep me"
    );
}

#[test]
fn a_missing_directory_or_a_bad_name_fails() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = mdkeygen(&["x"], &dir.path().join("missing"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    let output = mdkeygen(&["../x"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
