//! `hoist copy`: an image or a whole index from any source to any sink (registry or layout):
//! promote staging → prod, pull into a layout, or move between layouts.

use clap::Args;
use hoist::location::Location;

use super::push::{print_report, send, PushFlags};
use super::registry::RegistryArgs;

/// Flags of `hoist copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// What to copy: a registry reference, oci:DIR[:TAG], oci-archive:FILE[:TAG] or
    /// docker-archive:FILE[:REF].
    source: String,
    /// Where: registry/repository[:tag], oci:DIR[:TAG], oci-archive:FILE[:TAG] or
    /// docker-archive:FILE[:REF] (one platform: the only one, or --platform).
    destination: String,
    /// Copy only this platform's image of an index.
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Copy the whole index with every platform (the default).
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    flags: PushFlags,
    /// Print a JSON summary instead of the digest.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist copy`.
pub fn run(args: CopyArgs, quiet: bool) -> anyhow::Result<()> {
    let source: Location = args.source.parse()?;
    let destination: Location = args.destination.parse()?;
    let platform = args.platform.as_deref().map(str::parse).transpose()?;
    let report = send(&source, &destination, platform.as_ref(), None, &args.flags, &args.registry, quiet)?;
    print_report(&report, args.json)
}
