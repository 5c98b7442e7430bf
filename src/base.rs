//! Base images: building on an image from a registry (or a layout) without downloading it
//! when the result goes to a registry.
//!
//! The base is read once per platform: its manifest, its config and its layer descriptors. The
//! new image is the base's layers plus hoist's, with the config inherited by docker's rules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use crate::blob::copy_to_writer;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::graph::pick_platform;
use crate::location::Location;
use crate::model::{Descriptor, Field, ImageConfig, MediaType, RawManifest, RootFs};
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
    pub media_type: MediaType,
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
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<BaseLayer>,
    /// Where its blobs live.
    pub location: Location,
}

/// Converts a base layer media type to OCI, refusing what hoist cannot use.
fn oci_layer_type(media_type: &MediaType, base: &str) -> Result<MediaType> {
    Ok(match media_type {
        MediaType::DockerLayerGzip => MediaType::OciLayerGzip,
        MediaType::OciLayer | MediaType::OciLayerGzip | MediaType::OciLayerZstd => media_type.clone(),
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
    let source = source::open_async(location, client).await?;
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
    let config: ImageConfig = serde_json::from_slice(&source.blob_bytes(&image.config).await?)
        .map_err(|source| Error::Json { what: format!("config of {name}"), source })?;
    if check_platform {
        let (os, arch) = (&config.os, &config.architecture);
        if *os != platform.os || *arch != platform.architecture {
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
                media_type: oci_layer_type(&layer.media_type, name)?,
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
        let source = source::open_async(&base.location, client).await?;
        for layer in &base.layers {
            if files.contains_key(&layer.digest) {
                continue;
            }
            let path = match cache_get(cache, &layer.digest).await? {
                Some(path) => path,
                None => {
                    let descriptor = Descriptor::new(layer.media_type.clone(), layer.digest.clone(), layer.size);
                    let stream = source.blob(&descriptor, 0).await?;
                    let owned = cache.clone();
                    let writer = blocking::run(move || owned.writer()).await?;
                    let writer = copy_to_writer(stream, writer, &AtomicU64::new(0)).await?;
                    let digest = layer.digest.clone();
                    blocking::run(move || writer.commit(Some(&digest), None)).await?;
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
    blocking::run(move || cache.get(&digest)).await
}

/// The new image's config: the base's, with hoist's settings applied by docker's rules (Env
/// merged by key; Entrypoint, Cmd, WorkingDir, User, StopSignal replaced when given, and a new
/// Entrypoint drops the inherited Cmd; Labels merged; ExposedPorts and Volumes added), the
/// base's diff_ids and history first, and the platform and time of the new image. What `ours`
/// leaves unset (absent) is the base's, as the base has it (`null` included); every field of the
/// base's `config` that hoist does not set passes through.
pub fn inherit(base: &ImageConfig, ours: &ImageConfig) -> ImageConfig {
    let mut config = base.config.clone().unwrap_or_default();
    let mine = ours.config.clone().unwrap_or_default();
    let mut env = config.env.value().cloned().unwrap_or_default();
    for entry in mine.env.value().into_iter().flatten() {
        let key = entry.split('=').next().unwrap_or_default();
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(existing) => existing.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
    if !env.is_empty() {
        config.env = Field::Present(env);
    }
    if !mine.entrypoint.is_absent() {
        config.entrypoint = mine.entrypoint;
        if mine.cmd.is_absent() {
            config.cmd = Field::Absent;
        }
    }
    replace_given(&mut config.cmd, mine.cmd);
    replace_given(&mut config.working_dir, mine.working_dir);
    replace_given(&mut config.user, mine.user);
    replace_given(&mut config.stop_signal, mine.stop_signal);
    add_entries(&mut config.labels, mine.labels);
    add_entries(&mut config.exposed_ports, mine.exposed_ports);
    add_entries(&mut config.volumes, mine.volumes);
    let diff_ids = base.rootfs.diff_ids.iter().chain(&ours.rootfs.diff_ids).cloned().collect();
    ImageConfig {
        config: Some(config),
        rootfs: RootFs { diff_ids, ..RootFs::default() },
        history: base.history.iter().chain(&ours.history).cloned().collect(),
        ..ours.clone()
    }
}

/// `base` replaced by `mine` when it is given.
fn replace_given<T>(base: &mut Field<T>, mine: Field<T>) {
    if !mine.is_absent() {
        *base = mine;
    }
}

/// The entries of `mine` added to (or replacing those with the same key in) `base`'s; `base`
/// as it is when there are none at all.
fn add_entries<T: Clone>(base: &mut Field<BTreeMap<String, T>>, mine: Field<BTreeMap<String, T>>) {
    let mut merged = base.value().cloned().unwrap_or_default();
    if let Field::Present(mine) = mine {
        merged.extend(mine);
    }
    if !merged.is_empty() {
        *base = Field::Present(merged);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn typed(value: Value) -> ImageConfig {
        serde_json::from_value(value).unwrap()
    }

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
        let merged = serde_json::to_value(inherit(&typed(base.clone()), &typed(ours))).unwrap();
        let config = &merged["config"];
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(config["Entrypoint"], json!(["/app/server"]));
        assert!(config.get("Cmd").is_none(), "a new entrypoint drops the inherited cmd");
        assert_eq!(config["User"], "root", "inherited when not given");
        assert_eq!(config["Labels"], json!({ "base": "yes", "shared": "ours" }));
        assert_eq!(config["ExposedPorts"], json!({ "22/tcp": {}, "8080/tcp": {} }));
        assert_eq!(merged["rootfs"]["diff_ids"], json!(["sha256:b1", "sha256:o1"]));
        assert_eq!(merged["history"].as_array().unwrap().len(), 2);
        let kept = inherit(&typed(base), &typed(json!({ "config": {}, "rootfs": {}, "history": [] })));
        let kept = serde_json::to_value(kept).unwrap();
        assert_eq!(kept["config"]["Cmd"], json!(["-c", "x"]), "without a new entrypoint the cmd stays");
    }

    #[test]
    fn docker_layer_types_convert_and_foreign_ones_are_refused() {
        assert_eq!(
            oci_layer_type(&MediaType::from("application/vnd.docker.image.rootfs.diff.tar.gzip"), "b")
                .unwrap()
                .as_str(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert!(
            oci_layer_type(&MediaType::from("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), "b").is_err()
        );
    }
}
