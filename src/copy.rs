//! Copying images between repositories and registries, in the push engine's order: blobs
//! (mounted within a registry, streamed across registries), manifests by digest, tags last.

use std::sync::atomic::AtomicU32;

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::{entries_of, find_platform, is_index, platform_list};
use crate::platform::Platform;
use crate::push::PushOptions;
use crate::reference::Reference;
use crate::registry::write::Started;
use crate::registry::Client;

/// Copies what `from` names to `to` (`to`'s tag and `tags` point at it last). With `platform`,
/// only that image of an index. Returns the digest copied.
pub async fn copy(
    client: &Client,
    from: &Reference,
    to: &Reference,
    platform: Option<&Platform>,
    tags: &[String],
    options: &PushOptions,
) -> Result<Digest> {
    let retries = AtomicU32::new(0);
    let mut manifest = client.get_manifest(from).await?;
    if let (Some(platform), true) = (platform, is_index(&manifest.media_type)) {
        let (entries, _) = entries_of(&manifest.bytes, None)?;
        let entry = find_platform(&entries, platform).ok_or_else(|| {
            Error::invalid("platform", platform.to_string(), format!("{from} has: {}", platform_list(&entries)))
        })?;
        let child = Reference { digest: Some(entry.digest().to_owned()), tag: None, ..from.clone() };
        manifest = client.get_manifest(&child).await?;
    }
    copy_manifest(client, from, &manifest.digest, &to.registry, &to.repository, options, &retries).await?;
    let mut all_tags: Vec<String> = to.tag.iter().cloned().collect();
    all_tags.extend(tags.iter().cloned());
    for tag in &all_tags {
        options
            .retry
            .run("tag", &retries, || {
                client.put_manifest(&to.registry, &to.repository, tag, &manifest.media_type, &manifest.bytes)
            })
            .await?;
    }
    Ok(manifest.digest)
}

/// Copies the manifest `digest` and everything it references from `from`'s repository to the
/// target's, blobs first. Within one registry blobs are mounted; across registries they stream
/// from one to the other without touching the disk.
pub fn copy_manifest<'a>(
    client: &'a Client,
    from: &'a Reference,
    digest: &'a Digest,
    registry: &'a str,
    repository: &'a str,
    options: &'a PushOptions,
    retries: &'a AtomicU32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let retry = &options.retry;
        let what = format!("manifest {digest}");
        let digest_text = digest.to_string();
        if retry.run(&what, retries, || client.manifest_digest(registry, repository, &digest_text)).await?.is_some() {
            return Ok(());
        }
        let source = Reference { digest: Some(digest.to_string()), tag: None, ..from.clone() };
        let manifest = client.get_manifest(&source).await?;
        let document: Value =
            serde_json::from_slice(&manifest.bytes).map_err(|e| Error::Json { what: what.clone(), source: e })?;
        if is_index(&manifest.media_type) {
            for child in document["manifests"].as_array().into_iter().flatten() {
                let child_digest: Digest = child["digest"].as_str().unwrap_or_default().parse()?;
                copy_manifest(client, from, &child_digest, registry, repository, options, retries).await?;
            }
        } else {
            let blobs = document["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .chain([document["config"].clone()]);
            for blob in blobs.filter(Value::is_object) {
                let blob_digest: Digest = blob["digest"].as_str().unwrap_or_default().parse()?;
                let size = blob["size"].as_u64().unwrap_or(0);
                retry
                    .run(&format!("blob {blob_digest}"), retries, || {
                        copy_blob(client, from, &blob_digest, size, registry, repository)
                    })
                    .await?;
            }
        }
        retry
            .run(&what, retries, || {
                client.put_manifest(registry, repository, &digest_text, &manifest.media_type, &manifest.bytes)
            })
            .await
    })
}

/// Puts the blob `digest` of `from`'s repository into `registry/repository`: a mount within
/// one registry, else a stream from one registry into the other.
pub(crate) async fn copy_blob(
    client: &Client,
    from: &Reference,
    digest: &Digest,
    size: u64,
    registry: &str,
    repository: &str,
) -> Result<()> {
    if client.blob_exists(registry, repository, digest).await? {
        return Ok(());
    }
    let mount = (from.registry == registry).then_some((digest, from.repository.as_str()));
    let url = match client.start_upload(registry, repository, mount).await? {
        Started::Mounted => return Ok(()),
        Started::Session { url, .. } => url,
    };
    let stream = client.get_blob(&from.registry, &from.repository, digest).await?;
    client.finish_upload_streaming(registry, repository, &url, digest, size, stream).await
}
