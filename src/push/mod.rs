//! Publishing a layout's image or index to a registry, in the order that keeps every tag
//! honest: all blobs first (deduplicated, HEAD-checked, mounted when possible, uploaded in
//! resumable chunks, `jobs` at a time), then each manifest by digest, children before parents,
//! then the tags. A failure before the tags leaves every tag as it was, and rerunning the same
//! push skips what is already there and finishes.

pub mod plan;
pub mod retry;
mod upload;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

pub use self::plan::{plan, Plan, PlannedBlob, PlannedManifest};
pub use self::retry::RetryPolicy;
use crate::digest::Digest;
use crate::error::Result;
use crate::registry::Client;

/// How a push behaves; the defaults are those of the command line.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Blobs in flight at once.
    pub jobs: usize,
    /// Blobs larger than this go up in chunks of this size.
    pub chunk_size: u64,
    /// Retries of each operation.
    pub retry: RetryPolicy,
    /// A transfer with no progress for this long is cut and retried.
    pub stall_timeout: Duration,
    /// Repositories of the same registry to mount blobs from.
    pub mount_from: Vec<String>,
    /// Only HEAD: report what would be sent.
    pub dry_run: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            jobs: 4,
            chunk_size: 8 << 20,
            retry: RetryPolicy::default(),
            stall_timeout: Duration::from_secs(60),
            mount_from: Vec::new(),
            dry_run: false,
        }
    }
}

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Uploaded (or, in a dry run, would be).
    Pushed,
    /// Already there.
    Skipped,
    /// Mounted from another repository.
    Mounted,
}

/// Told about a push as it goes, for progress displays.
pub trait PushObserver: Send + Sync {
    /// A blob starts; `sent` counts its bytes as they go out.
    fn blob_started(&self, _digest: &Digest, _size: u64, _sent: Arc<AtomicU64>) {}
    /// A blob is done.
    fn blob_finished(&self, _digest: &Digest, _size: u64, _outcome: BlobOutcome) {}
    /// A manifest or tag is done; `pushed` is false when it was already there.
    fn manifest_finished(&self, _reference: &str, _pushed: bool) {}
}

/// An observer that says nothing.
pub struct Silent;
impl PushObserver for Silent {}

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushReport {
    /// Digest of the root (what the tags name).
    pub digest: String,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Blobs already present.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Bytes of the blobs uploaded.
    pub bytes_pushed: u64,
    /// Manifests (and the index) PUT.
    pub manifests_pushed: usize,
    /// Manifests already present.
    pub manifests_skipped: usize,
    /// Tags written (or already right).
    pub tags: Vec<String>,
    /// Retries made.
    pub retries: u32,
    /// Wall time.
    pub seconds: f64,
    /// Whether only HEADs were sent.
    pub dry_run: bool,
}

/// Shared state of one push.
pub(crate) struct Context<'a> {
    client: &'a Client,
    registry: &'a str,
    repository: &'a str,
    options: &'a PushOptions,
    retries: AtomicU32,
}

/// Pushes `plan` to `registry/repository`, then points each of `tags` at its root.
pub async fn push(
    client: &Client,
    plan: &Plan,
    registry: &str,
    repository: &str,
    tags: &[String],
    options: &PushOptions,
    observer: &dyn PushObserver,
) -> Result<PushReport> {
    let started = Instant::now();
    let context = Context { client, registry, repository, options, retries: AtomicU32::new(0) };
    let mut report =
        PushReport { digest: plan.root().digest.to_string(), dry_run: options.dry_run, ..PushReport::default() };

    let mut uploads = stream::iter(&plan.blobs)
        .map(|blob| {
            let context = &context;
            async move {
                let sent = Arc::new(AtomicU64::new(0));
                observer.blob_started(&blob.digest, blob.size, Arc::clone(&sent));
                let outcome = upload::push_blob(context, blob, sent).await?;
                observer.blob_finished(&blob.digest, blob.size, outcome);
                Ok::<_, crate::Error>((blob.size, outcome))
            }
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some(result) = uploads.next().await {
        let (size, outcome) = result?;
        match outcome {
            BlobOutcome::Pushed => {
                report.blobs_pushed += 1;
                report.bytes_pushed += size;
            }
            BlobOutcome::Skipped => report.blobs_skipped += 1,
            BlobOutcome::Mounted => report.blobs_mounted += 1,
        }
    }
    drop(uploads);

    for manifest in &plan.manifests {
        let reference = manifest.digest.to_string();
        let pushed = put_manifest_once(&context, &reference, manifest).await?;
        observer.manifest_finished(&reference, pushed);
        match pushed {
            true => report.manifests_pushed += 1,
            false => report.manifests_skipped += 1,
        }
    }
    for tag in tags {
        let pushed = put_manifest_once(&context, tag, plan.root()).await?;
        observer.manifest_finished(tag, pushed);
        report.tags.push(tag.clone());
    }
    report.retries = context.retries.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// PUTs `manifest` under `reference` unless the registry already has it there. Returns whether
/// it was sent.
async fn put_manifest_once(context: &Context<'_>, reference: &str, manifest: &PlannedManifest) -> Result<bool> {
    let what = format!("manifest {}/{}:{reference}", context.registry, context.repository);
    let (client, registry, repository) = (context.client, context.registry, context.repository);
    let retry = &context.options.retry;
    let present =
        retry.run(&what, &context.retries, || client.manifest_digest(registry, repository, reference)).await?;
    if present.as_ref() == Some(&manifest.digest) || context.options.dry_run {
        return Ok(present.is_none());
    }
    retry
        .run(&what, &context.retries, || {
            client.put_manifest(registry, repository, reference, &manifest.media_type, &manifest.bytes)
        })
        .await?;
    Ok(true)
}
