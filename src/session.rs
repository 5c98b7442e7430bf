//! A session: what every verb of hoist runs in.
//!
//! One session per process: one tokio runtime (made when the network is first needed; a build
//! that touches no registry never starts one) and one registry [`Client`], which finds each
//! registry once, keeps its tokens per scope and remembers where blobs were seen. A workflow
//! that reads a base image, pushes the result and attaches SBOMs pings each registry once and
//! fetches each token once, whatever steps it takes.
//!
//! ```no_run
//! use hoist::session::{Session, Settings};
//!
//! let session = Session::new(Settings::from_environment());
//! let tags = session.block_on(session.client().list_tags("registry.example.com", "team/app"))?;
//! println!("{tags:?}");
//! # Ok::<(), hoist::Error>(())
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::cache::Cache;
use crate::cancel::{Cancel, DEFAULT_GRACE, GRACE_ENV};
use crate::credentials::CredentialStore;
use crate::error::Error;
use crate::registry::transport::{TransportOptions, DOCKER_DAEMON_JSON};
use crate::registry::{Client, RetryPolicy};
use crate::resume::Sessions;

/// Environment variable naming docker's per-registry certificate directory (tests, set-ups
/// without `/etc/docker`).
pub const CERTS_DIR_ENV: &str = "HOIST_DOCKER_CERTS_DIR";
/// Environment variable naming docker's daemon settings file, read for insecure registries
/// and mirrors.
pub const DAEMON_JSON_ENV: &str = "HOIST_DOCKER_DAEMON_JSON";

/// What a session is made from: how to reach registries, whose credentials, how to retry.
#[derive(Debug)]
pub struct Settings {
    /// Connections: certificates, insecure registries, mirrors, timeouts.
    pub transport: TransportOptions,
    /// Credentials: explicit ones, `$HOIST_USERNAME`/`$HOIST_PASSWORD`, docker's config.
    pub credentials: CredentialStore,
    /// Retries of idempotent requests on transient failures.
    pub retry: RetryPolicy,
    /// Whether to remember where blobs were seen (in hoist's cache directory), for mounts:
    /// on for commands that move content.
    pub remember_places: bool,
    /// Where upload sessions are remembered across runs (`$XDG_STATE_HOME/hoist/uploads`), so
    /// that a push killed from outside continues in the next run; `None`: not remembered.
    pub upload_sessions: Option<Sessions>,
    /// hoist's cache directory (`$XDG_CACHE_HOME/hoist`, else `~/.cache/hoist`); `None` when
    /// the environment names no home.
    pub cache_dir: Option<PathBuf>,
    /// How long requests in flight may go on once the run is stopped (`$HOIST_CANCEL_GRACE`
    /// seconds, else 5).
    pub cancel_grace: Duration,
}

impl Settings {
    /// The settings the environment gives: docker's certificate directory and daemon settings
    /// (or the files `$HOIST_DOCKER_CERTS_DIR` and `$HOIST_DOCKER_DAEMON_JSON` name), the
    /// `$HOIST_*` variables, docker's credentials, the upload sessions' directory; default
    /// retries, places not remembered.
    pub fn from_environment() -> Settings {
        Settings::with_transport(TransportOptions::default(), None)
    }

    /// [`Settings::from_environment`] on top of `transport` (the user's flags), with
    /// `explicit` credentials first when given.
    pub fn with_transport(
        mut transport: TransportOptions,
        explicit: Option<crate::credentials::Credential>,
    ) -> Settings {
        if let Some(dir) = std::env::var_os(CERTS_DIR_ENV) {
            transport.certs_dir = PathBuf::from(dir);
        }
        let daemon_json = std::env::var_os(DAEMON_JSON_ENV).map_or(PathBuf::from(DOCKER_DAEMON_JSON), PathBuf::from);
        Settings {
            transport: transport.with_environment(&daemon_json),
            credentials: CredentialStore::from_environment(explicit),
            retry: RetryPolicy::default(),
            remember_places: false,
            upload_sessions: Sessions::from_environment(),
            cache_dir: Cache::default_dir().ok(),
            cancel_grace: std::env::var(GRACE_ENV)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map_or(DEFAULT_GRACE, Duration::from_secs),
        }
    }
}

/// One runtime and one registry client for everything a process does.
pub struct Session {
    client: Client,
    cancel: Cancel,
    cache_dir: Option<PathBuf>,
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("runtime_started", &self.runtime.get().is_some()).finish_non_exhaustive()
    }
}

impl Session {
    /// A session with `settings`.
    pub fn new(settings: Settings) -> Session {
        let cancel = Cancel::new(settings.cancel_grace);
        let mut client = Client::new(settings.transport, settings.credentials)
            .with_retry(settings.retry)
            .with_cancel(cancel.clone());
        if let (true, Some(cache)) = (settings.remember_places, &settings.cache_dir) {
            client = client.with_places(crate::places::BlobPlaces::open(cache));
        }
        if let Some(uploads) = settings.upload_sessions {
            uploads.clean();
            client = client.with_upload_sessions(uploads);
        }
        Session { client, cancel, cache_dir: settings.cache_dir, runtime: OnceLock::new() }
    }

    /// The registry client every step of the session shares.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session's cancel switch: [`Cancel::request`] stops it as a signal would;
    /// [`Cancel::on_signals`] makes SIGINT and SIGTERM throw it.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// hoist's cache (layers built, compressed and fetched), opened in the directory the
    /// settings name.
    pub fn cache(&self) -> Result<Cache, Error> {
        match &self.cache_dir {
            Some(dir) => Cache::open(dir),
            // The error that says which variable to set.
            None => Cache::open(Cache::default_dir()?),
        }
    }

    /// Runs `future` (network work) to its end on the session's runtime, started on first use.
    pub fn block_on<T, E: From<Error>>(
        &self,
        future: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        if let Some(runtime) = self.runtime.get() {
            return runtime.block_on(future);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", "the network runtime", e))?;
        self.runtime.get_or_init(|| runtime).block_on(future)
    }
}
