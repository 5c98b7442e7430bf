//! `hoist login` and `hoist logout`.

use std::io::Read;

use clap::Args;
use hoist::credentials::{Credential, CredentialStore};
use hoist::registry::Client;
use hoist::secret::Secret;

use super::registry::{block_on, RegistryArgs};

/// Flags of `hoist login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port] (docker.io for Docker Hub).
    host: String,
    /// User name.
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users in the process list; prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Flags of `hoist logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    host: String,
}

/// `HOST`, `https://HOST/v1/` or a reference's registry → `host[:port]`.
pub fn registry_host(text: &str) -> anyhow::Result<String> {
    let bare = text.trim_start_matches("https://").trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        anyhow::bail!("{text:?} is not a registry host; give HOST[:PORT], e.g. registry.example.com");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    })
}

/// Runs `hoist login`: checks the credentials against the registry, then stores them.
pub fn login(args: LoginArgs) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    let username = args.username.clone().ok_or_else(|| anyhow::anyhow!("give the user name with -u USER"))?;
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => anyhow::bail!("give the password with -p or --password-stdin, not both"),
        (Some(password), false) => password.clone(),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin (or -p)"),
    };
    let password = Secret::new(password);
    let store = CredentialStore::from_environment(None);
    let checking = CredentialStore::from_environment(Some(Credential::Basic {
        username: username.clone(),
        password: password.clone(),
    }));
    block_on(async {
        Client::new(args.registry.transport(), checking).check_login(&host).await?;
        let path = store.store(&host, &username, &password).await?;
        eprintln!("Login to {host} succeeded; credentials stored for {} in {}", username, path.display());
        Ok(())
    })
}

/// Runs `hoist logout`.
pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    let store = CredentialStore::from_environment(None);
    block_on(async {
        if store.erase(&host).await? {
            eprintln!("Removed the credentials for {host}");
        } else {
            eprintln!("No credentials were stored for {host}");
        }
        Ok(())
    })
}
