//! `hoist index …`: one step against the registry (the flags shared with `hoist manifest …`).

use clap::{Args, Subcommand};
use hoist::buildfile::key_values;
use hoist::index::publish::{IndexOptions, Target};
use hoist::index::MergeOptions;
use hoist::ops::index::target_of;
use hoist::ops::IndexUpdate;
use hoist::platform::Platform;

use super::print_line;
use super::registry::RegistryArgs;

/// How added entries are merged with those already there.
#[derive(Debug, Args, Clone)]
pub struct MergeFlags {
    /// Keep an existing entry for a platform that is added again (docker's duplicating behaviour).
    #[arg(long)]
    keep_duplicates: bool,
    /// Leave out attestation manifests (kept with their image by default).
    #[arg(long)]
    no_attestations: bool,
}

impl MergeFlags {
    pub(super) fn merge(&self) -> MergeOptions {
        MergeOptions { keep_duplicates: self.keep_duplicates, no_attestations: self.no_attestations }
    }
}

/// The document written.
#[derive(Debug, Args, Clone)]
pub struct FormatFlag {
    /// Write an OCI image index or a Docker manifest list [default: what the children are].
    #[arg(long, value_name = "oci|docker")]
    format: Option<String>,
}

/// The read-back after a write.
#[derive(Debug, Args, Clone)]
pub struct SettleFlag {
    /// Milliseconds to wait before reading the tag back to check no other writer replaced it
    /// [default: four times this amend's own read-merge-write time, 200 to 1500 ms].
    #[arg(long, value_name = "MILLISECONDS")]
    pub(super) settle: Option<u64>,
}

pub(super) fn index_options(
    format: &FormatFlag,
    settle: Option<u64>,
    merge: MergeOptions,
) -> anyhow::Result<IndexOptions> {
    Ok(IndexOptions {
        merge,
        format: format.format.as_deref().map(str::parse).transpose()?,
        settle: settle.map(std::time::Duration::from_millis),
        ..IndexOptions::default()
    })
}

pub(super) const NO_MERGE: MergeOptions = MergeOptions { keep_duplicates: false, no_attestations: false };

/// `hoist index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Create (or replace) TARGET as an index of REFs' images.
    #[command(
        override_usage = "hoist index create [OPTIONS] TARGET REF...\n       hoist index create [OPTIONS] --tag TARGET... REF...",
        after_long_help = "Examples:\n  hoist index create registry.example.com/team/app:v1 \\\n    registry.example.com/team/app@sha256:… registry.example.com/team/app@sha256:…\n  hoist index create --tag registry.example.com/team/app:v1 --tag registry.example.com/team/app:latest \\\n    --annotation org.opencontainers.image.version=1.0.0 oci:out/amd64 oci:out/arm64"
    )]
    Create {
        /// TARGET (registry/repository:tag) then the images or indexes (registry references or
        /// oci:DIR[:TAG]); with --tag, all are images.
        #[arg(required = true, value_name = "TARGET|REF")]
        args: Vec<String>,
        /// Where the index goes (registry/repository:tag), instead of the first argument;
        /// repeatable: every tag names the same index.
        #[arg(short, long = "tag", value_name = "TARGET")]
        tags: Vec<String>,
        /// Annotation KEY=VALUE on the index; repeatable.
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        #[command(flatten)]
        merge: MergeFlags,
        #[command(flatten)]
        format: FormatFlag,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Add REFs' images to TARGET's index, replacing same-platform entries; creates the index
    /// when TARGET does not exist yet.
    #[command(
        after_long_help = "Examples:\n  # on each CI runner, in parallel: every runner adds its own platform\n  hoist index add registry.example.com/team/app:v1 registry.example.com/team/app@sha256:…\n  hoist index add registry.example.com/team/app:v1 oci:out/layout:arm64 --settle 3000"
    )]
    Add {
        /// The index: registry/repository:tag.
        target: String,
        /// Images or indexes (registry references or oci:DIR[:TAG]).
        #[arg(required = true)]
        refs: Vec<String>,
        /// Annotation KEY=VALUE on the index; repeatable.
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        #[command(flatten)]
        merge: MergeFlags,
        #[command(flatten)]
        format: FormatFlag,
        #[command(flatten)]
        settle: SettleFlag,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Remove platforms (and their attestations) from TARGET's index.
    #[command(
        after_long_help = "Examples:\n  hoist index rm registry.example.com/team/app:v1 --platform linux/arm/v7\n  hoist index rm registry.example.com/team/app:v1 --platform linux/amd64 --platform linux/arm64 --allow-empty"
    )]
    Rm {
        /// The index: registry/repository:tag.
        target: String,
        /// Platform to remove, os/arch[/variant]; repeatable.
        #[arg(long = "platform", required = true)]
        platforms: Vec<String>,
        /// Write the index even when no platform is left (refused by default).
        #[arg(long)]
        allow_empty: bool,
        #[command(flatten)]
        format: FormatFlag,
        #[command(flatten)]
        settle: SettleFlag,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// Runs `hoist index …`.
pub fn run(command: IndexCommand) -> anyhow::Result<()> {
    let mut extra_tags = Vec::new();
    let (target, refs, platforms, registry, options) = match command {
        IndexCommand::Create { args, tags, annotations, merge, format, registry } => {
            let (target, refs) = match tags.split_first() {
                Some((first, rest)) => {
                    extra_tags = rest.to_vec();
                    (first.clone(), args)
                }
                None => match args.split_first() {
                    Some((first, rest)) if !rest.is_empty() => (first.clone(), rest.to_vec()),
                    _ => {
                        return Err(hoist::Error::invalid(
                            "arguments",
                            args.join(" "),
                            "give TARGET then at least one REF, or --tag TARGET and the REFs",
                        )
                        .into())
                    }
                },
            };
            let mut options = index_options(&format, None, merge.merge())?;
            options.create = true;
            options.annotations = key_values("annotation", &annotations)?;
            (target, refs, vec![], registry, options)
        }
        IndexCommand::Add { target, refs, annotations, merge, format, settle, registry } => {
            let mut options = index_options(&format, settle.settle, merge.merge())?;
            options.annotations = key_values("annotation", &annotations)?;
            (target, refs, vec![], registry, options)
        }
        IndexCommand::Rm { target, platforms, allow_empty, format, settle, registry } => {
            let mut options = index_options(&format, settle.settle, NO_MERGE)?;
            options.allow_empty = allow_empty;
            (target, vec![], platforms, registry, options)
        }
    };
    let target = target_of(&target)?;
    let extra: Vec<Target> = extra_tags.iter().map(|t| target_of(t)).collect::<hoist::Result<_>>()?;
    if let Some(other) = extra.iter().find(|t| t.registry != target.registry || t.repository != target.repository) {
        anyhow::bail!(
            "every --tag must be in one repository: {}/{} and {}/{}",
            target.registry,
            target.repository,
            other.registry,
            other.repository
        );
    }
    let update = IndexUpdate {
        target,
        extra_tags: extra.into_iter().filter_map(|t| t.tag).collect(),
        add: refs.iter().map(|r| r.parse()).collect::<hoist::Result<_>>()?,
        remove: platforms.iter().map(|p| p.parse()).collect::<hoist::Result<Vec<Platform>>>()?,
        options,
    };
    let session = registry.session(hoist::registry::RetryPolicy::default(), false)?;
    print_line(&hoist::ops::update_index(&session, &update)?.to_string())
}
