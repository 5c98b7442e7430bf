//! Where one blob's upload stands: the typed state that crosses the steps (and the engine's
//! attempts), and how an upload ends.

use reqwest::Url;
use std::sync::Arc;

use crate::digest::BackgroundHash;

/// How one blob's upload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// Its bytes went up.
    Pushed,
    /// The registry mounted it from this other repository.
    Mounted(String),
}

/// What hoist knows of one blob's upload, kept between the engine's attempts.
pub(super) struct BlobUpload {
    /// Where the upload stands.
    pub stage: Stage,
    /// One request or chunks.
    pub way: Way,
    /// The chunk size: raised to the registry's minimum, lowered when it refuses a chunk.
    pub chunk: u64,
    /// The registry's minimum chunk (OCI-Chunk-Min-Length), 0 without one.
    pub floor: u64,
    /// Whether bytes the registry holds were taken on its word.
    pub resumed: Resumed,
}

impl BlobUpload {
    /// A blob nothing was tried for yet, to go in chunks of `chunk` bytes if it goes in chunks.
    pub fn new(chunk: u64) -> BlobUpload {
        BlobUpload { stage: Stage::Fresh, way: Way::BySize, chunk, floor: 0, resumed: Resumed::No }
    }

    /// Whether a blob of `size` bytes goes in one request (else in chunks).
    pub fn one_request(&self, size: u64) -> bool {
        match self.way {
            Way::BySize => size <= self.chunk,
            Way::OneRequest => true,
            Way::Chunks => false,
        }
    }

    /// Chunks are at least the registry's `min_chunk` (OCI-Chunk-Min-Length).
    pub fn raise_chunk(&mut self, min_chunk: Option<u64>) {
        self.floor = self.floor.max(min_chunk.unwrap_or(0));
        self.chunk = self.chunk.max(self.floor);
    }
}

/// Where the upload stands.
pub(super) enum Stage {
    /// Nothing tried yet: a session a previous run left, then mounts, come first.
    Fresh,
    /// No session open: the next step starts one.
    Closed,
    /// A session in step with hoist: bytes go on from its offset.
    Open(Session),
    /// A session in which a request failed or was refused midway: the registry is asked where
    /// it stands before anything more goes in.
    Unsure {
        /// The session, at the offset hoist knew last.
        session: Session,
        /// The length of a chunk the registry refused with 416, to tell a size cap from a lost
        /// offset once it says where it is.
        refused: Option<u64>,
    },
}

impl Stage {
    /// An open session becomes unsure (the registry is asked before going on); `refused`:
    /// the chunk it refused with 416.
    pub fn doubt(&mut self, refused: Option<u64>) {
        *self = match std::mem::replace(self, Stage::Closed) {
            Stage::Open(session) => Stage::Unsure { session, refused },
            other => other,
        };
    }

    /// An unsure session is in step again.
    pub fn confirm(&mut self) {
        *self = match std::mem::replace(self, Stage::Closed) {
            Stage::Unsure { session, .. } => Stage::Open(session),
            other => other,
        };
    }

    /// Bytes of the blob the registry confirmed holding (0 without a session).
    pub fn confirmed(&self) -> u64 {
        match self {
            Stage::Open(session) | Stage::Unsure { session, .. } => session.offset,
            Stage::Fresh | Stage::Closed => 0,
        }
    }

    /// An attempt failed after `progress` bytes of the blob went out: the session, if any, is
    /// unsure, and bytes beyond that count cannot be in it.
    pub fn interrupt(&mut self, progress: u64) {
        self.doubt(None);
        if let Stage::Unsure { session, .. } = self {
            session.sent = session.sent.max(progress);
        }
    }
}

/// An upload session.
pub(super) struct Session {
    /// Where the next request goes.
    pub url: Url,
    /// Bytes the registry holds: what it reported, or what it took since.
    pub offset: u64,
    /// The most bytes sent into the session: a registry that says it holds more is not
    /// believed (it would make hoist skip bytes).
    pub sent: u64,
    /// The hash of the bytes sent from 0 up to the count, while they run on without a gap
    /// (computed on another thread as the bytes go out).
    pub hashed: Option<(u64, Arc<BackgroundHash>)>,
}

impl Session {
    /// A session the registry just started: empty, hashed from byte 0.
    pub fn new(url: Url) -> Session {
        Session { url, offset: 0, sent: 0, hashed: Some((0, Arc::default())) }
    }

    /// A session a previous run left, holding `held` bytes (not hashed here).
    pub fn continued(url: Url, held: u64) -> Session {
        Session { url, offset: held, sent: held, hashed: None }
    }
}

/// How the blob's bytes go up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    /// In one request when it fits in a chunk, else in chunks.
    BySize,
    /// In one request: the registry refused chunks.
    OneRequest,
    /// In chunks: the registry refused the blob in one request.
    Chunks,
}

/// Whether bytes the registry holds were taken on its word, which decides what another
/// digest at the commit means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resumed {
    /// Never: every byte went in from hoist's own count, so another digest is final.
    No,
    /// The upload went on from an offset the registry reported: another digest may mean the
    /// offset was wrong, so the blob is started over once.
    FromRegistry,
    /// Started over once already: another digest is final.
    StartedOver,
}

impl Resumed {
    /// The upload goes on from an offset the registry reported.
    pub fn trust(&mut self) {
        if *self == Resumed::No {
            *self = Resumed::FromRegistry;
        }
    }

    /// Whether the blob may start over after the registry computed another digest (once).
    pub fn start_over(&mut self) -> bool {
        let may = *self == Resumed::FromRegistry;
        if may {
            *self = Resumed::StartedOver;
        }
        may
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://r/v2/a/blobs/uploads/x").unwrap()
    }

    #[test]
    fn a_failure_makes_an_open_session_unsure_and_bounds_what_it_can_hold() {
        let mut stage = Stage::Open(Session::new(url()));
        stage.interrupt(700);
        let Stage::Unsure { session, refused: None } = &stage else { panic!("not unsure") };
        assert_eq!((session.offset, session.sent), (0, 700));
        stage.interrupt(300);
        let Stage::Unsure { session, .. } = &stage else { panic!("not unsure") };
        assert_eq!(session.sent, 700, "the most ever sent");
        stage.confirm();
        assert!(matches!(stage, Stage::Open(_)));
        let mut closed = Stage::Closed;
        closed.interrupt(5);
        assert!(matches!(closed, Stage::Closed), "nothing to ask about");
    }

    #[test]
    fn the_way_and_a_start_over_follow_what_the_registry_said() {
        let mut upload = BlobUpload::new(10);
        assert!(upload.one_request(10) && !upload.one_request(11));
        upload.way = Way::OneRequest;
        assert!(upload.one_request(11));
        upload.way = Way::Chunks;
        assert!(!upload.one_request(1));
        assert!(!upload.resumed.start_over(), "nothing was resumed");
        upload.resumed.trust();
        assert!(upload.resumed.start_over());
        upload.resumed.trust();
        assert!(!upload.resumed.start_over(), "once only");
    }
}
