//! Publishing: any source (a layout, an archive, a registry) to a sink (a registry, a layout,
//! an archive), the way `push`, `copy` and `build --push` all do it: one plan, one transfer
//! (blobs, then manifests by digest, tags last), then the digest file.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::Format;
use crate::location::Location;
use crate::model::RawManifest;
use crate::platform::Platform;
use crate::session::Session;
use crate::sink::UploadOptions;
use crate::source::{Fallback, Source};
use crate::transfer::{Observer, Report, TransferOptions};

/// What to publish, and where.
#[derive(Clone, Debug)]
pub struct Publish {
    /// What to send: a layout, an archive or a registry reference.
    pub from: Location,
    /// Where to: a registry reference (its tag, if any, is set last), a layout or an archive.
    pub to: Location,
    /// How.
    pub options: PublishOptions,
}

/// How to publish; the defaults are those of the command line.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Only this platform's image of an index (an archive of docker's kind holds one image).
    pub platform: Option<Platform>,
    /// Blobs the source lacks and the place that has them: a base image's layers left in its
    /// registry, mounted or streamed from there.
    pub elsewhere: Option<(Location, Vec<Digest>)>,
    /// More tags to set on the destination's repository.
    pub tags: Vec<String>,
    /// Set no tag at all: the result is reachable by digest only.
    pub by_digest_only: bool,
    /// Write an index as an OCI index or a Docker manifest list (its digest changes).
    pub format: Option<Format>,
    /// How the transfer runs: jobs, retries, dry run, layer compression.
    pub transfer: TransferOptions,
    /// How blobs go up to a registry: chunks, stall timeout, mount sources.
    pub upload: UploadOptions,
    /// A file to write the published digest to (not on a dry run).
    pub digest_file: Option<PathBuf>,
}

impl Publish {
    /// Publishing `from` to `to` with the defaults of the command line.
    pub fn new(from: Location, to: Location) -> Publish {
        Publish { from, to, options: PublishOptions::default() }
    }
}

/// Sends what `request.from` names to `request.to`, telling `observer` as it goes.
pub fn publish(session: &Session, request: &Publish, observer: &dyn Observer) -> Result<Report> {
    let options = &request.options;
    if let Some(bad) = options.tags.iter().find(|t| !crate::reference::is_tag(t)) {
        return Err(Error::invalid(
            "tag",
            bad.as_str(),
            "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        ));
    }
    let client = session.client();
    let mut source = crate::source::open(&request.from, client)?;
    if let Some((location, digests)) = &options.elsewhere {
        source = Box::new(Fallback::new(source, crate::source::open(location, client)?, digests.clone()));
    }
    let sink = crate::sink::open(&request.to, client, options.upload.clone())?;
    let tags = match options.by_digest_only {
        true => Vec::new(),
        false => crate::sink::tags_of(&request.to, &options.tags),
    };
    let report = session.block_on(async {
        let root = root_as_asked(source.as_ref(), options.format).await?;
        // A docker-archive holds one image: the only one of an index, or the one asked for.
        let single = match (&request.to, &options.platform) {
            (Location::DockerArchive { file, .. }, None) => one_image(&root, file)?,
            _ => None,
        };
        let platform = options.platform.as_ref().or(single.as_ref());
        crate::transfer::copy(source.as_ref(), sink.as_ref(), root, platform, &tags, &options.transfer, observer).await
    })?;
    if let (Some(file), false) = (&options.digest_file, options.transfer.dry_run) {
        std::fs::write(file, format!("{}\n", report.digest)).map_err(|e| Error::io("write the digest to", file, e))?;
    }
    Ok(report)
}

/// The source's root, converted to `format` when one is asked for.
async fn root_as_asked(source: &dyn Source, format: Option<Format>) -> Result<RawManifest> {
    let root = source.root().await?;
    match format {
        Some(format) => crate::index::convert(&root, format),
        None => Ok(root),
    }
}

/// For a docker-archive (one image): the platform of the only image of an index, or an error
/// asking for a platform when it has several.
fn one_image(root: &RawManifest, file: &std::path::Path) -> Result<Option<Platform>> {
    if !root.media_type.is_index() {
        return Ok(None);
    }
    let index = root.index(&file.display().to_string())?;
    let images: Vec<_> = index.manifests.iter().filter(|d| crate::model::descriptor::attests(d).is_none()).collect();
    match images.as_slice() {
        [only] => Ok(only.platform.clone()),
        _ => Err(crate::sink::one_platform(file, &crate::model::descriptor::platform_list(&index.manifests))),
    }
}
