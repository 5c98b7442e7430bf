//! `hoist build --sbom`: an SPDX 2.3 document per platform, valid under the SPDX schema, kept in
//! the layout as a referrer of its image and attached in the registry on push.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::registry::Registry;
use crate::util::schema::{assert_valid_spdx, validate_layout};
use crate::util::{blob_json, blob_path, hoist, make_dist, ok, read_json, write, APP_BUILD};

#[test]
fn build_sbom_lists_every_file_validates_and_is_attached_in_layout_and_registry() {
    let work = tempfile::tempdir().unwrap();
    let dist = make_dist(work.path());
    let registry = Registry::start();
    let host = registry.host();
    // A base image with one file of its own.
    write(&work.path().join("base/etc/os-release"), "ID=hoist-test\n", 0o644);
    ok(hoist().current_dir(work.path()).args([
        "build",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--layer",
        "base/:/",
        "--push",
        &format!("{host}/base:1"),
    ]));

    let layout = work.path().join("layout");
    let root = ok(hoist().current_dir(work.path()).args(APP_BUILD).args([
        "--base",
        &format!("{host}/base:1"),
        "--sbom",
        "--output",
        &format!("oci:{}:v1", layout.display()),
        "--push",
        &format!("{host}/app:v1"),
    ]));
    let root = root.trim();
    validate_layout(&layout);

    let index = read_json(&layout.join("index.json"));
    let app = blob_json(&layout, root);
    let images: Vec<String> =
        app["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap().to_owned()).collect();
    let mut sboms = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = blob_json(&layout, entry["digest"].as_str().unwrap());
        if manifest["artifactType"] == "application/spdx+json" {
            assert!(entry["annotations"].is_null(), "an SBOM is an untagged entry: {entry}");
            sboms.push(manifest);
        }
    }
    assert_eq!(sboms.len(), 2, "one SBOM per platform: {index}");
    for sbom in &sboms {
        let subject = sbom["subject"]["digest"].as_str().unwrap();
        assert!(images.iter().any(|d| d == subject), "{subject} is one of the images");
        let document = blob_json(&layout, sbom["layers"][0]["digest"].as_str().unwrap());
        assert_valid_spdx(&document);
        assert_eq!(document["spdxVersion"], "SPDX-2.3");
        let platform =
            document["packages"][0]["comment"].as_str().unwrap().trim_start_matches("platform linux/").to_owned();
        let files = document["files"].as_array().unwrap();
        let sha256 = |name: &str| {
            files.iter().find(|f| f["fileName"] == name).unwrap_or_else(|| panic!("{name} not in {document}"))
                ["checksums"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["algorithm"] == "SHA256")
                .unwrap()["checksumValue"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let server = std::fs::read(dist.join(format!("linux_{platform}/server"))).unwrap();
        assert_eq!(sha256("./app/server"), format!("{:x}", Sha256::digest(&server)), "{platform}");
        assert_eq!(sha256("./app/server-alias"), sha256("./app/server"), "a hard link has its target's content");
        assert_eq!(sha256("./etc/os-release"), format!("{:x}", Sha256::digest(b"ID=hoist-test\n")), "base files too");
        let base = &document["packages"][1];
        assert_eq!(base["name"], format!("{host}/base:1"), "{document}");
        assert!(blob_path(&layout, sbom["layers"][0]["digest"].as_str().unwrap()).exists());

        // Attached in the registry too (distribution 2.8: through the fallback tag).
        let listed = ok(hoist().args(["referrers", &format!("{host}/app@{subject}")]));
        assert!(listed.trim().ends_with(" application/spdx+json") && listed.lines().count() == 1, "{listed}");
    }
    let inspected: Value =
        serde_json::from_str(&ok(hoist().args(["inspect", "--json", &format!("{host}/app@{}", images[0])]))).unwrap();
    assert_eq!(inspected["referrers"], 1, "{inspected}");
}

#[test]
fn build_sbom_push_without_an_output_pushes_the_image_and_its_sboms() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let registry = Registry::start();
    let target = format!("{}/app:v1", registry.host());
    // No --output: the build goes into a scratch layout that also holds the SBOMs.
    let report: Value = serde_json::from_str(&ok(hoist()
        .current_dir(work.path())
        .args(APP_BUILD)
        .args(["--sbom", "--json", "--push", &target])))
    .unwrap();
    let pushed = report["digest"].as_str().unwrap().to_owned();
    // skopeo, a peer, reads the index and both platforms from the registry.
    let raw = crate::util::tool("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{target}")])
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    assert_eq!(format!("sha256:{:x}", Sha256::digest(&raw.stdout)), pushed, "the tag names what was built");
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let images = index["manifests"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{index}");
    for image in images {
        let subject = image["digest"].as_str().unwrap();
        let listed = ok(hoist().args(["referrers", &format!("{}/app@{subject}", registry.host())]));
        assert!(listed.trim().ends_with(" application/spdx+json") && listed.lines().count() == 1, "{listed}");
    }
}
