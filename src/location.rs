//! Where images are written or read: an OCI layout on disk (`oci:DIR[:TAG]`, or
//! `oci:DIR@sha256:…` to read an image by digest), a tar of one (`oci-archive:FILE[:TAG]`,
//! `oci-archive:FILE@sha256:…`), a docker-archive tar as `docker save` writes and `docker load`
//! reads (`docker-archive:FILE[:REF]`, or `docker-archive:FILE:@N` to read its Nth image), or a
//! registry (`registry/repository[:tag][@digest]`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{is_tag, Reference};

/// An image location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An OCI image layout directory, optionally with a tag in its `index.json` or the digest
    /// of a manifest or index in it (never both).
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
        /// The digest of the image or index to read (a source only).
        digest: Option<Digest>,
    },
    /// An image in a registry.
    Registry(Reference),
    /// A tar of an OCI image layout, optionally with a tag in its `index.json` or the digest
    /// of a manifest or index in it (never both).
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
        /// The digest of the image or index to read (a source only).
        digest: Option<Digest>,
    },
    /// A docker-archive tar (`manifest.json`, `repositories`, blobs): one image.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// Which of its images: by the name it carries in `RepoTags`, or by position.
        image: Option<ArchiveImage>,
    },
}

/// Which image of a docker-archive a location names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveImage {
    /// The image with this name in its `RepoTags`: `NAME:TAG`, with `:latest` added when there
    /// is no tag.
    Named(String),
    /// The Nth image of its `manifest.json`, from 0 (`@N`, as skopeo): only for reading.
    Index(usize),
}

impl ArchiveImage {
    /// Whether an archive's `RepoTags` entry names this image, compared as docker compares
    /// names: a missing tag is `latest`, and `app` is `docker.io/library/app`.
    pub fn is_named(&self, repo_tag: &str) -> bool {
        let normal = |text: &str| Reference::parse(text).map_or_else(|_| text.to_owned(), |r| r.to_string());
        matches!(self, ArchiveImage::Named(name) if normal(name) == normal(repo_tag))
    }
}

impl fmt::Display for ArchiveImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveImage::Named(name) => f.write_str(name),
            ArchiveImage::Index(index) => write!(f, "@{index}"),
        }
    }
}

impl Location {
    /// The same location with a relative directory taken relative to `base`.
    pub fn relative_to(self, base: &Path) -> Location {
        match self {
            Location::Layout { dir, tag, digest } => Location::Layout { dir: base.join(dir), tag, digest },
            Location::OciArchive { file, tag, digest } => Location::OciArchive { file: base.join(file), tag, digest },
            Location::DockerArchive { file, image } => Location::DockerArchive { file: base.join(file), image },
            registry => registry,
        }
    }
}

impl FromStr for Location {
    type Err = Error;

    /// Parses `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]` (the part after the last `:` is a
    /// tag when it is a valid one; after the last `@`, a digest when it starts `sha256:`),
    /// `docker-archive:FILE[:REF]` and `docker-archive:FILE:@N` (the file ends at the first
    /// `:`), else an image reference.
    fn from_str(s: &str) -> Result<Location> {
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, reference) = match rest.split_once(':') {
                Some((file, reference)) => (file, Some(reference)),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(Error::invalid("image location", s, "the file is missing: docker-archive:FILE[:REF]"));
            }
            let image = reference.map(docker_archive_image).transpose()?;
            return Ok(Location::DockerArchive { file: PathBuf::from(file), image });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag, digest) = split_tag_or_digest(rest)?;
            if file.is_empty() {
                return Err(Error::invalid("image location", s, "the file is missing: oci-archive:FILE[:TAG]"));
            }
            return Ok(Location::OciArchive { file: PathBuf::from(file), tag, digest });
        }
        let Some(rest) = s.strip_prefix("oci:") else {
            return Reference::parse(s).map(Location::Registry).map_err(|_| {
                Error::invalid(
                    "image location",
                    s,
                    "expected oci:DIR[:TAG] (an OCI layout), oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or a registry reference such as registry.example.com/app:v1",
                )
            });
        };
        let (dir, tag, digest) = split_tag_or_digest(rest)?;
        if dir.is_empty() {
            return Err(Error::invalid("image location", s, "the directory is missing: oci:DIR[:TAG]"));
        }
        Ok(Location::Layout { dir: PathBuf::from(dir), tag, digest })
    }
}

/// `PATH[:TAG]` or `PATH@sha256:HEX`: a digest after the last `@` (the path is all before
/// it; one of another algorithm is refused), else a tag as [`split_tag`] finds one.
fn split_tag_or_digest(rest: &str) -> Result<(&str, Option<String>, Option<Digest>)> {
    match rest.rsplit_once('@') {
        Some((path, digest)) if is_digest(digest) => Ok((path, None, Some(digest.parse()?))),
        _ => {
            let (path, tag) = split_tag(rest);
            Ok((path, tag, None))
        }
    }
}

/// Whether `text` (what follows a location's last `@`) is a digest: `ALGORITHM:ENCODED` with
/// an algorithm of the OCI digest grammar that is a SHA-2 one, or an encoded part of 32 hex
/// digits or more. A path with an `@` in it (`out/a@b:v1`) is no digest.
fn is_digest(text: &str) -> bool {
    let Some((algorithm, encoded)) = text.split_once(':') else { return false };
    let grammar = !algorithm.is_empty()
        && algorithm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    let hex = encoded.len() >= 32 && encoded.bytes().all(|b| b.is_ascii_hexdigit());
    grammar && (matches!(algorithm, "sha256" | "sha384" | "sha512") || hex)
}

/// `PATH[:TAG]`: the part after the last `:` is a tag when it is a valid one.
fn split_tag(rest: &str) -> (&str, Option<String>) {
    match rest.rsplit_once(':') {
        Some((path, tag)) if is_tag(tag) => (path, Some(tag.to_owned())),
        _ => (rest, None),
    }
}

/// A docker-archive's image: `@N`, or its name as `RepoTags` carries it (`NAME:TAG`, with
/// `:latest` added when there is no tag), which must parse as an image reference without a
/// digest.
fn docker_archive_image(text: &str) -> Result<ArchiveImage> {
    if let Some(index) = text.strip_prefix('@') {
        // Digits only: a number parses from `+1` too.
        let digits = index.bytes().all(|b| b.is_ascii_digit());
        return index.parse().ok().filter(|_| digits).map(ArchiveImage::Index).ok_or_else(|| {
            Error::invalid(
                "docker-archive image",
                text,
                "expected @N, the position of the image in the archive's manifest.json from 0 (as skopeo)",
            )
        });
    }
    let parsed = Reference::parse(text).map_err(|_| {
        Error::invalid("docker-archive name", text, "expected NAME[:TAG] such as app:v1 or registry.example.com/app:v1")
    })?;
    if parsed.digest.is_some() {
        return Err(Error::invalid("docker-archive name", text, "a docker-archive names images by tag, not digest"));
    }
    Ok(ArchiveImage::Named(match name_and_tag(text) {
        Some(_) => text.to_owned(),
        None => format!("{text}:latest"),
    }))
}

/// `NAME` and `TAG` of `NAME:TAG` (a `:` after the last `/`; a registry port is not a tag).
pub fn name_and_tag(reference: &str) -> Option<(&str, &str)> {
    let (name, tag) = reference.rsplit_once(':')?;
    (!tag.contains('/')).then_some((name, tag))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Layout { dir, tag, digest } => {
                write!(f, "oci:{}", dir.display())?;
                write_tag_and_digest(f, tag, digest)
            }
            Location::Registry(reference) => write!(f, "{reference}"),
            Location::OciArchive { file, tag, digest } => {
                write!(f, "oci-archive:{}", file.display())?;
                write_tag_and_digest(f, tag, digest)
            }
            Location::DockerArchive { file, image } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(image) = image {
                    write!(f, ":{image}")?;
                }
                Ok(())
            }
        }
    }
}

/// `:TAG` and `@DIGEST` of a layout or oci-archive location, where there are.
fn write_tag_and_digest(f: &mut fmt::Formatter<'_>, tag: &Option<String>, digest: &Option<Digest>) -> fmt::Result {
    if let Some(tag) = tag {
        write!(f, ":{tag}")?;
    }
    if let Some(digest) = digest {
        write!(f, "@{digest}")?;
    }
    Ok(())
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
    /// Checks that it can be written to: a layout or oci-archive named by digest, and a
    /// docker-archive's `@N`, are sources only (an output gets tags or a name, and its digest
    /// is what is written).
    pub fn check_output(&self) -> Result<()> {
        match self {
            Location::Layout { digest: Some(_), .. } | Location::OciArchive { digest: Some(_), .. } => {
                Err(Error::invalid(
                    "output",
                    self.to_string(),
                    "a digest picks an image to read; write to oci:DIR[:TAG] or oci-archive:FILE[:TAG]",
                ))
            }
            Location::DockerArchive { image: Some(ArchiveImage::Index(_)), .. } => Err(Error::invalid(
                "output",
                self.to_string(),
                "@N picks an image to read from an archive; name the image to write as docker-archive:FILE:NAME[:TAG]",
            )),
            _ => Ok(()),
        }
    }

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
            (Location::OciArchive { file: a, .. }, Location::OciArchive { file: b, .. })
            | (Location::DockerArchive { file: a, .. }, Location::DockerArchive { file: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The same location naming `digest` instead of its tag (a docker-archive, whose one
    /// image has no digest to name, as it is).
    pub fn at_digest(&self, digest: &Digest) -> Location {
        let digest = Some(digest.clone());
        match self {
            Location::Registry(r) => Location::Registry(Reference { tag: None, digest, ..r.clone() }),
            Location::Layout { dir, .. } => Location::Layout { dir: dir.clone(), tag: None, digest },
            Location::OciArchive { file, .. } => Location::OciArchive { file: file.clone(), tag: None, digest },
            docker => docker.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layout_and_registry_locations() {
        let loc: Location = "oci:out/layout:v1.2.3".parse().unwrap();
        assert_eq!(loc, Location::Layout { dir: "out/layout".into(), tag: Some("v1.2.3".into()), digest: None });
        let untagged: Location = "oci:out/layout".parse().unwrap();
        assert_eq!(untagged, Location::Layout { dir: "out/layout".into(), tag: None, digest: None });
        assert_eq!(loc.to_string(), "oci:out/layout:v1.2.3");
        assert!(matches!("ghcr.io/a/b:1".parse::<Location>().unwrap(), Location::Registry(_)));
        let docker: Location = "docker-archive:out/app.tar:localhost:5000/app:v1".parse().unwrap();
        let expected = Some(ArchiveImage::Named("localhost:5000/app:v1".to_owned()));
        assert_eq!(docker, Location::DockerArchive { file: "out/app.tar".into(), image: expected });
        assert_eq!(docker.to_string(), "docker-archive:out/app.tar:localhost:5000/app:v1");
        let latest: Location = "docker-archive:app.tar:localhost:5000/app".parse().unwrap();
        assert_eq!(
            latest,
            Location::DockerArchive {
                file: "app.tar".into(),
                image: Some(ArchiveImage::Named("localhost:5000/app:latest".into()))
            }
        );
        let second: Location = "docker-archive:app.tar:@1".parse().unwrap();
        assert_eq!(second, Location::DockerArchive { file: "app.tar".into(), image: Some(ArchiveImage::Index(1)) });
        assert_eq!(second.to_string(), "docker-archive:app.tar:@1");
        let oci: Location = "oci-archive:out/app.tar:v1".parse().unwrap();
        assert_eq!(oci, Location::OciArchive { file: "out/app.tar".into(), tag: Some("v1".into()), digest: None });
        for bad in [
            "oci:",
            "oci::tag",
            "docker://x",
            "Bad Ref",
            "docker-archive:",
            "oci-archive:",
            "docker-archive:a.tar:Bad Ref",
            "oci:dir@sha256:abc",
            "oci:@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "docker-archive:a.tar:@-1",
            "docker-archive:a.tar:@x",
            "docker-archive:a.tar:@",
            "docker-archive:a.tar:@+1",
            "docker-archive:a.tar:@ 1",
            "oci:out@sha512:abcd",
            "oci-archive:a.tar@sha384:abcd",
            "oci:out@blake3:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }

    #[test]
    fn layouts_and_oci_archives_name_images_by_digest_for_reading_only() {
        let digest = crate::digest::Digest::of(b"manifest");
        let layout: Location = format!("oci:out/my:layout@{digest}").parse().unwrap();
        assert_eq!(layout, Location::Layout { dir: "out/my:layout".into(), tag: None, digest: Some(digest.clone()) });
        assert_eq!(layout.to_string(), format!("oci:out/my:layout@{digest}"));
        let archive: Location = format!("oci-archive:app.tar@{digest}").parse().unwrap();
        assert_eq!(archive, Location::OciArchive { file: "app.tar".into(), tag: None, digest: Some(digest) });
        assert!(layout.check_output().is_err() && archive.check_output().is_err());
        assert!("docker-archive:app.tar:@1".parse::<Location>().unwrap().check_output().is_err());
        assert!("docker-archive:app.tar:app:v1".parse::<Location>().unwrap().check_output().is_ok());
        assert!("oci:out/a@b:v1".parse::<Location>().unwrap().check_output().is_ok(), "an @ in a path is a path");
        assert_eq!(
            "oci:out/a@b:v1".parse::<Location>().unwrap(),
            Location::Layout { dir: "out/a@b".into(), tag: Some("v1".into()), digest: None }
        );
    }

    #[test]
    fn archive_names_compare_as_docker_compares_them() {
        let named = |text: &str| match docker_archive_image(text).unwrap() {
            image @ ArchiveImage::Named(_) => image,
            other => panic!("{other:?}"),
        };
        assert!(named("test_image_1").is_named("test_image_1"), "bare on both sides");
        assert!(named("test_image_1").is_named("test_image_1:latest"));
        assert!(named("app:v1").is_named("docker.io/library/app:v1"));
        assert!(named("docker.io/library/app").is_named("app"));
        assert!(named("localhost:5000/app").is_named("localhost:5000/app:latest"));
        assert!(!named("app:v1").is_named("app"), "another tag");
        assert!(!named("app").is_named("other/app"), "another repository");
        assert!(!ArchiveImage::Index(0).is_named("app"));
    }
}
