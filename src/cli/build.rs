//! `hoist build`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hoist::buildfile::{current_dir, key_values, BuildSpec};
use hoist::cache::Cache;
use hoist::location::Location;
use hoist::ops::Build;
use hoist::platform::Platform;
use hoist::session::Session;

use hoist::reference::Reference;

use super::print_line;
use super::progress::BuildProgress;
use super::push::{print_report, published, PushFlags};
use super::registry::RegistryArgs;

/// Flags of `hoist build`; each overrides the same setting in the build file.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build file (TOML) with the same settings as the flags; flags win.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Target platform os/arch[/variant]; repeat for each.
    #[arg(long = "platform", value_name = "PLATFORM")]
    platforms: Vec<String>,
    /// A layer: SRC[:DEST]; SRC may use {os} {arch} {variant} {platform}. Repeat, bottom first.
    #[arg(long = "layer", value_name = "SRC[:DEST]")]
    layers: Vec<String>,
    /// Leave out paths matching this .dockerignore-style pattern; repeatable.
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Where to write: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]
    /// (one platform).
    #[arg(short, long, value_name = "LOCATION")]
    output: Option<String>,
    /// Entrypoint: one argument per flag, or a JSON array.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Default arguments: one per flag, or a JSON array.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Environment variable KEY=VALUE; repeatable.
    #[arg(short, long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory (absolute).
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: UID[:GID] or a name.
    #[arg(short, long)]
    user: Option<String>,
    /// Exposed port PORT[/tcp|udp|sctp]; repeatable.
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<String>,
    /// Volume mount point; repeatable.
    #[arg(long = "volume", value_name = "DIR")]
    volumes: Vec<String>,
    /// Image label KEY=VALUE; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Annotation KEY=VALUE on each manifest and the index; repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Signal that stops the container, e.g. SIGTERM.
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Layer compression: gzip, zstd or none.
    #[arg(long, value_name = "ALGORITHM")]
    compression: Option<String>,
    /// Compression level (gzip 0-9, default 6; zstd 0-19, default 3).
    #[arg(long, value_name = "N")]
    compression_level: Option<u32>,
    /// Modification time of every entry, seconds since the epoch (default $SOURCE_DATE_EPOCH, else 0).
    #[arg(long, value_name = "SECONDS")]
    mtime: Option<u64>,
    /// Keep the files' own modification times (not reproducible).
    #[arg(long)]
    preserve_mtime: bool,
    /// Owner of every entry, numeric UID:GID (default 0:0).
    #[arg(long, value_name = "UID:GID")]
    owner: Option<String>,
    /// Skip sockets, fifos and devices with a warning instead of failing.
    #[arg(long)]
    skip_special: bool,
    /// Record modes as git does: files 0644 or 0755 by their owner-execute bit, directories
    /// 0755 (for checkouts made under different umasks).
    #[arg(long)]
    normalize_modes: bool,
    /// Compress every layer; neither read nor fill the layer cache ($XDG_CACHE_HOME/hoist).
    #[arg(long)]
    no_cache: bool,
    /// Bound on the layer cache's size; least recently used blobs go first (e.g. 500M, 10G).
    #[arg(long, value_name = "SIZE", default_value = "10G")]
    cache_size: String,
    /// Write an SPDX 2.3 SBOM of each platform image (every file of every layer with its
    /// SHA-256, the base image as a package) and attach it as a referrer: kept in the layout,
    /// attached in the registry on --push.
    #[arg(long)]
    sbom: bool,
    /// Write a plain image manifest instead of an index (one platform only).
    #[arg(long)]
    no_index: bool,
    /// Print a JSON summary instead of the digest.
    #[arg(long)]
    json: bool,
    /// Build on this image (registry reference or oci:DIR[:TAG]) instead of scratch.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// After building, push to this registry reference (without --output, the layout is
    /// temporary).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    #[command(flatten)]
    push_flags: PushFlags,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl BuildArgs {
    /// The flags as a build spec, for merging with a build file.
    fn spec(&self) -> anyhow::Result<BuildSpec> {
        Ok(BuildSpec {
            platforms: self.platforms.clone(),
            layers: self.layers.clone(),
            exclude: self.exclude.clone(),
            output: self.output.clone(),
            entrypoint: argv("--entrypoint", &self.entrypoint)?,
            cmd: argv("--cmd", &self.cmd)?,
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            ports: self.ports.clone(),
            volumes: self.volumes.clone(),
            labels: key_values("label", &self.labels)?,
            annotations: key_values("annotation", &self.annotations)?,
            stop_signal: self.stop_signal.clone(),
            compression: self.compression.clone(),
            compression_level: self.compression_level,
            mtime: self.mtime,
            preserve_mtime: self.preserve_mtime.then_some(true),
            owner: self.owner.clone(),
            skip_special: self.skip_special.then_some(true),
            normalize_modes: self.normalize_modes.then_some(true),
            no_index: self.no_index.then_some(true),
            base: self.base.clone(),
            context: None,
        })
    }
}

/// An argv from repeated flags, or from a single JSON array.
fn argv(flag: &str, values: &[String]) -> anyhow::Result<Option<Vec<String>>> {
    match values {
        [] => Ok(None),
        [single] if single.trim_start().starts_with('[') => serde_json::from_str(single)
            .map(Some)
            .with_context(|| format!("{flag} {single:?} is not a JSON array of strings")),
        many => Ok(Some(many.to_vec())),
    }
}

/// Refuses a layer whose destination is relative (`dist/:app`): it would otherwise be read as
/// part of the source path and reported as a missing directory.
fn check_layers(layers: &[String]) -> anyhow::Result<()> {
    for layer in layers {
        if layer.contains(":/") {
            continue;
        }
        if let Some((source, dest)) = layer.rsplit_once(':') {
            if !source.is_empty() && !dest.is_empty() && !std::path::Path::new(layer).exists() {
                return Err(hoist::Error::invalid(
                    "layer",
                    layer.as_str(),
                    format!(
                        "the destination {dest:?} is relative; give an absolute path in the image: {source}:/{dest}"
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Runs `hoist build`: the flags and build file into the library's build verb, then its
/// report printed.
pub fn run(args: BuildArgs, quiet: bool) -> anyhow::Result<()> {
    let mut spec = args.spec()?;
    if let Some(file) = &args.file {
        spec = spec.or(BuildSpec::load(file)?);
    }
    check_layers(&spec.layers)?;
    check_output(spec.output.as_deref())?;
    let base = spec.base.as_deref().map(str::parse::<Location>).transpose()?;
    let (mut options, output) = spec.into_options(&current_dir()?)?;
    if options.platforms.is_empty() {
        // No platform anywhere: the host's, as docker build does.
        options.platforms.push(Platform::host());
    }
    let push = args.push.as_deref().map(Reference::parse).transpose()?.map(Location::Registry);
    let session = args.registry.session(args.push_flags.retry(), args.push_flags.dry_run)?;
    let publish = args.push_flags.publish_options(&session)?;
    let mut request = Build { options, output, base, push, publish, sbom: args.sbom };
    request.check()?;
    request.options.cache = cache(&args, &session)?;
    let observer = BuildProgress::new(quiet, args.push_flags.dry_run);
    let report = hoist::ops::build(&session, request, &observer);
    observer.finish();
    let report = report?;
    if let (Some(pushed), Some(push)) = (&report.pushed, &args.push) {
        published(pushed, &args.push_flags, &push.parse()?, quiet)?;
        return print_report(pushed, args.json);
    }
    if args.json {
        let mut summary = serde_json::to_value(&report.built)?;
        summary["output"] = report.output.map(|o| o.to_string()).unwrap_or_default().into();
        print_line(&serde_json::to_string_pretty(&summary)?)
    } else {
        print_line(&report.built.digest.to_string())
    }
}

/// Refuses an output that names neither a layout nor an archive (a plain path, say).
fn check_output(output: Option<&str>) -> anyhow::Result<()> {
    let known = ["oci:", "oci-archive:", "docker-archive:"];
    match output.filter(|o| !known.iter().any(|k| o.starts_with(k))) {
        Some(output) => Err(hoist::Error::invalid(
            "--output",
            output,
            format!(
                "build writes an OCI layout, named oci:DIR[:TAG] (here: --output oci:{output}); to publish to a registry use --push REF"
            ),
        )
        .into()),
        None => Ok(()),
    }
}

/// The layer cache, bounded by `--cache-size`; none with `--no-cache`, or when it cannot be
/// opened (a read-only home, say: that costs speed, not the build).
fn cache(args: &BuildArgs, session: &Session) -> anyhow::Result<Option<Cache>> {
    let size = hoist::size::parse(&args.cache_size)?;
    if args.no_cache {
        return Ok(None);
    }
    match session.cache() {
        Ok(cache) => Ok(Some(cache.with_max_size(size))),
        Err(e) => {
            tracing::warn!("building without the layer cache: {e}");
            Ok(None)
        }
    }
}
