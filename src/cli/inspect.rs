//! `hoist inspect`, `hoist digest`, `hoist tags`, `hoist catalog`: reading images.

use std::io::Write;

use clap::Args;
use hoist::location::Location;
use hoist::ops::inspect::{Inspect, InspectReport, Show};
use hoist::reference::Reference;
use serde_json::Value;

use super::print_line;
use super::registry::RegistryArgs;

/// Flags of `hoist inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image: a registry reference or oci:DIR[:TAG].
    reference: String,
    /// Print the manifest's exact bytes.
    #[arg(long, conflicts_with_all = ["config", "json"])]
    raw: bool,
    /// Print the image config (pick a platform of an index with --platform).
    #[arg(long, conflicts_with = "json")]
    config: bool,
    /// From an index, inspect the image for os/arch[/variant].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let show = match (args.raw, args.config) {
        (true, _) => Show::Raw,
        (false, true) => Show::Config,
        (false, false) => Show::Summary,
    };
    let request = Inspect {
        location: args.reference.parse()?,
        platform: args.platform.as_deref().map(str::parse).transpose()?,
        name: args.reference,
        show,
    };
    let session = args.registry.reader()?;
    let mut out = std::io::stdout().lock();
    match hoist::ops::inspect(&session, &request)? {
        InspectReport::Raw(bytes) => {
            out.write_all(&bytes)?;
            out.flush()?;
            Ok(())
        }
        InspectReport::Config(bytes) => {
            out.write_all(&bytes)?;
            writeln!(out)?;
            Ok(())
        }
        InspectReport::Summary(summary) if args.json => print_line(&serde_json::to_string_pretty(&summary)?),
        InspectReport::Summary(summary) => print_line(&human(&serde_json::to_value(&summary)?)),
    }
}

fn human(summary: &Value) -> String {
    let mut text = format!(
        "Reference:  {}\nMedia type: {}\nDigest:     {}\nSize:       {}",
        summary["reference"].as_str().unwrap_or_default(),
        summary["mediaType"].as_str().unwrap_or_default(),
        summary["digest"].as_str().unwrap_or_default(),
        summary["size"]
    );
    if let Some(entries) = summary["manifests"].as_array() {
        text.push_str("\nPlatforms:");
        for e in entries {
            text.push_str(&format!(
                "\n  {:<16} {}  {} bytes",
                e["platform"].as_str().unwrap_or_default(),
                e["digest"].as_str().unwrap_or_default(),
                e["size"]
            ));
        }
    } else {
        text.push_str(&format!(
            "\nPlatform:   {}\nConfig:     {}\nLayers:",
            summary["platform"].as_str().unwrap_or_default(),
            summary["config"]["digest"].as_str().unwrap_or_default()
        ));
        for layer in summary["layers"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n  {}  {} bytes  {}",
                layer["digest"].as_str().unwrap_or_default(),
                layer["size"],
                layer["mediaType"].as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(count) = summary["referrers"].as_u64() {
        text.push_str(&format!("\nReferrers:  {count}"));
    }
    text
}

/// Flags of `hoist digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Image: a registry reference or oci:DIR[:TAG].
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist digest`: the digest of what the reference names (a HEAD for registries).
pub fn digest(args: DigestArgs) -> anyhow::Result<()> {
    let location: Location = args.reference.parse()?;
    let session = args.registry.reader()?;
    print_line(&hoist::ops::digest(&session, &location)?.to_string())
}

/// Flags of `hoist tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Repository, e.g. registry.example.com/team/app.
    repository: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist tags`: one tag a line.
pub fn tags(args: TagsArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.repository)?;
    let session = args.registry.reader()?;
    let tags = hoist::ops::tags(&session, &reference.registry, &reference.repository)?;
    if !tags.is_empty() {
        print_line(&tags.join("\n"))?;
    }
    Ok(())
}

/// Flags of `hoist catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Registry host[:port], optionally with a path prefix: only the repositories under it.
    #[arg(value_name = "REGISTRY[/PREFIX]")]
    host: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist catalog`: one repository a line.
pub fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let host = super::login::registry_host(&args.host)?;
    let bare = args.host.trim_start_matches("https://").trim_start_matches("http://");
    let prefix = bare.split_once('/').map(|(_, p)| p.trim_matches('/').to_owned()).unwrap_or_default();
    let session = args.registry.reader()?;
    let repositories = hoist::ops::catalog(&session, &host, &prefix)?;
    if !repositories.is_empty() {
        print_line(&repositories.join("\n"))?;
    }
    Ok(())
}
