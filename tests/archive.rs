//! Archives: `docker-archive:` and `oci-archive:` as build outputs and as sources and sinks of
//! copy and push, read by the real peers (podman, skopeo, umoci).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::hostile::{Hostile, Reply};
use crate::util::registry::Registry;
use crate::util::{fails_with, fails_without_hanging, hoist, make_dist, ok, snapshot, tool, APP_BUILD};

/// podman with its own vfs storage under `root`: no daemon, nothing shared with the machine.
fn podman(root: &Path) -> Command {
    let mut command = tool("podman");
    command
        .arg("--storage-driver")
        .arg("vfs")
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .arg("--events-backend")
        .arg("file")
        .arg("--cgroup-manager")
        .arg("cgroupfs");
    command
}

/// No staging directory or temporary file is left beside an archive.
fn assert_no_leftovers(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hoist"))
        .collect();
    assert!(left.is_empty(), "left behind in {}: {left:?}", dir.display());
}

fn inspect(location: &str) -> Value {
    serde_json::from_str(&ok(tool("skopeo").args(["inspect", location]))).unwrap()
}

#[test]
fn a_built_docker_archive_is_loaded_by_podman_and_read_by_skopeo() {
    let work = tempfile::tempdir().unwrap();
    let dist = make_dist(work.path());
    // A static busybox as /app/ls, so the loaded image has a program to run.
    std::fs::copy("/bin/busybox", dist.join("linux_amd64/ls")).unwrap();
    let archive = work.path().join("out/app.tar");
    let location = format!("docker-archive:{}:hoist-test/app:v1", archive.display());
    ok(hoist()
        .current_dir(work.path())
        .args(["build", "--platform", "linux/amd64", "--layer", "dist/{os}_{arch}/:/app/"])
        .args(["--output", &location]));
    assert_no_leftovers(&archive.with_file_name(""));

    let listing = ok(tool("tar").arg("-tf").arg(&archive));
    assert!(listing.lines().any(|l| l == "manifest.json") && listing.lines().any(|l| l == "repositories"), "{listing}");
    let manifest: Value =
        serde_json::from_str(&ok(tool("tar").arg("-xOf").arg(&archive).arg("manifest.json"))).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["hoist-test/app:v1"]), "{manifest}");
    assert!(manifest[0]["Config"].as_str().unwrap().starts_with("blobs/sha256/"), "config by digest: {manifest}");

    let seen = inspect(&format!("docker-archive:{}", archive.display()));
    assert_eq!((seen["Os"].as_str(), seen["Architecture"].as_str()), (Some("linux"), Some("amd64")), "{seen}");
    assert_eq!(seen["Layers"].as_array().unwrap().len(), 1, "{seen}");

    let storage = tempfile::tempdir().unwrap();
    let loaded = ok(podman(storage.path()).arg("load").arg("-i").arg(&archive));
    assert!(loaded.contains("hoist-test/app:v1"), "podman load: {loaded}");
    let image = "localhost/hoist-test/app:v1";
    let images = ok(podman(storage.path()).args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.lines().any(|l| l == image), "{images}");
    let mounted = PathBuf::from(ok(podman(storage.path()).args(["image", "mount", image])).trim());
    let mut expected = snapshot(&dist.join("linux_amd64"));
    let files = snapshot(&mounted.join("app"));
    expected.remove("ls");
    let mut files_without_busybox = files.clone();
    files_without_busybox.remove("ls");
    assert_eq!(files_without_busybox, expected, "the loaded image holds the layer's files");
    ok(podman(storage.path()).args(["image", "unmount", image]));

    // `podman run` needs namespaces and rlimits that some machines (this sandbox's CI among
    // them) refuse; where it runs, the listing must show the layer's files.
    let run =
        podman(storage.path()).args(["run", "--rm", "--network", "none", image, "/app/ls", "/app"]).output().unwrap();
    match run.status.success() {
        true => {
            let listed = String::from_utf8_lossy(&run.stdout);
            for name in ["server", "server-alias", "config", "static", "index.html"] {
                assert!(listed.split_whitespace().any(|n| n == name), "{name} not in {listed}");
            }
        }
        false => eprintln!("podman run refused on this machine: {}", String::from_utf8_lossy(&run.stderr).trim()),
    }

    // What podman saves (uncompressed `<id>.tar` layers, config `<hex>.json`) hoist reads back.
    let saved = work.path().join("saved.tar");
    ok(podman(storage.path()).args(["save", "--format", "docker-archive", "-o"]).arg(&saved).arg(image));
    let layout = work.path().join("from-podman");
    ok(hoist().args([
        "copy",
        "-q",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci:{}:v1", layout.display()),
    ]));
    let bundle = work.path().join("bundle");
    ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:v1", layout.display())).arg(&bundle));
    assert_eq!(
        snapshot(&bundle.join("rootfs/app")),
        files,
        "podman's docker-archive, read by hoist, unpacked by umoci"
    );

    // Several platforms do not fit in one docker-archive: the error names --platform, and an
    // archive already there is left as it was.
    let before = std::fs::read(&archive).unwrap();
    let error = fails_with(hoist().current_dir(work.path()).args(APP_BUILD).args(["--output", &location]), Some(3));
    assert!(error.contains("--platform"), "{error}");
    assert_eq!(std::fs::read(&archive).unwrap(), before, "a failed write leaves the archive as it was");
    assert_no_leftovers(&archive.with_file_name(""));
    let error = fails_with(
        hoist()
            .current_dir(work.path())
            .args(APP_BUILD)
            .args(["--output", &format!("docker-archive:{}", work.path().join("two.tar").display())]),
        Some(3),
    );
    assert!(error.contains("--platform"), "{error}");
    assert!(!work.path().join("two.tar").exists());
}

#[test]
fn oci_archives_are_read_by_skopeo_and_umoci_and_archives_go_both_ways() {
    let work = tempfile::tempdir().unwrap();
    let dist = make_dist(work.path());
    let archive = work.path().join("app.oci.tar");
    let index_digest = ok(hoist()
        .current_dir(work.path())
        .args(APP_BUILD)
        .args(["--output", &format!("oci-archive:{}:v1", archive.display())]))
    .trim()
    .to_owned();

    let raw: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v1", archive.display()),
    ])))
    .unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    let arm = inspect(&format!("oci-archive:{}:v1", archive.display()));
    assert_eq!(arm["Os"], "linux", "{arm}");

    // umoci reads layouts: an archive unpacked with tar is one. One platform of the index,
    // copied archive to archive, so that its tag names one image.
    let single = work.path().join("arm.oci.tar");
    ok(hoist()
        .args(["copy", "-q", "--platform", "linux/arm64"])
        .args([format!("oci-archive:{}:v1", archive.display()), format!("oci-archive:{}:arm", single.display())]));
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    ok(tool("tar").arg("-xf").arg(&single).arg("-C").arg(&unpacked));
    let bundle = work.path().join("bundle");
    ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:arm", unpacked.display())).arg(&bundle));
    assert_eq!(
        snapshot(&bundle.join("rootfs/app")),
        snapshot(&dist.join("linux_arm64")),
        "umoci unpacks the archive's image"
    );

    let registry = Registry::start();
    let pushed = ok(hoist().args([
        "push",
        "-q",
        &format!("oci-archive:{}:v1", archive.display()),
        &format!("{}/app:v1", registry.host()),
    ]));
    assert_eq!(pushed.trim(), index_digest, "the archive's index is pushed as it is");
    assert_eq!(ok(hoist().args(["digest", &format!("{}/app:v1", registry.host())])).trim(), index_digest);

    // Registry → docker-archive: one platform of the index.
    let docker = work.path().join("docker/arm.tar");
    let to = format!("docker-archive:{}:app:arm", docker.display());
    let error = fails_with(hoist().args(["copy", &format!("{}/app:v1", registry.host()), &to]), Some(3));
    assert!(error.contains("--platform"), "{error}");
    ok(hoist().args(["copy", "-q", "--platform", "linux/arm64", &format!("{}/app:v1", registry.host()), &to]));
    assert_no_leftovers(&work.path().join("docker"));
    let seen = inspect(&format!("docker-archive:{}", docker.display()));
    assert_eq!(seen["Architecture"], "arm64", "{seen}");

    // docker-archive → registry and → layout: the same image (config and layers) comes back.
    ok(hoist().args([
        "push",
        "-q",
        &format!("docker-archive:{}", docker.display()),
        &format!("{}/app:from-docker", registry.host()),
    ]));
    let config =
        |location: &str, platform: &[&str]| ok(hoist().args(["inspect", "--config"]).args(platform).arg(location));
    assert_eq!(
        config(&format!("{}/app:from-docker", registry.host()), &[]),
        config(&format!("oci-archive:{}:v1", archive.display()), &["--platform", "linux/arm64"]),
        "the docker-archive carried the arm64 config unchanged"
    );
    let pulled: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/app:from-docker", registry.host()),
    ])))
    .unwrap();
    assert_eq!(pulled["Architecture"], "arm64", "{pulled}");
    assert_eq!(pulled["Layers"].as_array().unwrap().len(), 1, "{pulled}");
    let layout = work.path().join("layout");
    ok(hoist().args([
        "copy",
        "-q",
        &format!("docker-archive:{}:app:arm", docker.display()),
        &format!("oci:{}:arm", layout.display()),
    ]));
    let bundle = work.path().join("bundle-arm");
    ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:arm", layout.display())).arg(&bundle));
    assert_eq!(
        snapshot(&bundle.join("rootfs/app")),
        snapshot(&dist.join("linux_arm64")),
        "the docker-archive's image round-trips"
    );

    // A name the archive does not hold is refused, naming the ones it has.
    let error =
        fails_with(hoist().args(["inspect", &format!("docker-archive:{}:other:v9", docker.display())]), Some(3));
    assert!(error.contains("app:arm"), "{error}");
}

/// Makes a FIFO and a character device (the kernel's null device, made here rather than
/// risking `/dev/null` itself) in `dir`.
fn fifo_and_device(dir: &Path) -> (PathBuf, PathBuf) {
    let (fifo, device) = (dir.join("pipe"), dir.join("null"));
    ok(tool("mkfifo").arg(&fifo));
    ok(tool("mknod").arg(&device).args(["c", "1", "3"]));
    (fifo, device)
}

/// The node at `path` is still the kind of file it was.
fn assert_still(path: &Path, kind: &str) {
    use std::os::unix::fs::FileTypeExt;
    let file_type = std::fs::symlink_metadata(path).unwrap().file_type();
    let found = match () {
        _ if file_type.is_fifo() => "fifo",
        _ if file_type.is_char_device() => "character device",
        _ if file_type.is_symlink() => "symlink",
        _ => "something else",
    };
    assert_eq!(found, kind, "{} was replaced", path.display());
}

#[test]
fn archives_are_never_written_onto_a_fifo_a_device_or_through_a_symlink() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let (fifo, device) = fifo_and_device(&out);
    let elsewhere = work.path().join("elsewhere.tar");
    std::fs::write(&elsewhere, "keep").unwrap();
    let link = out.join("link.tar");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let cache = work.path().join("cache");

    // build: refused before any layer is built (nothing reaches the layer cache).
    for (path, kind) in [(&fifo, "fifo"), (&device, "character device"), (&link, "symlink")] {
        for format in ["oci-archive", "docker-archive"] {
            let error = fails_without_hanging(
                hoist()
                    .current_dir(work.path())
                    .env("XDG_CACHE_HOME", &cache)
                    .args(["build", "--platform", "linux/amd64", "--layer", "dist/{os}_{arch}/:/app/"])
                    .args(["--output", &format!("{format}:{}", path.display())]),
                Some(3),
            );
            assert!(error.contains(&path.display().to_string()) && error.contains(kind), "{error}");
            assert_still(path, kind);
        }
    }
    assert!(!cache.exists(), "the build stopped before building anything");

    // copy and push: refused before anything is read or staged.
    ok(hoist().current_dir(work.path()).args([
        "build",
        "--platform",
        "linux/amd64",
        "--layer",
        "dist/{os}_{arch}/:/app/",
        "--output",
        "oci:layout:v1",
    ]));
    for (path, kind) in [(&fifo, "fifo"), (&device, "character device"), (&link, "symlink")] {
        for (verb, to) in [
            ("copy", format!("oci-archive:{}", path.display())),
            ("push", format!("docker-archive:{}:app:v1", path.display())),
        ] {
            let error =
                fails_without_hanging(hoist().current_dir(work.path()).args([verb, "oci:layout:v1", &to]), Some(3));
            assert!(error.contains(&path.display().to_string()) && error.contains(kind), "{error}");
            assert_still(path, kind);
        }
    }
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep", "nothing was written through the link");
    assert_no_leftovers(&out);
    assert_no_leftovers(work.path());

    // As a source, a FIFO is refused too, not waited on for a writer.
    for format in ["oci-archive", "docker-archive"] {
        let error = fails_without_hanging(hoist().args(["inspect", &format!("{format}:{}", fifo.display())]), Some(3));
        assert!(error.contains(&fifo.display().to_string()) && error.contains("fifo"), "{error}");
    }
}

/// A layer: a tar of one file `name` holding `content`.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

/// Writes a docker-archive the way older `docker save` and go-containerregistry's test
/// archives do (`<id>/layer.tar`, `<hex>.json`, `RepoTags` as given, bare names included): one
/// image per entry of `images`, each its tags and its layers, stored as they are. Returns each
/// image's config digest.
fn docker_save(path: &Path, images: &[(&[&str], Vec<Vec<u8>>)]) -> Vec<String> {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).unwrap();
    };
    let (mut entries, mut configs) = (Vec::new(), Vec::new());
    for (tags, layers) in images {
        let mut names = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in layers {
            let plain = match layer.starts_with(&[0x1f, 0x8b]) {
                true => {
                    let mut plain = Vec::new();
                    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&layer[..]), &mut plain).unwrap();
                    plain
                }
                false => layer.clone(),
            };
            diff_ids.push(hoist::Digest::of(&plain).to_string());
            let name = format!("{}/layer.tar", hoist::Digest::of(layer).hex());
            add(&name, layer);
            names.push(name);
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [format!("TAGS={}", tags.join(","))]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = hoist::Digest::of(&config);
        add(&format!("{}.json", config_digest.hex()), &config);
        configs.push(config_digest.to_string());
        entries.push(
            serde_json::json!({"Config": format!("{}.json", config_digest.hex()), "RepoTags": tags, "Layers": names}),
        );
    }
    add("manifest.json", &serde_json::to_vec(&entries).unwrap());
    builder.into_inner().unwrap();
    configs
}

/// Two images with bare names in `RepoTags`, as go-containerregistry's test archives have.
fn two_image_archive(path: &Path) -> Vec<String> {
    docker_save(
        path,
        &[
            (&["test_image_1"], vec![layer_tar("one.txt", b"first image\n")]),
            (&["test_image_2"], vec![layer_tar("two.txt", b"second image\n")]),
        ],
    )
}

/// Issue 21, 11: names are compared as docker compares them on both sides (a bare name in
/// the archive's `RepoTags` is `:latest`, `docker.io/library/` is implied), and `@N` picks the
/// Nth image from 0 as skopeo does; out of range, or as a destination, a clear error (exit 3).
#[test]
fn docker_archive_images_are_named_as_docker_names_them_or_by_position() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("images.tar");
    let configs = two_image_archive(&archive);
    let at = |image: &str| format!("docker-archive:{}:{image}", archive.display());
    let config_of = |image: &str| {
        let manifest: Value = serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &at(image)]))).unwrap();
        manifest["config"]["digest"].as_str().unwrap().to_owned()
    };
    for (image, expected) in [
        ("test_image_1", &configs[0]),
        ("test_image_1:latest", &configs[0]),
        ("docker.io/library/test_image_2", &configs[1]),
        ("@0", &configs[0]),
        ("@1", &configs[1]),
    ] {
        assert_eq!(&config_of(image), expected, "{image}");
    }
    // skopeo counts from 0 too.
    let skopeo = ok(tool("skopeo").args(["inspect", "--raw", "--config", &at("@1")]));
    assert_eq!(hoist::Digest::of(skopeo.as_bytes()).to_string(), configs[1], "@1 is skopeo's @1");

    let error = fails_with(hoist().args(["inspect", &at("@2")]), Some(3));
    assert!(error.contains("@0 test_image_1, @1 test_image_2"), "{error}");
    let error = fails_with(hoist().args(["inspect", &at("test_image_3")]), Some(3));
    assert!(error.contains("@1 test_image_2"), "{error}");
    let error = fails_with(hoist().args(["inspect", &format!("docker-archive:{}", archive.display())]), Some(3));
    assert!(error.contains("@N"), "{error}");
    for position in ["@-1", "@+1"] {
        let error = fails_with(hoist().args(["inspect", &at(position)]), Some(3));
        assert!(error.contains("@N"), "{position}: {error}");
    }
    let written = work.path().join("out.tar");
    let to = format!("docker-archive:{}:@0", written.display());
    let error = fails_with(hoist().args(["copy", &at("@0"), &to]), Some(3));
    assert!(error.contains("NAME[:TAG]"), "{error}");
    assert!(!written.exists());
    // A build is refused before it builds anything: no layer compressed into the cache.
    make_dist(work.path());
    let cache = work.path().join("cache");
    let error = fails_with(
        hoist().current_dir(work.path()).env("XDG_CACHE_HOME", &cache).args([
            "build",
            "--platform",
            "linux/amd64",
            "--layer",
            "dist/{os}_{arch}/:/app/",
            "--output",
            &to,
        ]),
        Some(3),
    );
    assert!(error.contains("NAME[:TAG]"), "{error}");
    assert!(!written.exists() && !cache.join("hoist/blobs").exists(), "{:?}", crate::util::listing(work.path()));

    // What failed before: pushing by the bare name the archive itself carries.
    let registry = Registry::start();
    for (image, tag) in [("test_image_1", "one"), ("@1", "two")] {
        ok(hoist().args(["push", "-q", &at(image), &format!("{}/test/image:{tag}", registry.host())]));
    }
    let pushed =
        |tag: &str| ok(hoist().args(["inspect", "--config", &format!("{}/test/image:{tag}", registry.host())]));
    assert!(pushed("one").contains("TAGS=test_image_1") && pushed("two").contains("TAGS=test_image_2"));
}

/// `bytes` gzipped, as a layer already compressed.
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, bytes).unwrap();
    encoder.finish().unwrap()
}

/// Issue 21, 12: the plain tar layers of a docker-archive (as `docker save` and `podman save`
/// write them) are gzipped on their way to a registry, as docker push, crane and skopeo do:
/// the registry's layers decompress (gzip, sha256sum) to the config's diff_ids, skopeo reads
/// the image back, a layer already compressed is left as it is, and the output names both
/// digests. `--preserve-digests` sends the archive's bytes and digest; a layout is not
/// compressed into; a second push compresses nothing and finds the image there.
#[test]
fn uncompressed_layers_are_compressed_on_the_way_to_a_registry() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("saved.tar");
    let plain =
        [layer_tar("noise.bin", &crate::util::noise(3 << 20, 7)), layer_tar("text.txt", &b"text\n".repeat(50_000))];
    let already = gzipped(&layer_tar("gz.txt", b"compressed already\n"));
    docker_save(&archive, &[(&["app:v1"], vec![plain[0].clone(), plain[1].clone(), already.clone()])]);
    let source = format!("docker-archive:{}", archive.display());
    let source_digest = hoist::Digest::of(ok(hoist().args(["inspect", "--raw", &source])).as_bytes()).to_string();
    let registry = Registry::start();
    let target = format!("{}/team/app:v1", registry.host());

    let cache = work.path().join("cache");
    let out = hoist().env("XDG_CACHE_HOME", &cache).args(["push", "--json", &source, &target]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed = report["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        (report["layers_compressed"].as_u64(), report["source_digest"].as_str()),
        (Some(2), Some(source_digest.as_str()))
    );
    assert_ne!(pushed, source_digest);
    assert!(stderr.contains("compressed 2 uncompressed layer(s) with gzip") && stderr.contains(&pushed), "{stderr}");

    // Checked with other tools: skopeo copies it out, gzip and sha256sum give the diff_ids.
    let dir = work.path().join("pulled");
    ok(tool("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", &format!("docker://{target}")])
        .arg(format!("dir:{}", dir.display())));
    let manifest = crate::util::read_json(&dir.join("manifest.json"));
    let config =
        crate::util::read_json(&dir.join(manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:")));
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{manifest}");
        let file = dir.join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let sum = ok(tool("sh").arg("-c").arg(format!("gzip -dc {} | sha256sum", file.display())));
        assert_eq!(format!("sha256:{}", sum.split_whitespace().next().unwrap()), diff_id.as_str().unwrap());
    }
    assert_eq!(layers[2]["digest"], hoist::Digest::of(&already).to_string(), "a gzip layer is left as it was");
    assert_eq!(diff_ids[0], hoist::Digest::of(&plain[0]).to_string(), "the config is the archive's");
    let seen: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ])))
    .unwrap();
    assert_eq!(seen["Digest"], pushed, "{seen}");

    // Again: the compressed layers come from hoist's cache, nothing is sent, the same digest.
    let again =
        hoist().env("XDG_CACHE_HOME", &cache).args(["-v", "push", "--json", &source, &target]).output().unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && !log.contains("compressing it"), "{log}");
    assert_eq!(log.matches("compressed before").count(), 2, "{log}");
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (again["digest"].as_str(), again["up_to_date"].as_bool()),
        (Some(pushed.as_str()), Some(true)),
        "{again}"
    );

    // --preserve-digests: the archive's bytes, so its digest; a layout keeps them too.
    let kept =
        ok(hoist().args(["push", "-q", "--preserve-digests", &source, &format!("{}/team/kept:v1", registry.host())]));
    assert_eq!(kept.trim(), source_digest);
    let raw: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &format!("{}/team/kept:v1", registry.host())])))
            .unwrap();
    assert_eq!(raw["layers"][0]["digest"], hoist::Digest::of(&plain[0]).to_string());
    // From a registry the digest is kept by default (signatures and referrers name it); with
    // --compression, the same compressed image as from the archive.
    let kept = format!("{}/team/kept:v1", registry.host());
    let copied = ok(hoist().args(["copy", "-q", &kept, &format!("{}/team/copied:v1", registry.host())]));
    assert_eq!(copied.trim(), source_digest, "a registry's image keeps its digest");
    let compressed = format!("{}/team/compressed:v1", registry.host());
    let from_registry = ok(hoist().args(["copy", "-q", "--compression", "gzip", &kept, &compressed]));
    assert_eq!(from_registry.trim(), pushed);
    let layout = work.path().join("layout");
    let copied = ok(hoist().args(["copy", "-q", &source, &format!("oci:{}:v1", layout.display())]));
    assert_eq!(copied.trim(), source_digest, "into a layout the layers go as they are");

    // A layer descriptor's `data` (the tar's bytes, embedded) does not stay on the compressed
    // layer's; its other fields do.
    use base64::Engine as _;
    let mut manifest = crate::util::blob_json(&layout, &source_digest);
    manifest["layers"][1]["data"] = base64::engine::general_purpose::STANDARD.encode(&plain[1]).into();
    manifest["layers"][1]["annotations"] = serde_json::json!({ "kept": "yes" });
    crate::util::commit_json(
        hoist::layout::LayoutWriter::begin(&layout).unwrap(),
        &manifest,
        oci_spec::image::MediaType::ImageManifest,
        "data",
    );
    let target = format!("{}/team/data:v1", registry.host());
    ok(hoist().args(["push", "-q", &format!("oci:{}:data", layout.display()), &target]));
    let raw: Value = serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &target]))).unwrap();
    let layer = &raw["layers"][1];
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{raw}");
    assert!(layer.get("data").is_none() && layer["annotations"]["kept"] == "yes", "{raw}");
}

/// Runs `command` (a push to `registry`, which never answers an upload) until its first upload
/// starts, its layers compressed by then, and kills it.
fn killed_at_its_first_upload(command: &mut Command, registry: &Hostile) {
    let before = registry.heads_with("POST ").len();
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while registry.heads_with("POST ").len() == before {
        assert!(child.try_wait().unwrap().is_none(), "{command:?} ended before its upload");
        assert!(Instant::now() < deadline, "{command:?} did not upload within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Review of issue 21, 4: a push killed after compressing its layers leaves nothing but the
/// cache's own blobs (hard links in `tmp/staged-*` were never removed, nor counted by
/// eviction); without a cache, nothing in $TMPDIR; and a staged directory an earlier run left
/// is removed by the next eviction.
#[test]
fn a_killed_push_leaves_no_compressed_layers_behind() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("saved.tar");
    docker_save(&archive, &[(&["app:v1"], vec![layer_tar("text.txt", &b"text\n".repeat(50_000))])]);
    let registry = Hostile::start(|head| match head.split_whitespace().next().unwrap_or_default() {
        "GET" if head.starts_with("GET /v2/ ") => Reply::json("200 OK", "{}"),
        "POST" => {
            std::thread::sleep(Duration::from_secs(120));
            Reply::json("500 Internal Server Error", "{}")
        }
        _ => Reply::json("404 Not Found", r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#),
    });
    let push = || {
        let mut command = hoist();
        command.args(["push", "-q", &format!("docker-archive:{}", archive.display())]);
        command.arg(format!("{}/a/b:c", registry.host()));
        command
    };

    let cache = work.path().join("cache");
    let leftover = cache.join("hoist/tmp/staged-left");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("blob"), b"a link to a blob").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::open(&leftover).unwrap().set_modified(two_days_ago).unwrap();
    killed_at_its_first_upload(push().env("XDG_CACHE_HOME", &cache), &registry);
    let blobs = crate::util::listing(&cache.join("hoist/blobs/sha256"));
    assert_eq!(blobs.len(), 1, "the compressed layer is in the cache: {blobs:?}");
    let left = crate::util::listing(&cache.join("hoist/tmp"));
    assert!(left.is_empty(), "left in the cache's tmp/: {left:?}");

    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    killed_at_its_first_upload(push().env("XDG_CACHE_HOME", "").env_remove("HOME").env("TMPDIR", &tmp), &registry);
    let left = crate::util::listing(&tmp);
    assert!(left.is_empty(), "left in $TMPDIR without a cache: {left:?}");
}

/// Review of issue 21, 5: a dry run compresses nothing: from a registry with a plain tar layer
/// (and `--compression gzip`), no layer is downloaded (counted at a proxy) and nothing enters
/// the cache; it says how many layers would be compressed and that the digest would change.
#[test]
fn a_dry_run_compresses_nothing_and_says_what_would_be() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("saved.tar");
    let layer = layer_tar("text.txt", &b"text\n".repeat(50_000));
    docker_save(&archive, &[(&["app:v1"], vec![layer.clone()])]);
    let registry = Registry::start();
    let kept = format!("{}/team/kept:v1", registry.host());
    let source_digest =
        ok(hoist().args(["push", "-q", "--preserve-digests", &format!("docker-archive:{}", archive.display()), &kept]));
    let proxy = crate::util::proxy::Proxy::start(registry.host(), |_, _| {});
    let cache = work.path().join("cache");
    let out = hoist()
        .env("XDG_CACHE_HOME", &cache)
        .args(["copy", "--dry-run", "--json", "--compression", "gzip"])
        .arg(format!("{}/team/kept:v1", proxy.host()))
        .arg(format!("{}/team/copy:v1", registry.host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let layer_digest = hoist::Digest::of(&layer).to_string();
    assert_eq!(proxy.count("GET", &format!("/blobs/{layer_digest}")), 0, "the layer was downloaded");
    assert!(!cache.exists(), "the cache was touched: {:?}", crate::util::listing(&cache));
    assert!(stderr.contains("dry run: 1 uncompressed layer(s) would be compressed with gzip"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["layers_compressed"].as_u64(), report["digest"].as_str(), report["dry_run"].as_bool()),
        (Some(1), Some(source_digest.trim()), Some(true)),
        "{report}"
    );
    let copied = hoist().args(["inspect", &format!("{}/team/copy:v1", registry.host())]).output().unwrap();
    assert_eq!(copied.status.code(), Some(5), "nothing written");
    // Into the repository that has the blobs: found there, and not recorded either.
    ok(hoist()
        .env("XDG_CACHE_HOME", &cache)
        .args(["push", "--dry-run", "--compression", "gzip"])
        .args([&format!("docker-archive:{}", archive.display()), &format!("{}/team/kept:v2", registry.host())]));
    assert!(!cache.exists(), "the cache was touched: {:?}", crate::util::listing(&cache));
}

/// Review of issue 21 (nit): a dry run to an archive output makes no directory on the way
/// (its parents were created before anything was looked at).
#[test]
fn a_dry_run_to_an_archive_makes_no_directory() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("saved.tar");
    docker_save(&archive, &[(&["app:v1"], vec![layer_tar("text.txt", b"text\n")])]);
    let source = format!("docker-archive:{}", archive.display());
    for output in ["oci-archive:new/dir/out.tar", "docker-archive:new/dir/out.tar:app:v1"] {
        let out = hoist().current_dir(work.path()).args(["copy", "--dry-run", &source, output]).output().unwrap();
        assert!(out.status.success(), "{output}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(crate::util::listing(work.path()), ["saved.tar"], "{output}");
    }
    ok(hoist().current_dir(work.path()).args(["copy", "-q", &source, "oci-archive:new/dir/out.tar"]));
    assert!(work.path().join("new/dir/out.tar").is_file(), "a real run makes the parents");
}
