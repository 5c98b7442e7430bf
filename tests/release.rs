//! Shipping hoist: the crate's file list, the release archive (scripts/release-archive.sh) and
//! the GitHub Action's scripts: install (scripts/action-install.sh) against a loopback server
//! standing in for GitHub's releases, and login (scripts/action-login.sh) to a loopback registry.

use crate::util::registry::with_htpasswd;
use crate::util::{ok, tool};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target whose archive the action picks on this machine (see scripts/action-install.sh).
fn action_target() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "x86_64-unknown-linux-musl",
        ("linux", "aarch64") => "aarch64-unknown-linux-musl",
        ("macos", "x86_64") => "x86_64-apple-darwin",
        ("macos", "aarch64") => "aarch64-apple-darwin",
        other => panic!("no release target for {other:?}"),
    }
}

/// The release archive of the binary under test, made once: (its directory, its file name).
fn archive() -> &'static (PathBuf, String) {
    static ARCHIVE: OnceLock<(PathBuf, String)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let out = tempfile::tempdir().unwrap().keep();
        let printed = ok(Command::new(repo().join("scripts/release-archive.sh")).args([
            "--binary",
            env!("CARGO_BIN_EXE_hoist"),
            "--target",
            action_target(),
            "--out",
            out.to_str().unwrap(),
        ]));
        let name = format!("hoist-{VERSION}-{}.tar.gz", action_target());
        assert_eq!(printed.trim_end(), out.join(&name).to_str().unwrap(), "the script prints the archive's path");
        (out, name)
    })
}

#[test]
fn the_release_archive_holds_the_binary_license_and_readme_and_its_checksum_verifies() {
    let (out, name) = archive();
    let stem = name.trim_end_matches(".tar.gz");
    let mut listed: Vec<String> = ok(tool("tar").arg("-tzf").arg(out.join(name))).lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(
        listed,
        [format!("{stem}/"), format!("{stem}/LICENSE"), format!("{stem}/README.md"), format!("{stem}/hoist")]
    );

    let sums = std::fs::read_to_string(out.join(format!("{name}.sha256"))).unwrap();
    assert_eq!(sums.lines().count(), 1, "{sums}");
    assert!(sums.ends_with(&format!("  {name}\n")), "{sums}");
    ok(tool("sha256sum").arg("-c").arg(format!("{name}.sha256")).current_dir(out));

    // The checksum catches a changed archive.
    let tampered = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(out.join(name)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(tampered.path().join(name), bytes).unwrap();
    std::fs::copy(out.join(format!("{name}.sha256")), tampered.path().join(format!("{name}.sha256"))).unwrap();
    let check =
        tool("sha256sum").arg("-c").arg(format!("{name}.sha256")).current_dir(tampered.path()).output().unwrap();
    assert!(!check.status.success(), "sha256sum -c accepted a changed archive");

    let unpacked = tempfile::tempdir().unwrap();
    ok(tool("tar").arg("-xzf").arg(out.join(name)).arg("-C").arg(unpacked.path()));
    let dir = unpacked.path().join(stem);
    assert_eq!(ok(Command::new(dir.join("hoist")).arg("--version")), format!("hoist {VERSION}\n"));
    for document in ["LICENSE", "README.md"] {
        assert_eq!(
            std::fs::read(dir.join(document)).unwrap(),
            std::fs::read(repo().join(document)).unwrap(),
            "{document}"
        );
    }
    assert!(
        std::fs::read_to_string(dir.join("LICENSE"))
            .unwrap()
            .contains("Apache License\n                           Version 2.0"),
        "LICENSE is the Apache 2.0 text"
    );
}

#[test]
fn the_crate_ships_only_its_sources_and_documents() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let listed = ok(Command::new(cargo)
        .args(["package", "--list", "--locked", "--offline", "--allow-dirty"])
        .current_dir(repo()));
    let files: Vec<&str> = listed.lines().collect();
    for needed in ["Cargo.toml", "Cargo.lock", "README.md", "LICENSE", "CHANGELOG.md", "src/main.rs", "src/lib.rs"] {
        assert!(files.contains(&needed), "{needed} missing from the package: {files:?}");
    }
    let allowed =
        [".cargo_vcs_info.json", "Cargo.toml", "Cargo.toml.orig", "Cargo.lock", "README.md", "LICENSE", "CHANGELOG.md"];
    for file in &files {
        assert!(
            allowed.contains(file) || (file.starts_with("src/") && file.ends_with(".rs")),
            "{file} does not belong in the published crate"
        );
    }
}

/// A loopback HTTP server for files under `root` (GET only, one request per connection).
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
            let file = root.join(&path);
            let response = match (path.contains(".."), std::fs::read(&file)) {
                (false, Ok(body)) => {
                    let mut response =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .into_bytes();
                    response.extend(body);
                    response
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{address}")
}

/// Publishes the archive as release `v{VERSION}` of `repository` under `root`, GitHub's way:
/// `/OWNER/REPO/releases/download/TAG/FILE`, and the API's `/api/repos/OWNER/REPO/releases/latest`.
fn publish(root: &Path, repository: &str, checksum: Option<&str>) {
    let (out, name) = archive();
    let download = root.join(repository).join(format!("releases/download/v{VERSION}"));
    std::fs::create_dir_all(&download).unwrap();
    std::fs::copy(out.join(name), download.join(name)).unwrap();
    let sums = match checksum {
        Some(digest) => format!("{digest}  {name}\n"),
        None => std::fs::read_to_string(out.join(format!("{name}.sha256"))).unwrap(),
    };
    std::fs::write(download.join(format!("{name}.sha256")), sums).unwrap();
    let api = root.join("api/repos").join(repository).join("releases");
    std::fs::create_dir_all(&api).unwrap();
    let latest = serde_json::json!({ "tag_name": format!("v{VERSION}"), "name": format!("hoist v{VERSION}") });
    std::fs::write(api.join("latest"), serde_json::to_vec_pretty(&latest).unwrap()).unwrap();
}

/// scripts/action-install.sh as action.yml runs it, pointed at `server`.
fn install(server: &str, work: &Path, repository: &str, version: &str) -> Command {
    let mut command = Command::new(repo().join("scripts/action-install.sh"));
    command
        .env("HOIST_VERSION", version)
        .env("HOIST_REPOSITORY", repository)
        .env("HOIST_TOKEN", "not-a-real-token")
        .env("HOIST_INSTALL_DIR", work.join("installed"))
        .env("GITHUB_SERVER_URL", server)
        .env("GITHUB_API_URL", format!("{server}/api"))
        .env("GITHUB_PATH", work.join("github-path"))
        .env("GITHUB_OUTPUT", work.join("github-output"))
        .env_remove("RUNNER_TEMP");
    command
}

#[test]
fn the_action_installs_the_latest_release_after_checking_its_checksum() {
    let releases = tempfile::tempdir().unwrap();
    publish(releases.path(), "hoist-rs/hoist", None);
    let server = serve(releases.path().to_owned());

    for version in ["latest", VERSION, &format!("v{VERSION}")] {
        let work = tempfile::tempdir().unwrap();
        let printed = ok(install(&server, work.path(), "hoist-rs/hoist", version));
        let installed = work.path().join("installed");
        assert_eq!(printed.trim_end(), installed.join("hoist").to_str().unwrap());
        assert_eq!(ok(Command::new(installed.join("hoist")).arg("--version")), format!("hoist {VERSION}\n"));
        assert!(installed.join("LICENSE").is_file());
        assert_eq!(
            std::fs::read_to_string(work.path().join("github-path")).unwrap(),
            format!("{}\n", installed.display()),
            "the directory goes on PATH"
        );
        assert_eq!(
            std::fs::read_to_string(work.path().join("github-output")).unwrap(),
            format!("version={VERSION}\npath={}\n", installed.join("hoist").display())
        );
    }
}

#[test]
fn the_action_refuses_an_archive_whose_checksum_differs_and_a_missing_release() {
    let releases = tempfile::tempdir().unwrap();
    publish(releases.path(), "someone/fork", Some(&"0".repeat(64)));
    let server = serve(releases.path().to_owned());

    let work = tempfile::tempdir().unwrap();
    let out = install(&server, work.path(), "someone/fork", "latest").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "installed despite a wrong checksum: {stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(!work.path().join("installed/hoist").exists(), "nothing is installed");
    assert!(!work.path().join("github-path").exists(), "nothing goes on PATH");

    let out = install(&server, work.path(), "someone/fork", "9.9.9").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot download") && stderr.contains("/releases/download/v9.9.9/"), "{stderr}");

    let out = install(&server, work.path(), "someone/fork", "main").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("version must be"));
}

#[test]
fn the_action_logs_in_with_the_password_on_stdin() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let host = registry.host();
    let binaries = Path::new(env!("CARGO_BIN_EXE_hoist")).parent().unwrap().to_owned();
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap_or_default());
    let docker_config = tempfile::tempdir().unwrap();
    let login = |password: &str| {
        let mut command = Command::new(repo().join("scripts/action-login.sh"));
        command
            .env("PATH", &path)
            .env("DOCKER_CONFIG", docker_config.path())
            .env("HOIST_REGISTRY", &host)
            .env("HOIST_USERNAME", "alice")
            .env("HOIST_PASSWORD", password);
        command
    };

    let out = login("wrong").output().unwrap();
    assert!(!out.status.success(), "a wrong password logs in");
    assert!(!docker_config.path().join("config.json").exists(), "nothing stored for a failed login");

    let stdout = ok(login("wonderland"));
    assert!(stdout.contains("::add-mask::wonderland\n"), "the password is masked in the log: {stdout}");
    let config = crate::util::read_json(&docker_config.path().join("config.json"));
    assert!(config["auths"][&host]["auth"].is_string(), "{config}");
    ok(crate::util::hoist().env("DOCKER_CONFIG", docker_config.path()).args(["catalog", &host]));
}
