//! Chunk sizes: the size a blob starts with, and smaller ones, kept for the run, when a
//! registry refuses a chunk.

use std::sync::atomic::Ordering;

use super::uploader::Uploader;

/// Without `--chunk-size`, blobs up to this size go in one request and larger ones in chunks
/// of at least this size, so that a run killed from outside loses at most one chunk.
const DEFAULT_CHUNK: u64 = 64 << 20;

/// Without `--chunk-size`, a large blob goes in at most this many chunks (fewer requests;
/// a kill loses at most an eighth of it).
const AUTOMATIC_CHUNKS: u64 = 8;

/// The smallest chunk hoist shrinks to when a registry refuses larger ones.
const MIN_CHUNK: u64 = 1 << 20;

impl Uploader<'_> {
    /// The chunk size for a blob of `size` bytes: `--chunk-size`, else at most
    /// [`AUTOMATIC_CHUNKS`] chunks of at least [`DEFAULT_CHUNK`]; never above a chunk the
    /// registry refused in this run.
    pub(super) fn first_chunk(&self, size: u64) -> u64 {
        let automatic = DEFAULT_CHUNK.max(size.div_ceil(AUTOMATIC_CHUNKS));
        self.options.chunk_size.unwrap_or(automatic).max(1).min(self.chunk_cap.load(Ordering::Relaxed))
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
