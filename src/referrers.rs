//! OCI 1.1 referrers: artifacts (SBOMs, signatures, reports) attached to an image through their
//! manifest's `subject`, and found again from the image.
//!
//! An artifact is an image manifest with an `artifactType`, the empty config (`{}`) and its
//! files as layers. Registries with the referrers API index it themselves; on those without
//! (distribution 2.8 is one), hoist keeps the spec's fallback: an index of the referrers under
//! the tag `sha256-<hex>` of the subject, amended race-safely (read, merge, write, wait, read
//! back, again if another writer's index replaced it). In an OCI layout an artifact is an
//! untagged entry of `index.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::amend::{Amend, Round};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::blocking;
use crate::layout::{Layout, LayoutWriter};
use crate::location::Location;
use crate::model::{Descriptor, ImageIndex, ImageManifest, MediaType, RawManifest, MAX_MANIFEST_BYTES};
use crate::reference::{ManifestRef, Reference};
use crate::registry::Client;
use crate::sink::{RegistrySink, Sink, UploadOptions};
use crate::source::{LayoutSource, Source};
use crate::transfer::{transfer, Silent, TransferOptions};

/// The empty config's content.
pub const EMPTY_JSON: &[u8] = b"{}";
/// The annotation naming a file (what `oras` and others show).
pub const TITLE: &str = "org.opencontainers.image.title";

/// The empty config's descriptor.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(MediaType::OciEmpty, Digest::of(EMPTY_JSON), EMPTY_JSON.len() as u64)
}

/// The tag of the referrers fallback index of `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.to_string().replacen(':', "-", 1)
}

/// The `artifactType` a referrer descriptor carries.
pub fn artifact_type(descriptor: &Descriptor) -> Option<&str> {
    descriptor.extra.get("artifactType").and_then(|v| v.as_str())
}

/// One file of an artifact.
#[derive(Clone, Debug)]
pub struct ArtifactFile {
    /// The file.
    pub path: PathBuf,
    /// Its media type.
    pub media_type: String,
}

/// An artifact to attach.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// Its type, e.g. `application/spdx+json`.
    pub artifact_type: String,
    /// Its files, the manifest's layers.
    pub files: Vec<ArtifactFile>,
    /// Annotations of its manifest.
    pub annotations: BTreeMap<String, String>,
}

/// Stages `artifact`'s blobs and manifest (whose subject is `subject`) into `writer`; returns
/// the manifest. Files are streamed into the layout, never read whole.
pub fn stage(writer: &mut LayoutWriter, artifact: &Artifact, subject: &Descriptor) -> Result<RawManifest> {
    if !is_media_type(&artifact.artifact_type) {
        return Err(Error::invalid(
            "artifact type",
            artifact.artifact_type.as_str(),
            "expected a media type such as application/spdx+json",
        ));
    }
    let mut empty = writer.blob()?;
    empty.write_all(EMPTY_JSON).at("write", writer.target())?;
    writer.add_blob(empty)?;
    let mut layers = Vec::new();
    for file in &artifact.files {
        if !is_media_type(&file.media_type) {
            return Err(Error::invalid("media type", file.media_type.as_str(), "expected type/subtype"));
        }
        // A regular file only: a FIFO would wait for a writer, a device such as /dev/zero never ends.
        let (mut input, _) = crate::fsutil::small_file::open_regular(&file.path)
            .map_err(|e| e.into_error("artifact file", &file.path))?;
        let mut blob = writer.blob()?;
        std::io::copy(&mut input, &mut blob).at("read", &file.path)?;
        let (digest, size) = writer.add_blob(blob)?;
        let mut layer = Descriptor::new(MediaType::from(file.media_type.as_str()), digest, size);
        if let Some(name) = file.path.file_name() {
            layer.annotations.insert(TITLE.to_owned(), name.to_string_lossy().into_owned());
        }
        layers.push(layer);
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        artifact_type: Some(artifact.artifact_type.clone()),
        config: empty_descriptor(),
        layers,
        subject: Some(Descriptor { platform: None, annotations: BTreeMap::new(), ..subject.clone() }),
        annotations: artifact.annotations.clone(),
    };
    let bytes = crate::json::canonical(&manifest, "artifact manifest")?;
    let mut blob = writer.blob()?;
    blob.write_all(&bytes).at("write", writer.target())?;
    writer.add_blob(blob)?;
    RawManifest::new(bytes, Some(MediaType::OciManifest), "artifact manifest")
}

fn is_media_type(text: &str) -> bool {
    let mut parts = text.splitn(2, '/');
    let ok = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && !p.contains(char::is_whitespace));
    ok(parts.next()) && ok(parts.next())
}

/// The descriptor of a referrer as a referrers index lists it: with the manifest's
/// `artifactType` (else its config's media type) and annotations.
pub fn referrer_descriptor(manifest: &RawManifest) -> Result<Descriptor> {
    let image = manifest.image(&format!("referrer {}", manifest.digest))?;
    let mut descriptor = manifest.descriptor();
    let kind = image.artifact_type.clone().unwrap_or_else(|| image.config.media_type.as_str().to_owned());
    descriptor.extra.insert("artifactType".into(), kind.into());
    descriptor.annotations = image.annotations;
    Ok(descriptor)
}

/// How referrers are found in a registry repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// The registry's referrers API.
    Api,
    /// The fallback tag `sha256-<hex>`.
    FallbackTag,
    /// The entries of an OCI layout's `index.json`.
    Layout,
}

/// The referrers of `subject` at `location` (a registry repository or a layout), and how they
/// were found.
pub async fn list(client: &Client, location: &Location, subject: &Digest) -> Result<(Vec<Descriptor>, Discovery)> {
    match location {
        Location::Registry(reference) => {
            if let Some(index) = client.get_referrers(&reference.registry, &reference.repository, subject).await? {
                return Ok((index.manifests, Discovery::Api));
            }
            Ok((fallback_entries(client, reference, subject).await?, Discovery::FallbackTag))
        }
        Location::Layout { dir, .. } => {
            let (dir, subject) = (dir.clone(), subject.clone());
            let found = blocking::run(move || in_layout(&Layout::open(&dir)?, &subject)).await?;
            Ok((found, Discovery::Layout))
        }
        other => Err(Error::invalid(
            "location",
            other.to_string(),
            "referrers are kept in registries and OCI layouts (oci:DIR), not in archives",
        )),
    }
}

/// The entries of the fallback index of `subject` (none when the tag does not exist).
async fn fallback_entries(client: &Client, reference: &Reference, subject: &Digest) -> Result<Vec<Descriptor>> {
    let tag = fallback_tag(subject);
    let Some(digest) =
        client.manifest_digest(&reference.registry, &reference.repository, &ManifestRef::Tag(tag.clone())).await?
    else {
        return Ok(Vec::new());
    };
    let at = reference.at_digest(&digest);
    let index = client.get_manifest_direct(&at).await?;
    Ok(index.index(&format!("referrers fallback index {}:{tag}", reference.repository))?.manifests)
}

/// The manifests listed in a layout's `index.json` whose subject is `subject`.
fn in_layout(layout: &Layout, subject: &Digest) -> Result<Vec<Descriptor>> {
    let mut found = Vec::new();
    for entry in layout.index()?.manifests {
        if !entry.media_type.is_image() || entry.size > MAX_MANIFEST_BYTES {
            continue;
        }
        let read = RawManifest::new(layout.read_blob(&entry.digest)?, Some(entry.media_type.clone()), "layout entry");
        let Ok(manifest) = read else { continue };
        let Ok(image) = manifest.image("layout entry") else { continue };
        if image.subject.as_ref().is_some_and(|s| &s.digest == subject)
            && !found.iter().any(|d: &Descriptor| d.digest == manifest.digest)
        {
            found.push(referrer_descriptor(&manifest)?);
        }
    }
    Ok(found)
}

/// How referrers are written.
#[derive(Clone, Debug)]
pub struct ReferrerOptions {
    /// How blobs and manifests are sent.
    pub transfer: TransferOptions,
    /// How blobs go up.
    pub upload: UploadOptions,
    /// Read-merge-write rounds of the fallback index when other writers interfere.
    pub tries: u32,
    /// How long to wait before checking that a fallback index write stuck.
    pub settle: Duration,
}

impl Default for ReferrerOptions {
    fn default() -> Self {
        ReferrerOptions {
            transfer: TransferOptions::default(),
            upload: UploadOptions::default(),
            tries: 10,
            settle: Duration::from_millis(1500),
        }
    }
}

/// What attaching did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attached {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// The subject's digest.
    pub subject: Digest,
    /// How the artifact can be found from the subject.
    pub discovery: Discovery,
    /// The fallback tag written, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_tag: Option<String>,
}

/// Writes `artifact` for `subject` into the layout at `dir` ([`stage`], then committed), off
/// the async threads.
async fn stage_in_layout(dir: &Path, artifact: &Artifact, subject: &Descriptor) -> Result<RawManifest> {
    let (dir, artifact, subject) = (dir.to_path_buf(), artifact.clone(), subject.clone());
    blocking::run(move || {
        let mut writer = LayoutWriter::begin(&dir)?;
        let manifest = stage(&mut writer, &artifact, &subject)?;
        writer.commit(manifest.descriptor(), None)?;
        Ok(manifest)
    })
    .await
}

/// Attaches `artifact` to the image `location` names (a registry reference or a layout).
pub async fn attach(
    client: &Client,
    location: &Location,
    artifact: &Artifact,
    options: &ReferrerOptions,
) -> Result<Attached> {
    match location {
        Location::Registry(reference) => {
            let subject = client.get_manifest(reference).await?.descriptor();
            let staging =
                blocking::run(|| tempfile::tempdir().at("create a temporary directory in", std::env::temp_dir()))
                    .await?;
            let dir = staging.path().join("layout");
            let manifest = stage_in_layout(&dir, artifact, &subject).await?;
            let source = blocking::run(move || LayoutSource::open(&dir, None, None)).await?;
            let sink = RegistrySink::new(client, reference, options.upload.clone());
            send_referrer(&source, &sink, &manifest, options).await?;
            let (discovery, fallback_tag) = publish(client, reference, &subject.digest, &manifest, options).await?;
            Ok(Attached { digest: manifest.digest, subject: subject.digest, discovery, fallback_tag })
        }
        Location::Layout { dir, tag, digest } => {
            let (owned, tag, digest) = (dir.clone(), tag.clone(), digest.clone());
            let source = blocking::run(move || LayoutSource::open(&owned, tag, digest)).await?;
            let subject = source.root().await?.descriptor();
            let manifest = stage_in_layout(dir, artifact, &subject).await?;
            Ok(Attached {
                digest: manifest.digest,
                subject: subject.digest,
                discovery: Discovery::Layout,
                fallback_tag: None,
            })
        }
        other => Err(Error::invalid(
            "location",
            other.to_string(),
            "attach to an image in a registry or an OCI layout (oci:DIR:TAG)",
        )),
    }
}

/// Adds `artifact`, referring to `subject`, to the layout at `dir` as an untagged entry of its
/// `index.json`; returns the artifact's manifest.
pub fn attach_in_layout(dir: &std::path::Path, subject: &Descriptor, artifact: &Artifact) -> Result<RawManifest> {
    let mut writer = LayoutWriter::begin(dir)?;
    let manifest = stage(&mut writer, artifact, subject)?;
    writer.commit(manifest.descriptor(), None)?;
    Ok(manifest)
}

/// Sends a referrer's manifest and blobs from `source` to `sink`, untagged.
async fn send_referrer(
    source: &dyn Source,
    sink: &dyn Sink,
    manifest: &RawManifest,
    options: &ReferrerOptions,
) -> Result<()> {
    let plan = crate::graph::plan(source, manifest.clone(), None).await?;
    transfer(&plan, source, sink, &[], &options.transfer, &Silent).await?;
    Ok(())
}

/// Makes the referrer `manifest` (already in the repository) findable from `subject`: nothing
/// to do where the registry has the referrers API, else an amend of the fallback index.
pub async fn publish(
    client: &Client,
    reference: &Reference,
    subject: &Digest,
    manifest: &RawManifest,
    options: &ReferrerOptions,
) -> Result<(Discovery, Option<String>)> {
    if client.get_referrers(&reference.registry, &reference.repository, subject).await?.is_some() {
        return Ok((Discovery::Api, None));
    }
    let entry = referrer_descriptor(manifest)?;
    let tag = fallback_tag(subject);
    amend_fallback(client, reference, subject, &entry, options).await?;
    Ok((Discovery::FallbackTag, Some(tag)))
}

/// Adds `entry` to the fallback index of `subject`, safely against concurrent writers: the
/// registry has no compare-and-swap, so after writing, wait a moment, read the tag back, and
/// if another writer's index replaced ours without our entry, merge onto it and write again.
async fn amend_fallback(
    client: &Client,
    reference: &Reference,
    subject: &Digest,
    entry: &Descriptor,
    options: &ReferrerOptions,
) -> Result<()> {
    let tag = fallback_tag(subject);
    let what = format!("{}/{}:{tag}", reference.registry, reference.repository);
    let mut rounds = FallbackAmend { client, reference, subject, entry, tag };
    crate::amend::run(&mut rounds, &what, options.tries, Some(options.settle)).await
}

/// An amend of the fallback index of `subject`: the rounds of [`amend_fallback`].
struct FallbackAmend<'a> {
    client: &'a Client,
    reference: &'a Reference,
    subject: &'a Digest,
    entry: &'a Descriptor,
    tag: String,
}

impl FallbackAmend<'_> {
    fn has_entry(&self, entries: &[Descriptor]) -> bool {
        entries.iter().any(|d| d.digest == self.entry.digest)
    }
}

impl Amend for FallbackAmend<'_> {
    type Written = ();
    type Done = ();

    async fn write(&mut self) -> Result<Round<(), ()>> {
        let (client, reference) = (self.client, self.reference);
        let mut entries = fallback_entries(client, reference, self.subject).await?;
        if !self.has_entry(&entries) {
            entries.push(self.entry.clone());
        }
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            manifests: entries,
            annotations: BTreeMap::new(),
        };
        let bytes = crate::json::canonical(&index, "referrers fallback index")?;
        let raw = RawManifest::new(bytes, Some(MediaType::OciIndex), "referrers fallback index")?;
        client
            .put_manifest(&reference.registry, &reference.repository, &ManifestRef::Tag(self.tag.clone()), &raw)
            .await?;
        Ok(Round::Written(()))
    }

    async fn check(&mut self, _: ()) -> Result<Option<()>> {
        let now = fallback_entries(self.client, self.reference, self.subject).await?;
        Ok(self.has_entry(&now).then_some(()))
    }
}

/// Copies the referrers of each of `subjects` from `from` to `to` (a registry repository or a
/// layout): their manifests and blobs, then, in a registry without the referrers API, the
/// fallback index. Returns how many were copied.
pub async fn copy(
    client: &Client,
    from: &Location,
    to: &Location,
    subjects: &[Digest],
    options: &ReferrerOptions,
) -> Result<usize> {
    if !matches!(to, Location::Registry(_) | Location::Layout { .. }) {
        return Err(Error::invalid(
            "location",
            to.to_string(),
            "referrers can be copied to registries and OCI layouts",
        ));
    }
    let mut copied = 0;
    for subject in subjects {
        let (referrers, _) = list(client, from, subject).await?;
        for referrer in referrers {
            let source = crate::source::open_async(&from.at_digest(&referrer.digest), client).await?;
            let manifest = source.manifest_of(&referrer).await?;
            let sink = crate::sink::open_async(to, client, options.upload.clone()).await?;
            send_referrer(source.as_ref(), sink.as_ref(), &manifest, options).await?;
            if let Location::Registry(reference) = to {
                publish(client, reference, subject, &manifest, options).await?;
            }
            copied += 1;
        }
    }
    Ok(copied)
}
