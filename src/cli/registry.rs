//! Flags shared by every command that talks to a registry, and the session they make.

use std::path::PathBuf;

use std::time::Duration;

use clap::Args;
use hoist::credentials::Credential;
use hoist::registry::transport::TransportOptions;
use hoist::registry::RetryPolicy;
use hoist::secret::Secret;
use hoist::session::{Session, Settings};

/// Registry connection flags.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Trust this CA certificate (PEM) for registries, besides the system's; repeatable.
    #[arg(long = "ca-cert", value_name = "FILE", global = true)]
    ca_certs: Vec<PathBuf>,
    /// Allow this registry (HOST[:PORT] or a CIDR range) without TLS verification, or over
    /// plain HTTP; repeatable. Also read from $HOIST_INSECURE_REGISTRIES and
    /// insecure-registries in /etc/docker/daemon.json.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", global = true)]
    insecure_registries: Vec<String>,
    /// Docker Hub mirror URL, tried before docker.io for pulls (never for pushes); repeatable.
    /// Also read from $HOIST_REGISTRY_MIRRORS and registry-mirrors in /etc/docker/daemon.json.
    #[arg(long = "registry-mirror", value_name = "URL", global = true)]
    registry_mirrors: Vec<String>,
    /// Credentials USER:PASSWORD (else $HOIST_USERNAME/$HOIST_PASSWORD, else docker's config).
    #[arg(long, value_name = "USER:PASSWORD", global = true)]
    creds: Option<String>,
    /// On SIGINT/SIGTERM, how long requests in flight may finish before hoist stops (a second
    /// signal stops it at once). Also $HOIST_CANCEL_GRACE; default 5.
    #[arg(long, value_name = "SECONDS", global = true)]
    cancel_grace: Option<u64>,
}

impl RegistryArgs {
    /// The settings these flags and the environment describe, with default retries.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let transport = TransportOptions {
            ca_certs: self.ca_certs.clone(),
            insecure_registries: self.insecure_registries.clone(),
            mirrors: self.registry_mirrors.clone(),
            ..TransportOptions::default()
        };
        let explicit = match &self.creds {
            Some(creds) => {
                let (username, password) =
                    creds.split_once(':').ok_or_else(|| anyhow::anyhow!("--creds takes USER:PASSWORD"))?;
                Some(Credential::Basic { username: username.to_owned(), password: Secret::new(password) })
            }
            None => None,
        };
        let settings = Settings::with_transport(transport, explicit);
        let cancel_grace = self.cancel_grace.map_or(settings.cancel_grace, Duration::from_secs);
        Ok(Settings { cancel_grace, ..settings })
    }

    /// The session of a command that moves content: it retries idempotent requests as
    /// `retry` says and, unless it only looks (a dry run, which mounts nothing), remembers
    /// where blobs were seen, for mounts.
    pub fn session(&self, retry: RetryPolicy, dry_run: bool) -> anyhow::Result<Session> {
        stopping_on_signals(Session::new(Settings { retry, remember_places: !dry_run, ..self.settings()? }))
    }

    /// The session of a command that only shows something (inspect, digest, tags, catalog):
    /// it retries nothing, so it answers at once, and a rate limit says how long to wait.
    pub fn reader(&self) -> anyhow::Result<Session> {
        stopping_on_signals(Session::new(Settings { retry: RetryPolicy::none(), ..self.settings()? }))
    }
}

/// `session`, stopped by SIGINT and SIGTERM as the command line wants: in-flight requests get
/// the grace, then the command reports what it left and exits 130 or 143.
fn stopping_on_signals(session: Session) -> anyhow::Result<Session> {
    session.cancel().on_signals()?;
    Ok(session)
}
