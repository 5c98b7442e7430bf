//! What a push sends: every blob reachable from the root, once, and every manifest, children
//! before parents.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::{is_index, DOCKER_MANIFEST, OCI_MANIFEST};
use crate::layout::Layout;
use crate::reference::Reference;

/// A blob to push, streamed from the layout.
#[derive(Clone, Debug)]
pub struct PlannedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size from the descriptor (checked against the file).
    pub size: u64,
    /// The file in the layout (absent for a base layer left in its registry).
    pub path: PathBuf,
    /// The repository that also has it (a base image's): mounted or streamed from there.
    pub remote: Option<Reference>,
}

/// A manifest or index to push by digest.
#[derive(Clone, Debug)]
pub struct PlannedManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
}

/// Everything a push sends, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Blobs (layers and configs), each digest once.
    pub blobs: Vec<PlannedBlob>,
    /// Manifests, children before parents; the root last.
    pub manifests: Vec<PlannedManifest>,
}

impl Plan {
    /// The root: what tags name.
    pub fn root(&self) -> &PlannedManifest {
        self.manifests.last().expect("a plan has a root")
    }

    /// Total bytes of all blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// Where blobs missing from a layout can be found (a base image's repository), by digest.
pub type RemoteBlobs = BTreeMap<Digest, Reference>;

/// Plans the push of the manifest `root` (digest, media type) in `layout`. Fails before
/// anything is sent when a blob is missing (and not in `remote`) or has the wrong size.
pub fn plan(layout: &Layout, root: &Digest, media_type: &str, remote: &RemoteBlobs) -> Result<Plan> {
    let mut plan = Plan { blobs: Vec::new(), manifests: Vec::new() };
    let mut seen = HashSet::new();
    visit(layout, root, media_type, remote, &mut plan, &mut seen)?;
    Ok(plan)
}

fn visit(
    layout: &Layout,
    digest: &Digest,
    media_type: &str,
    remote: &RemoteBlobs,
    plan: &mut Plan,
    seen: &mut HashSet<Digest>,
) -> Result<()> {
    if !seen.insert(digest.clone()) {
        return Ok(());
    }
    let corrupt = |reason: String| Error::CorruptLayout { path: layout.root().to_path_buf(), reason };
    let bytes = layout.read_blob(digest)?;
    let document: Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("manifest {digest} is not JSON: {e}")))?;
    let media_type = document.get("mediaType").and_then(Value::as_str).unwrap_or(media_type).to_owned();
    let descriptors =
        |key: &str| -> Vec<Value> { document.get(key).and_then(Value::as_array).cloned().unwrap_or_default() };
    let parse = |d: &Value| -> Result<(Digest, u64, String)> {
        let digest: Digest = d.get("digest").and_then(Value::as_str).unwrap_or_default().parse()?;
        let size = d
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt(format!("descriptor of {digest} has no size")))?;
        let media_type = d.get("mediaType").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok((digest, size, media_type))
    };
    if is_index(&media_type) {
        for child in descriptors("manifests") {
            let (child_digest, _, child_type) = parse(&child)?;
            visit(layout, &child_digest, &child_type, remote, plan, seen)?;
        }
    } else if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
        let mut blobs = vec![document.get("config").cloned().unwrap_or(Value::Null)];
        blobs.extend(descriptors("layers"));
        for blob in &blobs {
            let (blob_digest, size, _) = parse(blob)?;
            if !seen.insert(blob_digest.clone()) {
                continue;
            }
            let path = layout.blob_path(&blob_digest);
            let elsewhere = remote.get(&blob_digest).cloned();
            match (std::fs::metadata(&path).map(|m| m.len()), &elsewhere) {
                (Ok(actual), _) if actual != size => {
                    return Err(corrupt(format!("blob {blob_digest} has {actual} bytes, its descriptor says {size}")))
                }
                (Err(_), None) => return Err(corrupt(format!("blob {blob_digest} is missing"))),
                _ => {}
            }
            plan.blobs.push(PlannedBlob { digest: blob_digest, size, path, remote: elsewhere });
        }
    } else {
        return Err(corrupt(format!("{digest} has media type {media_type:?}, which hoist cannot push")));
    }
    plan.manifests.push(PlannedManifest { digest: digest.clone(), media_type, bytes });
    Ok(())
}
