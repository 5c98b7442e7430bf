//! `hoist manifest …`: docker's local-list workflow, without its bugs.

use std::io::Write;

use clap::Subcommand;
use hoist::index::store::ListStore;
use hoist::location::Location;
use hoist::ops::manifest::PlatformChange;
use hoist::ops::{Annotate, CreateList, InspectList, ListView, PushList};
use hoist::session::Session;
use serde_json::Value;

use super::index::{index_options, FormatFlag, MergeFlags, SettleFlag, NO_MERGE};
use super::print_line;
use super::registry::RegistryArgs;

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
