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
    /// The type of artifact it is, for artifacts (OCI 1.1).
    #[serde(rename = "artifactType", default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
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
    /// The entries (required: an image manifest never reads as an empty index).
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
    /// A manifest or index from its bytes. `claimed` is what the transport or a descriptor says
    /// it is (a Content-Type, an index entry's `mediaType`); only manifest and index types
    /// count as claims. The document's own `mediaType` decides when it has one, else the claim,
    /// else its shape (`manifests` for an index, `config` for an image). A claim the document
    /// contradicts, and a document without the field its type requires, are refused
    /// ([`Error::Malformed`], naming `what`): an image is never read as an empty index.
    pub fn new(bytes: Vec<u8>, claimed: Option<MediaType>, what: &str) -> Result<RawManifest> {
        let media_type = media_type_of(&bytes, claimed.as_ref(), what)?;
        Ok(RawManifest { media_type, digest: Digest::of(&bytes), bytes })
    }

    /// The same document, checked against the media type a descriptor that points at it gives
    /// (an index entry, a layout's `index.json`): refused when they disagree, as in
    /// [`RawManifest::new`].
    pub fn described_as(self, claimed: &MediaType, what: &str) -> Result<RawManifest> {
        let media_type = media_type_of(&self.bytes, Some(claimed), what)?;
        Ok(RawManifest { media_type, ..self })
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

/// What a document says about itself: its `mediaType`, and which of the fields that tell an
/// index from an image it has.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<MediaType>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
}

/// The media type of `bytes`, as [`RawManifest::new`] decides it.
fn media_type_of(bytes: &[u8], claimed: Option<&MediaType>, what: &str) -> Result<MediaType> {
    let claimed = claimed.filter(|c| c.is_manifest());
    // Not a JSON object: the claim stands, and parsing says what is wrong.
    let Ok(probe) = serde_json::from_slice::<Probe>(bytes) else {
        return Ok(claimed.cloned().unwrap_or(MediaType::Other(String::new())));
    };
    let malformed = |reason: String| Error::Malformed { what: what.to_owned(), reason };
    // An index and an image at once (CVE-2021-41190): readers would disagree on what it is.
    if probe.manifests.is_some() && (probe.config.is_some() || probe.layers.is_some()) {
        let field = if probe.config.is_some() { "config" } else { "layers" };
        return Err(malformed(format!(
            "it has both \"manifests\" and \"{field}\", so it could be read as an index or as an image; refusing an ambiguous document"
        )));
    }
    let (media_type, said_by) = match (probe.media_type, claimed) {
        (Some(own), Some(claimed)) if own != *claimed => {
            return Err(malformed(format!("it was announced as {claimed} but its mediaType is {own}")))
        }
        (Some(own), _) => (own, "its mediaType is"),
        (None, Some(claimed)) => (claimed.clone(), "it was announced as"),
        // OCI allows documents without mediaType: tell them apart by their fields.
        (None, None) => match (&probe.manifests, &probe.config) {
            (Some(_), None) => (MediaType::OciIndex, ""),
            (None, Some(_)) => (MediaType::OciManifest, ""),
            _ => (MediaType::Other(String::new()), ""),
        },
    };
    let missing = match (&probe.manifests, &probe.config) {
        (None, _) if media_type.is_index() => Some("manifests"),
        (_, None) if media_type.is_image() => Some("config"),
        _ => None,
    };
    match missing {
        Some(field) => Err(malformed(format!("{said_by} {media_type} but it has no \"{field}\""))),
        None => Ok(media_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_document_parses_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), index in proptest::bool::ANY) {
            let media_type = if index { MediaType::OciIndex } else { MediaType::OciManifest };
            let _ = RawManifest::new(bytes.clone(), Some(media_type), "p").and_then(|m| m.parse("p"));
            let _ = serde_json::from_slice::<ImageIndex>(&bytes);
        }

        #[test]
        fn documents_with_any_size_value_parse_without_panic(size in "-?[0-9]{0,25}(\\.[0-9]{0,3})?|true|false|null|\"[^\"]*\"") {
            let text = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","digest":"sha256:{}","size":{size}}}]}}"#, "a".repeat(64));
            let _ = RawManifest::new(text.into_bytes(), Some(MediaType::OciIndex), "p").and_then(|m| m.parse("p"));
        }
    }

    #[test]
    fn media_type_comes_from_the_document_when_the_transport_says_nothing_useful() {
        let index = RawManifest::new(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(), None, "i").unwrap();
        assert_eq!(index.media_type, MediaType::OciIndex);
        let image = RawManifest::new(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#
                .to_vec(),
            Some(MediaType::from("text/plain")),
            "m",
        )
        .unwrap();
        assert_eq!(image.media_type, MediaType::DockerManifest);
        assert!(matches!(image.parse("x"), Err(Error::Malformed { .. })), "a config without digest is refused");
    }

    const IMAGE: &str = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

    #[test]
    fn an_image_announced_as_an_index_is_refused_not_read_as_an_empty_one() {
        let malformed = |result: Result<RawManifest>| match result {
            Err(Error::Malformed { what, reason }) => format!("{what}: {reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Without its own mediaType, the shape says image; the claim says index.
        let error = malformed(RawManifest::new(IMAGE.into(), Some(MediaType::OciIndex), "manifest r/a:1"));
        assert!(error.contains("manifest r/a:1") && error.contains(r#"no "manifests""#), "{error}");
        // With its own mediaType, the document and the claim disagree.
        let typed = IMAGE.replacen('{', r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","#, 1);
        let error = malformed(RawManifest::new(typed.clone().into(), Some(MediaType::DockerList), "m"));
        assert!(error.contains(MEDIA_LIST) && error.contains("its mediaType is"), "{error}");
        // The same document agrees with its descriptor, and a claim that is no manifest type
        // (application/json) is no claim.
        let image = RawManifest::new(typed.into(), Some(MediaType::from("application/json")), "m").unwrap();
        assert_eq!(image.media_type, MediaType::OciManifest);
        assert!(image.clone().described_as(&MediaType::OciManifest, "m").is_ok());
        malformed(image.described_as(&MediaType::OciIndex, "m"));
        // An index announced as an image, and an index that names no entries.
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        malformed(RawManifest::new(index.into(), Some(MediaType::DockerManifest), "m"));
        let empty = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        malformed(RawManifest::new(empty.into(), None, "m"));
        assert!(serde_json::from_str::<ImageIndex>(IMAGE).is_err(), "manifests is required");
    }

    #[test]
    fn a_document_both_index_and_image_is_refused_whatever_it_claims() {
        let both = IMAGE.replacen('{', r#"{"manifests":[],"#, 1);
        let typed = |media_type: &str| both.replacen('{', &format!(r#"{{"mediaType":"{media_type}","#), 1);
        let layers_only = r#"{"schemaVersion":2,"manifests":[],"layers":[]}"#.to_owned();
        for (bytes, claimed) in [
            (both.clone(), None),
            (both.clone(), Some(MediaType::OciIndex)),
            (both.clone(), Some(MediaType::OciManifest)),
            (typed("application/vnd.oci.image.index.v1+json"), None),
            (typed("application/vnd.oci.image.manifest.v1+json"), Some(MediaType::OciManifest)),
            (layers_only, Some(MediaType::OciIndex)),
        ] {
            match RawManifest::new(bytes.clone().into_bytes(), claimed, "m") {
                Err(Error::Malformed { reason, .. }) => assert!(reason.contains("both \"manifests\""), "{reason}"),
                other => panic!("{bytes}: expected a refusal, got {other:?}"),
            }
        }
    }

    const MEDIA_LIST: &str = super::super::media_type::DOCKER_LIST;
}
