//! Deleting from a registry. The distribution API deletes manifests by digest: every tag that
//! names the manifest goes with it. Registries may refuse deletes altogether (distribution
//! answers 405 unless `storage.delete.enabled` is set).

use reqwest::StatusCode;

use super::{api_url, status_error, Client};
use crate::digest::Digest;
use crate::error::Result;

/// The token scope to delete from a repository.
pub fn delete_scope(repository: &str) -> String {
    format!("repository:{repository}:delete")
}

impl Client {
    /// Deletes the manifest `digest` from `repository`; `false` when it was not there.
    pub async fn delete_manifest(&self, registry: &str, repository: &str, digest: &Digest) -> Result<bool> {
        let what = format!("manifest {registry}/{repository}@{digest}");
        self.idempotent(&what, || async {
            let endpoint = self.endpoint(registry).await?;
            let url = api_url(&endpoint.base, repository, &["manifests", &digest.to_string()])?;
            let response = self.send(registry, &[delete_scope(repository)], |http, _| http.delete(url.clone())).await?;
            match response.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(status_error(registry, &what, "DELETE manifest", response).await.into()),
            }
        })
        .await
    }
}
