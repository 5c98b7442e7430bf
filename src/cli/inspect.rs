//! `hoist inspect`, `hoist digest`, `hoist tags`, `hoist catalog`: reading images.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use hoist::graph::pick_platform;
use hoist::location::Location;
use hoist::model::{Document, RawManifest};
use hoist::platform::Platform;
use hoist::reference::Reference;
use serde_json::{json, Value};

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

fn parse_json(manifest: &RawManifest) -> anyhow::Result<Value> {
    serde_json::from_slice(&manifest.bytes).with_context(|| format!("manifest {} is not JSON", manifest.digest))
}

fn platform_of(entry: &Value) -> String {
    let p = &entry["platform"];
    let mut text = format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?"));
    if let Some(variant) = p["variant"].as_str() {
        text.push('/');
        text.push_str(variant);
    }
    text
}

/// Runs `hoist inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let location: Location = args.reference.parse()?;
    let session = args.registry.reader()?;
    let client = session.client();
    session.block_on(async {
        let source = hoist::source::open(&location, client)?;
        let mut manifest = source.root().await?;
        if let Some(wanted) = &args.platform {
            let wanted: Platform = wanted.parse()?;
            if !manifest.media_type.is_index() {
                anyhow::bail!("{} is a single image, not an index; drop --platform", args.reference);
            }
            let index = manifest.index(&args.reference)?;
            let entry = pick_platform(&index.manifests, &wanted, &args.reference)?;
            manifest = source.manifest_of(entry).await?;
        }
        if args.raw {
            let mut out = std::io::stdout().lock();
            out.write_all(&manifest.bytes)?;
            out.flush()?;
            return Ok(());
        }
        let document = parse_json(&manifest)?;
        let typed = manifest.parse(&args.reference)?;
        if args.config {
            let Document::Image(image) = &typed else {
                anyhow::bail!("{} is an index; choose an image with --platform os/arch", args.reference);
            };
            let mut out = std::io::stdout().lock();
            out.write_all(&source.blob_bytes(&image.config).await?)?;
            writeln!(out)?;
            return Ok(());
        }
        let mut summary = json!({
            "reference": location.to_string(),
            "mediaType": manifest.media_type.as_str(),
            "digest": manifest.digest.to_string(),
            "size": manifest.bytes.len(),
        });
        if let Document::Image(image) = &typed {
            let config: Value = serde_json::from_slice(&source.blob_bytes(&image.config).await?)?;
            summary["platform"] = platform_of(&json!({ "platform": config })).into();
            summary["config"] = document["config"].clone();
            summary["layers"] = document["layers"].clone();
        } else {
            let entries = document["manifests"].as_array().cloned().unwrap_or_default();
            summary["manifests"] = entries
                .iter()
                .map(|e| json!({ "platform": platform_of(e), "digest": e["digest"], "size": e["size"], "mediaType": e["mediaType"] }))
                .collect();
        }
        // Registries and layouts keep referrers; a registry that cannot say leaves the count out,
        // at once (no retries: the image itself was read already, perhaps from a mirror).
        if matches!(location, Location::Registry(_) | Location::Layout { .. }) {
            match hoist::referrers::list(client, &location, &manifest.digest).await {
                Ok((found, _)) => summary["referrers"] = found.len().into(),
                Err(e) => tracing::info!("referrers of {}: {e}", args.reference),
            }
        }
        if args.json {
            return print_line(&serde_json::to_string_pretty(&summary)?);
        }
        print_line(&human(&summary))
    })
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
    let client = session.client();
    session.block_on(async {
        let digest = match &location {
            Location::Registry(reference) => {
                client.head_manifest(reference).await?.map(|head| head.digest).ok_or_else(|| {
                    hoist::Error::from(hoist::registry::RegistryError::NotFound {
                        registry: reference.registry.clone(),
                        what: format!("manifest {reference}"),
                        message: "HEAD answered 404".into(),
                    })
                })?
            }
            layout => hoist::source::open(layout, client)?.root().await?.digest,
        };
        print_line(&digest.to_string())
    })
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
    let client = session.client();
    session.block_on(async {
        let tags = client.list_tags(&reference.registry, &reference.repository).await?;
        if !tags.is_empty() {
            print_line(&tags.join("\n"))?;
        }
        Ok(())
    })
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
    let client = session.client();
    session.block_on(async {
        let mut repositories = client.catalog(&host).await?;
        repositories.retain(|r| under_prefix(r, &prefix));
        if !repositories.is_empty() {
            print_line(&repositories.join("\n"))?;
        }
        Ok(())
    })
}

/// Whether `repository` is `prefix` or below it, by whole path components (`team` takes
/// `team/app`, not `teamwork/app`).
fn under_prefix(repository: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || repository == prefix
        || repository.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}
