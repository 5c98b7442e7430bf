//! A registry repository as a sink: blobs mounted when another repository of the registry has
//! them, else uploaded (one request, or resumable chunks from a seekable source), resuming
//! from what the registry holds after a failure and starting over when the session is gone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use reqwest::Url;
use sha2::{Digest as _, Sha256};

use super::{BlobOutcome, Sink};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::{Descriptor, RawManifest};
use crate::reference::{ManifestRef, Reference};
use crate::registry::write::{ChunkOutcome, FinishOutcome, Started, UploadBody};
use crate::registry::{Client, RegistryError};
use crate::resume::{Saved, Sessions};
use crate::source::Source;

/// How blobs go up.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// Send blobs larger than this in resumable chunks of this size (from seekable sources);
    /// `None`: each blob in one streamed request, chunks only where a registry asks for them.
    pub chunk_size: Option<u64>,
    /// A request body that makes no progress for this long is cut (and retried).
    pub stall_timeout: Duration,
    /// Repositories of the same registry to try mounting blobs from.
    pub mount_from: Vec<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions { chunk_size: None, stall_timeout: Duration::from_secs(60), mount_from: Vec::new() }
    }
}

/// Where one blob's upload stands between attempts.
#[derive(Default)]
struct Upload {
    /// Mounts were tried.
    started: bool,
    /// The session URL, when one is open.
    session: Option<Url>,
    /// Bytes the registry holds in the session.
    offset: u64,
    /// The offset must be asked for before continuing (an attempt failed midway).
    unsure: bool,
    /// Send the whole blob in one PUT.
    whole: bool,
    /// Never send the whole blob in one PUT (the registry refused a large one).
    chunks_only: bool,
    /// Chunk size, raised to the registry's minimum.
    chunk: u64,
    /// The most bytes sent into the session (a resume never starts beyond it).
    sent: u64,
    /// The hash of the bytes sent from 0 up to the count, while they run on without a gap.
    hashed: Option<(u64, Sha256)>,
    /// The length of a chunk the registry refused with 416, to tell a size cap from a lost
    /// offset once the registry says where it is.
    refused: Option<u64>,
    /// A resume from the registry's offset happened in this session.
    resumed: bool,
    /// The blob was started over once after the registry computed another digest.
    restarted: bool,
}

/// Remembered repositories tried for a mount, besides the source's own.
const REMEMBERED_MOUNTS: usize = 2;

/// Without `--chunk-size`, blobs up to this size go in one request and larger ones in chunks
/// of at least this size, so that a run killed from outside loses at most one chunk.
const DEFAULT_CHUNK: u64 = 64 << 20;

/// Without `--chunk-size`, a large blob goes in at most this many chunks (fewer requests;
/// a kill loses at most an eighth of it).
const AUTOMATIC_CHUNKS: u64 = 8;

/// The smallest chunk hoist shrinks to when a registry refuses larger ones.
const MIN_CHUNK: u64 = 1 << 20;

/// Recoveries inside one attempt before it counts as a failure.
const MAX_RECOVERIES: u32 = 8;

/// Writes into one repository of a registry.
pub struct RegistrySink<'a> {
    client: &'a Client,
    registry: String,
    repository: String,
    options: UploadOptions,
    uploads: Mutex<HashMap<Digest, Upload>>,
    /// The registry refused a mount for want of rights: stop asking.
    mounts_refused: AtomicBool,
    /// The largest chunk the registry took, once it refused a larger one.
    chunk_cap: AtomicU64,
    /// Upload sessions remembered across runs.
    sessions: Option<Sessions>,
    /// Bytes not sent again because a previous run's session was continued.
    resumed: AtomicU64,
}

impl<'a> RegistrySink<'a> {
    /// Writes into `reference`'s repository through `client`.
    pub fn new(client: &'a Client, reference: &Reference, options: UploadOptions) -> RegistrySink<'a> {
        RegistrySink {
            client,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            options,
            uploads: Mutex::new(HashMap::new()),
            mounts_refused: AtomicBool::new(false),
            chunk_cap: AtomicU64::new(u64::MAX),
            sessions: Sessions::from_environment().inspect(Sessions::clean),
            resumed: AtomicU64::new(0),
        }
    }

    /// Repositories of this registry that may hold `digest`: where the source has it, where
    /// hoist saw it before (at most [`REMEMBERED_MOUNTS`]), then `--mount-from`.
    fn mount_candidates(&self, source: &dyn Source, digest: &Digest) -> Vec<String> {
        if self.mounts_refused.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let origin = source.origin(digest).filter(|o| o.registry == self.registry).map(|o| o.repository);
        let remembered = self.client.places().map(|p| p.repositories(&self.registry, digest)).unwrap_or_default();
        let mut candidates: Vec<String> = Vec::new();
        let remembered = remembered.into_iter().take(REMEMBERED_MOUNTS);
        for from in origin.into_iter().chain(remembered).chain(self.options.mount_from.iter().cloned()) {
            if !candidates.contains(&from) && from != self.repository {
                candidates.push(from);
            }
        }
        candidates
    }

    /// Remembers that this repository has `digest`.
    fn remember(&self, digest: &Digest) {
        if let Some(places) = self.client.places() {
            places.record(&self.registry, &self.repository, digest);
        }
    }

    async fn attempt(
        &self,
        descriptor: &Descriptor,
        source: &dyn Source,
        upload: &mut Upload,
        progress: &Arc<AtomicU64>,
    ) -> Result<BlobOutcome> {
        let (client, registry, repository) = (self.client, self.registry.as_str(), self.repository.as_str());
        let digest = &descriptor.digest;
        if !upload.started {
            let automatic = DEFAULT_CHUNK.max(descriptor.size.div_ceil(AUTOMATIC_CHUNKS));
            upload.chunk =
                self.options.chunk_size.unwrap_or(automatic).max(1).min(self.chunk_cap.load(Ordering::Relaxed));
            if self.continue_saved(descriptor, upload).await {
                return self.attempt_from_session(descriptor, source, upload, progress).await;
            }
            for from in self.mount_candidates(source, digest) {
                match client.start_upload(registry, repository, Some((digest, &from))).await {
                    Ok(Started::Mounted) => return Ok(BlobOutcome::Mounted(from)),
                    Ok(Started::Session { url, min_chunk }) => {
                        upload.session = Some(url);
                        upload.chunk = upload.chunk.max(min_chunk.unwrap_or(0));
                        upload.hashed = Some((0, Sha256::new()));
                    }
                    Err(Error::Registry(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                        tracing::info!("{registry} refused to mount from {from}; uploading instead");
                        self.mounts_refused.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            upload.started = true;
        }
        self.attempt_from_session(descriptor, source, upload, progress).await
    }

    /// Takes over the session a previous run left for this blob, when the registry still holds
    /// it: the upload goes on from the offset the registry reports (never from the saved
    /// number alone). Returns whether it did.
    async fn continue_saved(&self, descriptor: &Descriptor, upload: &mut Upload) -> bool {
        let (client, registry, repository) = (self.client, self.registry.as_str(), self.repository.as_str());
        let Some(sessions) = &self.sessions else { return false };
        let Some(saved) = sessions.claim(registry, repository, &descriptor.digest) else { return false };
        let Ok(endpoint) = client.endpoint(registry).await else { return false };
        let Some(url) = Url::parse(&saved.url).ok().filter(|u| crate::registry::same_origin(u, &endpoint.base)) else {
            sessions.forget(registry, repository, &descriptor.digest);
            return false;
        };
        match client.upload_offset(registry, repository, &url).await {
            Ok(Some((held, next))) if held > 0 && held <= descriptor.size => {
                tracing::warn!(
                    "{}: continuing the upload a previous run left, from byte {held} of {}",
                    descriptor.digest,
                    descriptor.size
                );
                upload.session = Some(next);
                upload.offset = held;
                upload.sent = held;
                upload.resumed = true;
                upload.started = true;
                self.resumed.fetch_add(held, Ordering::Relaxed);
                true
            }
            _ => {
                sessions.forget(registry, repository, &descriptor.digest);
                false
            }
        }
    }

    /// Remembers the session after an accepted chunk, for a run that follows a kill.
    fn save_session(&self, digest: &Digest, url: &Url, confirmed: u64) {
        if let Some(sessions) = &self.sessions {
            sessions.save(&Saved {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                digest: digest.clone(),
                url: url.to_string(),
                confirmed,
            });
        }
    }

    /// Forgets the saved session: the blob is committed or present.
    fn forget_session(&self, digest: &Digest) {
        if let Some(sessions) = &self.sessions {
            sessions.forget(&self.registry, &self.repository, digest);
        }
    }

    async fn attempt_from_session(
        &self,
        descriptor: &Descriptor,
        source: &dyn Source,
        upload: &mut Upload,
        progress: &Arc<AtomicU64>,
    ) -> Result<BlobOutcome> {
        let (client, registry, repository) = (self.client, self.registry.as_str(), self.repository.as_str());
        let digest = &descriptor.digest;
        // Every way of recovering inside one attempt (a new session, asking the offset, a
        // switch between one request and chunks) is counted: a registry that keeps sending
        // hoist back without progress ends the attempt, and the engine's retries bound it.
        let mut recoveries = 0u32;
        loop {
            if recoveries > MAX_RECOVERIES {
                return Err(RegistryError::NoProgress {
                    registry: registry.to_owned(),
                    what: format!("blob {digest}"),
                }
                .into());
            }
            recoveries += 1;
            let url = match (&upload.session, upload.unsure) {
                (None, _) => match client.start_upload(registry, repository, None).await? {
                    Started::Session { url, min_chunk } => {
                        upload.chunk = upload.chunk.max(min_chunk.unwrap_or(0));
                        upload.offset = 0;
                        upload.sent = 0;
                        upload.hashed = Some((0, Sha256::new()));
                        upload.session = Some(url.clone());
                        url
                    }
                    Started::Mounted => return Ok(BlobOutcome::Pushed),
                },
                (Some(url), true) => match client.upload_offset(registry, repository, url).await? {
                    Some((held, _)) if upload.whole && held > 0 => {
                        // Part of a one-request upload: a new session, not an append.
                        upload.session = None;
                        continue;
                    }
                    Some((held, next)) => {
                        // Never beyond what was sent: a registry that over-reports would make
                        // hoist skip bytes.
                        let held = held.min(upload.sent).min(descriptor.size);
                        if let Some(refused) = upload.refused.take().filter(|_| held == upload.offset) {
                            // In step with the registry, and still refused: the chunk was too
                            // large for it (GHCR caps chunks at 4 MiB). Smaller, for the run.
                            self.shrink(&mut upload.chunk, refused);
                        }
                        upload.resumed |= held > 0;
                        tracing::info!("resuming {digest} at byte {held} of {}", descriptor.size);
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
            upload.whole = !upload.chunks_only && (upload.whole || descriptor.size <= upload.chunk);
            if upload.whole {
                progress.store(0, Ordering::Relaxed);
                let body = source.blob(descriptor, 0).await?.into_body(descriptor.size, Arc::clone(progress));
                let finished = self
                    .guard(
                        progress,
                        client.finish_upload(
                            registry,
                            repository,
                            &url,
                            digest,
                            Some(UploadBody::new(body, descriptor.size)),
                        ),
                    )
                    .await?;
                match finished {
                    FinishOutcome::Done => return Ok(BlobOutcome::Pushed),
                    FinishOutcome::DigestInvalid => return Err(self.digest_invalid(descriptor)),
                    FinishOutcome::SessionGone => upload.session = None,
                    FinishOutcome::TooLarge => {
                        upload.chunks_only = true;
                        upload.whole = false;
                        upload.session = None;
                    }
                }
                continue;
            }
            let mut url = url;
            while upload.offset < descriptor.size {
                let offset = upload.offset;
                let length = upload.chunk.min(descriptor.size - offset);
                progress.store(offset, Ordering::Relaxed);
                let body = source.blob(descriptor, offset).await?.into_body(length, Arc::clone(progress));
                // Hash what goes out while it runs on from byte 0, to check the blob before the
                // upload is committed.
                let running = upload.hashed.take().filter(|(n, _)| *n == offset).map(|(_, h)| Arc::new(Mutex::new(h)));
                let body = match &running {
                    Some(hasher) => {
                        let hasher = Arc::clone(hasher);
                        body.inspect(move |chunk| {
                            if let (Ok(bytes), Ok(mut hasher)) = (chunk, hasher.lock()) {
                                hasher.update(bytes);
                            }
                        })
                        .boxed()
                    }
                    None => body,
                };
                let sent = client.upload_chunk(registry, repository, &url, offset, UploadBody::new(body, length));
                match self.guard(progress, sent).await? {
                    ChunkOutcome::Accepted { url: next } => {
                        // After a 202 the next offset is what was sent: some registries report
                        // a stale Range here. The Range is asked for only to recover.
                        url = next;
                        upload.offset = offset + length;
                        upload.sent = upload.sent.max(upload.offset);
                        upload.session = Some(url.clone());
                        self.save_session(digest, &url, upload.offset);
                        // The registry took the whole body, so the hash has every byte of it
                        // (the body stream may still hold its handle: copy the state).
                        upload.hashed =
                            running.and_then(|h| h.lock().ok().map(|h| h.clone())).map(|h| (upload.offset, h));
                    }
                    ChunkOutcome::SessionGone => {
                        upload.session = None;
                        break;
                    }
                    ChunkOutcome::Refused => {
                        tracing::info!("{registry} does not take chunks; sending {digest} in one request");
                        upload.whole = true;
                        upload.session = None;
                        break;
                    }
                    ChunkOutcome::OutOfSync => {
                        upload.unsure = true;
                        upload.refused = Some(length);
                        break;
                    }
                    ChunkOutcome::TooLarge => {
                        self.shrink(&mut upload.chunk, length);
                        upload.unsure = true;
                        break;
                    }
                }
            }
            if upload.session.is_none() || upload.unsure || upload.offset < descriptor.size {
                continue;
            }
            self.verify_before_commit(descriptor, source, upload.hashed.take()).await?;
            match client.finish_upload(registry, repository, &url, digest, None).await? {
                FinishOutcome::Done => {
                    self.forget_session(digest);
                    return Ok(BlobOutcome::Pushed);
                }
                FinishOutcome::SessionGone | FinishOutcome::TooLarge => upload.session = None,
                FinishOutcome::DigestInvalid if upload.resumed && !upload.restarted => {
                    // A resume trusted an offset the registry got wrong: once more from zero.
                    tracing::info!("{registry} computed another digest for {digest} after a resume; starting it over");
                    upload.restarted = true;
                    upload.resumed = false;
                    upload.session = None;
                }
                FinishOutcome::DigestInvalid => return Err(self.digest_invalid(descriptor)),
            }
        }
    }

    /// Halves the chunk size after the registry refused `refused` bytes (down to
    /// [`MIN_CHUNK`]), and keeps the smaller size for the rest of the run.
    fn shrink(&self, chunk: &mut u64, refused: u64) {
        let smaller = (refused / 2).max(MIN_CHUNK).min(*chunk);
        let cap = self.chunk_cap.fetch_min(smaller, Ordering::Relaxed).min(smaller);
        if cap < *chunk {
            tracing::info!("{} refused a {refused}-byte chunk; sending {cap}-byte chunks", self.registry);
        }
        *chunk = cap;
    }

    fn digest_invalid(&self, descriptor: &Descriptor) -> Error {
        Error::DigestMismatch {
            what: format!("upload to {} (the registry computed another digest)", self.registry),
            expected: descriptor.digest.to_string(),
            found: "another".into(),
        }
    }

    /// Checks a chunked blob's digest before the commit: from the hash of what went out when
    /// it ran from byte 0 to the end, else (after a resume) by reading it once more.
    async fn verify_before_commit(
        &self,
        descriptor: &Descriptor,
        source: &dyn Source,
        hashed: Option<(u64, Sha256)>,
    ) -> Result<()> {
        match hashed {
            Some((n, hasher)) if n == descriptor.size => {
                let found = Digest::of_hasher(hasher);
                match found == descriptor.digest {
                    true => Ok(()),
                    false => Err(Error::DigestMismatch {
                        what: format!("blob from {} (refused, not committed)", source.name()),
                        expected: descriptor.digest.to_string(),
                        found: found.to_string(),
                    }),
                }
            }
            // After a resume, a local blob is read once more to check it; a blob from another
            // registry was checked there, and the registry committing it checks it again.
            _ if !source.seekable() => Ok(()),
            _ => {
                let mut whole = source.blob(descriptor, 0).await?;
                while whole.next_chunk().await?.is_some() {}
                Ok(())
            }
        }
    }

    /// Runs a request whose body counts into `progress`, cutting it when the count stands
    /// still for the stall timeout. A slow transfer that moves is never cut; waiting for the
    /// response after the body is covered by the client's read timeout.
    async fn guard<T>(&self, progress: &AtomicU64, request: impl Future<Output = Result<T>>) -> Result<T> {
        let stall = self.options.stall_timeout;
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
                            registry: self.registry.clone(),
                            seconds: stall.as_secs(),
                        }));
                    }
                }
            }
        }
    }
}

impl Sink for RegistrySink<'_> {
    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let exists = self.client.blob_exists(&self.registry, &self.repository, &descriptor.digest).await?;
            if exists {
                self.remember(&descriptor.digest);
                self.forget_session(&descriptor.digest);
            }
            Ok(exists)
        })
    }

    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>> {
        Box::pin(async move {
            let mut upload =
                self.uploads.lock().ok().and_then(|mut uploads| uploads.remove(&descriptor.digest)).unwrap_or_default();
            let result = self.attempt(descriptor, source, &mut upload, progress).await;
            if result.is_ok() {
                self.remember(&descriptor.digest);
            }
            if result.is_err() {
                upload.unsure = true;
                upload.sent = upload.sent.max(progress.load(Ordering::Relaxed));
                if let Ok(mut uploads) = self.uploads.lock() {
                    uploads.insert(descriptor.digest.clone(), upload);
                }
            }
            result
        })
    }

    fn has_manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let found = self
                .client
                .manifest_digest(&self.registry, &self.repository, &ManifestRef::Digest(digest.clone()))
                .await?;
            Ok(found.is_some())
        })
    }

    fn put_manifest<'a>(&'a self, manifest: &'a RawManifest) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let digest = ManifestRef::Digest(manifest.digest.clone());
            self.client.put_manifest(&self.registry, &self.repository, &digest, manifest).await
        })
    }

    fn resolve<'a>(&'a self, reference: &'a ManifestRef) -> BoxFuture<'a, Result<Option<Digest>>> {
        Box::pin(self.client.manifest_digest(&self.registry, &self.repository, reference))
    }

    fn tag<'a>(&'a self, root: &'a RawManifest, tags: &'a [String], fresh: bool) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(async move {
            let mut written = Vec::new();
            for tag in tags {
                let tag = ManifestRef::Tag(tag.clone());
                if !fresh && self.resolve(&tag).await?.as_ref() == Some(&root.digest) {
                    written.push(false);
                    continue;
                }
                self.client.put_manifest(&self.registry, &self.repository, &tag, root).await?;
                written.push(true);
            }
            Ok(written)
        })
    }

    fn compresses_layers(&self) -> bool {
        true
    }

    fn retry_count(&self) -> u32 {
        self.client.retry_count()
    }

    fn resumed_bytes(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }
}
