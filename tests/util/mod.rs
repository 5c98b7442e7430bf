//! Shared helpers: running commands, making source trees, reading layouts.

pub mod hostile;
pub mod proxy;
pub mod referrers;
pub mod registry;
pub mod schema;
pub mod token;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A command for the hoist binary under test, with a clean environment for reproducibility.
pub fn hoist() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    let empty = std::env::temp_dir().join("hoist-tests-no-docker-config");
    // A cache of its own for every command (layer cache, where blobs were seen), so tests
    // never share state through it; a test that wants a shared cache sets XDG_CACHE_HOME.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cache = std::env::temp_dir().join(format!("hoist-tests-cache/{}-{call}", std::process::id()));
    command
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("HOIST_INSECURE_REGISTRIES")
        .env_remove("HOIST_USERNAME")
        .env_remove("HOIST_PASSWORD")
        .env("DOCKER_CONFIG", empty)
        .env("XDG_CACHE_HOME", cache)
        .env("HOIST_DOCKER_DAEMON_JSON", "/nonexistent/daemon.json")
        .env("HOIST_DOCKER_CERTS_DIR", "/nonexistent/certs.d");
    command
}

/// A command for a peer tool; the test command (scripts/test.sh) installs them all.
pub fn tool(name: &str) -> Command {
    Command::new(name)
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}; scripts/test.sh installs the test tools"))
}

/// Runs `command`, asserts success and returns its stdout.
pub fn ok(mut command: impl std::borrow::BorrowMut<Command>) -> String {
    let command = command.borrow_mut();
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command`, asserts it fails with a one-line error on stderr, and returns that line.
pub fn fails(command: impl std::borrow::BorrowMut<Command>) -> String {
    fails_with(command, None)
}

/// Like [`fails`], and checks the exit code when one is given.
pub fn fails_with(mut command: impl std::borrow::BorrowMut<Command>, code: Option<i32>) -> String {
    let command = command.borrow_mut();
    let out = output(command);
    failure_line(command, out, code)
}

/// Like [`fails_with`] for a command that could hang (reading a FIFO, say): one still running
/// after a minute is killed and fails the test, instead of hanging the suite.
pub fn fails_without_hanging(mut command: impl std::borrow::BorrowMut<Command>, code: Option<i32>) -> String {
    let command = command.borrow_mut();
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{command:?} still ran after a minute: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    failure_line(command, child.wait_with_output().unwrap(), code)
}

/// The one-line error of a failed command, checking its exit code when one is given.
fn failure_line(command: &Command, out: Output, code: Option<i32>) -> String {
    if let Some(code) = code {
        assert_eq!(out.status.code(), Some(code), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{command:?} should have failed; stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure: {:?}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one-line error expected, got: {stderr}");
    assert!(lines[0].starts_with("hoist: error: "), "{stderr}");
    lines[0].to_owned()
}

/// `len` bytes that do not compress (xorshift from `seed`): the same for the same seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = vec![0u8; len];
    for chunk in bytes.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

/// [`build_images`] of the example app with a `noise.bin` of `len` incompressible bytes in
/// each platform's tree, so that its layers are large; returns the layout.
pub fn build_noisy_images(work: &Path, len: usize) -> PathBuf {
    make_dist(work);
    let bytes = noise(len, 0x9E37_79B9_7F4A_7C15 ^ len as u64);
    for arch in ["amd64", "arm64"] {
        fs::write(work.join(format!("dist/linux_{arch}/noise.bin")), &bytes).unwrap();
    }
    build_images(work).0
}

/// Writes `content` at `path` with `mode`, creating parents.
pub fn write(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().expect("a parent")).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The example application cross-compiled for two platforms: `dist/linux_{amd64,arm64}/`.
pub fn make_dist(root: &Path) -> PathBuf {
    let dist = root.join("dist");
    for arch in ["amd64", "arm64"] {
        let dir = dist.join(format!("linux_{arch}"));
        write(&dir.join("server"), &format!("#!/bin/sh\necho server for {arch}\n"), 0o755);
        write(&dir.join("config/app.yaml"), "port: 8080\n", 0o644);
        write(&dir.join("config/secret.key"), "private\n", 0o600);
        write(&dir.join("static/index.html"), "<h1>hi</h1>\n", 0o644);
        write(&dir.join("static/app.js.map"), "{}\n", 0o644);
        std::os::unix::fs::symlink("static/index.html", dir.join("index.html")).unwrap();
        std::os::unix::fs::symlink("/etc/ssl/certs", dir.join("certs")).unwrap();
        fs::hard_link(dir.join("server"), dir.join("server-alias")).unwrap();
        for sub in ["config", "static"] {
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    dist
}

/// What a tree holds: per relative path, its kind, permission bits and content or link target.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for entry in walk(root) {
        let relative = entry.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&entry).unwrap();
        let mode = meta.mode() & 0o7777;
        let description = if meta.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&entry).unwrap().display())
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!("file {mode:o} {}", String::from_utf8_lossy(&fs::read(&entry).unwrap()))
        };
        found.insert(relative, description);
    }
    found
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        paths.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            paths.extend(walk(&path));
        }
    }
    paths
}

/// `hoist build` of the example app in `dist/` for linux/amd64 and linux/arm64 into /app/.
pub const APP_BUILD: [&str; 7] =
    ["build", "--platform", "linux/amd64", "--platform", "linux/arm64", "--layer", "dist/{os}_{arch}/:/app/"];

/// Builds the two-platform app in `work/dist` (entrypoint /app/server) into `work/layout`,
/// tagged `multi`, and its amd64 image alone as a plain manifest tagged `single`. Returns the
/// layout and the index digest.
pub fn build_images(work: &Path) -> (PathBuf, String) {
    let layout = work.join("layout");
    let digest = ok(hoist().current_dir(work).args(APP_BUILD).args([
        "--entrypoint",
        "/app/server",
        "--output",
        &format!("oci:{}:multi", layout.display()),
    ]));
    ok(hoist().current_dir(work).args([
        "build",
        "--platform",
        "linux/amd64",
        "--layer",
        "dist/linux_amd64/:/app/",
        "--no-index",
        "--output",
        &format!("oci:{}:single", layout.display()),
    ]));
    (layout, digest.trim().to_owned())
}

/// Adds `document` to the layout as a blob with `writer` and tags it: for hand-made manifests
/// and indexes that hoist itself would not write. Returns its digest.
pub fn commit_json(
    mut writer: hoist::layout::LayoutWriter,
    document: &serde_json::Value,
    media_type: oci_spec::image::MediaType,
    tag: &str,
) -> hoist::Digest {
    let (digest, size) = writer.add_json(document, tag).unwrap();
    let media_type = hoist::model::MediaType::from(media_type.to_string().as_str());
    writer.commit(hoist::model::Descriptor::new(media_type, digest.clone(), size), Some(tag)).unwrap();
    digest
}

/// The `os/arch` of each entry of an index document, in order.
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    let entries = index["manifests"].as_array().unwrap();
    entries
        .iter()
        .map(|m| {
            format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap())
        })
        .collect()
}

/// Parsed JSON of a file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Parsed JSON of a blob in a layout, by `sha256:…` digest.
pub fn blob_json(layout: &Path, digest: &str) -> serde_json::Value {
    read_json(&blob_path(layout, digest))
}

/// The file of a blob in a layout.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// The names in a directory, sorted, including hidden ones.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
