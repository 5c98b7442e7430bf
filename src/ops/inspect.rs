//! Reading what registries and layouts hold: `hoist inspect`, `hoist tags`, `hoist catalog`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::pick_platform;
use crate::location::Location;
use crate::model::MediaType;
use crate::model::{Document, RawManifest};
use crate::platform::Platform;
use crate::session::Session;
use crate::source::Source;

/// What to inspect, and what to show of it.
#[derive(Clone, Debug)]
pub struct Inspect {
    /// The image or index.
    pub location: Location,
    /// How the user named it (for messages).
    pub name: String,
    /// From an index, the image for this platform.
    pub platform: Option<Platform>,
    /// What to show.
    pub show: Show,
}

/// What `inspect` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// The manifest's exact bytes.
    Raw,
    /// The image config's bytes.
    Config,
    /// A summary.
    Summary,
}

/// What `inspect` found.
#[derive(Clone, Debug)]
pub enum InspectReport {
    /// The manifest's exact bytes.
    Raw(Vec<u8>),
    /// The image config's exact bytes.
    Config(Vec<u8>),
    /// A summary.
    Summary(Summary),
}

/// A summary of an image or index (fields in the order of its JSON form).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// An image's config descriptor, as the manifest has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// The manifest's digest.
    pub digest: String,
    /// An image's layer descriptors, as the manifest has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Value>,
    /// An index's entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Entry>>,
    /// The manifest's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// An image's platform, os/arch[/variant] from its config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The location inspected, normalized.
    pub reference: String,
    /// How many referrers the image has (left out when the registry cannot say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers: Option<usize>,
    /// The manifest's size in bytes.
    pub size: usize,
}

/// An entry of an index, as the summary shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: MediaType,
    /// os/arch[/variant].
    pub platform: String,
    /// Its size.
    pub size: u64,
}

/// Reads what `request` names and what it asks to show.
pub fn inspect(session: &Session, request: &Inspect) -> Result<InspectReport> {
    let client = session.client();
    let name = &request.name;
    session.block_on(async {
        let source = crate::source::open_async(&request.location, client).await?;
        let mut manifest = source.root().await?;
        if let Some(wanted) = &request.platform {
            if !manifest.media_type.is_index() {
                return Err(Error::refused(format!("{name} is a single image, not an index; drop --platform")));
            }
            let index = manifest.index(name)?;
            let entry = pick_platform(&index.manifests, wanted, name)?;
            manifest = source.manifest_of(entry).await?;
        }
        if request.show == Show::Raw {
            return Ok(InspectReport::Raw(manifest.bytes));
        }
        let typed = manifest.parse(name)?;
        match (request.show, &typed) {
            (Show::Config, Document::Image(image)) => {
                Ok(InspectReport::Config(source.blob_bytes(&image.config).await?))
            }
            (Show::Config, _) => {
                Err(Error::refused(format!("{name} is an index; choose an image with --platform os/arch")))
            }
            _ => Ok(InspectReport::Summary(summary(session, request, source.as_ref(), &manifest, &typed).await?)),
        }
    })
}

/// The summary of `manifest`, with its referrers counted where the place keeps them.
async fn summary(
    session: &Session,
    request: &Inspect,
    source: &dyn Source,
    manifest: &RawManifest,
    typed: &Document,
) -> Result<Summary> {
    let document: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::Json { what: format!("manifest {}", manifest.digest), source: e })?;
    let mut summary = Summary {
        config: None,
        digest: manifest.digest.to_string(),
        layers: None,
        manifests: None,
        media_type: manifest.media_type.as_str().to_owned(),
        platform: None,
        reference: request.location.to_string(),
        referrers: None,
        size: manifest.bytes.len(),
    };
    match typed {
        Document::Image(image) => {
            let config: Value = serde_json::from_slice(&source.blob_bytes(&image.config).await?)
                .map_err(|e| Error::Json { what: format!("config {}", image.config.digest), source: e })?;
            summary.platform = Some(platform_of(&json!({ "platform": config })));
            summary.config = Some(document["config"].clone());
            summary.layers = Some(document["layers"].clone());
        }
        Document::Index(index) => {
            let entries = index.manifests.iter().map(|d| Entry {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                platform: d.platform.as_ref().map_or_else(|| "?/?".to_owned(), ToString::to_string),
                size: d.size,
            });
            summary.manifests = Some(entries.collect());
        }
    }
    // Registries and layouts keep referrers; a registry that cannot say leaves the count out,
    // at once (no retries: the image itself was read already, perhaps from a mirror).
    if matches!(request.location, Location::Registry(_) | Location::Layout { .. }) {
        match crate::referrers::list(session.client(), &request.location, &manifest.digest).await {
            Ok((found, _)) => summary.referrers = Some(found.len()),
            Err(e) => tracing::info!("referrers of {}: {e}", request.name),
        }
    }
    Ok(summary)
}

/// os/arch[/variant] of `{"platform": config}`, `?` for what is missing.
fn platform_of(entry: &Value) -> String {
    let p = &entry["platform"];
    let mut text = format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?"));
    if let Some(variant) = p["variant"].as_str() {
        text.push('/');
        text.push_str(variant);
    }
    text
}

/// The tags of `repository` in `registry`.
pub fn tags(session: &Session, registry: &str, repository: &str) -> Result<Vec<String>> {
    session.block_on(session.client().list_tags(registry, repository))
}

/// The repositories of `registry` that are `prefix` or below it, by whole path components
/// (`team` takes `team/app`, not `teamwork/app`); all with an empty prefix.
pub fn catalog(session: &Session, registry: &str, prefix: &str) -> Result<Vec<String>> {
    let mut repositories = session.block_on(session.client().catalog(registry))?;
    repositories.retain(|r| under_prefix(r, prefix));
    Ok(repositories)
}

/// Whether `repository` is `prefix` or below it.
fn under_prefix(repository: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || repository == prefix
        || repository.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}
