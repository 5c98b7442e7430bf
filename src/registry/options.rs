//! How hoist connects to registries, as settings: certificates, insecure registries, mirrors,
//! timeouts and Docker Hub's API host, read once (flags, `$HOIST_*` variables, docker's
//! `daemon.json`) and passed down to [`super::transport`] and [`super::tls`], which both use
//! them and neither of which this module needs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
/// Docker Hub's API host.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
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
    /// The host serving Docker Hub's API (`registry-1.docker.io`, or `$HOIST_DOCKER_HUB_HOST`).
    pub docker_hub_host: String,
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
            docker_hub_host: DOCKER_HUB_API_HOST.to_owned(),
        }
    }
}

impl TransportOptions {
    /// Adds the insecure registries named in `$HOIST_INSECURE_REGISTRIES` and in docker's
    /// `daemon_json` (`insecure-registries`), as dockerd reads them, the mirrors, the document
    /// deadline (`$HOIST_DOCUMENT_TIMEOUT`) and Docker Hub's API host
    /// (`$HOIST_DOCKER_HUB_HOST`): the environment, read once.
    pub fn with_environment(mut self, daemon_json: &Path) -> Self {
        if let Ok(host) = std::env::var(DOCKER_HUB_HOST_ENV) {
            self.docker_hub_host = host;
        }
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
        let bytes = crate::fsutil::small_file::read(daemon_json, MAX_DAEMON_JSON_BYTES).inspect_err(|e| {
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

    /// The host that serves `registry`'s API: Docker Hub's API lives at
    /// [`TransportOptions::docker_hub_host`].
    pub fn api_host(&self, registry: &str) -> String {
        match registry {
            "docker.io" | "index.docker.io" => self.docker_hub_host.clone(),
            other => other.to_owned(),
        }
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
        let options = TransportOptions::default();
        assert_eq!(options.api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(options.api_host("ghcr.io"), "ghcr.io");
    }
}
