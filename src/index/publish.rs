//! Publishing an index to a registry: children brought into the target repository first
//! (mounted within a registry, streamed across registries, pushed from layouts), then the index
//! by digest, then the tag; and amending a tag so that concurrent writers do not lose entries.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{entries_of, merge, remove_platform, render, Entry, Format, MergeOptions};
use crate::amend::{Amend, Round};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph;
use crate::location::Location;
use crate::model::{RawManifest, MAX_MANIFEST_BYTES};
use crate::platform::Platform;
use crate::reference::{ManifestRef, Reference};
use crate::registry::{Client, RegistryError};
use crate::sink::{RegistrySink, Sink, UploadOptions};
use crate::source;
use crate::transfer::{transfer, Silent, TransferOptions};

/// Where an index goes: a repository and, usually, a tag.
#[derive(Clone, Debug)]
pub struct Target {
    /// Registry host.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Tag to point at the index.
    pub tag: Option<String>,
}

impl Target {
    /// From a reference.
    pub fn of(reference: &Reference) -> Target {
        Target {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            tag: reference.tag.clone(),
        }
    }

    fn reference(&self) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: None,
        }
    }
}

/// Makes every entry's content available in the target repository, through the transfer
/// engine: mounted within a registry, streamed across registries, uploaded from layouts.
pub async fn bring_children(
    client: &Client,
    entries: &mut [Entry],
    target: &Target,
    options: &IndexOptions,
) -> Result<()> {
    let reference = target.reference();
    let sink = RegistrySink::new(client, &reference, options.upload.clone());
    for entry in entries.iter_mut() {
        let Some(location) = entry.source.clone() else { continue };
        if location.is_repository_of(&reference) {
            continue;
        }
        let from = source::open_async(&location.at_digest(entry.digest()), client).await?;
        let root = from.manifest(entry.digest()).await?;
        let plan = graph::plan(from.as_ref(), root, None).await?;
        transfer(&plan, from.as_ref(), &sink, &[], &options.transfer, &Silent).await?;
        entry.source = Some(Location::Registry(Reference { tag: None, digest: None, ..reference.clone() }));
    }
    Ok(())
}

/// What an amend changes: entries to add, platforms to remove.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// Entries to add (replacing same-platform ones).
    pub add: Vec<Entry>,
    /// Platforms to remove.
    pub remove: Vec<Platform>,
}

/// How an index write behaves.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// Merge rules.
    pub merge: MergeOptions,
    /// OCI or Docker; by default what the children call for.
    pub format: Option<Format>,
    /// Start from nothing rather than what the tag names (`index create`).
    pub create: bool,
    /// Tries of read-merge-write when other writers interfere.
    pub tries: u32,
    /// How long to wait before checking that the write stuck; by default
    /// a few times the measured read-merge-write time (200 ms to 1.5 s).
    pub settle: Option<Duration>,
    /// How children are brought in.
    pub transfer: TransferOptions,
    /// How their blobs go up.
    pub upload: UploadOptions,
    /// Annotations to set on the index (added to, or replacing, those it has).
    pub annotations: BTreeMap<String, String>,
    /// Write an index with no platform left when removals empty it (refused otherwise).
    pub allow_empty: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            merge: MergeOptions { keep_duplicates: false, no_attestations: false },
            format: None,
            create: false,
            tries: 10,
            settle: None,
            transfer: TransferOptions::default(),
            upload: UploadOptions::default(),
            annotations: BTreeMap::new(),
            allow_empty: false,
        }
    }
}

/// The entries and annotations of the index the target's tag names now (`None`: no such tag).
pub async fn current(client: &Client, target: &Target) -> Result<Option<(Vec<Entry>, BTreeMap<String, String>)>> {
    Ok(read_current(client, target).await?.map(|found| (found.entries, found.annotations)))
}

/// The index a tag names now, as an amend needs it.
struct Found {
    entries: Vec<Entry>,
    annotations: BTreeMap<String, String>,
    digest: Digest,
    format: Format,
}

impl Found {
    /// Whether writing `entries`, `annotations` in `format` would give this same index.
    fn is(&self, entries: &[Entry], annotations: &BTreeMap<String, String>, format: Format) -> bool {
        self.entries.len() == entries.len()
            && self.entries.iter().zip(entries).all(|(a, b)| a.descriptor == b.descriptor)
            && self.annotations == *annotations
            && self.format == format
    }
}

async fn read_current(client: &Client, target: &Target) -> Result<Option<Found>> {
    let reference = target.reference();
    // Straight from the registry, never a mirror: a stale copy would make an amend drop entries.
    let Some(digest) = client.manifest_digest(&target.registry, &target.repository, &reference.manifest_ref()).await?
    else {
        return Ok(None);
    };
    let manifest = client.get_manifest_direct(&reference.at_digest(&digest)).await?;
    if !manifest.media_type.is_index() {
        return Err(Error::invalid(
            "index",
            reference.to_string(),
            "it is a single image manifest, not an index; make one with `hoist index create TARGET REF...`",
        ));
    }
    let format = match manifest.media_type.is_docker() {
        true => Format::Docker,
        false => Format::Oci,
    };
    let here = Location::Registry(Reference { tag: None, digest: None, ..reference });
    let (entries, annotations) = entries_of(&manifest.bytes, Some(&here))?;
    Ok(Some(Found { entries, annotations, digest: manifest.digest, format }))
}

/// Applies `change` to the target's index and publishes it, safely against concurrent writers:
/// registries have no compare-and-swap, so after the tag is written hoist waits a moment, reads
/// it back, and if another writer replaced it with an index that lacks this change, merges
/// again onto what is there and writes again (up to `tries` times, with jitter).
///
/// A tag that does not exist yet is created when the change only adds (the first of several
/// parallel `index add` runs). A change that leaves the index as it is writes nothing and
/// returns the digest the tag already names.
pub async fn amend(client: &Client, target: &Target, mut change: Change, options: &IndexOptions) -> Result<Digest> {
    bring_children(client, &mut change.add, target, options).await?;
    let sink = RegistrySink::new(client, &target.reference(), options.upload.clone());
    let mut rounds = IndexAmend { client, target, change, options, sink, create: options.create };
    let what = target.reference().to_string();
    crate::amend::run(&mut rounds, &what, options.tries, options.settle).await
}

/// An amend of the target's index: the rounds of [`amend`].
struct IndexAmend<'a> {
    client: &'a Client,
    target: &'a Target,
    change: Change,
    options: &'a IndexOptions,
    sink: RegistrySink<'a>,
    /// Start from nothing rather than what the tag names (the first round of `index create`).
    create: bool,
}

impl IndexAmend<'_> {
    /// The entries, annotations and format of the index with the change applied to `found`.
    fn merged(&self, found: Option<&Found>) -> Result<(Vec<Entry>, BTreeMap<String, String>, Format)> {
        let (change, options, target) = (&self.change, self.options, self.target);
        // A missing tag is created: the first of several parallel `index add` runs.
        let (base, mut annotations) = found.map(|f| (f.entries.clone(), f.annotations.clone())).unwrap_or_default();
        annotations.extend(options.annotations.clone());
        let mut entries = merge(base, change.add.clone(), options.merge);
        for platform in &change.remove {
            entries = remove_platform(entries, platform)?;
        }
        if entries.iter().all(|e| e.attests().is_some()) && !change.remove.is_empty() && !options.allow_empty {
            return Err(Error::invalid(
                "platform",
                change.remove.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                format!(
                    "removing it would leave {} with no platform, which no runtime can pull; pass --allow-empty to write an empty index anyway",
                    target.reference()
                ),
            ));
        }
        let format = options.format.unwrap_or_else(|| Format::for_entries(&entries));
        Ok((entries, annotations, format))
    }
}

impl Amend for IndexAmend<'_> {
    /// The digest of the index written.
    type Written = Digest;
    /// The digest the tag names once the change is in.
    type Done = Digest;

    async fn write(&mut self) -> Result<Round<Digest, Digest>> {
        let (client, target) = (self.client, self.target);
        // Only the first round of `index create` starts from nothing.
        let create = std::mem::take(&mut self.create);
        let found = match create {
            true => None,
            false => read_current(client, target).await?,
        };
        if found.is_none() && !create && !self.change.remove.is_empty() {
            return Err(RegistryError::NotFound {
                registry: target.registry.clone(),
                what: format!("index {}", target.reference()),
                message: "no such tag, so there is no platform to remove".into(),
            }
            .into());
        }
        let (entries, annotations, format) = self.merged(found.as_ref())?;
        if let Some(found) = found.filter(|f| f.is(&entries, &annotations, format)) {
            tracing::info!("{} already has every change; nothing written", target.reference());
            return Ok(Round::Done(found.digest));
        }
        let bytes = render(&entries, format, &annotations)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge {
                registry: target.registry.clone(),
                what: "index".into(),
                limit: MAX_MANIFEST_BYTES,
            }
            .into());
        }
        let index = RawManifest::new(bytes, Some(format.media_type()), "index")?;
        self.sink.put_manifest(&index).await?;
        let Some(tag) = &target.tag else { return Ok(Round::Done(index.digest)) };
        // Straight to the PUT (no HEAD first): the shorter the read-merge-write, the smaller
        // the window in which another writer can slip in.
        client.put_manifest(&target.registry, &target.repository, &ManifestRef::Tag(tag.clone()), &index).await?;
        Ok(Round::Written(index.digest))
    }

    async fn check(&mut self, written: Digest) -> Result<Option<Digest>> {
        let (client, target) = (self.client, self.target);
        match current(client, target).await? {
            Some((now, _)) if satisfies(&now, &self.change) => {
                let head = client
                    .head_manifest_scoped(&target.reference(), &crate::registry::pull_scope(&target.repository))
                    .await?;
                Ok(Some(head.map(|h| h.digest).unwrap_or(written)))
            }
            _ => Ok(None),
        }
    }
}

/// Whether `entries` contain every added image and none of the removed platforms.
fn satisfies(entries: &[Entry], change: &Change) -> bool {
    let added =
        change.add.iter().filter(|e| e.attests().is_none()).all(|a| entries.iter().any(|e| e.digest() == a.digest()));
    let removed = change.remove.iter().all(|p| !entries.iter().any(|e| e.is_image_for(p)));
    added && removed
}
