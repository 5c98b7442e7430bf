//! An OCI layout as a sink: blobs and manifests staged beside it, moved in with the tags on
//! [`Sink::commit`], all or nothing.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{BlobOutcome, Sink};
use crate::blob::copy_to_writer;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::blocking;
use crate::layout::{BlobWriter, Layout, LayoutWriter};
use crate::model::{Descriptor, RawManifest};
use crate::reference::ManifestRef;
use crate::source::Source;

/// A root and the tags that are to name it.
type Tagged = (Descriptor, Vec<String>);

/// Writes into an OCI layout; nothing lands until it is committed. Its file work runs
/// off the async threads, on a clone (the writer is shared).
#[derive(Clone)]
pub struct LayoutSink {
    existing: Option<Layout>,
    writer: Arc<Mutex<Option<LayoutWriter>>>,
    /// The root and the tags to point at it, kept by `tag` for `commit`.
    tagged: Arc<Mutex<Option<Tagged>>>,
    target: std::path::PathBuf,
}

impl LayoutSink {
    /// Prepares to write into `dir` (a layout, an empty directory, or a path to create).
    pub fn begin(dir: &Path) -> Result<LayoutSink> {
        let writer = LayoutWriter::begin(dir)?;
        Ok(LayoutSink {
            existing: Layout::open(dir).ok(),
            writer: Arc::new(Mutex::new(Some(writer))),
            tagged: Arc::new(Mutex::new(None)),
            target: dir.to_path_buf(),
        })
    }

    fn has_now(&self, digest: &Digest, size: Option<u64>) -> bool {
        let in_layout = self.existing.as_ref().is_some_and(|layout| {
            std::fs::metadata(layout.blob_path(digest)).is_ok_and(|m| size.is_none_or(|s| m.len() == s))
        });
        in_layout || self.writer.lock().ok().and_then(|w| w.as_ref().map(|w| w.has_staged(digest))).unwrap_or(false)
    }

    /// Whether the layout has, or the staging area holds, `digest` (of `size` bytes).
    async fn has(&self, digest: &Digest, size: Option<u64>) -> bool {
        let (this, digest) = (self.clone(), digest.clone());
        blocking::run(move || this.has_now(&digest, size)).await
    }

    fn closed(&self) -> Error {
        Error::invalid("layout", self.target.display().to_string(), "it was already committed")
    }

    /// Runs `work` on the staging writer, off the async threads.
    async fn on_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LayoutWriter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        blocking::run(move || {
            let mut guard = this
                .writer
                .lock()
                .map_err(|_| Error::invalid("layout", this.target.display().to_string(), "a writer panicked"))?;
            work(guard.as_mut().ok_or_else(|| this.closed())?)
        })
        .await
    }

    /// Names a finished blob in the staging area, refusing it unless it has `expected`'s
    /// digest (it syncs the file).
    async fn add(&self, blob: BlobWriter, expected: &Descriptor) -> Result<()> {
        let digest = expected.digest.clone();
        self.on_writer(move |writer| writer.add_blob_expecting(blob, Some(&digest)).map(|_| ())).await
    }
}

impl Sink for LayoutSink {
    fn name(&self) -> String {
        format!("oci:{}", self.target.display())
    }

    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.has(&descriptor.digest, Some(descriptor.size)).await) })
    }

    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>> {
        Box::pin(async move {
            progress.store(0, Ordering::Relaxed);
            let blob = source.blob(descriptor, 0).await?;
            let written = copy_to_writer(blob, self.on_writer(|writer| writer.blob()).await?, progress).await?;
            self.add(written, descriptor).await?;
            Ok(BlobOutcome::Pushed)
        })
    }

    fn has_manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.has(digest, None).await) })
    }

    fn put_manifest<'a>(&'a self, manifest: &'a RawManifest) -> BoxFuture<'a, Result<()>> {
        let (bytes, digest, target) = (manifest.bytes.clone(), manifest.digest.clone(), self.target.clone());
        Box::pin(self.on_writer(move |writer| {
            let mut blob = writer.blob()?;
            blob.write_all(&bytes).at("write a manifest into", &target)?;
            writer.add_blob_expecting(blob, Some(&digest)).map(|_| ())
        }))
    }

    fn resolve<'a>(&'a self, reference: &'a ManifestRef) -> BoxFuture<'a, Result<Option<Digest>>> {
        Box::pin(async move {
            let Some(layout) = self.existing.clone() else { return Ok(None) };
            match reference {
                ManifestRef::Digest(digest) => Ok(self.has(digest, None).await.then(|| digest.clone())),
                ManifestRef::Tag(tag) => {
                    let tag = tag.clone();
                    Ok(blocking::run(move || layout.find_tag(&tag)).await?.map(|d| d.digest))
                }
            }
        })
    }

    fn tag<'a>(&'a self, root: &'a RawManifest, tags: &'a [String], _fresh: bool) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(async move {
            let mut tagged = self.tagged.lock().map_err(|_| self.closed())?;
            *tagged = Some((root.descriptor(), tags.to_vec()));
            Ok(vec![true; tags.len()])
        })
    }

    fn commit(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tagged = self.tagged.lock().ok().and_then(|mut t| t.take());
            let Some((root, tags)) = tagged else { return Ok(()) };
            let writer = self.writer.lock().ok().and_then(|mut w| w.take()).ok_or_else(|| self.closed())?;
            blocking::run(move || writer.commit_tags(root, &tags)).await
        })
    }
}
