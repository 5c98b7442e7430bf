//! Building, the whole workflow of `hoist build`: the base image resolved, layers and configs
//! built into a layout (the one asked for, or a temporary one for an archive or a push), SBOMs
//! attached beside the images, then the archive written and the result pushed with its SBOMs.
//! Every step runs in the one session, so a registry is found once and each token asked once.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::base::BaseImage;
use crate::build::{BuildOptions, BuildOutput};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::Compression;
use crate::layout::LayoutWriter;
use crate::location::Location;
use crate::ops::publish::{publish, Publish, PublishOptions};
use crate::session::Session;
use crate::transfer::{Observer, Report, Silent};

/// What to build and where it goes.
#[derive(Debug)]
pub struct Build {
    /// The images: platforms, layers, config, compression, cache.
    pub options: BuildOptions,
    /// Where to write: a layout (`oci:DIR[:TAG]`) or an archive; `None` with a push only.
    pub output: Option<Location>,
    /// The image to build on, instead of scratch.
    pub base: Option<Location>,
    /// The registry to push the result to (`Location::Registry`), with its SBOMs.
    pub push: Option<Location>,
    /// How to push (and write an archive): the layers go as they were built.
    pub publish: PublishOptions,
    /// Attach an SPDX SBOM to each platform image (in the layout, and on push).
    pub sbom: bool,
}

impl Build {
    /// Checks where the build goes before anything is built (and before a caller prepares a
    /// cache for it): an output or a push is given, and an archive goes only where a regular
    /// file may be written. [`build`] checks it again.
    pub fn check(&self) -> Result<()> {
        if self.output.is_none() && self.push.is_none() {
            return Err(Error::invalid("output", "", "give --output oci:DIR[:TAG] or an archive, or --push REF"));
        }
        match &self.output {
            Some(output @ (Location::OciArchive { file, .. } | Location::DockerArchive { file, .. })) => {
                output.check_output()?;
                crate::archive::check_target(file).map(drop)
            }
            Some(output) => output.check_output(),
            None => Ok(()),
        }
    }
}

/// What a build did.
#[derive(Debug)]
pub struct BuildReport {
    /// The images and the index built.
    pub built: BuildOutput,
    /// Where they were written, when an output was asked for.
    pub output: Option<Location>,
    /// What the push did.
    pub pushed: Option<Report>,
}

/// Told how a build goes: the compression of its layers, then its push.
pub trait BuildObserver: Observer {
    /// Layers are being built; `written` counts the bytes of compressed layers so far.
    fn building(&self, _written: Arc<AtomicU64>) {}
    /// The layers are built (or the build failed).
    fn built(&self) {}
}

impl BuildObserver for Silent {}

/// Builds what `request` describes, telling `observer`.
pub fn build(session: &Session, mut request: Build, observer: &dyn BuildObserver) -> Result<BuildReport> {
    request.check()?;
    let archive = request.output.clone().filter(|o| !matches!(o, Location::Layout { .. }));
    // A layout asked for is written in place; for an archive or a push alone, a temporary one.
    let mut scratch = None;
    let (dir, tag) = match &request.output {
        Some(Location::Layout { dir, tag, .. }) => (dir.clone(), tag.clone()),
        _ => {
            let temp = tempfile::tempdir().at("create a temporary directory in", std::env::temp_dir())?;
            let dir = temp.path().join("layout");
            scratch = Some(temp);
            (dir, None)
        }
    };
    let elsewhere = resolve_base(session, &mut request, scratch.is_none() || archive.is_some())?;
    let mut writer = LayoutWriter::begin(&dir)?;
    let written = Arc::new(AtomicU64::new(0));
    request.options.written = Some(Arc::clone(&written));
    observer.building(written);
    let built = crate::build::build(&request.options, &mut writer);
    observer.built();
    let built = built?;
    writer.commit(built.descriptor().clone(), tag.as_deref())?;
    tracing::info!("wrote {} to {}", built.digest, dir.display());
    // What was built, by digest: the layout also holds the SBOMs, and may have no tag.
    let layout = Location::Layout { dir: dir.clone(), tag: None, digest: Some(built.digest.clone()) };
    let subjects = attach_sboms(&request, &built, &dir, archive.as_ref())?;
    if let Some(archive) = &archive {
        let options = PublishOptions {
            elsewhere: elsewhere.clone(),
            transfer: for_archive(&request.publish),
            ..Default::default()
        };
        publish(session, &Publish { from: layout.clone(), to: archive.clone(), options }, &Silent)?;
    }
    let pushed = match &request.push {
        Some(to) => {
            let options = PublishOptions { elsewhere, transfer: as_built(&request.publish), ..request.publish.clone() };
            let push = Publish { from: layout, to: to.clone(), options };
            Some(push_with_sboms(session, &push, &subjects, observer)?)
        }
        None => None,
    };
    Ok(BuildReport { built, output: request.output, pushed })
}

/// Transfer options for writing the archive: layers as built, and written even when the push
/// is a dry run (as the build itself is).
fn for_archive(publish: &PublishOptions) -> crate::transfer::TransferOptions {
    crate::transfer::TransferOptions { dry_run: false, ..as_built(publish) }
}

/// The push's transfer options with the layers as they were built (no compression on the way).
fn as_built(publish: &PublishOptions) -> crate::transfer::TransferOptions {
    crate::transfer::TransferOptions { compression: Compression::None, ..publish.transfer.clone() }
}

/// Resolves the base image into the build's options. Its layers are fetched into hoist's cache
/// when they must be in the layout (`into_layout`, or for the SBOM, which reads every layer);
/// straight to a registry they stay where they are and are returned as blobs found elsewhere.
fn resolve_base(session: &Session, request: &mut Build, into_layout: bool) -> Result<Option<(Location, Vec<Digest>)>> {
    let Some(location) = request.base.clone() else { return Ok(None) };
    let fetch = into_layout || request.sbom;
    let platforms = request.options.platforms.clone();
    let client = session.client();
    let (bases, files) = session.block_on(async {
        let bases = crate::base::resolve(client, &location, &platforms).await?;
        let files = match fetch {
            true => crate::base::fetch_into_cache(client, &bases, &session.cache()?).await?,
            false => Default::default(),
        };
        Ok::<_, Error>((bases, files))
    })?;
    let elsewhere = match &location {
        Location::Registry(_) => Some((location.clone(), layer_digests(&bases))),
        _ => None,
    };
    request.options.base = bases;
    request.options.base_files = files;
    Ok(elsewhere)
}

fn layer_digests(bases: &std::collections::BTreeMap<crate::platform::Platform, BaseImage>) -> Vec<Digest> {
    bases.values().flat_map(|b| &b.layers).map(|l| l.digest.clone()).collect()
}

/// Writes an SBOM of each image into the layout at `dir` when asked; returns their subjects.
fn attach_sboms(
    request: &Build,
    built: &BuildOutput,
    dir: &std::path::Path,
    archive: Option<&Location>,
) -> Result<Vec<Digest>> {
    if !request.sbom {
        return Ok(Vec::new());
    }
    // The SBOM names the image by where it goes.
    let name = match (archive, &request.push, &request.output) {
        (Some(archive), _, _) => archive.to_string(),
        (None, Some(push), _) => push.to_string(),
        (None, None, Some(output)) => output.to_string(),
        (None, None, None) => dir.display().to_string(),
    };
    crate::sbom::attach_sboms(dir, built, &request.options.base, &name, request.options.created)
}

/// Publishes `push` (the built layout to its registry), then the SBOMs of `subjects` as
/// referrers of its images.
fn push_with_sboms(session: &Session, push: &Publish, subjects: &[Digest], observer: &dyn Observer) -> Result<Report> {
    let report = publish(session, push, observer)?;
    if !subjects.is_empty() && !push.options.transfer.dry_run {
        let options = crate::referrers::ReferrerOptions {
            transfer: push.options.transfer.clone(),
            upload: push.options.upload.clone(),
            ..Default::default()
        };
        let client = session.client();
        session.block_on(crate::referrers::copy(client, &push.from, &push.to, subjects, &options))?;
    }
    Ok(report)
}
