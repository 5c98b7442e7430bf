//! Manifests and indexes: typed views kept beside the exact bytes they were read from, so a
//! digest never changes on a round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::Descriptor;
use super::media_type::MediaType;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Manifests and indexes larger than this are refused (the limit distribution and containerd
/// use).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// An image manifest (OCI or Docker schema2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Its media type, when the document says.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// Every blob it names: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageIndex {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Its media type, when the document says.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest or an index, parsed.
#[derive(Clone, Debug)]
pub enum Document {
    /// An image manifest.
    Image(Box<ImageManifest>),
    /// An index.
    Index(ImageIndex),
}

/// A manifest or index as it was read: media type, digest and exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// Media type, from the transport or the document.
    pub media_type: MediaType,
    /// sha256 of the exact bytes.
    pub digest: Digest,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

impl RawManifest {
    /// A manifest from its bytes; the media type is the one given, else the document's.
    pub fn new(bytes: Vec<u8>, media_type: Option<MediaType>) -> RawManifest {
        let media_type = media_type
            .filter(MediaType::is_manifest)
            .or_else(|| media_type_in(&bytes))
            .unwrap_or(MediaType::Other(String::new()));
        RawManifest { media_type, digest: Digest::of(&bytes), bytes }
    }

    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.bytes.len() as u64)
    }

    /// The typed document; `what` names it in errors.
    pub fn parse(&self, what: &str) -> Result<Document> {
        let json = |source: serde_json::Error| Error::Malformed {
            what: what.to_owned(),
            reason: crate::text::printable(&source.to_string()),
        };
        if self.media_type.is_index() {
            Ok(Document::Index(serde_json::from_slice(&self.bytes).map_err(json)?))
        } else if self.media_type.is_image() {
            Ok(Document::Image(Box::new(serde_json::from_slice(&self.bytes).map_err(json)?)))
        } else {
            Err(Error::Unsupported { what: what.to_owned(), media_type: self.media_type.to_string() })
        }
    }

    /// The index it is; an error naming `what` when it is an image.
    pub fn index(&self, what: &str) -> Result<ImageIndex> {
        match self.parse(what)? {
            Document::Index(index) => Ok(index),
            Document::Image(_) => {
                Err(Error::Unsupported { what: what.to_owned(), media_type: self.media_type.to_string() })
            }
        }
    }

    /// The image manifest it is; an error naming `what` when it is an index.
    pub fn image(&self, what: &str) -> Result<ImageManifest> {
        match self.parse(what)? {
            Document::Image(image) => Ok(*image),
            Document::Index(_) => {
                Err(Error::Unsupported { what: what.to_owned(), media_type: self.media_type.to_string() })
            }
        }
    }
}

fn media_type_in(bytes: &[u8]) -> Option<MediaType> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<MediaType>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe {
        Probe { media_type: Some(media_type), .. } => Some(media_type),
        // OCI allows documents without mediaType: tell them apart by their fields.
        Probe { manifests: Some(_), .. } => Some(MediaType::OciIndex),
        Probe { config: Some(_), .. } => Some(MediaType::OciManifest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_document_parses_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), index in proptest::bool::ANY) {
            let media_type = if index { MediaType::OciIndex } else { MediaType::OciManifest };
            let _ = RawManifest::new(bytes.clone(), Some(media_type)).parse("p");
            let _ = serde_json::from_slice::<ImageIndex>(&bytes);
        }

        #[test]
        fn documents_with_any_size_value_parse_without_panic(size in "-?[0-9]{0,25}(\\.[0-9]{0,3})?|true|false|null|\"[^\"]*\"") {
            let text = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","digest":"sha256:{}","size":{size}}}]}}"#, "a".repeat(64));
            let _ = RawManifest::new(text.into_bytes(), Some(MediaType::OciIndex)).parse("p");
        }
    }

    #[test]
    fn media_type_comes_from_the_document_when_the_transport_says_nothing_useful() {
        let index = RawManifest::new(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(), None);
        assert_eq!(index.media_type, MediaType::OciIndex);
        let image = RawManifest::new(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#
                .to_vec(),
            Some(MediaType::from("text/plain")),
        );
        assert_eq!(image.media_type, MediaType::DockerManifest);
        assert!(matches!(image.parse("x"), Err(Error::Malformed { .. })), "a config without digest is refused");
    }
}
