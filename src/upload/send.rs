//! Send: the blob's bytes into an open session, in one request (which also commits it) or in
//! chunks from the session's offset.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::state::{BlobUpload, Session, Stage, Uploaded, Way};
use super::uploader::{Blob, Uploader};
use crate::digest::BackgroundHash;
use crate::error::Result;
use crate::registry::write::{ChunkOutcome, FinishOutcome, UploadBody};

impl Uploader<'_> {
    /// Sends the whole blob in one request, which commits it. A session that is gone is
    /// closed; a registry that refuses the body as too large gets chunks from then on.
    pub(super) async fn send_whole(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        let Stage::Open(session) = &upload.stage else { return Ok(None) };
        let (descriptor, progress, started) = (blob.descriptor, blob.progress, Instant::now());
        progress.store(0, Ordering::Relaxed);
        let body = blob.source.blob(descriptor, 0).await?.into_body(descriptor.size, Arc::clone(progress));
        let body = UploadBody::new(body, descriptor.size);
        let request =
            self.client.finish_upload(&self.registry, &self.repository, &session.url, &descriptor.digest, Some(body));
        match self.guard(progress, request).await? {
            FinishOutcome::Done => {
                self.measured(descriptor.size, started.elapsed());
                return Ok(Some(Uploaded::Pushed));
            }
            FinishOutcome::DigestInvalid => return Err(self.digest_invalid(descriptor)),
            FinishOutcome::SessionGone => {}
            FinishOutcome::TooLarge => upload.way = Way::Chunks,
        }
        upload.stage = Stage::Closed;
        Ok(None)
    }

    /// Sends the rest of the blob in chunks from the session's offset, remembering the
    /// session after each chunk the registry takes. Returns with the session open at the
    /// blob's end, or as the registry's answer left it: closed (the session is gone, or
    /// chunks are refused: one request next), or unsure (a chunk out of step or too large).
    pub(super) async fn send_chunks(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<()> {
        let (size, digest) = (blob.descriptor.size, &blob.descriptor.digest);
        loop {
            let Stage::Open(session) = &mut upload.stage else { return Ok(()) };
            if session.offset >= size {
                return Ok(());
            }
            let length = self.chunk_length(upload.chunk, size - session.offset);
            let started = Instant::now();
            match self.send_chunk(blob, session, length).await? {
                ChunkOutcome::Accepted { .. } => {
                    self.measured(length, started.elapsed());
                    self.save_session(digest, session).await;
                    self.next_chunk(upload);
                }
                ChunkOutcome::SessionGone => upload.stage = Stage::Closed,
                ChunkOutcome::Refused => {
                    tracing::info!("{} does not take chunks; sending {digest} in one request", self.registry);
                    if upload.way == Way::BySize {
                        upload.way = Way::OneRequest;
                    }
                    upload.stage = Stage::Closed;
                }
                ChunkOutcome::OutOfSync => upload.stage.doubt(Some(length)),
                ChunkOutcome::TooLarge => {
                    self.shrink(&mut upload.chunk, length);
                    upload.stage.doubt(None);
                }
            }
        }
    }

    /// Sends `length` bytes at the session's offset, hashing them on while the hash runs
    /// from byte 0 without a gap. When the registry takes them the session moves past them:
    /// the next offset is what was sent (some registries report a stale Range here; the
    /// Range is asked for only to recover).
    async fn send_chunk(&self, blob: &Blob<'_>, session: &mut Session, length: u64) -> Result<ChunkOutcome> {
        let (descriptor, progress, offset) = (blob.descriptor, blob.progress, session.offset);
        progress.store(offset, Ordering::Relaxed);
        // The chunk's bytes are checked by the hash that runs across chunks (or, after a
        // resume, by reading the blob once more before the commit).
        let body = blob.source.blob(descriptor, offset).await?.unchecked().into_body(length, Arc::clone(progress));
        let running = session.hashed.take().filter(|(n, _)| *n == offset).map(|(_, h)| h);
        let body = match &running {
            Some(hasher) => hashing(body, Arc::clone(hasher)),
            None => body,
        };
        let request = self.client.upload_chunk(
            &self.registry,
            &self.repository,
            &session.url,
            offset,
            UploadBody::new(body, length),
        );
        let outcome = self.guard(progress, request).await?;
        if let ChunkOutcome::Accepted { url } = &outcome {
            session.url = url.clone();
            session.offset = offset + length;
            session.sent = session.sent.max(session.offset);
            // The registry took the whole body, so the hash has every byte of it.
            session.hashed = running.map(|h| (session.offset, h));
        }
        Ok(outcome)
    }
}

/// `body`, each of its pieces handed to `hash` as it goes out.
fn hashing(
    body: BoxStream<'static, std::io::Result<Bytes>>,
    hash: Arc<BackgroundHash>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    body.then(move |piece| {
        let hash = Arc::clone(&hash);
        async move {
            if let Ok(bytes) = &piece {
                hash.update(bytes.clone()).await;
            }
            piece
        }
    })
    .boxed()
}
