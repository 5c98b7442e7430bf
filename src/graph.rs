//! The walker: everything reachable from a root manifest, planned for a transfer. Each blob
//! once, manifests children before parents, an optional platform filter and a depth limit.

use std::collections::HashSet;

use futures_util::future::BoxFuture;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::{Descriptor, Document, RawManifest};
use crate::platform::Platform;
use crate::source::Source;

/// Indexes nest at most this deep (an index of indexes of …); deeper is refused.
pub const MAX_DEPTH: usize = 8;

/// Everything a transfer sends, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Blobs (layers and configs), each digest once.
    pub blobs: Vec<Descriptor>,
    /// Manifests, children before parents; the root last.
    pub manifests: Vec<RawManifest>,
}

impl Plan {
    /// The root: what tags name.
    pub fn root(&self) -> &RawManifest {
        // A plan is only made by `plan`, which always pushes the root last.
        self.manifests.last().expect("a plan has a root")
    }

    /// Total bytes of all blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().fold(0u64, |sum, b| sum.saturating_add(b.size))
    }
}

/// The image of `index` for `platform`, or an error listing the platforms it has.
pub fn pick_platform<'a>(index: &'a [Descriptor], platform: &Platform, what: &str) -> Result<&'a Descriptor> {
    crate::model::descriptor::find_platform(index, platform).ok_or_else(|| Error::PlatformNotFound {
        what: what.to_owned(),
        platform: platform.to_string(),
        available: crate::model::descriptor::platform_list(index),
    })
}

/// Plans the transfer of `root` (read from `source`): with `platform`, only that image of an
/// index. Blobs are checked where that is cheap (a layout's files), so a broken source fails
/// before anything is sent.
pub async fn plan(source: &dyn Source, root: RawManifest, platform: Option<&Platform>) -> Result<Plan> {
    let root = match (platform, root.media_type.is_index()) {
        (Some(platform), true) => {
            let index = root.index(&source.name())?;
            let entry = pick_platform(&index.manifests, platform, &source.name())?;
            source.manifest_of(entry).await?
        }
        _ => root,
    };
    let mut plan = Plan { blobs: Vec::new(), manifests: Vec::new() };
    let mut seen = HashSet::new();
    visit(source, root, 0, &mut plan, &mut seen).await?;
    Ok(plan)
}

fn visit<'a>(
    source: &'a dyn Source,
    manifest: RawManifest,
    depth: usize,
    plan: &'a mut Plan,
    seen: &'a mut HashSet<Digest>,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if !seen.insert(manifest.digest.clone()) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { what: source.name(), limit: MAX_DEPTH });
        }
        let what = format!("manifest {} in {}", manifest.digest, source.name());
        match manifest.parse(&what)? {
            Document::Index(index) => {
                for child in &index.manifests {
                    if !child.media_type.is_manifest() {
                        return Err(Error::Unsupported {
                            what: format!("entry {} of {what}", child.digest),
                            media_type: child.media_type.to_string(),
                        });
                    }
                    let read = source.manifest_of(child).await?;
                    visit(source, read, depth + 1, plan, seen).await?;
                }
            }
            Document::Image(image) => {
                for blob in image.blobs() {
                    if seen.insert(blob.digest.clone()) {
                        source.check_blob(blob).await?;
                        plan.blobs.push(blob.clone());
                    }
                }
            }
        }
        plan.manifests.push(manifest);
        Ok(())
    })
}
