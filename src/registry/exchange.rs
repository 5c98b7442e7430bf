//! The one place a request goes out, redirects included.
//!
//! reqwest follows no redirect by itself here: its policy compares host and port, not scheme,
//! and cannot change headers. Each hop is checked instead: credentials go only to the origin
//! they belong to (scheme, host and port: the registry's, or the token realm's); HTTPS is
//! never left for plain HTTP unless the registry is insecure by the user's configuration (or
//! loopback, as docker treats it); a request body goes again only to the origin it was sent
//! to; and a loop, or a chain longer than [`MAX_REDIRECTS`], stops at once. A document's
//! deadline covers every hop and the reading of its body. The only request sent elsewhere is
//! the ping that finds how to reach a registry ([`super::transport::connect`]): it carries no
//! credential, follows nothing, and has the document deadline of its own.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Request, Response, ResponseBuilderExt as _, StatusCode, Url};

use super::transport::Endpoint;
use crate::error::registry::RegistryError;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// An `Authorization` header value and the one origin it may go to.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// `Basic …` or `Bearer …`.
    pub header: &'a Secret,
    /// A URL on the origin (scheme, host and port) the header belongs to.
    pub home: &'a Url,
}

/// How long a request may take.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// The end of the whole request, for a document.
    at: Option<Instant>,
    /// The document deadline; for a transfer, the time its error answer's body is read in.
    limit: Duration,
}

impl Deadline {
    /// A document (manifest, index, token, listing, error body): the whole request, every
    /// redirect and the reading of the body, ends within `limit` from now.
    pub fn document(limit: Duration) -> Deadline {
        Deadline { at: Instant::now().checked_add(limit), limit }
    }

    /// A blob transfer: no whole-request deadline (the stall rules cut it instead), but an
    /// error answer's body, a document, is read within `limit`, and so is the head of the
    /// answer to a request without a body (a blob GET).
    pub fn transfer(limit: Duration) -> Deadline {
        Deadline { at: None, limit }
    }

    /// The time left, or the timeout error when none is.
    fn remaining(&self, registry: &str) -> Result<Option<Duration>> {
        let Some(at) = self.at else { return Ok(None) };
        match at.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) {
            Some(left) => Ok(Some(left)),
            None => Err(self.expired(registry).into()),
        }
    }

    fn expired(&self, registry: &str) -> RegistryError {
        RegistryError::Timeout {
            registry: registry.to_owned(),
            detail: format!(
                "no complete answer within {} s, the document deadline (${})",
                self.limit.as_secs(),
                super::transport::DOCUMENT_TIMEOUT_ENV
            ),
        }
    }
}

/// Sends `request` to `registry`'s `endpoint` and follows its redirects under the rules above;
/// `credentials` go on every hop to their own origin and on no other.
pub async fn send(
    registry: &str,
    endpoint: &Endpoint,
    mut request: Request,
    credentials: Option<Credentials<'_>>,
    deadline: Deadline,
) -> Result<Response> {
    let mut visited = vec![request.url().clone()];
    loop {
        authorize(registry, &mut request, credentials)?;
        *request.timeout_mut() = deadline.remaining(registry)?;
        let again = Hop { method: request.method().clone(), url: request.url().clone(), request: request.try_clone() };
        let response = execute(registry, endpoint, request, deadline).await?;
        let Some(to) = redirect_target(&response, &again.url) else {
            return settle(registry, response, deadline).await;
        };
        if again.url.scheme() == "https" && to.scheme() == "http" && !endpoint.insecure {
            return Err(RegistryError::InsecureRedirect {
                registry: registry.to_owned(),
                from: shown(&again.url),
                to: shown(&to),
            }
            .into());
        }
        if visited.contains(&to) || visited.len() > MAX_REDIRECTS {
            return Err(RegistryError::RedirectLoop {
                registry: registry.to_owned(),
                url: shown(&to),
                limit: MAX_REDIRECTS,
            }
            .into());
        }
        match again.next(response.status(), &to) {
            Some(next) => request = next,
            None => return settle(registry, response, deadline).await,
        }
        tracing::debug!("{registry}: redirected to {}", shown(&to));
        visited.push(to);
    }
}

/// Sends one request. A body-less transfer (a blob GET) gets its answer's head within the
/// document deadline too; an upload's wait is for the stall rules and the read timeout.
async fn execute(registry: &str, endpoint: &Endpoint, request: Request, deadline: Deadline) -> Result<Response> {
    let head_deadline = (deadline.at.is_none() && request.body().is_none()).then_some(deadline.limit);
    let sending = endpoint.http.execute(request);
    let sent = match head_deadline {
        Some(limit) => tokio::time::timeout(limit, sending).await.map_err(|_| deadline.expired(registry))?,
        None => sending.await,
    };
    let response = sent.map_err(|e| {
        crate::blob::BodyError::find(&e).unwrap_or_else(|| super::transport::transport_error(registry, &e).into())
    })?;
    if let Some(remaining) = response.headers().get("ratelimit-remaining").and_then(|v| v.to_str().ok()) {
        tracing::info!("{registry}: pull limit remaining {remaining}");
    }
    Ok(response)
}

/// What is needed to send a request again after a redirect.
struct Hop {
    method: Method,
    url: Url,
    /// A copy of the request; `None` when its body is a stream, which goes only once.
    request: Option<Request>,
}

impl Hop {
    /// The request to send to `to` after a redirect with `status`: GET without a body after
    /// 303, and after 301 or 302 of a POST (as browsers and reqwest do); else the same
    /// request, whose body goes again only to the origin it was meant for. `None` when it
    /// cannot be sent again (the redirect answer is then the answer).
    fn next(self, status: StatusCode, to: &Url) -> Option<Request> {
        let mut request = self.request?;
        let to_get = status == StatusCode::SEE_OTHER && self.method != Method::HEAD
            || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && self.method == Method::POST;
        if to_get {
            *request.method_mut() = Method::GET;
            *request.body_mut() = None;
            request.headers_mut().remove(CONTENT_TYPE);
            request.headers_mut().remove(CONTENT_LENGTH);
        } else if request.body().is_some() && to.origin() != self.url.origin() {
            tracing::info!("not sending a request body again to {}", to.origin().ascii_serialization());
            return None;
        }
        *request.url_mut() = to.clone();
        Some(request)
    }
}

/// Puts the credentials on `request` when it goes to their origin; takes any other
/// `Authorization` off.
fn authorize(registry: &str, request: &mut Request, credentials: Option<Credentials<'_>>) -> Result<()> {
    request.headers_mut().remove(AUTHORIZATION);
    let Some(credentials) = credentials else { return Ok(()) };
    if request.url().origin() != credentials.home.origin() {
        tracing::info!("{registry}: not sending credentials to {}", request.url().origin().ascii_serialization());
        return Ok(());
    }
    let mut value = HeaderValue::from_str(credentials.header.expose()).map_err(|_| RegistryError::Unauthorized {
        registry: registry.to_owned(),
        scope: String::new(),
        message: "the stored credential cannot go in an HTTP header".into(),
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// Where a redirect answer points, resolved against the URL asked for; `None` when the answer
/// is no redirect or its `Location` is no http(s) URL.
fn redirect_target(response: &Response, from: &Url) -> Option<Url> {
    let redirect = matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !redirect {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let mut to = from.join(location).ok()?;
    to.set_fragment(None);
    matches!(to.scheme(), "http" | "https").then_some(to)
}

/// A URL for messages: without its query, where presigned storage URLs carry signatures.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    crate::text::printable(url.as_str())
}

/// The final answer. A transfer's error answer has its body (a document) read here, within
/// the document deadline; a document's body is read by the caller within its own.
async fn settle(registry: &str, response: Response, deadline: Deadline) -> Result<Response> {
    if deadline.at.is_some() || response.status().is_success() {
        return Ok(response);
    }
    let (status, version, headers) = (response.status(), response.version(), response.headers().clone());
    let url = response.url().clone();
    let body = tokio::time::timeout(deadline.limit, body_prefix(response, MAX_ERROR_BODY))
        .await
        .map_err(|_| Error::from(deadline.expired(registry)))?;
    // The URL goes with it: whether a 401 came from the registry's own origin is decided by it.
    let mut answer = http::Response::builder()
        .url(url.clone())
        .body(body)
        .map_err(|e| Error::invalid("registry answer", shown(&url), e.to_string()))?;
    *answer.status_mut() = status;
    *answer.version_mut() = version;
    *answer.headers_mut() = headers;
    Ok(Response::from(answer))
}

/// Error bodies are read up to this many bytes; the rest is left unread.
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// At most `limit` bytes of a response's body (an error body: what is beyond is not needed).
pub async fn body_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            _ => break,
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(method: Method, url: &str, body: Option<&'static str>) -> Hop {
        let url = Url::parse(url).unwrap();
        let mut request = Request::new(method.clone(), url.clone());
        *request.body_mut() = body.map(reqwest::Body::from);
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        Hop { method, url, request: Some(request) }
    }

    #[test]
    fn a_body_goes_again_only_to_its_own_origin() {
        let same = Url::parse("https://auth.example/token2").unwrap();
        let next = hop(Method::POST, "https://auth.example/token", Some("refresh_token=x"))
            .next(StatusCode::TEMPORARY_REDIRECT, &same)
            .unwrap();
        assert_eq!((next.method(), next.url()), (&Method::POST, &same));
        assert!(next.body().is_some());
        for other in ["http://auth.example/token", "https://elsewhere.example/token", "https://auth.example:444/"] {
            let other = Url::parse(other).unwrap();
            let hop = hop(Method::POST, "https://auth.example/token", Some("refresh_token=x"));
            assert!(hop.next(StatusCode::PERMANENT_REDIRECT, &other).is_none(), "{other}");
        }
    }

    #[test]
    fn see_other_and_a_moved_post_become_a_get_without_body() {
        let to = Url::parse("https://elsewhere.example/x").unwrap();
        for (method, status) in [
            (Method::POST, StatusCode::SEE_OTHER),
            (Method::PUT, StatusCode::SEE_OTHER),
            (Method::POST, StatusCode::FOUND),
            (Method::POST, StatusCode::MOVED_PERMANENTLY),
        ] {
            let next = hop(method.clone(), "https://r.example/a", Some("x")).next(status, &to).unwrap();
            assert_eq!(next.method(), Method::GET, "{method} {status}");
            assert!(next.body().is_none() && next.headers().get(CONTENT_TYPE).is_none(), "{method} {status}");
        }
        let head = hop(Method::HEAD, "https://r.example/a", None).next(StatusCode::SEE_OTHER, &to).unwrap();
        assert_eq!(head.method(), Method::HEAD);
        let streamed = Hop { method: Method::PUT, url: to.clone(), request: None };
        assert!(streamed.next(StatusCode::TEMPORARY_REDIRECT, &to).is_none(), "a stream goes once");
    }

    #[test]
    fn credentials_go_only_to_their_origin() {
        let home = Url::parse("https://r.example:5000/").unwrap();
        let header = Secret::new("Basic YWxpY2U6cHc=");
        let credentials = Some(Credentials { header: &header, home: &home });
        for (url, sent) in [
            ("https://r.example:5000/v2/a/blobs/x", true),
            ("http://r.example:5000/v2/a/blobs/x", false),
            ("https://r.example/v2/a/blobs/x", false),
            ("https://storage.example:5000/x", false),
        ] {
            let mut request = Request::new(Method::GET, Url::parse(url).unwrap());
            request.headers_mut().insert(AUTHORIZATION, HeaderValue::from_static("Bearer stale"));
            authorize("r", &mut request, credentials).unwrap();
            let value = request.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(value.as_deref(), sent.then_some("Basic YWxpY2U6cHc="), "{url}");
        }
    }

    #[test]
    fn messages_show_urls_without_their_query() {
        let url = Url::parse("https://s3.example/blob?X-Amz-Signature=secret").unwrap();
        assert_eq!(shown(&url), "https://s3.example/blob");
    }
}
