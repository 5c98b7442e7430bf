//! Multi-platform image indexes: entries, merging by platform, and rendering as an OCI image
//! index or a Docker manifest list.
//!
//! An image whose platform already has an entry replaces it. Attestation manifests (BuildKit's
//! `unknown/unknown` entries with `vnd.docker.reference.type`) follow the image they describe:
//! they go when it is replaced and come with it when it is added.

pub mod publish;
pub mod resolve;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::Reference;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation that marks an attestation manifest.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the image an attestation describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// Whether a media type is an index or list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// One entry of an index, and the repository its content can be fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The descriptor as it will stand in the index (mediaType, digest, size, platform,
    /// annotations).
    pub descriptor: Map<String, Value>,
    /// Where the child lives (`registry/repository`), when it is not yet in the target.
    pub source: Option<String>,
}

impl Entry {
    /// An entry for a manifest.
    pub fn new(
        media_type: &str,
        digest: &Digest,
        size: u64,
        platform: Option<&PlatformSpec>,
        source: Option<String>,
    ) -> Entry {
        let mut descriptor = Map::new();
        descriptor.insert("mediaType".into(), media_type.into());
        descriptor.insert("digest".into(), digest.to_string().into());
        descriptor.insert("size".into(), size.into());
        if let Some(platform) = platform {
            descriptor.insert("platform".into(), platform.to_json());
        }
        Entry { descriptor, source }
    }

    /// Its digest.
    pub fn digest(&self) -> &str {
        self.descriptor.get("digest").and_then(Value::as_str).unwrap_or_default()
    }

    /// Its media type.
    pub fn media_type(&self) -> &str {
        self.descriptor.get("mediaType").and_then(Value::as_str).unwrap_or_default()
    }

    /// Its platform, if the descriptor has one.
    pub fn platform(&self) -> Option<PlatformSpec> {
        self.descriptor.get("platform").and_then(|p| serde_json::from_value(p.clone()).ok())
    }

    /// Sets its platform.
    pub fn set_platform(&mut self, platform: &PlatformSpec) {
        self.descriptor.insert("platform".into(), platform.to_json());
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.descriptor.get("annotations")?.get(key)?.as_str()
    }

    /// The digest of the image this attestation describes, if it is one.
    pub fn attests(&self) -> Option<&str> {
        self.annotation(REFERENCE_TYPE)?;
        self.annotation(REFERENCE_DIGEST)
    }
}

/// A platform as indexes write it, with the optional OS details docker supports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSpec {
    /// Architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// OS version (Windows).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// From an `os/arch[/variant]` platform.
    pub fn from_platform(platform: &Platform) -> PlatformSpec {
        PlatformSpec {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            ..PlatformSpec::default()
        }
    }

    /// Whether two entries are for the same platform (`linux/arm64` and `linux/arm64/v8` are).
    pub fn same_as(&self, other: &PlatformSpec) -> bool {
        let variant = |p: &PlatformSpec| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) | (_, None) => None,
            (_, v) => v.map(str::to_owned),
        };
        self.os == other.os
            && self.architecture == other.architecture
            && variant(self) == variant(other)
            && self.os_version == other.os_version
    }

    /// Whether it matches a user-given `os/arch[/variant]`.
    pub fn matches(&self, platform: &Platform) -> bool {
        self.same_as(&PlatformSpec::from_platform(platform))
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// How to treat attestation entries of added indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeOptions {
    /// Keep an existing entry for a platform that is added again.
    pub keep_duplicates: bool,
    /// Leave attestation manifests out.
    pub no_attestations: bool,
}

/// Adds `added` to `existing`: an image replaces the entries for its platform (and their
/// attestations) unless `keep_duplicates`; an entry with the same digest is not added twice.
pub fn merge(existing: Vec<Entry>, added: Vec<Entry>, options: MergeOptions) -> Vec<Entry> {
    let mut entries = existing;
    let (attestations, images): (Vec<Entry>, Vec<Entry>) = added.into_iter().partition(|e| e.attests().is_some());
    for image in images {
        let replaced: Vec<String> = match (&image.platform(), options.keep_duplicates) {
            (Some(platform), false) => entries
                .iter()
                .filter(|e| e.attests().is_none() && e.platform().is_some_and(|p| p.same_as(platform)))
                .map(|e| e.digest().to_owned())
                .collect(),
            _ => Vec::new(),
        };
        entries.retain(|e| {
            !replaced.iter().any(|d| d == e.digest() || e.attests() == Some(d.as_str())) && e.digest() != image.digest()
        });
        entries.push(image);
    }
    if !options.no_attestations {
        for attestation in attestations {
            let described = entries.iter().any(|e| Some(e.digest()) == attestation.attests());
            if described && !entries.iter().any(|e| e.digest() == attestation.digest()) {
                entries.push(attestation);
            }
        }
    }
    entries
}

/// The image entry (not an attestation) for `platform`.
pub fn find_platform<'a>(entries: &'a [Entry], platform: &Platform) -> Option<&'a Entry> {
    entries.iter().find(|e| e.attests().is_none() && e.platform().is_some_and(|p| p.matches(platform)))
}

/// The platforms of the images in `entries`, comma-separated, for error messages.
pub fn platform_list(entries: &[Entry]) -> String {
    let platforms: Vec<String> =
        entries.iter().filter(|e| e.attests().is_none()).filter_map(|e| e.platform()).map(|p| p.to_string()).collect();
    platforms.join(", ")
}

/// Removes the image for `platform` and its attestations. Errors when there is none.
pub fn remove_platform(entries: Vec<Entry>, platform: &Platform) -> Result<Vec<Entry>> {
    let removed: Vec<String> = entries
        .iter()
        .filter(|e| e.attests().is_none() && e.platform().is_some_and(|p| p.matches(platform)))
        .map(|e| e.digest().to_owned())
        .collect();
    if removed.is_empty() {
        let present = platform_list(&entries);
        return Err(Error::invalid(
            "platform",
            platform.to_string(),
            format!("the index has no such entry; it has: {present}"),
        ));
    }
    Ok(entries
        .into_iter()
        .filter(|e| !removed.iter().any(|d| d == e.digest() || e.attests() == Some(d.as_str())))
        .collect())
}

/// The index format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An OCI image index.
    Oci,
    /// A Docker manifest list.
    Docker,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "oci" => Ok(Format::Oci),
            "docker" => Ok(Format::Docker),
            _ => Err(Error::invalid("format", s, "use oci or docker")),
        }
    }
}

impl Format {
    /// The format the children call for: a Docker list when every image is Docker schema2.
    pub fn for_entries(entries: &[Entry]) -> Format {
        let images: Vec<&Entry> = entries.iter().filter(|e| e.attests().is_none()).collect();
        if !images.is_empty() && images.iter().all(|e| e.media_type() == DOCKER_MANIFEST) {
            Format::Docker
        } else {
            Format::Oci
        }
    }

    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }
}

/// The index document's bytes: compact JSON in the registry's usual key order.
pub fn render(entries: &[Entry], format: Format, annotations: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let manifests: Vec<Value> = entries.iter().map(|e| Value::Object(e.descriptor.clone())).collect();
    let mut document = json!({ "schemaVersion": 2, "mediaType": format.media_type(), "manifests": manifests });
    if !annotations.is_empty() && format == Format::Oci {
        document["annotations"] = json!(annotations);
    }
    crate::json::canonical(&document, "image index")
}

/// The entries of an index document.
pub fn entries_of(bytes: &[u8], source: Option<&Reference>) -> Result<(Vec<Entry>, BTreeMap<String, String>)> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|source| Error::Json { what: "image index".into(), source })?;
    let annotations =
        document.get("annotations").and_then(|a| serde_json::from_value(a.clone()).ok()).unwrap_or_default();
    let entries = document
        .get("manifests")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|d| d.as_object().cloned())
                .map(|descriptor| Entry { descriptor, source: source.map(Reference::name) })
                .collect()
        })
        .unwrap_or_default();
    Ok((entries, annotations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(arch: &str, content: &str) -> Entry {
        let platform = PlatformSpec { architecture: arch.into(), os: "linux".into(), ..Default::default() };
        Entry::new(OCI_MANIFEST, &Digest::of(content.as_bytes()), 100, Some(&platform), None)
    }

    fn attestation_for(target: &Entry, content: &str) -> Entry {
        let platform = PlatformSpec { architecture: "unknown".into(), os: "unknown".into(), ..Default::default() };
        let mut entry = Entry::new(OCI_MANIFEST, &Digest::of(content.as_bytes()), 50, Some(&platform), None);
        entry.descriptor.insert(
            "annotations".into(),
            json!({ REFERENCE_TYPE: "attestation-manifest", REFERENCE_DIGEST: target.digest() }),
        );
        entry
    }

    fn digests(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| e.digest().to_owned()).collect()
    }

    const DEFAULT: MergeOptions = MergeOptions { keep_duplicates: false, no_attestations: false };

    #[test]
    fn same_platform_replaces_and_never_duplicates() {
        let (amd_old, arm, amd_new) = (image("amd64", "a1"), image("arm64", "r1"), image("amd64", "a2"));
        let merged = merge(vec![amd_old.clone(), arm.clone()], vec![amd_new.clone()], DEFAULT);
        assert_eq!(digests(&merged), digests(&[arm.clone(), amd_new.clone()]));
        let again = merge(merged.clone(), vec![amd_new.clone()], DEFAULT);
        assert_eq!(digests(&again), digests(&merged), "adding the same image twice changes nothing");
        let kept =
            merge(vec![amd_old.clone()], vec![amd_new.clone()], MergeOptions { keep_duplicates: true, ..DEFAULT });
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn attestations_follow_their_image() {
        let amd = image("amd64", "a1");
        let amd_attestation = attestation_for(&amd, "att-a1");
        let amd_new = image("amd64", "a2");
        let new_attestation = attestation_for(&amd_new, "att-a2");
        let merged =
            merge(vec![amd.clone(), amd_attestation.clone()], vec![amd_new.clone(), new_attestation.clone()], DEFAULT);
        assert_eq!(
            digests(&merged),
            digests(&[amd_new.clone(), new_attestation]),
            "old image and its attestation gone"
        );
        let without = merge(
            vec![],
            vec![amd_new.clone(), attestation_for(&amd_new, "x")],
            MergeOptions { no_attestations: true, ..DEFAULT },
        );
        assert_eq!(digests(&without), digests(std::slice::from_ref(&amd_new)));
        let removed = remove_platform(merged, &"linux/amd64".parse().unwrap()).unwrap();
        assert!(removed.is_empty(), "removing a platform removes its attestation");
    }

    #[test]
    fn removing_a_missing_platform_lists_what_is_there() {
        let err = remove_platform(vec![image("amd64", "a")], &"linux/s390x".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("linux/amd64"), "{err}");
    }

    #[test]
    fn format_follows_the_children_and_renders_valid_documents() {
        let mut docker = image("amd64", "d");
        docker.descriptor.insert("mediaType".into(), DOCKER_MANIFEST.into());
        assert_eq!(Format::for_entries(&[docker.clone()]), Format::Docker);
        assert_eq!(Format::for_entries(&[docker, image("arm64", "o")]), Format::Oci);
        let bytes = render(&[image("amd64", "a")], Format::Oci, &BTreeMap::from([("k".into(), "v".into())])).unwrap();
        let (entries, annotations) = entries_of(&bytes, None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(annotations["k"], "v");
        assert!(String::from_utf8(bytes).unwrap().contains(OCI_INDEX));
    }

    #[test]
    fn arm64_v8_is_arm64() {
        let plain = PlatformSpec { architecture: "arm64".into(), os: "linux".into(), ..Default::default() };
        let v8 = PlatformSpec { variant: Some("v8".into()), ..plain.clone() };
        assert!(plain.same_as(&v8));
        let v7 = PlatformSpec { architecture: "arm".into(), variant: Some("v7".into()), ..plain.clone() };
        let v6 = PlatformSpec { variant: Some("v6".into()), ..v7.clone() };
        assert!(!v7.same_as(&v6));
    }
}
