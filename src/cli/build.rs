//! `hoist build`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hoist::build::build;
use hoist::buildfile::{current_dir, key_values, BuildSpec};
use hoist::cache::Cache;
use hoist::layout::LayoutWriter;
use hoist::location::Location;
use hoist::platform::Platform;

use hoist::reference::Reference;

use super::print_line;
use super::push::{print_report, send, Elsewhere, PushFlags};
use super::registry::{block_on, RegistryArgs};

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

/// The archive `output` names, if it names one: checked at once, before any layer is built,
/// for a path an archive may be written to.
fn archive_output(output: Option<&str>) -> anyhow::Result<Option<Location>> {
    let Some(location) = output.map(str::parse::<Location>).transpose()? else {
        return Ok(None);
    };
    location.check_output()?;
    match &location {
        Location::OciArchive { file, .. } | Location::DockerArchive { file, .. } => {
            hoist::archive::check_target(file)?;
            Ok(Some(location))
        }
        _ => Ok(None),
    }
}

/// Runs `hoist build`.
pub fn run(args: BuildArgs, quiet: bool) -> anyhow::Result<()> {
    let mut spec = args.spec()?;
    if let Some(file) = &args.file {
        spec = spec.or(BuildSpec::load(file)?);
    }
    let destination = args.push.as_deref().map(Reference::parse).transpose()?;
    // Pushing without --output: build into a temporary layout. Into an archive: build into a
    // temporary layout, then write the archive from it.
    let archive = archive_output(spec.output.as_deref())?;
    let scratch = match (&spec.output, &destination, &archive) {
        (None, Some(_), _) | (_, _, Some(_)) => Some(tempfile::tempdir()?),
        _ => None,
    };
    if let Some(scratch) = &scratch {
        spec.output = Some(format!("oci:{}", scratch.path().join("layout").display()));
    }
    check_layers(&spec.layers)?;
    if let Some(output) = spec.output.as_deref().filter(|o| !o.starts_with("oci:")) {
        return Err(hoist::Error::invalid(
            "--output",
            output,
            format!(
                "build writes an OCI layout, named oci:DIR[:TAG] (here: --output oci:{output}); to publish to a registry use --push REF"
            ),
        )
        .into());
    }
    let base = spec.base.clone();
    let (mut options, output) = spec.into_options(&current_dir()?)?;
    if options.platforms.is_empty() {
        // No platform anywhere: the host's, as docker build does.
        options.platforms.push(Platform::host());
    }
    let cache_size = hoist::size::parse(&args.cache_size)?;
    if !args.no_cache {
        // A cache that cannot be opened (read-only home, say) costs speed, not the build.
        match Cache::default_dir().and_then(Cache::open) {
            Ok(cache) => options.cache = Some(cache.with_max_size(cache_size)),
            Err(e) => tracing::warn!("building without the layer cache: {e}"),
        }
    }
    let mut elsewhere: Option<Elsewhere> = None;
    if let Some(base) = &base {
        let location: Location = base.parse()?;
        let client = args.registry.client()?;
        // The SBOM reads every layer, the base's too: they must be in the layout.
        let writes_layout = scratch.is_none() || archive.is_some() || args.sbom;
        let (bases, files) = block_on(async {
            let bases = hoist::base::resolve(&client, &location, &options.platforms).await?;
            // Into a layout the base's layers must be there: fetched once into hoist's cache.
            // Straight to a registry they are mounted or streamed by the push instead.
            let files = match writes_layout {
                true => hoist::base::fetch_into_cache(&client, &bases, &Cache::open(Cache::default_dir()?)?).await?,
                false => Default::default(),
            };
            Ok((bases, files))
        })?;
        if let Location::Registry(_) = &location {
            let digests = bases.values().flat_map(|b| &b.layers).map(|l| l.digest.clone()).collect();
            elsewhere = Some((location.clone(), digests));
        }
        options.base = bases;
        options.base_files = files;
    }
    let Location::Layout { dir, tag, .. } = &output else {
        anyhow::bail!(
            "build writes an OCI layout or an archive: give --output oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE, and --push {output} to publish it"
        );
    };
    let mut writer = LayoutWriter::begin(dir)?;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    options.written = Some(std::sync::Arc::clone(&written));
    let display = super::progress::BuildDisplay::start(written, quiet);
    let built = build(&options, &mut writer);
    display.finish();
    let built = built?;
    writer.commit(built.descriptor().clone(), tag.as_deref())?;
    tracing::info!("wrote {} to {output}", built.digest);
    let name = match (&archive, &destination) {
        (Some(archive), _) => archive.to_string(),
        (None, Some(destination)) => destination.to_string(),
        (None, None) => output.to_string(),
    };
    let sbom_subjects = match args.sbom {
        true => hoist::sbom::attach_sboms(dir, &built, &options.base, &name, options.created)?,
        false => Vec::new(),
    };
    // What was built, by digest: the layout may hold other images (SBOMs, an untagged scratch
    // layout's), and a tag is not needed to name it.
    let layout = Location::Layout { dir: dir.clone(), tag: None, digest: Some(built.digest.clone()) };
    let output = match &archive {
        Some(archive) => {
            let flags = PushFlags {
                tags: Vec::new(),
                push_by_digest: false,
                digest_file: None,
                dry_run: false,
                ..args.push_flags.clone()
            };
            send(&layout, archive, None, elsewhere.clone(), &flags, &args.registry, true)?;
            archive.clone()
        }
        None => output.clone(),
    };
    if let Some(destination) = destination {
        let target = Location::Registry(destination);
        let report = send(&layout, &target, None, elsewhere, &args.push_flags, &args.registry, quiet)?;
        if !sbom_subjects.is_empty() && !args.push_flags.dry_run {
            let client = args.registry.client()?.with_retry(args.push_flags.retry());
            let options = hoist::referrers::ReferrerOptions {
                transfer: args.push_flags.transfer_options(),
                upload: args.push_flags.upload_options(),
                ..Default::default()
            };
            block_on(async { Ok(hoist::referrers::copy(&client, &layout, &target, &sbom_subjects, &options).await?) })?;
        }
        return print_report(&report, args.json);
    }
    if args.json {
        let mut summary = serde_json::to_value(&built)?;
        summary["output"] = output.to_string().into();
        print_line(&serde_json::to_string_pretty(&summary)?)
    } else {
        print_line(&built.digest.to_string())
    }
}
