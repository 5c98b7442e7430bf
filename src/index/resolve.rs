//! Turning a reference into index entries: an index contributes its entries, an image one
//! entry; a platform missing from a descriptor is read from the image's config.

use serde_json::Value;

use super::{entries_of, is_index, Entry, PlatformSpec};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::registry::Client;
use crate::source::Source;

/// The `source` an entry records for a location: `registry/repository` or `oci:DIR`.
pub fn source_name(location: &Location) -> String {
    match location {
        Location::Registry(reference) => reference.name(),
        Location::Layout { dir, .. } => format!("oci:{}", dir.display()),
    }
}

/// The entries `location` contributes, each with its platform.
pub async fn resolve(client: &Client, location: &Location) -> Result<Vec<Entry>> {
    let source = Source::open(location, client)?;
    let manifest = source.manifest(None).await?;
    let name = source_name(location);
    if is_index(&manifest.media_type) {
        let (mut entries, _) = entries_of(&manifest.bytes, None)?;
        for entry in &mut entries {
            entry.source = Some(name.clone());
            if entry.platform().is_none() && entry.attests().is_none() && !is_index(entry.media_type()) {
                let digest: Digest = entry.digest().parse()?;
                let child = source.manifest(Some(&digest)).await?;
                entry.set_platform(&platform_of_image(&source, &child.bytes, location).await?);
            }
        }
        return Ok(entries);
    }
    let platform = platform_of_image(&source, &manifest.bytes, location).await?;
    Ok(vec![Entry::new(
        &manifest.media_type,
        &manifest.digest,
        manifest.bytes.len() as u64,
        Some(&platform),
        Some(name),
    )])
}

/// The platform an image manifest's config names.
async fn platform_of_image(source: &Source<'_>, manifest: &[u8], location: &Location) -> Result<PlatformSpec> {
    let document: Value =
        serde_json::from_slice(manifest).map_err(|e| Error::Json { what: location.to_string(), source: e })?;
    let digest: Digest = document["config"]["digest"].as_str().unwrap_or_default().parse()?;
    let config: Value = serde_json::from_slice(&source.blob_bytes(&digest).await?)
        .map_err(|e| Error::Json { what: format!("config of {location}"), source: e })?;
    let text = |key: &str| config.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    match (text("os"), text("architecture")) {
        (Some(os), Some(architecture)) => Ok(PlatformSpec {
            os,
            architecture,
            variant: text("variant"),
            os_version: text("os.version"),
            ..PlatformSpec::default()
        }),
        _ => Err(Error::invalid(
            "image",
            location.to_string(),
            "neither its descriptor nor its config names a platform; set one with `hoist manifest annotate LIST REF --os OS --arch ARCH`",
        )),
    }
}
