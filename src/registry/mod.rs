//! The registry client: OCI Distribution API v1.1 over reqwest and tokio.
//!
//! [`Client`] finds how to reach each registry ([`transport`]), answers its authentication
//! challenges ([`auth`]) with the user's credentials, caches the resulting tokens per scope, and
//! turns every failure into a [`RegistryError`] that names the fix. Reading manifests, blobs and
//! lists lives in [`read`].

pub mod auth;
pub mod delete;
pub mod exchange;
pub mod options;
pub mod read;
pub mod referrers;
pub mod retry;
pub mod tls;
pub mod transport;
pub mod write;

use crate::cancel::Cancel;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{RequestBuilder, Response, StatusCode, Url};
use tokio::sync::Mutex;

use self::auth::{basic, fetch_token, Authorization, Challenge, TokenRequest};
use self::error::{Envelope, ErrorCode};
pub use self::exchange::{body_prefix, MAX_ERROR_BODY};
use self::exchange::{Credentials, Deadline};
pub use self::retry::RetryPolicy;
pub use self::transport::transport_error;
use self::transport::{connect, Endpoint, TransportOptions};
use crate::credentials::{Credential, CredentialStore};
pub use crate::error::registry as error;
pub use crate::error::RegistryError;
use crate::error::Result;

/// The token scope to read a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The token scope to list a registry's repositories.
pub const CATALOG_SCOPE: &str = "registry:catalog:*";

/// A client for any number of registries.
pub struct Client {
    options: TransportOptions,
    credentials: CredentialStore,
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// Authorization per registry and scope list.
    authorizations: Mutex<HashMap<(String, String), Authorization>>,
    retry: RetryPolicy,
    retries: AtomicU32,
    places: Option<crate::places::BlobPlaces>,
    uploads: Option<crate::resume::Sessions>,
    cancel: Cancel,
}

impl Client {
    /// A client with these transport options and credentials.
    pub fn new(options: TransportOptions, credentials: CredentialStore) -> Client {
        Client {
            options,
            credentials,
            endpoints: Mutex::new(HashMap::new()),
            authorizations: Mutex::new(HashMap::new()),
            retry: RetryPolicy::default(),
            retries: AtomicU32::new(0),
            places: None,
            uploads: None,
            cancel: Cancel::default(),
        }
    }

    /// The same client stopping with `cancel`: once it is thrown, no request starts and one
    /// in flight runs at most until its grace is over.
    pub fn with_cancel(mut self, cancel: Cancel) -> Client {
        self.cancel = cancel;
        self
    }

    /// The cancel switch the client obeys.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The same client remembering where blobs are in `places`, for automatic mounts.
    pub fn with_places(mut self, places: crate::places::BlobPlaces) -> Client {
        self.places = Some(places);
        self
    }

    /// Where blobs were seen, when the client keeps that record.
    pub fn places(&self) -> Option<&crate::places::BlobPlaces> {
        self.places.as_ref()
    }

    /// The same client remembering its upload sessions in `uploads`, so that a run that
    /// follows a kill continues them.
    pub fn with_upload_sessions(mut self, uploads: crate::resume::Sessions) -> Client {
        self.uploads = Some(uploads);
        self
    }

    /// Where upload sessions are remembered across runs, when the client keeps them.
    pub fn upload_sessions(&self) -> Option<&crate::resume::Sessions> {
        self.uploads.as_ref()
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Retries made so far.
    pub fn retry_count(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs an idempotent request (GET, HEAD, a PUT by digest) under the retry policy: the one
    /// place such requests are retried.
    pub async fn idempotent<T, F, Fut>(&self, what: &str, operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retry.run(what, &self.retries, operation).await
    }

    /// The credential store in use.
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// How to reach `registry`, found once per client.
    pub async fn endpoint(&self, registry: &str) -> Result<Endpoint> {
        let mut endpoints = self.endpoints.lock().await;
        if let Some(endpoint) = endpoints.get(registry) {
            return Ok(endpoint.clone());
        }
        let endpoint = connect(registry, &self.options).await?;
        tracing::debug!("{registry} is served at {}", endpoint.base);
        endpoints.insert(registry.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    /// Sends the request `make` builds (from the client and base URL), authenticated for
    /// `scopes`, as a document: the whole request, its redirects and the reading of its body
    /// end within the document deadline (`$HOIST_DOCUMENT_TIMEOUT`). Every request is one,
    /// except the few that move a blob ([`Client::send_transfer`]).
    pub async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        make: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        self.exchange(registry, scopes, Deadline::document(self.options.document_timeout), make).await
    }

    /// Sends a request that moves a blob (a blob GET, an upload's PATCH or PUT): no
    /// whole-request deadline, since a large blob takes as long as it takes; the stall rules
    /// cut it instead. An error answer's body, and a blob GET's answer head, still come within
    /// the document deadline.
    pub async fn send_transfer(
        &self,
        registry: &str,
        scopes: &[String],
        make: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        self.exchange(registry, scopes, Deadline::transfer(self.options.document_timeout), make).await
    }

    /// Sends a request, authenticated for `scopes`. On 401 from the registry's own origin it
    /// answers the challenge once and sends again; a 401 from elsewhere (where a redirect led)
    /// is refused without looking up any credential.
    async fn exchange(
        &self,
        registry: &str,
        scopes: &[String],
        deadline: Deadline,
        make: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        self.cancel.check()?;
        self.cancel.within_grace(self.authenticated(registry, scopes, deadline, make)).await
    }

    /// [`Client::exchange`] without the cancel switch.
    async fn authenticated(
        &self,
        registry: &str,
        scopes: &[String],
        deadline: Deadline,
        make: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        let endpoint = self.endpoint(registry).await?;
        let key = (registry.to_owned(), scopes.join(" "));
        let cached = {
            let authorizations = self.authorizations.lock().await;
            authorizations.get(&key).filter(|a| a.is_fresh()).cloned()
        };
        let response = self.attempt(registry, &endpoint, &make, cached.as_ref(), deadline).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if !same_origin(response.url(), &endpoint.base) {
            let origin = crate::text::printable(&response.url().origin().ascii_serialization());
            return Err(RegistryError::ForeignChallenge { registry: registry.to_owned(), origin }.into());
        }
        let authorization = self.answer(registry, &endpoint, scopes, &response).await?;
        self.authorizations.lock().await.insert(key, authorization.clone());
        let retried = self.attempt(registry, &endpoint, &make, Some(&authorization), deadline).await?;
        if retried.status() == StatusCode::UNAUTHORIZED {
            let body = body_prefix(retried, MAX_ERROR_BODY).await;
            return Err(RegistryError::Unauthorized {
                registry: registry.to_owned(),
                scope: scopes.join(" "),
                message: Envelope::parse(&body).message("401 Unauthorized"),
            }
            .into());
        }
        Ok(retried)
    }

    /// One request with `authorization`, which goes only to the registry's own origin.
    async fn attempt(
        &self,
        registry: &str,
        endpoint: &Endpoint,
        make: &impl Fn(&reqwest::Client, &str) -> RequestBuilder,
        authorization: Option<&Authorization>,
        deadline: Deadline,
    ) -> Result<Response> {
        let request = make(&endpoint.http, &endpoint.base).build().map_err(|e| transport_error(registry, &e))?;
        let home = Url::parse(&endpoint.base)
            .map_err(|e| crate::Error::invalid("registry URL", &endpoint.base, e.to_string()))?;
        let credentials = authorization.map(|a| Credentials { header: &a.header, home: &home });
        exchange::send(registry, endpoint, request, credentials, deadline).await
    }

    /// Answers a 401's challenge: Basic with the stored credential, or a Bearer token (a
    /// document, under the document deadline even when a blob transfer asked for it).
    async fn answer(
        &self,
        registry: &str,
        endpoint: &Endpoint,
        scopes: &[String],
        response: &Response,
    ) -> Result<Authorization> {
        let challenge = response
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(Challenge::parse)
            .next();
        let credential = self.credentials.lookup(registry).await?;
        let unauthorized = |message: &str| RegistryError::Unauthorized {
            registry: registry.to_owned(),
            scope: scopes.join(" "),
            message: message.to_owned(),
        };
        match challenge {
            Some(Challenge::Bearer { realm, service }) => {
                let (realm, credential) = credential_for_realm(registry, &endpoint.base, &realm, credential)?;
                let asked = TokenRequest { realm: &realm, service: service.as_deref(), scopes };
                fetch_token(endpoint, registry, asked, credential.as_ref(), self.options.document_timeout).await
            }
            Some(Challenge::Basic) => match credential {
                Some(Credential::Basic { username, password }) => {
                    Ok(Authorization { header: basic(&username, &password), expires: None })
                }
                Some(Credential::IdentityToken(_)) => {
                    Err(unauthorized("it asks for a password, and only an identity token is stored").into())
                }
                None => Err(unauthorized("it asks for credentials and none are stored").into()),
            },
            None => Err(unauthorized("401 without a challenge hoist understands").into()),
        }
    }

    /// Checks that the stored (or given) credentials work for `registry`: what `login` does.
    pub async fn check_login(&self, registry: &str) -> Result<()> {
        let response = self.send(registry, &[], |http, base| http.get(format!("{base}/v2/"))).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(status_error(registry, "the API root /v2/", "login", response).await.into())
    }
}

/// The token realm's URL and the credential it may receive: only over HTTPS, unless the
/// registry itself is plain HTTP (by the user's choice: loopback or insecure). A realm on
/// another host is allowed (Docker Hub, GHCR and ECR use one) and said at `-v`.
fn credential_for_realm(
    registry: &str,
    base: &str,
    realm: &str,
    credential: Option<Credential>,
) -> Result<(Url, Option<Credential>)> {
    let realm_url = Url::parse(realm).map_err(|_| RegistryError::Unauthorized {
        registry: registry.to_owned(),
        scope: String::new(),
        message: format!("its token realm {:?} is not a URL", crate::text::printable(realm)),
    })?;
    let base_url = Url::parse(base).ok();
    let registry_https = base_url.as_ref().is_some_and(|b| b.scheme() == "https");
    if credential.is_some() && realm_url.scheme() != "https" && registry_https {
        return Err(RegistryError::Unauthorized {
            registry: registry.to_owned(),
            scope: String::new(),
            message: format!(
                "its token realm {} is plain HTTP; hoist sends credentials to it only over HTTPS",
                realm_url.origin().ascii_serialization()
            ),
        }
        .into());
    }
    if base_url.is_some_and(|b| b.origin() != realm_url.origin()) {
        tracing::info!("{registry}: asking {} for a token", realm_url.origin().ascii_serialization());
    }
    Ok((realm_url, credential))
}

/// Whether `url` is on the registry's own scheme, host and port (`base`): the only place its
/// credentials go.
pub fn same_origin(url: &Url, base: &str) -> bool {
    Url::parse(base).is_ok_and(|base| base.origin() == url.origin())
}

/// The URL of `/v2/<repository>/<kind>/<reference>` under `base`, each part encoded as a path
/// segment (the repository's `/` kept as separators).
pub fn api_url(base: &str, repository: &str, parts: &[&str]) -> Result<Url> {
    let mut url = Url::parse(base).map_err(|e| crate::Error::invalid("registry URL", base, e.to_string()))?;
    url.path_segments_mut()
        .map_err(|_| crate::Error::invalid("registry URL", base, "it cannot have a path"))?
        .pop_if_empty()
        .push("v2")
        .extend(repository.split('/').filter(|s| !s.is_empty()))
        .extend(parts.iter().copied());
    Ok(url)
}

/// `location` (absolute, or relative to `base`) as a URL.
pub fn resolve_url(base: &str, location: &str) -> Option<Url> {
    Url::parse(base).ok()?.join(location).ok()
}

/// A Retry-After value, in seconds or as an HTTP date, as whole seconds from now.
pub fn retry_after_seconds(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse() {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).map(|d| d.as_secs() + 1).unwrap_or(0))
}

/// An unsuccessful response as a [`RegistryError`]; `what` names the object asked for.
pub async fn status_error(registry: &str, what: &str, request: &str, response: Response) -> RegistryError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after_seconds);
    let body = body_prefix(response, MAX_ERROR_BODY).await;
    let envelope = Envelope::parse(&body);
    let message = envelope.message(&status.to_string());
    let registry = registry.to_owned();
    match (status, envelope.code()) {
        (StatusCode::UNAUTHORIZED, _) | (_, Some(ErrorCode::Unauthorized)) => {
            RegistryError::Unauthorized { registry, scope: what.to_owned(), message }
        }
        (StatusCode::FORBIDDEN, _) | (_, Some(ErrorCode::Denied)) => {
            RegistryError::Denied { registry, scope: what.to_owned(), message }
        }
        (_, Some(ErrorCode::NameUnknown)) if request.starts_with("POST") => RegistryError::NotFound {
            registry,
            what: format!(
                "{what} (create it first: some registries, ECR among them, do not create repositories on push)"
            ),
            message,
        },
        (StatusCode::NOT_FOUND, _)
        | (_, Some(ErrorCode::NameUnknown | ErrorCode::ManifestUnknown | ErrorCode::BlobUnknown)) => {
            RegistryError::NotFound { registry, what: what.to_owned(), message }
        }
        (StatusCode::TOO_MANY_REQUESTS, _) | (_, Some(ErrorCode::TooManyRequests)) => {
            RegistryError::TooManyRequests { registry, retry_after, message }
        }
        _ => RegistryError::Status { registry, status: status.as_u16(), request: request.to_owned(), message },
    }
}
