//! The image configuration (the OCI image config, Docker's container image JSON): typed for the
//! fields hoist writes, reads and merges; every other field kept as it was written, so a base
//! image's config passes into a new image unchanged but for what hoist sets.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A field as a document has it: absent, `null`, or a value. Docker writes `null` for lists and
/// maps it has none of (`"Entrypoint": null`, `"Labels": null`); keeping that apart from absent
/// keeps a base image's config byte for byte. Use with
/// `#[serde(default, skip_serializing_if = "Field::is_absent")]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the document.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value.
    Present(T),
}

impl<T> Field<T> {
    /// Whether the document does not have it.
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, if it has one (not absent, not `null`).
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Present(value) => Some(value),
            Field::Absent | Field::Null => None,
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    /// A value, or absent.
    fn from(value: Option<T>) -> Field<T> {
        value.map_or(Field::Absent, Field::Present)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field<T>, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Field::Null, Field::Present))
    }
}

/// The `{}` of a Go `map[string]struct{}` (`ExposedPorts`, `Volumes`): what a value holds is
/// not read, and written as `{}`, as docker does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A set written as a JSON object of `{}` values: `{"8080/tcp": {}}`.
pub type GoSet = BTreeMap<String, Empty>;

/// An image configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// CPU architecture: `amd64`, `arm64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system: `linux`, `windows`.
    #[serde(default)]
    pub os: String,
    /// Operating system version (Windows).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// CPU variant: `v7`, `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How a container from the image runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// The layers' diff_ids.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per step that made the image, layers or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Any other field (`author`, `os.features`, Docker's `container_config`, …), kept as
    /// written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a container from the image runs (the config's `config` object, in Docker's field names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// User (and group): `65532`, `65532:65532`, `nonroot`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub user: Field<String>,
    /// Exposed ports: `8080/tcp`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub exposed_ports: Field<GoSet>,
    /// `KEY=VALUE` environment entries.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub env: Field<Vec<String>>,
    /// The program and its first arguments.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub entrypoint: Field<Vec<String>>,
    /// Default arguments (or the program, without an entrypoint).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cmd: Field<Vec<String>>,
    /// Volume mount points.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub volumes: Field<GoSet>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub working_dir: Field<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub labels: Field<BTreeMap<String, String>>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stop_signal: Field<String>,
    /// Any other field (`Healthcheck`, `Shell`, `OnBuild`, …), kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The layers of an image, by the digests of their uncompressed tars.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    /// The diff_ids, bottom first, as written (a base's pass on unread).
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

fn layers() -> String {
    "layers".to_owned()
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs { kind: layers(), diff_ids: Vec::new() }
    }
}

/// One step that made an image, for `docker history`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub created: Field<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub author: Field<String>,
    /// What made it.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub created_by: Field<String>,
    /// A note.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub comment: Field<String>,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub empty_layer: Field<bool>,
    /// Any other field, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_nulls_round_trip() {
        let text = r#"{"architecture":"amd64","author":"a","config":{"ArgsEscaped":true,"Cmd":null,"Entrypoint":["/e"],"Env":[],"ExposedPorts":{"22/tcp":{}},"Labels":null,"OnBuild":null},"history":[{"comment":null,"created_by":"x","empty_layer":true,"x":1}],"os":"linux","os.features":["f"],"rootfs":{"diff_ids":["sha256:b1"],"type":"layers"}}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        let run = config.config.as_ref().unwrap();
        assert_eq!(run.cmd, Field::Null);
        assert_eq!(run.entrypoint.value().unwrap(), &["/e"]);
        assert!(run.user.is_absent());
        assert_eq!(crate::json::canonical(&config, "t").unwrap(), text.as_bytes());
        let minimal: ImageConfig = serde_json::from_str(r#"{"os":"linux"}"#).unwrap();
        assert_eq!(
            crate::json::canonical(&minimal, "t").unwrap(),
            br#"{"architecture":"","os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
        );
    }
}
