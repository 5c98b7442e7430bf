//! The repository uploads go to, with the client, the options, and what the run learnt about
//! the registry (shared by every blob of the run).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::BlobUpload;
use crate::digest::Digest;
use crate::model::Descriptor;
use crate::reference::Reference;
use crate::registry::Client;
use crate::resume::Sessions;
use crate::source::Source;

/// How blobs go up.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// Send blobs larger than this in resumable chunks of this size; `None`: chunks sized by
    /// time (about two seconds each at the throughput measured), small blobs in one request.
    pub chunk_size: Option<u64>,
    /// A request body that makes no progress for this long is cut (and retried).
    pub stall_timeout: Duration,
    /// Repositories of the same registry to try mounting blobs from.
    pub mount_from: Vec<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions { chunk_size: None, stall_timeout: Duration::from_secs(60), mount_from: Vec::new() }
    }
}

/// Uploads blobs into one repository of a registry.
pub struct Uploader<'a> {
    pub(super) client: &'a Client,
    pub(super) registry: String,
    pub(super) repository: String,
    pub(super) options: UploadOptions,
    /// Blobs whose last attempt failed, with what hoist knows of their upload.
    uploads: Mutex<HashMap<Digest, BlobUpload>>,
    /// The registry refused a mount for want of rights: stop asking.
    pub(super) mounts_refused: AtomicBool,
    /// The largest chunk the registry took, once it refused a larger one.
    pub(super) chunk_cap: AtomicU64,
    /// Upload sessions remembered across runs.
    pub(super) sessions: Option<Sessions>,
    /// Bytes not sent again because a previous run's session was continued.
    pub(super) resumed: AtomicU64,
    /// The throughput of the last request measured, in bytes a second (0: none yet): what
    /// chunks are sized for.
    pub(super) rate: AtomicU64,
}

impl<'a> Uploader<'a> {
    /// Uploads into `reference`'s repository through `client` (whose upload sessions it
    /// remembers and continues, when the client keeps them).
    pub fn new(client: &'a Client, reference: &Reference, options: UploadOptions) -> Uploader<'a> {
        Uploader {
            client,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            options,
            uploads: Mutex::new(HashMap::new()),
            mounts_refused: AtomicBool::new(false),
            chunk_cap: AtomicU64::new(u64::MAX),
            sessions: client.upload_sessions().cloned(),
            resumed: AtomicU64::new(0),
            rate: AtomicU64::new(0),
        }
    }

    /// Bytes not sent again because a previous run's upload session was continued.
    pub fn resumed_bytes(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    /// What a failed attempt left of the upload of `digest`, if any.
    pub(super) fn take(&self, digest: &Digest) -> Option<BlobUpload> {
        self.uploads.lock().ok().and_then(|mut uploads| uploads.remove(digest))
    }

    /// Keeps what a failed attempt learnt, for the next.
    pub(super) fn keep(&self, digest: &Digest, upload: BlobUpload) {
        if let Ok(mut uploads) = self.uploads.lock() {
            uploads.insert(digest.clone(), upload);
        }
    }
}

/// One blob on its way: what it is, where its bytes come from, and the count of its bytes
/// sent (the progress display reads it; the stall guard watches it).
pub(super) struct Blob<'b> {
    /// The blob.
    pub descriptor: &'b Descriptor,
    /// Where its bytes are read.
    pub source: &'b dyn Source,
    /// Bytes of it sent: set to where each request starts, counted up as its body goes.
    pub progress: &'b Arc<AtomicU64>,
}
