//! The layer cache: rebuilds reuse compressed layers, with output identical to a build without
//! the cache, whatever happens to the cache meanwhile.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{hoist, make_dist, ok, write, APP_BUILD};

/// The two-platform app build from `work/dist` into `work/<name>`, with `cache` as
/// `$XDG_CACHE_HOME` and a JSON summary.
fn build(work: &Path, cache: &Path, name: &str, extra: &[&str]) -> Command {
    let mut command = hoist();
    command.current_dir(work).env("XDG_CACHE_HOME", cache).args(APP_BUILD).args(["--json", "--output"]);
    command.arg(format!("oci:{}:v1", work.join(name).display())).args(extra);
    command
}

fn summary(command: &mut Command) -> serde_json::Value {
    serde_json::from_str(&ok(command)).unwrap()
}

/// Every blob of a layout: name and content.
fn blobs(layout: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap())
        })
        .collect()
}

/// The cached layer blobs' files.
fn cached_blobs(cache: &Path) -> Vec<std::path::PathBuf> {
    let dir = cache.join("hoist/blobs/sha256");
    let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Checks that every blob of the layout hashes to its name.
fn assert_verified(layout: &Path) {
    for (name, bytes) in blobs(layout) {
        assert_eq!(hoist::Digest::of(&bytes).hex(), name, "{} holds what its name says", layout.display());
    }
}

#[test]
fn a_rebuild_reuses_every_layer_and_writes_the_same_bytes_as_without_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    make_dist(work.path());
    for compression in ["gzip", "zstd", "none"] {
        let flags = ["--compression", compression];
        let first = summary(&mut build(work.path(), cache.path(), &format!("{compression}-1"), &flags));
        assert_eq!((first["cached_layers"].as_u64(), first["built_layers"].as_u64()), (Some(0), Some(2)));
        let second = summary(&mut build(work.path(), cache.path(), &format!("{compression}-2"), &flags));
        assert_eq!(second["cached_layers"], 2, "{compression}: both platforms' layers from the cache");
        assert_eq!(second["images"][0]["layers"][0]["cached"], true);
        let no_cache = [&flags[..], &["--no-cache"]].concat();
        let third = summary(&mut build(work.path(), cache.path(), &format!("{compression}-3"), &no_cache));
        assert_eq!(third["cached_layers"], 0);
        assert_eq!(first["digest"], second["digest"]);
        assert_eq!(first["digest"], third["digest"]);
        let reference = blobs(&work.path().join(format!("{compression}-3")));
        assert_eq!(blobs(&work.path().join(format!("{compression}-1"))), reference, "{compression}");
        assert_eq!(blobs(&work.path().join(format!("{compression}-2"))), reference, "{compression}");
    }
    // A changed file is a miss for its layer only, and the blob its source made last time,
    // linked while the tar was hashed, does not stay.
    let server = work.path().join("dist/linux_arm64/server");
    let original = fs::read_to_string(&server).unwrap();
    write(&server, "#!/bin/sh\necho new\n", 0o755);
    let changed = summary(&mut build(work.path(), cache.path(), "changed", &[]));
    assert_eq!(changed["cached_layers"], 1);
    let layers: Vec<bool> =
        changed["images"].as_array().unwrap().iter().map(|i| i["layers"][0]["cached"].as_bool().unwrap()).collect();
    assert_eq!(layers, [true, false], "amd64 reused, arm64 compressed again");
    assert_verified(&work.path().join("changed"));
    let reference = summary(&mut build(work.path(), cache.path(), "changed-no-cache", &["--no-cache"]));
    assert_eq!(changed["digest"], reference["digest"]);
    assert_eq!(blobs(&work.path().join("changed")), blobs(&work.path().join("changed-no-cache")), "no blob more");
    // Changed back: the content cached two builds ago is found by its diff_id, although the
    // source last made another blob.
    write(&server, &original, 0o755);
    let back = summary(&mut build(work.path(), cache.path(), "back", &[]));
    assert_eq!(back["cached_layers"], 2, "{back}");
    assert_eq!(back["digest"], first_gzip_digest(work.path()));
    // The source's hint now names the content it has again: the next build does not read the
    // blob of the content in between (which would also keep it from eviction).
    let between = changed["images"][1]["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let between = cache.path().join("hoist/blobs/sha256").join(between);
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10_000);
    fs::File::options().write(true).open(&between).unwrap().set_modified(long_ago).unwrap();
    let again = summary(&mut build(work.path(), cache.path(), "again", &[]));
    assert_eq!(again["cached_layers"], 2);
    assert_eq!(fs::metadata(&between).unwrap().modified().unwrap(), long_ago, "the blob in between was not used");
}

/// The index digest of the first gzip build of the test above.
fn first_gzip_digest(work: &Path) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(work.join("gzip-1/index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].clone()
}

#[test]
fn a_damaged_cache_blob_is_not_used_and_the_layer_is_built_again() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let first = summary(&mut build(work.path(), cache.path(), "first", &["--no-cache"]));
    summary(&mut build(work.path(), cache.path(), "warm", &[]));
    let files = cached_blobs(cache.path());
    assert_eq!(files.len(), 2, "two layer blobs cached");
    for file in &files {
        // Same length, other bytes: only the digest can tell.
        let mut bytes = fs::read(file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(file, &bytes).unwrap();
    }
    let out = build(work.path(), cache.path(), "after", &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(after["cached_layers"], 0, "damaged blobs are not used");
    assert_eq!(after["digest"], first["digest"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"), "the damage is reported");
    assert_verified(&work.path().join("after"));
    assert_eq!(blobs(&work.path().join("after")), blobs(&work.path().join("first")));
    let again = summary(&mut build(work.path(), cache.path(), "again", &[]));
    assert_eq!(again["cached_layers"], 2, "the cache is whole again");
}

#[test]
fn two_builds_at_once_share_one_cache() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    make_dist(work.path());
    for round in 0..2 {
        let children: Vec<_> = (0..2)
            .map(|i| {
                let mut command = build(work.path(), cache.path(), &format!("layout-{round}-{i}"), &[]);
                command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                command.spawn().unwrap()
            })
            .collect();
        let digests: Vec<String> = children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                summary["digest"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(digests[0], digests[1], "round {round}");
        let first = blobs(&work.path().join(format!("layout-{round}-0")));
        assert_eq!(first, blobs(&work.path().join(format!("layout-{round}-1"))));
        assert_verified(&work.path().join(format!("layout-{round}-0")));
    }
    let leftovers = fs::read_dir(cache.path().join("hoist/tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "no temporary files left in the cache");
}

#[test]
fn cache_size_evicts_the_least_recently_used_layers() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let other = tempfile::tempdir().unwrap();
    make_dist(other.path());
    for dir in ["linux_amd64", "linux_arm64"] {
        write(&other.path().join("dist").join(dir).join("extra.txt"), "other tree\n", 0o644);
    }
    let a = summary(&mut build(work.path(), cache.path(), "a", &[]));
    summary(&mut build(other.path(), cache.path(), "b", &[]));
    assert_eq!(cached_blobs(cache.path()).len(), 4);
    // Room for exactly A's layers: rebuilding A makes them the most recently used.
    let a_size: u64 = a["images"].as_array().unwrap().iter().map(|i| i["layers"][0]["size"].as_u64().unwrap()).sum();
    let bound = a_size.to_string();
    let again = summary(&mut build(work.path(), cache.path(), "a2", &["--cache-size", &bound]));
    assert_eq!(again["cached_layers"], 2);
    assert_eq!(cached_blobs(cache.path()).len(), 2, "B's layers evicted");
    assert_eq!(summary(&mut build(other.path(), cache.path(), "b2", &[]))["cached_layers"], 0);
    assert_eq!(summary(&mut build(work.path(), cache.path(), "a3", &[]))["cached_layers"], 2);
    assert_verified(&work.path().join("a2"));
    let error = crate::util::fails(build(work.path(), cache.path(), "x", &["--cache-size", "lots"]));
    assert!(error.contains("lots"), "{error}");
}

#[test]
fn an_empty_or_relative_xdg_cache_home_is_ignored_for_the_one_under_home() {
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    make_dist(work.path());
    for (n, variable) in ["", "relative-cache"].into_iter().enumerate() {
        let mut command = build(work.path(), Path::new(variable), &format!("out-{n}"), &[]);
        let built = summary(command.env("HOME", home.path()));
        assert_eq!(built["cached_layers"], n * 2, "the second build finds the first one's cache: {built}");
        assert!(!work.path().join("hoist").exists() && !work.path().join(variable).join("hoist").exists());
    }
    let under_home = cached_blobs(&home.path().join(".cache"));
    assert_eq!(under_home.len(), 2, "the cache is under $HOME/.cache, as the XDG spec says");
}
