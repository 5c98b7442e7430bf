//! docker's local-list workflow (`hoist manifest …`), without its bugs: lists kept in a local
//! store, made from images or indexes, annotated, shown and pushed (see
//! [`push_list`](crate::ops::index::push_list)).

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::index::publish::{current, Target};
use crate::index::store::{ListStore, LocalList};
use crate::index::{merge, render, Entry, Format, MergeOptions};
use crate::location::Location;
use crate::model::{Descriptor, RawManifest};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::Client;
use crate::session::Session;

/// The local list `name` of `store`, or an error saying how to make it.
pub fn load_list(store: &ListStore, name: &str) -> Result<LocalList> {
    store
        .load(name)?
        .ok_or_else(|| Error::refused(format!("no local list {name}; make it with `hoist manifest create`")))
}

/// The making of a local list.
#[derive(Clone, Debug)]
pub struct CreateList {
    /// The list's name: registry/repository:tag.
    pub list: String,
    /// Images or indexes (an index contributes its platform images).
    pub refs: Vec<Location>,
    /// Amend the local list, or else the list the registry holds.
    pub amend: bool,
    /// How entries are merged.
    pub merge: MergeOptions,
}

/// Makes (or with `amend`, extends) the local list `request.list` in `store`.
pub fn create_list(session: &Session, store: &ListStore, request: &CreateList) -> Result<()> {
    let list = &request.list;
    let target = Target::of(&Reference::parse(list)?);
    let client = session.client();
    session.block_on(async {
        let base = match (store.load(list)?, request.amend) {
            (Some(_), false) => {
                return Err(Error::refused(format!(
                    "a local list {list} exists; pass --amend, or remove it with `hoist manifest rm {list}`"
                )))
            }
            (Some(local), true) => local.entries,
            (None, true) => current(client, &target).await?.map(|(entries, _)| entries).unwrap_or_default(),
            (None, false) => Vec::new(),
        };
        let added = crate::ops::index::resolve_all(client, &request.refs).await?;
        let entries = merge(base, added, request.merge);
        store.save(&LocalList { name: list.clone(), entries })
    })
}

/// A change to the platform of one entry of a local list; fields left `None` (or empty) keep
/// what the entry has.
#[derive(Clone, Debug, Default)]
pub struct Annotate {
    /// The list.
    pub list: String,
    /// The image whose entry to change: its digest, or the place it came from.
    pub reference: String,
    /// What to set.
    pub platform: PlatformChange,
}

/// The fields of a platform to set.
#[derive(Clone, Debug, Default)]
pub struct PlatformChange {
    /// Operating system.
    pub os: Option<String>,
    /// Architecture.
    pub arch: Option<String>,
    /// CPU variant.
    pub variant: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// OS features (empty: unchanged).
    pub os_features: Vec<String>,
}

impl PlatformChange {
    /// `platform` with this change applied.
    fn apply(&self, mut platform: Platform) -> Platform {
        platform.os = self.os.clone().unwrap_or(platform.os);
        platform.architecture = self.arch.clone().unwrap_or(platform.architecture);
        platform.variant = self.variant.clone().or(platform.variant);
        platform.os_version = self.os_version.clone().or(platform.os_version);
        if !self.os_features.is_empty() {
            platform.os_features = self.os_features.clone();
        }
        platform
    }
}

/// Sets the platform of an entry of a local list.
pub fn annotate_list(store: &ListStore, request: &Annotate) -> Result<()> {
    let mut local = load_list(store, &request.list)?;
    let wanted = request.reference.parse::<Location>()?;
    let digest = match &wanted {
        Location::Registry(r) => r.digest.clone(),
        _ => None,
    };
    let entry = local
        .entries
        .iter_mut()
        .find(|e| digest.as_ref().map_or(e.source.as_ref().is_some_and(|s| s.same_place(&wanted)), |d| e.digest() == d))
        .ok_or_else(|| Error::refused(format!("{} is not in the list {}", request.reference, request.list)))?;
    let platform = request.platform.apply(entry.platform().cloned().unwrap_or_default());
    if platform.os.is_empty() || platform.architecture.is_empty() {
        return Err(Error::refused("an entry needs both --os and --arch"));
    }
    entry.descriptor.platform = Some(platform);
    store.save(&local)
}

/// Removes local lists; an error names those that were not there (the others are removed).
pub fn remove_lists(store: &ListStore, lists: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    for list in lists {
        if !store.remove(list)? {
            missing.push(list.as_str());
        }
    }
    match missing.is_empty() {
        true => Ok(()),
        false => Err(Error::refused(format!("no local list {}", missing.join(", ")))),
    }
}

/// What `hoist manifest inspect` shows.
#[derive(Clone, Debug)]
pub enum ListView {
    /// A manifest or list document, as its bytes.
    Document(Vec<u8>),
    /// docker's verbose form: each entry's reference, descriptor, raw bytes and manifest.
    Verbose(Value),
}

/// What to show.
#[derive(Clone, Debug)]
pub struct InspectList {
    /// A list (local or in the registry), or an image.
    pub first: String,
    /// An entry of the list to show: its digest, or the image it came from.
    pub second: Option<String>,
    /// docker's verbose form.
    pub verbose: bool,
}

/// Shows a local list, what the registry holds, or one entry of either.
pub fn inspect_list(session: &Session, store: &ListStore, request: &InspectList) -> Result<ListView> {
    let client = session.client();
    session.block_on(async {
        match store.load(&request.first)? {
            Some(local) => inspect_local(client, &local, request).await,
            None => inspect_remote(client, request).await,
        }
    })
}

/// A local list, or one of its entries.
async fn inspect_local(client: &Client, local: &LocalList, request: &InspectList) -> Result<ListView> {
    let Some(reference) = request.second.as_deref() else {
        if !request.verbose {
            let bytes = render(&local.entries, Format::for_entries(&local.entries), &Default::default())?;
            return Ok(ListView::Document(bytes));
        }
        let mut out = Vec::new();
        for entry in &local.entries {
            out.push(verbose_entry(client, entry).await?);
        }
        return Ok(ListView::Verbose(Value::Array(out)));
    };
    let wanted = reference.parse::<Location>()?;
    let entry = local
        .entries
        .iter()
        .find(|e| match &wanted {
            Location::Registry(r) if r.digest.is_some() => r.digest.as_ref() == Some(e.digest()),
            _ => e.source.as_ref().is_some_and(|s| s.same_place(&wanted)),
        })
        .ok_or_else(|| not_in_list(reference, &request.first, local.entries.iter().map(|e| e.digest().to_string())))?;
    match request.verbose {
        true => Ok(ListView::Verbose(verbose_entry(client, entry).await?)),
        false => Ok(ListView::Document(child_manifest(client, entry).await?.bytes)),
    }
}

/// What the registry (or a layout) holds, or one entry of its list.
async fn inspect_remote(client: &Client, request: &InspectList) -> Result<ListView> {
    let first = &request.first;
    let location: Location = first.parse()?;
    let source = crate::source::open_async(&location, client).await?;
    let manifest = source.root().await?;
    if request.second.is_none() && !request.verbose {
        return Ok(ListView::Document(manifest.bytes));
    }
    let children = match (request.second.as_deref(), manifest.media_type.is_index()) {
        (Some(reference), false) => {
            return Err(Error::refused(format!(
                "{first} is a single image, not a list; inspect {reference} on its own"
            )))
        }
        (Some(reference), true) => {
            // LIST REF: the entry REF names in the list the registry holds.
            let wanted = match reference.parse::<Location>()? {
                Location::Registry(Reference { digest: Some(digest), .. }) => digest,
                other => crate::source::open_async(&other, client).await?.root().await?.digest,
            };
            let index = manifest.index(first)?;
            let found = index.manifests.iter().find(|d| d.digest == wanted).cloned();
            vec![found
                .ok_or_else(|| not_in_list(reference, first, index.manifests.iter().map(|d| d.digest.to_string())))?]
        }
        (None, true) => manifest.index(&location.to_string())?.manifests,
        (None, false) => vec![manifest.descriptor()],
    };
    if !request.verbose {
        return Ok(ListView::Document(source.manifest_of(&children[0]).await?.bytes));
    }
    let mut out = Vec::new();
    for descriptor in &children {
        let child = source.manifest_of(descriptor).await?;
        out.push(verbose_json(&format!("{location}@{}", descriptor.digest), descriptor, &child)?);
    }
    match request.second.is_none() && manifest.media_type.is_index() {
        true => Ok(ListView::Verbose(Value::Array(out))),
        false => Ok(ListView::Verbose(out.remove(0))),
    }
}

/// "REF is not in the list", naming what is.
fn not_in_list(reference: &str, list: &str, digests: impl Iterator<Item = String>) -> Error {
    let have: Vec<String> = digests.collect();
    Error::invalid("entry", reference, format!("it is not in the list {list}, which has: {}", have.join(", ")))
}

/// The manifest of a local list's entry, read from where the entry came from.
async fn child_manifest(client: &Client, entry: &Entry) -> Result<RawManifest> {
    let Some(place) = &entry.source else {
        return Err(Error::refused(format!(
            "the list does not say where {} lives; recreate it with `hoist manifest create`",
            entry.digest()
        )));
    };
    let source = crate::source::open_async(&place.at_digest(entry.digest()), client).await?;
    source.manifest(entry.digest()).await
}

/// docker's verbose form of a local list's entry.
async fn verbose_entry(client: &Client, entry: &Entry) -> Result<Value> {
    let child = child_manifest(client, entry).await?;
    let place = entry.source.as_ref().map(|s| s.at_digest(entry.digest()).to_string()).unwrap_or_default();
    verbose_json(&place, &entry.descriptor, &child)
}

/// docker's verbose form: the reference, the descriptor, the raw bytes and the parsed manifest.
fn verbose_json(reference: &str, descriptor: &Descriptor, child: &RawManifest) -> Result<Value> {
    let key = if child.media_type.is_docker() { "SchemaV2Manifest" } else { "OCIManifest" };
    let parsed: Value = serde_json::from_slice(&child.bytes)
        .map_err(|e| Error::Json { what: format!("manifest {}", child.digest), source: e })?;
    Ok(json!({
        "Ref": reference,
        "Descriptor": descriptor,
        "Raw": base64::engine::general_purpose::STANDARD.encode(&child.bytes),
        key: parsed,
    }))
}
