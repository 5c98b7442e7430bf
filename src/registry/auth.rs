//! The registry's authentication challenge (`WWW-Authenticate`) and the token exchange.

use std::time::{Duration, Instant};

use serde::Deserialize;

use reqwest::Url;

use super::exchange::{Credentials, Deadline};
use super::transport::Endpoint;
use crate::credentials::Credential;
use crate::error::registry::{Envelope, RegistryError};
use crate::error::Result;
use crate::secret::Secret;

/// Tokens without `expires_in` last this long (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// Service name to ask the token for.
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(params);
                let get = |key: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
                Some(Challenge::Bearer { realm: get("realm")?, service: get("service") })
            }
            _ => None,
        }
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and escaped quotes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_owned();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect::<String>().trim().to_owned();
        }
        params.push((key, value));
    }
}

/// An Authorization header value and when it stops being good.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// `Basic …` or `Bearer …`.
    pub header: Secret,
    /// When to stop using it.
    pub expires: Option<Instant>,
}

impl Authorization {
    /// Whether it may still be sent.
    pub fn is_fresh(&self) -> bool {
        self.expires.is_none_or(|at| Instant::now() < at)
    }
}

/// The `Basic` header for a user and password.
pub fn basic(username: &str, password: &Secret) -> Secret {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
    Secret::new(format!("Basic {encoded}"))
}

#[derive(Deserialize)]
struct TokenReply {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// What a token is asked for: the challenge's realm and service, and the scopes.
#[derive(Clone, Copy, Debug)]
pub struct TokenRequest<'a> {
    /// The token endpoint's URL.
    pub realm: &'a Url,
    /// The service named in the challenge.
    pub service: Option<&'a str>,
    /// The scopes wanted; none for a login check.
    pub scopes: &'a [String],
}

/// Gets a bearer token for `asked` from its realm, with `credential` (Basic to the token
/// endpoint, or the OAuth2 refresh grant for an identity token) or anonymously, sent as every
/// request is ([`super::exchange`]): the credential goes only to the realm's own origin. A
/// token is a document, whatever request asked for it (a blob transfer too): the whole
/// exchange, its body read, ends within `document_timeout`.
pub async fn fetch_token(
    endpoint: &Endpoint,
    registry: &str,
    asked: TokenRequest<'_>,
    credential: Option<&Credential>,
    document_timeout: Duration,
) -> Result<Authorization> {
    let TokenRequest { realm, scopes, .. } = asked;
    let request = token_request(&endpoint.http, asked, credential)
        .map_err(|e| super::transport::transport_error(registry, &e))?;
    let header = match credential {
        Some(Credential::Basic { username, password }) => Some(basic(username, password)),
        _ => None,
    };
    let credentials = header.as_ref().map(|header| Credentials { header, home: realm });
    let scope_text = if scopes.is_empty() { "login".to_owned() } else { scopes.join(" ") };
    let deadline = Deadline::document(document_timeout);
    let response = super::exchange::send(registry, endpoint, request, credentials, deadline).await?;
    let status = response.status();
    let what = format!("the token answer from {realm}");
    let body = super::read::read_limited(registry, &what, response, MAX_TOKEN_ANSWER).await?;
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            registry: registry.to_owned(),
            scope: scope_text,
            message: Envelope::parse(&body).message(&format!("token server answered {status}")),
        }
        .into());
    }
    if !status.is_success() {
        return Err(RegistryError::Status {
            registry: registry.to_owned(),
            status: status.as_u16(),
            request: format!("a token from {realm}"),
            message: Envelope::parse(&body).message(&crate::text::printable(&String::from_utf8_lossy(&body))),
        }
        .into());
    }
    let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| RegistryError::Status {
        registry: registry.to_owned(),
        status: status.as_u16(),
        request: format!("a token from {realm}"),
        message: format!("the answer is not a token: {e}"),
    })?;
    let token = reply.token.or(reply.access_token).filter(|t| !t.is_empty()).ok_or_else(|| RegistryError::Status {
        registry: registry.to_owned(),
        status: status.as_u16(),
        request: format!("a token from {realm}"),
        message: "the answer has neither token nor access_token".into(),
    })?;
    Ok(Authorization { header: Secret::new(format!("Bearer {token}")), expires: Some(expiry(reply.expires_in)) })
}

/// The request for a token: the OAuth2 refresh grant (a POST) for an identity token, else a
/// GET with the scopes in its query (its Basic credential is added as it is sent).
fn token_request(
    http: &reqwest::Client,
    asked: TokenRequest<'_>,
    credential: Option<&Credential>,
) -> reqwest::Result<reqwest::Request> {
    let TokenRequest { realm, service, scopes } = asked;
    match credential {
        Some(Credential::IdentityToken(token)) => {
            let mut form: Vec<(&str, &str)> =
                vec![("grant_type", "refresh_token"), ("refresh_token", token.expose()), ("client_id", "hoist")];
            if let Some(service) = service {
                form.push(("service", service));
            }
            let joined = scopes.join(" ");
            if !scopes.is_empty() {
                form.push(("scope", &joined));
            }
            http.post(realm.clone()).form(&form).build()
        }
        other => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(service) = service {
                query.push(("service", service));
            }
            query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
            if let Some(Credential::Basic { username, .. }) = other {
                query.push(("account", username));
            }
            http.get(realm.clone()).query(&query).build()
        }
    }
}

/// The longest a token is kept, whatever the server says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The most of a token answer hoist reads.
const MAX_TOKEN_ANSWER: u64 = 1 << 20;

/// When a token given for `expires_in` seconds stops being used: a little early, so it never
/// expires in flight; any number from the server is safe (capped, no overflow).
fn expiry(expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_LIFETIME).min(MAX_TOKEN_LIFETIME);
    let margin = (lifetime / 10).min(Duration::from_secs(10));
    let now = Instant::now();
    now.checked_add(lifetime - margin).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_challenge_parses_without_panic(header in ".*") {
            let _ = Challenge::parse(&header);
        }

        #[test]
        fn any_token_answer_parses_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), seconds in proptest::num::u64::ANY) {
            let _ = serde_json::from_slice::<TokenReply>(&body);
            let _ = expiry(Some(seconds));
        }
    }

    #[test]
    fn any_token_lifetime_is_safe() {
        for seconds in [None, Some(0), Some(1), Some(300), Some(u64::MAX)] {
            let at = expiry(seconds);
            assert!(at <= Instant::now() + MAX_TOKEN_LIFETIME, "{seconds:?}");
        }
    }

    #[test]
    fn challenges_parse_with_quotes_and_commas() {
        let header = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into())
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Negotiate"), None);
        let params = parse_params(r#"a="x\"y", b=plain , c="1,2""#);
        assert_eq!(params, [("a".into(), "x\"y".into()), ("b".into(), "plain".into()), ("c".into(), "1,2".into())]);
    }

    #[test]
    fn basic_header_is_base64_and_redacted_in_debug() {
        let header = basic("alice", &Secret::new("pw"));
        assert_eq!(header.expose(), "Basic YWxpY2U6cHc=");
        assert_eq!(format!("{header:?}"), "<redacted>");
    }
}
