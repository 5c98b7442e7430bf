//! Reading images from wherever they are: an OCI layout or a registry, behind one interface.

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{ref_name, Layout};
use crate::location::Location;
use crate::reference::Reference;
use crate::registry::read::{Manifest, MAX_MANIFEST_BYTES};
use crate::registry::Client;

/// Largest config blob hoist reads into memory.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// An image source.
pub enum Source<'a> {
    /// An OCI layout and the tag in it, if any.
    Layout(Layout, Option<String>),
    /// A registry and the reference in it.
    Registry(&'a Client, Reference),
}

impl<'a> Source<'a> {
    /// The source for `location`; registry locations use `client`.
    pub fn open(location: &Location, client: &'a Client) -> Result<Source<'a>> {
        Ok(match location {
            Location::Layout { dir, tag } => Source::Layout(Layout::open(dir)?, tag.clone()),
            Location::Registry(reference) => Source::Registry(client, reference.clone()),
        })
    }

    /// The manifest the location names (`digest = None`), or the one with `digest` beside it.
    pub async fn manifest(&self, digest: Option<&Digest>) -> Result<Manifest> {
        match self {
            Source::Registry(client, reference) => {
                let mut target = reference.clone();
                if let Some(digest) = digest {
                    target.tag = None;
                    target.digest = Some(digest.to_string());
                }
                client.get_manifest(&target).await
            }
            Source::Layout(layout, tag) => {
                let (digest, media_type) = match digest {
                    Some(digest) => (digest.clone(), None),
                    None => {
                        let root = root_descriptor(layout, tag.as_deref())?;
                        (root.digest().to_string().parse()?, Some(root.media_type().to_string()))
                    }
                };
                let bytes = layout.read_blob(&digest)?;
                if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                    return Err(Error::CorruptLayout {
                        path: layout.root().to_path_buf(),
                        reason: format!("manifest {digest} is larger than {MAX_MANIFEST_BYTES} bytes"),
                    });
                }
                let media_type = media_type.or_else(|| {
                    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
                    value.get("mediaType")?.as_str().map(str::to_owned)
                });
                Ok(Manifest { media_type: media_type.unwrap_or_default(), digest, bytes })
            }
        }
    }

    /// A small blob (a config), verified.
    pub async fn blob_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        match self {
            Source::Registry(client, reference) => {
                client.get_blob_bytes(&reference.registry, &reference.repository, digest, MAX_CONFIG_BYTES).await
            }
            Source::Layout(layout, _) => layout.read_blob(digest),
        }
    }
}

/// The descriptor `tag` names in a layout; without a tag, the layout's only entry.
pub fn root_descriptor(layout: &Layout, tag: Option<&str>) -> Result<Descriptor> {
    let index = layout.index()?;
    let entries = index.manifests();
    let found = match tag {
        Some(tag) => entries.iter().find(|d| ref_name(d) == Some(tag)),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(Error::invalid(
                "layout reference",
                layout.root().display().to_string(),
                "the layout holds several images; name one as oci:DIR:TAG",
            ))
        }
    };
    found.cloned().ok_or_else(|| {
        let tags: Vec<&str> = entries.iter().filter_map(ref_name).collect();
        Error::invalid(
            "tag",
            tag.unwrap_or_default(),
            format!("not in {}; it has: {}", layout.root().display(), tags.join(", ")),
        )
    })
}
