//! Reading from a registry: manifests (checked against their digests), blobs (verified as they
//! stream), tag lists and the catalog (followed across `Link` pages).

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use sha2::{Digest as _, Sha256};

use super::error::RegistryError;
use super::{pull_scope, status_error, transport_error, Client, CATALOG_SCOPE};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

/// Media types hoist asks for and understands, in order of preference.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Manifests larger than this are refused (the limit distribution and containerd use).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A manifest as the registry served it, verified.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Media type, from Content-Type or the document.
    pub media_type: String,
    /// sha256 of the exact bytes.
    pub digest: Digest,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// What a HEAD of a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Media type.
    pub media_type: String,
    /// Digest (Docker-Content-Digest).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// The tag or digest a reference points at, for URLs.
fn target(reference: &Reference) -> &str {
    reference.digest.as_deref().or(reference.tag.as_deref()).unwrap_or("latest")
}

fn accept() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
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
                        RegistryError::Connect { registry: format!("{registry} and its mirrors"), detail: message }
                    }
                }
                .into())
            }
        }
    }

    /// GETs the manifest `reference` names (from Docker Hub's mirrors first). The bytes must
    /// match the digest asked for and the registry's Docker-Content-Digest; a body over 4 MiB
    /// is refused.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest> {
        self.pull(&reference.registry, &format!("manifest {reference}"), |registry| {
            let at = Reference { registry, ..reference.clone() };
            async move { self.get_manifest_direct(&at).await }
        })
        .await
    }

    /// GETs a manifest from `reference`'s registry itself, never a mirror: for what hoist is
    /// about to write over.
    pub async fn get_manifest_direct(&self, reference: &Reference) -> Result<Manifest> {
        let registry = &reference.registry;
        let url_path = format!("/v2/{}/manifests/{}", reference.repository, target(reference));
        let response = self
            .send(registry, &[pull_scope(&reference.repository)], |http, base| {
                http.get(format!("{base}{url_path}")).header(ACCEPT, accept())
            })
            .await?;
        if !response.status().is_success() {
            return Err(status_error(registry, &format!("manifest {reference}"), "GET manifest", response)
                .await
                .into());
        }
        let header_digest = docker_content_digest(&response);
        let content_type = header_text(&response, CONTENT_TYPE);
        let bytes = read_limited(registry, &format!("manifest {reference}"), response, MAX_MANIFEST_BYTES).await?;
        let digest = Digest::of(&bytes);
        for expected in [reference.digest.clone(), header_digest].into_iter().flatten() {
            if expected.starts_with("sha256:") && expected != digest.to_string() {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {reference} from {registry} (refused, not used)"),
                    expected,
                    found: digest.to_string(),
                });
            }
        }
        let media_type = content_type
            .filter(|t| MANIFEST_MEDIA_TYPES.contains(&t.as_str()))
            .or_else(|| media_type_in(&bytes))
            .unwrap_or_default();
        Ok(Manifest { media_type, digest, bytes })
    }

    /// HEADs the manifest `reference` names (Docker Hub's mirrors first; HEADs do not count
    /// against its pull limit): `None` when it does not exist.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<ManifestHead>> {
        let scope = pull_scope(&reference.repository);
        let found = self
            .pull(&reference.registry, &format!("manifest {reference}"), |registry| {
                let (at, scope) = (Reference { registry, ..reference.clone() }, &scope);
                async move {
                    match self.head_manifest_scoped(&at, scope).await? {
                        Some(head) => Ok(head),
                        None => Err(RegistryError::NotFound {
                            registry: at.registry.clone(),
                            what: at.to_string(),
                            message: "HEAD answered 404".into(),
                        }
                        .into()),
                    }
                }
            })
            .await;
        match found {
            Ok(head) => Ok(Some(head)),
            Err(Error::Registry(RegistryError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Client::head_manifest`] with the token scope of the caller (a push asks for push).
    pub async fn head_manifest_scoped(&self, reference: &Reference, scope: &str) -> Result<Option<ManifestHead>> {
        let registry = &reference.registry;
        let url_path = format!("/v2/{}/manifests/{}", reference.repository, target(reference));
        let response = self
            .send(registry, &[scope.to_owned()], |http, base| {
                http.head(format!("{base}{url_path}")).header(ACCEPT, accept())
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error(registry, &format!("manifest {reference}"), "HEAD manifest", response)
                .await
                .into());
        }
        let digest = match (docker_content_digest(&response), &reference.digest) {
            (Some(d), _) => d,
            (None, Some(d)) => d.clone(),
            (None, None) => return Ok(None),
        };
        Ok(Some(ManifestHead {
            media_type: header_text(&response, CONTENT_TYPE).unwrap_or_default(),
            digest: digest.parse()?,
            size: response.content_length().unwrap_or(0),
        }))
    }

    /// Opens the blob `digest` of `repository` as a stream verified as it is read (Docker Hub's
    /// mirrors first).
    pub async fn get_blob(&self, registry: &str, repository: &str, digest: &Digest) -> Result<BlobStream> {
        self.pull(
            registry,
            &format!("blob {digest}"),
            |at| async move { self.get_blob_at(&at, repository, digest).await },
        )
        .await
    }

    async fn get_blob_at(&self, registry: &str, repository: &str, digest: &Digest) -> Result<BlobStream> {
        let url_path = format!("/v2/{repository}/blobs/{digest}");
        let response =
            self.send(registry, &[pull_scope(repository)], |http, base| http.get(format!("{base}{url_path}"))).await?;
        if !response.status().is_success() {
            let what = format!("blob {digest} in {registry}/{repository}");
            return Err(status_error(registry, &what, "GET blob", response).await.into());
        }
        Ok(BlobStream { registry: registry.to_owned(), expected: digest.clone(), hasher: Sha256::new(), response })
    }

    /// Reads a small blob (a config) whole, verified; refuses one over `limit` bytes.
    pub async fn get_blob_bytes(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let mut stream = self.get_blob(registry, repository, digest).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(RegistryError::TooLarge {
                    registry: registry.to_owned(),
                    what: format!("blob {digest}"),
                    limit,
                }
                .into());
            }
        }
        Ok(bytes)
    }

    /// Every tag of `registry/repository`, following `Link` pages.
    pub async fn list_tags(&self, registry: &str, repository: &str) -> Result<Vec<String>> {
        let first = format!("/v2/{repository}/tags/list?n=1000");
        self.list(registry, &pull_scope(repository), &first, "tags", &format!("repository {registry}/{repository}"))
            .await
    }

    /// Every repository in `registry`'s catalog, following `Link` pages.
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>> {
        self.list(registry, CATALOG_SCOPE, "/v2/_catalog?n=1000", "repositories", &format!("the catalog of {registry}"))
            .await
    }

    async fn list(&self, registry: &str, scope: &str, first: &str, field: &str, what: &str) -> Result<Vec<String>> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            let response = self
                .send(registry, &[scope.to_owned()], |http, base| {
                    let url = if path.starts_with("http") { path.clone() } else { format!("{base}{path}") };
                    http.get(url)
                })
                .await?;
            if !response.status().is_success() {
                return Err(status_error(registry, what, "list", response).await.into());
            }
            next = next_link(&response);
            let bytes = read_limited(registry, what, response, MAX_MANIFEST_BYTES).await?;
            let page: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: what.to_owned(), source })?;
            if let Some(list) = page.get(field).and_then(|v| v.as_array()) {
                items.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
            }
        }
        Ok(items)
    }
}

/// A blob download that checks its digest at the end.
pub struct BlobStream {
    registry: String,
    expected: Digest,
    hasher: Sha256,
    response: Response,
}

impl BlobStream {
    /// The next chunk; `None` at the end, after the digest was checked.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => {
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
            Ok(None) => {
                let found = Digest::of_hasher(std::mem::take(&mut self.hasher));
                if found != self.expected {
                    return Err(Error::DigestMismatch {
                        what: format!("blob from {} (refused, not used)", self.registry),
                        expected: self.expected.to_string(),
                        found: found.to_string(),
                    });
                }
                Ok(None)
            }
            Err(e) => Err(transport_error(&self.registry, &e).into()),
        }
    }
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

fn media_type_in(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("mediaType")?.as_str().map(str::to_owned)
}

/// `Link: </v2/…?last=x&n=1000>; rel="next"` → the next page's path.
fn next_link(response: &Response) -> Option<String> {
    let link = response.headers().get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_owned())
    })
}

/// Reads a body of at most `limit` bytes, refusing a larger one without reading it all.
async fn read_limited(registry: &str, what: &str, response: Response, limit: u64) -> Result<Vec<u8>> {
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
