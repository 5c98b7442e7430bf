//! Connections to registries: which scheme, which certificates, which timeouts.
//!
//! HTTPS with certificate checks is the rule (the certificates: [`super::tls`]; the settings:
//! [`super::options`]). Loopback registries and registries the user marks insecure are
//! treated as docker treats them: HTTPS without verification of the registry's own host
//! first, then plain HTTP.

pub use super::options::{
    is_loopback, TransportOptions, DOCKER_CERTS_DIR, DOCKER_DAEMON_JSON, DOCKER_HUB_HOST_ENV, DOCUMENT_TIMEOUT_ENV,
    INSECURE_ENV, MIRRORS_ENV,
};
use super::tls::{self, Handshakes};
use crate::error::RegistryError;
use crate::fsutil::blocking;

/// A registry reached: its base URL and the HTTP client configured for it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `https://host[:port]` or `http://host[:port]`.
    pub base: String,
    /// The client, with this registry's certificates; it follows no redirect by itself
    /// ([`super::exchange`] does).
    pub http: reqwest::Client,
    /// Whether the registry is insecure by the user's configuration (`--insecure-registry`,
    /// `$HOIST_INSECURE_REGISTRIES`, daemon.json) or by docker's rule for loopback: only then
    /// may a redirect lead from HTTPS to plain HTTP.
    pub insecure: bool,
}

/// Finds how to talk to `registry`, by pinging `/v2/`.
///
/// As docker does, a loopback registry (`localhost`, `127.0.0.0/8`, `::1`) is insecure without
/// being named so: a local TLS proxy or a `kubectl port-forward` answers with a certificate
/// nobody trusts here. The rule goes by the name as given, not by what it resolves to.
pub async fn connect(registry: &str, options: &TransportOptions) -> Result<Endpoint, RegistryError> {
    let host = options.api_host(registry);
    resolve(registry, &host).await?;
    let insecure = options.is_insecure(registry) || is_loopback(registry);
    let (https, handshakes) = client(registry, options, !insecure).await?;
    let https_base = format!("https://{host}");
    let https_error = match https.get(format!("{https_base}/v2/")).timeout(options.document_timeout).send().await {
        Ok(_) => return Ok(Endpoint { base: https_base, http: https, insecure }),
        Err(e) => e,
    };
    let kind = classify(&https_error);
    // A port that speaks TLS and fails (a certificate not trusted, or ours not accepted: a
    // server that wants one may just close the connection) is not helped by plain HTTP.
    if kind == Failure::Certificate || (kind != Failure::Timeout && handshakes.certificate_seen()) {
        let detail = tls_detail(registry, options, &handshakes, &https_error);
        return Err(RegistryError::Tls { registry: registry.to_owned(), detail });
    }
    if !insecure {
        return Err(match kind {
            Failure::PlainHttp => RegistryError::PlainHttp { registry: registry.to_owned() },
            Failure::Timeout => RegistryError::Timeout { registry: registry.to_owned(), detail: chain(&https_error) },
            _ => RegistryError::Unreachable { registry: registry.to_owned(), detail: chain(&https_error) },
        });
    }
    let (plain, _) = client(registry, options, true).await?;
    let plain_base = format!("http://{host}");
    match plain.get(format!("{plain_base}/v2/")).timeout(options.document_timeout).send().await {
        Ok(_) => Ok(Endpoint { base: plain_base, http: plain, insecure }),
        Err(e) => Err(RegistryError::Unreachable {
            registry: registry.to_owned(),
            detail: format!("HTTPS: {}; HTTP: {}", chain(&https_error), chain(&e)),
        }),
    }
}

/// A TLS failure's text, with where docker keeps client certificates when the registry may
/// have wanted one: it said so, or it closed the connection after a handshake in which hoist
/// showed none.
fn tls_detail(registry: &str, options: &TransportOptions, handshakes: &Handshakes, error: &reqwest::Error) -> String {
    let text = chain(error);
    let asked = matches!(
        tls_error(error),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired | rustls::AlertDescription::BadCertificate
        ))
    );
    if asked || (!handshakes.client_certificate && classify(error) != Failure::Certificate) {
        format!(
            "{text}; if the registry wants a client certificate, put it in {} as client.cert with its client.key",
            options.certs_dir.join(registry).display()
        )
    } else {
        text
    }
}

/// Checks that `host` (`name[:port]`) resolves, so that a misspelt name fails at once with
/// its own error instead of being retried as a network failure.
async fn resolve(registry: &str, host: &str) -> Result<(), RegistryError> {
    let with_port = match host.rsplit_once(':') {
        Some((_, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
        _ => format!("{host}:443"),
    };
    let found = tokio::net::lookup_host(with_port.as_str()).await.map(|mut addresses| addresses.next().is_some());
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(RegistryError::Resolve { registry: registry.to_owned(), detail: "no addresses".into() }),
        Err(e) => Err(RegistryError::Resolve { registry: registry.to_owned(), detail: e.to_string() }),
    }
}

/// An HTTP client for `registry`: its TLS configuration ([`tls::client_config`]: CAs, client
/// certificate, and no verification of the registry's own host unless `verify`), timeouts,
/// hoist's User-Agent, and no redirects followed by reqwest: its policy keeps credentials on a
/// change of scheme, so [`super::exchange`] follows them instead. The certificate files are
/// read off the async threads.
async fn client(
    registry: &str,
    options: &TransportOptions,
    verify: bool,
) -> Result<(reqwest::Client, Handshakes), RegistryError> {
    let (owned_registry, owned_options) = (registry.to_owned(), options.clone());
    let (tls, handshakes) = blocking::run(move || tls::client_config(&owned_registry, &owned_options, verify)).await?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| RegistryError::Connect { registry: registry.to_owned(), detail: chain(&e) })?;
    Ok((client, handshakes))
}

/// Why a request failed, as far as the fix is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server's certificate is not trusted.
    Certificate,
    /// The server answered plain HTTP to a TLS handshake.
    PlainHttp,
    /// The request timed out.
    Timeout,
    /// Anything else on the way: refused, reset, unknown host.
    Network,
}

/// Classifies a transport error by its cause chain.
pub fn classify(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        return Failure::Timeout;
    }
    match tls_error(error) {
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => Failure::PlainHttp,
        Some(_) => Failure::Certificate,
        None => Failure::Network,
    }
}

/// The TLS error somewhere in `error`'s chain, looking inside I/O errors, which hide their
/// inner error from `source()`.
fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // An I/O error's source() skips the error it wraps: step into it instead.
        cause = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// Every message in an error's chain, joined, without repeats.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A transport failure as a [`RegistryError`].
pub fn transport_error(registry: &str, error: &reqwest::Error) -> RegistryError {
    let detail = chain(error);
    let registry = registry.to_owned();
    match classify(error) {
        Failure::Certificate => RegistryError::Tls { registry, detail },
        Failure::PlainHttp => RegistryError::PlainHttp { registry },
        Failure::Timeout => RegistryError::Timeout { registry, detail },
        Failure::Network => RegistryError::Connect { registry, detail },
    }
}
