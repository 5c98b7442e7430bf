//! Where images are written or read: an OCI layout on disk (`oci:DIR[:TAG]`) or a registry
//! (`registry/repository[:tag][@digest]`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::reference::{is_tag, Reference};

/// An image location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An OCI image layout directory, optionally with a tag in its `index.json`.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
    },
    /// An image in a registry.
    Registry(Reference),
}

impl Location {
    /// The same location with a relative directory taken relative to `base`.
    pub fn relative_to(self, base: &Path) -> Location {
        match self {
            Location::Layout { dir, tag } => Location::Layout { dir: base.join(dir), tag },
            registry => registry,
        }
    }
}

impl FromStr for Location {
    type Err = Error;

    /// Parses `oci:DIR[:TAG]` (the part after the last `:` is a tag when it is a valid one),
    /// else an image reference.
    fn from_str(s: &str) -> Result<Location> {
        let Some(rest) = s.strip_prefix("oci:") else {
            return Reference::parse(s).map(Location::Registry).map_err(|_| {
                Error::invalid(
                    "image location",
                    s,
                    "expected oci:DIR[:TAG] (an OCI layout) or a registry reference such as registry.example.com/app:v1",
                )
            });
        };
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if is_tag(tag) => (dir, Some(tag.to_owned())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(Error::invalid("image location", s, "the directory is missing: oci:DIR[:TAG]"));
        }
        Ok(Location::Layout { dir: PathBuf::from(dir), tag })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Layout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
            Location::Registry(reference) => write!(f, "{reference}"),
        }
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Location {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Location, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Location {
    /// Whether it is the repository `reference` names (tags and digests aside).
    pub fn is_repository_of(&self, reference: &Reference) -> bool {
        matches!(self, Location::Registry(r) if r.registry == reference.registry && r.repository == reference.repository)
    }

    /// Whether both name the same layout directory or the same repository (tags and digests
    /// aside).
    pub fn same_place(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Layout { dir: a, .. }, Location::Layout { dir: b, .. }) => a == b,
            (Location::Registry(_), Location::Registry(b)) => self.is_repository_of(b),
            _ => false,
        }
    }

    /// The same location naming `digest` instead of its tag (a registry) or as it is (a
    /// layout, whose blobs are read by digest anyway).
    pub fn at_digest(&self, digest: &crate::digest::Digest) -> Location {
        match self {
            Location::Registry(r) => {
                Location::Registry(Reference { tag: None, digest: Some(digest.to_string()), ..r.clone() })
            }
            layout => layout.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layout_and_registry_locations() {
        let loc: Location = "oci:out/layout:v1.2.3".parse().unwrap();
        assert_eq!(loc, Location::Layout { dir: "out/layout".into(), tag: Some("v1.2.3".into()) });
        let untagged: Location = "oci:out/layout".parse().unwrap();
        assert_eq!(untagged, Location::Layout { dir: "out/layout".into(), tag: None });
        assert_eq!(loc.to_string(), "oci:out/layout:v1.2.3");
        assert!(matches!("ghcr.io/a/b:1".parse::<Location>().unwrap(), Location::Registry(_)));
        for bad in ["oci:", "oci::tag", "docker://x", "Bad Ref"] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }
}
