//! `hoist build`: layouts that real peers read, reproducibility, and bad input.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::{
    blob_json, blob_path, fails, fails_with, fails_without_hanging, hoist, index_platforms, listing, make_dist, ok,
    read_json, schema, snapshot, tool, write, APP_BUILD,
};

const TAG: &str = "v1.2.3";

/// The build from the README, into `layout`.
fn build_app(root: &Path, layout: &Path, extra: &[&str]) -> Command {
    let mut command = build_layer(APP_BUILD[6], layout, extra);
    command.current_dir(root);
    command
}

/// The build from the README with `layer` as its --layer, into `layout`.
fn build_layer(layer: &str, layout: &Path, extra: &[&str]) -> Command {
    let mut command = hoist();
    command.args(&APP_BUILD[..6]).arg(layer).args([
        "--exclude",
        "**/*.map",
        "--entrypoint",
        "/app/server",
        "--env",
        "PORT=8080",
        "--workdir",
        "/app",
        "--user",
        "65532",
        "--port",
        "8080",
        "--label",
        "org.opencontainers.image.source=https://example.com/repo",
        "--annotation",
        "org.opencontainers.image.version=1.2.3",
        "--output",
    ]);
    command.arg(format!("oci:{}:{TAG}", layout.display()));
    command.args(extra);
    command
}

#[test]
fn multi_platform_layout_is_read_by_skopeo_and_unpacked_by_umoci() {
    let work = tempfile::tempdir().unwrap();
    let dist = make_dist(work.path());
    let layout = work.path().join("out/layout");
    let digest = ok(&mut build_app(work.path(), &layout, &[])).trim().to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "digest alone on stdout: {digest}");

    let index_json = read_json(&layout.join("index.json"));
    let entry = &index_json["manifests"][0];
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], TAG);
    assert_eq!(entry["digest"], digest.as_str());
    let index = blob_json(&layout, &digest);
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(index["annotations"]["org.opencontainers.image.version"], "1.2.3");

    let source = format!("oci:{}:{TAG}", layout.display());
    let raw = ok(tool("skopeo").args(["inspect", "--raw", &source]));
    assert_eq!(raw.as_bytes(), fs::read(blob_path(&layout, &digest)).unwrap(), "skopeo reads the index bytes");
    let copied = work.path().join("copied");
    ok(tool("skopeo").args(["copy", "--override-arch", "arm64", &source]).arg(format!("dir:{}", copied.display())));
    assert!(copied.join("manifest.json").exists());

    for arch in ["amd64", "arm64"] {
        let single = work.path().join(format!("single-{arch}"));
        ok(tool("skopeo")
            .args(["copy", "--override-os", "linux", "--override-arch", arch, &source])
            .arg(format!("oci:{}:{arch}", single.display())));
        let inspect: serde_json::Value =
            serde_json::from_str(&ok(tool("skopeo").args(["inspect"]).arg(format!("oci:{}:{arch}", single.display()))))
                .unwrap();
        assert_eq!(inspect["Architecture"], arch);
        assert_eq!(inspect["Labels"]["org.opencontainers.image.source"], "https://example.com/repo");
        let bundle = work.path().join(format!("bundle-{arch}"));
        ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:{arch}", single.display())).arg(&bundle));
        let mut expected = snapshot(&dist.join(format!("linux_{arch}")));
        expected.remove("static/app.js.map");
        assert_eq!(snapshot(&bundle.join("rootfs/app")), expected, "umoci reproduces the {arch} tree");
        let runtime = read_json(&bundle.join("config.json"));
        assert_eq!(runtime["process"]["args"], serde_json::json!(["/app/server"]));
        assert_eq!(runtime["process"]["cwd"], "/app");
        assert_eq!(runtime["process"]["user"]["uid"], 65532);
        let env = runtime["process"]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e == "PORT=8080"), "{env:?}");
    }
}

#[test]
fn every_document_validates_against_the_oci_schemas() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    ok(&mut build_app(work.path(), &layout, &[]));
    ok(&mut build_app(
        work.path(),
        &layout,
        &["--compression", "zstd", "--output", &format!("oci:{}:zstd", layout.display())],
    ));
    let single = format!("oci:{}:single", layout.display());
    ok(hoist().current_dir(work.path()).env("SOURCE_DATE_EPOCH", "1700000000").args([
        "build",
        "--platform",
        "linux/amd64",
        "--layer",
        "dist/linux_amd64/",
        "--no-index",
        "--output",
        &single,
    ]));
    let single_manifest =
        blob_json(&layout, read_json(&layout.join("index.json"))["manifests"][2]["digest"].as_str().unwrap());
    let config = blob_json(&layout, single_manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["created"], "2023-11-14T22:13:20Z", "created follows SOURCE_DATE_EPOCH");
    // index.json + oci-layout, then per build: index, 2 manifests, 2 configs (the single: 2).
    assert_eq!(schema::validate_layout(&layout), 2 + 5 + 5 + 2);
}

#[test]
fn same_sources_give_the_same_digests_whatever_the_copy() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    make_dist(first.path());
    make_dist(second.path());
    // Other times and other owners in the second copy must not matter.
    let file = fs::File::options().write(true).open(second.path().join("dist/linux_amd64/server")).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(999_999)).unwrap();
    std::os::unix::fs::chown(second.path().join("dist/linux_arm64/config/app.yaml"), Some(4242), Some(4242)).unwrap();
    for compression in ["gzip", "zstd", "none"] {
        let a = ok(&mut build_app(first.path(), &first.path().join(compression), &["--compression", compression]));
        let b = ok(&mut build_app(second.path(), &second.path().join(compression), &["--compression", compression]));
        assert_eq!(a, b, "{compression}: same index digest");
    }
}

#[test]
fn layers_have_the_media_type_and_diff_id_of_their_compression() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    for (compression, media_type, decompress) in [
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", Some("gzip")),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", Some("zstd")),
        ("none", "application/vnd.oci.image.layer.v1.tar", None),
    ] {
        let layout = work.path().join(compression);
        let summary: serde_json::Value =
            serde_json::from_str(&ok(&mut build_app(work.path(), &layout, &["--compression", compression, "--json"])))
                .unwrap();
        let layer = &summary["images"][0]["layers"][0];
        assert_eq!(layer["media_type"], media_type);
        let blob = blob_path(&layout, layer["digest"].as_str().unwrap());
        let tar = match decompress {
            Some(program) => {
                let out = tool(program).arg("-dc").arg(&blob).output().unwrap();
                assert!(out.status.success(), "{program} -dc reads the layer");
                out.stdout
            }
            None => fs::read(&blob).unwrap(),
        };
        assert_eq!(layer["diff_id"], hoist::Digest::of(&tar).to_string(), "{compression}");
        let manifest = blob_json(&layout, summary["images"][0]["digest"].as_str().unwrap());
        assert_eq!(manifest["layers"][0]["mediaType"], media_type);
        let config = blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["rootfs"]["diff_ids"][0], layer["diff_id"]);
    }
}

#[test]
fn no_index_writes_a_single_manifest_that_umoci_unpacks() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    let error = fails(&mut build_app(work.path(), &layout, &["--no-index"]));
    assert!(error.contains("--no-index") && error.contains("one platform"), "{error}");
    let mut single = hoist();
    single.current_dir(work.path()).args([
        "build",
        "--platform",
        "linux/arm64",
        "--layer",
        "dist/linux_arm64/server:/usr/bin/",
        "--cmd",
        "[\"/usr/bin/server\", \"--flag\"]",
        "--no-index",
        "--output",
    ]);
    single.arg(format!("oci:{}:plain", layout.display()));
    let digest = ok(&mut single).trim().to_owned();
    let manifest = blob_json(&layout, &digest);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let config = blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/usr/bin/server", "--flag"]));
    assert_eq!(config["architecture"], "arm64");
    let bundle = work.path().join("bundle");
    ok(tool("umoci").args(["unpack", "--image"]).arg(format!("{}:plain", layout.display())).arg(&bundle));
    let server = fs::read_to_string(bundle.join("rootfs/usr/bin/server")).unwrap();
    assert!(server.contains("arm64"));
}

#[test]
fn rebuilding_moves_the_tag_and_keeps_other_tags() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    let first = ok(&mut build_app(work.path(), &layout, &[]));
    let other = format!("oci:{}:other", layout.display());
    let kept = ok(&mut build_app(work.path(), &layout, &["--output", &other, "--env", "MODE=other"]));
    write(&work.path().join("dist/linux_amd64/server"), "changed\n", 0o755);
    let second = ok(&mut build_app(work.path(), &layout, &[]));
    assert_ne!(first, second);
    let index = read_json(&layout.join("index.json"));
    let tags: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_owned();
            (tag, m["digest"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(tags, [("other".to_owned(), kept.trim().to_owned()), (TAG.to_owned(), second.trim().to_owned())]);
    assert!(!listing(work.path()).iter().any(|n| n.contains(".hoist-staging")), "no staging left");
}

#[test]
fn a_build_file_gives_the_same_image_as_the_flags_and_flags_win() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let from_flags = ok(&mut build_app(work.path(), &work.path().join("a"), &[]));
    let file = work.path().join("hoist.toml");
    fs::write(
        &file,
        format!(
            r#"platforms = ["linux/amd64", "linux/arm64"]
layers = ["dist/{{os}}_{{arch}}/:/app/"]
exclude = ["**/*.map"]
output = "oci:b:{TAG}"
entrypoint = ["/app/server"]
env = ["PORT=8080"]
workdir = "/app"
user = "65532"
ports = ["8080"]
labels = {{ "org.opencontainers.image.source" = "https://example.com/repo" }}
annotations = {{ "org.opencontainers.image.version" = "1.2.3" }}
"#
        ),
    )
    .unwrap();
    // Run from elsewhere: paths in the file are relative to the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let from_file = ok(hoist().current_dir(elsewhere.path()).arg("build").arg("-f").arg(&file));
    assert_eq!(from_flags, from_file);
    assert!(work.path().join("b/index.json").exists());
    let overridden = ok(hoist().current_dir(elsewhere.path()).arg("build").arg("-f").arg(&file).args(["--user", "0"]));
    assert_ne!(overridden, from_file, "a flag overrides the file");
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_the_layout_untouched() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    ok(&mut build_app(work.path(), &layout, &[]));
    let before = (listing(work.path()), fs::read(layout.join("index.json")).unwrap());

    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["--platform", "linux/riscv64"], &["dist/linux_riscv64", "linux/riscv64"]),
        (vec!["--platform", "amd64"], &["amd64", "os/arch"]),
        (vec!["--env", "NOVALUE"], &["NOVALUE", "KEY=VALUE"]),
        (vec!["--layer", "dist/{osarch}/:/x/"], &["{osarch}", "placeholder"]),
        (vec!["--compression", "brotli"], &["brotli", "gzip, zstd or none"]),
        (vec!["--workdir", "relative"], &["relative", "absolute"]),
        (vec!["--port", "99999"], &["99999"]),
    ];
    for (extra, expected) in cases {
        let error = fails(&mut build_app(work.path(), &layout, &extra));
        for needle in expected {
            assert!(error.contains(needle), "{extra:?}: {error:?} should mention {needle:?}");
        }
        assert_eq!((listing(work.path()), fs::read(layout.join("index.json")).unwrap()), before, "{extra:?}");
    }

    let not_layout = work.path().join("notes");
    write(&not_layout.join("todo.txt"), "mine", 0o644);
    let error = fails(&mut build_app(work.path(), &layout, &["--output", &format!("oci:{}:x", not_layout.display())]));
    assert!(error.contains("not an OCI image layout") && error.contains("notes"), "{error}");
    assert_eq!(listing(&not_layout), ["todo.txt"]);

    let error = fails(hoist().args(["build", "--platform", "linux/amd64", "--layer", "x", "--output", "docker://x"]));
    assert!(error.contains("oci:DIR"), "{error}");
}

#[test]
fn an_unreadable_file_fails_the_build_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let secret = work.path().join("dist/linux_arm64/config/secret.key");
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let layout = work.path().join("layout");
    let mut command = build_app(work.path(), &layout, &[]);
    // nobody cannot write root's cache; this test is about the unreadable file.
    command.env("XDG_CACHE_HOME", work.path().join("cache"));
    // root reads any file: run as nobody so that mode 000 really is unreadable.
    let mut as_nobody = tool("setpriv");
    as_nobody
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(work.path());
    let error = fails(&mut as_nobody);
    assert!(error.contains("secret.key") && error.contains("ermission denied"), "{error}");
    assert!(!layout.exists(), "no layout written");
    assert!(!listing(work.path()).iter().any(|n| n.contains(".hoist-staging")));
}

#[test]
fn special_files_are_refused_by_name_or_skipped() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let fifo = work.path().join("dist/linux_amd64/pipe");
    ok(tool("mkfifo").arg(&fifo));
    let layout = work.path().join("layout");
    let error = fails(&mut build_app(work.path(), &layout, &[]));
    assert!(error.contains("pipe") && error.contains("fifo") && error.contains("--skip-special"), "{error}");
    let out = build_app(work.path(), &layout, &["--skip-special"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipping fifo"));
}

/// `run` fails at once with an error naming `path` while it is a FIFO, and again while it is
/// a symlink to `/dev/zero` (which never ends), refused as `link_kind` (the device it points
/// to, or the symlink itself).
fn refused_while_special(path: &Path, link_kind: &str, run: impl Fn() -> Command) {
    ok(tool("mkfifo").arg(path));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for kind in ["fifo", link_kind] {
        let error = fails_without_hanging(run(), Some(3));
        assert!(error.contains(&name) && error.contains(kind), "{error}");
        fs::remove_file(path).unwrap();
        if kind == "fifo" {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap();
        }
    }
}

#[test]
fn an_ignore_file_or_build_file_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    // A checkout can bring a .hoistignore that is a symlink, to /dev/zero say.
    let ignore = work.path().join("dist/linux_amd64/.hoistignore");
    refused_while_special(&ignore, "symlink", || build_app(work.path(), &layout, &[]));
    refused_while_special(&work.path().join("hoist.toml"), "character device", || {
        let mut command = hoist();
        command.current_dir(work.path()).args(["build", "-f", "hoist.toml"]);
        command
    });
    assert!(!layout.exists(), "nothing built");
}

/// Review of issue 21 (nit): a `.hoistignore` that is a symlink is refused, whatever it points
/// to (a file outside the context, whose lines an error would echo); a bad pattern is shown
/// cut, not echoed whole.
#[test]
fn an_ignore_file_is_never_read_through_a_symlink_nor_echoed_whole() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let layout = work.path().join("layout");
    let outside = work.path().join("outside.txt");
    fs::write(&outside, "[secret-token-1234\n").unwrap();
    let ignore = work.path().join("dist/linux_amd64/.hoistignore");
    std::os::unix::fs::symlink(&outside, &ignore).unwrap();
    let error = fails_with(&mut build_app(work.path(), &layout, &[]), Some(3));
    assert!(error.contains(".hoistignore") && error.contains("symlink"), "{error}");
    assert!(!error.contains("secret-token"), "{error}");

    fs::remove_file(&ignore).unwrap();
    fs::write(&ignore, format!("[{}END-OF-LINE\n", "a".repeat(300))).unwrap();
    let error = fails_with(&mut build_app(work.path(), &layout, &[]), Some(3));
    assert!(error.contains("exclude pattern") && error.contains("aaaa…"), "{error}");
    assert!(!error.contains("END-OF-LINE"), "{error}");
    assert!(!layout.exists(), "nothing built");
}

/// The app's build file, with `layers` as given.
fn build_file(dir: &Path, layers: &str, output: &Path) -> std::path::PathBuf {
    let file = dir.join("hoist.toml");
    fs::write(
        &file,
        format!(
            r#"platforms = ["linux/amd64", "linux/arm64"]
layers = [{layers:?}]
exclude = ["**/*.map"]
output = "oci:{}:{TAG}"
entrypoint = ["/app/server"]
env = ["PORT=8080"]
workdir = "/app"
user = "65532"
ports = ["8080"]
labels = {{ "org.opencontainers.image.source" = "https://example.com/repo" }}
annotations = {{ "org.opencontainers.image.version" = "1.2.3" }}
"#,
            output.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn one_tree_gives_one_digest_from_any_directory_by_flags_or_build_file() {
    let cache = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    let mut checkouts = Vec::new();
    for _ in 0..2 {
        let checkout = tempfile::tempdir().unwrap();
        make_dist(checkout.path());
        // Absolute sources, as CI passes them ($GITHUB_WORKSPACE/dist/...).
        let absolute = format!("{}/dist/{{os}}_{{arch}}/:/app/", checkout.path().display());
        let layout = checkout.path().join("flags");
        let mut flags = build_layer(&absolute, &layout, &[]);
        flags.env("XDG_CACHE_HOME", cache.path()).current_dir("/");
        digests.push(ok(&mut flags).trim().to_owned());
        let index = blob_json(&layout, &digests[digests.len() - 1]);
        let manifest = blob_json(&layout, index["manifests"][0]["digest"].as_str().unwrap());
        let config = blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
        let text = config.to_string();
        assert!(!text.contains(&checkout.path().display().to_string()), "no host path in the config: {text}");
        assert_eq!(config["history"][0]["created_by"], "hoist layer /app/");
        for layers in [absolute.as_str(), "dist/{os}_{arch}/:/app/"] {
            let file = build_file(checkout.path(), layers, &checkout.path().join("file"));
            let elsewhere = tempfile::tempdir().unwrap();
            digests.push(
                ok(hoist()
                    .env("XDG_CACHE_HOME", cache.path())
                    .current_dir(elsewhere.path())
                    .arg("build")
                    .arg("-f")
                    .arg(&file))
                .trim()
                .to_owned(),
            );
        }
        checkouts.push(checkout);
    }
    assert_eq!(digests.len(), 6);
    assert!(digests.iter().all(|d| d == &digests[0]), "one index digest: {digests:#?}");
}

/// Modes of the regular files and directories in a layout's first layer (gzip).
fn layer_modes(layout: &Path, index_digest: &str) -> Vec<(String, u32)> {
    let manifest = blob_json(layout, blob_json(layout, index_digest)["manifests"][0]["digest"].as_str().unwrap());
    let blob = blob_path(layout, manifest["layers"][0]["digest"].as_str().unwrap());
    let tar = tool("gzip").arg("-dc").arg(&blob).output().unwrap().stdout;
    let mut archive = tar::Archive::new(&tar[..]);
    let mut modes: Vec<(String, u32)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.header().mode().unwrap())
        })
        .collect();
    modes.sort();
    modes
}

#[test]
fn normalized_modes_make_the_checkout_umask_irrelevant() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut plain = Vec::new();
    let mut normalized = Vec::new();
    for umask in ["002", "022"] {
        let tree = work.path().join(format!("umask{umask}"));
        let script = format!(
            "umask {umask} && mkdir -p {0}/bin {0}/share/doc && echo tool > {0}/bin/tool && chmod +x {0}/bin/tool \
             && echo readme > {0}/share/doc/README",
            tree.display()
        );
        ok(tool("sh").arg("-c").arg(script));
        for (flag, digests) in [(None, &mut plain), (Some("--normalize-modes"), &mut normalized)] {
            let layout = work.path().join(format!("layout-{umask}-{}", flag.is_some()));
            let mut command = hoist();
            command.env("XDG_CACHE_HOME", cache.path()).args(["build", "--platform", "linux/amd64", "--layer"]);
            command.arg(format!("{}:/opt/", tree.display())).arg("--output").arg(format!("oci:{}", layout.display()));
            command.args(flag);
            let digest = ok(&mut command).trim().to_owned();
            digests.push((digest.clone(), layer_modes(&layout, &digest)));
        }
    }
    assert_ne!(plain[0].0, plain[1].0, "group-write bits differ between the umasks");
    assert_eq!(normalized[0].0, normalized[1].0, "one digest with --normalize-modes");
    let expected = [("opt/", 0o755), ("opt/bin/", 0o755), ("opt/bin/tool", 0o755), ("opt/share/", 0o755)];
    let mut expected: Vec<(String, u32)> = expected.iter().map(|(n, m)| (n.to_string(), *m)).collect();
    expected.extend([("opt/share/doc/".into(), 0o755), ("opt/share/doc/README".into(), 0o644)]);
    assert_eq!(normalized[0].1, expected);
    assert!(plain[0].1.iter().any(|(_, mode)| mode & 0o020 != 0), "umask 002 gives group-write: {:?}", plain[0].1);
}

/// Every image setting, three platforms (one with a variant), annotations, a plain manifest:
/// the bytes hoist writes did not change when its build moved from oci-spec's builders to its
/// own model (the digests hoist wrote before are pinned).
#[test]
fn the_bytes_of_built_documents_are_pinned() {
    let work = tempfile::tempdir().unwrap();
    for platform in ["linux_amd64", "linux_arm64", "linux_arm"] {
        fs::create_dir_all(work.path().join("dist").join(platform)).unwrap();
        fs::write(work.path().join("dist").join(platform).join("app"), format!("hi {platform}\n")).unwrap();
    }
    let build = |flags: &str| {
        let mut command = hoist();
        command.current_dir(work.path()).args(["build", "--layer", "dist/{os}_{arch}/:/app/"]);
        ok(command.args(flags.split(' '))).trim().to_owned()
    };
    let every_setting = build(concat!(
        "--platform linux/amd64 --platform linux/arm64 --platform linux/arm/v7 --entrypoint /app/app ",
        "--cmd a --cmd b -e A=1 -e B=2 -e A=3 -w /app -u 65532:65532 --port 8080 --port 53/udp ",
        "--port 8080/tcp --volume /data --label z=1 --label a=2 --stop-signal SIGTERM --annotation k=v ",
        "-o oci:all:v1"
    ));
    assert_eq!(every_setting, "sha256:807e1dae54cdf1ef2f683cd4d3bbc9c3c700ecb8406336f9deea01d64458f3d4");
    let plain = build("--platform linux/amd64 --no-index --compression zstd -o oci:plain:v1");
    assert_eq!(plain, "sha256:bfbc8d36d431e2a9b14f479d70ebbcadaf57e35d5b2a42636734c1714735738d");
}
