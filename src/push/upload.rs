//! One blob's way into a registry: HEAD, mount, or upload (monolithic or chunked), resuming
//! from what the registry holds after a failure, and starting over when the session is gone.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::PlannedBlob;
use super::{BlobOutcome, Context};
use crate::error::{Error, Result};
use crate::registry::write::{ChunkOutcome, FileRange, FinishOutcome, Started};
use crate::registry::RegistryError;

/// Where an upload stands between attempts.
#[derive(Debug, Default)]
struct Upload {
    /// The session URL, when one is open.
    session: Option<String>,
    /// Bytes the registry holds in the session.
    offset: u64,
    /// The offset must be asked for before continuing (a chunk failed midway).
    unsure: bool,
    /// Send the whole blob in one PUT (small blob, or the registry refuses chunks).
    whole: bool,
    /// Never send the whole blob in one PUT (the registry refused a large one).
    chunks_only: bool,
    /// Chunk size, raised to the registry's minimum.
    chunk: u64,
}

/// Pushes one blob; `progress` counts bytes sent.
pub async fn push_blob(context: &Context<'_>, blob: &PlannedBlob, progress: Arc<AtomicU64>) -> Result<BlobOutcome> {
    let what = format!("blob {}", blob.digest);
    let (registry, repository) = (context.registry, context.repository);
    let exists = context
        .options
        .retry
        .run(&what, &context.retries, || context.client.blob_exists(registry, repository, &blob.digest))
        .await?;
    if exists {
        return Ok(BlobOutcome::Skipped);
    }
    if context.options.dry_run {
        return Ok(BlobOutcome::Pushed);
    }
    if let Some(from) = &blob.remote {
        // A base layer: mounted from its repository in the same registry, streamed from
        // another registry, never downloaded to disk.
        if from.registry == registry || !blob.path.exists() {
            let size = blob.size;
            context
                .options
                .retry
                .run(&what, &context.retries, || {
                    crate::copy::copy_blob(context.client, from, &blob.digest, size, registry, repository)
                })
                .await?;
            return Ok(if from.registry == registry { BlobOutcome::Mounted } else { BlobOutcome::Pushed });
        }
    }
    let mut upload = Upload { chunk: context.options.chunk_size.max(1), ..Upload::default() };
    for from in &context.options.mount_from {
        let started = context
            .options
            .retry
            .run(&what, &context.retries, || {
                context.client.start_upload(registry, repository, Some((&blob.digest, from)))
            })
            .await?;
        match started {
            Started::Mounted => return Ok(BlobOutcome::Mounted),
            Started::Session { url, min_chunk } => {
                upload.session = Some(url);
                upload.chunk = upload.chunk.max(min_chunk.unwrap_or(0));
            }
        }
    }
    let mut attempt = 0;
    loop {
        match attempt_upload(context, blob, &mut upload, &progress).await {
            Ok(()) => return Ok(BlobOutcome::Pushed),
            Err(error) => {
                upload.unsure = true;
                attempt = context.options.retry.next_attempt(&what, attempt, error, &context.retries).await?;
            }
        }
    }
}

async fn attempt_upload(
    context: &Context<'_>,
    blob: &PlannedBlob,
    upload: &mut Upload,
    progress: &Arc<AtomicU64>,
) -> Result<()> {
    let (client, registry, repository) = (context.client, context.registry, context.repository);
    loop {
        let url = match (&upload.session, upload.unsure) {
            (None, _) => match client.start_upload(registry, repository, None).await? {
                Started::Session { url, min_chunk } => {
                    upload.chunk = upload.chunk.max(min_chunk.unwrap_or(0));
                    upload.offset = 0;
                    upload.session = Some(url.clone());
                    url
                }
                Started::Mounted => return Ok(()),
            },
            (Some(url), true) => match client.upload_offset(registry, repository, url).await? {
                Some((held, next)) => {
                    tracing::info!("resuming {} at byte {held} of {}", blob.digest, blob.size);
                    upload.offset = held;
                    upload.session = Some(next.clone());
                    next
                }
                None => {
                    upload.session = None;
                    continue;
                }
            },
            (Some(url), false) => url.clone(),
        };
        upload.unsure = false;
        upload.whole = !upload.chunks_only && (upload.whole || blob.size <= upload.chunk);
        if upload.whole {
            let body = FileRange { path: blob.path.clone(), offset: 0, length: blob.size };
            let finished = guard(
                context,
                progress,
                client.finish_upload(registry, repository, &url, &blob.digest, Some(&body), Arc::clone(progress)),
            )
            .await?;
            match finished {
                FinishOutcome::Done => return Ok(()),
                FinishOutcome::SessionGone => upload.session = None,
                FinishOutcome::TooLarge => {
                    upload.chunks_only = true;
                    upload.session = None;
                }
            }
            continue;
        }
        let mut url = url;
        while upload.offset < blob.size {
            let length = upload.chunk.min(blob.size - upload.offset);
            let chunk = FileRange { path: blob.path.clone(), offset: upload.offset, length };
            match guard(
                context,
                progress,
                client.upload_chunk(registry, repository, &url, &chunk, Arc::clone(progress)),
            )
            .await?
            {
                ChunkOutcome::Accepted { url: next, held } => {
                    url = next;
                    upload.offset = held;
                    upload.session = Some(url.clone());
                }
                ChunkOutcome::SessionGone => {
                    upload.session = None;
                    break;
                }
                ChunkOutcome::Refused => {
                    tracing::info!("{registry} does not take chunks; sending {} in one request", blob.digest);
                    upload.whole = true;
                    upload.session = None;
                    break;
                }
                ChunkOutcome::OutOfSync => {
                    upload.unsure = true;
                    break;
                }
            }
        }
        if upload.session.is_none() || upload.unsure || upload.offset < blob.size {
            continue;
        }
        match client.finish_upload(registry, repository, &url, &blob.digest, None, Arc::clone(progress)).await? {
            FinishOutcome::Done => return Ok(()),
            FinishOutcome::SessionGone | FinishOutcome::TooLarge => upload.session = None,
        }
    }
}

/// Runs a request whose body counts into `progress`, cutting it when the count stands still for
/// the stall timeout. A slow transfer that moves is never cut; waiting for the response after
/// the body is covered by the client's read timeout.
async fn guard<T>(context: &Context<'_>, progress: &AtomicU64, request: impl Future<Output = Result<T>>) -> Result<T> {
    let stall = context.options.stall_timeout;
    tokio::pin!(request);
    let mut last = progress.load(Ordering::Relaxed);
    let mut moved_at = Instant::now();
    let tick = (stall / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut request => return result,
            _ = tokio::time::sleep(tick) => {
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    moved_at = Instant::now();
                } else if moved_at.elapsed() >= stall {
                    return Err(Error::Registry(RegistryError::Stalled {
                        registry: context.registry.to_owned(),
                        seconds: stall.as_secs(),
                    }));
                }
            }
        }
    }
}
