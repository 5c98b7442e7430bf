//! TLS as docker does it (issue 11): a self-signed `CA:TRUE` certificate the user trusts,
//! client certificates from docker's `certs.d`, and loopback registries that answer TLS with a
//! certificate nobody trusts. Every certificate is made here with rcgen; every registry is
//! Debian's docker-registry on 127.0.0.1.
//!
//! A registry name that is not loopback is needed to see verification at work, and no DNS may
//! be used: `docker.io` is such a name, and `$HOIST_DOCKER_HUB_HOST` serves it at the test
//! registry's address (so the certificate is checked against `127.0.0.1`).

use std::fs;
use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::util::hostile::{Hostile, Reply};
use crate::util::registry::{self_signed_ca_certificate, Registry, Setup, TestCa};
use crate::util::{build_images, fails_with, hoist, make_dist, ok};

/// `hoist catalog docker.io`, with Docker Hub served by `registry`.
fn catalog_as_docker_hub(registry: &Registry) -> Command {
    let mut command = hoist();
    command.env("HOIST_DOCKER_HUB_HOST", registry.host()).args(["catalog", "docker.io"]);
    command
}

#[test]
fn a_self_signed_ca_certificate_the_user_trusts_is_accepted_with_its_name_checked() {
    let certs = tempfile::tempdir().unwrap();
    // What `openssl req -x509 -addext subjectAltName=…` makes: self-signed, CA:TRUE.
    let (cert, key) = self_signed_ca_certificate(certs.path(), "registry", &["registry.test", "127.0.0.1"]);
    let registry = Registry::start_with(Setup { tls: Some((cert.clone(), key)), ..Setup::default() });

    let untrusted = fails_with(catalog_as_docker_hub(&registry), Some(6));
    assert!(untrusted.contains("CA:TRUE") && untrusted.contains("--ca-cert"), "{untrusted}");
    assert_eq!(ok(catalog_as_docker_hub(&registry).arg("--ca-cert").arg(&cert)), "");
    let certs_d = certs.path().join("certs.d");
    fs::create_dir_all(certs_d.join("docker.io")).unwrap();
    fs::copy(&cert, certs_d.join("docker.io/ca.crt")).unwrap();
    assert_eq!(ok(catalog_as_docker_hub(&registry).env("HOIST_DOCKER_CERTS_DIR", &certs_d)), "");

    // Trusted, but made for another name: still refused.
    let (other, other_key) = self_signed_ca_certificate(certs.path(), "other", &["registry.test"]);
    let misnamed = Registry::start_with(Setup { tls: Some((other.clone(), other_key)), ..Setup::default() });
    let refused = fails_with(catalog_as_docker_hub(&misnamed).arg("--ca-cert").arg(&other), Some(6));
    assert!(refused.contains("not valid for name"), "{refused}");
}

#[test]
fn client_certificates_come_from_certs_d() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hoist test CA");
    let ca_file = ca.write(&certs.path().join("ca.crt"));
    let (cert, key) = ca.server(certs.path(), "server", &["localhost", "127.0.0.1"]);
    let registry =
        Registry::start_with(Setup { tls: Some((cert, key)), client_cas: vec![ca_file.clone()], ..Setup::default() });
    let host = registry.host();
    let certs_d = certs.path().join("certs.d");
    let with_certs_d = |args: &[&str]| {
        let mut command = hoist();
        command.env("HOIST_DOCKER_CERTS_DIR", &certs_d).args(args);
        command
    };

    let refused = fails_with(with_certs_d(&["catalog", &host]), Some(6));
    assert!(refused.contains("client certificate") && refused.contains("client.cert"), "{refused}");

    let dir = certs_d.join(&host);
    let (client_cert, client_key) = ca.client(&dir);
    fs::copy(&ca_file, dir.join("ca.crt")).unwrap();
    assert_eq!(ok(with_certs_d(&["catalog", &host])), "");

    // A certificate without its key is a mistake docker refuses too.
    fs::rename(&client_key, dir.join("elsewhere.pem")).unwrap();
    let keyless = fails_with(with_certs_d(&["catalog", &host]), Some(6));
    assert!(keyless.contains(&client_cert.display().to_string()) && keyless.contains("no key"), "{keyless}");
}

#[test]
fn loopback_registries_with_untrusted_certificates_work_as_in_docker() {
    let certs = tempfile::tempdir().unwrap();
    let nobody = TestCa::new("a CA nobody trusts");
    let (cert, key) = nobody.server(certs.path(), "server", &["localhost", "127.0.0.1"]);
    let registry = Registry::start_with(Setup { tls: Some((cert, key)), ..Setup::default() });
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let (layout, _) = build_images(work.path());

    let target = format!("{}/team/app:v1", registry.host());
    let pushed = ok(hoist().args(["push", &format!("oci:{}:single", layout.display()), &target]));
    assert_eq!(ok(hoist().args(["digest", &target])), pushed);
    let by_name = format!("localhost:{}/team/app:v1", registry.host().rsplit_once(':').unwrap().1);
    assert_eq!(ok(hoist().args(["digest", &by_name])), pushed);
    // Over HTTPS, not plain HTTP: the TLS registry answers plain HTTP with 400.
    assert!(!registry.log().contains("HTTP request to an HTTPS server"), "{}", registry.log());
}

/// What the HTTPS registry of [`credentials_never_travel_over_plain_http`] answers: `/v2/` at
/// once; below `/v2/basic/` a Basic challenge, below `/v2/bearer/` a Bearer one with its realm
/// at `/token`, below `/v2/moved-token/` a Bearer one whose realm sends a 307 to plain HTTP;
/// the manifest once authorized, and for the config blob a 307 to the same host and port over
/// plain HTTP, where the blob is served (and a token refused).
fn downgrading_registry(head: &str, manifest: &str, config: &[u8]) -> Reply {
    let over_tls = head.starts_with("TLS ");
    let path = head.split_whitespace().nth(if over_tls { 2 } else { 1 }).unwrap_or_default().to_owned();
    let host = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim()))
        .unwrap_or_default()
        .to_owned();
    let authorized = head.lines().any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
    let moved =
        |to: &str| Reply::Send("307 Temporary Redirect".into(), vec![format!("Location: http://{host}{to}")], vec![]);
    if !over_tls {
        return match path.starts_with("/plain/blob") {
            true => Reply::Send("200 OK".into(), vec![], config.to_vec()),
            false => Reply::json("401 Unauthorized", r#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#),
        };
    }
    let challenge = match path.split('/').nth(2).unwrap_or_default() {
        "basic" => r#"Basic realm="test""#.to_owned(),
        "bearer" => format!(r#"Bearer realm="https://{host}/token",service="test""#),
        _ => format!(r#"Bearer realm="https://{host}/moved-token",service="test""#),
    };
    match path.as_str() {
        "/v2/" => Reply::json("200 OK", "{}"),
        p if p.starts_with("/token") && authorized => Reply::json("200 OK", r#"{"token":"bearer-secret"}"#),
        p if p.starts_with("/moved-token") => moved("/plain/token"),
        p if p.starts_with("/token") => Reply::json("401 Unauthorized", "{}"),
        _ if !authorized => {
            Reply::Send("401 Unauthorized".into(), vec![format!("WWW-Authenticate: {challenge}")], b"{}".to_vec())
        }
        p if p.contains("/manifests/") => Reply::Send(
            "200 OK".into(),
            vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
            manifest.as_bytes().to_vec(),
        ),
        _ => moved("/plain/blob"),
    }
}

/// Issue 21, 1: a registry reached over HTTPS that redirects a blob GET or the token request
/// to plain HTTP on the same host and port gets no credential over plain HTTP, Basic or
/// Bearer: the redirect is refused with a clear message, and where the user marked the
/// registry insecure it is followed without the credential (the origin changed: its scheme).
#[test]
fn credentials_never_travel_over_plain_http() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hoist test CA");
    let ca_file = ca.write(&certs.path().join("ca.crt"));
    let (cert, key) = ca.server(certs.path(), "server", &["127.0.0.1"]);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{:x}", Sha256::digest(&config)),
            "size": config.len(),
        },
        "layers": [],
    })
    .to_string();
    let served = config.clone();
    let server = Hostile::start_tls(&cert, &key, move |head| downgrading_registry(head, &manifest, &served));
    let plain_heads =
        || -> Vec<String> { server.heads.lock().unwrap().iter().filter(|h| !h.starts_with("TLS ")).cloned().collect() };
    let inspect = |repository: &str, insecure: bool| {
        let mut command = hoist();
        command.env("HOIST_DOCKER_HUB_HOST", server.host()).args([
            "inspect",
            "--config",
            &format!("docker.io/{repository}/app:v1"),
            "--creds",
            "alice:wonderland",
        ]);
        match insecure {
            true => command.args(["--insecure-registry", "docker.io"]),
            false => command.arg("--ca-cert").arg(&ca_file),
        };
        command
    };

    for repository in ["basic", "bearer", "moved-token"] {
        let refused = fails_with(inspect(repository, false), Some(6));
        assert!(
            refused.contains("to plain HTTP (http://127.0.0.1:")
                && refused.contains("hoist does not leave HTTPS for HTTP")
                && refused.contains("--insecure-registry docker.io"),
            "{repository}: {refused}"
        );
        assert_eq!(plain_heads(), Vec::<String>::new(), "{repository}: nothing goes over plain HTTP");
    }
    let over_tls = server.heads_with("authorization: basic").len() + server.heads_with("authorization: bearer").len();
    assert!(over_tls >= 4, "the credentials went over TLS: {:?}", server.heads.lock().unwrap());

    // Marked insecure by the user: followed, but the credential stays on its origin.
    for repository in ["basic", "bearer"] {
        assert_eq!(ok(inspect(repository, true)).trim_end().as_bytes(), &config[..], "{repository}");
    }
    let failed = fails_with(inspect("moved-token", true), Some(4));
    assert!(failed.contains("token"), "{failed}");
    let plain = plain_heads();
    assert_eq!(plain.len(), 3, "two blob GETs and one token request over plain HTTP: {plain:?}");
    for head in &plain {
        assert!(!head.to_ascii_lowercase().contains("authorization"), "a credential went over plain HTTP: {head}");
    }
}
