//! Sessions remembered across runs (`resume.rs`): a blob's upload goes on in the session a
//! killed run left, from the offset the registry reports for it (never from the saved number
//! alone).

use std::sync::atomic::Ordering;

use reqwest::Url;

use super::state::{BlobUpload, Session, Stage};
use super::uploader::Uploader;
use crate::digest::Digest;
use crate::error::Error;
use crate::fsutil::blocking;
use crate::model::Descriptor;
use crate::registry::write::UploadStatus;
use crate::resume::Saved;

impl Uploader<'_> {
    /// Takes over the session a previous run left for this blob, when the registry still
    /// holds part of it: the upload is then open at the registry's offset. Returns whether
    /// it did.
    pub(super) async fn continue_saved(&self, descriptor: &Descriptor, upload: &mut BlobUpload) -> bool {
        let (client, registry, repository) = (self.client, self.registry.as_str(), self.repository.as_str());
        let Some(sessions) = self.sessions.clone() else { return false };
        let (owned_registry, owned_repository, digest) =
            (registry.to_owned(), repository.to_owned(), descriptor.digest.clone());
        let claimed = blocking::run(move || sessions.claim(&owned_registry, &owned_repository, &digest)).await;
        let Some(saved) = claimed else { return false };
        let Ok(endpoint) = client.endpoint(registry).await else { return false };
        let Some(url) = Url::parse(&saved.url).ok().filter(|u| crate::registry::same_origin(u, &endpoint.base)) else {
            self.forget_session(&descriptor.digest).await;
            return false;
        };
        let answer = match client.upload_offset(registry, repository, &url).await {
            Ok(UploadStatus::Holds { bytes: held, next }) if held > 0 && held <= descriptor.size => {
                tracing::warn!(
                    "{}: continuing the upload a previous run left, from byte {held} of {}",
                    descriptor.digest,
                    descriptor.size
                );
                upload.stage = Stage::Open(Session::continued(next, held));
                upload.resumed.trust();
                self.resumed.fetch_add(held, Ordering::Relaxed);
                return true;
            }
            Ok(UploadStatus::Holds { bytes, .. }) => format!("it says it holds {bytes} bytes of it"),
            Ok(UploadStatus::Gone { answer }) => answer,
            // Stopped by the user: nothing to say about the registry.
            Err(Error::Interrupted { .. }) => return false,
            Err(error) => error.to_string(),
        };
        // A session the registry refuses (distribution cancels one whose stored bytes do not
        // match its state, as when a streamed chunk was cut midway) is said, then forgotten.
        tracing::warn!(
            "{registry} no longer takes the upload of {} a previous run left ({}); sending it from the start",
            descriptor.digest,
            crate::text::printable(&answer)
        );
        self.forget_session(&descriptor.digest).await;
        false
    }

    /// Remembers `session` after an accepted chunk, for a run that follows a kill (the file
    /// written off the async threads).
    pub(super) async fn save_session(&self, digest: &Digest, session: &Session) {
        if let Some(sessions) = self.sessions.clone() {
            let saved = Saved {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                digest: digest.clone(),
                url: session.url.to_string(),
                confirmed: session.offset,
            };
            blocking::run(move || sessions.save(&saved)).await;
        }
    }

    /// Forgets the saved session: the blob is committed or present.
    pub(super) async fn forget_session(&self, digest: &Digest) {
        if let Some(sessions) = self.sessions.clone() {
            let (registry, repository, digest) = (self.registry.clone(), self.repository.clone(), digest.clone());
            blocking::run(move || sessions.forget(&registry, &repository, &digest)).await;
        }
    }
}
