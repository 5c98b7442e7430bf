//! Content descriptors: what a manifest or index says about the content it points at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::media_type::MediaType;
use crate::digest::Digest;
use crate::platform::Platform;

/// Descriptor sizes above this are refused (the OCI spec's int64).
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// An OCI content descriptor. Reading one refuses a size that is negative, not a number or
/// above int64, and a malformed digest. Fields hoist does not model (`urls`, `data`, …) are
/// kept as they were, so a descriptor round-trips unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// What the content is.
    #[serde(rename = "mediaType")]
    pub media_type: MediaType,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    #[serde(deserialize_with = "size")]
    pub size: u64,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "platform_object")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Any other field, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor of `media_type` content with `digest` and `size`.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor { media_type, digest, size, platform: None, annotations: BTreeMap::new(), extra: Map::new() }
    }

    /// The same descriptor with `platform`.
    pub fn with_platform(mut self, platform: Option<Platform>) -> Descriptor {
        self.platform = platform;
        self
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// The annotation that marks an attestation manifest.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the image an attestation describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The digest of the image an attestation descriptor describes, if it is one.
pub fn attests(descriptor: &Descriptor) -> Option<&str> {
    descriptor.annotation(REFERENCE_TYPE)?;
    descriptor.annotation(REFERENCE_DIGEST)
}

/// The image entry (not an attestation) for `platform`.
pub fn find_platform<'a>(entries: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|d| attests(d).is_none() && d.platform.as_ref().is_some_and(|p| p.same_as(platform)))
}

/// The platforms of the images in `entries`, comma-separated, for error messages.
pub fn platform_list(entries: &[Descriptor]) -> String {
    let platforms: Vec<String> = entries
        .iter()
        .filter(|d| attests(d).is_none())
        .filter_map(|d| d.platform.as_ref())
        .map(Platform::to_string)
        .collect();
    platforms.join(", ")
}

fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let size = u64::deserialize(deserializer)?;
    if size > MAX_SIZE {
        return Err(serde::de::Error::custom(format!("size {size} is larger than int64")));
    }
    Ok(size)
}

/// The platform object of descriptors: `architecture`, `os`, `os.version`, `os.features`,
/// `variant`.
mod platform_object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::platform::Platform;

    #[derive(Serialize, Deserialize)]
    struct Object {
        architecture: String,
        os: String,
        #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
        os_version: Option<String>,
        #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
        os_features: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    }

    pub fn serialize<S: Serializer>(platform: &Option<Platform>, serializer: S) -> Result<S::Ok, S::Error> {
        platform
            .as_ref()
            .map(|p| Object {
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                os_version: p.os_version.clone(),
                os_features: p.os_features.clone(),
                variant: p.variant.clone(),
            })
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Platform>, D::Error> {
        Ok(Option::<Object>::deserialize(deserializer)?.map(|o| Platform {
            os: o.os,
            architecture: o.architecture,
            variant: o.variant,
            os_version: o.os_version,
            os_features: o.os_features,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(size: &str) -> Result<Descriptor, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{DIGEST}","size":{size}}}"#
        ))
    }

    #[test]
    fn sizes_that_are_not_counts_are_refused() {
        assert_eq!(parse("0").unwrap().size, 0);
        for bad in ["-1", "false", "\"12\"", "1.5", "18446744073709551615", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_and_platforms_round_trip() {
        let text = format!(
            r#"{{"annotations":{{"a":"b"}},"digest":"{DIGEST}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}},"size":3,"urls":["x"]}}"#
        );
        let descriptor: Descriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(descriptor.platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(crate::json::canonical(&descriptor, "t").unwrap(), text.as_bytes());
    }
}
