//! Connections to registries: which scheme, which certificates, which timeouts.
//!
//! HTTPS with certificate checks is the rule (the certificates: [`super::tls`]). Loopback
//! registries and registries the user marks insecure are treated as docker treats them: HTTPS
//! without verification of the registry's own host first, then plain HTTP.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::RegistryError;
use super::tls::{self, Handshakes};

/// Where Docker keeps per-registry certificate authorities: `DIR/HOST[:PORT]/*.crt`.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";
/// Docker daemon settings, read for `insecure-registries`.
pub const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// The largest `daemon.json` hoist reads.
const MAX_DAEMON_JSON_BYTES: u64 = 1 << 20;
/// Environment variable listing Docker Hub mirrors (URLs), comma-separated.
pub const MIRRORS_ENV: &str = "HOIST_REGISTRY_MIRRORS";
/// Environment variable replacing Docker Hub's API host (tests, air-gapped set-ups).
pub const DOCKER_HUB_HOST_ENV: &str = "HOIST_DOCKER_HUB_HOST";
/// Environment variable setting the deadline for small documents, in seconds.
pub const DOCUMENT_TIMEOUT_ENV: &str = "HOIST_DOCUMENT_TIMEOUT";
/// Environment variable listing insecure registries, comma-separated.
pub const INSECURE_ENV: &str = "HOIST_INSECURE_REGISTRIES";

/// How hoist connects to registries.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// Extra certificate authorities (PEM files) trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Per-registry CAs, docker style.
    pub certs_dir: PathBuf,
    /// Registries (`host[:port]`, or CIDR ranges) allowed without TLS verification or over HTTP.
    pub insecure_registries: Vec<String>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response; a slow transfer that moves is never cut.
    pub read_timeout: Duration,
    /// Docker Hub mirrors (`http[s]://host[:port]`), tried in order for pulls from docker.io.
    pub mirrors: Vec<String>,
    /// Whole-request deadline for small documents (manifests, tokens, tag lists, error
    /// bodies): a server that sends them a byte at a time is cut. Blob transfers keep the
    /// stall rule instead.
    pub document_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            ca_certs: Vec::new(),
            certs_dir: PathBuf::from(DOCKER_CERTS_DIR),
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            mirrors: Vec::new(),
            document_timeout: Duration::from_secs(120),
        }
    }
}

impl TransportOptions {
    /// Adds the insecure registries named in `$HOIST_INSECURE_REGISTRIES` and in docker's
    /// `daemon_json` (`insecure-registries`), as dockerd reads them.
    pub fn with_environment(mut self, daemon_json: &Path) -> Self {
        if let Some(seconds) = std::env::var(DOCUMENT_TIMEOUT_ENV).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            self.document_timeout = Duration::from_secs(seconds.clamp(1, 86_400));
        }
        if let Ok(list) = std::env::var(INSECURE_ENV) {
            self.insecure_registries
                .extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        }
        if let Ok(list) = std::env::var(MIRRORS_ENV) {
            self.mirrors.extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        }
        // A daemon.json that cannot be read is skipped, as before; a FIFO or a device is
        // refused, not read (said at debug level).
        let bytes = crate::small_file::read(daemon_json, MAX_DAEMON_JSON_BYTES).inspect_err(|e| {
            if !e.is_missing() {
                tracing::debug!("not reading {}: {e}", daemon_json.display());
            }
        });
        if let Ok(bytes) = bytes {
            if let Ok(settings) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let list = |key: &str| -> Vec<String> {
                    let values = settings.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default();
                    values.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect()
                };
                self.insecure_registries.extend(list("insecure-registries"));
                self.mirrors.extend(list("registry-mirrors"));
            }
        }
        // A mirror given as http:// is plain HTTP by the user's own word.
        for mirror in &self.mirrors {
            if let Some(host) = mirror.strip_prefix("http://") {
                self.insecure_registries.push(host.trim_end_matches('/').to_owned());
            }
        }
        self
    }

    /// The mirror hosts (`host[:port]`) to try for a pull from `registry`: only for Docker Hub.
    pub fn mirrors_for(&self, registry: &str) -> Vec<String> {
        if registry != "docker.io" {
            return Vec::new();
        }
        self.mirrors
            .iter()
            .map(|m| m.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// Whether `registry` was marked insecure.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        self.insecure_registries.iter().any(|entry| {
            let entry = entry.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            entry == registry || entry == host || in_cidr(entry, host)
        })
    }
}

/// Whether `registry` is on this machine: `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(registry: &str) -> bool {
    let (host, _) = split_host_port(registry);
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` → (`host`, `port`); brackets removed from IPv6 hosts.
pub(crate) fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = registry.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (registry, None),
    }
}

fn in_cidr(entry: &str, host: &str) -> bool {
    let Some((network, bits)) = entry.split_once('/') else {
        return false;
    };
    let (Ok(network), Ok(bits), Ok(ip)) = (network.parse::<IpAddr>(), bits.parse::<u32>(), host.parse::<IpAddr>())
    else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The host that serves a registry's API: Docker Hub's API lives at `registry-1.docker.io`.
pub fn api_host(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" => {
            std::env::var(DOCKER_HUB_HOST_ENV).unwrap_or_else(|_| "registry-1.docker.io".to_owned())
        }
        other => other.to_owned(),
    }
}

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
    let host = api_host(registry);
    resolve(registry, &host).await?;
    let insecure = options.is_insecure(registry) || is_loopback(registry);
    let (https, handshakes) = client(registry, options, !insecure)?;
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
    let (plain, _) = client(registry, options, true)?;
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
/// change of scheme, so [`super::exchange`] follows them instead.
fn client(
    registry: &str,
    options: &TransportOptions,
    verify: bool,
) -> Result<(reqwest::Client, Handshakes), RegistryError> {
    let (tls, handshakes) = tls::client_config(registry, options, verify)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_registries_are_recognised() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
        let options = TransportOptions {
            insecure_registries: vec!["reg.lan:5000".into(), "10.1.0.0/16".into(), "http://other.lan".into()],
            ..Default::default()
        };
        assert!(options.is_insecure("reg.lan:5000"));
        assert!(!options.is_insecure("reg.lan:6000"));
        assert!(options.is_insecure("10.1.200.3:5000"));
        assert!(!options.is_insecure("10.2.0.1:5000"));
        assert!(options.is_insecure("other.lan"));
    }

    #[test]
    fn insecure_registries_come_from_daemon_json() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = dir.path().join("daemon.json");
        std::fs::write(&daemon, r#"{"insecure-registries": ["lan.example:5000"]}"#).unwrap();
        let options = TransportOptions::default().with_environment(&daemon);
        assert!(options.is_insecure("lan.example:5000"));
    }

    #[test]
    fn docker_hub_is_served_by_registry_1() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }
}
