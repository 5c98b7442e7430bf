//! Multi-platform indexes against the real registry, with docker's own `manifest` commands and
//! skopeo as peers.

use std::fs;
use std::path::Path;

use oci_spec::image::MediaType;
use serde_json::{json, Value};

use crate::util::registry::Registry;
use crate::util::{build_images, commit_json, fails_with, hoist, index_platforms, make_dist, ok, tool};

/// Builds the app and pushes each platform's image by digest, as split CI jobs do.
/// Returns (amd64 digest, arm64 digest).
fn push_platforms(work: &Path, repo: &str) -> (String, String) {
    make_dist(work);
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let output = work.join(format!("github-output-{arch}"));
        let digest = ok(hoist().current_dir(work).env("GITHUB_OUTPUT", &output).args([
            "build",
            "-q",
            "--platform",
            &format!("linux/{arch}"),
            "--layer",
            "dist/{os}_{arch}/:/app/",
            "--no-index",
            "--push",
            repo,
            "--push-by-digest",
        ]));
        let digest = digest.trim().to_owned();
        assert_eq!(
            fs::read_to_string(&output).unwrap(),
            format!("digest={digest}\n"),
            "$GITHUB_OUTPUT gets the digest"
        );
        digests.push(digest);
    }
    (digests[0].clone(), digests[1].clone())
}

fn platforms(host: &str, reference: &str) -> Vec<String> {
    let json: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{host}/{reference}")]))).unwrap();
    json["manifests"].as_array().unwrap().iter().map(|m| m["platform"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn split_builds_merge_and_amend_replaces_never_duplicates() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let host = registry.host();
    let repo = format!("{host}/team/app");
    let (amd, arm) = push_platforms(work.path(), &repo);
    assert!(
        fails_with(hoist().args(["inspect", &format!("{repo}:v1")]), Some(5)).contains("not found"),
        "by digest only: no tag"
    );

    let created = ok(hoist().args([
        "index",
        "create",
        &format!("{repo}:v1"),
        &format!("{repo}@{amd}"),
        &format!("{repo}@{arm}"),
    ]));
    assert_eq!(platforms(&host, "team/app:v1"), ["linux/amd64", "linux/arm64"]);
    assert_eq!(ok(hoist().args(["digest", &format!("{repo}:v1")])).trim(), created.trim());

    // A new amd64 build replaces the old entry; adding it again changes nothing.
    fs::write(work.path().join("dist/linux_amd64/server"), "#!/bin/sh\necho v2\n").unwrap();
    let amd2 = ok(hoist().current_dir(work.path()).args([
        "build",
        "-q",
        "--platform",
        "linux/amd64",
        "--layer",
        "dist/{os}_{arch}/:/app/",
        "--no-index",
        "--push",
        &repo,
        "--push-by-digest",
    ]));
    for _ in 0..2 {
        ok(hoist().args(["index", "add", &format!("{repo}:v1"), &format!("{repo}@{}", amd2.trim())]));
        let json: Value =
            serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{repo}:v1")]))).unwrap();
        let entries = json["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{json}");
        assert!(entries.iter().any(|e| e["digest"] == amd2.trim()), "{json}");
    }
    ok(hoist().args(["index", "rm", &format!("{repo}:v1"), "--platform", "linux/arm64"]));
    assert_eq!(platforms(&host, "team/app:v1"), ["linux/amd64"]);

    // skopeo copies the whole index and its digest stays.
    ok(hoist().args(["index", "add", &format!("{repo}:v1"), &format!("{repo}@{arm}")]));
    let digest = ok(hoist().args(["digest", &format!("{repo}:v1")]));
    ok(tool("skopeo").args([
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{repo}:v1"),
        &format!("docker://{host}/team/copy:v1"),
    ]));
    assert_eq!(ok(hoist().args(["digest", &format!("{host}/team/copy:v1")])), digest);
}

#[test]
fn docker_manifest_commands_interoperate() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let host = registry.host();
    let repo = format!("{host}/team/app");
    let (amd, arm) = push_platforms(work.path(), &repo);
    let docker_config = tempfile::tempdir().unwrap();
    let docker = |args: &[&str]| {
        let mut command = tool("docker");
        command.env("DOCKER_CONFIG", docker_config.path()).args(args);
        command
    };
    // docker makes a list with one platform; hoist amends it in the registry.
    ok(docker(&["manifest", "create", "--insecure", &format!("{repo}:docker"), &format!("{repo}@{amd}")]));
    ok(docker(&["manifest", "push", "--insecure", &format!("{repo}:docker")]));
    ok(hoist().args(["index", "add", &format!("{repo}:docker"), &format!("{repo}@{arm}")]));
    // docker's own local copy of the list is stale now (its known bug): read the registry.
    ok(docker(&["manifest", "rm", &format!("{repo}:docker")]));
    let inspected: Value =
        serde_json::from_str(&ok(docker(&["manifest", "inspect", "--insecure", &format!("{repo}:docker")]))).unwrap();
    let mut seen = index_platforms(&inspected);
    seen.sort();
    assert_eq!(seen, ["linux/amd64", "linux/arm64"], "docker reads what hoist pushed");

    // hoist's own docker-style workflow: --amend starts from the registry when there is no local list.
    let data = tempfile::tempdir().unwrap();
    let manifest = |args: &[&str]| {
        let mut command = hoist();
        command.env("XDG_DATA_HOME", data.path()).arg("manifest").args(args);
        command
    };
    ok(manifest(&["create", &format!("{repo}:local"), &format!("{repo}@{amd}")]));
    let again = fails_with(manifest(&["create", &format!("{repo}:local"), &format!("{repo}@{arm}")]), Some(1));
    assert!(again.contains("--amend"), "{again}");
    ok(manifest(&["create", "--amend", &format!("{repo}:local"), &format!("{repo}@{arm}"), &format!("{repo}@{amd}")]));
    let local: Value = serde_json::from_str(&ok(manifest(&["inspect", &format!("{repo}:local")]))).unwrap();
    assert_eq!(local["manifests"].as_array().unwrap().len(), 2, "no duplicate amd64: {local}");
    ok(manifest(&["annotate", &format!("{repo}:local"), &format!("{repo}@{arm}"), "--variant", "v8"]));
    let pushed = ok(manifest(&["push", "--purge", &format!("{repo}:local")]));
    assert!(
        fails_with(manifest(&["rm", &format!("{repo}:local")]), Some(1)).contains("no local list"),
        "--purge removed it"
    );
    let inspected: Value =
        serde_json::from_str(&ok(docker(&["manifest", "inspect", "--insecure", &format!("{repo}:local")]))).unwrap();
    assert!(inspected["manifests"].as_array().unwrap().iter().any(|m| m["platform"]["variant"] == "v8"), "{inspected}");
    assert_eq!(ok(hoist().args(["digest", &format!("{repo}:local")])), pushed);

    ok(manifest(&["create", "--amend", &format!("{repo}:docker"), &format!("{repo}@{amd}")]));
    let from_registry: Value = serde_json::from_str(&ok(manifest(&["inspect", &format!("{repo}:docker")]))).unwrap();
    assert_eq!(from_registry["manifests"].as_array().unwrap().len(), 2, "amend started from the registry's list");
    let verbose: Value =
        serde_json::from_str(&ok(manifest(&["inspect", "--verbose", &format!("{repo}:local")]))).unwrap();
    let first = &verbose.as_array().unwrap()[0];
    assert!(
        first["Ref"].is_string()
            && first["Descriptor"]["digest"].is_string()
            && first["OCIManifest"]["layers"].is_array(),
        "{first}"
    );
}

/// Writes into `layout` an index of the amd64 image plus an attestation manifest for it, as
/// BuildKit does, tagged `attested`.
fn attested_index(layout: &Path) -> String {
    let layout_reader = hoist::layout::Layout::open(layout).unwrap();
    let multi = layout_reader.find_tag("multi").unwrap().unwrap();
    let index: Value = serde_json::from_slice(&layout_reader.read_blob(&multi.digest).unwrap()).unwrap();
    let amd = index["manifests"][0].clone();
    let arm = index["manifests"][1].clone();
    let mut attestation = arm.clone();
    attestation["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
    attestation["annotations"] = json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd["digest"],
    });
    let document = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [amd, attestation] });
    let writer = hoist::layout::LayoutWriter::begin(layout).unwrap();
    commit_json(writer, &document, MediaType::ImageIndex, "attested").to_string()
}

#[test]
fn indexes_as_sources_bring_attestations_and_bad_input_is_explained() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let (layout, _) = build_images(work.path());
    attested_index(&layout);
    let registry = Registry::start();
    let host = registry.host();
    ok(hoist().args([
        "push",
        "-q",
        &format!("oci:{}:attested", layout.display()),
        &format!("{host}/src/app:attested"),
    ]));

    // From another repository: children come along (mounted), attestation included.
    ok(hoist().args(["index", "create", &format!("{host}/team/app:v1"), &format!("{host}/src/app:attested")]));
    let json: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{host}/team/app:v1")]))).unwrap();
    let entries: Vec<&str> =
        json["manifests"].as_array().unwrap().iter().map(|m| m["platform"].as_str().unwrap()).collect();
    assert_eq!(entries, ["linux/amd64", "unknown/unknown"]);
    ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/team/app:v1")]));
    ok(hoist().args([
        "index",
        "create",
        "--no-attestations",
        &format!("{host}/team/bare:v1"),
        &format!("{host}/src/app:attested"),
    ]));
    assert_eq!(platforms(&host, "team/bare:v1"), ["linux/amd64"]);

    // Straight from a layout, too.
    ok(hoist().args([
        "index",
        "create",
        &format!("{host}/team/fromlayout:v1"),
        &format!("oci:{}:single", layout.display()),
    ]));
    assert_eq!(platforms(&host, "team/fromlayout:v1"), ["linux/amd64"]);

    // `index add` on a tag that does not exist yet creates it (issue 12: the first of several
    // parallel CI runners must not fail); before, this failed with exit 5 naming `index create`.
    ok(hoist().args(["index", "add", &format!("{host}/team/app:nope"), &format!("{host}/src/app:attested")]));
    assert_eq!(platforms(&host, "team/app:nope"), ["linux/amd64", "unknown/unknown"]);
    // Removing from a tag that does not exist is still "not found".
    let missing = fails_with(
        hoist().args(["index", "rm", &format!("{host}/team/app:absent"), "--platform", "linux/amd64"]),
        Some(5),
    );
    assert!(missing.contains("no such tag"), "{missing}");
    ok(hoist().args(["push", "-q", &format!("oci:{}:single", layout.display()), &format!("{host}/team/app:single")]));
    let single = fails_with(
        hoist().args(["index", "add", &format!("{host}/team/app:single"), &format!("{host}/src/app:attested")]),
        Some(3),
    );
    assert!(single.contains("single image") && single.contains("index create"), "{single}");

    // An image whose config names no platform: the error points at annotate.
    let mut writer = hoist::layout::LayoutWriter::begin(&layout).unwrap();
    let (config, config_size) =
        writer.add_json(&json!({ "rootfs": { "type": "layers", "diff_ids": [] } }), "config").unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_size },
        "layers": [],
    });
    commit_json(writer, &manifest, MediaType::ImageManifest, "noplatform");
    let error = fails_with(
        hoist().args([
            "index",
            "create",
            &format!("{host}/team/x:v1"),
            &format!("oci:{}:noplatform", layout.display()),
        ]),
        Some(3),
    );
    assert!(error.contains("annotate"), "{error}");
}

#[test]
fn concurrent_adds_of_different_platforms_both_land() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let host = registry.host();
    let repo = format!("{host}/team/app");
    let (amd, arm) = push_platforms(work.path(), &repo);
    // An empty index to start every round from.
    ok(hoist().args(["index", "create", &format!("{repo}:empty"), &format!("{repo}@{amd}")]));
    ok(hoist().args(["index", "rm", &format!("{repo}:empty"), "--platform", "linux/amd64", "--allow-empty"]));
    for round in 0..20 {
        let tag = format!("{repo}:round{round}");
        ok(tool("skopeo").args([
            "copy",
            "--quiet",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{repo}:empty"),
            &format!("docker://{tag}"),
        ]));
        let adders: Vec<_> = [&amd, &arm]
            .iter()
            .map(|digest| {
                hoist()
                    .args(["index", "add", &tag, &format!("{repo}@{digest}")])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut adder in adders {
            assert!(adder.wait().unwrap().success(), "round {round}");
        }
        assert_eq!(platforms(&host, &format!("team/app:round{round}")).len(), 2, "round {round} lost an entry");
    }
}

/// Issue 12: index edits are safe to rerun. Through a proxy that counts requests, against the
/// real registry.
#[test]
fn index_edits_are_idempotent_keep_their_order_and_refuse_emptying() {
    use crate::util::proxy::Proxy;
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start(registry.host(), |_, _| {});
    let host = proxy.host();
    let repo = format!("{host}/team/app");
    let (amd, arm) = push_platforms(work.path(), &repo);
    let tag = format!("{repo}:ci");

    // The first of the parallel runners finds no tag: add creates the index.
    let first = ok(hoist().args(["index", "add", "--settle", "100", &tag, &format!("{repo}@{arm}")]));
    let second = ok(hoist().args(["index", "add", "--settle", "100", &tag, &format!("{repo}@{amd}")]));
    assert_ne!(first, second);
    assert_eq!(platforms(&host, "team/app:ci"), ["linux/arm64", "linux/amd64"]);

    // Adding what is there changes nothing and writes nothing.
    let puts = proxy.count("PUT", "/manifests/");
    let again =
        ok(hoist().args(["index", "add", "--settle", "100", &tag, &format!("{repo}@{amd}"), &format!("{repo}@{arm}")]));
    assert_eq!(again, second, "the digest stays");
    assert_eq!(proxy.count("PUT", "/manifests/"), puts, "no manifest written on a rerun");
    assert_eq!(platforms(&host, "team/app:ci"), ["linux/arm64", "linux/amd64"], "order kept");

    // `manifest create --amend` reruns are stable too.
    let data = tempfile::tempdir().unwrap();
    let manifest = |args: &[&str]| {
        let mut command = hoist();
        command.env("XDG_DATA_HOME", data.path()).arg("manifest").args(args);
        command
    };
    ok(manifest(&["create", "--amend", &tag, &format!("{repo}@{arm}")]));
    let local: Value = serde_json::from_str(&ok(manifest(&["inspect", &tag]))).unwrap();
    assert_eq!(index_platforms(&local), ["linux/arm64", "linux/amd64"], "arm64 stays first: {local}");

    // manifest inspect LIST REF shows that entry's manifest; a digest not in the list is refused.
    let entry: Value = serde_json::from_str(&ok(manifest(&["inspect", &tag, &format!("{repo}@{amd}")]))).unwrap();
    assert!(entry["layers"].is_array() && entry.get("manifests").is_none(), "{entry}");
    let remote: Value = serde_json::from_str(&ok(hoist().args([
        "manifest",
        "inspect",
        &format!("{repo}:ci"),
        &format!("{repo}@{arm}"),
    ])))
    .unwrap();
    assert!(remote["layers"].is_array(), "{remote}");
    let stranger = format!("{repo}@sha256:{}", "0".repeat(64));
    let refused = fails_with(manifest(&["inspect", &tag, &stranger]), Some(3));
    assert!(refused.contains("not in the list") && refused.contains(&amd), "{refused}");
    // -v on a local list: docker's verbose form, one object per entry.
    let verbose: Value = serde_json::from_str(&ok(manifest(&["inspect", "-v", &tag]))).unwrap();
    let verbose = verbose.as_array().unwrap();
    assert_eq!(verbose.len(), 2);
    assert!(verbose[0]["Descriptor"]["digest"] == arm && verbose[0]["OCIManifest"]["layers"].is_array(), "{verbose:?}");

    // Removing the last platform is refused unless asked for.
    ok(hoist().args(["index", "rm", "--settle", "100", &tag, "--platform", "linux/arm64"]));
    let last = fails_with(hoist().args(["index", "rm", "--settle", "100", &tag, "--platform", "linux/amd64"]), Some(3));
    assert!(last.contains("--allow-empty"), "{last}");
    assert_eq!(platforms(&host, "team/app:ci"), ["linux/amd64"], "nothing written");
    ok(hoist().args(["index", "rm", "--settle", "100", &tag, "--platform", "linux/x86_64", "--allow-empty"]));
    assert!(platforms(&host, "team/app:ci").is_empty(), "x86_64 is amd64");

    // buildx imagetools style: the target by --tag (repeatable), annotations on the index.
    let created = ok(hoist().args([
        "index",
        "create",
        "--tag",
        &format!("{repo}:v2"),
        "--tag",
        &format!("{repo}:latest"),
        "--annotation",
        "org.opencontainers.image.version=2.0.0",
        &format!("{repo}@{amd}"),
        &format!("{repo}@{arm}"),
    ]));
    for tag in ["v2", "latest"] {
        assert_eq!(ok(hoist().args(["digest", &format!("{repo}:{tag}")])), created, "{tag}");
    }
    let raw: Value = serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &format!("{repo}:latest")]))).unwrap();
    assert_eq!(raw["annotations"]["org.opencontainers.image.version"], "2.0.0", "{raw}");
    assert_eq!(index_platforms(&raw), ["linux/amd64", "linux/arm64"]);
}
