//! The image configuration: how a container from the image runs, and which layers it has.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::config::Empty;
use crate::model::{Field, History, ImageConfig, RootFs, RunConfig};
use crate::platform::Platform;

/// The run-time settings of an image, as a user gives them (`--entrypoint`, `--env`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSettings {
    /// The program and its first arguments.
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or the program, without an entrypoint).
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` environment entries; a later entry for a key replaces an earlier one.
    pub env: Vec<String>,
    /// Working directory, an absolute path.
    pub workdir: Option<String>,
    /// User (and group): `65532`, `65532:65532`, `nonroot`.
    pub user: Option<String>,
    /// Exposed ports: `8080`, `8080/tcp`, `53/udp`.
    pub ports: Vec<String>,
    /// Volume mount points.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal that stops the container, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
}

impl ImageSettings {
    /// Checks every value, so that a build fails before it writes anything.
    pub fn validate(&self) -> Result<()> {
        merged_env(&self.env)?;
        for port in &self.ports {
            normalize_port(port)?;
        }
        if let Some(workdir) = &self.workdir {
            if !workdir.starts_with('/') {
                return Err(Error::invalid("working directory", workdir, "use an absolute path such as /app"));
            }
        }
        for volume in &self.volumes {
            if !volume.starts_with('/') {
                return Err(Error::invalid("volume", volume, "use an absolute path such as /data"));
            }
        }
        Ok(())
    }
}

/// Splits `KEY=VALUE` (labels, annotations); `what` names the flag in the error.
pub fn parse_key_value(what: &'static str, entry: &str) -> Result<(String, String)> {
    match entry.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(Error::invalid(what, entry, "expected KEY=VALUE with a non-empty KEY")),
    }
}

/// Validates environment entries and merges repeated keys (the last value wins, in the
/// position of the first).
fn merged_env(entries: &[String]) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let (key, value) = parse_key_value("env entry", entry)?;
        if key.contains(char::is_whitespace) || entry.contains('\0') {
            return Err(Error::invalid("env entry", entry, "the name may not contain spaces or NUL"));
        }
        if values.insert(key.clone(), value).is_none() {
            order.push(key);
        }
    }
    Ok(order.into_iter().map(|k| format!("{k}={}", values[&k])).collect())
}

/// `8080` → `8080/tcp`; checks the number and the protocol.
fn normalize_port(port: &str) -> Result<String> {
    let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
    let valid_number = number.parse::<u16>().is_ok_and(|n| n > 0);
    if !valid_number || !matches!(protocol, "tcp" | "udp" | "sctp") {
        return Err(Error::invalid("port", port, "expected PORT[/tcp|udp|sctp] with PORT from 1 to 65535"));
    }
    Ok(format!("{number}/{protocol}"))
}

/// The latest timestamp hoist writes: 9999-12-31T23:59:59Z, the last RFC 3339 can say.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// Checks a timestamp given as `what` (seconds since 1970) is one hoist can write.
pub fn check_timestamp(what: &'static str, seconds: u64) -> Result<u64> {
    match seconds <= MAX_TIMESTAMP {
        true => Ok(seconds),
        false => {
            Err(Error::invalid(what, seconds.to_string(), "it is after the year 9999; give seconds since 1970-01-01"))
        }
    }
}

/// The RFC 3339 form of `seconds` since the epoch, as used in `created` fields.
pub fn timestamp(seconds: u64) -> String {
    let seconds = seconds.min(MAX_TIMESTAMP);
    let at =
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds)).unwrap_or(std::time::UNIX_EPOCH);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// One layer as the config records it: its diff_id and the history line that made it.
#[derive(Clone, Debug)]
pub struct ConfigLayer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// What made the layer, for `docker history`.
    pub created_by: String,
}

/// Assembles the image configuration for `platform`.
pub fn image_config(
    platform: &Platform,
    settings: &ImageSettings,
    layers: &[ConfigLayer],
    created: &str,
) -> Result<ImageConfig> {
    let ports = settings.ports.iter().map(|p| normalize_port(p)).collect::<Result<Vec<String>>>()?;
    let set = |items: &[String]| match items.is_empty() {
        true => Field::Absent,
        false => Field::Present(items.iter().map(|item| (item.clone(), Empty {})).collect()),
    };
    let run = RunConfig {
        user: settings.user.clone().into(),
        exposed_ports: set(&ports),
        env: match settings.env.is_empty() {
            true => Field::Absent,
            false => Field::Present(merged_env(&settings.env)?),
        },
        entrypoint: settings.entrypoint.clone().into(),
        cmd: settings.cmd.clone().into(),
        volumes: set(&settings.volumes),
        working_dir: settings.workdir.clone().into(),
        labels: match settings.labels.is_empty() {
            true => Field::Absent,
            false => Field::Present(settings.labels.clone()),
        },
        stop_signal: settings.stop_signal.clone().into(),
        extra: Default::default(),
    };
    let history = layers
        .iter()
        .map(|l| History {
            created: Field::Present(created.to_owned()),
            created_by: Field::Present(l.created_by.clone()),
            ..History::default()
        })
        .collect();
    Ok(ImageConfig {
        created: Some(created.to_owned()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(run),
        rootfs: RootFs { diff_ids: layers.iter().map(|l| l.diff_id.to_string()).collect(), ..RootFs::default() },
        history,
        ..ImageConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_validated_and_merged_by_key() {
        let env: Vec<String> = ["A=1", "B=x=y", "A=2", "EMPTY="].map(String::from).to_vec();
        assert_eq!(merged_env(&env).unwrap(), ["A=2", "B=x=y", "EMPTY="]);
        for bad in ["NOEQUALS", "=value", "BAD KEY=1"] {
            assert!(merged_env(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_are_normalized_and_checked() {
        assert_eq!(normalize_port("8080").unwrap(), "8080/tcp");
        assert_eq!(normalize_port("53/udp").unwrap(), "53/udp");
        for bad in ["0", "70000", "http", "80/icmp"] {
            assert!(normalize_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn config_carries_platform_settings_and_layers() {
        let platform: Platform = "linux/arm/v7".parse().unwrap();
        let settings = ImageSettings {
            entrypoint: Some(vec!["/app/server".into()]),
            env: vec!["PORT=8080".into()],
            ports: vec!["8080".into()],
            user: Some("65532".into()),
            ..Default::default()
        };
        let layers = [ConfigLayer { diff_id: Digest::of(b"tar"), created_by: "hoist layer dist /app/".into() }];
        let config = image_config(&platform, &settings, &layers, &timestamp(0)).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&crate::json::canonical(&config, "config").unwrap()).unwrap();
        assert_eq!(json["architecture"], "arm");
        assert_eq!(json["variant"], "v7");
        assert_eq!(json["config"]["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
        assert_eq!(json["config"]["User"], "65532");
        assert_eq!(json["rootfs"]["diff_ids"][0], Digest::of(b"tar").to_string());
        assert_eq!(json["history"].as_array().unwrap().len(), 1);
    }
}
