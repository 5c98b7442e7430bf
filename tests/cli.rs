//! Small commands: `hoist ref`, help and usage errors.

use crate::util::{fails, hoist, ok};

#[test]
fn ref_prints_the_parts_and_the_normalized_form() {
    let parsed: serde_json::Value = serde_json::from_str(&ok(hoist().args(["ref", "ubuntu"]))).unwrap();
    assert_eq!(parsed["registry"], "docker.io");
    assert_eq!(parsed["repository"], "library/ubuntu");
    assert_eq!(parsed["tag"], "latest");
    assert_eq!(parsed["digest"], serde_json::Value::Null);
    assert_eq!(parsed["normalized"], "docker.io/library/ubuntu:latest");

    let digest = format!("sha256:{}", "a".repeat(64));
    let reference = format!("localhost:5000/team/app@{digest}");
    let parsed: serde_json::Value = serde_json::from_str(&ok(hoist().args(["ref", &reference]))).unwrap();
    assert_eq!(parsed["registry"], "localhost:5000");
    assert_eq!(parsed["repository"], "team/app");
    assert_eq!(parsed["tag"], serde_json::Value::Null);
    assert_eq!(parsed["digest"], digest.as_str());
}

#[test]
fn an_invalid_reference_is_a_one_line_error() {
    let error = fails(hoist().args(["ref", "Foo/Bar:tag"]));
    assert!(error.contains("Foo/Bar:tag") && error.contains("lowercase"), "{error}");
}

#[test]
fn help_lists_the_commands() {
    let help = ok(hoist().arg("--help"));
    assert!(help.contains("build") && help.contains("ref"));
}
