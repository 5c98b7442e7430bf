//! A registry repository as a source.

use futures_util::future::BoxFuture;

use super::Source;
use crate::blob::BlobStream;
use crate::digest::Digest;
use crate::error::Result;
use crate::location::Location;
use crate::model::{Descriptor, RawManifest};
use crate::reference::Reference;
use crate::registry::Client;

/// A registry repository and the reference in it.
pub struct RegistrySource<'a> {
    client: &'a Client,
    reference: Reference,
}

impl<'a> RegistrySource<'a> {
    /// Reads `reference` through `client`.
    pub fn new(client: &'a Client, reference: Reference) -> RegistrySource<'a> {
        RegistrySource { client, reference }
    }

    /// The reference it reads.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl Source for RegistrySource<'_> {
    fn name(&self) -> String {
        self.reference.to_string()
    }

    fn location(&self) -> Location {
        Location::Registry(self.reference.clone())
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        Box::pin(self.client.get_manifest(&self.reference))
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        Box::pin(async move {
            let at = self.reference.at_digest(digest);
            self.client.get_manifest(&at).await
        })
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            let (registry, repository) = (&self.reference.registry, &self.reference.repository);
            let blob = self.client.get_blob(registry, repository, descriptor, offset).await?;
            if let Some(places) = self.client.places() {
                places.record(registry, repository, &descriptor.digest);
            }
            Ok(blob)
        })
    }

    fn origin(&self, _digest: &Digest) -> Option<Reference> {
        Some(Reference { tag: None, digest: None, ..self.reference.clone() })
    }
}
