//! `hoist index …` (one step against the registry) and `hoist manifest …` (docker's local-list
//! workflow, without its bugs).

use std::io::Write;

use base64::Engine as _;
use clap::{Args, Subcommand};
use hoist::buildfile::key_values;
use hoist::index::publish::{amend, current, Change, IndexOptions, Target};
use hoist::index::resolve::resolve;
use hoist::index::store::{ListStore, LocalList};
use hoist::index::{merge, render, Format, MergeOptions};
use hoist::location::Location;
use hoist::platform::Platform;
use hoist::reference::{ManifestRef, Reference};
use hoist::registry::Client;
use hoist::session::Session;
use serde_json::{json, Value};

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

async fn resolve_all(client: &Client, refs: &[String]) -> anyhow::Result<Vec<hoist::index::Entry>> {
    let mut entries = Vec::new();
    for reference in refs {
        entries.extend(resolve(client, &reference.parse::<Location>()?).await?);
    }
    Ok(entries)
}

/// A tag reference (registry/repository:tag) for an index.
fn target_of(text: &str) -> anyhow::Result<Target> {
    let reference = Reference::parse(text)?;
    if reference.digest.is_some() {
        return Err(
            hoist::Error::invalid("index target", text, "an index goes to a tag: registry/repository:tag").into()
        );
    }
    Ok(Target::of(&reference))
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
    let extra: Vec<Target> = extra_tags.iter().map(|t| target_of(t)).collect::<anyhow::Result<_>>()?;
    if let Some(other) = extra.iter().find(|t| t.registry != target.registry || t.repository != target.repository) {
        anyhow::bail!(
            "every --tag must be in one repository: {}/{} and {}/{}",
            target.registry,
            target.repository,
            other.registry,
            other.repository
        );
    }
    let remove: Vec<Platform> = platforms.iter().map(|p| p.parse()).collect::<hoist::Result<_>>()?;
    let session = registry.session(hoist::registry::RetryPolicy::default(), false)?;
    let client = session.client();
    session.block_on(async {
        let change = Change { add: resolve_all(client, &refs).await?, remove };
        let digest = amend(client, &target, change, &options).await?;
        if !extra.is_empty() {
            let index = client
                .get_manifest_direct(&Reference {
                    registry: target.registry.clone(),
                    repository: target.repository.clone(),
                    tag: None,
                    digest: Some(digest.clone()),
                })
                .await?;
            for tag in extra.iter().filter_map(|t| t.tag.as_deref()) {
                client
                    .put_manifest(&target.registry, &target.repository, &ManifestRef::Tag(tag.to_owned()), &index)
                    .await?;
            }
        }
        print_line(&digest.to_string())
    })
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
            let target = Target::of(&Reference::parse(&list)?);
            let mut names: Vec<&str> = refs.iter().map(String::as_str).collect();
            names.push(&list);
            let session = session_for(&registry, insecure, &names)?;
            let client = session.client();
            session.block_on(async {
                let base = match (store.load(&list)?, amend) {
                    (Some(_), false) => anyhow::bail!(
                        "a local list {list} exists; pass --amend, or remove it with `hoist manifest rm {list}`"
                    ),
                    (Some(local), true) => local.entries,
                    (None, true) => current(client, &target).await?.map(|(entries, _)| entries).unwrap_or_default(),
                    (None, false) => Vec::new(),
                };
                let entries = merge(base, resolve_all(client, &refs).await?, flags.merge());
                store.save(&LocalList { name: list.clone(), entries })?;
                eprintln!("Created manifest list {list}");
                Ok(())
            })
        }
        ManifestCommand::Annotate { list, reference, os, arch, variant, os_version, os_features } => {
            let mut local = store
                .load(&list)?
                .ok_or_else(|| anyhow::anyhow!("no local list {list}; make it with `hoist manifest create`"))?;
            let wanted = reference.parse::<Location>()?;
            let digest = match &wanted {
                Location::Registry(r) => r.digest.clone(),
                _ => None,
            };
            let entry = local
                .entries
                .iter_mut()
                .find(|e| {
                    digest
                        .as_ref()
                        .map_or(e.source.as_ref().is_some_and(|s| s.same_place(&wanted)), |d| e.digest() == d)
                })
                .ok_or_else(|| anyhow::anyhow!("{reference} is not in the list {list}"))?;
            let mut platform = entry.platform().cloned().unwrap_or_default();
            platform.os = os.unwrap_or(platform.os);
            platform.architecture = arch.unwrap_or(platform.architecture);
            platform.variant = variant.or(platform.variant);
            platform.os_version = os_version.or(platform.os_version);
            if !os_features.is_empty() {
                platform.os_features = os_features;
            }
            if platform.os.is_empty() || platform.architecture.is_empty() {
                anyhow::bail!("an entry needs both --os and --arch");
            }
            entry.descriptor.platform = Some(platform);
            store.save(&local)?;
            Ok(())
        }
        ManifestCommand::Inspect { first, second, insecure, registry } => {
            let session = session_for(&registry, insecure, &[&first, second.as_deref().unwrap_or("")])?;
            let client = session.client();
            session.block_on(inspect(&store, client, &first, second.as_deref(), verbose))
        }
        ManifestCommand::Push { list, purge, insecure, format, settle, registry } => {
            let local = store
                .load(&list)?
                .ok_or_else(|| anyhow::anyhow!("no local list {list}; make it with `hoist manifest create`"))?;
            let names: Vec<&str> = vec![list.as_str()];
            let mut client_names = names.clone();
            let sources: Vec<String> =
                local.entries.iter().filter_map(|e| e.source.as_ref().map(Location::to_string)).collect();
            client_names.extend(sources.iter().map(String::as_str));
            let session = session_for(&registry, insecure, &client_names)?;
            let client = session.client();
            let target = Target::of(&Reference::parse(&list)?);
            let mut options =
                index_options(&format, settle.settle, MergeOptions { keep_duplicates: true, ..NO_MERGE })?;
            options.create = true;
            let change = Change { add: local.entries.clone(), remove: vec![] };
            let digest = session.block_on(async { anyhow::Ok(amend(client, &target, change, &options).await?) })?;
            if purge {
                store.remove(&list)?;
            }
            print_line(&digest.to_string())
        }
        ManifestCommand::Rm { lists } => {
            let mut missing = Vec::new();
            for list in &lists {
                if !store.remove(list)? {
                    missing.push(list.as_str());
                }
            }
            if !missing.is_empty() {
                anyhow::bail!("no local list {}", missing.join(", "));
            }
            Ok(())
        }
    }
}

async fn inspect(
    store: &ListStore,
    client: &Client,
    first: &str,
    second: Option<&str>,
    verbose: bool,
) -> anyhow::Result<()> {
    if let Some(local) = store.load(first)? {
        let Some(reference) = second else {
            if !verbose {
                let bytes = render(&local.entries, Format::for_entries(&local.entries), &Default::default())?;
                return pretty(&bytes);
            }
            let mut out = Vec::new();
            for entry in &local.entries {
                out.push(verbose_entry(client, entry).await?);
            }
            return print_line(&serde_json::to_string_pretty(&Value::Array(out))?);
        };
        let wanted = reference.parse::<Location>()?;
        let entry = local
            .entries
            .iter()
            .find(|e| match &wanted {
                Location::Registry(r) if r.digest.is_some() => r.digest.as_ref() == Some(e.digest()),
                _ => e.source.as_ref().is_some_and(|s| s.same_place(&wanted)),
            })
            .ok_or_else(|| not_in_list(reference, first, local.entries.iter().map(|e| e.digest().to_string())))?;
        if verbose {
            return print_line(&serde_json::to_string_pretty(&verbose_entry(client, entry).await?)?);
        }
        let child = child_manifest(client, entry).await?;
        return pretty(&child.bytes);
    }
    let location: Location = first.parse()?;
    let source = hoist::source::open(&location, client)?;
    let manifest = source.root().await?;
    if let Some(reference) = second {
        // LIST REF: the entry REF names in the list the registry holds.
        if !manifest.media_type.is_index() {
            anyhow::bail!("{first} is a single image, not a list; inspect {reference} on its own");
        }
        let wanted = match reference.parse::<Location>()? {
            Location::Registry(Reference { digest: Some(digest), .. }) => digest,
            other => hoist::source::open(&other, client)?.root().await?.digest,
        };
        let index = manifest.index(first)?;
        let descriptor = index
            .manifests
            .iter()
            .find(|d| d.digest == wanted)
            .cloned()
            .ok_or_else(|| not_in_list(reference, first, index.manifests.iter().map(|d| d.digest.to_string())))?;
        let child = source.manifest_of(&descriptor).await?;
        if !verbose {
            return pretty(&child.bytes);
        }
        let value = verbose_json(&format!("{location}@{}", descriptor.digest), &descriptor, &child)?;
        return print_line(&serde_json::to_string_pretty(&value)?);
    }
    if !verbose {
        return pretty(&manifest.bytes);
    }
    let mut out = Vec::new();
    let children = match manifest.media_type.is_index() {
        true => manifest.index(&location.to_string())?.manifests,
        false => vec![manifest.descriptor()],
    };
    for descriptor in children {
        let child = source.manifest_of(&descriptor).await?;
        out.push(verbose_json(&format!("{location}@{}", descriptor.digest), &descriptor, &child)?);
    }
    let value = if manifest.media_type.is_index() { Value::Array(out) } else { out.remove(0) };
    print_line(&serde_json::to_string_pretty(&value)?)
}

/// "REF is not in the list", naming what is.
fn not_in_list(reference: &str, list: &str, digests: impl Iterator<Item = String>) -> hoist::Error {
    let have: Vec<String> = digests.collect();
    hoist::Error::invalid("entry", reference, format!("it is not in the list {list}, which has: {}", have.join(", ")))
}

/// The manifest of a local list's entry, read from where the entry came from.
async fn child_manifest(client: &Client, entry: &hoist::index::Entry) -> anyhow::Result<hoist::model::RawManifest> {
    let Some(place) = &entry.source else {
        anyhow::bail!("the list does not say where {} lives; recreate it with `hoist manifest create`", entry.digest());
    };
    let source = hoist::source::open(&place.at_digest(entry.digest()), client)?;
    Ok(source.manifest(entry.digest()).await?)
}

/// docker's verbose form of a local list's entry.
async fn verbose_entry(client: &Client, entry: &hoist::index::Entry) -> anyhow::Result<Value> {
    let child = child_manifest(client, entry).await?;
    let place = entry.source.as_ref().map(|s| s.at_digest(entry.digest()).to_string()).unwrap_or_default();
    verbose_json(&place, &entry.descriptor, &child)
}

/// docker's verbose form: the reference, the descriptor, the raw bytes and the parsed manifest.
fn verbose_json(
    reference: &str,
    descriptor: &hoist::model::Descriptor,
    child: &hoist::model::RawManifest,
) -> anyhow::Result<Value> {
    let key = if child.media_type.is_docker() { "SchemaV2Manifest" } else { "OCIManifest" };
    Ok(json!({
        "Ref": reference,
        "Descriptor": descriptor,
        "Raw": base64::engine::general_purpose::STANDARD.encode(&child.bytes),
        key: serde_json::from_slice::<Value>(&child.bytes)?,
    }))
}

fn pretty(bytes: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(bytes)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
