//! OCI 1.1 artifacts that refer to an image: `hoist attach`, `hoist referrers`, and the
//! referrers step of `hoist copy --referrers`.

use crate::digest::{Algorithm, Digest};
use crate::error::Result;
use crate::location::Location;
use crate::model::Descriptor;
use crate::referrers::{artifact_type, Artifact, Attached, ReferrerOptions};
use crate::registry::Client;
use crate::session::Session;

/// Attaches `artifact` to the image `subject` names (a registry reference or a layout).
pub fn attach(
    session: &Session,
    subject: &Location,
    artifact: &Artifact,
    options: &ReferrerOptions,
) -> Result<Attached> {
    session.block_on(crate::referrers::attach(session.client(), subject, artifact, options))
}

/// The referrers of the image `subject` names, only those of `artifact_type` when given.
pub fn referrers(session: &Session, subject: &Location, wanted: Option<&str>) -> Result<Vec<Descriptor>> {
    let client = session.client();
    let mut found = session.block_on(async {
        let digest = subject_digest(client, subject).await?;
        Ok::<_, crate::Error>(crate::referrers::list(client, subject, &digest).await?.0)
    })?;
    if let Some(wanted) = wanted {
        found.retain(|d| artifact_type(d) == Some(wanted));
    }
    Ok(found)
}

/// The referrers step of a copy.
#[derive(Clone, Debug)]
pub struct CopyReferrers {
    /// Where the image was copied from.
    pub from: Location,
    /// Where it was copied to.
    pub to: Location,
    /// The digest of what was copied: an image, or an index whose images' referrers go too.
    pub root: Digest,
    /// How the source was named (for messages).
    pub name: String,
    /// How referrers are written.
    pub options: ReferrerOptions,
}

/// Copies the referrers of the copied image (and of each image of a copied index); returns how
/// many were copied.
pub fn copy_referrers(session: &Session, request: &CopyReferrers) -> Result<usize> {
    let client = session.client();
    session.block_on(async {
        let mut subjects = vec![request.root.clone()];
        if let Ok(root) = crate::source::open_async(&request.from, client).await?.manifest(&request.root).await {
            if root.media_type.is_index() {
                subjects.extend(root.index(&request.name)?.manifests.into_iter().map(|d| d.digest));
            }
        }
        crate::referrers::copy(client, &request.from, &request.to, &subjects, &request.options).await
    })
}

/// The (sha256) digest of the image `location` names: a sha384 or sha512 pin is read (and so
/// checked) for it.
async fn subject_digest(client: &Client, location: &Location) -> Result<Digest> {
    if let Location::Registry(reference) = location {
        if let Some(digest) = reference.digest.as_ref().filter(|d| d.algorithm() == Algorithm::Sha256) {
            return Ok(digest.clone());
        }
    }
    Ok(crate::source::open_async(location, client).await?.root().await?.digest)
}
