//! Where content is written: an OCI layout, an archive (oci-archive, docker-archive) or a
//! registry repository, behind one interface.

mod archive;
mod layout;
mod registry;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;

pub use self::archive::{one_platform, ArchiveFormat, ArchiveSink};
pub use self::layout::LayoutSink;
pub use self::registry::{RegistrySink, UploadOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::location::{ArchiveImage, Location};
use crate::model::{Descriptor, RawManifest};
use crate::reference::ManifestRef;
use crate::registry::Client;
use crate::source::Source;

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Uploaded (or, in a dry run, would be).
    Pushed,
    /// Already there.
    Skipped,
    /// Mounted from this other repository.
    Mounted(String),
}

/// Content to write to.
pub trait Sink: Send + Sync {
    /// Its name for messages.
    fn name(&self) -> String;

    /// Whether it has the blob already.
    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>>;

    /// Writes one blob read from `source`, counting bytes sent in `progress`. One attempt: the
    /// transfer engine retries, and a sink keeps what it learnt (an upload session, how much
    /// the registry holds) for the next attempt.
    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>>;

    /// Whether it has the manifest `digest` already.
    fn has_manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>>;

    /// Writes a manifest by digest.
    fn put_manifest<'a>(&'a self, manifest: &'a RawManifest) -> BoxFuture<'a, Result<()>>;

    /// Points `tags` at `root`, last of all; returns, per tag, whether it was written (false:
    /// it named `root` already). With `fresh` (the root was just written, so no tag can name
    /// it yet) nothing is looked up first. A layout or an archive keeps them for [`commit`].
    ///
    /// [`commit`]: Sink::commit
    fn tag<'a>(&'a self, root: &'a RawManifest, tags: &'a [String], fresh: bool) -> BoxFuture<'a, Result<Vec<bool>>>;

    /// Makes what was written final, once, after the tags: a layout's staged blobs and its
    /// `index.json` move in, an archive's tar is written and renamed into place. A registry
    /// has nothing left to do (each of its writes was final). Without a call, a layout or an
    /// archive is left as it was.
    fn commit(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The digest `reference` (a tag or digest) names here now, if any.
    fn resolve<'a>(&'a self, reference: &'a ManifestRef) -> BoxFuture<'a, Result<Option<Digest>>>;

    /// Whether [`Sink::tag`] writes the manifest it tags (a registry's PUT by tag does): then
    /// the root of a tagged transfer is not written by digest first, one request less.
    fn tag_writes_manifest(&self) -> bool {
        false
    }

    /// Whether uncompressed layers are compressed on their way here: a registry, as docker
    /// push, crane and skopeo do; layouts and archives keep them as they are.
    fn compresses_layers(&self) -> bool {
        false
    }

    /// Retries its client made, for reports.
    fn retry_count(&self) -> u32 {
        0
    }

    /// Bytes not sent again because a previous run's upload session was continued.
    fn resumed_bytes(&self) -> u64 {
        0
    }
}

/// The sink for `location`; registry locations write through `client`. A layout's tag and a
/// reference's tag are where [`Sink::tag`] points, with `extra_tags`.
pub fn open<'a>(location: &Location, client: &'a Client, upload: UploadOptions) -> Result<Box<dyn Sink + 'a>> {
    match location {
        Location::Registry(reference) => {
            location.check_output()?;
            Ok(Box::new(RegistrySink::new(client, reference, upload)))
        }
        files => open_files(files),
    }
}

/// The sink for a layout or an archive.
fn open_files(location: &Location) -> Result<Box<dyn Sink + 'static>> {
    location.check_output()?;
    Ok(match location {
        Location::Layout { dir, .. } => Box::new(LayoutSink::begin(dir)?),
        Location::OciArchive { file, .. } => Box::new(ArchiveSink::begin(ArchiveFormat::Oci, file)?),
        Location::DockerArchive { file, .. } => Box::new(ArchiveSink::begin(ArchiveFormat::Docker, file)?),
        Location::Registry(reference) => {
            return Err(Error::invalid("output", reference.to_string(), "a registry is not a file output"))
        }
    })
}

/// [`open`] from async code: a layout or an archive is begun on the blocking pool.
pub async fn open_async<'a>(
    location: &Location,
    client: &'a Client,
    upload: UploadOptions,
) -> Result<Box<dyn Sink + 'a>> {
    match location {
        Location::Registry(_) => open(location, client, upload),
        files => {
            let files = files.clone();
            let sink: Box<dyn Sink> = crate::fsutil::blocking::run(move || open_files(&files)).await?;
            Ok(sink)
        }
    }
}

/// The tags a location names: its own, if any, then `extra`.
pub fn tags_of(location: &Location, extra: &[String]) -> Vec<String> {
    let own = match location {
        Location::Layout { tag, .. } => tag.clone(),
        Location::Registry(reference) => reference.tag.clone(),
        Location::OciArchive { tag, .. } => tag.clone(),
        Location::DockerArchive { image: Some(ArchiveImage::Named(name)), .. } => Some(name.clone()),
        Location::DockerArchive { .. } => None,
    };
    own.into_iter().chain(extra.iter().cloned()).collect()
}
