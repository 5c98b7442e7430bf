//! OCI 1.1 referrers: `hoist attach`, `hoist referrers`, `hoist copy --referrers` and the count in
//! `hoist inspect`, against distribution 2.8 (no referrers API: the fallback tag) and against a
//! registry that has the API.

use std::path::Path;

use serde_json::Value;

use crate::util::referrers::ReferrersRegistry;
use crate::util::registry::Registry;
use crate::util::schema::assert_valid;
use crate::util::{build_images, hoist, make_dist, ok, tool};

/// Pushes the example's two-platform index to `registry/app:v1`; returns its digest.
fn seed(work: &Path, registry: &str) -> String {
    make_dist(work);
    let (layout, digest) = build_images(work);
    ok(hoist().args(["push", "-q", &format!("oci:{}:multi", layout.display()), &format!("{registry}/app:v1")]));
    digest
}

fn tags(repository: &str) -> Vec<String> {
    ok(hoist().args(["tags", repository])).lines().map(str::to_owned).collect()
}

#[test]
fn attach_to_distribution_writes_the_fallback_tag_and_concurrent_attaches_keep_both() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let host = registry.host();
    let subject = seed(work.path(), &host);
    std::fs::write(work.path().join("sbom.json"), r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    std::fs::write(work.path().join("signature.sig"), "signed").unwrap();

    let image = format!("{host}/app:v1");
    let attach = |file: &str, kind: &str, note: &str| {
        hoist()
            .args(["attach", &image, "--artifact-type", kind, "--annotation", &format!("note={note}")])
            .arg(work.path().join(file))
            .spawn()
            .unwrap()
    };
    let mut first = attach("sbom.json", "application/spdx+json", "one");
    let mut second = attach("signature.sig", "application/vnd.example.signature", "two");
    assert!(first.wait().unwrap().success() && second.wait().unwrap().success());

    let fallback = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    assert!(tags(&format!("{host}/app")).contains(&fallback), "no fallback tag {fallback}");
    let raw: Value = serde_json::from_str(&ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/app:{fallback}"),
    ])))
    .unwrap();
    assert_valid("image-index-schema.json", &raw);
    let kinds: Vec<&str> =
        raw["manifests"].as_array().unwrap().iter().map(|d| d["artifactType"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "both concurrent attaches are in the fallback index: {raw}");
    assert!(kinds.contains(&"application/spdx+json") && kinds.contains(&"application/vnd.example.signature"), "{raw}");

    let listed = ok(hoist().args(["referrers", &image]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let only = ok(hoist().args(["referrers", &image, "--artifact-type", "application/spdx+json"]));
    assert_eq!(only.lines().count(), 1, "{only}");
    let sbom = only.split_whitespace().next().unwrap().to_owned();
    let json: Value = serde_json::from_str(&ok(hoist().args(["referrers", &image, "--json"]))).unwrap();
    assert!(json.as_array().unwrap().iter().any(|d| d["annotations"]["note"] == "one"), "{json}");

    // The artifact: the empty config, the file as its layer, the subject's descriptor.
    let manifest: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--raw", &format!("{host}/app@{sbom}")]))).unwrap();
    assert_valid("image-manifest-schema.json", &manifest);
    assert_eq!(manifest["artifactType"], "application/spdx+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(manifest["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    assert_eq!(manifest["subject"]["digest"], subject.as_str());
    assert_eq!(manifest["layers"][0]["annotations"]["org.opencontainers.image.title"], "sbom.json");

    let inspected: Value = serde_json::from_str(&ok(hoist().args(["inspect", "--json", &image]))).unwrap();
    assert_eq!(inspected["referrers"], 2, "{inspected}");

    // copy --referrers carries them to another repository and into a layout.
    ok(hoist().args(["copy", "-q", "--referrers", &image, &format!("{host}/copy/app:v1")]));
    assert_eq!(ok(hoist().args(["referrers", &format!("{host}/copy/app:v1")])).lines().count(), 2);
    let layout = work.path().join("pulled");
    let pulled = format!("oci:{}:v1", layout.display());
    ok(hoist().args(["copy", "-q", "--referrers", &image, &pulled]));
    let in_layout = ok(hoist().args(["referrers", &pulled]));
    assert_eq!(in_layout.lines().count(), 2, "{in_layout}");
    crate::util::schema::validate_layout(&layout);
}

#[test]
fn a_registry_with_the_referrers_api_is_used_directly() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let front = ReferrersRegistry::start(registry.host());
    let host = front.host();
    let subject = seed(work.path(), &host);
    std::fs::write(work.path().join("report.xml"), "<testsuite/>").unwrap();
    let image = format!("{host}/app:v1");

    let attached: Value = serde_json::from_str(&ok(hoist()
        .args(["attach", "--json", &image, "--artifact-type", "application/vnd.example.report"])
        .arg(work.path().join("report.xml"))))
    .unwrap();
    assert_eq!(attached["discovery"], "api", "{attached}");
    assert_eq!(attached["subject"], subject.as_str());
    let requests = front.requests.lock().unwrap().clone();
    assert!(requests.iter().any(|r| r.starts_with("GET ") && r.contains("/referrers/")), "{requests:?}");
    assert!(
        !requests.iter().any(|r| r.starts_with("PUT ") && r.contains("/manifests/sha256-")),
        "a fallback tag was written: {requests:?}"
    );
    assert!(!tags(&format!("{}/app", registry.host())).iter().any(|t| t.starts_with("sha256-")));

    let listed = ok(hoist().args(["referrers", &image]));
    assert_eq!(listed.trim(), format!("{} application/vnd.example.report", attached["digest"].as_str().unwrap()));
}
