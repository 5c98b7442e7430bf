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

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::model::{Descriptor, ImageIndex, MediaType, RawManifest};
use crate::platform::Platform;

pub use crate::model::descriptor::{attests, find_platform, platform_list, REFERENCE_DIGEST, REFERENCE_TYPE};

/// One entry of an index, and where its content can be read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The descriptor as it will stand in the index.
    pub descriptor: Descriptor,
    /// Where the child lives, when it is not yet in the target.
    pub source: Option<Location>,
}

impl Entry {
    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    /// Its media type.
    pub fn media_type(&self) -> &MediaType {
        &self.descriptor.media_type
    }

    /// Its platform, if the descriptor has one.
    pub fn platform(&self) -> Option<&Platform> {
        self.descriptor.platform.as_ref()
    }

    /// The digest of the image this attestation describes, if it is one.
    pub fn attests(&self) -> Option<&str> {
        attests(&self.descriptor)
    }

    fn attests_digest(&self, digest: &Digest) -> bool {
        self.attests() == Some(digest.to_string().as_str())
    }

    fn is_image_for(&self, platform: &Platform) -> bool {
        self.attests().is_none() && self.platform().is_some_and(|p| p.same_as(platform))
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
///
/// Order is stable: a replacing image takes the place of the first entry it replaces, and an
/// image already there stays where it is, so adding what is there changes nothing.
pub fn merge(existing: Vec<Entry>, added: Vec<Entry>, options: MergeOptions) -> Vec<Entry> {
    let mut entries = existing;
    let (attestations, images): (Vec<Entry>, Vec<Entry>) = added.into_iter().partition(|e| e.attests().is_some());
    for image in images {
        let replaced: Vec<Digest> = match (image.platform(), options.keep_duplicates) {
            (Some(platform), false) => entries
                .iter()
                .filter(|e| e.is_image_for(platform) && e.digest() != image.digest())
                .map(|e| e.digest().clone())
                .collect(),
            _ => Vec::new(),
        };
        let goes = |e: &Entry| e.digest() == image.digest() || replaced.iter().any(|d| d == e.digest());
        let slot = entries.iter().position(|e| goes(e) && e.attests().is_none());
        let mut kept = Vec::with_capacity(entries.len() + 1);
        for (at, entry) in entries.into_iter().enumerate() {
            if Some(at) == slot {
                kept.push(image.clone());
            }
            if !goes(&entry) && !replaced.iter().any(|d| entry.attests_digest(d)) {
                kept.push(entry);
            }
        }
        if slot.is_none() {
            kept.push(image);
        }
        entries = kept;
    }
    if !options.no_attestations {
        for attestation in attestations {
            let described = entries.iter().any(|e| Some(e.digest().to_string().as_str()) == attestation.attests());
            if described && !entries.iter().any(|e| e.digest() == attestation.digest()) {
                entries.push(attestation);
            }
        }
    }
    entries
}

/// Removes the image for `platform` and its attestations. Errors when there is none.
pub fn remove_platform(entries: Vec<Entry>, platform: &Platform) -> Result<Vec<Entry>> {
    let removed: Vec<Digest> =
        entries.iter().filter(|e| e.is_image_for(platform)).map(|e| e.digest().clone()).collect();
    if removed.is_empty() {
        let descriptors: Vec<Descriptor> = entries.iter().map(|e| e.descriptor.clone()).collect();
        return Err(Error::PlatformNotFound {
            what: "the index".into(),
            platform: platform.to_string(),
            available: platform_list(&descriptors),
        });
    }
    Ok(entries.into_iter().filter(|e| !removed.iter().any(|d| d == e.digest() || e.attests_digest(d))).collect())
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
        if !images.is_empty() && images.iter().all(|e| *e.media_type() == MediaType::DockerManifest) {
            Format::Docker
        } else {
            Format::Oci
        }
    }

    /// Its media type.
    pub fn media_type(self) -> MediaType {
        match self {
            Format::Oci => MediaType::OciIndex,
            Format::Docker => MediaType::DockerList,
        }
    }
}

/// The index document's bytes: compact JSON with sorted keys.
pub fn render(entries: &[Entry], format: Format, annotations: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(format.media_type()),
        manifests: entries.iter().map(|e| e.descriptor.clone()).collect(),
        annotations: match format {
            Format::Oci => annotations.clone(),
            Format::Docker => BTreeMap::new(),
        },
    };
    crate::json::canonical(&index, "image index")
}

/// `root` written as `format`: an OCI index becomes a Docker manifest list (all its images
/// must be Docker schema2) and the other way; anything else comes back as it is. The digest
/// changes with the media type.
pub fn convert(root: &RawManifest, format: Format) -> Result<RawManifest> {
    if !root.media_type.is_index() || root.media_type == format.media_type() {
        return Ok(root.clone());
    }
    let (entries, annotations) = entries_of(&root.bytes, None)?;
    if format == Format::Docker {
        if let Some(other) = entries.iter().find(|e| *e.media_type() != MediaType::DockerManifest) {
            return Err(Error::invalid(
                "format",
                "docker",
                format!(
                    "a Docker manifest list holds only Docker schema2 images, and {} is {}",
                    other.digest(),
                    other.media_type()
                ),
            ));
        }
    }
    RawManifest::new(render(&entries, format, &annotations)?, Some(format.media_type()), "index")
}

/// The entries and annotations of an index document; each entry's content lives at `source`.
pub fn entries_of(bytes: &[u8], source: Option<&Location>) -> Result<(Vec<Entry>, BTreeMap<String, String>)> {
    let index: ImageIndex = serde_json::from_slice(bytes).map_err(|source| Error::Malformed {
        what: "image index".into(),
        reason: crate::text::printable(&source.to_string()),
    })?;
    let entries = index.manifests.into_iter().map(|descriptor| Entry { descriptor, source: source.cloned() }).collect();
    Ok((entries, index.annotations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, content: &str, size: u64) -> Entry {
        let platform = Platform { os: os.into(), architecture: arch.into(), ..Default::default() };
        let descriptor = Descriptor::new(MediaType::OciManifest, Digest::of(content.as_bytes()), size);
        Entry { descriptor: descriptor.with_platform(Some(platform)), source: None }
    }

    fn image(arch: &str, content: &str) -> Entry {
        entry("linux", arch, content, 100)
    }

    fn attestation_for(target: &Entry, content: &str) -> Entry {
        let mut entry = entry("unknown", "unknown", content, 50);
        entry.descriptor.annotations.insert(REFERENCE_TYPE.into(), "attestation-manifest".into());
        entry.descriptor.annotations.insert(REFERENCE_DIGEST.into(), target.digest().to_string());
        entry
    }

    fn digests(entries: &[Entry]) -> Vec<Digest> {
        entries.iter().map(|e| e.digest().clone()).collect()
    }

    const DEFAULT: MergeOptions = MergeOptions { keep_duplicates: false, no_attestations: false };

    #[test]
    fn same_platform_replaces_and_never_duplicates() {
        let (amd_old, arm, amd_new) = (image("amd64", "a1"), image("arm64", "r1"), image("amd64", "a2"));
        let merged = merge(vec![amd_old.clone(), arm.clone()], vec![amd_new.clone()], DEFAULT);
        assert_eq!(digests(&merged), digests(&[amd_new.clone(), arm.clone()]), "replaced in place");
        let again = merge(merged.clone(), vec![amd_new.clone()], DEFAULT);
        assert_eq!(again, merged, "adding the same image twice changes nothing");
        let first_again = merge(merged.clone(), vec![arm.clone(), amd_new.clone()], DEFAULT);
        assert_eq!(first_again, merged, "re-adding every image keeps the order");
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
        docker.descriptor.media_type = MediaType::DockerManifest;
        assert_eq!(Format::for_entries(&[docker.clone()]), Format::Docker);
        assert_eq!(Format::for_entries(&[docker, image("arm64", "o")]), Format::Oci);
        let bytes = render(&[image("amd64", "a")], Format::Oci, &BTreeMap::from([("k".into(), "v".into())])).unwrap();
        let (entries, annotations) = entries_of(&bytes, None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(annotations["k"], "v");
        assert!(String::from_utf8(bytes).unwrap().contains(MediaType::OciIndex.as_str()));
    }
}
