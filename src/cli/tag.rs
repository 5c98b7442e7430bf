//! `hoist tag` (more tags for what is there, nothing re-pushed) and `hoist delete`.

use clap::Args;
use hoist::digest::Digest;
use hoist::reference::{is_tag, ManifestRef, Reference};
use hoist::registry::{Client, RegistryError};

use super::print_line;
use super::registry::RegistryArgs;

/// Flags of `hoist tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image or index to tag: registry/repository:tag or …@sha256:….
    reference: String,
    /// New tags in the same repository.
    #[arg(required = true, value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Flags of `hoist delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// What to delete: registry/repository:tag or …@sha256:….
    reference: String,
    /// Really delete: the manifest goes, and with it every tag that names it.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn not_found(reference: &Reference) -> hoist::Error {
    RegistryError::NotFound {
        registry: reference.registry.clone(),
        what: format!("manifest {reference}"),
        message: "HEAD answered 404".into(),
    }
    .into()
}

/// The digest `reference` names (a HEAD unless it carries one).
async fn digest_of(client: &Client, reference: &Reference) -> anyhow::Result<Digest> {
    if let Some(digest) = &reference.digest {
        return Ok(digest.clone());
    }
    Ok(client.head_manifest(reference).await?.map(|h| h.digest).ok_or_else(|| not_found(reference))?)
}

/// Runs `hoist tag`: reads the manifest once and PUTs its exact bytes under each tag.
pub fn tag(args: TagArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.reference)?;
    if let Some(bad) = args.tags.iter().find(|t| !is_tag(t)) {
        return Err(hoist::Error::invalid(
            "tag",
            bad.as_str(),
            "give tags alone (v1.2.3, latest), 1 to 128 letters, digits, '_', '.' or '-'; they go in the repository of the reference",
        )
        .into());
    }
    let session = args.registry.session(hoist::registry::RetryPolicy::default(), false)?;
    let client = session.client();
    session.block_on(async {
        let digest = digest_of(client, &reference).await?;
        let manifest = client.get_manifest_direct(&reference.at_digest(&digest)).await?;
        for tag in &args.tags {
            client
                .put_manifest(&reference.registry, &reference.repository, &ManifestRef::Tag(tag.clone()), &manifest)
                .await?;
            tracing::info!("tagged {}/{}:{tag}", reference.registry, reference.repository);
        }
        print_line(&manifest.digest.to_string())
    })
}

/// Runs `hoist delete`: resolves a tag to its digest and deletes the manifest.
pub fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.reference)?;
    if !args.yes {
        return Err(hoist::Error::invalid(
            "confirmation",
            args.reference.as_str(),
            "deleting removes the manifest and every tag that names it; add --yes to go ahead",
        )
        .into());
    }
    let session = args.registry.session(hoist::registry::RetryPolicy::default(), false)?;
    let client = session.client();
    session.block_on(async {
        let digest = digest_of(client, &reference).await?;
        if !client.delete_manifest(&reference.registry, &reference.repository, &digest).await? {
            return Err(not_found(&reference).into());
        }
        eprintln!("deleted {}/{}@{digest} and every tag that named it", reference.registry, reference.repository);
        print_line(&digest.to_string())
    })
}
