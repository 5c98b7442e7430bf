//! Turning a reference into index entries: an index contributes its entries, an image one
//! entry; a platform missing from a descriptor is read from the image's config.

use super::{entries_of, Entry};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::model::{ImageConfig, RawManifest};
use crate::platform::Platform;
use crate::registry::Client;
use crate::source::{self, Source};

/// The entries `location` contributes, each with its platform.
pub async fn resolve(client: &Client, location: &Location) -> Result<Vec<Entry>> {
    let source = source::open_async(location, client).await?;
    let root = source.root().await?;
    if root.media_type.is_index() {
        let (mut entries, _) = entries_of(&root.bytes, Some(location))?;
        for entry in &mut entries {
            if entry.platform().is_none() && entry.attests().is_none() && entry.media_type().is_image() {
                let child = source.manifest(entry.digest()).await?;
                entry.descriptor.platform = Some(platform_of_image(source.as_ref(), &child).await?);
            }
        }
        return Ok(entries);
    }
    let platform = platform_of_image(source.as_ref(), &root).await?;
    Ok(vec![Entry { descriptor: root.descriptor().with_platform(Some(platform)), source: Some(location.clone()) }])
}

/// The platform an image manifest's config names.
pub async fn platform_of_image(source: &dyn Source, manifest: &RawManifest) -> Result<Platform> {
    let image = manifest.image(&source.name())?;
    let config: ImageConfig = serde_json::from_slice(&source.blob_bytes(&image.config).await?)
        .map_err(|e| Error::Json { what: format!("config of {}", source.name()), source: e })?;
    let text = |value: Option<String>| value.filter(|v| !v.is_empty());
    match (text(Some(config.os)), text(Some(config.architecture))) {
        (Some(os), Some(architecture)) => Ok(Platform {
            os,
            architecture,
            variant: text(config.variant),
            os_version: text(config.os_version),
            ..Platform::default()
        }),
        _ => Err(Error::invalid(
            "image",
            source.name(),
            "neither its descriptor nor its config names a platform; set one with `hoist manifest annotate LIST REF --os OS --arch ARCH`",
        )),
    }
}
