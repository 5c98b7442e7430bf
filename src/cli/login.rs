//! `hoist login` and `hoist logout`.

use std::io::{IsTerminal, Read};

use clap::Args;
use hoist::credentials::Credential;
use hoist::ops::login::Login;
use hoist::secret::Secret;
use hoist::session::{Session, Settings};

use super::registry::RegistryArgs;

/// The most of a password read from standard input.
const PASSWORD_LIMIT: u64 = 1 << 20;

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
    // On a terminal, ask for what is missing, as docker does; elsewhere say which flag is.
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let term = console::Term::stderr();
    let username = match (&args.username, terminal && !args.password_stdin) {
        (Some(username), _) => username.clone(),
        (None, true) => {
            term.write_str("Username: ")?;
            term.read_line()?.trim().to_owned()
        }
        (None, false) => return Err(missing("-u USER", "the user name")),
    };
    if username.is_empty() {
        return Err(missing("-u USER", "the user name"));
    }
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => anyhow::bail!("give the password with -p or --password-stdin, not both"),
        (Some(password), false) => password.clone(),
        (None, true) => {
            // A password or token is short: read at most 1 MiB of it, never a stream without end;
            // its length is checked before its text (the cut may fall inside a character).
            let mut bytes = Vec::new();
            std::io::stdin().take(PASSWORD_LIMIT + 1).read_to_end(&mut bytes)?;
            let refused = |reason: &str| hoist::Error::invalid("password", "(standard input)", reason);
            if bytes.len() as u64 > PASSWORD_LIMIT {
                return Err(refused("it is longer than 1 MiB; pipe the password or token alone").into());
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| refused("it is not UTF-8 text; pipe the password or token alone"))?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) if terminal => {
            term.write_str("Password: ")?;
            term.read_secure_line()?
        }
        (None, false) => return Err(missing("--password-stdin", "the password")),
    };
    let password = Secret::new(password);
    let settings = args.registry.settings()?;
    let checking = settings
        .credentials
        .clone()
        .with_explicit(Credential::Basic { username: username.clone(), password: password.clone() });
    let session = Session::new(Settings { credentials: checking, ..settings });
    let path = hoist::ops::login(&session, &Login { host: host.clone(), username: username.clone(), password })?;
    eprintln!("Login to {host} succeeded; credentials stored for {} in {}", username, path.display());
    Ok(())
}

/// A flag that is needed because hoist cannot ask (stdin or stderr is not a terminal).
fn missing(flag: &str, what: &str) -> anyhow::Error {
    hoist::Error::invalid(
        "login",
        flag,
        format!("{what} is missing and stdin is not a terminal, so hoist cannot ask for it; give it with {flag}"),
    )
    .into()
}

/// Runs `hoist logout`.
pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    match hoist::ops::logout(&Session::new(Settings::from_environment()), &host)? {
        true => eprintln!("Removed the credentials for {host}"),
        false => eprintln!("No credentials were stored for {host}"),
    }
    Ok(())
}
