//! `hoist push` against the real registry, with faults injected by the proxy: the push always
//! finishes, the content verifies byte for byte, and no tag ever names something incomplete.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::proxy::{Fault, Proxy, Response};
use crate::util::registry::Registry;
use crate::util::{build_images, fails_with, hoist, make_dist, ok, tool, write, APP_BUILD};

const REPO: &str = "team/app";

/// The two-platform app plus a 3 MiB incompressible file, so that layers go up in chunks.
/// Returns the layout, tagged `multi` (index) and `single` (one manifest), and the index digest.
fn build_big(work: &Path) -> (PathBuf, String) {
    make_dist(work);
    let noise = crate::util::noise(3 << 20, 0x2545_F491_4F6C_DD1D);
    for arch in ["amd64", "arm64"] {
        fs::write(work.join(format!("dist/linux_{arch}/data.bin")), &noise).unwrap();
    }
    write(&work.join("dist/linux_amd64/extra.txt"), "amd64 only\n", 0o644);
    build_images(work)
}

fn push(layout: &Path, tag: &str, destination: &str, extra: &[&str]) -> std::process::Command {
    let mut command = hoist();
    command
        .args(["push", "-q", &format!("oci:{}:{tag}", layout.display()), destination, "--chunk-size", "1M"])
        .args(extra);
    command
}

/// The registry holds exactly the layout's content under `reference`: same manifest bytes,
/// and every blob `skopeo copy` pulls back equals the layout's file.
fn verify(layout: &Path, tag: &str, reference: &str) {
    let raw = ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]));
    let expected = ok(hoist().args(["inspect", "--raw", &format!("oci:{}:{tag}", layout.display())]));
    assert_eq!(raw, expected, "manifest bytes");
    let pulled = tempfile::tempdir().unwrap();
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--all", "--src-tls-verify=false", &format!("docker://{reference}")])
        .arg(format!("oci:{}:pulled", pulled.path().display())));
    let mut compared = 0;
    for entry in fs::read_dir(pulled.path().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let mine = layout.join("blobs/sha256").join(entry.file_name());
        assert_eq!(fs::read(entry.path()).unwrap(), fs::read(&mine).unwrap(), "{:?}", entry.file_name());
        compared += 1;
    }
    assert!(compared >= 3, "blobs compared: {compared}");
}

/// A minimal HTTP GET/HEAD straight at the registry (not through the proxy): status and body.
fn http(host: &str, method: &str, path: &str) -> (u16, Vec<u8>) {
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";
    let mut raw = Vec::new();
    for _ in 0..50 {
        raw.clear();
        let sent = TcpStream::connect(host).and_then(|mut stream| {
            write!(
                stream,
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            )?;
            stream.read_to_end(&mut raw)
        });
        if sent.is_ok() && raw.len() >= 12 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap_or(0);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |p| p + 4);
    (status, if method == "HEAD" { Vec::new() } else { raw[split..].to_vec() })
}

/// Polls the tag while a push runs; records any moment it names something with missing parts.
struct TagWatcher {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    problems: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TagWatcher {
    fn start(host: String, tag: &str) -> TagWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2, problems2, tag) =
            (Arc::clone(&stop), Arc::clone(&seen), Arc::clone(&problems), tag.to_owned());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let (status, body) = http(&host, "GET", &format!("/v2/{REPO}/manifests/{tag}"));
                if status == 200 {
                    seen2.fetch_add(1, Ordering::SeqCst);
                    for missing in missing_children(&host, &body) {
                        problems2.lock().unwrap().push(missing);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        TagWatcher { stop, seen, problems, thread: Some(thread) }
    }

    /// Stops and asserts the tag never named anything incomplete, and names complete content
    /// now; returns how often it was seen during the push.
    fn finish(mut self, host: &str, tag: &str) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let (status, body) = http(host, "GET", &format!("/v2/{REPO}/manifests/{tag}"));
        assert_eq!(status, 200, "the tag exists after the push");
        assert!(missing_children(host, &body).is_empty());
        let problems = self.problems.lock().unwrap();
        assert!(problems.is_empty(), "the tag named incomplete content: {problems:?}");
        self.seen.load(Ordering::SeqCst)
    }
}

fn missing_children(host: &str, manifest: &[u8]) -> Vec<String> {
    let document: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    let mut missing = Vec::new();
    for child in document["manifests"].as_array().into_iter().flatten() {
        let digest = child["digest"].as_str().unwrap_or_default();
        let (status, body) = http(host, "GET", &format!("/v2/{REPO}/manifests/{digest}"));
        if status != 200 {
            missing.push(format!("manifest {digest}: {status}"));
        } else {
            missing.extend(missing_children(host, &body));
        }
    }
    let blobs =
        document["layers"].as_array().cloned().unwrap_or_default().into_iter().chain([document["config"].clone()]);
    for blob in blobs.filter(|b| b.is_object()) {
        let digest = blob["digest"].as_str().unwrap_or_default();
        let (status, _) = http(host, "HEAD", &format!("/v2/{REPO}/blobs/{digest}"));
        if status != 200 {
            missing.push(format!("blob {digest}: {status}"));
        }
    }
    missing
}

#[test]
fn pushes_are_read_back_by_skopeo_and_a_second_push_only_looks() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let registry = Registry::start();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let destination = format!("{}/{REPO}:v1", proxy.host());
    let digest_file = work.path().join("digest.txt");
    let pushed = ok(push(&layout, "multi", &destination, &["--tag", "latest", "--digest-file"]).arg(&digest_file));
    assert_eq!(pushed.trim(), index_digest, "the digest alone on stdout");
    assert_eq!(fs::read_to_string(&digest_file).unwrap().trim(), index_digest);
    verify(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()));
    verify(&layout, "multi", &format!("{}/{REPO}:latest", registry.host()));
    assert!(proxy.count("PATCH", "/blobs/uploads/") >= 6, "the 3 MiB layers went up in 1 MiB chunks");

    let single = ok(push(&layout, "single", &format!("{}/{REPO}:single", proxy.host()), &[]));
    verify(&layout, "single", &format!("{}/{REPO}:single", registry.host()));
    assert!(!single.is_empty());

    // Again: the tags already name the index, so one HEAD per tag and nothing else.
    proxy.requests.lock().unwrap().clear();
    let report: serde_json::Value =
        serde_json::from_str(&ok(push(&layout, "multi", &destination, &["--tag", "latest", "--json"]))).unwrap();
    assert_eq!(report["up_to_date"], true, "{report}");
    let requests = proxy.requests.lock().unwrap().clone();
    let sent: Vec<&String> = requests.iter().filter(|l| !l.starts_with("GET /v2/ ")).collect();
    assert_eq!(sent.len(), 2, "one HEAD per tag: {sent:?}");
    assert!(sent.iter().all(|l| l.starts_with("HEAD ") && l.contains("/manifests/")), "{sent:?}");

    // With --verify: nothing is sent, and each object is looked at exactly once.
    proxy.requests.lock().unwrap().clear();
    let report: serde_json::Value =
        serde_json::from_str(&ok(push(&layout, "multi", &destination, &["--tag", "latest", "--json", "--verify"])))
            .unwrap();
    assert_eq!(report["blobs_pushed"], 0);
    assert_eq!(report["manifests_pushed"], 0);
    let requests = proxy.requests.lock().unwrap().clone();
    let writes: Vec<&String> =
        requests.iter().filter(|l| !l.starts_with("HEAD ") && !l.starts_with("GET /v2/ ")).collect();
    assert!(writes.is_empty(), "a no-op push sent {writes:?}");
    let heads: Vec<&String> = requests.iter().filter(|l| l.starts_with("HEAD ")).collect();
    let unique: std::collections::HashSet<&&String> = heads.iter().collect();
    let blobs = report["blobs_skipped"].as_u64().unwrap() as usize;
    assert_eq!(heads.len(), blobs + 3 + 2, "one HEAD per blob, manifest (2 + index) and tag: {heads:?}");
    assert_eq!(unique.len(), heads.len(), "no object looked at twice");
}

#[test]
fn a_second_repository_mounts_every_blob() {
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_big(work.path());
    let registry = Registry::start();
    let first: serde_json::Value =
        serde_json::from_str(&ok(push(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()), &["--json"])))
            .unwrap();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let report: serde_json::Value = serde_json::from_str(&ok(push(
        &layout,
        "multi",
        &format!("{}/team/other:v1", proxy.host()),
        &["--mount-from", REPO, "--json"],
    )))
    .unwrap();
    assert_eq!(report["blobs_pushed"], 0);
    assert_eq!(report["blobs_mounted"], first["blobs_pushed"], "{report}");
    assert_eq!(first["blobs_pushed"], 4, "two layers and two configs");
    assert_eq!(proxy.count("PATCH", "/blobs/"), 0);
    assert_eq!(proxy.count("PUT", "/blobs/"), 0);
    let raw = ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/team/other:v1", registry.host()),
    ]));
    assert_eq!(hoist::Digest::of(raw.as_bytes()).to_string(), report["digest"].as_str().unwrap());
}

/// Pushes through a proxy doing `fault`, with a tag watcher on the real registry, and checks
/// the result byte for byte. Returns the JSON report.
fn push_through(
    fault: impl Fn(&crate::util::proxy::Request) -> Fault + Send + Sync + 'static,
    extra: &[&str],
) -> serde_json::Value {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let registry = Registry::start();
    let proxy = Proxy::with_faults(registry.host(), fault);
    let watcher = TagWatcher::start(registry.host(), "v1");
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = ok(push(&layout, "multi", &format!("{}/{REPO}:v1", proxy.host()), &args));
    watcher.finish(&registry.host(), "v1");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["digest"], index_digest.as_str());
    verify(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()));
    report
}

fn is_chunk(request: &crate::util::proxy::Request) -> bool {
    request.method() == "PATCH"
}

#[test]
fn a_connection_cut_mid_chunk_is_resumed() {
    let cuts = AtomicUsize::new(0);
    let report = push_through(
        move |r| match is_chunk(r) && r.length > 500_000 && cuts.fetch_add(1, Ordering::SeqCst) < 2 {
            true => Fault::CutAfter(300_000),
            false => Fault::Forward,
        },
        &[],
    );
    assert!(report["retries"].as_u64().unwrap() >= 2, "{report}");
}

#[test]
fn server_errors_are_retried_on_the_nth_request_and_on_a_share_of_requests() {
    let report = push_through(
        |r| match r.number {
            4 | 9 => Fault::Respond(Response::new("500 Internal Server Error", &[], b"")),
            12 => Fault::Respond(Response::new("502 Bad Gateway", &[], b"<html>bad gateway</html>")),
            n if n % 5 == 0 => Fault::Respond(Response::new("503 Service Unavailable", &[], b"")),
            _ => Fault::Forward,
        },
        &["--jobs", "2"],
    );
    assert!(report["retries"].as_u64().unwrap() >= 3, "{report}");
}

#[test]
fn rate_limits_wait_as_told() {
    let limited = AtomicUsize::new(0);
    let started = Instant::now();
    let report = push_through(
        move |r| match r.method() == "POST" && limited.fetch_add(1, Ordering::SeqCst) == 0 {
            true => Fault::Respond(Response::new(
                "429 Too Many Requests",
                &["Retry-After: 2", "Content-Type: application/json"],
                br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            )),
            false => Fault::Forward,
        },
        &[],
    );
    assert!(report["retries"].as_u64().unwrap() >= 1);
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After was honoured");
}

#[test]
fn a_stalled_transfer_is_cut_and_retried() {
    let stalled = AtomicUsize::new(0);
    let report = push_through(
        move |r| match is_chunk(r) && stalled.fetch_add(1, Ordering::SeqCst) == 0 {
            true => Fault::StallAfter(100_000, Duration::from_secs(20)),
            false => Fault::Forward,
        },
        &["--stall-timeout", "1"],
    );
    assert!(report["retries"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["seconds"].as_f64().unwrap() < 15.0, "cut after the stall timeout, not the stall: {report}");
}

#[test]
fn a_forgotten_upload_session_starts_over() {
    let forgotten = AtomicUsize::new(0);
    push_through(
        move |r| match is_chunk(r) && forgotten.fetch_add(1, Ordering::SeqCst) == 1 {
            true => Fault::Respond(Response::new(
                "404 Not Found",
                &["Content-Type: application/json"],
                br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}"#,
            )),
            false => Fault::Forward,
        },
        &[],
    );
}

#[test]
fn registries_that_refuse_chunks_or_large_bodies_get_the_other_way() {
    push_through(
        |r| match is_chunk(r) {
            true => Fault::Respond(Response::new("405 Method Not Allowed", &[], b"")),
            false => Fault::Forward,
        },
        &[],
    );
    push_through(
        |r| match r.method() == "PUT" && r.path().contains("/blobs/uploads/") && r.length > 1_000_000 {
            true => Fault::Respond(Response::new("413 Payload Too Large", &[], b"")),
            false => Fault::Forward,
        },
        &["--chunk-size", "8M"],
    );
}

#[test]
fn permanent_failures_end_quickly_and_leave_tags_alone() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let registry = Registry::start();
    ok(push(&layout, "single", &format!("{}/{REPO}:v1", registry.host()), &[]));
    let before = http(&registry.host(), "GET", &format!("/v2/{REPO}/manifests/v1"));

    let denied = Proxy::with_faults(registry.host(), |r| match r.method() == "POST" {
        true => Fault::Respond(Response::new(
            "403 Forbidden",
            &["Content-Type: application/json"],
            br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
        )),
        false => Fault::Forward,
    });
    let started = Instant::now();
    let error = fails_with(&mut push(&layout, "multi", &format!("{}/{REPO}:v1", denied.host()), &[]), Some(4));
    assert!(error.contains("denied"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10), "no retries for a permanent failure");

    let broken = Proxy::with_faults(registry.host(), |r| match r.method() == "PATCH" || r.method() == "PUT" {
        true => Fault::Respond(Response::new("503 Service Unavailable", &[], b"")),
        false => Fault::Forward,
    });
    let error =
        fails_with(&mut push(&layout, "multi", &format!("{}/{REPO}:v1", broken.host()), &["--retries", "1"]), Some(75));
    assert!(error.contains("rerun"), "{error}");
    assert_eq!(http(&registry.host(), "GET", &format!("/v2/{REPO}/manifests/v1")), before, "the tag did not move");

    let finished = ok(push(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()), &[]));
    assert_eq!(finished.trim(), index_digest, "a rerun finishes the job");
}

#[test]
fn an_interrupted_push_is_finished_by_a_rerun() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let registry = Registry::start();
    let hanging = Proxy::with_faults(registry.host(), |r| match is_chunk(r) && r.path().contains("uploads") {
        true => Fault::StallAfter(200_000, Duration::from_secs(30)),
        false => Fault::Forward,
    });
    let mut child = push(&layout, "multi", &format!("{}/{REPO}:v1", hanging.host()), &[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hanging.count("PATCH", "/blobs/uploads/") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(http(&registry.host(), "HEAD", &format!("/v2/{REPO}/manifests/v1")).0, 404, "no tag yet");
    let finished = ok(push(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()), &[]));
    assert_eq!(finished.trim(), index_digest);
    verify(&layout, "multi", &format!("{}/{REPO}:v1", registry.host()));
}

#[test]
fn dry_run_only_looks_and_build_can_push_directly() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let registry = Registry::start();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let report: serde_json::Value = serde_json::from_str(&ok(push(
        &layout,
        "multi",
        &format!("{}/{REPO}:v1", proxy.host()),
        &["--dry-run", "--json"],
    )))
    .unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["blobs_pushed"], 4);
    assert_eq!(report["manifests_pushed"], 3);
    let requests = proxy.requests.lock().unwrap().clone();
    assert!(requests.iter().all(|l| l.starts_with("HEAD ") || l.starts_with("GET /v2/ ")), "{requests:?}");

    let built = ok(hoist().current_dir(work.path()).args(APP_BUILD).args([
        "--entrypoint",
        "/app/server",
        "--push",
        &format!("{}/{REPO}:built", registry.host()),
        "-q",
    ]));
    assert_eq!(built.trim(), index_digest, "build --push pushes the same image as build then push");
}

#[test]
fn pushes_and_mounts_work_with_bearer_tokens() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_big(work.path());
    let secrets = tempfile::tempdir().unwrap();
    let tokens = crate::util::token::TokenServer::start(secrets.path(), "bob", "builder");
    let registry =
        Registry::start_with(crate::util::registry::Setup { auth: Some(tokens.registry_auth()), ..Default::default() });
    let host = registry.host();
    let creds = ["--creds", "bob:builder"];
    let pushed = ok(push(&layout, "multi", &format!("{host}/{REPO}:v1"), &creds));
    assert_eq!(pushed.trim(), index_digest);
    tokens.requests.lock().unwrap().clear();
    let mut args = vec!["--mount-from", REPO, "--json"];
    args.extend_from_slice(&creds);
    let report: serde_json::Value =
        serde_json::from_str(&ok(push(&layout, "multi", &format!("{host}/team/other:v1"), &args))).unwrap();
    assert_eq!(report["blobs_mounted"], 4, "{report}");
    let scopes = tokens.requests.lock().unwrap().clone();
    assert!(
        scopes.iter().any(|s| s.contains(&"repository:team/other:pull,push".to_owned())
            && s.contains(&format!("repository:{REPO}:pull"))),
        "a mount asks for both repositories in one token: {scopes:?}"
    );
    let denied = fails_with(push(&layout, "multi", &format!("{host}/{REPO}:v2"), &["--creds", "bob:wrong"]), Some(4));
    assert!(denied.contains("hoist login"), "{denied}");
}

/// Issue 21, 12: an index of images with plain tar layers (built with `--compression none`)
/// is pushed with each image's layers gzipped: the index's entries name the rewritten images
/// (platforms kept), and skopeo copies every platform out, checking each digest.
#[test]
fn an_index_of_uncompressed_images_is_rewritten_whole() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    let built = ok(hoist().current_dir(work.path()).args(APP_BUILD).args([
        "--compression",
        "none",
        "--output",
        &format!("oci:{}:multi", layout.display()),
    ]));
    let registry = Registry::start();
    let target = format!("{}/{REPO}:multi", registry.host());
    let report: serde_json::Value = serde_json::from_str(&ok(hoist().args([
        "push",
        "--json",
        "--compression",
        "zstd",
        &format!("oci:{}:multi", layout.display()),
        &target,
    ])))
    .unwrap();
    assert_eq!((report["layers_compressed"].as_u64(), report["source_digest"].as_str()), (Some(2), Some(built.trim())));
    let index: serde_json::Value = serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &target]))).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(crate::util::index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    let local = crate::util::read_json(&crate::util::blob_path(&layout, built.trim()));
    for (pushed, built) in index["manifests"].as_array().unwrap().iter().zip(local["manifests"].as_array().unwrap()) {
        assert_ne!(pushed["digest"], built["digest"]);
        let image = format!("{}/{REPO}@{}", registry.host(), pushed["digest"].as_str().unwrap());
        let manifest: serde_json::Value =
            serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &image]))).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd", "{manifest}");
    }
    let copied = work.path().join("copied");
    ok(tool("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false", &format!("docker://{target}")])
        .arg(format!("oci:{}:multi", copied.display())));
}
