//! Start: an open session in step with the registry before bytes go in. A new one when none
//! is open; after a failure midway, the registry is asked how much it holds, and the upload
//! goes on from there.

use super::state::{BlobUpload, Session, Stage, Uploaded};
use super::uploader::Uploader;
use crate::error::Result;
use crate::model::Descriptor;
use crate::registry::write::{Started, UploadStatus};

impl Uploader<'_> {
    /// Brings the upload to an open session: started when none is open, recovered when
    /// unsure, an open one as it is (recovery may also find the session gone: closed).
    pub(super) async fn start(&self, descriptor: &Descriptor, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        match upload.stage {
            Stage::Fresh | Stage::Closed => self.open(upload).await,
            Stage::Unsure { .. } => self.recover(descriptor, upload).await.map(|()| None),
            Stage::Open(_) => Ok(None),
        }
    }

    /// Starts a session (a POST).
    async fn open(&self, upload: &mut BlobUpload) -> Result<Option<Uploaded>> {
        match self.client.start_upload(&self.registry, &self.repository, None).await? {
            Started::Session { url, min_chunk } => {
                upload.raise_chunk(min_chunk);
                upload.stage = Stage::Open(Session::new(url));
                Ok(None)
            }
            // The client reads a 201 as the blob stored only for a mount request; were an empty
            // POST ever answered so, there is nothing to send.
            Started::Mounted => Ok(Some(Uploaded::Pushed)),
        }
    }

    /// Asks the registry how much an unsure session holds (a GET) and goes on from there,
    /// never beyond what was sent. A session that is gone, or that holds part of a
    /// one-request upload (to be sent whole, not appended to), is closed.
    async fn recover(&self, descriptor: &Descriptor, upload: &mut BlobUpload) -> Result<()> {
        let one_request = upload.one_request(descriptor.size);
        let Stage::Unsure { session, refused } = &mut upload.stage else { return Ok(()) };
        let (held, next) = match self.client.upload_offset(&self.registry, &self.repository, &session.url).await? {
            UploadStatus::Holds { bytes, next } if !(one_request && bytes > 0) => (bytes, next),
            _ => {
                upload.stage = Stage::Closed;
                return Ok(());
            }
        };
        // Never beyond what was sent: a registry that over-reports would make hoist skip bytes.
        let held = held.min(session.sent).min(descriptor.size);
        if let Some(refused) = refused.filter(|_| held == session.offset) {
            // In step with the registry, and still refused: the chunk was too large for it
            // (GHCR caps chunks at 4 MiB). Smaller, for the run.
            self.shrink(&mut upload.chunk, refused);
        }
        if held > 0 {
            upload.resumed.trust();
        }
        tracing::info!("resuming {} at byte {held} of {}", descriptor.digest, descriptor.size);
        session.offset = held;
        session.url = next;
        upload.stage.confirm();
        Ok(())
    }
}
