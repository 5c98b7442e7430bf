//! `hoist index …` (one step against the registry) and `hoist manifest …` (docker's local-list
//! workflow, without its bugs).

use std::io::Write;

use base64::Engine as _;
use clap::{Args, Subcommand};
use hoist::index::publish::{amend, current, Change, IndexOptions, Target};
use hoist::index::resolve::resolve;
use hoist::index::store::{ListStore, LocalList};
use hoist::index::{merge, render, Format, MergeOptions};
use hoist::location::Location;
use hoist::reference::Reference;
use hoist::registry::Client;
use serde_json::{json, Value};

use super::print_line;
use super::registry::{block_on, RegistryArgs};

/// How entries are merged and written.
#[derive(Debug, Args, Clone)]
pub struct MergeFlags {
    /// Keep an existing entry for a platform that is added again (docker's duplicating behaviour).
    #[arg(long)]
    keep_duplicates: bool,
    /// Leave out attestation manifests (kept with their image by default).
    #[arg(long)]
    no_attestations: bool,
    /// Write an OCI image index or a Docker manifest list (default: what the children are).
    #[arg(long, value_name = "oci|docker")]
    format: Option<String>,
    /// Milliseconds to wait before reading the tag back to check no other writer replaced it
    /// (default: four times this amend's own read-merge-write time, 200 to 1500 ms).
    #[arg(long, value_name = "MILLISECONDS")]
    settle: Option<u64>,
}

impl MergeFlags {
    fn merge(&self) -> MergeOptions {
        MergeOptions { keep_duplicates: self.keep_duplicates, no_attestations: self.no_attestations }
    }

    fn index_options(&self) -> anyhow::Result<IndexOptions> {
        Ok(IndexOptions {
            merge: self.merge(),
            format: self.format.as_deref().map(str::parse).transpose()?,
            settle: self.settle.map(std::time::Duration::from_millis),
            ..IndexOptions::default()
        })
    }
}

/// An index and the images that go into it.
#[derive(Debug, Args)]
pub struct IndexRefs {
    /// The index: registry/repository:tag.
    target: String,
    /// Images or indexes (registry references or oci:DIR[:TAG]).
    #[arg(required = true)]
    refs: Vec<String>,
    #[command(flatten)]
    flags: MergeFlags,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `hoist index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Create (or replace) TARGET as an index of REFs' images.
    Create(IndexRefs),
    /// Add REFs' images to TARGET's index, replacing same-platform entries.
    Add(IndexRefs),
    /// Remove platforms from TARGET's index.
    Rm {
        /// The index: registry/repository:tag.
        target: String,
        /// Platform to remove, os/arch[/variant]; repeatable.
        #[arg(long = "platform", required = true)]
        platforms: Vec<String>,
        #[command(flatten)]
        flags: MergeFlags,
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

/// Runs `hoist index …`.
pub fn run(command: IndexCommand) -> anyhow::Result<()> {
    let (target, refs, platforms, flags, registry, create) = match command {
        IndexCommand::Create(IndexRefs { target, refs, flags, registry }) => {
            (target, refs, vec![], flags, registry, true)
        }
        IndexCommand::Add(IndexRefs { target, refs, flags, registry }) => {
            (target, refs, vec![], flags, registry, false)
        }
        IndexCommand::Rm { target, platforms, flags, registry } => (target, vec![], platforms, flags, registry, false),
    };
    let target = Target::of(&Reference::parse(&target)?);
    let client = registry.client()?;
    let mut options = flags.index_options()?;
    options.create = create;
    block_on(async {
        let change = Change {
            add: resolve_all(&client, &refs).await?,
            remove: platforms.iter().map(|p| p.parse()).collect::<hoist::Result<_>>()?,
        };
        let digest = amend(&client, &target, change, &options).await?;
        print_line(&digest.to_string())
    })
}

/// `hoist manifest` subcommands, as docker's.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Create a local manifest list for LIST from REFs.
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
    /// Show a manifest or list: a local list, or what the registry holds.
    Inspect {
        /// A local list (then REF names one of its entries), or the reference to show.
        first: String,
        /// With a list: the entry to show.
        second: Option<String>,
        /// Allow the registries named here over plain HTTP or without TLS verification.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Push a local list: children into its repository, the index by digest, then the tag.
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
        flags: MergeFlags,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Delete local lists.
    Rm {
        /// The lists.
        #[arg(required = true)]
        lists: Vec<String>,
    },
}

/// A client that, with `--insecure`, allows every registry the command names.
fn client_for(registry: &RegistryArgs, insecure: bool, names: &[&str]) -> anyhow::Result<Client> {
    let mut transport = registry.transport();
    if insecure {
        for name in names {
            if let Ok(Location::Registry(reference)) = name.parse::<Location>() {
                transport.insecure_registries.push(reference.registry);
            }
        }
    }
    Ok(Client::new(transport, registry.credentials()?))
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
            let client = client_for(&registry, insecure, &names)?;
            block_on(async {
                let base = match (store.load(&list)?, amend) {
                    (Some(_), false) => anyhow::bail!(
                        "a local list {list} exists; pass --amend, or remove it with `hoist manifest rm {list}`"
                    ),
                    (Some(local), true) => local.entries,
                    (None, true) => current(&client, &target).await?.map(|(entries, _)| entries).unwrap_or_default(),
                    (None, false) => Vec::new(),
                };
                let entries = merge(base, resolve_all(&client, &refs).await?, flags.merge());
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
                    digest.as_deref().map_or(e.source.as_ref().is_some_and(|s| s.same_place(&wanted)), |d| {
                        e.digest().to_string() == d
                    })
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
            let client = client_for(&registry, insecure, &[&first, second.as_deref().unwrap_or("")])?;
            block_on(inspect(&store, &client, &first, second.as_deref(), verbose))
        }
        ManifestCommand::Push { list, purge, insecure, flags, registry } => {
            let local = store
                .load(&list)?
                .ok_or_else(|| anyhow::anyhow!("no local list {list}; make it with `hoist manifest create`"))?;
            let names: Vec<&str> = vec![list.as_str()];
            let mut client_names = names.clone();
            let sources: Vec<String> =
                local.entries.iter().filter_map(|e| e.source.as_ref().map(Location::to_string)).collect();
            client_names.extend(sources.iter().map(String::as_str));
            let client = client_for(&registry, insecure, &client_names)?;
            let target = Target::of(&Reference::parse(&list)?);
            let mut options = flags.index_options()?;
            options.create = true;
            let change = Change { add: local.entries.clone(), remove: vec![] };
            let digest = block_on(async { Ok(amend(&client, &target, change, &options).await?) })?;
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
        let entries = match second {
            Some(reference) => {
                let wanted = reference.parse::<Location>()?;
                local
                    .entries
                    .iter()
                    .filter(|e| {
                        e.source.as_ref().is_some_and(|s| s.same_place(&wanted))
                            || reference.ends_with(&e.digest().to_string())
                    })
                    .cloned()
                    .collect()
            }
            None => local.entries.clone(),
        };
        let format = Format::for_entries(&entries);
        let bytes = render(&entries, format, &Default::default())?;
        return pretty(&bytes);
    }
    let location: Location = second.unwrap_or(first).parse()?;
    let source = hoist::source::open(&location, client)?;
    let manifest = source.root().await?;
    if !verbose {
        return pretty(&manifest.bytes);
    }
    let mut out = Vec::new();
    let children = match manifest.media_type.is_index() {
        true => manifest.index(&location.to_string())?.manifests,
        false => vec![manifest.descriptor()],
    };
    for descriptor in children {
        let digest = &descriptor.digest;
        let child = source.manifest(digest).await?;
        let key = if child.media_type.is_docker() { "SchemaV2Manifest" } else { "OCIManifest" };
        out.push(json!({
            "Ref": format!("{location}@{digest}"),
            "Descriptor": descriptor,
            "Raw": base64::engine::general_purpose::STANDARD.encode(&child.bytes),
            key: serde_json::from_slice::<Value>(&child.bytes)?,
        }));
    }
    let value = if manifest.media_type.is_index() { Value::Array(out) } else { out.remove(0) };
    print_line(&serde_json::to_string_pretty(&value)?)
}

fn pretty(bytes: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(bytes)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
