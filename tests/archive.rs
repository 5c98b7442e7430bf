//! Archives: `docker-archive:` and `oci-archive:` as build outputs and as sources and sinks of
//! copy and push, read by the real peers (podman, skopeo, umoci).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
