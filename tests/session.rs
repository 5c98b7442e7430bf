//! One session per command: a build on a base image that pushes its result with SBOMs finds
//! each registry once and asks for each token once, whatever steps it takes (issue 22).

use std::collections::BTreeSet;

use crate::util::proxy::Proxy;
use crate::util::registry::{Registry, Setup};
use crate::util::token::TokenServer;
use crate::util::{hoist, make_dist, ok, tool, write, APP_BUILD};

#[test]
fn build_on_a_base_with_push_and_sboms_pings_once_and_asks_each_token_once() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let secrets = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(secrets.path(), "bob", "builder");
    let registry = Registry::start_with(Setup { auth: Some(tokens.registry_auth()), ..Setup::default() });
    // Every request to the registry passes the proxy, which counts them.
    let proxy = Proxy::start(registry.host(), |_, _| {});
    let host = proxy.host();
    let creds = ["--creds", "bob:builder"];
    write(&work.path().join("base/etc/os-release"), "ID=hoist-test\n", 0o644);
    let base_args = ["build", "--platform", "linux/amd64", "--platform", "linux/arm64", "--layer", "base/:/"];
    ok(hoist().current_dir(work.path()).args(base_args).args(creds).args(["--push", &format!("{host}/base:1")]));

    for output in [None, Some("oci:layout:v1")] {
        proxy.requests.lock().unwrap().clear();
        tokens.requests.lock().unwrap().clear();
        let mut build = hoist();
        build.current_dir(work.path()).args(APP_BUILD).args(creds);
        build.args(["--base", &format!("{host}/base:1"), "--sbom", "--push", &format!("{host}/app:1")]);
        if let Some(output) = output {
            build.args(["--output", output]);
        }
        ok(build);
        let pings = proxy.count("GET", "/v2/ ");
        assert_eq!(pings, 1, "one GET /v2/ for the whole run ({output:?}): {:?}", proxy.requests.lock().unwrap());
        let asked = tokens.requests.lock().unwrap().clone();
        let distinct: BTreeSet<&Vec<String>> = asked.iter().collect();
        assert!(!asked.is_empty(), "the registry wants tokens");
        assert_eq!(distinct.len(), asked.len(), "each scope's token once ({output:?}): {asked:?}");
    }
}

#[test]
fn the_library_example_builds_and_pushes_two_platforms_that_skopeo_reads() {
    let work = tempfile::tempdir().unwrap();
    let dist = make_dist(work.path());
    let registry = Registry::start();
    let target = format!("{}/example/app:v1", registry.host());
    // `cargo test` builds the examples beside the binary under test.
    let example = std::path::Path::new(env!("CARGO_BIN_EXE_hoist")).with_file_name("examples").join("publish");
    assert!(example.exists(), "{} is missing: `cargo test` builds it, `cargo test --test` does not", example.display());
    // With the environment the tests give hoist (no docker config, a cache of its own).
    let command = hoist();
    let mut run = std::process::Command::new(&example);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => run.env(key, value),
            None => run.env_remove(key),
        };
    }
    let digest = ok(run.current_dir(work.path()).arg(&target));
    let raw = tool("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{target}")])
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    assert_eq!(format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&raw.stdout)), digest.trim());
    for arch in ["amd64", "arm64"] {
        let out = work.path().join(arch);
        let copied = tool("skopeo")
            .args(["copy", "--src-tls-verify=false", "--override-os", "linux", "--override-arch", arch])
            .arg(format!("docker://{target}"))
            .arg(format!("oci:{}:x", out.display()))
            .output()
            .unwrap();
        assert!(copied.status.success(), "{arch}: {}", String::from_utf8_lossy(&copied.stderr));
        let unpacked = work.path().join(format!("{arch}-rootfs"));
        ok(tool("umoci").args(["unpack", "--rootless", "--image"]).arg(format!("{}:x", out.display())).arg(&unpacked));
        assert_eq!(
            std::fs::read(unpacked.join("rootfs/app/server")).unwrap(),
            std::fs::read(dist.join(format!("linux_{arch}/server"))).unwrap(),
            "{arch} holds its own files"
        );
    }
}
