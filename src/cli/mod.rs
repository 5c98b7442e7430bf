//! Command-line arguments and the commands behind them.

mod build;
mod copy;
mod index;
mod inspect;
mod login;
mod manifest;
pub mod progress;
mod push;
mod referrers;
mod registry;
mod tag;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

/// Build and publish reproducible multi-platform OCI images.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about)]
pub struct Cli {
    /// More detail on stderr (-v info, -vv debug); with `manifest inspect`, docker's verbose form.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// Only errors on stderr (no progress).
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build per-platform images from directories into an OCI layout.
    #[command(
        after_long_help = "Examples:\n  hoist build --platform linux/amd64 --platform linux/arm64 --layer 'dist/{os}_{arch}/:/app/' \\\n    --entrypoint /app/server --output oci:out/layout:v1.2.3\n  hoist build -f hoist.toml --push registry.example.com/team/app:v1.2.3\n  hoist build --layer dist/:/app/ --no-index --push registry.example.com/team/app --push-by-digest"
    )]
    #[command(args_override_self = true)]
    Build(Box<build::BuildArgs>),
    /// Push an image or index from an OCI layout to a registry: blobs, manifests, then tags.
    #[command(
        after_long_help = "Examples:\n  hoist push oci:out/layout:v1.2.3 registry.example.com/team/app:v1.2.3 --tag latest\n  hoist push --dry-run oci:out/layout:v1.2.3 registry.example.com/team/app:v1.2.3\n  hoist push -q --digest-file digest.txt oci:out/layout registry.example.com/team/app"
    )]
    #[command(args_override_self = true)]
    Push(Box<push::PushArgs>),
    /// Create, amend or trim a multi-platform index directly in the registry.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Docker-compatible local manifest lists: create, annotate, inspect, push, rm.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Copy an image or index to another repository or registry (promote staging to prod).
    #[command(
        after_long_help = "Examples:\n  hoist copy registry.example.com/staging/app:v1 registry.example.com/prod/app:v1\n  hoist copy --platform linux/arm64 registry.example.com/team/app:v1 oci:pulled:v1\n  hoist copy oci:out/layout:v1 oci:other:v1"
    )]
    #[command(args_override_self = true)]
    Copy(Box<copy::CopyArgs>),
    /// Attach an artifact (SBOM, signature, report) to an image as an OCI 1.1 referrer.
    Attach(Box<referrers::AttachArgs>),
    /// List the artifacts that refer to an image, one `DIGEST TYPE` a line.
    Referrers(Box<referrers::ReferrersArgs>),
    /// Show an image or index: media type, digest, platforms, config and layers.
    #[command(
        after_long_help = "Examples:\n  hoist inspect registry.example.com/team/app:v1.2.3\n  hoist inspect --platform linux/arm64 --config registry.example.com/team/app:v1.2.3\n  hoist inspect --json oci:out/layout:v1.2.3"
    )]
    Inspect(Box<inspect::InspectArgs>),
    /// Print the digest of an image or index.
    #[command(
        after_long_help = "Examples:\n  hoist digest registry.example.com/team/app:v1.2.3\n  hoist digest oci:out/layout:v1.2.3"
    )]
    Digest(inspect::DigestArgs),
    /// List a repository's tags, one a line.
    #[command(
        after_long_help = "Examples:\n  hoist tags registry.example.com/team/app\n  hoist tags localhost:5000/app | tail -n 1"
    )]
    Tags(inspect::TagsArgs),
    /// List a registry's repositories, one a line.
    #[command(
        after_long_help = "Examples:\n  hoist catalog registry.example.com\n  hoist catalog registry.example.com/team        # only repositories under team/"
    )]
    Catalog(inspect::CatalogArgs),
    /// Check credentials against a registry and store them as docker does.
    #[command(
        after_long_help = "Examples:\n  hoist login registry.example.com                  # prompts for user and password\n  echo \"$TOKEN\" | hoist login -u ci --password-stdin ghcr.io"
    )]
    Login(login::LoginArgs),
    /// Remove stored credentials for a registry.
    #[command(after_long_help = "Examples:\n  hoist logout registry.example.com")]
    Logout(login::LogoutArgs),
    /// Point more tags at an image or index already in the registry (nothing is re-pushed).
    #[command(
        after_long_help = "Examples:\n  hoist tag registry.example.com/team/app:v1.2.3 v1.2 v1 latest\n  hoist tag registry.example.com/team/app@sha256:… stable"
    )]
    Tag(tag::TagArgs),
    /// Delete a manifest (named by tag or digest) and every tag that names it; needs --yes.
    #[command(
        after_long_help = "Examples:\n  hoist delete --yes registry.example.com/team/app:pr-1234\n  hoist delete --yes registry.example.com/team/app@sha256:…"
    )]
    Delete(tag::DeleteArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    #[command(
        after_long_help = "Examples:\n  hoist completions bash > /etc/bash_completion.d/hoist\n  hoist completions zsh > \"${fpath[1]}/_hoist\"\n  hoist completions fish > ~/.config/fish/completions/hoist.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), made from the same definitions as --help.
    #[command(after_long_help = "Examples:\n  hoist man | man -l -\n  hoist man > /usr/local/share/man/man1/hoist.1")]
    Man,
    /// Parse an image reference and print its parts as JSON.
    #[command(after_long_help = "Examples:\n  hoist ref ubuntu\n  hoist ref ghcr.io/org/app:v1")]
    Ref {
        /// The reference, e.g. `ubuntu`, `ghcr.io/org/app:v1`, `localhost:5000/app@sha256:…`.
        reference: String,
    },
}

impl Cli {
    /// The subcommand's name as typed after `hoist` (`tags`, `login`, `index add`).
    pub fn command_name(&self) -> String {
        let name = match &self.command {
            Command::Build(_) => "build",
            Command::Push(_) => "push",
            Command::Index(index::IndexCommand::Create { .. }) => "index create",
            Command::Index(index::IndexCommand::Add { .. }) => "index add",
            Command::Index(index::IndexCommand::Rm { .. }) => "index rm",
            Command::Manifest(manifest::ManifestCommand::Create { .. }) => "manifest create",
            Command::Manifest(manifest::ManifestCommand::Annotate { .. }) => "manifest annotate",
            Command::Manifest(manifest::ManifestCommand::Inspect { .. }) => "manifest inspect",
            Command::Manifest(manifest::ManifestCommand::Push { .. }) => "manifest push",
            Command::Manifest(manifest::ManifestCommand::Rm { .. }) => "manifest rm",
            Command::Copy(_) => "copy",
            Command::Inspect(_) => "inspect",
            Command::Digest(_) => "digest",
            Command::Tags(_) => "tags",
            Command::Catalog(_) => "catalog",
            Command::Login(_) => "login",
            Command::Logout(_) => "logout",
            Command::Tag(_) => "tag",
            Command::Delete(_) => "delete",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
            Command::Ref { .. } => "ref",
            Command::Attach(_) => "attach",
            Command::Referrers(_) => "referrers",
        };
        name.to_owned()
    }
}

/// `message` without a hint that suggests the very command that failed (after `hoist tags`,
/// "(`hoist tags REPOSITORY` lists the tags)" helps nobody): the clause naming it goes, from
/// the `; ` or ` (` that opens it.
pub fn without_own_hint(message: &str, command: &str) -> String {
    let mut text = message.to_owned();
    for form in [format!("`hoist {command} "), format!("`hoist {command}`")] {
        while let Some(at) = text.find(&form) {
            let before = &text[..at];
            let (start, paren) = match (before.rfind("; "), before.rfind(" (")) {
                (Some(semi), Some(open)) if open > semi => (open, true),
                (Some(semi), _) => (semi, false),
                (None, Some(open)) => (open, true),
                (None, None) => break,
            };
            let end = match paren {
                true => text[at..].find(')').map(|i| at + i + 1).unwrap_or(text.len()),
                false => text[at..].find("; ").map(|i| at + i).unwrap_or(text.len()),
            };
            text.replace_range(start..end, "");
        }
    }
    text
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
        Command::Manifest(command) => manifest::manifest(command, cli.verbose > 0),
        Command::Push(args) => push::run(*args, cli.quiet),
        Command::Digest(args) => inspect::digest(args),
        Command::Tags(args) => inspect::tags(args),
        Command::Catalog(args) => inspect::catalog(args),
        Command::Login(args) => login::login(args),
        Command::Tag(args) => tag::tag(args),
        Command::Delete(args) => tag::delete(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hoist", &mut std::io::stdout().lock());
            Ok(())
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            Ok(out.flush()?)
        }
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
