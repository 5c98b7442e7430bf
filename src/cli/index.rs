//! `hoist index …` (one step against the registry) and `hoist manifest …` (docker's local-list
//! workflow, without its bugs).

use std::io::Write;

use clap::{Args, Subcommand};
use hoist::buildfile::key_values;
use hoist::index::publish::{IndexOptions, Target};
use hoist::index::store::ListStore;
use hoist::index::MergeOptions;
use hoist::location::Location;
use hoist::ops::index::target_of;
use hoist::ops::manifest::PlatformChange;
use hoist::ops::{Annotate, CreateList, IndexUpdate, InspectList, ListView, PushList};
use hoist::platform::Platform;
use hoist::session::Session;
use serde_json::Value;

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
    fn merge(&self) -> MergeOptions {
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
    settle: Option<u64>,
}

fn index_options(format: &FormatFlag, settle: Option<u64>, merge: MergeOptions) -> anyhow::Result<IndexOptions> {
    Ok(IndexOptions {
        merge,
        format: format.format.as_deref().map(str::parse).transpose()?,
        settle: settle.map(std::time::Duration::from_millis),
        ..IndexOptions::default()
    })
}

const NO_MERGE: MergeOptions = MergeOptions { keep_duplicates: false, no_attestations: false };

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
    let session = registry.session(hoist::registry::RetryPolicy::default())?;
    print_line(&hoist::ops::update_index(&session, &update)?.to_string())
}

/// `hoist manifest` subcommands, as docker's.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Create a local manifest list for LIST from REFs.
    #[command(
        after_long_help = "Examples:\n  hoist manifest create registry.example.com/team/app:v1 \\\n    registry.example.com/team/app:v1-amd64 registry.example.com/team/app:v1-arm64\n  hoist manifest create --amend registry.example.com/team/app:v1 registry.example.com/team/app:v1-s390x"
    )]
    Create {
        /// The list's name: registry/repository:tag.
        list: String,
        /// Images or indexes (an index contributes its platform images).
        #[arg(required = true)]
        refs: Vec<String>,
        /// Amend the local list, or else the list the registry holds.
        #[arg(short, long)]
        amend: bool,
        /// Allow the registries named here over plain HTTP or without TLS verification.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        flags: MergeFlags,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Set the platform of an entry of a local list.
    #[command(
        after_long_help = "Examples:\n  hoist manifest annotate registry.example.com/team/app:v1 registry.example.com/team/app:v1-arm --arch arm --variant v7"
    )]
    Annotate {
        /// The list.
        list: String,
        /// The image whose entry to change.
        reference: String,
        /// Operating system.
        #[arg(long)]
        os: Option<String>,
        /// Architecture.
        #[arg(long)]
        arch: Option<String>,
        /// CPU variant.
        #[arg(long)]
        variant: Option<String>,
        /// OS version.
        #[arg(long = "os-version")]
        os_version: Option<String>,
        /// OS features, comma-separated.
        #[arg(long = "os-features", value_delimiter = ',')]
        os_features: Vec<String>,
    },
    /// Show a manifest or list: a local list, or what the registry holds; with LIST REF, the
    /// manifest of the entry REF (by digest, or the image it came from) in the list LIST.
    #[command(
        override_usage = "hoist manifest inspect [OPTIONS] REF\n       hoist manifest inspect [OPTIONS] LIST REF",
        after_long_help = "Examples:\n  hoist manifest inspect registry.example.com/team/app:v1\n  hoist manifest inspect -v registry.example.com/team/app:v1      # each entry's descriptor and manifest\n  hoist manifest inspect registry.example.com/team/app:v1 registry.example.com/team/app@sha256:…"
    )]
    Inspect {
        /// A list (local or in the registry), or the image to show.
        #[arg(value_name = "LIST|REF")]
        first: String,
        /// An entry of LIST to show: its digest, or the image it came from.
        #[arg(value_name = "REF")]
        second: Option<String>,
        /// Allow the registries named here over plain HTTP or without TLS verification.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Push a local list: children into its repository, the index by digest, then the tag.
    #[command(
        after_long_help = "Examples:\n  hoist manifest push registry.example.com/team/app:v1\n  hoist manifest push --purge --insecure 10.0.0.5:5000/team/app:v1"
    )]
    Push {
        /// The list.
        list: String,
        /// Remove the local list after the push.
        #[arg(short, long)]
        purge: bool,
        /// Allow the registries named here over plain HTTP or without TLS verification.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        format: FormatFlag,
        #[command(flatten)]
        settle: SettleFlag,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Delete local lists.
    #[command(after_long_help = "Examples:\n  hoist manifest rm registry.example.com/team/app:v1")]
    Rm {
        /// The lists.
        #[arg(required = true)]
        lists: Vec<String>,
    },
}

/// A session that, with `--insecure`, allows every registry the command names.
fn session_for(registry: &RegistryArgs, insecure: bool, names: &[&str]) -> anyhow::Result<Session> {
    let mut settings = registry.settings()?;
    if insecure {
        for name in names {
            if let Ok(Location::Registry(reference)) = name.parse::<Location>() {
                settings.transport.insecure_registries.push(reference.registry);
            }
        }
    }
    Ok(Session::new(settings))
}

/// Runs `hoist manifest …`; `verbose` (the global `-v`/`--verbose`, as docker's flag) adds each
/// entry's descriptor and manifest to `inspect`.
pub fn manifest(command: ManifestCommand, verbose: bool) -> anyhow::Result<()> {
    let store = ListStore::from_environment()?;
    match command {
        ManifestCommand::Create { list, refs, amend, insecure, flags, registry } => {
            let mut names: Vec<&str> = refs.iter().map(String::as_str).collect();
            names.push(&list);
            let session = session_for(&registry, insecure, &names)?;
            let refs = refs.iter().map(|r| r.parse()).collect::<hoist::Result<_>>()?;
            hoist::ops::create_list(
                &session,
                &store,
                &CreateList { list: list.clone(), refs, amend, merge: flags.merge() },
            )?;
            eprintln!("Created manifest list {list}");
            Ok(())
        }
        ManifestCommand::Annotate { list, reference, os, arch, variant, os_version, os_features } => {
            let platform = PlatformChange { os, arch, variant, os_version, os_features };
            Ok(hoist::ops::annotate_list(&store, &Annotate { list, reference, platform })?)
        }
        ManifestCommand::Inspect { first, second, insecure, registry } => {
            let session = session_for(&registry, insecure, &[&first, second.as_deref().unwrap_or("")])?;
            match hoist::ops::inspect_list(&session, &store, &InspectList { first, second, verbose })? {
                ListView::Document(bytes) => pretty(&bytes),
                ListView::Verbose(value) => print_line(&serde_json::to_string_pretty(&value)?),
            }
        }
        ManifestCommand::Push { list, purge, insecure, format, settle, registry } => {
            let list = hoist::ops::manifest::load_list(&store, &list)?;
            let mut names = vec![list.name.clone()];
            names.extend(list.entries.iter().filter_map(|e| e.source.as_ref().map(Location::to_string)));
            let session = session_for(&registry, insecure, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
            let options = index_options(&format, settle.settle, NO_MERGE)?;
            print_line(&hoist::ops::push_list(&session, &store, &PushList { list, purge, options })?.to_string())
        }
        ManifestCommand::Rm { lists } => Ok(hoist::ops::remove_lists(&store, &lists)?),
    }
}

fn pretty(bytes: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(bytes)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
