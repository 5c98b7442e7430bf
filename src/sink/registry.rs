//! A registry repository as a sink: manifests and tags written through the client, blobs
//! through the upload steps (`upload/`): mounted when another repository of the registry has
//! them, else uploaded (one request, or resumable chunks), resuming from what the registry
//! holds after a failure and starting over when the session is gone.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{BlobOutcome, Sink};
use crate::digest::Digest;
use crate::error::Result;
use crate::model::{Descriptor, RawManifest};
use crate::reference::{ManifestRef, Reference};
use crate::registry::Client;
use crate::source::Source;
pub use crate::upload::UploadOptions;
use crate::upload::{Uploaded, Uploader};

/// Writes into one repository of a registry.
pub struct RegistrySink<'a> {
    client: &'a Client,
    registry: String,
    repository: String,
    upload: Uploader<'a>,
}

impl<'a> RegistrySink<'a> {
    /// Writes into `reference`'s repository through `client`.
    pub fn new(client: &'a Client, reference: &Reference, options: UploadOptions) -> RegistrySink<'a> {
        RegistrySink {
            client,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            upload: Uploader::new(client, reference, options),
        }
    }
}

impl From<Uploaded> for BlobOutcome {
    fn from(uploaded: Uploaded) -> BlobOutcome {
        match uploaded {
            Uploaded::Pushed => BlobOutcome::Pushed,
            Uploaded::Mounted(from) => BlobOutcome::Mounted(from),
        }
    }
}

impl Sink for RegistrySink<'_> {
    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.upload.check(descriptor))
    }

    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>> {
        Box::pin(async move { self.upload.put(descriptor, source, progress).await.map(BlobOutcome::from) })
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

    fn tag_writes_manifest(&self) -> bool {
        true
    }

    fn compresses_layers(&self) -> bool {
        true
    }

    fn retry_count(&self) -> u32 {
        self.client.retry_count()
    }

    fn resumed_bytes(&self) -> u64 {
        self.upload.resumed_bytes()
    }
}
