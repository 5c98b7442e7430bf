//! `hoist push`, and the push step of `hoist build --push`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hoist::layer::Compression;
use hoist::location::Location;
use hoist::ops::{publish, Publish, PublishOptions};
use hoist::registry::RetryPolicy;
use hoist::session::Session;
use hoist::sink::UploadOptions;
use hoist::transfer::{Report, TransferOptions};

use super::print_line;
use super::progress::Progress;
use super::registry::RegistryArgs;

/// Flags of every push.
#[derive(Debug, Args, Clone)]
pub struct PushFlags {
    /// Also point this tag at what was pushed; repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Blobs uploaded at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Send blobs larger than this in resumable chunks of this size (bytes, or with K/M/G);
    /// by default chunks are sized to take about two seconds each at the measured throughput,
    /// and small blobs go in one request.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Retries of each request on transient failures (waits double from 1 s, at most 30 s).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// Cut and retry a transfer that makes no progress for this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub stall_timeout: u64,
    /// Mount blobs from this repository of the same registry when it has them; repeatable.
    #[arg(long = "mount-from", value_name = "REPOSITORY")]
    pub mount_from: Vec<String>,
    /// Write the pushed digest to this file.
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<PathBuf>,
    /// Only look (HEAD requests): print what would be sent.
    #[arg(long)]
    pub dry_run: bool,
    /// Write an index as an OCI image index or a Docker manifest list (for registries that
    /// refuse OCI indexes; the digest changes). Default: as it is.
    #[arg(long, value_name = "oci|docker")]
    pub format: Option<String>,
    /// Walk and check every blob and manifest even when the destination's tags already name
    /// what is pushed (by default that is one HEAD per tag and nothing else).
    #[arg(long)]
    pub verify: bool,
    /// Push by digest only, no tag (for split CI builds merged later with `hoist index
    /// create`); the digest also goes to $GITHUB_OUTPUT as `digest=…` when that is set.
    #[arg(long)]
    pub push_by_digest: bool,
    /// How uncompressed layers are compressed on their way to a registry: push and copy set it
    /// from [`LayerArgs`]; build pushes what it built as it is (none).
    #[arg(skip = Compression::None)]
    pub layer_compression: Compression,
}

/// What `push` and `copy` do with uncompressed layers (as `docker save` and `podman save`
/// write them) on their way to a registry.
#[derive(Debug, Args, Clone)]
pub struct LayerArgs {
    /// Compress uncompressed layers sent to a registry with gzip or zstd. The default from an
    /// archive or a layout is gzip (as docker push, crane and skopeo do); from a registry,
    /// layers are compressed only when this is given. The image's digest changes; the output
    /// says so.
    #[arg(long, value_name = "gzip|zstd")]
    compression: Option<String>,
    /// Send uncompressed layers to a registry as they are, so the image keeps its digest (as
    /// skopeo's --preserve-digests; the default from a registry).
    #[arg(long, conflicts_with = "compression")]
    preserve_digests: bool,
}

impl LayerArgs {
    /// The compression of uncompressed layers read from `source`: none with
    /// --preserve-digests, and by default from a registry, whose images keep their digests
    /// (signatures and referrers name them) unless --compression asks otherwise.
    pub fn compression(&self, source: &Location) -> anyhow::Result<Compression> {
        if self.preserve_digests {
            return Ok(Compression::None);
        }
        match self.compression.as_deref().map(str::parse).transpose()? {
            Some(Compression::None) => Err(hoist::Error::invalid(
                "--compression",
                "none",
                "to send uncompressed layers as they are, pass --preserve-digests",
            )
            .into()),
            Some(chosen) => Ok(chosen),
            None if matches!(source, Location::Registry(_)) => Ok(Compression::None),
            None => Ok(Compression::Gzip),
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    hoist::size::parse(text).map_err(|e| e.to_string())
}

impl PushFlags {
    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { retries: self.retries, ..RetryPolicy::default() }
    }

    /// The transfer engine's options. Layers compressed on the way are kept in hoist's cache
    /// for the next push (without it, in unnamed temporary files); a dry run, which compresses
    /// nothing, does not even open it.
    pub fn transfer_options(&self, session: &Session) -> TransferOptions {
        let cache = match (self.layer_compression, self.dry_run) {
            (Compression::None, _) | (_, true) => None,
            _ => session.cache().map_err(|e| tracing::warn!("compressing layers without hoist's cache: {e}")).ok(),
        };
        TransferOptions {
            jobs: self.jobs,
            retry: self.retry(),
            dry_run: self.dry_run,
            verify: self.verify,
            compression: self.layer_compression,
            compression_level: self.layer_compression.default_level(),
            cache,
        }
    }

    /// How to publish, as these flags say.
    pub fn publish_options(&self, session: &Session) -> anyhow::Result<PublishOptions> {
        Ok(PublishOptions {
            tags: self.tags.clone(),
            by_digest_only: self.push_by_digest,
            format: self.format.as_deref().map(str::parse).transpose()?,
            transfer: self.transfer_options(session),
            upload: self.upload_options(),
            digest_file: self.digest_file.clone(),
            ..PublishOptions::default()
        })
    }

    /// How blobs go up to a registry.
    pub fn upload_options(&self) -> UploadOptions {
        UploadOptions {
            chunk_size: self.chunk_size,
            stall_timeout: Duration::from_secs(self.stall_timeout.max(1)),
            mount_from: self.mount_from.clone(),
        }
    }
}

/// Flags of `hoist push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// What to push: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF|:@N]
    /// (@N: its Nth image, from 0), or a registry reference.
    source: String,
    /// Where: registry/repository[:tag] (without a tag, by digest only, plus --tag),
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF].
    destination: String,
    #[command(flatten)]
    flags: PushFlags,
    #[command(flatten)]
    layers: LayerArgs,
    /// Print a JSON summary instead of the digest.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `hoist push`.
pub fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    let source: Location = args.source.parse()?;
    let destination: Location = args.destination.parse()?;
    let flags = PushFlags { layer_compression: args.layers.compression(&source)?, ..args.flags };
    let session = args.registry.session(flags.retry(), flags.dry_run)?;
    let request = Publish { from: source, to: destination.clone(), options: flags.publish_options(&session)? };
    let observer = Progress::new(quiet, flags.dry_run);
    let report = publish(&session, &request, &observer);
    observer.finish();
    let report = report?;
    published(&report, &flags, &destination, quiet)?;
    print_report(&report, args.json)
}

/// Prints the digest alone, or the JSON summary.
pub fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        return print_line(&serde_json::to_string_pretty(report)?);
    }
    print_line(&report.digest)
}

/// What a command says once a publish is done: what compressing layers did, what a dry run
/// would do, and the digest in `$GITHUB_OUTPUT` for a push by digest.
pub fn published(report: &Report, flags: &PushFlags, to: &Location, quiet: bool) -> anyhow::Result<()> {
    tell(report, flags, to, quiet);
    if let (true, false, Some(output)) = (flags.push_by_digest, flags.dry_run, std::env::var_os("GITHUB_OUTPUT")) {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&output)?;
        std::io::Write::write_all(&mut file, format!("digest={}\n", report.digest).as_bytes())?;
    }
    Ok(())
}

/// Says on stderr what compressing layers did to the digest (unless `quiet`), and what a dry
/// run would do.
fn tell(report: &Report, flags: &PushFlags, to: &Location, quiet: bool) {
    if let (Some(before), false) = (&report.source_digest, quiet) {
        eprintln!(
            "compressed {} uncompressed layer(s) with {}: {to} is {}, not the source's {before} (--preserve-digests sends them as they are)",
            report.layers_compressed, flags.layer_compression, report.digest
        );
    }
    if flags.dry_run && report.layers_compressed > 0 {
        eprintln!(
            "dry run: {} uncompressed layer(s) would be compressed with {}, so {to} would get another digest than the source's {} (not computed in a dry run; --preserve-digests keeps it)",
            report.layers_compressed, flags.layer_compression, report.digest
        );
    }
    if flags.dry_run {
        eprintln!(
            "dry run: would upload {} blob(s) ({} bytes), mount {} and write {} manifest(s); {} blob(s) already there",
            report.blobs_pushed,
            report.bytes_pushed,
            report.blobs_mounted,
            report.manifests_pushed,
            report.blobs_skipped
        );
    }
}
