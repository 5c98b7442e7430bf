//! `hoist copy`: promote an image or a whole index from one repository or registry to another.

use clap::Args;
use hoist::location::Location;
use hoist::reference::Reference;

use super::print_line;
use super::push::{print_report, push_layout, PushFlags};
use super::registry::{block_on, RegistryArgs};

/// Flags of `hoist copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// What to copy: a registry reference (or oci:DIR[:TAG]).
    source: String,
    /// Where: registry/repository[:tag].
    destination: String,
    /// Copy only this platform's image of an index.
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Copy the whole index with every platform (the default).
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    flags: PushFlags,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist copy`.
pub fn run(args: CopyArgs, quiet: bool) -> anyhow::Result<()> {
    let destination = Reference::parse(&args.destination)?;
    match args.source.parse::<Location>()? {
        Location::Layout { dir, tag } => {
            let report = push_layout(
                &dir,
                tag.as_deref(),
                &destination,
                &args.flags,
                &args.registry,
                quiet,
                &Default::default(),
            )?;
            print_report(&report, false)
        }
        Location::Registry(source) => {
            let platform = args.platform.as_deref().map(str::parse).transpose()?;
            let client = args.registry.client()?;
            let options = args.flags.options();
            let digest = block_on(async {
                Ok(hoist::copy::copy(&client, &source, &destination, platform.as_ref(), &args.flags.tags, &options)
                    .await?)
            })?;
            print_line(&digest.to_string())
        }
    }
}
