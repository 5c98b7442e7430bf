//! Command-line arguments and the commands behind them.

mod build;

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
    /// Parse an image reference and print its parts as JSON.
    Ref {
        /// The reference, e.g. `ubuntu`, `ghcr.io/org/app:v1`, `localhost:5000/app@sha256:…`.
        reference: String,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(*args),
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
