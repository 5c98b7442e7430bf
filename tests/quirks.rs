//! Registries' known deviations (issue 11), each emulated by the project's proxy in front of
//! the real registry: a two-platform image with 12 MB layers goes through and reads back byte
//! for byte with skopeo, or fails with the documented error.

use std::path::Path;
use std::sync::Arc;

use crate::util::proxy::{rewrite_header, Fault, Proxy, Response};
use crate::util::registry::Registry;
use crate::util::{build_images, fails_with, hoist, make_dist, ok, tool};

/// The two-platform app with a 12 MB incompressible file per platform.
fn big_app(work: &Path) -> std::path::PathBuf {
    crate::util::build_noisy_images(work, 12_000_000)
}

/// skopeo reads `reference` back: the index bytes equal the layout's and every blob equals
/// the layout's file.
fn reads_back(layout: &Path, reference: &str) {
    let raw = ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]));
    assert_eq!(raw, ok(hoist().args(["inspect", "--raw", &format!("oci:{}:multi", layout.display())])));
    let pulled = tempfile::tempdir().unwrap();
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--all", "--src-tls-verify=false", &format!("docker://{reference}")])
        .arg(format!("oci:{}:p", pulled.path().display())));
    for entry in std::fs::read_dir(pulled.path().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let mine = layout.join("blobs/sha256").join(entry.file_name());
        assert!(std::fs::read(entry.path()).unwrap() == std::fs::read(&mine).unwrap(), "{:?}", entry.file_name());
    }
}

fn push(layout: &Path, to: &str, extra: &[&str]) -> std::process::Command {
    let mut command = hoist();
    command.args(["push", "-q", &format!("oci:{}:multi", layout.display()), to]).args(extra);
    command
}

#[test]
fn chunk_caps_stale_ranges_and_204s_are_handled() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_app(work.path());
    let registry = Registry::start();

    // GHCR: a PATCH whose body is over 4 MiB gets 416 naming the limit.
    let ghcr = Proxy::with_faults(registry.host(), |request| {
        match request.method() == "PATCH" && request.length > 4 << 20 {
        true => Fault::Respond(Response::new(
            "416 Requested Range Not Satisfiable",
            &["Content-Type: application/json"],
            br#"{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the request body is too large and exceeds the maximum permissible limit of 4.00MiB"}]}"#,
        )),
        false => Fault::Forward,
    }
    });
    ok(push(&layout, &format!("{}/ghcr/app:v1", ghcr.host()), &["--chunk-size", "8M"]));
    reads_back(&layout, &format!("{}/ghcr/app:v1", registry.host()));
    assert!(ghcr.count("PATCH", "/uploads/") < 40, "bounded: {}", ghcr.count("PATCH", "/uploads/"));
    ok(push(&layout, &format!("{}/ghcr/one:v1", ghcr.host()), &[]));
    reads_back(&layout, &format!("{}/ghcr/one:v1", registry.host()));

    // ECR: the Range of each PATCH answer stays at the first chunk's end; pulp: 204 to PATCH.
    let first_end = Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = Arc::clone(&first_end);
    let ecr = Proxy::start(registry.host(), move |line, response| {
        if line.starts_with("PATCH ") {
            let range = response
                .head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("range:").map(|v| v.trim().to_owned()));
            let mut first = seen.lock().unwrap();
            let stale = first.get_or_insert_with(|| range.unwrap_or_default()).clone();
            response.head =
                rewrite_header(&response.head, "Range", &stale).replacen("202 Accepted", "204 No Content", 1);
        }
    });
    ok(push(&layout, &format!("{}/ecr/app:v1", ecr.host()), &["--chunk-size", "4M"]));
    reads_back(&layout, &format!("{}/ecr/app:v1", registry.host()));
    assert!(ecr.count("PATCH", "/uploads/") <= 12, "each chunk once: {}", ecr.count("PATCH", "/uploads/"));
}

#[test]
fn mounts_refused_or_ignored_and_missing_repositories() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_app(work.path());
    let registry = Registry::start();
    ok(push(&layout, &format!("{}/src/app:v1", registry.host()), &[]));

    // A token that may not pull the source: 403 DENIED to the mount; upload instead.
    let denied = Proxy::with_faults(registry.host(), |request| match request.path().contains("mount=") {
        true => Fault::Respond(Response::new(
            "403 Forbidden",
            &[],
            br#"{"errors":[{"code":"DENIED","message":"no pull"}]}"#,
        )),
        false => Fault::Forward,
    });
    ok(push(&layout, &format!("{}/dst/app:v1", denied.host()), &["--mount-from", "src/app", "--jobs", "1"]));
    reads_back(&layout, &format!("{}/dst/app:v1", registry.host()));
    assert_eq!(denied.count("POST", "mount="), 1, "asked once, then stopped asking");

    // ECR ignores mounts: 202 with a session; the upload goes into it.
    let ignoring = Proxy::start_with_requests(
        registry.host(),
        |head| {
            if head.starts_with("POST ") && head.contains("mount=") {
                let line_end = head.find(' ').unwrap() + 1;
                let path_end = head[line_end..].find('?').unwrap() + line_end;
                let rest = head[head[line_end..].find(' ').unwrap() + line_end..].to_owned();
                *head = format!("{}{}", &head[..path_end], rest);
            }
        },
        |_, _| {},
    );
    ok(push(&layout, &format!("{}/other/app:v1", ignoring.host()), &["--mount-from", "src/app"]));
    reads_back(&layout, &format!("{}/other/app:v1", registry.host()));

    // ECR: a repository that must exist first.
    let missing = Proxy::with_faults(registry.host(), |request| match request.method() == "POST" {
        true => Fault::Respond(Response::new(
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"The repository with name 'app' does not exist"}]}"#,
        )),
        false => Fault::Forward,
    });
    let error = fails_with(push(&layout, &format!("{}/new/app:v1", missing.host()), &[]), Some(5));
    assert!(error.contains("create it first") && error.contains("new/app"), "{error}");
}

#[test]
fn an_oci_index_refused_names_the_fix_and_docker_lists_go_through() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    make_dist(work.path());
    let (layout, _) = build_images(work.path());
    // Docker schema2 images under an OCI index, as a build of a Docker base can give.
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--all", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{}/src/docker:v1", registry.host())));
    let list = ok(hoist().args(["inspect", "--json", &format!("{}/src/docker:v1", registry.host())]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let children: Vec<String> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/src/docker@{}", registry.host(), m["digest"].as_str().unwrap()))
        .collect();
    let mut create = hoist();
    create.args(["index", "create", "--format", "oci", &format!("{}/src/mixed:v1", registry.host())]).args(&children);
    let mixed = ok(create).trim().to_owned();

    // An older Artifactory, Quay or ECR: 400 MANIFEST_INVALID to an OCI index (by digest or
    // by tag).
    let old = Proxy::with_faults(registry.host(), move |request| {
        let oci_index = request.header("content-type") == Some("application/vnd.oci.image.index.v1+json");
        match request.method() == "PUT" && request.path().contains("/manifests/") && oci_index {
            true => Fault::Respond(Response::new(
                "400 Bad Request",
                &[],
                br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
            )),
            false => Fault::Forward,
        }
    });
    let copy = |extra: &[&str]| {
        let mut command = hoist();
        command
            .args(["copy", "-q", &format!("{}/src/mixed:v1", registry.host()), &format!("{}/old/app:v1", old.host())])
            .args(extra);
        command
    };
    let error = fails_with(copy(&[]), Some(3));
    assert!(error.contains("--format docker") && error.contains("changes the index digest"), "{error}");
    let converted = ok(copy(&["--format", "docker"]));
    assert_ne!(converted.trim(), mixed, "the digest changes");
    let raw = ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/old/app:v1", registry.host()),
    ]));
    assert!(raw.contains("application/vnd.docker.distribution.manifest.list.v2+json"), "{raw}");
}
