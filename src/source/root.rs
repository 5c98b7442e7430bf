//! The image a layout or an oci-archive source names: by digest (any manifest or index it
//! holds), by tag, or, with neither, its only entry. One lookup for both, since an oci-archive
//! is a layout in a tar.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::ref_name;
use crate::model::{Descriptor, ImageIndex, MediaType, RawManifest, MAX_MANIFEST_BYTES};

/// A layout or an oci-archive, as the root lookup reads it: an `index.json` and blobs by
/// digest.
pub(super) trait Holder {
    /// Its `index.json`.
    fn index(&self) -> Result<ImageIndex>;

    /// The size of the blob `digest`; `None` when there is none.
    fn blob_size(&self, digest: &Digest) -> Option<u64>;

    /// The manifest or index `digest`, verified, with its media type when that is known.
    fn read_manifest(&self, digest: &Digest, media_type: Option<MediaType>) -> Result<RawManifest>;

    /// How messages name it.
    fn naming(&self) -> Naming;
}

/// How the lookup's messages name a layout or an oci-archive.
pub(super) struct Naming {
    /// What a reference into it is called: `layout reference`, `archive reference`.
    pub reference: &'static str,
    /// Why a reference without tag or digest is refused where it holds several images.
    pub several: &'static str,
    /// Its name in messages.
    pub name: String,
    /// Where a digest was looked for: `oci:PATH`, `oci-archive:PATH`.
    pub place: String,
}

/// The root manifest or index: the one `digest` names, else the entry `tag` names, else the
/// only entry.
pub(super) fn find(holder: &impl Holder, tag: Option<&str>, digest: Option<&Digest>) -> Result<RawManifest> {
    let index = holder.index()?;
    let naming = holder.naming();
    let Some(digest) = digest else {
        let root = descriptor(&index.manifests, tag, &naming)?;
        return holder.read_manifest(&root.digest, Some(root.media_type));
    };
    // Any manifest or index there will do: an entry of `index.json` is read as a tag's would
    // be; another blob only when it is a manifest or index, not a layer or a config.
    if let Some(listed) = index.manifests.into_iter().find(|d| &d.digest == digest) {
        return holder.read_manifest(digest, Some(listed.media_type));
    }
    let place = &naming.place;
    let refused = |reason: String| Error::invalid("digest", digest.to_string(), reason);
    let not_a_root = || {
        refused(format!(
            "in {place} it names a blob that is not a manifest or index; give the digest of an image or index"
        ))
    };
    match holder.blob_size(digest) {
        None => Err(refused(format!(
            "not in {place}: no blob has this digest; check the digest (the index.json there lists the images it holds)"
        ))),
        Some(size) if size > MAX_MANIFEST_BYTES => Err(not_a_root()),
        Some(_) => {
            // An image config has a `config` field too: only a document that parses will do.
            let manifest = holder.read_manifest(digest, None)?;
            match manifest.parse(place) {
                Ok(_) => Ok(manifest),
                Err(_) => Err(not_a_root()),
            }
        }
    }
}

/// The entry of `entries` (an `index.json`'s) that `tag` names; without a tag, the only one.
pub(super) fn descriptor(entries: &[Descriptor], tag: Option<&str>, naming: &Naming) -> Result<Descriptor> {
    let found = match tag {
        Some(tag) => entries.iter().find(|d| ref_name(d) == Some(tag)),
        None if entries.len() == 1 => entries.first(),
        None => return Err(Error::invalid(naming.reference, naming.name.as_str(), naming.several)),
    };
    found.cloned().ok_or_else(|| {
        let tags: Vec<&str> = entries.iter().filter_map(ref_name).collect();
        Error::invalid("tag", tag.unwrap_or_default(), format!("not in {}; it has: {}", naming.name, tags.join(", ")))
    })
}
