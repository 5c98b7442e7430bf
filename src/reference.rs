//! Image references (`registry/repository[:tag][@digest]`), parsed and normalized exactly as
//! `github.com/distribution/reference` does (`ParseNormalizedNamed` + `TagNameOnly`):
//! `ubuntu` is `docker.io/library/ubuntu:latest`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's canonical registry name in references.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Reference {
    /// Registry host, with port when given: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/ubuntu`.
    pub repository: String,
    /// Tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// Digest: sha256, or a sha384 or sha512 pin, checked with its own algorithm.
    pub digest: Option<Digest>,
}

/// What a manifest request names (`/v2/REPOSITORY/manifests/<this>`): a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    /// A tag: `v1.2.3`, `latest`.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// The image `name` (`registry/repository`) at it: `NAME:TAG` or `NAME@DIGEST`.
    pub fn qualify(&self, name: &str) -> String {
        match self {
            ManifestRef::Tag(tag) => format!("{name}:{tag}"),
            ManifestRef::Digest(digest) => format!("{name}@{digest}"),
        }
    }
}

impl fmt::Display for ManifestRef {
    /// The tag or the digest, as it goes in a URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(tag) => f.write_str(tag),
            ManifestRef::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

impl Reference {
    /// Parses `input` with distribution/reference's grammar and Docker's normalization.
    ///
    /// ```
    /// let r = hoist::Reference::parse("ubuntu").unwrap();
    /// assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
    /// assert_eq!(r.repository, "library/ubuntu");
    /// assert!(hoist::Reference::parse("Not/Valid").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::invalid("image reference", input, reason);
        if input.is_empty() {
            return Err(bad("it is empty; expected [registry/]repository[:tag][@digest]"));
        }
        if is_identifier(input) {
            return Err(bad("a 64-digit hex string is an image ID, not a repository name; name a repository"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(input, digest)?)),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(bad("a tag is 1 to 128 of [A-Za-z0-9_.-] and does not start with '.' or '-'"));
            }
        }
        let (registry, repository) = split_docker_domain(name);
        if repository.to_lowercase() != repository {
            return Err(bad("the repository name must be lowercase"));
        }
        if !is_domain(&registry) || !repository.split('/').all(is_path_component) {
            return Err(bad(
                "expected [registry[:port]/]repository[:tag][@digest], with a lowercase repository of [a-z0-9] words joined by '.', '_', '__' or '-'",
            ));
        }
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(bad("the name (registry and repository) is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The repository with its registry: `docker.io/library/ubuntu`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What it names in manifest requests: its digest when it has one (a digest pins; a tag
    /// beside it is informational, as for docker), else its tag, else `latest`.
    pub fn manifest_ref(&self) -> ManifestRef {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => ManifestRef::Digest(digest.clone()),
            (None, Some(tag)) => ManifestRef::Tag(tag.clone()),
            (None, None) => ManifestRef::Tag("latest".to_owned()),
        }
    }

    /// The same repository at `digest`, without a tag.
    pub fn at_digest(&self, digest: &Digest) -> Reference {
        Reference { tag: None, digest: Some(digest.clone()), ..self.clone() }
    }
}

impl fmt::Display for Reference {
    /// The fully normalized form: `docker.io/library/ubuntu:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// Docker's rule for telling a registry from the first path component.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_owned();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

/// `host [':' port]`, where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let Some((ipv6, after)) = inner.split_once(']') else {
            return false;
        };
        if ipv6.is_empty() || !ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && host.split('.').all(is_domain_component)
}

fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `[_.]`, `__` or `-+`.
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let sep_ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !sep_ok {
            return false;
        }
    }
}

/// Whether `tag` is a valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads a digest as distribution/reference and go-digest do: a known algorithm and its exact
/// number of lowercase hex digits.
fn parse_digest(input: &str, digest: &str) -> Result<Digest> {
    Digest::parse_any(digest).map_err(|reason| Error::invalid("image reference", input, reason))
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn any_text_parses_as_a_reference_without_panic(text in ".*") {
            let _ = super::Reference::parse(&text);
        }

        #[test]
        fn any_reference_like_text_round_trips_or_fails_cleanly(text in "[a-zA-Z0-9./:@_-]{0,80}") {
            if let Ok(reference) = super::Reference::parse(&text) {
                let again = super::Reference::parse(&reference.to_string());
                proptest::prop_assert!(again.is_ok(), "{} from {}", reference, text);
            }
        }
    }

    use super::*;

    const HEX: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn normalized(s: &str) -> String {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalized("ubuntu"), "docker.io/library/ubuntu:latest");
        assert_eq!(normalized("ubuntu:22.04"), "docker.io/library/ubuntu:22.04");
        assert_eq!(normalized("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(normalized("index.docker.io/foo"), "docker.io/library/foo:latest");
        assert_eq!(normalized("localhost/foo"), "localhost/foo:latest");
        assert_eq!(normalized("localhost:5000/foo/bar:v1"), "localhost:5000/foo/bar:v1");
        assert_eq!(normalized("test.com:tag"), "docker.io/library/test.com:tag");
        assert_eq!(normalized("test.com:5000"), "docker.io/library/test.com:5000");
        assert_eq!(normalized("Foo/bar"), "Foo/bar:latest");
        assert_eq!(normalized("UPPER/case"), "UPPER/case:latest");
        assert_eq!(normalized("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(normalized("127.0.0.1:5000/a__b/c-d.e:1"), "127.0.0.1:5000/a__b/c-d.e:1");
        let digest = format!("sha256:{HEX}");
        assert_eq!(normalized(&format!("ubuntu@{digest}")), format!("docker.io/library/ubuntu@{digest}"));
        assert_eq!(normalized(&format!("reg.io/a:t@{digest}")), format!("reg.io/a:t@{digest}"));
    }

    #[test]
    fn splits_into_parts() {
        let r = Reference::parse("ghcr.io/org/app:v1.2.3").unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "org/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2.3"));
        assert_eq!(r.digest, None);
        assert_eq!(r.name(), "ghcr.io/org/app");
    }

    #[test]
    fn rejects_what_distribution_rejects() {
        let long = format!("a/{}", "b".repeat(260));
        let bad = [
            "",
            ":justtag",
            "@sha256:abc",
            "foo/Bar",
            "a//b",
            "a/b/",
            "-a/b",
            "a-/b",
            "a/b:-tag",
            "a/b:.tag",
            "foo_bar.com:8080/x.",
            "a..b",
            "a/b@sha256:abc",
            "a/b@md5:0123456789abcdef0123456789abcdef",
            HEX,
            long.as_str(),
            "[::1/app",
            "host:port/app",
            "a/b@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        ];
        for input in bad {
            assert!(Reference::parse(input).is_err(), "{input:?} should be rejected");
        }
        let tag129 = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&tag129).is_err());
        let tag128 = format!("a:{}", "t".repeat(128));
        assert!(Reference::parse(&tag128).is_ok());
    }

    #[test]
    fn manifest_requests_name_the_digest_else_the_tag() {
        let digest = format!("sha256:{HEX}");
        let pinned = Reference::parse(&format!("reg.io/a:t@{digest}")).unwrap();
        assert_eq!(pinned.manifest_ref(), ManifestRef::Digest(digest.parse().unwrap()));
        assert_eq!(pinned.manifest_ref().qualify("reg.io/a"), format!("reg.io/a@{digest}"));
        let tagged = Reference::parse("reg.io/a:t").unwrap();
        assert_eq!(tagged.manifest_ref(), ManifestRef::Tag("t".into()));
        assert_eq!(tagged.manifest_ref().qualify("reg.io/a"), "reg.io/a:t");
        let bare = Reference { tag: None, ..tagged.clone() };
        assert_eq!(bare.manifest_ref().to_string(), "latest");
        let at = tagged.at_digest(&digest.parse().unwrap());
        assert_eq!(at.to_string(), format!("reg.io/a@{digest}"));
        let sha512 = Reference::parse(&format!("reg.io/a@sha512:{}", "ab".repeat(64))).unwrap();
        assert!(
            matches!(sha512.manifest_ref(), ManifestRef::Digest(d) if d.algorithm() == crate::digest::Algorithm::Sha512)
        );
    }

    #[test]
    fn separators_follow_the_grammar() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3__d4-e5"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["a___b", "a._b", "a..b", "_a", "a_", "a.-b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }
}
