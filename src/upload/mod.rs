//! The registry upload of a blob, as small steps composed by a short driver:
//!
//! 1. `check`: a HEAD; a blob the repository has is not sent (the transfer
//!    engine asks this first);
//! 2. for a blob nothing was tried for yet, the session a killed run left for it (`saved`),
//!    else a mount from another repository of the registry (`mount`);
//! 3. `start`: an open session in step with the registry: a new one, or, after a failure
//!    midway, the registry asked how much it holds;
//! 4. `send`: the bytes in one request (which commits them), or in chunks from the offset;
//! 5. `commit`: the digest checked, then the session committed.
//!
//! What crosses the steps is where the upload stands (`Stage`: fresh, closed, an
//! open session at a known offset, or an unsure one) with what was learnt of the registry
//! (one request or chunks, the chunk size, whether an offset was taken on its word). Each
//! registry answer moves the stage; a round is start, send, commit, and a registry that sends
//! hoist back round after round without progress ends the attempt. The transfer engine
//! retries failed attempts (counted against `--retries`); the state is kept between them.

mod check;
mod chunk;
mod commit;
mod guard;
mod mount;
mod saved;
mod send;
mod start;
mod state;
mod uploader;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use self::state::Uploaded;
use self::state::{BlobUpload, Stage};
use self::uploader::Blob;
pub use self::uploader::{UploadOptions, Uploader};
use crate::cancel::Unfinished;
use crate::error::{Error, Result};
use crate::model::Descriptor;
use crate::registry::RegistryError;
use crate::source::Source;

/// Rounds after the first inside one attempt before it counts as a failure.
const MAX_RECOVERIES: u32 = 8;

impl Uploader<'_> {
    /// One attempt at uploading `descriptor` (which [`Uploader::check`] did not find) from
    /// `source`, counting bytes sent in `progress`. A failed attempt leaves what it learnt
    /// (the session, how far it got) for the next.
    pub async fn put(
        &self,
        descriptor: &Descriptor,
        source: &dyn Source,
        progress: &Arc<AtomicU64>,
    ) -> Result<Uploaded> {
        let digest = &descriptor.digest;
        let mut upload = self.take(digest).unwrap_or_else(|| BlobUpload::new(self.first_chunk()));
        let result = self.attempt(&Blob { descriptor, source, progress }, &mut upload).await;
        match result {
            Ok(uploaded) => {
                self.remember(digest).await;
                Ok(uploaded)
            }
            Err(error) => {
                upload.stage.interrupt(progress.load(Ordering::Relaxed));
                let error = match error {
                    Error::Interrupted { stop, .. } => {
                        let confirmed = upload.stage.confirmed();
                        let unfinished = Unfinished { digest: digest.clone(), size: descriptor.size, confirmed };
                        Error::Interrupted { stop, unfinished: vec![unfinished] }
                    }
                    other => other,
                };
                self.keep(digest, upload);
                Err(error)
            }
        }
    }

    /// The driver: a fresh blob continues a saved session or is mounted; then rounds until it
    /// is stored, at most `MAX_RECOVERIES` after the first.
    async fn attempt(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<Uploaded> {
        if matches!(upload.stage, Stage::Fresh) && !self.continue_saved(blob.descriptor, upload).await {
            if let Some(mounted) = self.mount(blob, upload).await? {
                return Ok(mounted);
            }
        }
        for _ in 0..=MAX_RECOVERIES {
            if let Some(stored) = self.round(blob, upload).await? {
                return Ok(stored);
            }
        }
        let what = format!("blob {}", blob.descriptor.digest);
        Err(RegistryError::NoProgress { registry: self.registry.clone(), what }.into())
    }

    /// One round: an open session (started, or recovered), then the blob into it in one
    /// request, or in chunks and committed. `Some` once the blob is stored; `None` when the
    /// registry's answers call for another round.
    async fn round(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        if let Some(stored) = self.start(blob.descriptor, upload).await? {
            return Ok(Some(stored));
        }
        if !matches!(upload.stage, Stage::Open(_)) {
            return Ok(None);
        }
        if upload.one_request(blob.descriptor.size) {
            return self.send_whole(blob, upload).await;
        }
        self.send_chunks(blob, upload).await?;
        self.commit(blob, upload).await
    }
}
