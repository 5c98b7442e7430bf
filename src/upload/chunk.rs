//! Chunk sizes: sized by time as the upload goes (each chunk should take about two seconds at
//! the throughput measured so far, so that a cancel loses at most one short chunk and a fast
//! link sends a blob in one or two requests), fixed with `--chunk-size`, and smaller, kept for
//! the run, when a registry refuses a chunk.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::{BlobUpload, Way};
use super::uploader::Uploader;

/// Before anything was measured: blobs up to this size go in one request, larger ones start
/// with a chunk of this size.
const START_CHUNK: u64 = 16 << 20;

/// How long a chunk should take, at most; never more than half the cancel grace.
const CHUNK_TIME: Duration = Duration::from_secs(2);

/// The largest chunk sized by time.
const MAX_CHUNK: u64 = 2 << 30;

/// The smallest chunk: sized by time, or shrunk when a registry refuses larger ones.
const MIN_CHUNK: u64 = 1 << 20;

impl Uploader<'_> {
    /// The chunk size a blob starts with: `--chunk-size`, else sized by time; never above a
    /// chunk the registry refused in this run.
    pub(super) fn first_chunk(&self) -> u64 {
        match self.options.chunk_size {
            Some(fixed) => fixed.max(1).min(self.chunk_cap.load(Ordering::Relaxed)),
            None => self.timed_chunk(),
        }
    }

    /// A chunk that takes about [`CHUNK_TIME`] at the throughput measured last (the start
    /// size before any), within [`MIN_CHUNK`]..[`MAX_CHUNK`] and the registry's cap.
    fn timed_chunk(&self) -> u64 {
        let rate = self.rate.load(Ordering::Relaxed);
        let time = CHUNK_TIME.min(self.client.cancel().grace() / 2).max(Duration::from_millis(250));
        let chunk = match rate {
            0 => START_CHUNK,
            rate => (rate as f64 * time.as_secs_f64()) as u64,
        };
        chunk.clamp(MIN_CHUNK, MAX_CHUNK).min(self.chunk_cap.load(Ordering::Relaxed))
    }

    /// Notes that `bytes` went up in one request in `took`: the throughput the next chunks
    /// are sized for (requests too short to tell are not counted).
    pub(super) fn measured(&self, bytes: u64, took: Duration) {
        if bytes >= MIN_CHUNK && !took.is_zero() {
            self.rate.store((bytes as f64 / took.as_secs_f64()) as u64, Ordering::Relaxed);
        }
    }

    /// The length of the next chunk when `remaining` bytes are left: the chunk size, or, sized
    /// by time, the whole rest when it is at most half a chunk more (no short tail request),
    /// within the registry's cap.
    pub(super) fn chunk_length(&self, chunk: u64, remaining: u64) -> u64 {
        let chunk = chunk.min(remaining);
        let short_tail = remaining - chunk <= chunk / 2 && remaining <= self.chunk_cap.load(Ordering::Relaxed);
        match self.options.chunk_size {
            None if short_tail => remaining,
            _ => chunk,
        }
    }

    /// After an accepted chunk: the upload goes on in chunks (a blob once chunked is never
    /// sent whole into its session), sized by time unless `--chunk-size` fixed them.
    pub(super) fn next_chunk(&self, upload: &mut BlobUpload) {
        if upload.way == Way::BySize {
            upload.way = Way::Chunks;
        }
        if self.options.chunk_size.is_none() {
            upload.chunk = self.timed_chunk().max(upload.floor);
        }
    }

    /// Halves the chunk size after the registry refused `refused` bytes (down to
    /// [`MIN_CHUNK`]), and keeps the smaller size for the rest of the run.
    pub(super) fn shrink(&self, chunk: &mut u64, refused: u64) {
        let smaller = (refused / 2).max(MIN_CHUNK).min(*chunk);
        let cap = self.chunk_cap.fetch_min(smaller, Ordering::Relaxed).min(smaller);
        if cap < *chunk {
            tracing::info!("{} refused a {refused}-byte chunk; sending {cap}-byte chunks", self.registry);
        }
        *chunk = cap;
    }
}
