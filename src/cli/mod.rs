//! Command-line arguments and the commands behind them.

mod build;
mod copy;
mod index;
mod inspect;
mod login;
mod push;
mod referrers;
mod registry;

use std::io::Write;

use clap::{Parser, Subcommand};

/// Build and publish reproducible multi-platform OCI images.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about)]
pub struct Cli {
    /// More detail on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build per-platform images from directories into an OCI layout.
    #[command(args_override_self = true)]
    Build(Box<build::BuildArgs>),
    /// Push an image or index from an OCI layout to a registry: blobs, manifests, then tags.
    #[command(args_override_self = true)]
    Push(Box<push::PushArgs>),
    /// Create, amend or trim a multi-platform index directly in the registry.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Docker-compatible local manifest lists: create, annotate, inspect, push, rm.
    #[command(subcommand)]
    Manifest(index::ManifestCommand),
    /// Copy an image or index to another repository or registry (promote staging → prod).
    #[command(args_override_self = true)]
    Copy(Box<copy::CopyArgs>),
    /// Attach an artifact (SBOM, signature, report) to an image as an OCI 1.1 referrer.
    Attach(Box<referrers::AttachArgs>),
    /// List the artifacts that refer to an image, one `DIGEST TYPE` a line.
    Referrers(Box<referrers::ReferrersArgs>),
    /// Show an image or index: media type, digest, platforms, config and layers.
    Inspect(Box<inspect::InspectArgs>),
    /// Print the digest of an image or index.
    Digest(inspect::DigestArgs),
    /// List a repository's tags, one a line.
    Tags(inspect::TagsArgs),
    /// List a registry's repositories, one a line.
    Catalog(inspect::CatalogArgs),
    /// Check credentials against a registry and store them as docker does.
    Login(login::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(login::LogoutArgs),
    /// Parse an image reference and print its parts as JSON.
    Ref {
        /// The reference, e.g. `ubuntu`, `ghcr.io/org/app:v1`, `localhost:5000/app@sha256:…`.
        reference: String,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(*args, cli.quiet),
        Command::Inspect(args) => inspect::run(*args),
        Command::Attach(args) => referrers::attach(*args),
        Command::Referrers(args) => referrers::referrers(*args),
        Command::Copy(args) => copy::run(*args, cli.quiet),
        Command::Index(command) => index::run(command),
        Command::Manifest(command) => index::manifest(command, cli.verbose > 0),
        Command::Push(args) => push::run(*args, cli.quiet),
        Command::Digest(args) => inspect::digest(args),
        Command::Tags(args) => inspect::tags(args),
        Command::Catalog(args) => inspect::catalog(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Ref { reference } => {
            let parsed = hoist::Reference::parse(&reference)?;
            let mut json = serde_json::to_value(&parsed)?;
            json["normalized"] = parsed.to_string().into();
            print_line(&serde_json::to_string_pretty(&json)?)
        }
    }
}

/// Prints one line on stdout.
fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}
