//! `hoist tag` (more tags for what is there, nothing re-pushed) and `hoist delete`.

use clap::Args;
use hoist::ops::Tag;
use hoist::reference::Reference;

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

/// Runs `hoist tag`: reads the manifest once and PUTs its exact bytes under each tag.
pub fn tag(args: TagArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let request = Tag { reference, tags: args.tags };
    let session = args.registry.session(hoist::registry::RetryPolicy::default(), false)?;
    print_line(&hoist::ops::tag(&session, &request)?.to_string())
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
    let digest = hoist::ops::delete(&session, &reference)?;
    eprintln!("deleted {}/{}@{digest} and every tag that named it", reference.registry, reference.repository);
    print_line(&digest.to_string())
}
