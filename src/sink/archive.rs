//! Image archives as sinks: content is staged into a temporary OCI layout beside the target,
//! and on [`Sink::tag`] the tar (an oci-archive of that layout, or a docker-archive of its one
//! image) is streamed into a temporary file beside the target and renamed into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tempfile::TempDir;

use super::{BlobOutcome, LayoutSink, Sink};
use crate::archive::{blob_name, check_target, write_tar, Item};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::blocking;
use crate::layout::{Layout, INDEX_FILE, OCI_LAYOUT_FILE};
use crate::location::name_and_tag;
use crate::model::descriptor::attests;
use crate::model::{Descriptor, Document, RawManifest};
use crate::reference::ManifestRef;
use crate::source::Source;

/// Which kind of archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A tar of an OCI image layout.
    Oci,
    /// A docker-archive: `manifest.json`, `repositories` and the blobs, as `docker load`
    /// reads them.
    Docker,
}

/// Writes an archive file; nothing lands at the target until the tags are written.
pub struct ArchiveSink {
    format: ArchiveFormat,
    target: PathBuf,
    layout: PathBuf,
    inner: LayoutSink,
    /// The root and the tags, kept by `tag` for `commit`.
    tagged: std::sync::Mutex<Option<(RawManifest, Vec<String>)>>,
    /// Removed (with the staged layout) when the sink goes.
    _staging: TempDir,
}

impl ArchiveSink {
    /// Prepares to write an archive of `format` at `file` (a regular file there is replaced;
    /// anything else is refused, see [`check_target`]). The layout is staged in the nearest
    /// directory that exists: missing parents are made only when the archive is written (so a
    /// dry run makes none).
    pub fn begin(format: ArchiveFormat, file: &Path) -> Result<ArchiveSink> {
        check_target(file)?;
        let anchor = crate::layout::nearest_existing(file);
        let staging = tempfile::Builder::new()
            .prefix(".hoist-archive-")
            .tempdir_in(&anchor)
            .at("create a staging directory in", &anchor)?;
        let layout = staging.path().join("layout");
        let inner = LayoutSink::begin(&layout)?;
        Ok(ArchiveSink {
            format,
            target: file.to_path_buf(),
            layout,
            inner,
            tagged: std::sync::Mutex::new(None),
            _staging: staging,
        })
    }
}

/// Writes at `target` the docker-archive of the one image `root` is (or, an index, holds),
/// from the layout at `staged`.
fn write_docker(target: &Path, staged: &Path, root: &RawManifest, tags: &[String]) -> Result<()> {
    {
        let layout = Layout::open(staged)?;
        let what = format!("image for docker-archive:{}", target.display());
        let image = match root.parse(&what)? {
            Document::Image(image) => *image,
            Document::Index(index) => {
                let images: Vec<&Descriptor> = index.manifests.iter().filter(|d| attests(d).is_none()).collect();
                let [only] = images.as_slice() else {
                    return Err(one_platform(target, &crate::model::descriptor::platform_list(&index.manifests)));
                };
                let bytes = layout.read_blob(&only.digest)?;
                RawManifest::new(bytes, Some(only.media_type.clone()), &what)?.image(&what)?
            }
        };
        let repo_tags = repo_tags(tags)?;
        let mut items: Vec<(String, Item)> = vec![("blobs".into(), Item::Dir), ("blobs/sha256".into(), Item::Dir)];
        let mut seen = std::collections::HashSet::new();
        for blob in image.blobs() {
            if seen.insert(blob.digest.clone()) {
                items.push((blob_name(&blob.digest), Item::File(layout.blob_path(&blob.digest))));
            }
        }
        let layers: Vec<String> = image.layers.iter().map(|l| blob_name(&l.digest)).collect();
        let manifest = serde_json::json!([{
            "Config": blob_name(&image.config.digest),
            "RepoTags": repo_tags,
            "Layers": layers,
        }]);
        let json = |source| Error::Json { what: "manifest.json".into(), source };
        items.push(("manifest.json".into(), Item::Bytes(serde_json::to_vec(&manifest).map_err(json)?)));
        if let Some(top) = image.layers.last() {
            let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for tagged in &repo_tags {
                if let Some((name, tag)) = name_and_tag(tagged) {
                    repositories
                        .entry(name.to_owned())
                        .or_default()
                        .insert(tag.to_owned(), top.digest.hex().to_owned());
                }
            }
            if !repositories.is_empty() {
                items.push(("repositories".into(), Item::Bytes(serde_json::to_vec(&repositories).map_err(json)?)));
            }
        }
        write_tar(target, &items)
    }
}

/// Writes at `target` the oci-archive of the layout at `staged`, as it is.
fn write_oci(target: &Path, staged: &Path) -> Result<()> {
    {
        let mut items: Vec<(String, Item)> = vec![
            (OCI_LAYOUT_FILE.into(), Item::File(staged.join(OCI_LAYOUT_FILE))),
            (INDEX_FILE.into(), Item::File(staged.join(INDEX_FILE))),
            ("blobs".into(), Item::Dir),
            ("blobs/sha256".into(), Item::Dir),
        ];
        let blobs = staged.join("blobs/sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .at("read", &blobs)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .at("read", &blobs)?;
        names.sort();
        for name in names {
            items.push((format!("blobs/sha256/{name}"), Item::File(blobs.join(&name))));
        }
        write_tar(target, &items)
    }
}

/// The error for an index of several images bound for a docker-archive.
pub fn one_platform(target: &Path, platforms: &str) -> Error {
    Error::invalid(
        "docker-archive",
        target.display().to_string(),
        format!("it holds one image and this has several platforms ({platforms}); choose one with --platform"),
    )
}

/// `RepoTags` from the tags asked for: full names (`app:v1`) as they are, bare tags (`v2`)
/// with the name of the first full one.
fn repo_tags(tags: &[String]) -> Result<Vec<String>> {
    let name = tags.iter().find_map(|t| name_and_tag(t).map(|(name, _)| name.to_owned()));
    tags.iter()
        .map(|tag| match (name_and_tag(tag), &name) {
            (Some(_), _) => Ok(tag.clone()),
            (None, Some(name)) => Ok(format!("{name}:{tag}")),
            (None, None) => Err(Error::invalid(
                "tag",
                tag.as_str(),
                "a docker-archive names images NAME:TAG; give docker-archive:FILE:NAME[:TAG]",
            )),
        })
        .collect()
}

impl Sink for ArchiveSink {
    fn name(&self) -> String {
        let kind = match self.format {
            ArchiveFormat::Oci => "oci-archive",
            ArchiveFormat::Docker => "docker-archive",
        };
        format!("{kind}:{}", self.target.display())
    }

    fn has_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        self.inner.has_blob(descriptor)
    }

    fn put_blob<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        source: &'a dyn Source,
        progress: &'a Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobOutcome>> {
        self.inner.put_blob(descriptor, source, progress)
    }

    fn has_manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        self.inner.has_manifest(digest)
    }

    fn put_manifest<'a>(&'a self, manifest: &'a RawManifest) -> BoxFuture<'a, Result<()>> {
        self.inner.put_manifest(manifest)
    }

    /// Nothing: an archive is written whole every time, never found up to date.
    fn resolve<'a>(&'a self, _reference: &'a ManifestRef) -> BoxFuture<'a, Result<Option<Digest>>> {
        Box::pin(async { Ok(None) })
    }

    fn tag<'a>(&'a self, root: &'a RawManifest, tags: &'a [String], fresh: bool) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(async move {
            let layout_tags: &[String] = match self.format {
                ArchiveFormat::Oci => tags,
                ArchiveFormat::Docker => &[],
            };
            self.inner.tag(root, layout_tags, fresh).await?;
            if let Ok(mut tagged) = self.tagged.lock() {
                *tagged = Some((root.clone(), tags.to_vec()));
            }
            Ok(vec![true; tags.len()])
        })
    }

    fn commit(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some((root, tags)) = self.tagged.lock().ok().and_then(|mut t| t.take()) else { return Ok(()) };
            self.inner.commit().await?;
            let (format, target, staged) = (self.format, self.target.clone(), self.layout.clone());
            blocking::run(move || match format {
                ArchiveFormat::Oci => write_oci(&target, &staged),
                ArchiveFormat::Docker => write_docker(&target, &staged, &root, &tags),
            })
            .await
        })
    }
}
