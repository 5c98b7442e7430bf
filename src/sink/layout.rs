//! An OCI layout as a sink: blobs and manifests staged beside it, moved in with the tags on
//! [`Sink::tag`], all or nothing.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{BlobOutcome, Sink};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layout::{Layout, LayoutWriter};
use crate::model::{Descriptor, RawManifest};
use crate::source::Source;

/// Writes into an OCI layout; nothing lands until the tags are written.
pub struct LayoutSink {
    existing: Option<Layout>,
    writer: Arc<Mutex<Option<LayoutWriter>>>,
    target: std::path::PathBuf,
}

impl LayoutSink {
    /// Prepares to write into `dir` (a layout, an empty directory, or a path to create).
    pub fn begin(dir: &Path) -> Result<LayoutSink> {
        let writer = LayoutWriter::begin(dir)?;
        Ok(LayoutSink {
            existing: Layout::open(dir).ok(),
            writer: Arc::new(Mutex::new(Some(writer))),
            target: dir.to_path_buf(),
        })
    }

    fn has(&self, digest: &Digest, size: Option<u64>) -> bool {
        let in_layout = self.existing.as_ref().is_some_and(|layout| {
            std::fs::metadata(layout.blob_path(digest)).is_ok_and(|m| size.is_none_or(|s| m.len() == s))
        });
        in_layout || self.writer.lock().ok().and_then(|w| w.as_ref().map(|w| w.has_staged(digest))).unwrap_or(false)
    }

    fn closed(&self) -> Error {
        Error::invalid("layout", self.target.display().to_string(), "it was already committed")
    }

    /// Writes `bytes` as a blob on a blocking thread and checks it has `expected`'s digest.
    async fn stage(&self, chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>, expected: &Descriptor) -> Result<()> {
        let writer = Arc::clone(&self.writer);
        let target = self.target.clone();
        let expected_digest = expected.digest.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut chunks = chunks;
            let mut blob = {
                let guard = writer.lock().map_err(|_| Error::invalid("layout", "", "a writer panicked"))?;
                guard.as_ref().ok_or_else(|| Error::invalid("layout", "", "it was already committed"))?.blob()?
            };
            while let Some(chunk) = chunks.blocking_recv() {
                blob.write_all(&chunk).at("write a blob into", &target)?;
            }
            let mut guard = writer.lock().map_err(|_| Error::invalid("layout", "", "a writer panicked"))?;
            let writer = guard.as_mut().ok_or_else(|| Error::invalid("layout", "", "it was already committed"))?;
            writer.add_blob_expecting(blob, Some(&expected_digest))?;
            Ok(())
        });
        task.await.map_err(|e| Error::invalid("layout", self.target.display().to_string(), e.to_string()))?
    }
}

impl Sink for LayoutSink {
    fn name(&self) -> String {
        format!("oci:{}", self.target.display())
    }

    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.has(&descriptor.digest, Some(descriptor.size))) })
    }

    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>> {
        Box::pin(async move {
            progress.store(0, Ordering::Relaxed);
            let mut blob = source.blob(descriptor, 0).await?;
            let (sender, receiver) = tokio::sync::mpsc::channel(8);
            let reading = async move {
                while let Some(chunk) = blob.next_chunk().await? {
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if sender.send(chunk).await.is_err() {
                        break;
                    }
                }
                Ok::<_, Error>(())
            };
            let (read, staged) = tokio::join!(reading, self.stage(receiver, descriptor));
            read?;
            staged?;
            Ok(BlobOutcome::Pushed)
        })
    }

    fn has_manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.has(digest, None)) })
    }

    fn put_manifest<'a>(&'a self, manifest: &'a RawManifest) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            let _ = sender.send(bytes::Bytes::copy_from_slice(&manifest.bytes)).await;
            drop(sender);
            self.stage(receiver, &manifest.descriptor()).await
        })
    }

    fn tag<'a>(&'a self, root: &'a RawManifest, tags: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(async move {
            let writer = self.writer.lock().ok().and_then(|mut w| w.take()).ok_or_else(|| self.closed())?;
            let root = root.descriptor();
            let owned = tags.to_vec();
            tokio::task::spawn_blocking(move || writer.commit_tags(root, &owned))
                .await
                .map_err(|e| Error::invalid("layout", self.target.display().to_string(), e.to_string()))??;
            Ok(vec![true; tags.len()])
        })
    }
}
