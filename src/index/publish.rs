//! Publishing an index to a registry: children brought into the target repository first
//! (mounted within a registry, streamed across registries, pushed from layouts), then the index
//! by digest, then the tag; and amending a tag so that concurrent writers do not lose entries.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::{
    entries_of, is_index, merge, remove_platform, render, Entry, Format, MergeOptions, DOCKER_LIST, OCI_INDEX,
};
use crate::copy::copy_manifest;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::platform::Platform;
use crate::push::{plan, push, PushOptions, Silent};
use crate::reference::Reference;
use crate::registry::read::MAX_MANIFEST_BYTES;
use crate::registry::{Client, RegistryError};

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

    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
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

/// Makes every entry's content available in the target repository.
pub async fn bring_children(
    client: &Client,
    entries: &mut [Entry],
    target: &Target,
    options: &PushOptions,
) -> Result<()> {
    let retries = AtomicU32::new(0);
    for entry in entries.iter_mut() {
        let Some(source) = entry.source.clone() else { continue };
        if source == target.name() {
            continue;
        }
        let digest: Digest = entry.digest().parse()?;
        if let Some(dir) = source.strip_prefix("oci:") {
            let layout = Layout::open(dir)?;
            let plan = plan(&layout, &digest, entry.media_type(), &Default::default())?;
            push(client, &plan, &target.registry, &target.repository, &[], options, &Silent).await?;
        } else {
            let from: Reference = Reference::parse(&source)?;
            copy_manifest(client, &from, &digest, &target.registry, &target.repository, options, &retries).await?;
        }
        entry.source = Some(target.name());
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
    /// How long to wait before checking that the write stuck.
    pub settle: Duration,
    /// Push settings for bringing children in.
    pub push: PushOptions,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            merge: MergeOptions { keep_duplicates: false, no_attestations: false },
            format: None,
            create: false,
            tries: 10,
            settle: Duration::from_millis(1500),
            push: PushOptions::default(),
        }
    }
}

/// The entries and annotations of the index the target's tag names now (`None`: no such tag).
pub async fn current(client: &Client, target: &Target) -> Result<Option<(Vec<Entry>, BTreeMap<String, String>)>> {
    let reference = target.reference();
    // Straight from the registry, never a mirror: a stale copy would make an amend drop entries.
    let Some(digest) =
        client.manifest_digest(&target.registry, &target.repository, target.tag.as_deref().unwrap_or("latest")).await?
    else {
        return Ok(None);
    };
    let manifest = client
        .get_manifest_direct(&Reference { tag: None, digest: Some(digest.to_string()), ..reference.clone() })
        .await?;
    if !is_index(&manifest.media_type) {
        return Err(Error::invalid(
            "index",
            reference.to_string(),
            "it is a single image manifest, not an index; make one with `hoist index create TARGET REF...`",
        ));
    }
    let (entries, annotations) = entries_of(&manifest.bytes, None)?;
    Ok(Some((entries.into_iter().map(|e| Entry { source: Some(target.name()), ..e }).collect(), annotations)))
}

/// Applies `change` to the target's index and publishes it, safely against concurrent writers:
/// registries have no compare-and-swap, so after the tag is written hoist waits a moment, reads
/// it back, and if another writer replaced it with an index that lacks this change, merges
/// again onto what is there and writes again (up to `tries` times, with jitter).
pub async fn amend(client: &Client, target: &Target, mut change: Change, options: &IndexOptions) -> Result<Digest> {
    bring_children(client, &mut change.add, target, &options.push).await?;
    let mut create = options.create;
    for attempt in 0..options.tries.max(1) {
        let retries = AtomicU32::new(0);
        let retry = &options.push.retry;
        let read = || retry.run("read the index", &retries, || current(client, target));
        let (base, annotations) = match (create, read().await?) {
            (true, _) => (Vec::new(), BTreeMap::new()),
            (false, Some(found)) => found,
            (false, None) => {
                return Err(Error::invalid(
                    "index",
                    target.reference().to_string(),
                    "no such tag to amend; create it with `hoist index create`",
                ))
            }
        };
        create = false;
        let mut entries = merge(base, change.add.clone(), options.merge);
        for platform in &change.remove {
            entries = remove_platform(entries, platform)?;
        }
        let format = options.format.unwrap_or_else(|| Format::for_entries(&entries));
        let bytes = render(&entries, format, &annotations)?;
        let digest = Digest::of(&bytes);
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge {
                registry: target.registry.clone(),
                what: "index".into(),
                limit: MAX_MANIFEST_BYTES,
            }
            .into());
        }
        let media_type = if format == Format::Docker { DOCKER_LIST } else { OCI_INDEX };
        let digest_text = digest.to_string();
        retry
            .run("index", &retries, || {
                client.put_manifest(&target.registry, &target.repository, &digest_text, media_type, &bytes)
            })
            .await?;
        let Some(tag) = &target.tag else { return Ok(digest) };
        retry
            .run("tag", &retries, || client.put_manifest(&target.registry, &target.repository, tag, media_type, &bytes))
            .await?;
        tokio::time::sleep(options.settle.mul_f64(1.0 + crate::push::retry::jitter())).await;
        match read().await? {
            Some((now, _)) if satisfies(&now, &change) => {
                let reference = target.reference();
                let head = client.head_manifest(&reference).await?;
                return Ok(head.map(|h| h.digest).unwrap_or(digest));
            }
            _ => tracing::warn!("another writer replaced {} (try {}); merging again", target.reference(), attempt + 1),
        }
    }
    Err(Error::invalid(
        "index",
        target.reference().to_string(),
        format!("other writers kept replacing it; gave up after {} tries — rerun", options.tries),
    ))
}

/// Whether `entries` contain every added image and none of the removed platforms.
fn satisfies(entries: &[Entry], change: &Change) -> bool {
    let added =
        change.add.iter().filter(|e| e.attests().is_none()).all(|a| entries.iter().any(|e| e.digest() == a.digest()));
    let removed = change
        .remove
        .iter()
        .all(|p| !entries.iter().any(|e| e.attests().is_none() && e.platform().is_some_and(|q| q.matches(p))));
    added && removed
}
