//! Push economy (issue 17): as few requests as the leanest peer, nothing but a HEAD per tag
//! when there is nothing to do, automatic mounts from where hoist saw a blob before.

use std::path::Path;

use serde_json::Value;

use crate::util::proxy::{Fault, Proxy};
use crate::util::registry::Registry;
use crate::util::{hoist, ok};

/// The two-platform app with a 1 MiB incompressible file per platform.
fn app(work: &Path) -> std::path::PathBuf {
    crate::util::build_noisy_images(work, 1 << 20)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn pushes_send_few_requests_and_mount_what_hoist_has_seen() {
    let work = tempfile::tempdir().unwrap();
    let layout = app(work.path());
    let registry = Registry::start();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let cache = work.path().join("cache");
    let push = |repository: &str| {
        let mut command = hoist();
        command.env("XDG_CACHE_HOME", &cache).args([
            "push",
            "-q",
            "--json",
            &format!("oci:{}:multi", layout.display()),
            &format!("{}/{repository}:v1", proxy.host()),
        ]);
        command
    };

    // First push: the API check and one HEAD of the tag (is there anything to do?); per blob
    // HEAD, POST and one streamed PUT; each platform manifest one PUT (it cannot be there, its
    // blobs were not); the index one PUT, by the tag, which writes it (issue 23: not by digest
    // first).
    let first = json(&ok(push("team/app")));
    let blobs = first["blobs_pushed"].as_u64().unwrap() as usize;
    assert_eq!(blobs, 4, "two layers and two configs: {first}");
    let requests = proxy.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2 + 3 * blobs + 2 + 1, "{requests:#?}");
    assert_eq!(proxy.count("PUT", "/manifests/sha256:"), 2, "the platform manifests by digest");
    assert_eq!(proxy.count("PUT", "/manifests/v1"), 1, "the index with its tag");
    assert!(requests.len() <= 23, "no more requests than crane's 23");
    assert_eq!(proxy.count("PATCH", "/"), 0, "no chunks unless asked for");

    // Again: one HEAD for the tag.
    proxy.requests.lock().unwrap().clear();
    let again = json(&ok(push("team/app")));
    assert_eq!(again["up_to_date"], true);
    let requests = proxy.requests.lock().unwrap().clone();
    assert!(requests.len() <= 2, "{requests:?}");

    // Another repository of the same registry: every blob mounted from where hoist pushed it,
    // without --mount-from.
    proxy.requests.lock().unwrap().clear();
    let other = json(&ok(push("team/other")));
    assert_eq!(other["blobs_mounted"], 4, "{other}");
    assert_eq!(other["blobs_pushed"], 0, "{other}");
    for from in other["mounted_from"].as_object().unwrap().values() {
        assert_eq!(from, "team/app");
    }
    assert_eq!(proxy.count("PUT", "/blobs/") + proxy.count("PATCH", "/"), 0);

    // A copy within the registry reads the manifests and mounts the blobs.
    proxy.requests.lock().unwrap().clear();
    let copied = json(&ok(hoist().env("XDG_CACHE_HOME", &cache).args([
        "copy",
        "-q",
        "--json",
        &format!("{}/team/app:v1", proxy.host()),
        &format!("{}/team/copy:v1", proxy.host()),
    ])));
    assert_eq!(copied["blobs_mounted"], 4, "{copied}");
    let requests = proxy.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        2 + 3 + 4 * 2 + 2 + 1,
        "API check, tag HEAD, 3 manifest GETs, HEAD and mount per blob, 2 manifest PUTs, the index with its tag: {requests:#?}"
    );

    // Pulled into a layout, then pushed to a third repository: mounted from where it was pulled.
    let pulled = work.path().join("pulled");
    ok(hoist().env("XDG_CACHE_HOME", &cache).args([
        "copy",
        "-q",
        &format!("{}/team/copy:v1", registry.host()),
        &format!("oci:{}:v1", pulled.display()),
    ]));
    let third = json(&ok(hoist().env("XDG_CACHE_HOME", &cache).args([
        "push",
        "-q",
        "--json",
        &format!("oci:{}:v1", pulled.display()),
        &format!("{}/team/third:v1", registry.host()),
    ])));
    assert_eq!(third["blobs_mounted"], 4, "{third}");
}
