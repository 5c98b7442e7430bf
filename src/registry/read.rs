//! Reading from a registry: manifests (checked against their digests), blobs (verified as they
//! stream), tag lists and the catalog (followed across `Link` pages).

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Response, StatusCode, Url};

use super::error::RegistryError;
use super::{api_url, pull_scope, resolve_url, same_origin, status_error, transport_error, Client, CATALOG_SCOPE};
use crate::blob::BlobStream;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::{Descriptor, MediaType, RawManifest, MAX_MANIFEST_BYTES};
use crate::reference::Reference;

/// What a HEAD of a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Media type.
    pub media_type: MediaType,
    /// Digest (Docker-Content-Digest).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// Listings (tags, catalog) follow at most this many pages.
const MAX_PAGES: usize = 10_000;

/// A listing's pages together are at most this many bytes (about a million tags): each page is
/// bounded, and so is their sum, since a registry can send page after distinct page.
pub const MAX_LISTING_BYTES: u64 = 32 << 20;

/// The tag or digest a reference points at, for URLs.
fn target(reference: &Reference) -> String {
    reference.manifest_ref().to_string()
}

fn accept() -> String {
    MediaType::accepted().iter().map(MediaType::as_str).collect::<Vec<_>>().join(", ")
}

impl Client {
    /// Runs a pull from `registry` on its mirrors first (Docker Hub only), then on the registry
    /// itself. When every place fails, the error names each place and what it answered.
    async fn pull<T, F, Fut>(&self, registry: &str, what: &str, pull: F) -> Result<T>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mirrors = self.options.mirrors_for(registry);
        if mirrors.is_empty() {
            return pull(registry.to_owned()).await;
        }
        let mut tried = Vec::new();
        for mirror in mirrors {
            match pull(mirror.clone()).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    tracing::info!("mirror {mirror}: {e}; trying the next place");
                    tried.push(format!("mirror {mirror}: {e}"));
                }
            }
        }
        match pull(registry.to_owned()).await {
            Ok(found) => Ok(found),
            Err(e) => {
                let not_found = matches!(e, Error::Registry(RegistryError::NotFound { .. }));
                tried.push(format!("{registry}: {e}"));
                let message = format!("tried {}", tried.join("; "));
                Err(match not_found {
                    true => RegistryError::NotFound {
                        registry: format!("{registry} and its mirrors"),
                        what: what.to_owned(),
                        message,
                    },
                    false => {
                        RegistryError::Unreachable { registry: format!("{registry} and its mirrors"), detail: message }
                    }
                }
                .into())
            }
        }
    }

    /// GETs the manifest `reference` names (from Docker Hub's mirrors first). The bytes must
    /// match the digest asked for and the registry's Docker-Content-Digest; a body over 4 MiB
    /// is refused.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        self.pull(&reference.registry, &format!("manifest {reference}"), |registry| {
            let at = Reference { registry, ..reference.clone() };
            async move { self.get_manifest_direct(&at).await }
        })
        .await
    }

    /// GETs a manifest from `reference`'s registry itself, never a mirror: for what hoist is
    /// about to write over.
    pub async fn get_manifest_direct(&self, reference: &Reference) -> Result<RawManifest> {
        let what = format!("manifest {reference}");
        self.idempotent(&what, || self.get_manifest_once(reference)).await
    }

    async fn get_manifest_once(&self, reference: &Reference) -> Result<RawManifest> {
        let registry = &reference.registry;
        let endpoint = self.endpoint(registry).await?;
        let url = api_url(&endpoint.base, &reference.repository, &["manifests", &target(reference)])?;
        let response = self
            .send(registry, &[pull_scope(&reference.repository)], |http, _| {
                http.get(url.clone()).header(ACCEPT, accept())
            })
            .await?;
        if !response.status().is_success() {
            return Err(status_error(registry, &format!("manifest {reference}"), "GET manifest", response)
                .await
                .into());
        }
        let header_digest = docker_content_digest(&response);
        let content_type = header_text(&response, CONTENT_TYPE);
        let what = format!("manifest {reference}");
        let bytes = read_limited(registry, &what, response, MAX_MANIFEST_BYTES).await?;
        // The digest asked for must match with the algorithm it names (sha256, sha384 or
        // sha512); so must the registry's Docker-Content-Digest when it is one hoist knows.
        let pinned = reference.digest.as_ref().map(|d| (d.to_string(), Some(d.verifies(&bytes))));
        let claimed = header_digest.map(|d| (crate::text::printable(&d), crate::digest::matches(&d, &bytes)));
        for (expected, matched) in pinned.into_iter().chain(claimed) {
            if matched == Some(false) {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {reference} from {registry} (refused, not used)"),
                    expected,
                    found: Digest::of(&bytes).to_string(),
                });
            }
        }
        // The Content-Type is a claim the document itself must not contradict.
        RawManifest::new(bytes, content_type.as_deref().map(MediaType::from), &what)
    }

    /// HEADs the manifest `reference` names; `None` when there is none.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<ManifestHead>> {
        let mirrored = self
            .pull(&reference.registry, &format!("manifest {reference}"), |registry| {
                let at = Reference { registry, ..reference.clone() };
                async move {
                    match self.head_manifest_scoped(&at, &pull_scope(&at.repository)).await? {
                        Some(head) => Ok(head),
                        None => Err(RegistryError::NotFound {
                            registry: at.registry.clone(),
                            what: format!("manifest {at}"),
                            message: "404 Not Found".into(),
                        }
                        .into()),
                    }
                }
            })
            .await;
        match mirrored {
            Ok(head) => Ok(Some(head)),
            Err(Error::Registry(RegistryError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Client::head_manifest`] with the token scope of the caller (a push asks for push),
    /// from the registry itself.
    pub async fn head_manifest_scoped(&self, reference: &Reference, scope: &str) -> Result<Option<ManifestHead>> {
        let what = format!("manifest {reference}");
        self.idempotent(&what, || self.head_manifest_once(reference, scope)).await
    }

    async fn head_manifest_once(&self, reference: &Reference, scope: &str) -> Result<Option<ManifestHead>> {
        let registry = &reference.registry;
        let endpoint = self.endpoint(registry).await?;
        let url = api_url(&endpoint.base, &reference.repository, &["manifests", &target(reference)])?;
        let response =
            self.send(registry, &[scope.to_owned()], |http, _| http.head(url.clone()).header(ACCEPT, accept())).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error(registry, &format!("manifest {reference}"), "HEAD manifest", response)
                .await
                .into());
        }
        let digest = match (docker_content_digest(&response), &reference.digest) {
            (Some(d), _) => d.parse()?,
            (None, Some(d)) => d.clone(),
            (None, None) => return Ok(None),
        };
        Ok(Some(ManifestHead {
            media_type: MediaType::from(header_text(&response, CONTENT_TYPE).unwrap_or_default().as_str()),
            digest,
            size: response.content_length().unwrap_or(0),
        }))
    }

    /// Opens the blob `descriptor` of `repository` from byte `offset` (Docker Hub's mirrors
    /// first), cut at its size and, from the start, verified as it is read.
    pub async fn get_blob(
        &self,
        registry: &str,
        repository: &str,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        self.pull(registry, &format!("blob {}", descriptor.digest), |at| async move {
            let what = format!("blob {} in {at}/{repository}", descriptor.digest);
            self.idempotent(&what, || self.get_blob_at(&at, repository, descriptor, offset)).await
        })
        .await
    }

    async fn get_blob_at(
        &self,
        registry: &str,
        repository: &str,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        let digest = descriptor.digest.to_string();
        let endpoint = self.endpoint(registry).await?;
        let url = api_url(&endpoint.base, repository, &["blobs", &digest])?;
        let response = self
            .send_transfer(registry, &[pull_scope(repository)], |http, _| match offset {
                0 => http.get(url.clone()),
                _ => http.get(url.clone()).header(RANGE, format!("bytes={offset}-")),
            })
            .await?;
        if !response.status().is_success() {
            let what = format!("blob {digest} in {registry}/{repository}");
            return Err(status_error(registry, &what, "GET blob", response).await.into());
        }
        // A registry that ignores Range sends the whole blob: skip what was not asked for.
        let skip = if response.status() == StatusCode::PARTIAL_CONTENT { 0 } else { offset };
        let name = registry.to_owned();
        let mut to_skip = skip;
        let chunks = response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| Error::from(transport_error(&name, &e))))
            .filter_map(move |chunk| {
                let kept = match chunk {
                    Ok(mut bytes) if to_skip > 0 => {
                        let cut = to_skip.min(bytes.len() as u64);
                        to_skip -= cut;
                        let rest = bytes.split_off(cut as usize);
                        (!rest.is_empty()).then_some(Ok(rest))
                    }
                    other => Some(other),
                };
                std::future::ready(kept)
            })
            .boxed();
        Ok(BlobStream::new(chunks, descriptor, offset, registry))
    }

    /// Reads a small blob (a config) whole, verified; refuses one over `limit` bytes.
    pub async fn get_blob_bytes(
        &self,
        registry: &str,
        repository: &str,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>> {
        if descriptor.size > limit {
            return Err(RegistryError::TooLarge {
                registry: registry.to_owned(),
                what: format!("blob {}", descriptor.digest),
                limit,
            }
            .into());
        }
        let mut stream = self.get_blob(registry, repository, descriptor, 0).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Every tag of `registry/repository`, following `Link` pages.
    pub async fn list_tags(&self, registry: &str, repository: &str) -> Result<Vec<String>> {
        let endpoint = self.endpoint(registry).await?;
        let mut first = api_url(&endpoint.base, repository, &["tags", "list"])?;
        first.set_query(Some("n=1000"));
        let what = format!("repository {registry}/{repository}");
        self.list(registry, &pull_scope(repository), first, |page| page.tags, &what).await
    }

    /// Every repository in `registry`'s catalog, following `Link` pages.
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>> {
        let endpoint = self.endpoint(registry).await?;
        let mut first = api_url(&endpoint.base, "", &["_catalog"])?;
        first.set_query(Some("n=1000"));
        let what = format!("the catalog of {registry}");
        self.list(registry, CATALOG_SCOPE, first, |page| page.repositories, &what).await
    }

    /// Follows `Link: <…>; rel="next"` pages on the registry's own origin only, taking the
    /// names `field` picks from each; a page seen before ends the listing, and more than
    /// [`MAX_LISTING_BYTES`] in all is refused.
    async fn list(
        &self,
        registry: &str,
        scope: &str,
        first: Url,
        field: fn(Page) -> Option<Vec<String>>,
        what: &str,
    ) -> Result<Vec<String>> {
        let endpoint = self.endpoint(registry).await?;
        let mut items = Vec::new();
        let mut total = 0u64;
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                break;
            }
            if seen.len() > MAX_PAGES {
                return Err(Error::Malformed {
                    what: format!("the listing of {what} from {registry}"),
                    reason: format!("it goes on past {MAX_PAGES} pages"),
                });
            }
            let response = self
                .idempotent(what, || async {
                    let response = self.send(registry, &[scope.to_owned()], |http, _| http.get(url.clone())).await?;
                    match response.status().is_success() {
                        true => Ok(response),
                        false => Err(status_error(registry, what, "list", response).await.into()),
                    }
                })
                .await?;
            next = next_link(&response).and_then(|link| resolve_url(&endpoint.base, &link)).filter(|url| {
                let same = same_origin(url, &endpoint.base);
                if !same {
                    tracing::warn!("{registry}: not following a page link to another host");
                }
                same
            });
            let bytes = read_limited(registry, what, response, MAX_MANIFEST_BYTES).await?;
            total += bytes.len() as u64;
            if total > MAX_LISTING_BYTES {
                return Err(RegistryError::TooLarge {
                    registry: registry.to_owned(),
                    what: format!("the listing of {what} ({} pages together)", seen.len()),
                    limit: MAX_LISTING_BYTES,
                }
                .into());
            }
            let page: Page =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: what.to_owned(), source })?;
            items.extend(field(page).unwrap_or_default());
        }
        Ok(items)
    }
}

/// A page of a tag list (`tags`) or of the catalog (`repositories`); distribution sends
/// `"tags": null` for a repository without tags.
#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

fn header_text(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
}

fn docker_content_digest(response: &Response) -> Option<String> {
    header_text(response, reqwest::header::HeaderName::from_static("docker-content-digest"))
}

/// `Link: </v2/…?last=x&n=1000>; rel="next"` → the next page's path.
fn next_link(response: &Response) -> Option<String> {
    next_in_link(response.headers().get(reqwest::header::LINK)?.to_str().ok()?)
}

/// The `rel="next"` target of a `Link` header's value.
fn next_in_link(link: &str) -> Option<String> {
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part[start..].find('>')? + start;
        Some(part[start..end].to_owned())
    })
}

/// Reads a body of at most `limit` bytes, refusing a larger one without reading it all.
pub(super) async fn read_limited(registry: &str, what: &str, response: Response, limit: u64) -> Result<Vec<u8>> {
    let too_large = || RegistryError::TooLarge { registry: registry.to_owned(), what: what.to_owned(), limit };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large().into());
    }
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| transport_error(registry, &e))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(too_large().into());
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn next_links_are_found() {
        assert_eq!(
            super::next_in_link("</v2/a/tags/list?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(super::next_in_link(">x<; rel=\"next\""), None);
    }

    proptest! {
        #[test]
        fn any_link_header_parses_without_panic(link in ".*") {
            let _ = super::next_in_link(&link);
        }
    }
}
