//! Flags shared by every command that talks to a registry, and the client they build.

use std::path::PathBuf;

use clap::Args;
use hoist::credentials::{Credential, CredentialStore};
use hoist::registry::transport::{TransportOptions, DOCKER_DAEMON_JSON};
use hoist::registry::Client;
use hoist::secret::Secret;

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
}

impl RegistryArgs {
    /// The transport options these flags and the environment describe.
    pub fn transport(&self) -> TransportOptions {
        let mut options = TransportOptions {
            ca_certs: self.ca_certs.clone(),
            insecure_registries: self.insecure_registries.clone(),
            mirrors: self.registry_mirrors.clone(),
            ..TransportOptions::default()
        };
        if let Some(dir) = std::env::var_os("HOIST_DOCKER_CERTS_DIR") {
            options.certs_dir = PathBuf::from(dir);
        }
        let daemon_json =
            std::env::var_os("HOIST_DOCKER_DAEMON_JSON").map_or(PathBuf::from(DOCKER_DAEMON_JSON), PathBuf::from);
        options = options.with_environment(&daemon_json);
        options
    }

    /// The credential store these flags and the environment describe.
    pub fn credentials(&self) -> anyhow::Result<CredentialStore> {
        let explicit = match &self.creds {
            Some(creds) => {
                let (username, password) =
                    creds.split_once(':').ok_or_else(|| anyhow::anyhow!("--creds takes USER:PASSWORD"))?;
                Some(Credential::Basic { username: username.to_owned(), password: Secret::new(password) })
            }
            None => None,
        };
        Ok(CredentialStore::from_environment(explicit))
    }

    /// A registry client that retries idempotent requests on transient failures (for the
    /// commands that move content; they take `--retries`).
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.transport(), self.credentials()?))
    }

    /// A client that retries nothing, for commands that only show something (inspect, digest,
    /// tags, catalog): they answer at once, and a rate limit says how long to wait.
    pub fn reader(&self) -> anyhow::Result<Client> {
        Ok(self.client()?.with_retry(hoist::registry::RetryPolicy::none()))
    }
}

/// Runs `future` on a tokio runtime: the only async part of hoist is the registry client.
pub fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(future)
}
