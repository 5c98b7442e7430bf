//! Indexes in a registry, one step each: `hoist index create/add/rm` (read, merge, write,
//! settle and read back, retried against other writers) and the push of a local list.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::publish::{amend, Change, IndexOptions, Target};
use crate::index::store::{ListStore, LocalList};
use crate::index::{Entry, MergeOptions};
use crate::location::Location;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::Client;
use crate::session::Session;

/// A change to the index a tag names.
#[derive(Clone, Debug)]
pub struct IndexUpdate {
    /// The index: a tag in a repository.
    pub target: Target,
    /// More tags in the target's repository for the index written.
    pub extra_tags: Vec<String>,
    /// Images or indexes to add (an index contributes its images).
    pub add: Vec<Location>,
    /// Platforms to remove, with their attestations.
    pub remove: Vec<Platform>,
    /// Merging, format, annotations, settling, creating.
    pub options: IndexOptions,
}

/// Amends (or creates) the index `update.target` names and sets its extra tags; returns the
/// digest written.
pub fn update_index(session: &Session, update: &IndexUpdate) -> Result<Digest> {
    let client = session.client();
    session.block_on(async {
        let change = Change { add: resolve_all(client, &update.add).await?, remove: update.remove.clone() };
        let digest = amend(client, &update.target, change, &update.options).await?;
        let reference = Reference {
            registry: update.target.registry.clone(),
            repository: update.target.repository.clone(),
            tag: None,
            digest: None,
        };
        crate::ops::tag::retag(client, &reference, &digest, &update.extra_tags).await?;
        Ok(digest)
    })
}

/// The entries of every location, in order.
pub(crate) async fn resolve_all(client: &Client, locations: &[Location]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for location in locations {
        entries.extend(crate::index::resolve::resolve(client, location).await?);
    }
    Ok(entries)
}

/// The push of a local list.
#[derive(Clone, Debug)]
pub struct PushList {
    /// The list (from [`load_list`](crate::ops::manifest::load_list)).
    pub list: LocalList,
    /// Remove the local list from the store after the push.
    pub purge: bool,
    /// Format and settling (entries are kept as listed, the index created when missing).
    pub options: IndexOptions,
}

/// Pushes a local list: children into its repository, the index by digest, then the tag;
/// returns the index's digest.
pub fn push_list(session: &Session, store: &ListStore, request: &PushList) -> Result<Digest> {
    let target = Target::of(&Reference::parse(&request.list.name)?);
    let mut options = request.options.clone();
    options.create = true;
    options.merge = MergeOptions { keep_duplicates: true, no_attestations: false };
    let change = Change { add: request.list.entries.clone(), remove: vec![] };
    let digest = session.block_on(amend(session.client(), &target, change, &options))?;
    if request.purge {
        store.remove(&request.list.name)?;
    }
    Ok(digest)
}

/// An index target from a reference: a tag, never a digest.
pub fn target_of(text: &str) -> Result<Target> {
    let reference = Reference::parse(text)?;
    if reference.digest.is_some() {
        return Err(Error::invalid("index target", text, "an index goes to a tag: registry/repository:tag"));
    }
    Ok(Target::of(&reference))
}
