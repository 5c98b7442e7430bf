//! Where images are written or read: for now an OCI layout on disk, `oci:DIR[:TAG]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::reference::is_tag;

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
}

impl Location {
    /// The same location with a relative directory taken relative to `base`.
    pub fn relative_to(self, base: &Path) -> Location {
        match self {
            Location::Layout { dir, tag } => Location::Layout {
                dir: base.join(dir),
                tag,
            },
        }
    }
}

impl FromStr for Location {
    type Err = Error;

    /// Parses `oci:DIR[:TAG]`; the part after the last `:` is a tag when it is a valid one.
    fn from_str(s: &str) -> Result<Location> {
        let Some(rest) = s.strip_prefix("oci:") else {
            return Err(Error::invalid(
                "output",
                s,
                "expected oci:DIR[:TAG], e.g. oci:out/layout:v1.2.3",
            ));
        };
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if is_tag(tag) => (dir, Some(tag.to_owned())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(Error::invalid(
                "output",
                s,
                "the directory is missing: oci:DIR[:TAG]",
            ));
        }
        Ok(Location::Layout {
            dir: PathBuf::from(dir),
            tag,
        })
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layout_locations() {
        let loc: Location = "oci:out/layout:v1.2.3".parse().unwrap();
        assert_eq!(
            loc,
            Location::Layout {
                dir: "out/layout".into(),
                tag: Some("v1.2.3".into())
            }
        );
        let untagged: Location = "oci:out/layout".parse().unwrap();
        assert_eq!(
            untagged,
            Location::Layout {
                dir: "out/layout".into(),
                tag: None
            }
        );
        assert_eq!(loc.to_string(), "oci:out/layout:v1.2.3");
        for bad in ["out/layout", "oci:", "oci::tag", "docker://x"] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }
}
