//! `hoist copy`: an image or a whole index from any source to any sink (registry or layout):
//! promote staging → prod, pull into a layout, or move between layouts.

use clap::Args;
use hoist::location::Location;
use hoist::ops::{Copy, Publish, PublishOptions};
use hoist::referrers::ReferrerOptions;

use super::progress::Progress;
use super::push::{print_report, published, LayerArgs, PushFlags};
use super::registry::RegistryArgs;

/// Flags of `hoist copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// What to copy: a registry reference, oci:DIR[:TAG], oci-archive:FILE[:TAG] or
    /// docker-archive:FILE[:REF|:@N] (@N: its Nth image, from 0).
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
    /// Also copy the artifacts that refer to the image (and to each image of an index); they
    /// name it by digest, so its layers go as they are (as with --preserve-digests).
    #[arg(long, conflicts_with = "compression")]
    referrers: bool,
    #[command(flatten)]
    flags: PushFlags,
    #[command(flatten)]
    layers: LayerArgs,
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
    // With --referrers the layers go as they are (the verb sees to it): no cache to open.
    let layer_compression = match args.referrers {
        true => hoist::layer::Compression::None,
        false => args.layers.compression(&source)?,
    };
    let flags = PushFlags { layer_compression, ..args.flags.clone() };
    let session = args.registry.session(flags.retry(), flags.dry_run)?;
    let options = PublishOptions {
        platform: args.platform.as_deref().map(str::parse).transpose()?,
        ..flags.publish_options(&session)?
    };
    let referrers = args.referrers.then(|| ReferrerOptions {
        transfer: args.flags.transfer_options(&session),
        upload: args.flags.upload_options(),
        ..ReferrerOptions::default()
    });
    let request = Copy {
        publish: Publish { from: source, to: destination.clone(), options },
        referrers,
        name: args.source.clone(),
    };
    let observer = Progress::new(quiet, flags.dry_run);
    let copied = hoist::ops::copy(&session, &request, &observer);
    observer.finish();
    let copied = copied?;
    published(&copied.report, &flags, &destination, quiet)?;
    if let (Some(count), false) = (copied.referrers_copied, quiet) {
        eprintln!("copied {count} referrer(s)");
    }
    print_report(&copied.report, args.json)
}
