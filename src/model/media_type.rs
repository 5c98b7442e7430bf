//! Media types: the OCI and Docker variants hoist handles, and any other kept as text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A media type. Known ones are variants; anything else is kept as it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerList,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig,
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd,
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip,
    /// `application/vnd.oci.empty.v1+json`: the `{}` config of artifacts.
    OciEmpty,
    /// Any other media type, as written (empty when a document named none).
    Other(String),
}

const KNOWN: [(MediaType, &str); 11] = [
    (MediaType::OciIndex, OCI_INDEX),
    (MediaType::OciManifest, OCI_MANIFEST),
    (MediaType::DockerList, DOCKER_LIST),
    (MediaType::DockerManifest, DOCKER_MANIFEST),
    (MediaType::OciConfig, "application/vnd.oci.image.config.v1+json"),
    (MediaType::DockerConfig, "application/vnd.docker.container.image.v1+json"),
    (MediaType::OciLayerGzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
    (MediaType::OciLayerZstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
    (MediaType::OciLayer, "application/vnd.oci.image.layer.v1.tar"),
    (MediaType::DockerLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    (MediaType::OciEmpty, "application/vnd.oci.empty.v1+json"),
];

impl MediaType {
    /// The media type as written.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::Other(text) => text,
            known => KNOWN.iter().find(|(k, _)| k == known).map_or("", |(_, text)| text),
        }
    }

    /// An index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerList)
    }

    /// An image manifest (OCI or Docker schema2).
    pub fn is_image(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// An index or an image manifest: something fetched from `/manifests/`.
    pub fn is_manifest(&self) -> bool {
        self.is_index() || self.is_image()
    }

    /// Whether it is one of Docker's types.
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }

    /// The media types hoist asks registries for, in order of preference.
    pub fn accepted() -> [MediaType; 4] {
        [MediaType::OciIndex, MediaType::OciManifest, MediaType::DockerList, MediaType::DockerManifest]
    }
}

impl From<&str> for MediaType {
    fn from(text: &str) -> MediaType {
        let text = text.split(';').next().unwrap_or(text).trim();
        KNOWN
            .iter()
            .find(|(_, known)| *known == text)
            .map_or_else(|| MediaType::Other(text.to_owned()), |(k, _)| k.clone())
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MediaType, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(MediaType::from(text.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_round_trip_and_others_are_kept() {
        for (kind, text) in KNOWN.iter() {
            assert_eq!(&MediaType::from(*text), kind);
            assert_eq!(kind.as_str(), *text);
        }
        let other = MediaType::from("application/vnd.example+json");
        assert_eq!(other.as_str(), "application/vnd.example+json");
        assert_eq!(MediaType::from("application/vnd.oci.image.index.v1+json; charset=utf-8"), MediaType::OciIndex);
        assert!(MediaType::DockerList.is_index() && MediaType::OciManifest.is_image());
        assert!(!MediaType::OciConfig.is_manifest());
    }
}
