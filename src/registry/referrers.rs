//! The referrers API of OCI distribution 1.1: `GET /v2/<name>/referrers/<digest>`, the index of
//! the manifests whose `subject` is that digest. Registries without it (distribution 2.8)
//! answer 404; callers then use the fallback tag (see `crate::referrers`).

use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use super::{api_url, pull_scope, status_error, Client};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::media_type::OCI_INDEX;
use crate::model::{ImageIndex, MAX_MANIFEST_BYTES};

impl Client {
    /// The referrers index of `subject` in `repository`; `None` when the registry has no
    /// referrers API (it answers 404).
    pub async fn get_referrers(
        &self,
        registry: &str,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<ImageIndex>> {
        let what = format!("referrers of {registry}/{repository}@{subject}");
        self.idempotent(&what, || async {
            let endpoint = self.endpoint(registry).await?;
            let url = api_url(&endpoint.base, repository, &["referrers", &subject.to_string()])?;
            let response = self
                .send(registry, &[pull_scope(repository)], |http, _| http.get(url.clone()).header(ACCEPT, OCI_INDEX))
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(status_error(registry, &what, "GET referrers", response).await.into());
            }
            let bytes = super::read::read_limited(registry, &what, response, MAX_MANIFEST_BYTES).await?;
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: what.clone(), source })?;
            Ok(Some(index))
        })
        .await
    }
}
