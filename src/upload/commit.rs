//! Commit: a session that holds the whole blob becomes the blob, once its digest is checked.

use std::sync::Arc;

use super::state::{BlobUpload, Stage, Uploaded};
use super::uploader::{Blob, Uploader};
use crate::digest::{BackgroundHash, Digest};
use crate::error::{Error, Result};
use crate::model::Descriptor;
use crate::registry::write::FinishOutcome;
use crate::source::Source;

impl Uploader<'_> {
    /// Commits an open session that holds the whole blob, after checking the blob's digest,
    /// and forgets the saved session. A session that is gone is closed; another digest
    /// computed by the registry after a resume starts the blob over, once.
    pub(super) async fn commit(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        let descriptor = blob.descriptor;
        let Stage::Open(session) = &mut upload.stage else { return Ok(None) };
        if session.offset < descriptor.size {
            return Ok(None);
        }
        self.verify(descriptor, blob.source, session.hashed.take()).await?;
        let finish =
            self.client.finish_upload(&self.registry, &self.repository, &session.url, &descriptor.digest, None);
        match finish.await? {
            FinishOutcome::Done => {
                self.forget_session(&descriptor.digest).await;
                return Ok(Some(Uploaded::Pushed));
            }
            FinishOutcome::SessionGone | FinishOutcome::TooLarge => {}
            FinishOutcome::DigestInvalid => {
                if !upload.resumed.start_over() {
                    return Err(self.digest_invalid(descriptor));
                }
                // A resume trusted an offset the registry got wrong: once more from zero.
                tracing::info!(
                    "{} computed another digest for {} after a resume; starting it over",
                    self.registry,
                    descriptor.digest
                );
            }
        }
        upload.stage = Stage::Closed;
        Ok(None)
    }

    /// Checks a chunked blob's digest before the commit: from the hash of what went out when
    /// it ran from byte 0 to the end, else (after a resume) by reading it once more.
    async fn verify(
        &self,
        descriptor: &Descriptor,
        source: &dyn Source,
        hashed: Option<(u64, Arc<BackgroundHash>)>,
    ) -> Result<()> {
        match hashed {
            Some((n, hash)) if n == descriptor.size => {
                let found = Digest::of_background(&hash).await?;
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

    /// The error for a blob the registry computed another digest for.
    pub(super) fn digest_invalid(&self, descriptor: &Descriptor) -> Error {
        Error::DigestMismatch {
            what: format!("upload to {} (the registry computed another digest)", self.registry),
            expected: descriptor.digest.to_string(),
            found: "another".into(),
        }
    }
}
