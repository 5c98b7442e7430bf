//! The registry client against the real registry (Debian's docker-registry): plain HTTP, TLS,
//! Basic and Bearer authentication, docker credentials, and a registry that lies.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::proxy::{Proxy, StaticServer};
use crate::util::registry::{free_port, with_htpasswd, Registry, Setup, TestCa};
use crate::util::token::{TokenServer, REFRESH_TOKEN};
use crate::util::{build_images, fails_with, hoist, make_dist, ok, tool};

/// The example app's sources and its images in a layout (see [`build_images`]).
fn build_app_images(work: &Path) -> (std::path::PathBuf, String) {
    make_dist(work);
    build_images(work)
}

/// `skopeo copy` from the layout into the registry (the real peer puts the content there).
fn skopeo_push(layout: &Path, tag: &str, destination: &str, extra: &[&str]) {
    ok(tool("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{destination}")));
}

#[test]
fn inspect_digest_tags_and_catalog_read_what_skopeo_pushed() {
    let work = tempfile::tempdir().unwrap();
    let (layout, index_digest) = build_app_images(work.path());
    let registry = Registry::start();
    let repo = format!("{}/team/app", registry.host());
    skopeo_push(&layout, "multi", &format!("{repo}:v1"), &["--all"]);
    skopeo_push(&layout, "single", &format!("{repo}:docker"), &["--format", "v2s2"]);

    let human = ok(hoist().args(["inspect", &format!("{repo}:v1")]));
    assert!(human.contains(&index_digest), "{human}");
    assert!(human.contains("linux/amd64") && human.contains("linux/arm64"), "{human}");

    let raw = ok(hoist().args(["inspect", "--raw", &format!("{repo}:v1")]));
    let skopeo_raw =
        ok(tool("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{repo}:v1")]));
    assert_eq!(raw, skopeo_raw, "--raw gives the exact bytes");
    assert_eq!(hoist::Digest::of(raw.as_bytes()).to_string(), index_digest);

    let json: serde_json::Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{repo}:v1")]))).unwrap();
    let platforms: Vec<&str> =
        json["manifests"].as_array().unwrap().iter().map(|m| m["platform"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    let config: serde_json::Value = serde_json::from_str(&ok(hoist().args([
        "inspect",
        "--config",
        "--platform",
        "linux/arm64",
        &format!("{repo}:v1"),
    ])))
    .unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/server"]));

    assert_eq!(ok(hoist().args(["digest", &format!("{repo}:v1")])).trim(), index_digest);

    let docker: serde_json::Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{repo}:docker")]))).unwrap();
    assert_eq!(docker["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(docker["platform"], "linux/amd64");
    let skopeo: serde_json::Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{repo}:docker"),
    ])))
    .unwrap();
    assert_eq!(docker["digest"], skopeo["Digest"]);

    let mut tags: Vec<String> = ok(hoist().args(["tags", &repo])).lines().map(str::to_owned).collect();
    tags.sort();
    assert_eq!(tags, ["docker", "v1"]);
    assert_eq!(ok(hoist().args(["catalog", &registry.host()])), "team/app\n");

    let from_layout = ok(hoist().args(["inspect", "--json", &format!("oci:{}:multi", layout.display())]));
    assert!(from_layout.contains(&index_digest));
}

#[test]
fn each_failure_has_its_message_and_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_app_images(work.path());
    let registry = Registry::start();
    let repo = format!("{}/team/app", registry.host());
    skopeo_push(&layout, "single", &format!("{repo}:v1"), &[]);

    let missing_tag = fails_with(hoist().args(["inspect", &format!("{repo}:nope")]), Some(5));
    assert!(missing_tag.contains("not found") && missing_tag.contains("nope"), "{missing_tag}");
    let missing_repo = fails_with(hoist().args(["digest", &format!("{}/no/such:v1", registry.host())]), Some(5));
    assert!(missing_repo.contains("not found"), "{missing_repo}");
    let refused = fails_with(hoist().args(["inspect", &format!("127.0.0.1:{}/x:y", free_port())]), Some(6));
    assert!(refused.contains("cannot reach"), "{refused}");
    let malformed = fails_with(hoist().args(["inspect", "UPPER/case/Bad:tag"]), Some(3));
    assert!(malformed.contains("UPPER/case/Bad:tag"), "{malformed}");

    // A registry that serves other bytes than the digest it names: refused, never used.
    let lying = Proxy::start(registry.host(), |request, response| {
        if request.contains("/manifests/") && request.starts_with("GET") {
            let mut body = response.body.clone();
            body.push(b' ');
            response.set_body(body);
        }
    });
    let lie = fails_with(hoist().args(["inspect", &format!("{}/team/app:v1", lying.host())]), Some(7));
    assert!(lie.contains("digest mismatch") && lie.contains("refused"), "{lie}");
    let oversize = Proxy::start(registry.host(), |request, response| {
        if request.contains("/manifests/") {
            let mut body = response.body.clone();
            body.extend(std::iter::repeat_n(b' ', 5 << 20));
            response.set_body(body);
        }
    });
    let big = fails_with(hoist().args(["inspect", &format!("{}/team/app:v1", oversize.host())]), Some(7));
    assert!(big.contains("larger than"), "{big}");
}

#[test]
fn tls_registries_need_their_ca() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hoist test CA");
    let ca_file = ca.write(&certs.path().join("ca.crt"));
    let (cert, key) = ca.server(certs.path(), "server", &["localhost", "127.0.0.1"]);
    let registry = Registry::start_with(Setup { tls: Some((cert, key)), ..Setup::default() });

    // A loopback name is insecure as in docker (tests/tls.rs); a name that is not loopback
    // needs the CA. `docker.io` is such a name, served here at the registry's address.
    let hub = || {
        let mut command = hoist();
        command.env("HOIST_DOCKER_HUB_HOST", registry.host()).args(["catalog", "docker.io"]);
        command
    };
    let without = fails_with(hub(), Some(6));
    assert!(without.contains("TLS") && without.contains("--ca-cert"), "{without}");
    assert_eq!(ok(hub().arg("--ca-cert").arg(&ca_file)), "");
    assert_eq!(ok(hub().args(["--insecure-registry", "docker.io"])), "");
    // docker's per-registry CA directory works too.
    let certs_d = certs.path().join("certs.d");
    fs::create_dir_all(certs_d.join("docker.io")).unwrap();
    fs::copy(&ca_file, certs_d.join("docker.io").join("ca.crt")).unwrap();
    assert_eq!(ok(hub().env("HOIST_DOCKER_CERTS_DIR", &certs_d)), "");
    assert_eq!(ok(hoist().args(["catalog", &registry.host()])), "", "loopback needs no CA");
}

/// A `docker-credential-hoisttest` helper that answers `get` from a file and records `store`.
fn credential_helper(bin: &Path, user: &str, password: &str) {
    fs::create_dir_all(bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  get) read host; echo \"{{\\\"ServerURL\\\":\\\"$host\\\",\\\"Username\\\":\\\"{user}\\\",\\\"Secret\\\":\\\"{password}\\\"}}\" ;;\n  store) cat > \"$(dirname \"$0\")/stored.json\" ;;\n  erase) read host; echo \"$host\" > \"$(dirname \"$0\")/erased\" ;;\nesac\n"
    );
    let path = bin.join("docker-credential-hoisttest");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn basic_auth_with_flags_login_and_docker_credentials() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_app_images(work.path());
    skopeo_push(&layout, "single", &format!("{host}/team/app:v1"), &["--dest-creds", "alice:wonderland"]);
    let reference = format!("{host}/team/app:v1");

    let anonymous = fails_with(hoist().args(["inspect", &reference]), Some(4));
    assert!(anonymous.contains(&format!("hoist login {host}")), "{anonymous}");
    ok(hoist().args(["inspect", &reference, "--creds", "alice:wonderland"]));
    ok(hoist().args(["inspect", &reference]).env("HOIST_USERNAME", "alice").env("HOIST_PASSWORD", "wonderland"));

    let docker_config = tempfile::tempdir().unwrap();
    let config_file = docker_config.path().join("config.json");
    let wrong = fails_with(
        hoist().env("DOCKER_CONFIG", docker_config.path()).args(["login", "-u", "alice", "-p", "wrong", &host]),
        Some(4),
    );
    assert!(!wrong.contains("wrong"), "the password never appears: {wrong}");
    assert!(!config_file.exists(), "nothing stored for a failed login");
    let mut login = hoist();
    login
        .env("DOCKER_CONFIG", docker_config.path())
        .args(["login", "-u", "alice", "--password-stdin", &host])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"wonderland\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::metadata(&config_file).unwrap().permissions().mode() & 0o777, 0o600);
    let config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config_file).unwrap()).unwrap();
    assert!(config["auths"][&host]["auth"].is_string(), "{config}");
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).args(["inspect", &reference]));
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).args(["logout", &host]));
    fails_with(hoist().env("DOCKER_CONFIG", docker_config.path()).args(["inspect", &reference]), Some(4));

    // credHelpers[host], then credsStore: docker's precedence.
    let bin = docker_config.path().join("bin");
    credential_helper(&bin, "alice", "wonderland");
    fs::write(
        &config_file,
        format!(
            r#"{{"credHelpers": {{"{host}": "hoisttest"}}, "auths": {{"{host}": {{"auth": "bm9ib2R5Om5vcGU="}}}}}}"#
        ),
    )
    .unwrap();
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).env("PATH", path_with(&bin)).args(["inspect", &reference]));
    fs::write(&config_file, r#"{"credsStore": "hoisttest"}"#).unwrap();
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).env("PATH", path_with(&bin)).args(["inspect", &reference]));
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).env("PATH", path_with(&bin)).args([
        "login",
        "-u",
        "alice",
        "-p",
        "wonderland",
        &host,
    ]));
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bin.join("stored.json")).unwrap()).unwrap();
    assert_eq!(stored["Username"], "alice");
    assert_eq!(stored["ServerURL"], host.as_str());
}

#[test]
fn bearer_tokens_from_a_token_server_with_the_right_scopes() {
    let secrets = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(secrets.path(), "bob", "builder");
    let registry = Registry::start_with(Setup { auth: Some(tokens.registry_auth()), ..Setup::default() });
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = build_app_images(work.path());
    skopeo_push(&layout, "multi", &format!("{host}/team/app:v1"), &["--all", "--dest-creds", "bob:builder"]);
    tokens.requests.lock().unwrap().clear();

    let got = ok(hoist().args(["digest", &format!("{host}/team/app:v1"), "--creds", "bob:builder"]));
    assert_eq!(got.trim(), digest, "registry log: {}", registry.log());
    assert_eq!(*tokens.requests.lock().unwrap(), [vec!["repository:team/app:pull".to_owned()]]);
    tokens.requests.lock().unwrap().clear();
    assert_eq!(ok(hoist().args(["catalog", &host, "--creds", "bob:builder"])), "team/app\n");
    assert_eq!(*tokens.requests.lock().unwrap(), [vec!["registry:catalog:*".to_owned()]]);

    let refused = fails_with(hoist().args(["digest", &format!("{host}/team/app:v1"), "--creds", "bob:wrong"]), Some(4));
    assert!(refused.contains("hoist login") && !refused.contains("wrong"), "{refused}");
}

#[test]
fn identity_tokens_use_the_oauth2_refresh_grant() {
    let secrets = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(secrets.path(), "bob", "builder");
    let registry = Registry::start_with(Setup { auth: Some(tokens.registry_auth()), ..Setup::default() });
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_app_images(work.path());
    skopeo_push(&layout, "single", &format!("{host}/team/app:v1"), &["--dest-creds", "bob:builder"]);
    let docker_config = tempfile::tempdir().unwrap();
    fs::write(
        docker_config.path().join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"identitytoken": "{REFRESH_TOKEN}"}}}}}}"#),
    )
    .unwrap();
    tokens.requests.lock().unwrap().clear();
    ok(hoist().env("DOCKER_CONFIG", docker_config.path()).args(["digest", &format!("{host}/team/app:v1")]));
    assert_eq!(*tokens.requests.lock().unwrap(), [vec!["repository:team/app:pull".to_owned()]]);
}

#[test]
fn redirects_drop_credentials_and_rate_limits_say_how_long_to_wait() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_app_images(work.path());
    let reference = format!("{}/team/app:v1", registry.host());
    skopeo_push(&layout, "single", &reference, &["--dest-creds", "alice:wonderland"]);
    let raw = ok(hoist().args(["inspect", "--raw", &format!("oci:{}:single", layout.display())]));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config = fs::read(crate::util::blob_path(&layout, &config_digest)).unwrap();

    // Blob storage elsewhere: the registry answers 307 to another host.
    let storage = StaticServer::start(config.clone());
    let location = format!("http://localhost:{}/storage/{config_digest}", storage.port());
    let redirecting = Proxy::start(registry.host(), move |request, response| {
        if request.contains("/blobs/") && !response.head.contains(" 401 ") {
            response.head = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}");
            response.set_body(Vec::new());
        }
    });
    let through = format!("{}/team/app:v1", redirecting.host());
    let shown = ok(hoist().args(["inspect", "--config", &through, "--creds", "alice:wonderland"]));
    assert_eq!(shown.trim_end().as_bytes(), &config[..]);
    let seen = storage.requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(!seen[0].to_ascii_lowercase().contains("authorization"), "credentials leaked: {}", seen[0]);

    let limited = Proxy::start(registry.host(), |_, response| {
        response.head = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: application/json".to_owned();
        response.set_body(br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_vec());
    });
    let through = format!("{}/team/app:v1", limited.host());
    let waited = fails_with(hoist().args(["digest", &through, "--creds", "alice:wonderland"]), Some(75));
    assert!(waited.contains("retry in 7 s"), "{waited}");
}

#[test]
fn tag_lists_follow_link_pages_and_platforms_are_checked() {
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = build_app_images(work.path());
    let registry = Registry::start();
    let repo = format!("{}/team/app", registry.host());
    for tag in ["a", "b", "c", "d", "e"] {
        skopeo_push(&layout, "single", &format!("{repo}:{tag}"), &[]);
    }
    skopeo_push(&layout, "multi", &format!("{repo}:multi"), &["--all"]);
    // Pages of two, so that every page but the last carries a Link to the next.
    let paging =
        Proxy::start_with_requests(registry.host(), |head| *head = head.replacen("n=1000", "n=2", 1), |_, _| {});
    let listed = ok(hoist().args(["tags", &format!("{}/team/app", paging.host())]));
    let mut tags: Vec<&str> = listed.lines().collect();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c", "d", "e", "multi"]);

    let error = fails_with(hoist().args(["inspect", "--platform", "linux/s390x", &format!("{repo}:multi")]), Some(3));
    assert!(error.contains("linux/amd64, linux/arm64"), "{error}");
}

#[test]
fn credential_helpers_are_plain_names_and_a_path_is_refused_before_anything_runs() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let host = registry.host();
    // `docker-credential-x/../evil`, taken as a path, is ./evil: a script that leaves a mark.
    let work = tempfile::tempdir().unwrap();
    fs::create_dir(work.path().join("docker-credential-x")).unwrap();
    let evil = work.path().join("evil");
    fs::write(
        &evil,
        "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\necho '{\"Username\":\"alice\",\"Secret\":\"wonderland\"}'\n",
    )
    .unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let config_file = docker_config.path().join("config.json");
    let reference = format!("{host}/team/app:v1");
    for config in
        [format!(r#"{{"credHelpers": {{"{host}": "x/../evil"}}}}"#), r#"{"credsStore": "x/../evil"}"#.to_owned()]
    {
        fs::write(&config_file, &config).unwrap();
        let hoist_here = || {
            let mut command = hoist();
            command.current_dir(work.path()).env("DOCKER_CONFIG", docker_config.path());
            command
        };
        let error = fails_with(hoist_here().args(["inspect", &reference]), Some(3));
        assert!(error.contains("x/../evil") && error.contains("docker-credential-NAME"), "{error}");
        assert!(error.contains(&config_file.display().to_string()), "the error names the file to fix: {error}");
        fails_with(hoist_here().args(["login", "-u", "alice", "-p", "wonderland", &host]), Some(3));
        fails_with(hoist_here().args(["logout", &host]), Some(3));
        assert!(!work.path().join("ran").exists(), "the helper ran for {config}");
        assert_eq!(fs::read_to_string(&config_file).unwrap(), config, "the config is left as it was");
    }
}

#[test]
fn a_docker_config_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let host = registry.host();
    let docker_config = tempfile::tempdir().unwrap();
    let config_file = docker_config.path().join("config.json");
    ok(tool("mkfifo").arg(&config_file));
    let with_config = |args: &[&str]| {
        let mut command = hoist();
        command.env("DOCKER_CONFIG", docker_config.path()).args(args);
        command
    };
    let reference = format!("{host}/team/app:v1");
    for kind in ["fifo", "character device"] {
        for args in [vec!["inspect", &reference], vec!["logout", &host]] {
            let error = crate::util::fails_without_hanging(with_config(&args), Some(3));
            assert!(error.contains(&config_file.display().to_string()) && error.contains(kind), "{error}");
        }
        fs::remove_file(&config_file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &config_file).unwrap();
    }
    assert_eq!(fs::read_link(&config_file).unwrap(), Path::new("/dev/zero"), "the link is left as it was");
}
