//! Mount: the registry takes the blob from another of its repositories instead of an upload.
//! Candidates are where the source has the blob, where hoist saw it before (`places.rs`) and
//! `--mount-from`.

use std::sync::atomic::Ordering;

use super::state::{BlobUpload, Session, Stage, Uploaded};
use super::uploader::{Blob, Uploader};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::registry::write::Started;
use crate::registry::RegistryError;
use crate::source::Source;

/// Remembered repositories tried for a mount, besides the source's own.
const REMEMBERED_MOUNTS: usize = 2;

impl Uploader<'_> {
    /// Asks the registry to mount the blob from each candidate in turn. A candidate that
    /// answers with a session instead (ECR, for a blob no manifest names) leaves that session
    /// open for the upload; a mount refused for want of rights ends the asking for the run.
    /// On an error the blob stays fresh, to be tried again.
    pub(super) async fn mount(&self, blob: &Blob<'_>, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        let digest = &blob.descriptor.digest;
        let mut session = None;
        for from in self.mount_candidates(blob.source, digest).await {
            match self.client.start_upload(&self.registry, &self.repository, Some((digest, &from))).await {
                Ok(Started::Mounted) => return Ok(Some(Uploaded::Mounted(from))),
                Ok(Started::Session { url, min_chunk }) => {
                    upload.raise_chunk(min_chunk);
                    session = Some(Session::new(url));
                }
                Err(Error::Registry(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                    tracing::info!("{} refused to mount from {from}; uploading instead", self.registry);
                    self.mounts_refused.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        upload.stage = session.map_or(Stage::Closed, Stage::Open);
        Ok(None)
    }

    /// Repositories of this registry that may hold `digest`: where the source has it, where
    /// hoist saw it before (at most [`REMEMBERED_MOUNTS`]), then `--mount-from`.
    async fn mount_candidates(&self, source: &dyn Source, digest: &Digest) -> Vec<String> {
        if self.mounts_refused.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let origin = source.origin(digest).filter(|o| o.registry == self.registry).map(|o| o.repository);
        let remembered = match self.client.places().cloned() {
            Some(places) => {
                let (registry, digest) = (self.registry.clone(), digest.clone());
                blocking::run(move || places.repositories(&registry, &digest)).await
            }
            None => Vec::new(),
        };
        let mut candidates: Vec<String> = Vec::new();
        let remembered = remembered.into_iter().take(REMEMBERED_MOUNTS);
        for from in origin.into_iter().chain(remembered).chain(self.options.mount_from.iter().cloned()) {
            if !candidates.contains(&from) && from != self.repository {
                candidates.push(from);
            }
        }
        candidates
    }

    /// Remembers that this repository has `digest`, for mounts into others (the record
    /// written off the async threads).
    pub(super) async fn remember(&self, digest: &Digest) {
        if let Some(places) = self.client.places().cloned() {
            let (registry, repository, digest) = (self.registry.clone(), self.repository.clone(), digest.clone());
            blocking::run(move || places.record(&registry, &repository, &digest)).await;
        }
    }
}
