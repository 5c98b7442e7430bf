//! Uncompressed layers compressed on their way to a registry, as docker push, crane and skopeo
//! do: what `docker save` and `podman save` archives hold is plain tar, and a registry image
//! with plain tar layers is refused by some tools (crane validate) and costs every pull.
//!
//! [`compress_layers`] rewrites a [`Plan`] before it is walked: each `tar` layer of an OCI
//! image manifest becomes a `tar+gzip` (or `tar+zstd`) blob, compressed by the build's parallel
//! compressor into hoist's cache (without one, into a temporary file that has no name) and held
//! open for the transfer, so that evictions cannot take it and a killed process leaves nothing
//! behind but the cache's own blob; the manifests that name those layers, and the indexes that
//! name those manifests, are rewritten with the new digests and sizes. The config is unchanged
//! (its diff_ids are the digests of the uncompressed tars). The transfer engine then sends
//! ordinary blobs from [`Compressed`].
//!
//! The cache keys a compressed layer on its tar's digest and the compression's identity, as
//! the build does, so a second push of the same archive compresses nothing and names the same
//! digests. Layers already compressed, foreign layers (with `urls`) and the layers of Docker
//! manifests are left as they are.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::blob::{copy_to_writer, held_chunks, BlobStream};
use crate::cache::{Cache, CacheWriter, CachedBlob, CachedLayer, LayerKey};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::blocking;
use crate::graph::Plan;
use crate::layer::{Compression, ParallelCompressor};
use crate::location::Location;
use crate::model::{Descriptor, Document, MediaType, RawManifest};
use crate::reference::Reference;
use crate::source::Source;

/// What compressing a plan's layers did, and the source that serves the rewritten plan.
pub struct Compressed<'a> {
    /// Layers compressed (each digest once).
    pub layers: usize,
    /// The digest of the plan's root before: the source's.
    pub source_root: Digest,
    /// The source the plan reads from: the compressed layers (held open) and the rewritten
    /// manifests of its own, everything else from the original source.
    pub source: StagedSource<'a>,
}

/// Whether `layer` of a manifest of `manifest_type` is compressed on the way: a plain `tar`
/// layer of an OCI image manifest that the registry is to hold (no `urls`).
fn compressible(manifest_type: &MediaType, layer: &Descriptor) -> bool {
    *manifest_type == MediaType::OciManifest
        && layer.media_type == MediaType::OciLayer
        && !layer.extra.contains_key("urls")
}

/// How many layers of `plan` (each digest once) [`compress_layers`] would compress.
pub fn compressible_layers(plan: &Plan) -> usize {
    let mut layers = HashSet::new();
    for manifest in &plan.manifests {
        if let Ok(Document::Image(image)) = manifest.parse("manifest") {
            layers.extend(
                image.layers.iter().filter(|l| compressible(&manifest.media_type, l)).map(|l| l.digest.clone()),
            );
        }
    }
    layers.len()
}

/// Compresses the uncompressed layers of `plan` (read from `source`) with `compression` at
/// `level`, through `cache` (into unnamed temporary files when `None`). `None` when there is
/// nothing to compress, or `compression` is [`Compression::None`]: the plan goes as it is.
/// Otherwise the rewritten plan (new layer descriptors, new manifests, a new root) and what was
/// done.
pub async fn compress_layers<'a>(
    plan: &Plan,
    source: &'a dyn Source,
    compression: Compression,
    level: u32,
    cache: Option<&Cache>,
) -> Result<Option<(Plan, Compressed<'a>)>> {
    if compression == Compression::None || compressible_layers(plan) == 0 {
        return Ok(None);
    }
    let mut rewriter = Rewriter {
        source,
        compression,
        level,
        cache,
        layers: HashMap::new(),
        staged: HashMap::new(),
        manifests: HashMap::new(),
    };
    let mut manifests = Vec::with_capacity(plan.manifests.len());
    for manifest in &plan.manifests {
        manifests.push(rewriter.rewrite(manifest).await?);
    }
    if let Some(Err(e)) = cache.map(Cache::evict) {
        tracing::warn!("hoist's cache: {e}");
    }
    let by_digest = manifests.iter().map(|m| (m.digest.clone(), m.clone())).collect();
    let rewritten = Plan { blobs: blobs_of(&manifests)?, manifests };
    let done = Compressed {
        layers: rewriter.staged.len(),
        source_root: plan.root().digest.clone(),
        source: StagedSource { inner: source, staged: rewriter.staged, manifests: by_digest },
    };
    Ok(Some((rewritten, done)))
}

/// Rewrites manifests, children before parents, with their layers compressed.
struct Rewriter<'s, 'a> {
    source: &'a dyn Source,
    compression: Compression,
    level: u32,
    cache: Option<&'s Cache>,
    /// Old layer digest → its compressed layer.
    layers: HashMap<Digest, Descriptor>,
    /// New layer digest → its blob.
    staged: HashMap<Digest, Held>,
    /// Old manifest digest → the rewritten manifest's descriptor.
    manifests: HashMap<Digest, Descriptor>,
}

impl Rewriter<'_, '_> {
    /// `manifest` with its compressible layers (an image) or its rewritten entries (an index)
    /// replaced; as it is when there are none.
    async fn rewrite(&mut self, manifest: &RawManifest) -> Result<RawManifest> {
        let what = format!("manifest {} in {}", manifest.digest, self.source.name());
        let json = |source| Error::Json { what: what.clone(), source };
        let mut document: Value = serde_json::from_slice(&manifest.bytes).map_err(json)?;
        let mut changed = false;
        match manifest.parse(&what)? {
            Document::Image(image) => {
                for (n, layer) in image.layers.iter().enumerate() {
                    if !compressible(&manifest.media_type, layer) {
                        continue;
                    }
                    let new = match self.layers.get(&layer.digest) {
                        Some(new) => new.clone(),
                        None => {
                            let how = (self.compression, self.level);
                            let (new, held) = compress_layer(self.source, layer, how, self.cache).await?;
                            self.layers.insert(layer.digest.clone(), new.clone());
                            self.staged.insert(new.digest.clone(), held);
                            new
                        }
                    };
                    document["layers"][n] = serde_json::to_value(&new).map_err(json)?;
                    changed = true;
                }
            }
            Document::Index(index) => {
                for (n, entry) in index.manifests.iter().enumerate() {
                    if let Some(new) = self.manifests.get(&entry.digest) {
                        document["manifests"][n]["digest"] = Value::String(new.digest.to_string());
                        document["manifests"][n]["size"] = Value::from(new.size);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return Ok(manifest.clone());
        }
        let bytes = crate::json::canonical(&document, &what)?;
        let new = RawManifest::new(bytes, Some(manifest.media_type.clone()), &what)?;
        self.manifests.insert(manifest.digest.clone(), new.descriptor());
        Ok(new)
    }
}

/// Every blob the image manifests of `manifests` name, each once, in order.
fn blobs_of(manifests: &[RawManifest]) -> Result<Vec<Descriptor>> {
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for manifest in manifests {
        if let Document::Image(image) = manifest.parse("manifest")? {
            blobs.extend(image.blobs().filter(|b| seen.insert(b.digest.clone())).cloned());
        }
    }
    Ok(blobs)
}

/// A compressed layer, held open for the transfer: its file, and a path naming it in errors.
struct Held {
    file: Arc<File>,
    path: PathBuf,
}

/// The compressed form of `layer`, held open: from the cache when it was compressed the same
/// way before, else compressed now, streaming (the layer is read once, verified, and never
/// held whole) into the cache, or without one into an unnamed temporary file.
async fn compress_layer(
    source: &dyn Source,
    layer: &Descriptor,
    (compression, level): (Compression, u32),
    cache: Option<&Cache>,
) -> Result<(Descriptor, Held)> {
    let key = LayerKey { diff_id: layer.digest.clone(), compression: compression.identity(level) };
    // The other fields stay (annotations, say), but not `data`: the tar's bytes embedded.
    let mut extra = layer.extra.clone();
    extra.remove("data");
    let compressed = |digest: Digest, size: u64| Descriptor {
        media_type: compression.media_type(),
        digest,
        size,
        extra: extra.clone(),
        ..layer.clone()
    };
    if let Some(cache) = cache {
        if let Some((blob, held)) = cached(cache, &key).await? {
            tracing::info!("layer {}: compressed before, {} from the cache", layer.digest, blob.digest);
            return Ok((compressed(blob.digest, blob.size), held));
        }
    }
    let codec = compression
        .codec(level)
        .ok_or_else(|| Error::invalid("compression", compression.to_string(), "use gzip or zstd"))?;
    tracing::info!("layer {}: compressing it ({compression})", layer.digest);
    let place = cache.map_or_else(std::env::temp_dir, |c| c.dir().to_path_buf());
    let (owned_cache, dir) = (cache.cloned(), place.clone());
    let store = blocking::run(move || match owned_cache {
        Some(cache) => Ok::<_, Error>(Store::Cache(cache.writer()?)),
        None => Ok(Store::Unnamed(HashingWriter::new(BufWriter::new(tempfile::tempfile().at("write in", &dir)?)))),
    })
    .await?;
    let compressor = ParallelCompressor::new(store, codec).at("start compressing", &place)?;
    let compressor = copy_to_writer(source.blob(layer, 0).await?, compressor, &AtomicU64::new(0)).await?;
    let (owned_cache, dir, owned_key) = (cache.cloned(), place.clone(), key.clone());
    let (diff_id, (stored, file)) = blocking::run(move || {
        let (diff_id, store) = compressor.finish().at("compress a layer into", &dir)?;
        let (stored, file) = store.keep(&dir)?;
        if let (Some(cache), true) = (owned_cache, diff_id == owned_key.diff_id) {
            cache.record_layer(&owned_key, &CachedLayer { digest: stored.digest.clone(), size: stored.size })?;
        }
        Ok::<_, Error>((diff_id, (stored, file)))
    })
    .await?;
    if diff_id != layer.digest {
        return Err(Error::DigestMismatch {
            what: format!("layer read from {}", source.name()),
            expected: layer.digest.to_string(),
            found: diff_id.to_string(),
        });
    }
    let path = cache.map_or(place, |cache| cache.blob_path(&stored.digest));
    Ok((compressed(stored.digest, stored.size), Held { file: Arc::new(file), path }))
}

/// The blob the layer `key` became before, opened from `cache` and verified (on a blocking
/// thread); `None` when there is none, or it is gone or damaged.
async fn cached(cache: &Cache, key: &LayerKey) -> Result<Option<(CachedBlob, Held)>> {
    let (cache, key) = (cache.clone(), key.clone());
    blocking::run(move || {
        let Some(found) = cache.layer(&key)? else { return Ok(None) };
        Ok(cache.open_blob(&found.digest)?.map(|(file, size)| {
            let held = Held { file: Arc::new(file), path: cache.blob_path(&found.digest) };
            (CachedBlob { digest: found.digest, size }, held)
        }))
    })
    .await
}

/// Where a layer is compressed to: hoist's cache, or without one a temporary file that has no
/// name (nothing of it outlives the process, killed or not).
enum Store {
    Cache(CacheWriter),
    Unnamed(HashingWriter<BufWriter<File>>),
}

impl Store {
    /// The blob written (its digest and size), open; `dir` names where in errors.
    fn keep(self, dir: &std::path::Path) -> Result<(CachedBlob, File)> {
        match self {
            Store::Cache(writer) => writer.commit_open(None),
            Store::Unnamed(writer) => {
                let (digest, size, buffered) = writer.finish();
                let file = buffered.into_inner().map_err(|e| Error::io("write in", dir, e.into_error()))?;
                Ok((CachedBlob { digest, size }, file))
            }
        }
    }
}

impl Write for Store {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Store::Cache(writer) => writer.write(buf),
            Store::Unnamed(writer) => writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Store::Cache(writer) => writer.flush(),
            Store::Unnamed(writer) => writer.flush(),
        }
    }
}

/// A source with compressed layers (held open) and rewritten manifests of its own; everything
/// else is read from the original source.
pub struct StagedSource<'a> {
    inner: &'a dyn Source,
    staged: HashMap<Digest, Held>,
    manifests: HashMap<Digest, RawManifest>,
}

impl Source for StagedSource<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn location(&self) -> Location {
        self.inner.location()
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        self.inner.root()
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        match self.manifests.get(digest) {
            Some(manifest) => Box::pin(std::future::ready(Ok(manifest.clone()))),
            None => self.inner.manifest(digest),
        }
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        match self.staged.get(&descriptor.digest) {
            Some(held) => {
                let (file, length) = (Arc::clone(&held.file), descriptor.size.saturating_sub(offset));
                let chunks = held_chunks(file, held.path.clone(), offset, length);
                Box::pin(std::future::ready(Ok(BlobStream::new(chunks, descriptor, offset, self.name()))))
            }
            None => self.inner.blob(descriptor, offset),
        }
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        match self.staged.contains_key(&descriptor.digest) {
            true => Box::pin(std::future::ready(Ok(()))),
            false => self.inner.check_blob(descriptor),
        }
    }

    fn origin(&self, digest: &Digest) -> Option<Reference> {
        match self.staged.contains_key(digest) {
            true => None,
            false => self.inner.origin(digest),
        }
    }

    fn seekable(&self) -> bool {
        self.inner.seekable()
    }
}
