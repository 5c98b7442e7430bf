//! `hoist attach` and `hoist referrers`: OCI 1.1 artifacts that refer to an image.

use std::path::PathBuf;

use clap::Args;
use hoist::buildfile::key_values;
use hoist::location::Location;
use hoist::referrers::{artifact_type, Artifact, ArtifactFile, ReferrerOptions};

use super::print_line;
use super::registry::RegistryArgs;

/// Flags of `hoist attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The image to attach to: a registry reference or oci:DIR[:TAG].
    subject: String,
    /// The artifact's type, a media type such as application/spdx+json.
    #[arg(long, value_name = "TYPE")]
    artifact_type: String,
    /// The files, each a layer of the artifact.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Media type of the files.
    #[arg(long, default_value = "application/octet-stream", value_name = "TYPE")]
    file_type: String,
    /// Annotation KEY=VALUE on the artifact's manifest; repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Print a JSON summary instead of the digest.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist attach`: prints the artifact's digest.
pub fn attach(args: AttachArgs) -> anyhow::Result<()> {
    let location: Location = args.subject.parse()?;
    let artifact = Artifact {
        artifact_type: args.artifact_type.clone(),
        files: args
            .files
            .iter()
            .map(|path| ArtifactFile { path: path.clone(), media_type: args.file_type.clone() })
            .collect(),
        annotations: key_values("annotation", &args.annotations)?,
    };
    let session = args.registry.session(hoist::registry::RetryPolicy::default(), false)?;
    let attached = hoist::ops::attach(&session, &location, &artifact, &ReferrerOptions::default())?;
    if let Some(tag) = &attached.fallback_tag {
        tracing::info!("the registry has no referrers API: listed under the tag {tag}");
    }
    match args.json {
        true => print_line(&serde_json::to_string_pretty(&attached)?),
        false => print_line(&attached.digest.to_string()),
    }
}

/// Flags of `hoist referrers`.
#[derive(Debug, Args)]
pub struct ReferrersArgs {
    /// The image: a registry reference or oci:DIR[:TAG].
    subject: String,
    /// Only artifacts of this type.
    #[arg(long, value_name = "TYPE")]
    artifact_type: Option<String>,
    /// Print the referrers' descriptors as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist referrers`: one `DIGEST ARTIFACT-TYPE` a line, or `--json`.
pub fn referrers(args: ReferrersArgs) -> anyhow::Result<()> {
    let location: Location = args.subject.parse()?;
    let session = args.registry.reader()?;
    let found = hoist::ops::referrers(&session, &location, args.artifact_type.as_deref())?;
    if args.json {
        return print_line(&serde_json::to_string_pretty(&found)?);
    }
    let lines: Vec<String> =
        found.iter().map(|d| format!("{} {}", d.digest, artifact_type(d).unwrap_or("-"))).collect();
    if !lines.is_empty() {
        print_line(&lines.join("\n"))?;
    }
    Ok(())
}
