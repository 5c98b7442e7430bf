//! Building: per-platform images from layer sources, then an index over them.
//!
//! Everything is checked before anything is written: every platform's layer sources exist,
//! every setting is valid. Identical layers (the same source at the same destination) are built
//! once and shared between platforms.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::base::BaseImage;
use crate::cache::{Cache, CachedLayer, LayerKey};
use crate::config::{image_config, timestamp, ConfigLayer, ImageSettings};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{diff_id, write_layer, Compression, TarOptions};
use crate::layout::LayoutWriter;
use crate::model::{Descriptor, ImageIndex, ImageManifest, MediaType};
use crate::platform::Platform;

/// One `--layer SRC[:DEST]`: a source path (with placeholders) and where it goes in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSource {
    /// Source directory or file; may hold `{os}`, `{arch}`, `{variant}`, `{platform}`.
    pub source: String,
    /// Absolute destination path in the image; a directory when it ends with `/`.
    pub dest: String,
}

impl FromStr for LayerSource {
    type Err = Error;

    /// `SRC:DEST`, split at the last `:` that is followed by `/`; `SRC` alone goes to `/`.
    fn from_str(s: &str) -> Result<LayerSource> {
        let (source, dest) = match s.rfind(":/") {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, "/"),
        };
        if source.is_empty() {
            return Err(Error::invalid("layer", s, "expected SRC[:DEST], e.g. dist/{os}_{arch}/:/app/"));
        }
        if dest.split('/').any(|part| part == "..") {
            return Err(Error::invalid(
                "layer",
                s,
                "its destination has a '..' component, which would reach outside the image root; give an absolute path inside it",
            ));
        }
        Ok(LayerSource { source: source.to_owned(), dest: dest.to_owned() })
    }
}

/// Everything a build needs.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Platforms to build, in index order.
    pub platforms: Vec<Platform>,
    /// Layers, in order, bottom first.
    pub layers: Vec<LayerSource>,
    /// Directory that relative layer sources are relative to.
    pub context: PathBuf,
    /// Exclusion patterns applied to every layer, after each source's `.hoistignore`.
    pub excludes: Vec<String>,
    /// Tar normalization.
    pub tar: TarOptions,
    /// Layer compression.
    pub compression: Compression,
    /// Compression level; the algorithm's default when `None`.
    pub compression_level: Option<u32>,
    /// Image configuration settings.
    pub image: ImageSettings,
    /// Annotations on each manifest and on the index.
    pub annotations: BTreeMap<String, String>,
    /// The `created` time of configs and history, in seconds since the epoch.
    pub created: u64,
    /// Write a single-platform image manifest instead of an index.
    pub no_index: bool,
    /// Base image per platform; empty for `FROM scratch`.
    pub base: BTreeMap<Platform, BaseImage>,
    /// Base layer files to put into the layout (from hoist's cache). A base layer without a
    /// file here is left out of the layout: the push takes it from the base's registry.
    pub base_files: BTreeMap<Digest, PathBuf>,
    /// The layer cache; `None` compresses every layer.
    pub cache: Option<Cache>,
    /// Counts the bytes of compressed layers as they are written, for progress displays.
    pub written: Option<Arc<AtomicU64>>,
}

/// A writer that adds what goes through it to a shared counter.
struct Counted<W> {
    inner: W,
    count: Option<Arc<AtomicU64>>,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(count) = &self.count {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One layer as built.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltLayer {
    /// The expanded source path.
    pub source: PathBuf,
    /// Destination in the image.
    pub dest: String,
    /// Layer media type.
    pub media_type: MediaType,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Whether the blob came from the layer cache instead of being compressed.
    pub cached: bool,
}

/// One platform's image as built.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltImage {
    /// Its platform.
    pub platform: Platform,
    /// Digest of its manifest.
    pub digest: Digest,
    /// Size of its manifest.
    pub size: u64,
    /// Digest of its config.
    pub config: Digest,
    /// Its layers, bottom first.
    pub layers: Vec<BuiltLayer>,
}

/// The result of a build: the root (index, or manifest with `no_index`) and each image.
#[derive(Clone, Debug, Serialize)]
pub struct BuildOutput {
    /// Media type of the root.
    pub media_type: MediaType,
    /// Digest of the root: what a tag should name.
    pub digest: Digest,
    /// Size of the root.
    pub size: u64,
    /// The per-platform images.
    pub images: Vec<BuiltImage>,
    /// How many distinct layers came from the layer cache.
    pub cached_layers: usize,
    /// How many distinct layers were built.
    pub built_layers: usize,
    #[serde(skip)]
    descriptor: Descriptor,
}

impl BuildOutput {
    /// The root's descriptor, for `index.json` or a registry.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
}

/// Reads `$SOURCE_DATE_EPOCH`: the reproducible-builds convention for timestamps.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => {
            let seconds = value.trim().parse().map_err(|_| {
                Error::invalid("SOURCE_DATE_EPOCH", value.as_str(), "expected whole seconds since 1970-01-01")
            })?;
            crate::config::check_timestamp("SOURCE_DATE_EPOCH", seconds).map(Some)
        }
        Err(_) => Ok(None),
    }
}

impl BuildOptions {
    /// The expanded, existing source of every layer for every platform; fails on the first
    /// missing one, naming it and its platform.
    fn plan(&self) -> Result<Vec<Vec<PathBuf>>> {
        if self.platforms.is_empty() {
            return Err(Error::invalid("platforms", "", "give at least one --platform, e.g. linux/amd64"));
        }
        let mut seen = std::collections::HashSet::new();
        for platform in &self.platforms {
            if !seen.insert(platform) {
                return Err(Error::invalid("platform", platform.to_string(), "it is given twice"));
            }
        }
        if self.layers.is_empty() {
            return Err(Error::invalid("layers", "", "give at least one --layer SRC[:DEST]"));
        }
        if self.no_index && self.platforms.len() != 1 {
            return Err(Error::invalid(
                "--no-index",
                self.platforms.len().to_string(),
                "a plain manifest holds one platform; drop --no-index or build one platform",
            ));
        }
        let compression_level = self.level();
        self.compression.check_level(compression_level)?;
        self.image.validate()?;
        for layer in &self.layers {
            if !layer.dest.starts_with('/') {
                return Err(Error::invalid("layer destination", &layer.dest, "use an absolute path such as /app/"));
            }
        }
        self.platforms
            .iter()
            .map(|platform| {
                self.layers
                    .iter()
                    .map(|layer| {
                        let path = self.context.join(platform.expand(&layer.source)?);
                        if std::fs::symlink_metadata(&path).is_err() {
                            return Err(Error::SourceMissing { path, platform: platform.to_string() });
                        }
                        Ok(path)
                    })
                    .collect()
            })
            .collect()
    }

    fn level(&self) -> u32 {
        self.compression_level.unwrap_or(self.compression.default_level())
    }
}

/// Builds every platform's image and the index into `writer`'s staging area.
///
/// Nothing reaches the layout until the caller commits `writer` with the returned root.
pub fn build(options: &BuildOptions, writer: &mut LayoutWriter) -> Result<BuildOutput> {
    let sources = options.plan()?;
    let created = timestamp(options.created);
    let mut built_layers: HashMap<(PathBuf, String), BuiltLayer> = HashMap::new();
    let mut images = Vec::new();
    for (platform, paths) in options.platforms.iter().zip(&sources) {
        let mut layers = Vec::new();
        for (layer, path) in options.layers.iter().zip(paths) {
            let key = (path.clone(), layer.dest.clone());
            if !built_layers.contains_key(&key) {
                tracing::info!("building layer {} -> {} for {platform}", path.display(), layer.dest);
                let built = build_layer(options, path, &layer.dest, writer)?;
                built_layers.insert(key.clone(), built);
            }
            layers.push(built_layers[&key].clone());
        }
        images.push(build_image(options, platform, layers, &created, writer)?);
    }
    let cached_layers = built_layers.values().filter(|l| l.cached).count();
    if let Some(cache) = &options.cache {
        // The layout holds its own links to the blobs it uses, so eviction cannot hurt it.
        let eviction = cache.evict()?;
        if eviction.removed > 0 {
            tracing::info!("layer cache: evicted {} blobs ({} bytes)", eviction.removed, eviction.freed);
        }
    }
    if options.no_index {
        let image = images.remove(0);
        let descriptor = Descriptor::new(MediaType::OciManifest, image.digest.clone(), image.size);
        return Ok(BuildOutput {
            media_type: MediaType::OciManifest,
            digest: image.digest.clone(),
            size: image.size,
            images: vec![image],
            cached_layers,
            built_layers: built_layers.len(),
            descriptor,
        });
    }
    let manifests = images
        .iter()
        .map(|image| {
            Descriptor::new(MediaType::OciManifest, image.digest.clone(), image.size)
                .with_platform(Some(image.platform.clone()))
        })
        .collect();
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        manifests,
        annotations: options.annotations.clone(),
    };
    let (digest, size) = writer.add_json(&index, "image index")?;
    Ok(BuildOutput {
        media_type: MediaType::OciIndex,
        descriptor: Descriptor::new(MediaType::OciIndex, digest.clone(), size),
        digest,
        size,
        images,
        cached_layers,
        built_layers: built_layers.len(),
    })
}

fn build_layer(options: &BuildOptions, path: &Path, dest: &str, writer: &mut LayoutWriter) -> Result<BuiltLayer> {
    let level = options.level();
    let layer = |digest: Digest, size: u64, diff_id: Digest, cached: bool| BuiltLayer {
        source: path.to_path_buf(),
        dest: dest.to_owned(),
        media_type: options.compression.media_type(),
        digest,
        size,
        diff_id,
        cached,
    };
    let Some(cache) = &options.cache else {
        let blob = Counted { inner: writer.blob()?, count: options.written.clone() };
        let (diff_id, blob) =
            write_layer(path, dest, &options.excludes, &options.tar, options.compression, level, blob)?;
        let (digest, size) = writer.add_blob(blob.inner)?;
        return Ok(layer(digest, size, diff_id, false));
    };
    let compression = options.compression.identity(level);
    let key = |diff_id: &Digest| LayerKey { diff_id: diff_id.clone(), compression: compression.clone() };
    let source = source_key(options, path, dest, &compression);
    // When this source became a cached blob last time, it probably did not change: hash the
    // tar first (cheap) and compress only on a miss. Otherwise compress in the same pass.
    let predicted = match cache.source_hint(&source) {
        Some(previous) => cache.layer(&key(&previous))?.map(|cached| (previous, cached)),
        None => None,
    };
    if let Some((previous, predicted)) = predicted {
        let (diff_id, linked) =
            hash_and_link_predicted(options, path, dest, cache, (&previous, &predicted.digest), writer)?;
        let hit = match linked {
            Some(size) if diff_id == previous => Some((predicted.digest, size)),
            // Changed since last time, but perhaps back to content cached before.
            _ => match cache.layer(&key(&diff_id))? {
                Some(cached) => {
                    cache.link_into(&cached.digest, writer.staging_dir())?.map(|size| (cached.digest, size))
                }
                None => None,
            },
        };
        if hit.is_some() && diff_id != previous {
            // Next time, predict this content rather than the one the source had in between.
            cache.record_source_hint(&source, &diff_id)?;
        }
        if let Some((digest, size)) = hit {
            writer.add_staged(&digest)?;
            tracing::info!("layer {} -> {dest}: {digest} from the cache", path.display());
            return Ok(layer(digest, size, diff_id, true));
        }
        tracing::info!("layer {} -> {dest} changed: compressing it", path.display());
    }
    let blob = Counted { inner: cache.writer()?, count: options.written.clone() };
    let (diff_id, blob) = write_layer(path, dest, &options.excludes, &options.tar, options.compression, level, blob)?;
    let stored = blob.inner.commit(None, Some(writer.staging_dir()))?;
    writer.add_staged(&stored.digest)?;
    cache.record_layer(&key(&diff_id), &CachedLayer { digest: stored.digest.clone(), size: stored.size })?;
    cache.record_source_hint(&source, &diff_id)?;
    Ok(layer(stored.digest, stored.size, diff_id, false))
}

/// Hashes the tar of a layer (its diff_id) and, on another thread meanwhile, hard-links the
/// blob that the same source made last time from the cache into the staging area, verifying
/// it: the reading of the files leaves a core free for that. Across file systems, where it
/// would be a copy, nothing is linked: a guess should cost no more than a read. Returns the
/// diff_id, and the blob's size when it was linked. When the tar turns out to have changed, a
/// blob linked for nothing is taken away again.
fn hash_and_link_predicted(
    options: &BuildOptions,
    path: &Path,
    dest: &str,
    cache: &Cache,
    (previous, predicted): (&Digest, &Digest),
    writer: &LayoutWriter,
) -> Result<(Digest, Option<u64>)> {
    let staging = writer.staging_dir();
    let staged_before = writer.has_staged(predicted);
    let (diff_id, linked) = std::thread::scope(|scope| {
        let linking = scope.spawn(|| cache.hard_link_into(predicted, staging));
        let diff_id = diff_id(path, dest, &options.excludes, &options.tar);
        let linked = linking.join().unwrap_or_else(|_| {
            Err(Error::io("verify the cached layer of", path, std::io::Error::other("the thread panicked")))
        });
        (diff_id, linked)
    });
    let (diff_id, linked) = (diff_id?, linked?);
    if linked.is_some() && &diff_id != previous && !staged_before {
        let file = staging.join(predicted.hex());
        std::fs::remove_file(&file).at("remove", &file)?;
    }
    Ok((diff_id, linked))
}

/// Names a layer source and every setting that shapes its tar, for the cache's hint.
fn source_key(options: &BuildOptions, path: &Path, dest: &str, compression: &str) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{}\0{dest}\0{:?}\0{:?}\0{compression}", absolute.display(), options.excludes, options.tar)
}

fn build_image(
    options: &BuildOptions,
    platform: &Platform,
    layers: Vec<BuiltLayer>,
    created: &str,
    writer: &mut LayoutWriter,
) -> Result<BuiltImage> {
    let history: Vec<ConfigLayer> = options
        .layers
        .iter()
        .zip(&layers)
        .map(|(source, built)| ConfigLayer {
            diff_id: built.diff_id.clone(),
            // Only what is inside the image: the source's path is the host's business, and
            // would make the same files built from two checkouts give two configs.
            created_by: format!("hoist layer {}", source.dest),
        })
        .collect();
    let mut config = image_config(platform, &options.image, &history, created)?;
    let base = options.base.get(platform);
    if let Some(base) = base {
        config = crate::base::inherit(&base.config, &config);
    }
    let (config_digest, config_size) = writer.add_json(&config, "image config")?;
    let mut layer_descriptors = Vec::new();
    for layer in base.map(|b| b.layers.as_slice()).unwrap_or_default() {
        if let Some(file) = options.base_files.get(&layer.digest) {
            writer.add_existing(&layer.digest, file)?;
        }
        layer_descriptors.push(Descriptor::new(layer.media_type.clone(), layer.digest.clone(), layer.size));
    }
    for built in &layers {
        layer_descriptors.push(Descriptor::new(built.media_type.clone(), built.digest.clone(), built.size));
    }
    let mut annotations = options.annotations.clone();
    if let Some(base) = base {
        annotations.insert(crate::base::BASE_NAME.to_owned(), base.name.clone());
        annotations.insert(crate::base::BASE_DIGEST.to_owned(), base.digest.to_string());
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        config: Descriptor::new(MediaType::OciConfig, config_digest.clone(), config_size),
        layers: layer_descriptors,
        artifact_type: None,
        subject: None,
        annotations,
    };
    let (digest, size) = writer.add_json(&manifest, "image manifest")?;
    Ok(BuiltImage { platform: platform.clone(), digest, size, config: config_digest, layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_sources_split_at_the_destination() {
        let parse = |s: &str| s.parse::<LayerSource>().unwrap();
        assert_eq!(parse("dist/{os}_{arch}/:/app/").dest, "/app/");
        assert_eq!(parse("dist/{os}_{arch}/:/app/").source, "dist/{os}_{arch}/");
        assert_eq!(parse("config.yaml").dest, "/");
        assert_eq!(parse("c:weird/dir:/etc/app.yaml").source, "c:weird/dir");
        assert!(":/app".parse::<LayerSource>().is_err());
    }
}
