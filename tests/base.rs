//! Base images, mirrors and copies across registries: base layers are mounted or streamed,
//! never downloaded, when the result goes to a registry.

use std::path::Path;

use serde_json::Value;

use crate::util::proxy::{Fault, Proxy};
use crate::util::registry::{free_port, Registry, Setup};
use crate::util::{build_images, commit_json, fails_with, hoist, make_dist, ok, tool};

/// Pushes the example's two-platform image to `reference` as a base; returns its layer digests.
fn push_base(work: &Path, reference: &str) -> Vec<String> {
    make_dist(work);
    let (layout, _) = build_images(work);
    ok(hoist().args(["push", "-q", &format!("oci:{}:multi", layout.display()), reference]));
    let mut layers = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let json: Value =
            serde_json::from_str(&ok(hoist().args(["inspect", "--json", "--platform", platform, reference]))).unwrap();
        layers.extend(json["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()));
    }
    layers
}

/// An app layer for the new image, built in `dir`.
fn app_dir(dir: &Path) -> String {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("new.txt"), "on top of the base\n").unwrap();
    format!("{}:/srv/", app.display())
}

fn build_on(base: &str, layer: &str, extra: &[&str]) -> std::process::Command {
    let mut command = hoist();
    command
        .args(["build", "--platform", "linux/amd64", "--platform", "linux/arm64", "--layer", layer, "--base", base])
        .args(["--entrypoint", "/srv/run", "--env", "EXTRA=1"])
        .args(extra);
    command
}

#[test]
fn a_base_in_the_same_registry_is_mounted_and_never_read() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let base_layers = push_base(work.path(), &format!("{}/base/img:3", registry.host()));
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let report: Value = serde_json::from_str(&ok(build_on(
        &format!("{}/base/img:3", proxy.host()),
        &app_dir(work.path()),
        &["--push", &format!("{}/team/app:v1", proxy.host()), "--json"],
    )))
    .unwrap();
    assert_eq!(report["blobs_mounted"], base_layers.len(), "{report}");
    for layer in &base_layers {
        assert_eq!(proxy.count("GET", &format!("/blobs/{layer}")), 0, "base layer {layer} was downloaded");
    }
    let json: Value = serde_json::from_str(&ok(hoist().args([
        "inspect",
        "--json",
        "--platform",
        "linux/arm64",
        &format!("{}/team/app:v1", registry.host()),
    ])))
    .unwrap();
    let layers: Vec<&str> = json["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
    assert_eq!(layers[0], base_layers[1], "the arm64 image sits on the arm64 base layer");
    assert_eq!(layers.len(), 2);
    let config: Value = serde_json::from_str(&ok(hoist().args([
        "inspect",
        "--config",
        "--platform",
        "linux/arm64",
        &format!("{}/team/app:v1", registry.host()),
    ])))
    .unwrap();
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/srv/run"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let raw: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/team/app:v1", registry.host()),
    ])))
    .unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    let manifest: Value = serde_json::from_str(&ok(hoist().args([
        "inspect",
        "--raw",
        "--platform",
        "linux/amd64",
        &format!("{}/team/app:v1", registry.host()),
    ])))
    .unwrap();
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], format!("{}/base/img:3", proxy.host()));
    assert!(manifest["annotations"]["org.opencontainers.image.base.digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_base_in_another_registry_is_streamed_and_copies_keep_their_digest() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (Registry::start(), Registry::start());
    let base_layers = push_base(work.path(), &format!("{}/base/img:3", a.host()));
    ok(build_on(
        &format!("{}/base/img:3", a.host()),
        &app_dir(work.path()),
        &["--push", &format!("{}/team/app:v1", b.host()), "-q"],
    ));
    let inspect: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "amd64",
        &format!("docker://{}/team/app:v1", b.host()),
    ])))
    .unwrap();
    assert_eq!(inspect["Layers"][0], base_layers[0].as_str(), "the base layer arrived in B unchanged");

    // Promotion: a whole index copied across registries keeps its digest.
    let digest = ok(hoist().args(["digest", &format!("{}/base/img:3", a.host())]));
    let copied = ok(hoist().args(["copy", &format!("{}/base/img:3", a.host()), &format!("{}/prod/img:3", b.host())]));
    assert_eq!(copied, digest);
    assert_eq!(ok(hoist().args(["digest", &format!("{}/prod/img:3", b.host())])), digest);
    let one = ok(hoist().args([
        "copy",
        "--platform",
        "linux/arm64",
        &format!("{}/base/img:3", a.host()),
        &format!("{}/prod/arm:3", b.host()),
    ]));
    let json: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{}/prod/arm:3", b.host())]))).unwrap();
    assert_eq!(json["platform"], "linux/arm64");
    assert_eq!(json["digest"], one.trim());
}

#[test]
fn layouts_built_on_a_base_are_complete_reproducible_and_cached() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    push_base(work.path(), &format!("{}/base/img:3", registry.host()));
    let cache = tempfile::tempdir().unwrap();
    let layer = app_dir(work.path());
    let mut digests = Vec::new();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    for name in ["first", "second"] {
        let layout = work.path().join(name);
        proxy.requests.lock().unwrap().clear();
        let out = ok(build_on(
            &format!("{}/base/img:3", proxy.host()),
            &layer,
            &["--output", &format!("oci:{}:v1", layout.display())],
        )
        .env("XDG_CACHE_HOME", cache.path()));
        digests.push((out, proxy.count("GET", "/blobs/sha256:")));
        let single = work.path().join(format!("{name}-amd64"));
        ok(tool("skopeo")
            .args(["copy", "--quiet", "--override-arch", "amd64", &format!("oci:{}:v1", layout.display())])
            .arg(format!("oci:{}:x", single.display())));
        let bundle = work.path().join(format!("{name}-bundle"));
        ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:x", single.display())).arg(&bundle));
        assert!(bundle.join("rootfs/app/server").exists(), "the base's files are in the image");
        assert!(bundle.join("rootfs/srv/new.txt").exists(), "and hoist's layer on top");
    }
    assert_eq!(digests[0].0, digests[1].0, "the same build on the same base gives the same index");
    assert!(digests[0].1 >= 4, "the first build fetched the base (configs and layers)");
    assert_eq!(digests[1].1, digests[0].1 - 2, "the second took both base layers from the cache");
}

#[test]
fn docker_hub_pulls_go_through_the_mirror_first() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Registry::start();
    push_base(work.path(), &format!("{}/library/alpine:3", upstream.host()));
    let mirror = Registry::start_with(Setup {
        extra: Some(format!("proxy:\n  remoteurl: http://{}\n", upstream.host())),
        ..Setup::default()
    });
    // Docker Hub itself is a closed loopback port here: nothing leaves the machine.
    let hub = format!("127.0.0.1:{}", free_port());
    let out = work.path().join("out");
    ok(build_on("alpine:3", &app_dir(work.path()), &["--output", &format!("oci:{}:v1", out.display())])
        .env("HOIST_DOCKER_HUB_HOST", &hub)
        .env("XDG_CACHE_HOME", work.path().join("cache"))
        .args(["--registry-mirror", &format!("http://{}", mirror.host())]));
    let manifest: Value = serde_json::from_str(&ok(hoist().args([
        "inspect",
        "--raw",
        "--platform",
        "linux/amd64",
        &format!("oci:{}:v1", out.display()),
    ])))
    .unwrap();
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], "docker.io/library/alpine:3");

    let error = fails_with(
        build_on("alpine:missing", &app_dir(work.path()), &["--output", &format!("oci:{}:v2", out.display())])
            .env("HOIST_DOCKER_HUB_HOST", &hub)
            .args(["--registry-mirror", &format!("http://{}", mirror.host())]),
        None,
    );
    assert!(error.contains(&format!("mirror {}", mirror.host())) && error.contains("docker.io"), "{error}");
}

#[test]
fn bad_bases_are_explained_and_nothing_is_pushed() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let host = registry.host();
    push_base(work.path(), &format!("{host}/base/img:3"));
    let layer = app_dir(work.path());
    let target = format!("{host}/team/app:v1");
    let missing = fails_with(build_on(&format!("{host}/base/none:1"), &layer, &["--push", &target]), Some(5));
    assert!(missing.contains("not found"), "{missing}");
    let platform = fails_with(
        hoist().args([
            "build",
            "--platform",
            "linux/s390x",
            "--layer",
            &layer,
            "--base",
            &format!("{host}/base/img:3"),
            "--push",
            &target,
        ]),
        Some(3),
    );
    assert!(platform.contains("linux/amd64, linux/arm64"), "{platform}");

    // A base whose layer type hoist cannot use (a Windows foreign layer).
    let (layout, _) = build_images(work.path());
    let layout_reader = hoist::layout::Layout::open(&layout).unwrap();
    let single = layout_reader.find_tag("single").unwrap().unwrap();
    let mut manifest: Value = serde_json::from_slice(&layout_reader.read_blob(&single.digest).unwrap()).unwrap();
    manifest["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
    let writer = hoist::layout::LayoutWriter::begin(&layout).unwrap();
    commit_json(writer, &manifest, oci_spec::image::MediaType::ImageManifest, "foreign");
    let foreign = fails_with(
        hoist().args([
            "build",
            "--platform",
            "linux/amd64",
            "--layer",
            &layer,
            "--base",
            &format!("oci:{}:foreign", layout.display()),
            "--push",
            &target,
        ]),
        Some(3),
    );
    assert!(foreign.contains("foreign"), "{foreign}");
    assert!(fails_with(hoist().args(["digest", &target]), Some(5)).contains("not found"), "nothing was pushed");
}

/// A docker-made base (schema2, `null` fields, fields hoist does not model) from a layout: the
/// new config is the base's merged field by field (Env by key, a new Entrypoint dropping the
/// Cmd, Labels and ports added to), every field hoist does not set passing through as the base
/// has it, `null` included; and the bytes are the ones hoist wrote before the build moved from
/// oci-spec and a JSON-value merge to its own types (the digest is pinned).
#[test]
fn a_docker_base_config_is_merged_by_field_and_the_rest_passes_through() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let mut writer = hoist::layout::LayoutWriter::begin(&work.path().join("base")).unwrap();
    let mut blob = writer.blob().unwrap();
    blob.write_all(b"a base layer").unwrap();
    let (layer, layer_size) = writer.add_blob(blob).unwrap();
    let base_history = serde_json::json!({ "created_by": "/bin/sh -c #(nop) ADD file", "comment": "x", "x": 1 });
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "container": "abc", "docker_version": "20.10",
        "config": {
            "Hostname": "", "User": "", "WorkingDir": "", "Env": ["PATH=/usr/bin", "A=1"], "Cmd": ["/bin/sh"],
            "Entrypoint": null, "OnBuild": null, "Labels": null, "Volumes": null, "ArgsEscaped": true,
            "ExposedPorts": { "22/tcp": {} }, "Healthcheck": { "Test": ["CMD", "true"], "Interval": 30 }
        },
        "rootfs": { "type": "layers", "diff_ids": [hoist::Digest::of(b"tar").to_string()] },
        "history": [base_history, { "created_by": "CMD", "empty_layer": true }]
    });
    let (config_digest, config_size) = writer.add_json(&config, "config").unwrap();
    let docker = |kind: &str| format!("application/vnd.docker.{kind}");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": docker("distribution.manifest.v2+json"),
        "config": { "mediaType": docker("container.image.v1+json"), "digest": config_digest.to_string(), "size": config_size },
        "layers": [{ "mediaType": docker("image.rootfs.diff.tar.gzip"), "digest": layer.to_string(), "size": layer_size }]
    });
    let media_type = oci_spec::image::MediaType::Other(docker("distribution.manifest.v2+json"));
    commit_json(writer, &manifest, media_type, "docker");
    std::fs::create_dir_all(work.path().join("dist/linux_amd64")).unwrap();
    std::fs::write(work.path().join("dist/linux_amd64/app"), "hi\n").unwrap();

    let digest = ok(hoist()
        .current_dir(work.path())
        .args(["build", "--platform", "linux/amd64", "--layer", "dist/{os}_{arch}/:/app/", "--base", "oci:base:docker"])
        .args(["--entrypoint", "/app/app", "-e", "A=2", "-e", "B=3", "--label", "l=1", "--port", "80"])
        .args(["--output", "oci:out:v1"]));
    let out = work.path().join("out");
    let image = format!("oci:{}:v1", out.display());
    let built: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--config", "--platform", "linux/amd64", &image]))).unwrap();
    let run = &built["config"];
    assert_eq!(run["Env"], serde_json::json!(["PATH=/usr/bin", "A=2", "B=3"]), "{built}");
    assert_eq!(run["Entrypoint"], serde_json::json!(["/app/app"]));
    assert!(run.get("Cmd").is_none(), "a new entrypoint drops the inherited cmd: {built}");
    assert_eq!(run["Labels"], serde_json::json!({ "l": "1" }), "labels added to a null");
    assert_eq!(run["ExposedPorts"], serde_json::json!({ "22/tcp": {}, "80/tcp": {} }));
    for (field, kept) in [("OnBuild", Value::Null), ("Volumes", Value::Null), ("ArgsEscaped", true.into())] {
        assert_eq!(run.get(field), Some(&kept), "{field} passes through: {built}");
    }
    assert_eq!(run["Healthcheck"], config["config"]["Healthcheck"]);
    assert_eq!((&run["User"], &run["WorkingDir"], &run["Hostname"]), (&"".into(), &"".into(), &"".into()));
    assert!(built.get("container").is_none() && built.get("docker_version").is_none(), "{built}");
    assert_eq!(built["history"].as_array().unwrap().len(), 3);
    assert_eq!(built["history"][0], config["history"][0], "the base's history first, as it was");
    assert_eq!(built["rootfs"]["diff_ids"][0], config["rootfs"]["diff_ids"][0]);
    let manifest: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--raw", "--platform", "linux/amd64", &image]))).unwrap();
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let before = "sha256:899be949310ef3a5ca15968822716532d8d3dbeaa4f4cf5799ecc855ff712406";
    assert_eq!(digest.trim(), before, "the bytes hoist writes for this build did not change");
}
