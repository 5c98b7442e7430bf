//! Writing to a registry: blob existence, upload sessions (monolithic, chunked, resumed,
//! mounted) and manifests. Upload requests are single requests that retry nothing (the
//! transfer engine retries a blob's upload as a whole); HEADs and manifest PUTs are idempotent
//! and retried by the client's policy.

use std::sync::Mutex;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode, Url};

use super::error::{Envelope, ErrorCode};
use super::{api_url, body_prefix, resolve_url, status_error, Client, MAX_ERROR_BODY};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::RawManifest;
use crate::reference::{ManifestRef, Reference};
use crate::registry::error::RegistryError;

/// The token scope to push to a repository.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// Where a blob upload stands after it was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// The registry mounted the blob from another repository: nothing to upload.
    Mounted,
    /// An upload session at this URL; `min_chunk` from OCI-Chunk-Min-Length.
    Session {
        /// Upload URL (absolute).
        url: Url,
        /// The smallest chunk the registry accepts, if it said.
        min_chunk: Option<u64>,
    },
}

/// A request body streamed once: bytes and their count.
pub struct UploadBody {
    length: u64,
    stream: Mutex<Option<BoxStream<'static, std::io::Result<Bytes>>>>,
}

impl UploadBody {
    /// `length` bytes from `stream`.
    pub fn new(stream: BoxStream<'static, std::io::Result<Bytes>>, length: u64) -> UploadBody {
        UploadBody { length, stream: Mutex::new(Some(stream)) }
    }

    /// The body for a request. A stream is sent only once: asked again (a re-authentication),
    /// it fails the request, and the transfer engine starts the blob over.
    fn take(&self) -> reqwest::Body {
        let stream = self.stream.lock().ok().and_then(|mut s| s.take());
        match stream {
            Some(stream) => reqwest::Body::wrap_stream(stream),
            None => {
                let spent = std::io::Error::other("the body was already sent once; starting the blob over");
                reqwest::Body::wrap_stream(futures_util::stream::once(async move { Err::<Bytes, _>(spent) }))
            }
        }
    }
}

fn with_digest(url: &Url, digest: &Digest) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair("digest", &digest.to_string());
    url
}

fn location(response: &Response, base: &str) -> Option<Url> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    resolve_url(base, value)
}

/// How many bytes an upload holds, from its `Range: 0-N` header (N is the last byte held).
///
/// Registries answer `0-0` for an empty session too (distribution does), so `0-0` reads as
/// nothing held: chunks and whole uploads are never a single byte, so nothing is lost by that.
fn uploaded(response: &Response) -> Option<u64> {
    let range = response.headers().get(RANGE)?.to_str().ok()?;
    held_by_range(range)
}

fn held_by_range(range: &str) -> Option<u64> {
    let end: u64 = range.trim().trim_start_matches("bytes=").split('-').nth(1)?.trim().parse().ok()?;
    if end == 0 {
        return Some(0);
    }
    end.checked_add(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn range_headers_give_the_bytes_held() {
        assert_eq!(super::held_by_range("0-0"), Some(0));
        assert_eq!(super::held_by_range("0-1048575"), Some(1 << 20));
        assert_eq!(super::held_by_range("bytes=0-99"), Some(100));
        assert_eq!(super::held_by_range("garbage"), None);
        assert_eq!(super::held_by_range("0-18446744073709551615"), None, "no overflow");
    }

    proptest::proptest! {
        #[test]
        fn any_range_header_parses_without_panic(range in ".*") {
            let _ = super::held_by_range(&range);
        }
    }
}

impl Client {
    /// Whether `repository` has the blob `digest` (a HEAD).
    pub async fn blob_exists(&self, registry: &str, repository: &str, digest: &Digest) -> Result<bool> {
        self.idempotent(&format!("blob {digest}"), || async {
            let endpoint = self.endpoint(registry).await?;
            let url = api_url(&endpoint.base, repository, &["blobs", &digest.to_string()])?;
            let response = self.send(registry, &[push_scope(repository)], |http, _| http.head(url.clone())).await?;
            match response.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(status_error(registry, &format!("blob {digest}"), "HEAD blob", response).await.into()),
            }
        })
        .await
    }

    /// Starts an upload, asking to mount `digest` from `mount_from` when given.
    pub async fn start_upload(
        &self,
        registry: &str,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Started> {
        let mut scopes = vec![push_scope(repository)];
        let endpoint = self.endpoint(registry).await?;
        let mut url = api_url(&endpoint.base, repository, &["blobs", "uploads", ""])?;
        if let Some((digest, from)) = mount {
            scopes.push(super::pull_scope(from));
            url.query_pairs_mut().append_pair("mount", &digest.to_string()).append_pair("from", from);
        }
        let response = self.send(registry, &scopes, |http, _| http.post(url.clone()).header(CONTENT_LENGTH, 0)).await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED => {
                let url = location(&response, &endpoint.base).ok_or_else(|| missing_location(registry))?;
                let min_chunk = response
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Ok(Started::Session { url, min_chunk })
            }
            _ => Err(status_error(registry, &format!("repository {registry}/{repository}"), "POST upload", response)
                .await
                .into()),
        }
    }

    /// How many bytes an upload session holds; `None` when the session is gone (404).
    pub async fn upload_offset(&self, registry: &str, repository: &str, url: &Url) -> Result<UploadStatus> {
        let endpoint = self.endpoint(registry).await?;
        let response = self.send(registry, &[push_scope(repository)], |http, _| http.get(url.clone())).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                let body = body_prefix(response, MAX_ERROR_BODY).await;
                Ok(UploadStatus::Gone { answer: format!("404: {}", Envelope::parse(&body).message("no such upload")) })
            }
            s if s.is_success() => {
                let next = location(&response, &endpoint.base).unwrap_or_else(|| url.clone());
                Ok(UploadStatus::Holds { bytes: uploaded(&response).unwrap_or(0), next })
            }
            _ => Err(status_error(registry, "upload session", "GET upload", response).await.into()),
        }
    }

    /// Sends one chunk of `body.length` bytes starting at `offset`.
    pub async fn upload_chunk(
        &self,
        registry: &str,
        repository: &str,
        url: &Url,
        offset: u64,
        body: UploadBody,
    ) -> Result<ChunkOutcome> {
        let endpoint = self.endpoint(registry).await?;
        let last = offset.checked_add(body.length).and_then(|end| end.checked_sub(1)).unwrap_or(offset);
        let range = format!("{offset}-{last}");
        let response = self
            .send_transfer(registry, &[push_scope(repository)], |http, _| {
                http.patch(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, body.length)
                    .header("Content-Range", &range)
                    .body(body.take())
            })
            .await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::CREATED => {
                // The next offset is what was sent: some registries answer a stale Range here,
                // so it is not read; it is asked for only to recover after a failure.
                Ok(ChunkOutcome::Accepted { url: location(&response, &endpoint.base).unwrap_or_else(|| url.clone()) })
            }
            StatusCode::NOT_FOUND => Ok(ChunkOutcome::SessionGone),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Ok(ChunkOutcome::Refused)
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(ChunkOutcome::OutOfSync),
            StatusCode::PAYLOAD_TOO_LARGE => Ok(ChunkOutcome::TooLarge),
            _ => Err(status_error(registry, "upload chunk", "PATCH upload", response).await.into()),
        }
    }

    /// Completes an upload with `body` (all of the blob for a monolithic upload, none after
    /// chunks) and checks the digest the registry reports.
    pub async fn finish_upload(
        &self,
        registry: &str,
        repository: &str,
        url: &Url,
        digest: &Digest,
        body: Option<UploadBody>,
    ) -> Result<FinishOutcome> {
        let target = with_digest(url, digest);
        let response = self
            .send_transfer(registry, &[push_scope(repository)], |http, _| {
                let request = http.put(target.clone()).header(CONTENT_TYPE, "application/octet-stream");
                match &body {
                    Some(body) => request.header(CONTENT_LENGTH, body.length).body(body.take()),
                    None => request.header(CONTENT_LENGTH, 0),
                }
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                check_reported_digest(registry, &response, digest)?;
                Ok(FinishOutcome::Done)
            }
            StatusCode::NOT_FOUND => Ok(FinishOutcome::SessionGone),
            StatusCode::PAYLOAD_TOO_LARGE => Ok(FinishOutcome::TooLarge),
            StatusCode::BAD_REQUEST => {
                let envelope = Envelope::parse(&super::body_prefix(response, super::MAX_ERROR_BODY).await);
                match envelope.code() {
                    Some(ErrorCode::DigestInvalid) => Ok(FinishOutcome::DigestInvalid),
                    _ => Err(RegistryError::Status {
                        registry: registry.to_owned(),
                        status: 400,
                        request: "PUT upload".into(),
                        message: envelope.message("400 Bad Request"),
                    }
                    .into()),
                }
            }
            _ => Err(status_error(registry, &format!("blob {digest}"), "PUT upload", response).await.into()),
        }
    }

    /// Whether the manifest `reference` (a digest or a tag) exists, and its digest.
    pub async fn manifest_digest(
        &self,
        registry: &str,
        repository: &str,
        reference: &ManifestRef,
    ) -> Result<Option<Digest>> {
        let (tag, digest) = match reference {
            ManifestRef::Tag(tag) => (Some(tag.clone()), None),
            ManifestRef::Digest(digest) => (None, Some(digest.clone())),
        };
        let target = Reference { registry: registry.to_owned(), repository: repository.to_owned(), tag, digest };
        Ok(self.head_manifest_scoped(&target, &push_scope(repository)).await?.map(|head| head.digest))
    }

    /// PUTs a manifest under `reference` (its digest, or a tag); checks the digest reported.
    pub async fn put_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<()> {
        let named = reference.qualify(&format!("{registry}/{repository}"));
        let what = format!("manifest {named}");
        self.idempotent(&what, || async {
            let endpoint = self.endpoint(registry).await?;
            let url = api_url(&endpoint.base, repository, &["manifests", &reference.to_string()])?;
            let body = Bytes::copy_from_slice(&manifest.bytes);
            let response = self
                .send(registry, &[push_scope(repository)], |http, _| {
                    http.put(url.clone())
                        .header(CONTENT_TYPE, manifest.media_type.as_str())
                        .body(body.clone())
                })
                .await?;
            let status = response.status();
            let refused_index = manifest.media_type == crate::model::MediaType::OciIndex
                && matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE);
            if refused_index {
                let envelope = Envelope::parse(&super::body_prefix(response, super::MAX_ERROR_BODY).await);
                return Err(Error::invalid(
                    "index",
                    named.clone(),
                    format!(
                        "{registry} refused an OCI image index ({}); it wants a Docker manifest list: pass --format docker (hoist index create/add, push, copy), which changes the index digest",
                        envelope.message(status.as_str())
                    ),
                ));
            }
            if !status.is_success() {
                return Err(status_error(registry, &what, "PUT manifest", response).await.into());
            }
            check_reported_digest(registry, &response, &manifest.digest)
        })
        .await
    }
}

/// What a registry says of an upload session asked about.
#[derive(Debug)]
pub enum UploadStatus {
    /// It holds `bytes` of the blob; the next request goes to `next`.
    Holds {
        /// Bytes held.
        bytes: u64,
        /// Where the upload goes on.
        next: Url,
    },
    /// It does not know the session (any more), or refuses it: its answer, for the user.
    Gone {
        /// The status and the registry's error codes and messages.
        answer: String,
    },
}

/// What a PATCH came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored; continue at `url`.
    Accepted {
        /// Next upload URL.
        url: Url,
    },
    /// The session no longer exists.
    SessionGone,
    /// The registry does not take chunks.
    Refused,
    /// The chunk did not start where the registry is, or was larger than it takes (GHCR
    /// answers both with 416); ask it where it is.
    OutOfSync,
    /// The chunk was larger than the registry takes (413).
    TooLarge,
}

/// What the final PUT came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The blob is stored.
    Done,
    /// The session no longer exists.
    SessionGone,
    /// The registry refused a body this large in one request.
    TooLarge,
    /// The registry computed another digest for what the session holds.
    DigestInvalid,
}

fn missing_location(registry: &str) -> Error {
    RegistryError::Status {
        registry: registry.to_owned(),
        status: 202,
        request: "POST upload".into(),
        message: "no Location header for the upload session".into(),
    }
    .into()
}

fn check_reported_digest(registry: &str, response: &Response, expected: &Digest) -> Result<()> {
    let reported = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok());
    match reported {
        Some(found) if found.starts_with("sha256:") && found != expected.to_string() => Err(Error::DigestMismatch {
            what: format!("upload to {registry}"),
            expected: expected.to_string(),
            found: found.to_owned(),
        }),
        _ => Ok(()),
    }
}
