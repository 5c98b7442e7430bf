//! Validation of every JSON document in a layout against the OCI image-spec schemas.

use std::path::{Path, PathBuf};

use jsonschema::{Retrieve, Uri};
use serde_json::Value;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/oci-schema")
}

/// Serves the schemas' cross references (`defs.json`, `content-descriptor.json`, ...) from
/// testdata, whatever base URI they were resolved against.
struct LocalSchemas;

impl Retrieve for LocalSchemas {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or_default().to_owned();
        let text = std::fs::read_to_string(schema_dir().join(&name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Asserts that `document` is valid under the schema file `schema`.
pub fn assert_valid(schema: &str, document: &Value) {
    let text = std::fs::read_to_string(schema_dir().join(schema)).unwrap();
    let schema_value: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::options()
        .with_retriever(LocalSchemas)
        .build(&schema_value)
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"));
    let errors: Vec<String> = validator.iter_errors(document).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{schema} rejects {document}:\n{}", errors.join("\n"));
}

/// Validates `oci-layout`, `index.json` and every manifest, index and config reachable from it.
/// Returns how many documents were checked.
pub fn validate_layout(layout: &Path) -> usize {
    assert_valid("image-layout-schema.json", &super::read_json(&layout.join("oci-layout")));
    let index = super::read_json(&layout.join("index.json"));
    assert_valid("image-index-schema.json", &index);
    let mut checked = 2;
    let mut pending: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    while let Some(descriptor) = pending.pop() {
        let digest = descriptor["digest"].as_str().unwrap();
        let document = super::blob_json(layout, digest);
        match descriptor["mediaType"].as_str().unwrap() {
            "application/vnd.oci.image.index.v1+json" => {
                assert_valid("image-index-schema.json", &document);
                pending.extend(document["manifests"].as_array().unwrap().iter().cloned());
            }
            "application/vnd.oci.image.manifest.v1+json" => {
                assert_valid("image-manifest-schema.json", &document);
                pending.push(document["config"].clone());
            }
            "application/vnd.oci.image.config.v1+json" => assert_valid("config-schema.json", &document),
            // An artifact's config (OCI 1.1): exactly `{}`.
            "application/vnd.oci.empty.v1+json" => assert_eq!(document, serde_json::json!({}), "{digest}"),
            other => panic!("unexpected media type {other}"),
        }
        checked += 1;
    }
    checked
}

#[test]
fn the_schemas_reject_an_invalid_manifest() {
    let bad = serde_json::json!({ "schemaVersion": 2, "config": { "digest": "nope" }, "layers": [] });
    let result = std::panic::catch_unwind(|| assert_valid("image-manifest-schema.json", &bad));
    assert!(result.is_err(), "a manifest without layers and with a bad digest must fail validation");
}

/// Asserts that `document` is valid under the SPDX 2.3 JSON schema vendored in
/// `testdata/spdx-schema/` (see SOURCE.md there).
pub fn assert_valid_spdx(document: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/spdx-schema/spdx-2.3-schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options().build(&schema).unwrap_or_else(|e| panic!("SPDX schema: {e}"));
    let errors: Vec<String> = validator.iter_errors(document).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "the SPDX 2.3 schema rejects the SBOM:\n{}", errors.join("\n"));
    // The schema checks shapes only; the SPDX reference validator checks the rules between
    // elements too (a package's files, its verification code).
    let file = tempfile::Builder::new().suffix(".spdx.json").tempfile().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(document).unwrap()).unwrap();
    let out = crate::util::tool("pyspdxtools").arg("-i").arg(file.path()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !said.contains("invalid"), "pyspdxtools rejects the SBOM:\n{said}");
}
