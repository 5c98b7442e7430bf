//! Base images: building on an image from a registry (or a layout) without downloading it
//! when the result goes to a registry.
//!
//! The base is read once per platform: its manifest, its config and its layer descriptors. The
//! new image is the base's layers plus hoist's, with the config inherited by docker's rules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use serde_json::{json, Map, Value};

use crate::blob::copy_to_writer;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::pick_platform;
use crate::location::Location;
use crate::model::{Descriptor, MediaType, RawManifest};
use crate::platform::Platform;
use crate::registry::Client;
use crate::source::{self, Source};

/// Annotation naming the base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation with the base image's manifest digest.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// One layer of a base image.
#[derive(Clone, Debug)]
pub struct BaseLayer {
    /// OCI media type (Docker types converted).
    pub media_type: String,
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
}

/// A base image for one platform.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference as given, normalized: for the base.name annotation.
    pub name: String,
    /// Digest of the platform's image manifest: for the base.digest annotation.
    pub digest: Digest,
    /// Its config document.
    pub config: Value,
    /// Its layers, bottom first.
    pub layers: Vec<BaseLayer>,
    /// Where its blobs live.
    pub location: Location,
}

/// Converts a base layer media type to OCI, refusing what hoist cannot use.
fn oci_layer_type(media_type: &str, base: &str) -> Result<String> {
    Ok(match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.v1.tar+zstd" => media_type.to_owned(),
        other => {
            return Err(Error::invalid(
                "base image",
                base,
                format!("it has a layer of media type {other}, which hoist cannot build on; choose another base"),
            ))
        }
    })
}

/// Reads the base `location` for each of `platforms`. An index must have every platform; the
/// error lists the ones it has.
pub async fn resolve(
    client: &Client,
    location: &Location,
    platforms: &[Platform],
) -> Result<BTreeMap<Platform, BaseImage>> {
    let source = source::open(location, client)?;
    let root = source.root().await?;
    let name = location.to_string();
    let mut bases = BTreeMap::new();
    for platform in platforms {
        let manifest = if root.media_type.is_index() {
            let index = root.index(&name)?;
            let entry = pick_platform(&index.manifests, platform, &format!("base image {name}"))?;
            source.manifest_of(entry).await?
        } else {
            root.clone()
        };
        bases.insert(
            platform.clone(),
            read_image(source.as_ref(), &manifest, &name, platform, !root.media_type.is_index()).await?,
        );
    }
    Ok(bases)
}

/// One platform's base image from its manifest; a single image (`check_platform`) must be for
/// `platform`.
async fn read_image(
    source: &dyn Source,
    manifest: &RawManifest,
    name: &str,
    platform: &Platform,
    check_platform: bool,
) -> Result<BaseImage> {
    if !manifest.media_type.is_image() {
        return Err(Error::invalid("base image", name, format!("its manifest has media type {}", manifest.media_type)));
    }
    let image = manifest.image(name)?;
    let config: Value = serde_json::from_slice(&source.blob_bytes(&image.config).await?)
        .map_err(|source| Error::Json { what: format!("config of {name}"), source })?;
    if check_platform {
        let (os, arch) =
            (config["os"].as_str().unwrap_or_default(), config["architecture"].as_str().unwrap_or_default());
        if os != platform.os || arch != platform.architecture {
            return Err(Error::invalid(
                "base image",
                name,
                format!("it is a single {os}/{arch} image; {platform} was asked for"),
            ));
        }
    }
    let layers = image
        .layers
        .iter()
        .map(|layer| {
            Ok(BaseLayer {
                media_type: oci_layer_type(layer.media_type.as_str(), name)?,
                digest: layer.digest.clone(),
                size: layer.size,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BaseImage {
        name: name.to_owned(),
        digest: manifest.digest.clone(),
        config,
        layers,
        location: source.location(),
    })
}

/// Makes sure every base layer is in hoist's cache: a blob already there is used only when it
/// still hashes to its digest; a missing (or damaged) one is read from the base through its
/// source, verified as it streams, and named in the cache only when it proved right.
/// Returns the verified files by digest.
pub async fn fetch_into_cache(
    client: &Client,
    bases: &BTreeMap<Platform, BaseImage>,
    cache: &Cache,
) -> Result<BTreeMap<Digest, PathBuf>> {
    let mut files = BTreeMap::new();
    for base in bases.values() {
        let source = source::open(&base.location, client)?;
        for layer in &base.layers {
            if files.contains_key(&layer.digest) {
                continue;
            }
            let path = match cache_get(cache, &layer.digest).await? {
                Some(path) => path,
                None => {
                    let descriptor =
                        Descriptor::new(MediaType::from(layer.media_type.as_str()), layer.digest.clone(), layer.size);
                    let stream = source.blob(&descriptor, 0).await?;
                    let writer = copy_to_writer(stream, cache.writer()?, &AtomicU64::new(0)).await?;
                    let digest = layer.digest.clone();
                    tokio::task::spawn_blocking(move || writer.commit(Some(&digest), None))
                        .await
                        .map_err(|e| Error::io("write", cache.dir(), std::io::Error::other(e.to_string())))??;
                    cache_get(cache, &layer.digest).await?.ok_or_else(|| {
                        Error::io("read", cache.dir(), std::io::Error::other("a base layer left the cache at once"))
                    })?
                }
            };
            files.insert(layer.digest.clone(), path);
        }
    }
    Ok(files)
}

/// [`Cache::get`] (which hashes the blob) on a blocking thread.
async fn cache_get(cache: &Cache, digest: &Digest) -> Result<Option<PathBuf>> {
    let (cache, digest) = (cache.clone(), digest.clone());
    tokio::task::spawn_blocking(move || cache.get(&digest))
        .await
        .map_err(|e| Error::io("read", "hoist's cache", std::io::Error::other(e.to_string())))?
}

/// The new image's config: the base's, with hoist's settings applied by docker's rules (Env
/// merged by key; Entrypoint, Cmd, WorkingDir, User, StopSignal replaced when given, and a new
/// Entrypoint drops the inherited Cmd; Labels merged; ExposedPorts and Volumes added), the
/// base's diff_ids and history first, and the platform and time of the new image.
pub fn inherit(base: &Value, ours: &Value, entrypoint_given: bool, cmd_given: bool) -> Value {
    let mut config = base.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    let mine = ours.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut env: Vec<String> = strings(config.get("Env"));
    for entry in strings(mine.get("Env")) {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        match env.iter_mut().find(|e| e.split('=').next() == Some(key.as_str())) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    if !env.is_empty() {
        config.insert("Env".into(), json!(env));
    }
    if entrypoint_given {
        config.insert("Entrypoint".into(), mine["Entrypoint"].clone());
        if !cmd_given {
            config.remove("Cmd");
        }
    }
    for key in ["Cmd", "WorkingDir", "User", "StopSignal"] {
        if let Some(value) = mine.get(key) {
            config.insert(key.into(), value.clone());
        }
    }
    for key in ["Labels", "ExposedPorts", "Volumes"] {
        let mut merged: Map<String, Value> = config.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
        merged.extend(mine.get(key).and_then(Value::as_object).cloned().unwrap_or_default());
        if !merged.is_empty() {
            config.insert(key.into(), Value::Object(merged));
        }
    }
    let mut result = ours.clone();
    result["config"] = Value::Object(config);
    let mut diff_ids = base["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    diff_ids.extend(ours["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default());
    result["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
    let mut history = base["history"].as_array().cloned().unwrap_or_default();
    history.extend(ours["history"].as_array().cloned().unwrap_or_default());
    result["history"] = json!(history);
    result
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_inherited_by_dockers_rules() {
        let base = json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Env": ["PATH=/bin", "A=1"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "x"], "User": "root",
                        "Labels": { "base": "yes", "shared": "base" }, "ExposedPorts": { "22/tcp": {} } },
            "rootfs": { "type": "layers", "diff_ids": ["sha256:b1"] },
            "history": [{ "created_by": "base" }]
        });
        let ours = json!({
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": { "Env": ["A=2", "B=3"], "Entrypoint": ["/app/server"], "Labels": { "shared": "ours" }, "ExposedPorts": { "8080/tcp": {} } },
            "rootfs": { "type": "layers", "diff_ids": ["sha256:o1"] },
            "history": [{ "created_by": "hoist" }]
        });
        let merged = inherit(&base, &ours, true, false);
        let config = &merged["config"];
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(config["Entrypoint"], json!(["/app/server"]));
        assert!(config.get("Cmd").is_none(), "a new entrypoint drops the inherited cmd");
        assert_eq!(config["User"], "root", "inherited when not given");
        assert_eq!(config["Labels"], json!({ "base": "yes", "shared": "ours" }));
        assert_eq!(config["ExposedPorts"], json!({ "22/tcp": {}, "8080/tcp": {} }));
        assert_eq!(merged["rootfs"]["diff_ids"], json!(["sha256:b1", "sha256:o1"]));
        assert_eq!(merged["history"].as_array().unwrap().len(), 2);
        let kept = inherit(&base, &json!({ "config": {}, "rootfs": {}, "history": [] }), false, false);
        assert_eq!(kept["config"]["Cmd"], json!(["-c", "x"]), "without a new entrypoint the cmd stays");
    }

    #[test]
    fn docker_layer_types_convert_and_foreign_ones_are_refused() {
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip", "b").unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert!(oci_layer_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "b").is_err());
    }
}
