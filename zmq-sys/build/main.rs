//! Builds libzmq as a static library from the source that the `zeromq-src`
//! crate carries (libzmq 4.3.5), after applying our patches to a copy of it.
//!
//! Why not `zeromq-src`'s own build, as crates.io's `zmq-sys` does: it
//! compiles its source as it is, and the broker needs a libzmq whose ROUTER
//! socket no peer can crash or rob (see `patches.rs`). The configuration
//! below is ours: the Linux facts libzmq's CMake build would detect,
//! written into `platform.hpp` as that build does.
//!
//! CURVE security (26/CURVEZMQ) is compiled in, on libsodium: libzmq
//! 4.3.5 has no other implementation of it. The `libsodium-sys-stable`
//! crate builds libsodium from the release it ships and links it
//! statically; its headers reach this script as `DEP_SODIUM_INCLUDE`.

mod patches;

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `zeromq-src` release whose libzmq source we build.
const SOURCE_CRATE: &str = "zeromq-src";
const SOURCE_VERSION: &str = "0.3.6+4.3.5";

/// What libzmq's configure step would find on Linux with glibc, as
/// `platform.hpp` defines. Each is a facility of the C library or the
/// kernel that every supported Linux has.
const LINUX_PLATFORM: &[(&str, &str)] = &[
    ("ZMQ_HAVE_LINUX", "1"),
    ("ZMQ_IOTHREAD_POLLER_USE_EPOLL", "1"),
    ("ZMQ_IOTHREAD_POLLER_USE_EPOLL_CLOEXEC", "1"),
    ("ZMQ_POLL_BASED_ON_POLL", "1"),
    ("ZMQ_USE_CV_IMPL_STL11", "1"),
    ("ZMQ_USE_BUILTIN_SHA1", "1"),
    ("ZMQ_HAVE_IPC", "1"),
    ("ZMQ_HAVE_STRUCT_SOCKADDR_UN", "1"),
    ("ZMQ_HAVE_UIO", "1"),
    ("ZMQ_HAVE_EVENTFD", "1"),
    ("ZMQ_HAVE_EVENTFD_CLOEXEC", "1"),
    ("ZMQ_HAVE_SOCK_CLOEXEC", "1"),
    ("ZMQ_HAVE_SO_KEEPALIVE", "1"),
    ("ZMQ_HAVE_TCP_KEEPCNT", "1"),
    ("ZMQ_HAVE_TCP_KEEPIDLE", "1"),
    ("ZMQ_HAVE_TCP_KEEPINTVL", "1"),
    ("ZMQ_HAVE_SO_PEERCRED", "1"),
    ("ZMQ_HAVE_IFADDRS", "1"),
    ("ZMQ_HAVE_PPOLL", "1"),
    ("ZMQ_HAVE_PTHREAD_SETNAME_2", "1"),
    ("ZMQ_HAVE_PTHREAD_SET_AFFINITY", "1"),
    ("ZMQ_HAVE_WS", "1"),
    ("HAVE_STRNLEN", "1"),
    ("HAVE_CLOCK_GETTIME", "1"),
    ("HAVE_FORK", "1"),
    ("HAVE_POSIX_MEMALIGN", "1"),
    ("ZMQ_CACHELINE_SIZE", "64"),
];

/// What turns CURVE on, as libzmq's sources test it.
/// `ZMQ_LIBSODIUM_RANDOMBYTES_CLOSE` stays undefined: with it, closing any
/// context closes libsodium's random source under every other context of
/// the process, which libzmq's own comment calls unsafe without
/// refcounting; left open, it costs at most one file descriptor.
const CURVE: &[(&str, &str)] = &[("ZMQ_HAVE_CURVE", "1"), ("ZMQ_USE_LIBSODIUM", "1")];

fn main() {
    println!("cargo:rerun-if-changed=build");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let vendor = source_dir().join("vendor");
    let root = out_dir.join("libzmq");
    if root.exists() {
        fs::remove_dir_all(&root).expect("clearing the previous copy of libzmq");
    }
    for dir in ["src", "include", "external/sha1"] {
        copy_dir(&vendor.join(dir), &root.join(dir)).unwrap_or_else(|e| panic!("copying libzmq {dir}: {e}"));
    }
    patches::apply(&root).unwrap_or_else(|e| panic!("patching libzmq: {e}"));

    let config = out_dir.join("config");
    fs::create_dir_all(&config).expect("creating the config directory");
    fs::write(config.join("platform.hpp"), platform_hpp()).expect("writing platform.hpp");

    let src = root.join("src");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++11")
        .warnings(false)
        .define("ZMQ_STATIC", None)
        // For ZMQ_ROUTER_NOTIFY, which 4.3 still files under its draft API:
        // the broker learns from it that a peer's connection closed.
        .define("ZMQ_BUILD_DRAFT_API", None)
        .include(&config)
        .include(root.join("include"))
        .include(&src)
        .file(root.join("external/sha1/sha1.c"));
    // Unset only when libsodium comes from SODIUM_LIB_DIR or pkg-config,
    // whose headers the compiler then finds on its own search path.
    if let Some(sodium) = env::var_os("DEP_SODIUM_INCLUDE") {
        build.include(sodium);
    }
    let mut sources: Vec<PathBuf> = fs::read_dir(&src)
        .expect("listing libzmq's sources")
        .map(|entry| entry.expect("reading libzmq's source directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cpp"))
        .collect();
    sources.sort();
    build.files(sources);
    build.compile("zmq");

    println!("cargo:include={}", root.join("include").display());
}

/// Where cargo unpacked the `zeromq-src` crate: asked of cargo itself, so
/// that registries, vendored sources and offline builds all work.
fn source_dir() -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &target,
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("parsing cargo metadata");
    let packages = metadata["packages"].as_array().expect("cargo metadata lists packages");
    let package = packages
        .iter()
        .find(|p| p["name"] == SOURCE_CRATE && p["version"] == SOURCE_VERSION)
        .unwrap_or_else(|| panic!("{SOURCE_CRATE} {SOURCE_VERSION} is not in the dependency graph"));
    let manifest_path = package["manifest_path"]
        .as_str()
        .expect("a package has a manifest path");
    Path::new(manifest_path)
        .parent()
        .expect("a manifest lives in a directory")
        .to_path_buf()
}

fn platform_hpp() -> String {
    let mut text = String::from("// Written by zmq-sys/build/main.rs: the platform facts and CURVE for this build.\n");
    for (name, value) in LINUX_PLATFORM.iter().chain(CURVE) {
        text.push_str(&format!("#define {name} {value}\n"));
    }
    text
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()))?;
        } else {
            fs::copy(&path, to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
