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
