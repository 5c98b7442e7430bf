//! `hoist attach` and `hoist referrers`: OCI 1.1 artifacts that refer to an image.

use std::path::PathBuf;

use clap::Args;
use hoist::buildfile::key_values;
use hoist::digest::{Algorithm, Digest};
use hoist::location::Location;
use hoist::referrers::{artifact_type, Artifact, ArtifactFile, ReferrerOptions};
use hoist::registry::Client;

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
    let client = session.client();
    let attached = session.block_on(async {
        anyhow::Ok(hoist::referrers::attach(client, &location, &artifact, &ReferrerOptions::default()).await?)
    })?;
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

/// The (sha256) digest of the image `location` names: a sha384 or sha512 pin is read (and so
/// checked) for it.
pub async fn subject_digest(client: &Client, location: &Location) -> anyhow::Result<Digest> {
    if let Location::Registry(reference) = location {
        if let Some(digest) = reference.digest.as_ref().filter(|d| d.algorithm() == Algorithm::Sha256) {
            return Ok(digest.clone());
        }
    }
    Ok(hoist::source::open(location, client)?.root().await?.digest)
}

/// Runs `hoist referrers`: one `DIGEST ARTIFACT-TYPE` a line, or `--json`.
pub fn referrers(args: ReferrersArgs) -> anyhow::Result<()> {
    let location: Location = args.subject.parse()?;
    let session = args.registry.reader()?;
    let client = session.client();
    let mut found = session.block_on(async {
        let subject = subject_digest(client, &location).await?;
        anyhow::Ok(hoist::referrers::list(client, &location, &subject).await?.0)
    })?;
    if let Some(wanted) = &args.artifact_type {
        found.retain(|d| artifact_type(d) == Some(wanted.as_str()));
    }
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
