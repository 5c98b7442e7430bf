//! The core every command shares: `hoist copy` from any source to any sink, through the one
//! transfer engine (dry runs, tags, reports), reads retried everywhere, exit codes by kind.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::util::proxy::{Fault, Proxy, Response};
use crate::util::registry::Registry;
use crate::util::{build_images, fails_with, hoist, make_dist, ok, snapshot, tool};

/// Pushes the example's two-platform image to `registry/src/app:v1`; returns the layout.
fn seed(work: &Path, registry: &str) -> std::path::PathBuf {
    make_dist(work);
    let (layout, _) = build_images(work);
    ok(hoist().args(["push", "-q", &format!("oci:{}:multi", layout.display()), &format!("{registry}/src/app:v1")]));
    layout
}

fn tags(registry: &str, repository: &str) -> Vec<String> {
    let listed = hoist().args(["tags", &format!("{registry}/{repository}")]).output().unwrap();
    String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn copy_dry_run_writes_nothing_and_by_digest_tags_nothing() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    seed(work.path(), &registry.host());
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let (from, to) = (format!("{}/src/app:v1", proxy.host()), format!("{}/dst/app:v1", proxy.host()));

    let out = hoist().args(["copy", &from, &to, "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("would upload"), "{stderr}");
    for method in ["POST", "PATCH", "PUT"] {
        assert_eq!(proxy.count(method, "/v2/"), 0, "{method} sent in a dry run");
    }
    assert!(tags(&registry.host(), "dst/app").is_empty(), "a dry run made a tag");

    let digest_file = work.path().join("digest.txt");
    let report: Value = serde_json::from_str(&ok(hoist().args([
        "copy",
        &from,
        &to,
        "--push-by-digest",
        "--json",
        "--digest-file",
        &digest_file.display().to_string(),
    ])))
    .unwrap();
    let digest = report["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{report}");
    assert_eq!(report["manifests_pushed"], 3, "{report}");
    assert!(report["blobs_mounted"].as_u64().unwrap() >= 3, "same registry: blobs are mounted: {report}");
    assert_eq!(report["tags"], serde_json::json!([]), "{report}");
    assert_eq!(std::fs::read_to_string(&digest_file).unwrap().trim(), digest);
    assert!(tags(&registry.host(), "dst/app").is_empty(), "--push-by-digest made a tag");
    let inspected = ok(hoist().args(["digest", &format!("{}/dst/app@{digest}", registry.host())]));
    assert_eq!(inspected.trim(), digest, "the index is there by digest");

    for bad in ["%2e%2e/%2e%2e/other/manifests/prod", "../../other/manifests/prod", ".hidden"] {
        let before = proxy.requests.lock().unwrap().len();
        let error = fails_with(hoist().args(["copy", &from, &to, "--tag", bad]), Some(3));
        assert!(error.contains("invalid tag"), "{error}");
        assert_eq!(proxy.requests.lock().unwrap().len(), before, "a bad tag is refused before any request");
    }
    ok(hoist().args(["copy", "-q", &from, &to, "--tag", "latest"]));
    let mut now = tags(&registry.host(), "dst/app");
    now.sort();
    assert_eq!(now, ["latest", "v1"]);
}

#[test]
fn copy_pulls_into_a_layout_that_umoci_unpacks_and_between_layouts() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    seed(work.path(), &registry.host());
    let pulled = work.path().join("pulled");
    ok(hoist().args([
        "copy",
        "-q",
        "--platform",
        "linux/arm64",
        &format!("{}/src/app:v1", registry.host()),
        &format!("oci:{}:arm", pulled.display()),
    ]));
    let bundle = work.path().join("bundle");
    ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:arm", pulled.display())).arg(&bundle));
    let expected = snapshot(&work.path().join("dist/linux_arm64"));
    assert_eq!(snapshot(&bundle.join("rootfs/app")), expected, "umoci unpacks what was pulled");

    let whole = work.path().join("whole");
    let digest = ok(hoist().args([
        "copy",
        "-q",
        &format!("{}/src/app:v1", registry.host()),
        &format!("oci:{}:all", whole.display()),
    ]));
    let index = ok(hoist().args(["digest", &format!("{}/src/app:v1", registry.host())]));
    assert_eq!(digest.trim(), index.trim(), "an index keeps its digest in a layout");
    let again = work.path().join("again");
    let copied = ok(hoist().args([
        "copy",
        "-q",
        &format!("oci:{}:all", whole.display()),
        &format!("oci:{}:v2", again.display()),
    ]));
    assert_eq!(copied.trim(), index.trim(), "layout to layout");
    let raw = ok(tool("skopeo").args(["inspect", "--raw"]).arg(format!("oci:{}:v2", again.display())));
    assert_eq!(Digest::of(raw.as_bytes()), index.trim());
}

/// sha256 of bytes, as `sha256:…`.
struct Digest;
impl Digest {
    fn of(bytes: &[u8]) -> String {
        hoist::Digest::of(bytes).to_string()
    }
}

/// A proxy that answers 503 to the first GET of a manifest and the first GET of a blob.
fn first_reads_fail(upstream: String) -> (Proxy, Arc<AtomicUsize>) {
    let failed = Arc::new(AtomicUsize::new(0));
    let (manifest_once, blob_once) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counter = Arc::clone(&failed);
    let proxy = Proxy::with_faults(upstream, move |request| {
        let once = match (request.method(), request.path()) {
            ("GET", path) if path.contains("/manifests/") => &manifest_once,
            ("GET", path) if path.contains("/blobs/sha256:") => &blob_once,
            _ => return Fault::Forward,
        };
        if once.fetch_add(1, Ordering::SeqCst) == 0 {
            counter.fetch_add(1, Ordering::SeqCst);
            return Fault::Respond(Response::new("503 Service Unavailable", &[], b"busy"));
        }
        Fault::Forward
    });
    (proxy, failed)
}

#[test]
fn a_503_on_the_first_reads_is_retried_by_copy_base_and_index() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    seed(work.path(), &registry.host());

    let (proxy, failed) = first_reads_fail(registry.host());
    let from = format!("{}/src/app:v1", proxy.host());
    // Across "registries" (the proxy and the registry are different hosts): blobs are read.
    ok(hoist().args(["copy", "-q", &from, &format!("{}/copied/app:v1", registry.host())]));
    assert_eq!(failed.load(Ordering::SeqCst), 2, "copy met both 503s");

    let (proxy, failed) = first_reads_fail(registry.host());
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("new.txt"), "on top\n").unwrap();
    let out = work.path().join("on-base");
    ok(hoist().args([
        "build",
        "--platform",
        "linux/amd64",
        "--layer",
        &format!("{}:/srv/", app.display()),
        "--base",
        &format!("{}/src/app:v1", proxy.host()),
        "--output",
        &format!("oci:{}:v1", out.display()),
    ]));
    assert_eq!(failed.load(Ordering::SeqCst), 2, "build --base met both 503s");

    let (proxy, failed) = first_reads_fail(registry.host());
    ok(hoist().args([
        "index",
        "create",
        &format!("{}/idx/app:v1", proxy.host()),
        &format!("{}/src/app:v1", proxy.host()),
    ]));
    ok(hoist().args([
        "index",
        "add",
        &format!("{}/idx/app:v1", proxy.host()),
        &format!("{}/src/app:v1", proxy.host()),
        "--settle",
        "0",
    ]));
    assert!(failed.load(Ordering::SeqCst) >= 1, "index met a 503");
}

#[test]
fn a_name_that_does_not_resolve_exits_6_at_once() {
    // In a network namespace of its own there is no network at all: the lookup fails on this
    // machine and no query leaves it.
    let started = std::time::Instant::now();
    let mut command = tool("unshare");
    command.args(["-n", env!("CARGO_BIN_EXE_hoist"), "inspect", "no-such-registry.invalid/app:v1"]);
    let error = fails_with(command, Some(6));
    assert!(error.contains("no-such-registry.invalid") && error.contains("resolve"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "not retried: {:?}", started.elapsed());
}

/// The digest of what skopeo reads at `location` (`--raw`: the manifest's exact bytes).
fn skopeo_digest(location: &str) -> String {
    let raw = ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", location]));
    hoist::Digest::of(raw.as_bytes()).to_string()
}

#[test]
fn layouts_and_oci_archives_name_an_image_by_digest() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let (layout, index_digest) = build_images(work.path());
    // The arm64 image is reachable from the index but is no entry of index.json.
    let index = crate::util::blob_json(&layout, &index_digest);
    let arm = index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "arm64");
    let arm = arm.unwrap()["digest"].as_str().unwrap().to_owned();
    let listed = crate::util::read_json(&layout.join("index.json")).to_string();
    assert!(!listed.contains(&arm), "{listed}");
    let at = |digest: &str| format!("oci:{}@{digest}", layout.display());

    let registry = Registry::start();
    let pushed = ok(hoist().args(["push", "-q", &at(&arm), &format!("{}/app:arm", registry.host())]));
    assert_eq!(pushed.trim(), arm);
    assert_eq!(skopeo_digest(&format!("docker://{}/app:arm", registry.host())), arm, "skopeo reads what was pushed");
    let copied = work.path().join("copied");
    ok(hoist().args(["copy", "-q", &at(&index_digest), &format!("oci:{}:v1", copied.display())]));
    assert_eq!(skopeo_digest(&format!("oci:{}:v1", copied.display())), index_digest, "the index by its digest");
    assert!(ok(hoist().args(["inspect", &at(&arm)])).contains("arm64"));

    // The same in an oci-archive.
    let archive = work.path().join("app.tar");
    ok(hoist().args([
        "copy",
        "-q",
        &format!("oci:{}:multi", layout.display()),
        &format!("oci-archive:{}", archive.display()),
    ]));
    let from_archive = work.path().join("from-archive");
    ok(hoist().args([
        "copy",
        "-q",
        &format!("oci-archive:{}@{arm}", archive.display()),
        &format!("oci:{}:arm", from_archive.display()),
    ]));
    assert_eq!(skopeo_digest(&format!("oci:{}:arm", from_archive.display())), arm);

    // A digest that is not there, or names a config rather than an image, is refused by name;
    // a digest on an output too.
    let absent = hoist::Digest::of(b"absent").to_string();
    for location in [at(&absent), format!("oci-archive:{}@{absent}", archive.display())] {
        let error = fails_with(hoist().args(["inspect", &location]), Some(3));
        assert!(error.contains(&absent) && error.contains("not in"), "{error}");
    }
    let config = crate::util::blob_json(&layout, &arm)["config"]["digest"].as_str().unwrap().to_owned();
    let error = fails_with(hoist().args(["inspect", &at(&config)]), Some(3));
    assert!(error.contains("not a manifest or index"), "{error}");
    let out = work.path().join("out");
    let error = fails_with(hoist().args(["copy", &at(&arm), &format!("oci:{}@{arm}", out.display())]), Some(3));
    assert!(error.contains("oci:DIR[:TAG]"), "{error}");
    assert!(!out.exists());
    // A digest of another algorithm is refused as one, not read as a directory named `…@sha512`.
    let sha512 = format!("sha512:{}", "a".repeat(128));
    let error = fails_with(hoist().args(["copy", &at(&arm), &format!("oci:{}@{sha512}", out.display())]), Some(3));
    assert!(error.contains("sha256 digests"), "{error}");
    assert!(!out.exists() && !work.path().join("out@sha512").exists(), "{:?}", crate::util::listing(work.path()));
}

#[test]
fn a_missing_source_layout_is_said_not_to_exist() {
    let work = tempfile::tempdir().unwrap();
    let missing = format!("oci:{}:v1", work.path().join("never-built").display());
    for args in
        [vec!["inspect", &missing], vec!["copy", &missing, "oci:out"], vec!["push", &missing, "127.0.0.1:9/app:v1"]]
    {
        let error = fails_with(hoist().current_dir(work.path()).args(&args), Some(3));
        assert!(error.contains("never-built") && error.contains("does not exist"), "{error}");
        assert!(!error.contains("choose a new"), "{error}");
    }
    assert!(!work.path().join("out").exists());
}

#[test]
fn sources_that_are_not_what_they_claim_are_named_with_the_fix() {
    let work = tempfile::tempdir().unwrap();
    // A directory that is not a layout, read: check the path, not "choose a new directory".
    std::fs::create_dir_all(work.path().join("notes")).unwrap();
    std::fs::write(work.path().join("notes/todo.txt"), "mine").unwrap();
    let error = fails_with(hoist().current_dir(work.path()).args(["copy", "oci:notes:v1", "oci:out"]), Some(3));
    assert!(error.contains("notes") && error.contains("check the path") && !error.contains("choose a new"), "{error}");
    // A missing archive: said not to exist, as bad input.
    for source in ["oci-archive:gone.tar", "docker-archive:gone.tar"] {
        let error = fails_with(hoist().current_dir(work.path()).args(["copy", source, "oci:out"]), Some(3));
        assert!(error.contains("gone.tar") && error.contains("does not exist"), "{error}");
    }
    assert!(!work.path().join("out").exists());
    // An artifact file that is a FIFO or a device is refused, not waited on or read without end.
    make_dist(work.path());
    let (layout, _) = build_images(work.path());
    let subject = format!("oci:{}:single", layout.display());
    let fifo = work.path().join("sbom.json");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for file in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let mut attach = hoist();
        attach.args(["attach", &subject, "--artifact-type", "application/spdx+json"]).arg(file);
        let error = crate::util::fails_without_hanging(attach, Some(3));
        assert!(error.contains(&file.display().to_string()) && error.contains("not a regular file"), "{error}");
    }
    // A password on standard input is short; a stream without end is refused.
    let mut login = hoist();
    login
        .args(["login", "-u", "me", "--password-stdin", "127.0.0.1:9"])
        .stdin(std::fs::File::open("/dev/zero").unwrap());
    let error = fails_with(login, Some(3));
    assert!(error.contains("password") && error.contains("longer than 1 MiB"), "{error}");
    // Cut at 1 MiB inside a character, it is still too long, not "invalid UTF-8".
    let long = work.path().join("long-password");
    std::fs::write(&long, format!("{}é and more", "a".repeat(1 << 20))).unwrap();
    let mut login = hoist();
    login.args(["login", "-u", "me", "--password-stdin", "127.0.0.1:9"]).stdin(std::fs::File::open(&long).unwrap());
    let error = fails_with(login, Some(3));
    assert!(error.contains("password") && error.contains("longer than 1 MiB"), "{error}");
}
