//! Blob bytes as streams: read from files or responses, cut at the size their descriptor
//! gives, and checked against their digest at the end.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::digest::{BackgroundHash, Digest};
use crate::error::{Error, IoContext, Result};
use crate::model::Descriptor;

/// Bytes read from disk per chunk.
const READ_CHUNK: usize = 256 * 1024;

/// A blob's bytes from `offset` on, as chunks. Reading past the descriptor's size is an
/// error, and so is ending early; read from the start, the digest is checked at the end.
pub struct BlobStream {
    inner: BoxStream<'static, Result<Bytes>>,
    expected: Digest,
    size: u64,
    position: u64,
    /// The digest check, from byte 0 only: hashed on another thread as the bytes go by.
    check: Option<BackgroundHash>,
    what: String,
}

impl BlobStream {
    /// Wraps `inner`, which yields the blob `descriptor` from byte `offset`; `what` names where
    /// it comes from in errors.
    pub fn new(
        inner: BoxStream<'static, Result<Bytes>>,
        descriptor: &Descriptor,
        offset: u64,
        what: impl Into<String>,
    ) -> BlobStream {
        BlobStream {
            inner,
            expected: descriptor.digest.clone(),
            size: descriptor.size,
            position: offset,
            check: (offset == 0).then(BackgroundHash::default),
            what: what.into(),
        }
    }

    /// The next chunk; `None` at the end, once the size (and, from the start, the digest)
    /// checked out.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.inner.next().await {
            Some(Ok(chunk)) => {
                let position = self.position.checked_add(chunk.len() as u64).filter(|p| *p <= self.size);
                let Some(position) = position else {
                    return Err(Error::SizeMismatch {
                        what: format!("blob {} from {}", self.expected, self.what),
                        expected: self.size,
                        found: format!("more than {}", self.size),
                    });
                };
                self.position = position;
                if let Some(check) = &self.check {
                    check.update(chunk.clone()).await;
                }
                // At the last byte the digest is checked before the chunk is handed on, so a
                // blob that is not what its digest says never reaches a registry whole.
                if position == self.size {
                    self.verify().await?;
                }
                Ok(Some(chunk))
            }
            Some(Err(e)) => Err(e),
            None => {
                if self.position != self.size {
                    return Err(Error::SizeMismatch {
                        what: format!("blob {} from {}", self.expected, self.what),
                        expected: self.size,
                        found: self.position.to_string(),
                    });
                }
                self.verify().await?;
                Ok(None)
            }
        }
    }

    /// The same stream without the digest check: for a part of the blob whose bytes are
    /// checked elsewhere (an upload's chunks, hashed across requests).
    pub fn unchecked(mut self) -> BlobStream {
        self.check = None;
        self
    }

    /// Checks the digest once every byte went through (reads from byte 0 only).
    async fn verify(&mut self) -> Result<()> {
        if let Some(check) = self.check.take() {
            let found = Digest::of_background(&check).await?;
            if found != self.expected {
                return Err(Error::DigestMismatch {
                    what: format!("blob from {} (refused, not used)", self.what),
                    expected: self.expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok(())
    }

    /// At most `length` bytes of it as a stream of I/O results (for request bodies), each
    /// counted into `progress` as it goes out.
    pub fn into_body(self, length: u64, progress: Arc<AtomicU64>) -> BoxStream<'static, std::io::Result<Bytes>> {
        futures_util::stream::unfold((self, length), move |(mut blob, remaining)| {
            let progress = Arc::clone(&progress);
            async move {
                if remaining == 0 {
                    return None;
                }
                match blob.next_chunk().await {
                    Ok(Some(mut chunk)) => {
                        if chunk.len() as u64 > remaining {
                            chunk.truncate(remaining as usize);
                        }
                        progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        let left = remaining - chunk.len() as u64;
                        Some((Ok(chunk), (blob, left)))
                    }
                    Ok(None) => None,
                    Err(e) => Some((Err(std::io::Error::other(BodyError(e))), (blob, 0))),
                }
            }
        })
        .boxed()
    }
}

/// Why a request body stopped: the blob's own failure, carried through the HTTP client so
/// that the transfer reports it (a digest mismatch is not a network failure).
#[derive(Debug)]
pub struct BodyError(pub Error);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {}

impl BodyError {
    /// The blob's failure inside `error`'s chain, if a request body stopped for it. Integrity
    /// failures come back as they were; others (reading the file) as an I/O error.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<Error> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = cause {
            let inner = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
            if let Some(BodyError(found)) = inner.and_then(|e| e.downcast_ref::<BodyError>()) {
                return Some(match found {
                    Error::DigestMismatch { what, expected, found } => {
                        Error::DigestMismatch { what: what.clone(), expected: expected.clone(), found: found.clone() }
                    }
                    Error::SizeMismatch { what, expected, found } => {
                        Error::SizeMismatch { what: what.clone(), expected: *expected, found: found.clone() }
                    }
                    other => Error::io("read", "the blob being sent", std::io::Error::other(other.to_string())),
                });
            }
            cause = match inner {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => current.source(),
            };
        }
        None
    }
}

/// Streams `blob` into `writer` on a blocking thread, so file writes stay off the async
/// threads; counts bytes into `progress`. Returns the writer once every byte is in (and the
/// blob checked out).
pub async fn copy_to_writer<W: std::io::Write + Send + 'static>(
    mut blob: BlobStream,
    writer: W,
    progress: &AtomicU64,
) -> Result<W> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writing = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = receiver.blocking_recv() {
            writer.write_all(&chunk)?;
        }
        writer.flush()?;
        Ok::<_, std::io::Error>(writer)
    });
    let reading = async move {
        while let Some(chunk) = blob.next_chunk().await? {
            progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if sender.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<_, Error>(())
    };
    let (read, written) = tokio::join!(reading, writing);
    read?;
    written
        .map_err(|e| Error::io("write", "a blob", std::io::Error::other(e.to_string())))?
        .map_err(|e| Error::io("write", "a blob", e))
}

/// `length` bytes of the open `file` from `start`, read in chunks as they are asked for;
/// `path` names it in errors. What is read is the file opened (and checked), whatever happens
/// to its path since; reads are by position, so streams of one file share no offset.
pub fn held_chunks(
    file: Arc<std::fs::File>,
    path: PathBuf,
    start: u64,
    length: u64,
) -> BoxStream<'static, Result<Bytes>> {
    use std::os::unix::fs::FileExt as _;
    let end = start.saturating_add(length);
    futures_util::stream::try_unfold((file, path, start), move |(file, path, at)| async move {
        if at >= end {
            return Ok(None);
        }
        let (reading, want) = (Arc::clone(&file), (end - at).min(READ_CHUNK as u64) as usize);
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; want];
            let n = loop {
                match reading.read_at(&mut buffer, at) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    result => break result?,
                }
            };
            buffer.truncate(n);
            Ok::<_, std::io::Error>(buffer)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|read| read)
        .map_err(|e| Error::io("read", &path, e))?;
        if read.is_empty() {
            return Ok(None);
        }
        let next = at + read.len() as u64;
        Ok(Some((Bytes::from(read), (file, path, next))))
    })
    .boxed()
}

/// The bytes of the file at `path` from byte `start`, at most `length` of them (`None`: to
/// its end), read in chunks as they are asked for; the file is opened at the first.
pub fn file_chunks(path: PathBuf, start: u64, length: Option<u64>) -> BoxStream<'static, Result<Bytes>> {
    let opened = async move {
        let mut file = tokio::fs::File::open(&path).await.at("read", &path)?;
        file.seek(SeekFrom::Start(start)).await.at("read", &path)?;
        let chunks = ReaderStream::with_capacity(file.take(length.unwrap_or(u64::MAX)), READ_CHUNK);
        Ok::<_, Error>(chunks.map(move |chunk| chunk.at("read", &path)))
    };
    futures_util::stream::once(opened).try_flatten().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MediaType;

    fn stream(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes>> {
        let parts: Vec<Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures_util::stream::iter(parts).boxed()
    }

    async fn drain(mut blob: BlobStream) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = blob.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn a_blob_is_cut_at_its_size_and_checked_against_its_digest() {
        let descriptor = Descriptor::new(MediaType::OciLayer, Digest::of(b"hello"), 5);
        assert_eq!(drain(BlobStream::new(stream(&[b"he", b"llo"]), &descriptor, 0, "t")).await.unwrap(), b"hello");
        let longer = drain(BlobStream::new(stream(&[b"hello", b" and more"]), &descriptor, 0, "t")).await;
        assert!(matches!(longer, Err(Error::SizeMismatch { .. })), "{longer:?}");
        let shorter = drain(BlobStream::new(stream(&[b"hell"]), &descriptor, 0, "t")).await;
        assert!(matches!(shorter, Err(Error::SizeMismatch { .. })), "{shorter:?}");
        let other = drain(BlobStream::new(stream(&[b"jello"]), &descriptor, 0, "t")).await;
        assert!(matches!(other, Err(Error::DigestMismatch { .. })), "{other:?}");
        let mut wrong = BlobStream::new(stream(&[b"jel", b"lo"]), &descriptor, 0, "t");
        assert!(wrong.next_chunk().await.unwrap().is_some());
        assert!(wrong.next_chunk().await.is_err(), "the last chunk of a wrong blob is never handed on");
        let tail = drain(BlobStream::new(stream(&[b"llo"]), &descriptor, 2, "t")).await.unwrap();
        assert_eq!(tail, b"llo", "a read from an offset is only cut at the size");
    }
}
