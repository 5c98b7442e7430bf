//! The transfer engine: every command that moves content runs through [`transfer`].
//!
//! The order keeps every tag honest: all blobs first (deduplicated by the plan, checked at the
//! sink, mounted or uploaded `jobs` at a time, each retried as a whole), then each manifest by
//! digest, children before parents, then the tags. A failure before the tags leaves every tag
//! as it was, and rerunning the same transfer skips what is there and finishes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use std::collections::HashSet;

use crate::cache::Cache;
use crate::compress::{compress_layers, Compressed};
use crate::digest::Digest;
use crate::error::Result;
use crate::graph::Plan;
use crate::layer::Compression;
use crate::model::{Descriptor, Document, RawManifest};
use crate::reference::ManifestRef;
use crate::registry::RetryPolicy;
use crate::sink::{BlobOutcome, Sink};
use crate::source::Source;

/// How a transfer behaves; the defaults are those of the command line.
#[derive(Clone, Debug)]
pub struct TransferOptions {
    /// Blobs in flight at once.
    pub jobs: usize,
    /// Retries of each blob.
    pub retry: RetryPolicy,
    /// Only look: report what would be sent, write nothing.
    pub dry_run: bool,
    /// Walk and check everything even when the destination already names the root.
    pub verify: bool,
    /// How uncompressed layers are compressed on their way to a registry, at
    /// `compression_level`; [`Compression::None`] sends them as they are (their digests, and so
    /// the image's, preserved).
    pub compression: Compression,
    /// The level of `compression`.
    pub compression_level: u32,
    /// hoist's cache, where compressed layers are kept for the next push; without one they go
    /// to unnamed temporary files.
    pub cache: Option<Cache>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            jobs: 4,
            retry: RetryPolicy::default(),
            dry_run: false,
            verify: false,
            compression: Compression::Gzip,
            compression_level: Compression::Gzip.default_level(),
            cache: None,
        }
    }
}

/// Told about a transfer as it goes, for progress displays.
pub trait Observer: Send + Sync {
    /// The plan is made: `bytes` of blobs to look at.
    fn planned(&self, _bytes: u64) {}
    /// A blob starts; `sent` counts its bytes as they go out.
    fn blob_started(&self, _digest: &Digest, _size: u64, _sent: Arc<AtomicU64>) {}
    /// A blob is done.
    fn blob_finished(&self, _digest: &Digest, _size: u64, _outcome: &BlobOutcome) {}
    /// A manifest (by digest) or tag is done; `written` is false when it was already there.
    fn manifest_finished(&self, _reference: &ManifestRef, _written: bool) {}
}

/// An observer that says nothing.
pub struct Silent;
impl Observer for Silent {}

/// What a transfer did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Digest of the root (what the tags name).
    pub digest: String,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Blobs already present.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Where each mounted blob came from, by digest.
    pub mounted_from: std::collections::BTreeMap<String, String>,
    /// The destination named the root already: nothing was walked or sent.
    pub up_to_date: bool,
    /// Bytes of the blobs uploaded.
    pub bytes_pushed: u64,
    /// Bytes not sent again: upload sessions a previous, killed run left were continued.
    pub bytes_resumed: u64,
    /// Manifests (and the index) written.
    pub manifests_pushed: usize,
    /// Manifests already present.
    pub manifests_skipped: usize,
    /// Tags written (or already right).
    pub tags: Vec<String>,
    /// Retries made.
    pub retries: u32,
    /// Wall time.
    pub seconds: f64,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Uncompressed layers compressed on the way (so the manifests that name them, and
    /// `digest`, changed). In a dry run, those that would be: nothing is compressed, so
    /// `digest` is then the source's, not the one a real run would send.
    pub layers_compressed: usize,
    /// The root's digest in the source, when compressing layers changed it: `digest` is what
    /// was sent instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
}

/// Sends `plan` from `source` to `sink`, then points each of `tags` at its root.
pub async fn transfer(
    plan: &Plan,
    source: &dyn Source,
    sink: &dyn Sink,
    tags: &[String],
    options: &TransferOptions,
    observer: &dyn Observer,
) -> Result<Report> {
    let started = Instant::now();
    observer.planned(plan.blob_bytes());
    let retries = AtomicU32::new(0);
    let root = plan.root();
    let mut report = Report { digest: root.digest.to_string(), dry_run: options.dry_run, ..Report::default() };

    // What was written here in this transfer: a manifest that names any of it cannot be
    // here yet, so it needs no HEAD first.
    let mut fresh: HashSet<Digest> = HashSet::new();
    let mut blobs = stream::iter(&plan.blobs)
        .map(|blob| {
            let retries = &retries;
            async move {
                let sent = Arc::new(AtomicU64::new(0));
                observer.blob_started(&blob.digest, blob.size, Arc::clone(&sent));
                let outcome = send_blob(blob, source, sink, options, &sent, retries).await?;
                observer.blob_finished(&blob.digest, blob.size, &outcome);
                Ok::<_, crate::Error>((blob, outcome))
            }
        })
        .buffer_unordered(options.jobs.max(1));
    // Once the run is stopped, the blobs in flight are waited for (each ends within the
    // grace), and what each left unfinished is told.
    let mut interrupted: Option<Interruption> = None;
    while let Some(result) = blobs.next().await {
        match result {
            Ok((blob, outcome)) => {
                if outcome != BlobOutcome::Skipped {
                    fresh.insert(blob.digest.clone());
                }
                report.count_blob(blob, outcome);
            }
            Err(crate::Error::Interrupted { stop, unfinished }) => {
                interrupted.get_or_insert((stop, Vec::new())).1.extend(unfinished);
            }
            Err(error) => return Err(error),
        }
    }
    drop(blobs);
    if let Some((stop, mut unfinished)) = interrupted {
        unfinished.sort_by(|a, b| a.digest.cmp(&b.digest));
        return Err(crate::Error::Interrupted { stop, unfinished });
    }
    // A registry's PUT by tag writes the root itself: it is not written by digest first.
    let by_tag = (!tags.is_empty() && sink.tag_writes_manifest()).then_some(&root.digest);
    send_manifests(plan, sink, options, observer, &mut fresh, &mut report, by_tag).await?;
    if !options.dry_run {
        let written = sink.tag(root, tags, fresh.contains(&root.digest)).await?;
        for (tag, written) in tags.iter().zip(written) {
            observer.manifest_finished(&ManifestRef::Tag(tag.clone()), written);
            report.tags.push(tag.clone());
        }
        sink.commit().await?;
    }
    report.retries = retries.load(Ordering::Relaxed).saturating_add(sink.retry_count());
    report.bytes_resumed = sink.resumed_bytes();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What stopped a transfer, and the blobs it left unfinished.
type Interruption = (crate::cancel::Stop, Vec<crate::cancel::Unfinished>);

/// Sends one blob unless the sink has it (nothing on a dry run), retrying as `options` say.
async fn send_blob(
    blob: &Descriptor,
    source: &dyn Source,
    sink: &dyn Sink,
    options: &TransferOptions,
    sent: &Arc<AtomicU64>,
    retries: &AtomicU32,
) -> Result<BlobOutcome> {
    if sink.has_blob(blob).await? {
        return Ok(BlobOutcome::Skipped);
    }
    if options.dry_run {
        return Ok(BlobOutcome::Pushed);
    }
    let what = format!("blob {}", blob.digest);
    let mut attempt = 0;
    loop {
        match sink.put_blob(blob, source, sent).await {
            Ok(outcome) => return Ok(outcome),
            Err(error) => attempt = options.retry.next_attempt(&what, attempt, error, retries).await?,
        }
    }
}

/// Writes the plan's manifests, children first, each unless the sink has it (nothing on a dry
/// run); a manifest naming something `fresh` is new without asking. The one `by_tag` names is
/// left to the tags, which write it.
async fn send_manifests(
    plan: &Plan,
    sink: &dyn Sink,
    options: &TransferOptions,
    observer: &dyn Observer,
    fresh: &mut HashSet<Digest>,
    report: &mut Report,
    by_tag: Option<&Digest>,
) -> Result<()> {
    for manifest in &plan.manifests {
        let new = names_any(manifest, fresh) || !sink.has_manifest(&manifest.digest).await?;
        let written = match new {
            false => false,
            true if options.dry_run || by_tag == Some(&manifest.digest) => true,
            true => {
                sink.put_manifest(manifest).await?;
                true
            }
        };
        if written {
            fresh.insert(manifest.digest.clone());
        }
        observer.manifest_finished(&ManifestRef::Digest(manifest.digest.clone()), written);
        match written {
            true => report.manifests_pushed += 1,
            false => report.manifests_skipped += 1,
        }
    }
    Ok(())
}

impl Report {
    /// Counts one blob's outcome.
    fn count_blob(&mut self, blob: &Descriptor, outcome: BlobOutcome) {
        match outcome {
            BlobOutcome::Pushed => {
                self.blobs_pushed += 1;
                self.bytes_pushed = self.bytes_pushed.saturating_add(blob.size);
            }
            BlobOutcome::Skipped => self.blobs_skipped += 1,
            BlobOutcome::Mounted(from) => {
                self.blobs_mounted += 1;
                self.mounted_from.insert(blob.digest.to_string(), from);
            }
        }
    }
}

/// Whether `manifest` names any of `digests` (its blobs, or an index's children).
fn names_any(manifest: &RawManifest, digests: &HashSet<Digest>) -> bool {
    match manifest.parse("manifest") {
        Ok(Document::Image(image)) => image.blobs().any(|b| digests.contains(&b.digest)),
        Ok(Document::Index(index)) => index.manifests.iter().any(|d| digests.contains(&d.digest)),
        Err(_) => false,
    }
}

/// Whether the sink already names `root` under every one of `tags` (by digest when there are
/// none): then there is nothing to send. One HEAD per tag.
async fn up_to_date(sink: &dyn Sink, root: &RawManifest, tags: &[String]) -> Result<bool> {
    let references: Vec<ManifestRef> = match tags.is_empty() {
        true => vec![ManifestRef::Digest(root.digest.clone())],
        false => tags.iter().cloned().map(ManifestRef::Tag).collect(),
    };
    for reference in &references {
        if sink.resolve(reference).await?.as_ref() != Some(&root.digest) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A report for a transfer that found the destination up to date.
fn nothing_to_do(root: &RawManifest, tags: &[String], dry_run: bool) -> Report {
    Report { digest: root.digest.to_string(), tags: tags.to_vec(), up_to_date: true, dry_run, ..Report::default() }
}

/// Sends `root` (read from `source`; with `platform`, that image of an index) to `sink` and
/// points `tags` at it: what push, copy and build --push do. A local source is planned (and
/// so checked) first; when the sink's tags already name what would be sent, nothing else
/// happens (unless `options.verify`). To a sink that wants them (a registry), uncompressed
/// layers are compressed first, which changes the digest (the report says so).
pub async fn copy(
    source: &dyn Source,
    sink: &dyn Sink,
    root: RawManifest,
    platform: Option<&crate::platform::Platform>,
    tags: &[String],
    options: &TransferOptions,
    observer: &dyn Observer,
) -> Result<Report> {
    let local = match source.seekable() {
        true => {
            let plan = crate::graph::plan(source, root.clone(), platform).await?;
            Some(prepare(source, sink, plan, options).await?)
        }
        false => None,
    };
    // What the tags will name: the plan's root (one platform's image with a platform).
    let target = match (&local, platform) {
        (Some((plan, _)), _) => Some(plan.root().clone()),
        (None, None) => Some(root.clone()),
        (None, Some(_)) => None,
    };
    let compressed_first = local.as_ref().and_then(|(_, compressed)| compressed.as_ref());
    if let Some(target) = target.filter(|_| !options.verify) {
        if up_to_date(sink, &target, tags).await? {
            return Ok(noted(nothing_to_do(&target, tags, options.dry_run), compressed_first));
        }
    }
    let (plan, compressed) = match local {
        Some(prepared) => prepared,
        None => {
            let plan = crate::graph::plan(source, root, platform).await?;
            let (plan, compressed) = prepare(source, sink, plan, options).await?;
            // Compressed layers make another root: perhaps sent already.
            if compressed.is_some() && !options.verify && up_to_date(sink, plan.root(), tags).await? {
                return Ok(noted(nothing_to_do(plan.root(), tags, options.dry_run), compressed.as_ref()));
            }
            (plan, compressed)
        }
    };
    let report = match &compressed {
        Some(compressed) => transfer(&plan, &compressed.source, sink, tags, options, observer).await?,
        None => transfer(&plan, source, sink, tags, options, observer).await?,
    };
    match options.dry_run && compresses(sink, options) {
        true => Ok(Report { layers_compressed: crate::compress::compressible_layers(&plan), ..report }),
        false => Ok(noted(report, compressed.as_ref())),
    }
}

/// Whether uncompressed layers are compressed on the way to `sink`.
fn compresses(sink: &dyn Sink, options: &TransferOptions) -> bool {
    sink.compresses_layers() && options.compression != Compression::None
}

/// `report`, saying what compressing layers did to the digest.
fn noted(report: Report, compressed: Option<&Compressed<'_>>) -> Report {
    match compressed {
        Some(compressed) => Report {
            layers_compressed: compressed.layers,
            source_digest: Some(compressed.source_root.to_string()),
            ..report
        },
        None => report,
    }
}

/// `plan`, with its uncompressed layers compressed when `sink` wants that and `options` allow
/// it (not in a dry run, which reads and writes no blob), and the source of what was
/// compressed.
async fn prepare<'a>(
    source: &'a dyn Source,
    sink: &dyn Sink,
    plan: Plan,
    options: &TransferOptions,
) -> Result<(Plan, Option<Compressed<'a>>)> {
    if options.dry_run || !compresses(sink, options) {
        return Ok((plan, None));
    }
    let (compression, level, cache) = (options.compression, options.compression_level, options.cache.as_ref());
    match compress_layers(&plan, source, compression, level, cache).await? {
        Some((rewritten, compressed)) => Ok((rewritten, Some(compressed))),
        None => Ok((plan, None)),
    }
}
