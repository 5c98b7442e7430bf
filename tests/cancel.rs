//! A run cancelled the way CI cancels it (issue 23): SIGTERM or SIGINT, SIGKILL a little later.
//! Over a link that streams request bodies (no buffering proxy: the registry keeps whatever
//! part of a chunk arrived), hoist starts nothing new, lets the chunk in flight finish within
//! the grace, says how much the registry confirmed, and exits 143 or 130; the rerun sends only
//! the rest. A session the registry refuses afterwards is said and started over.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::proxy::{Fault, Proxy};
use crate::util::registry::Registry;
use crate::util::{hoist, ok, tool};

/// 300 MB: 286 MiB.
const SIZE: u64 = 300_000_000;
/// The link: 300 MB take 10 s.
const RATE: u64 = 30_000_000;
/// The largest chunk hoist sizes for that link (two seconds of it), with slack.
const CHUNK: u64 = 2 * RATE + (8 << 20);

/// A one-layer image of 300 MB of incompressible bytes, as a plain tar (sent as it is).
fn big_layout(work: &Path) -> PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("blob.bin"), crate::util::noise(SIZE as usize, 0x5DEE_CE66_D1CE_4E5B)).unwrap();
    let layout = work.join("layout");
    ok(hoist().args(["build", "-q", "--platform", "linux/amd64", "--compression", "none", "--no-index"]).args([
        "--layer".to_owned(),
        format!("{}:/data/", data.display()),
        "--output".to_owned(),
        format!("oci:{}:v1", layout.display()),
    ]));
    layout
}

/// A proxy in front of `upstream` that streams PATCH and PUT bodies at [`RATE`].
fn streaming(upstream: String) -> Proxy {
    Proxy::with_faults(upstream, |request| match request.method() {
        "PATCH" | "PUT" => Fault::Stream(RATE),
        _ => Fault::Forward,
    })
}

/// `hoist VERB --json --preserve-digests FROM TO` with its state in `state`.
fn command(state: &Path, verb: &str, from: &str, to: &str) -> std::process::Command {
    let mut command = hoist();
    command.env("XDG_STATE_HOME", state).args([verb, "--json", "--preserve-digests", from, to]);
    command
}

/// How a run ended after a signal.
struct Ended {
    code: Option<i32>,
    stderr: String,
}

/// Starts `command`, waits until `proxy` passed on `bytes`, then sends `signal`; with
/// `kill_after`, SIGKILL that long after unless it ended first. Returns how it ended.
fn interrupt(
    mut command: std::process::Command,
    proxy: &Proxy,
    bytes: u64,
    signal: i32,
    kill_after: Duration,
) -> Ended {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while proxy.body_bytes() < bytes {
        assert!(started.elapsed() < Duration::from_secs(120), "the transfer did not get far enough");
        assert!(child.try_wait().unwrap().is_none(), "finished before the signal: throttle more");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child's own pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() >= kill_after {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended { code: status.code(), stderr: read_all(&mut child) }
}

fn read_all(child: &mut Child) -> String {
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

/// The bytes the one "interrupted" line says the registry confirmed, checked against the
/// bytes passed on when the signal went: the chunk in flight then was let finish.
fn confirmed(ended: &Ended, expected_code: i32, signal_name: &str, passed: u64) -> u64 {
    assert_eq!(ended.code, Some(expected_code), "exit code after {signal_name}; stderr: {}", ended.stderr);
    let lines: Vec<&str> = ended.stderr.lines().filter(|l| l.contains("interrupted")).collect();
    assert_eq!(lines.len(), 1, "one line for the one unfinished blob: {}", ended.stderr);
    let prefix = format!("hoist: interrupted by {signal_name}: ");
    let rest = lines[0].strip_prefix(&prefix).unwrap_or_else(|| panic!("{}", lines[0]));
    assert!(rest.ends_with("confirmed; run the same command again to continue"), "{rest}");
    assert!(rest.contains(&format!("of {} MiB of sha256:", SIZE.div_ceil(1 << 20))), "{rest}");
    let mib: u64 = rest.split(' ').next().unwrap().parse().unwrap();
    assert!(!ended.stderr.contains("with work in flight"), "ended by itself, not by the backstop: {}", ended.stderr);
    assert!(mib << 20 >= passed - (1 << 20), "the chunk in flight at the signal finished: {mib} MiB confirmed");
    mib << 20
}

/// The rerun of `again` finishes the job, sending at most the rest and one chunk through
/// `proxy`; returns what it sent.
fn rerun_sends_the_rest(again: std::process::Command, proxy: &Proxy, confirmed: u64) -> u64 {
    let before = proxy.body_bytes();
    let report: serde_json::Value = serde_json::from_str(&ok(again)).unwrap();
    let sent = proxy.body_bytes() - before;
    eprintln!("the rerun sent {sent} of {SIZE} bytes ({confirmed} confirmed before); {report}");
    assert!(sent <= SIZE - confirmed + (1 << 20) + 4096, "the rerun sent {sent} bytes after {confirmed} confirmed");
    assert!(sent <= SIZE - SIZE * 6 / 10 + CHUNK, "the rest plus one chunk at most: {sent}");
    assert!(report["bytes_resumed"].as_u64().unwrap() >= confirmed - (1 << 20), "{report}");
    sent
}

/// skopeo reads the image at `reference` back: the same manifest bytes as the layout's, and
/// every blob it pulls checks out against its digest.
fn skopeo_reads_back(reference: &str, layout: &Path) {
    let raw = ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]));
    assert_eq!(raw, ok(hoist().args(["inspect", "--raw", &format!("oci:{}:v1", layout.display())])));
    let pulled = tempfile::tempdir().unwrap();
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", &format!("docker://{reference}")])
        .arg(format!("dir:{}", pulled.path().display())));
}

#[test]
fn a_push_stopped_by_sigterm_or_sigint_over_a_streaming_link_goes_on_from_what_was_confirmed() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path());
    let registry = Registry::start();
    let proxy = streaming(registry.host());
    let source = format!("oci:{}:v1", layout.display());
    let cases = [
        ("term", libc::SIGTERM, 143, "SIGTERM", Duration::from_secs(30)),
        // As GitHub Actions does it: SIGKILL follows some seconds later; hoist is gone by then.
        ("term-kill", libc::SIGTERM, 143, "SIGTERM", Duration::from_secs(10)),
        ("int", libc::SIGINT, 130, "SIGINT", Duration::from_secs(30)),
    ];
    for (name, signal, code, signal_name, kill_after) in cases {
        let state = work.path().join(format!("state-{name}"));
        let target = format!("{}/team/{name}:v1", proxy.host());
        let start = proxy.body_bytes();
        let ended =
            interrupt(command(&state, "push", &source, &target), &proxy, start + SIZE * 6 / 10, signal, kill_after);
        let passed = proxy.body_bytes() - start;
        let held = confirmed(&ended, code, signal_name, SIZE * 6 / 10);
        assert!(held <= passed, "no more confirmed than went through: {held} of {passed}");
        rerun_sends_the_rest(command(&state, "push", &source, &target), &proxy, held);
        skopeo_reads_back(&format!("{}/team/{name}:v1", registry.host()), &layout);
    }
}

#[test]
fn a_copy_between_registries_stopped_by_sigterm_goes_on_from_what_was_confirmed() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path());
    let (from, to) = (Registry::start(), Registry::start());
    let state = work.path().join("state");
    let source = format!("{}/team/big:v1", from.host());
    ok(hoist().args(["push", "-q", "--preserve-digests", &format!("oci:{}:v1", layout.display()), &source]));
    let proxy = streaming(to.host());
    let target = format!("{}/team/big:v1", proxy.host());
    let ended = interrupt(
        command(&state, "copy", &source, &target),
        &proxy,
        SIZE * 6 / 10,
        libc::SIGTERM,
        Duration::from_secs(10),
    );
    let held = confirmed(&ended, 143, "SIGTERM", SIZE * 6 / 10);
    rerun_sends_the_rest(command(&state, "copy", &source, &target), &proxy, held);
    skopeo_reads_back(&format!("{}/team/big:v1", to.host()), &layout);
}

#[test]
fn a_session_the_registry_refuses_after_a_kill_midway_is_said_and_started_over() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path());
    let registry = Registry::start();
    let proxy = streaming(registry.host());
    let state = work.path().join("state");
    let (source, target) = (format!("oci:{}:v1", layout.display()), format!("{}/team/big:v1", proxy.host()));
    // SIGKILL alone, mid-chunk: the registry keeps the part of the chunk that went through,
    // so its size no longer matches the saved session's state.
    let saved = state.join("hoist/uploads");
    let mut child =
        command(&state, "push", &source, &target).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let sessions = || std::fs::read_dir(&saved).map(|d| d.count()).unwrap_or(0);
    while sessions() == 0 || proxy.body_bytes() < SIZE / 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "the transfer did not get far enough");
        assert!(child.try_wait().unwrap().is_none(), "finished before the kill: throttle more");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = proxy.count("GET", "/blobs/uploads/");
    let out = command(&state, "push", &source, &target).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(proxy.count("GET", "/blobs/uploads/") - before, 1, "the saved session was asked about once");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("no longer takes the upload")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].contains("BLOB_UPLOAD_INVALID") || warnings[0].contains("blob upload invalid"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("sending it from the start"), "{}", warnings[0]);
    assert_eq!(std::fs::read_dir(&saved).unwrap().count(), 0, "the session is forgotten once committed");
    skopeo_reads_back(&format!("{}/team/big:v1", registry.host()), &layout);
}
