//! Check: whether the repository has the blob already (a HEAD), before anything is sent.

use super::uploader::Uploader;
use crate::error::Result;
use crate::model::Descriptor;

impl Uploader<'_> {
    /// Whether the repository has the blob `descriptor`. When it has, the place is remembered
    /// (for mounts into other repositories) and a session saved for the blob is forgotten.
    pub async fn check(&self, descriptor: &Descriptor) -> Result<bool> {
        let exists = self.client.blob_exists(&self.registry, &self.repository, &descriptor.digest).await?;
        if exists {
            self.remember(&descriptor.digest).await;
            self.forget_session(&descriptor.digest).await;
        }
        Ok(exists)
    }
}
