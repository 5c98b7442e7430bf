//! A push or copy killed from outside continues in the next run (issue 16): the upload
//! session is remembered after each accepted chunk, and the rerun goes on from the offset the
//! registry reports, sending at most the rest plus one chunk.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::proxy::{Fault, Proxy};
use crate::util::registry::Registry;
use crate::util::{hoist, ok, tool};

const SIZE: u64 = 200_000_000;
const CHUNK: u64 = 16 << 20;

/// A one-layer image of 200 MB of incompressible bytes.
fn big_layout(work: &Path) -> PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bytes = crate::util::noise(SIZE as usize, 0xA076_1D64_78BD_642F);
    std::fs::write(data.join("blob.bin"), &bytes).unwrap();
    let layout = work.join("layout");
    ok(hoist().args([
        "build",
        "-q",
        "--platform",
        "linux/amd64",
        "--compression",
        "none",
        "--no-index",
        "--layer",
        &format!("{}:/data/", data.display()),
        "--output",
        &format!("oci:{}:v1", layout.display()),
    ]));
    layout
}

/// Waits until the registry confirmed `bytes` of the upload, as hoist recorded it in its state
/// file, then kills `child` with SIGKILL: mid-transfer, with a chunk on its way.
///
/// (Killed in the instant after the registry stored a chunk and before hoist recorded it, the
/// run leaves a session one chunk behind; distribution cancels an upload resumed at a stale
/// offset, and the rerun starts that blob over, correct but not cheaper.)
fn kill_after(state: &Path, bytes: u64, mut child: Child) {
    let started = Instant::now();
    let confirmed = || -> u64 {
        let Ok(entries) = std::fs::read_dir(state.join("hoist/uploads")) else { return 0 };
        entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|v| v["confirmed"].as_u64())
            .max()
            .unwrap_or(0)
    };
    while confirmed() < bytes {
        assert!(started.elapsed() < Duration::from_secs(120), "the transfer did not get far enough");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("finished before it was killed ({status}): throttle more");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A proxy in front of `upstream` that passes request bodies on at 40 MB/s (the 200 MB layer
/// takes about 5 s) and counts them.
fn throttled(upstream: String) -> Proxy {
    Proxy::with_faults(upstream, |request| match request.method() {
        "PATCH" | "PUT" => Fault::Throttle(40_000_000),
        _ => Fault::Forward,
    })
}

/// `hoist VERB --json --chunk-size 16M --preserve-digests FROM TO` with its state in `state`
/// (the layer is a plain tar, sent as it is).
fn send(state: &Path, verb: &str, from: &str, to: &str) -> std::process::Command {
    let mut command = hoist();
    command.env("XDG_STATE_HOME", state).args([
        verb,
        "-q",
        "--json",
        "--chunk-size",
        "16M",
        "--preserve-digests",
        from,
        to,
    ]);
    command
}

fn run(command: &mut std::process::Command) -> Child {
    command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

#[test]
fn a_killed_push_and_copy_go_on_from_where_the_registry_is() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path());
    let state = work.path().join("state");
    let registry = Registry::start();
    let proxy = throttled(registry.host());
    let source = format!("oci:{}:v1", layout.display());
    let push = |to: &str| send(&state, "push", &source, to);
    let target = format!("{}/team/big:v1", proxy.host());
    kill_after(&state, SIZE / 2, run(&mut push(&target)));
    let saved: Vec<_> = std::fs::read_dir(state.join("hoist/uploads")).unwrap().collect();
    assert_eq!(saved.len(), 1, "one session remembered");
    let before = proxy.body_bytes();
    let report: Value = serde_json::from_str(&ok(push(&target))).unwrap();
    let sent = proxy.body_bytes() - before;
    eprintln!("push: the rerun sent {sent} bytes of {SIZE}, {} resumed", report["bytes_resumed"]);
    assert!(sent <= SIZE - SIZE / 2 + CHUNK + 4096, "the rerun sent {sent} bytes of {SIZE}");
    assert!(report["bytes_resumed"].as_u64().unwrap() >= SIZE / 2 - CHUNK, "{report}");
    assert_eq!(std::fs::read_dir(state.join("hoist/uploads")).unwrap().count(), 0, "forgotten once committed");
    // skopeo reads it back: the same manifest bytes, and every blob it pulls checks out
    // against its digest.
    let raw = ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/team/big:v1", registry.host()),
    ]));
    assert_eq!(raw, ok(hoist().args(["inspect", "--raw", &format!("oci:{}:v1", layout.display())])));
    let pulled = tempfile::tempdir().unwrap();
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", &format!("docker://{}/team/big:v1", registry.host())])
        .arg(format!("dir:{}", pulled.path().display())));

    // A copy from that registry to another, killed halfway, goes on the same way.
    let other = Registry::start();
    let into = throttled(other.host());
    let (from, to) = (format!("{}/team/big:v1", registry.host()), format!("{}/team/big:v1", into.host()));
    let copy = || send(&state, "copy", &from, &to);
    kill_after(&state, SIZE / 2, run(&mut copy()));
    let before = into.body_bytes();
    let report: Value = serde_json::from_str(&ok(copy())).unwrap();
    let sent = into.body_bytes() - before;
    eprintln!("copy: the rerun sent {sent} bytes of {SIZE}, {} resumed", report["bytes_resumed"]);
    assert!(sent <= SIZE - SIZE / 2 + CHUNK + 4096, "the copy's rerun sent {sent} bytes of {SIZE}");
    assert!(report["bytes_resumed"].as_u64().unwrap() > 0, "{report}");
    let digest = ok(hoist().args(["digest", &format!("{}/team/big:v1", other.host())]));
    assert_eq!(digest, ok(hoist().args(["digest", &format!("oci:{}:v1", layout.display())])));
}

#[test]
fn a_session_the_registry_lost_or_another_registrys_is_not_used() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path());
    let state = work.path().join("state");
    let registry = Registry::start();
    let proxy = throttled(registry.host());
    let (source, target) = (format!("oci:{}:v1", layout.display()), format!("{}/team/big:v1", proxy.host()));
    let push = || send(&state, "push", &source, &target);
    kill_after(&state, SIZE / 2, run(&mut push()));
    let dir = state.join("hoist/uploads");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // The registry lost the session (restarted without its upload state).
    let url = saved["url"].as_str().unwrap().to_owned();
    let uuid_start = url.find("/uploads/").unwrap() + "/uploads/".len();
    saved["url"] =
        format!("{}00000000-0000-0000-0000-000000000000{}", &url[..uuid_start], &url[url.find('?').unwrap()..]).into();
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    ok(push());
    let digest = ok(hoist().args(["digest", &format!("{}/team/big:v1", registry.host())]));
    assert_eq!(digest, ok(hoist().args(["digest", &format!("oci:{}:v1", layout.display())])));

    // A state file for another registry under this upload's name is ignored, and its host
    // never asked.
    let stranger = crate::util::hostile::Hostile::start(|_| crate::util::hostile::Reply::json("200 OK", "{}"));
    let blob = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap();
    let digest: hoist::Digest = format!("sha256:{}", blob.file_name().to_string_lossy()).parse().unwrap();
    let key = hoist::resume::Sessions::key(&registry.host(), "team/again", &digest);
    std::fs::create_dir_all(&dir).unwrap();
    let forged = serde_json::json!({
        "registry": stranger.host(), "repository": "team/again", "digest": digest.to_string(),
        "url": format!("http://{}/v2/team/again/blobs/uploads/x", stranger.host()), "confirmed": 100_000_000u64
    });
    std::fs::write(dir.join(format!("{key}-4294967295.json")), serde_json::to_vec(&forged).unwrap()).unwrap();
    ok(hoist().env("XDG_STATE_HOME", &state).args([
        "push",
        "-q",
        "--preserve-digests",
        &format!("oci:{}:v1", layout.display()),
        &format!("{}/team/again:v1", registry.host()),
    ]));
    assert!(stranger.heads.lock().unwrap().is_empty(), "another registry's session was used");
}
