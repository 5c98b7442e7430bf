//! Writing to a registry: blob existence, upload sessions (monolithic, chunked, resumed,
//! mounted) and manifests. Each call is one request and retries nothing: retrying is the push
//! engine's job, in one place.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{status_error, Client};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::registry::error::RegistryError;

/// Bytes read from disk per body chunk.
const READ_CHUNK: usize = 256 * 1024;

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
        url: String,
        /// The smallest chunk the registry accepts, if it said.
        min_chunk: Option<u64>,
    },
}

/// A byte range of a local file, streamed as a request body.
#[derive(Clone, Debug)]
pub struct FileRange {
    /// The file.
    pub path: PathBuf,
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

impl FileRange {
    /// A body that opens the file when sent and counts the bytes it hands out in `progress`.
    fn body(&self, progress: Arc<AtomicU64>) -> Body {
        let state = (self.path.clone(), None::<tokio::fs::File>, self.offset, self.length, progress);
        let stream = futures_util::stream::unfold(state, |(path, file, offset, remaining, progress)| async move {
            if remaining == 0 {
                return None;
            }
            let mut file = match file {
                Some(file) => file,
                None => {
                    let opened = async {
                        let mut file = tokio::fs::File::open(&path).await?;
                        file.seek(std::io::SeekFrom::Start(offset)).await?;
                        Ok::<_, std::io::Error>(file)
                    };
                    match opened.await {
                        Ok(file) => file,
                        Err(e) => return Some((Err(e), (path, None, offset, 0, progress))),
                    }
                }
            };
            let mut buffer = vec![0u8; remaining.min(READ_CHUNK as u64) as usize];
            match file.read(&mut buffer).await {
                Ok(0) => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} is shorter than expected", path.display()),
                    );
                    Some((Err(e), (path, None, offset, 0, progress)))
                }
                Ok(n) => {
                    buffer.truncate(n);
                    progress.fetch_add(n as u64, Ordering::Relaxed);
                    let next = (path, Some(file), offset + n as u64, remaining - n as u64, progress);
                    Some((Ok(Bytes::from(buffer)), next))
                }
                Err(e) => Some((Err(e), (path, None, offset, 0, progress))),
            }
        });
        Body::wrap_stream(stream)
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}digest={digest}")
}

fn location(response: &Response, base: &str) -> Option<String> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    Some(absolute(base, value))
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
    Some(if end == 0 { 0 } else { end + 1 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn range_headers_give_the_bytes_held() {
        assert_eq!(super::held_by_range("0-0"), Some(0));
        assert_eq!(super::held_by_range("0-1048575"), Some(1 << 20));
        assert_eq!(super::held_by_range("bytes=0-99"), Some(100));
        assert_eq!(super::held_by_range("garbage"), None);
    }
}

impl Client {
    /// Whether `repository` has the blob `digest` (a HEAD).
    pub async fn blob_exists(&self, registry: &str, repository: &str, digest: &Digest) -> Result<bool> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response =
            self.send(registry, &[push_scope(repository)], |http, base| http.head(format!("{base}{path}"))).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(registry, &format!("blob {digest}"), "HEAD blob", response).await.into()),
        }
    }

    /// Starts an upload, asking to mount `digest` from `mount_from` when given.
    pub async fn start_upload(
        &self,
        registry: &str,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Started> {
        let mut scopes = vec![push_scope(repository)];
        let mut path = format!("/v2/{repository}/blobs/uploads/");
        if let Some((digest, from)) = mount {
            scopes.push(super::pull_scope(from));
            path.push_str(&format!("?mount={digest}&from={from}"));
        }
        let endpoint = self.endpoint(registry).await?;
        let response = self
            .send(registry, &scopes, |http, base| http.post(format!("{base}{path}")).header(CONTENT_LENGTH, 0))
            .await?;
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
    pub async fn upload_offset(&self, registry: &str, repository: &str, url: &str) -> Result<Option<(u64, String)>> {
        let endpoint = self.endpoint(registry).await?;
        let response = self.send(registry, &[push_scope(repository)], |http, _| http.get(url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let next = location(&response, &endpoint.base).unwrap_or_else(|| url.to_owned());
                Ok(Some((uploaded(&response).unwrap_or(0), next)))
            }
            _ => Err(status_error(registry, "upload session", "GET upload", response).await.into()),
        }
    }

    /// Sends one chunk; returns the next upload URL and the bytes the registry now holds.
    /// `Ok(None)`: the session is gone (404).
    pub async fn upload_chunk(
        &self,
        registry: &str,
        repository: &str,
        url: &str,
        chunk: &FileRange,
        progress: Arc<AtomicU64>,
    ) -> Result<ChunkOutcome> {
        let endpoint = self.endpoint(registry).await?;
        let range = format!("{}-{}", chunk.offset, chunk.offset + chunk.length - 1);
        let response = self
            .send(registry, &[push_scope(repository)], |http, _| {
                http.patch(url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, chunk.length)
                    .header("Content-Range", &range)
                    .body(chunk.body(Arc::clone(&progress)))
            })
            .await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::CREATED => {
                let next = location(&response, &endpoint.base).unwrap_or_else(|| url.to_owned());
                let held = uploaded(&response).unwrap_or(chunk.offset + chunk.length);
                Ok(ChunkOutcome::Accepted { url: next, held })
            }
            StatusCode::NOT_FOUND => Ok(ChunkOutcome::SessionGone),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Ok(ChunkOutcome::Refused)
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(ChunkOutcome::OutOfSync),
            _ => Err(status_error(registry, "upload chunk", "PATCH upload", response).await.into()),
        }
    }

    /// Completes an upload with `body` (all of the blob for a monolithic upload, none after
    /// chunks) and checks the digest the registry reports. `Ok(false)`: the session is gone.
    pub async fn finish_upload(
        &self,
        registry: &str,
        repository: &str,
        url: &str,
        digest: &Digest,
        body: Option<&FileRange>,
        progress: Arc<AtomicU64>,
    ) -> Result<FinishOutcome> {
        let target = with_digest(url, digest);
        let response = self
            .send(registry, &[push_scope(repository)], |http, _| {
                let request = http.put(&target).header(CONTENT_TYPE, "application/octet-stream");
                match body {
                    Some(range) => request.header(CONTENT_LENGTH, range.length).body(range.body(Arc::clone(&progress))),
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
            _ => Err(status_error(registry, &format!("blob {digest}"), "PUT upload", response).await.into()),
        }
    }

    /// Completes an upload with a body streamed from another registry's blob (verified as it
    /// goes), without touching the disk.
    pub async fn finish_upload_streaming(
        &self,
        registry: &str,
        repository: &str,
        url: &str,
        digest: &Digest,
        size: u64,
        source: super::read::BlobStream,
    ) -> Result<()> {
        let stream = futures_util::stream::unfold(source, |mut source| async move {
            match source.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), source)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), source)),
            }
        });
        let body = std::sync::Mutex::new(Some(Body::wrap_stream(stream)));
        let target = with_digest(url, digest);
        let response = self
            .send(registry, &[push_scope(repository)], |http, _| {
                let body = body.lock().ok().and_then(|mut b| b.take()).unwrap_or_else(|| Body::from(Vec::new()));
                http.put(&target)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body)
            })
            .await?;
        if !response.status().is_success() {
            return Err(status_error(registry, &format!("blob {digest}"), "PUT upload", response).await.into());
        }
        check_reported_digest(registry, &response, digest)
    }

    /// Whether the manifest `reference` (a digest or a tag) exists, and its digest.
    pub async fn manifest_digest(&self, registry: &str, repository: &str, reference: &str) -> Result<Option<Digest>> {
        let target = crate::reference::Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: (!reference.starts_with("sha256:")).then(|| reference.to_owned()),
            digest: reference.starts_with("sha256:").then(|| reference.to_owned()),
        };
        Ok(self.head_manifest_scoped(&target, &push_scope(repository)).await?.map(|head| head.digest))
    }

    /// PUTs a manifest under `reference` (its digest, or a tag); checks the digest reported.
    pub async fn put_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let body = Bytes::copy_from_slice(bytes);
        let response = self
            .send(registry, &[push_scope(repository)], |http, base| {
                http.put(format!("{base}{path}")).header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(status_error(
                registry,
                &format!("manifest {registry}/{repository}:{reference}"),
                "PUT manifest",
                response,
            )
            .await
            .into());
        }
        check_reported_digest(registry, &response, &Digest::of(bytes))
    }
}

/// What a PATCH came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored; continue at `url`, the registry holds `held` bytes.
    Accepted {
        /// Next upload URL.
        url: String,
        /// Bytes the registry holds.
        held: u64,
    },
    /// The session no longer exists.
    SessionGone,
    /// The registry does not take chunks.
    Refused,
    /// The chunk did not start where the registry is; ask it.
    OutOfSync,
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
