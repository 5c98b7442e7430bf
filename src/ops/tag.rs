//! Tagging and deleting what a registry holds: `hoist tag` (more tags for a manifest, its exact
//! bytes PUT under each, nothing re-pushed), `hoist delete`, and `hoist digest`.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::reference::{is_tag, ManifestRef, Reference};
use crate::registry::{Client, RegistryError};
use crate::session::Session;

/// More tags for what `reference` names, in its repository.
#[derive(Clone, Debug)]
pub struct Tag {
    /// The image or index: registry/repository:tag or …@sha256:….
    pub reference: Reference,
    /// The new tags (tags alone: `v1.2.3`, `latest`).
    pub tags: Vec<String>,
}

/// Sets `request.tags` on what `request.reference` names: reads the manifest once and PUTs its
/// exact bytes under each tag; returns its digest.
pub fn tag(session: &Session, request: &Tag) -> Result<Digest> {
    if let Some(bad) = request.tags.iter().find(|t| !is_tag(t)) {
        return Err(Error::invalid(
            "tag",
            bad.as_str(),
            "give tags alone (v1.2.3, latest), 1 to 128 letters, digits, '_', '.' or '-'; they go in the repository of the reference",
        ));
    }
    let client = session.client();
    session.block_on(async {
        let digest = digest_of(client, &request.reference).await?;
        retag(client, &request.reference, &digest, &request.tags).await?;
        Ok(digest)
    })
}

/// Deletes the manifest `reference` names (a tag is resolved to its digest first), and with it
/// every tag that names it; returns its digest.
pub fn delete(session: &Session, reference: &Reference) -> Result<Digest> {
    let client = session.client();
    session.block_on(async {
        let digest = digest_of(client, reference).await?;
        if !client.delete_manifest(&reference.registry, &reference.repository, &digest).await? {
            return Err(not_found(reference));
        }
        Ok(digest)
    })
}

/// The digest of what `location` names: a HEAD for a registry, the root of a layout or archive.
pub fn digest(session: &Session, location: &Location) -> Result<Digest> {
    let client = session.client();
    session.block_on(async {
        match location {
            Location::Registry(reference) => head_digest(client, reference).await,
            other => Ok(crate::source::open_async(other, client).await?.root().await?.digest),
        }
    })
}

/// PUTs the exact bytes of the manifest `digest` in `reference`'s repository under each of
/// `tags` (read once).
pub(crate) async fn retag(client: &Client, reference: &Reference, digest: &Digest, tags: &[String]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let manifest = client.get_manifest_direct(&reference.at_digest(digest)).await?;
    for tag in tags {
        client
            .put_manifest(&reference.registry, &reference.repository, &ManifestRef::Tag(tag.clone()), &manifest)
            .await?;
        tracing::info!("tagged {}/{}:{tag}", reference.registry, reference.repository);
    }
    Ok(())
}

/// The digest `reference` names (a HEAD unless it carries one).
async fn digest_of(client: &Client, reference: &Reference) -> Result<Digest> {
    match &reference.digest {
        Some(digest) => Ok(digest.clone()),
        None => head_digest(client, reference).await,
    }
}

/// The digest a HEAD of `reference` answers.
async fn head_digest(client: &Client, reference: &Reference) -> Result<Digest> {
    client.head_manifest(reference).await?.map(|head| head.digest).ok_or_else(|| not_found(reference))
}

fn not_found(reference: &Reference) -> Error {
    RegistryError::NotFound {
        registry: reference.registry.clone(),
        what: format!("manifest {reference}"),
        message: "HEAD answered 404".into(),
    }
    .into()
}
