//! Registry credentials: from flags or environment, else from docker's `config.json` with
//! docker's precedence (`credHelpers[host]`, then `credsStore`, then `auths`), and storing
//! them on `hoist login` as docker does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic::{self, Mode};
use crate::fsutil::blocking;
use crate::secret::Secret;

/// The key docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `config.json` hoist reads.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// What hoist presents to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or access token used as a password).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged for access tokens.
    IdentityToken(Secret),
}

/// Where credentials come from, first found wins.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    explicit: Option<Credential>,
    config_path: Option<PathBuf>,
}

impl CredentialStore {
    /// Credentials from `explicit` (`--creds`) or `$HOIST_USERNAME`/`$HOIST_PASSWORD`, then
    /// docker's config: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn from_environment(explicit: Option<Credential>) -> CredentialStore {
        let from_env = match (std::env::var("HOIST_USERNAME"), std::env::var("HOIST_PASSWORD")) {
            (Ok(username), Ok(password)) => Some(Credential::Basic { username, password: Secret::new(password) }),
            _ => None,
        };
        CredentialStore { explicit: explicit.or(from_env), config_path: docker_config_path() }
    }

    /// The same store with `explicit` tried first (`login` checks new credentials this way).
    pub fn with_explicit(self, explicit: Credential) -> CredentialStore {
        CredentialStore { explicit: Some(explicit), ..self }
    }

    /// A store reading only the docker config at `path` (for tests and tools).
    pub fn with_config(path: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { explicit: None, config_path: Some(path.into()) }
    }

    /// The docker config file this store reads and writes.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The credential for `registry` (`host[:port]`), if any.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(explicit) = &self.explicit {
            return Ok(Some(explicit.clone()));
        }
        let Some(path) = &self.config_path else {
            return Ok(None);
        };
        let config = read_config(path).await?;
        let key = config_key(registry);
        if let Some(helper) = helper_for(&config, &key, path)? {
            return helper_get(&helper, &key).await;
        }
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.iter().find(|(k, _)| normalize_key(k) == normalize_key(&key));
        let Some((_, entry)) = entry else {
            return Ok(None);
        };
        if let Some(token) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        match entry.get("auth").and_then(Value::as_str) {
            Some(auth) if !auth.is_empty() => decode_auth(path, auth).map(Some),
            _ => Ok(None),
        }
    }

    /// Stores `username`/`password` for `registry` as docker does: in the configured helper,
    /// else base64 in `auths` of `config.json` (written atomically, mode 0600).
    pub async fn store(&self, registry: &str, username: &str, password: &Secret) -> Result<PathBuf> {
        let path = self.writable_config()?;
        let mut config = read_config(&path).await?;
        let key = config_key(registry);
        if let Some(helper) = helper_for(&config, &key, &path)? {
            let request = json!({ "ServerURL": key, "Username": username, "Secret": password.expose() });
            run_helper(&helper, "store", &request.to_string()).await?;
            return Ok(path);
        }
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
        let auths = object_entry(&mut config, "auths");
        auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
        auths.insert(key, json!({ "auth": auth }));
        write_config(&path, &config).await?;
        Ok(path)
    }

    /// Removes stored credentials for `registry`. Returns whether there were any.
    pub async fn erase(&self, registry: &str) -> Result<bool> {
        let path = self.writable_config()?;
        let mut config = read_config(&path).await?;
        let key = config_key(registry);
        if let Some(helper) = helper_for(&config, &key, &path)? {
            run_helper(&helper, "erase", &key).await?;
            return Ok(true);
        }
        let auths = object_entry(&mut config, "auths");
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
        let removed = auths.len() != before;
        if removed {
            write_config(&path, &config).await?;
        }
        Ok(removed)
    }

    fn writable_config(&self) -> Result<PathBuf> {
        self.config_path
            .clone()
            .ok_or_else(|| Error::invalid("docker config", "", "no home directory; set DOCKER_CONFIG to a directory"))
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// The `config.json` key for a registry: Docker Hub's legacy URL, else `host[:port]`.
pub fn config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        other => other.to_owned(),
    }
}

/// `https://host/v1/` and `host` name the same registry.
fn normalize_key(key: &str) -> String {
    let without_scheme = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// [`read_config_file`] off the async threads.
async fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let path = path.to_owned();
    blocking::run(move || read_config_file(&path)).await
}

/// [`write_config_file`] off the async threads.
async fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    let (path, config) = (path.to_owned(), config.clone());
    blocking::run(move || write_config_file(&path, &config)).await
}

fn read_config_file(path: &Path) -> Result<Map<String, Value>> {
    let Some(bytes) = crate::fsutil::small_file::read_optional(path, MAX_CONFIG_BYTES, "docker config")? else {
        return Ok(Map::new());
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::invalid(
            "docker config",
            path.display().to_string(),
            "it is not a JSON object; fix or remove it",
        )),
    }
}

/// Writes docker's config atomically with mode 0600, in a directory created 0700. A
/// `config.json` that is a symlink (dotfiles) is written through: its target is replaced.
fn write_config_file(path: &Path, config: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let resolved = std::fs::canonicalize(path).ok().filter(|_| path.is_symlink());
    let path = resolved.as_deref().unwrap_or(path);
    let dir = atomic::parent(path);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).at("create", dir)?;
    let text = serde_json::to_string_pretty(config)
        .map_err(|source| Error::Json { what: path.display().to_string(), source })?;
    atomic::write(path, text.as_bytes(), Mode::Private)
}

fn object_entry<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let value = config.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

/// The credential helper for `key` in the config at `path`: `credHelpers[key]`, else
/// `credsStore`. A helper is a plain name, run as `docker-credential-NAME` from `PATH`: a name
/// with a `/` would run a program by its path (relative to the working directory), so it is
/// refused before anything runs.
fn helper_for(config: &Map<String, Value>, key: &str, path: &Path) -> Result<Option<String>> {
    let helpers: BTreeMap<String, String> =
        config.get("credHelpers").and_then(|h| serde_json::from_value(h.clone()).ok()).unwrap_or_default();
    let helper = helpers
        .iter()
        .find(|(k, _)| normalize_key(k) == normalize_key(key))
        .map(|(_, v)| v.clone())
        .or_else(|| config.get("credsStore").and_then(Value::as_str).map(str::to_owned))
        .filter(|h| !h.is_empty());
    match helper {
        Some(name) if name.contains('/') => Err(Error::invalid(
            "credential helper",
            name,
            format!(
                "a helper is a plain name, run as docker-credential-NAME from PATH, never a path; fix credHelpers or credsStore in {}",
                path.display()
            ),
        )),
        helper => Ok(helper),
    }
}

fn decode_auth(path: &Path, auth: &str) -> Result<Credential> {
    let bad = || {
        Error::invalid("docker config", path.display().to_string(), "an `auth` entry is not base64 of user:password")
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (username, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(Credential::Basic { username: username.to_owned(), password: Secret::new(password) })
}

async fn helper_get(helper: &str, key: &str) -> Result<Option<Credential>> {
    let output = match run_helper(helper, "get", key).await {
        Ok(output) => output,
        Err(Error::CredentialHelper { message, .. }) if message.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let reply: Value = serde_json::from_str(&output)
        .map_err(|_| Error::CredentialHelper { helper: helper.to_owned(), message: "its answer is not JSON".into() })?;
    let username = reply.get("Username").and_then(Value::as_str).unwrap_or_default();
    let secret = reply.get("Secret").and_then(Value::as_str).unwrap_or_default();
    Ok(match (username, secret) {
        (_, "") => None,
        ("<token>", token) => Some(Credential::IdentityToken(Secret::new(token))),
        (username, password) => {
            Some(Credential::Basic { username: username.to_owned(), password: Secret::new(password) })
        }
    })
}

/// Runs `docker-credential-HELPER ACTION` with `input` on stdin; returns stdout.
async fn run_helper(helper: &str, action: &str, input: &str) -> Result<String> {
    let program = format!("docker-credential-{helper}");
    let failed = |message: String| Error::CredentialHelper { helper: program.clone(), message };
    let mut child = tokio::process::Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run it ({e}); install it or remove it from the docker config")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await.map_err(|e| failed(e.to_string()))?;
    }
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let run = async {
        // Each stream is read up to the limit and no further: a helper that answers more than
        // that is refused at once, and killed when the child is dropped.
        let read = tokio::try_join!(read_bounded(out.as_mut()), read_bounded(err.as_mut()));
        let (stdout, stderr) = match read {
            Ok(both) => both,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => return Ok(None),
            Err(e) => return Err(e),
        };
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(Some((stdout, stderr, status)))
    };
    let (stdout, stderr, status) = tokio::time::timeout(HELPER_TIMEOUT, run)
        .await
        .map_err(|_| failed(format!("no answer within {} s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed(format!("it answered more than {HELPER_OUTPUT_LIMIT} bytes; refusing it")))?;
    let stdout = crate::text::printable(String::from_utf8_lossy(&stdout).trim());
    if !status.success() {
        let stderr = crate::text::printable(String::from_utf8_lossy(&stderr).trim());
        let message = if stdout.is_empty() { stderr } else { stdout };
        return Err(failed(message));
    }
    Ok(stdout)
}

/// The most a credential helper may print.
const HELPER_OUTPUT_LIMIT: u64 = 1 << 20;

/// Reads a child's stream whole if it is at most [`HELPER_OUTPUT_LIMIT`] bytes; a longer one
/// fails at once with `FileTooLarge`.
async fn read_bounded(stream: Option<&mut (impl tokio::io::AsyncRead + Unpin)>) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    if let Some(stream) = stream {
        stream.take(HELPER_OUTPUT_LIMIT + 1).read_to_end(&mut bytes).await?;
    }
    match bytes.len() as u64 <= HELPER_OUTPUT_LIMIT {
        true => Ok(bytes),
        false => Err(std::io::ErrorKind::FileTooLarge.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(config: &str) -> (tempfile::TempDir, CredentialStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, config).unwrap();
        (dir, CredentialStore::with_config(path))
    }

    #[tokio::test]
    async fn auths_entries_are_found_by_host_and_docker_hub_by_its_legacy_key() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = format!(
            r#"{{"auths": {{"https://reg.example.com/v1/": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"identitytoken": "refresh"}}}}}}"#
        );
        let (_dir, store) = store_with(&config);
        let found = store.lookup("reg.example.com").await.unwrap();
        assert_eq!(found, Some(Credential::Basic { username: "alice".into(), password: Secret::new("s3cret") }));
        assert_eq!(store.lookup("docker.io").await.unwrap(), Some(Credential::IdentityToken(Secret::new("refresh"))));
        assert_eq!(store.lookup("other.example.com").await.unwrap(), None);
        assert!(!format!("{found:?}").contains("s3cret"), "Debug never shows the password");
    }

    #[tokio::test]
    async fn store_and_erase_round_trip_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store_with(r#"{"auths": {"keep.example.com": {"auth": "eDp5"}}, "other": 1}"#);
        store.store("localhost:5000", "bob", &Secret::new("pw")).await.unwrap();
        let path = dir.path().join("config.json");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let found = store.lookup("localhost:5000").await.unwrap();
        assert_eq!(found, Some(Credential::Basic { username: "bob".into(), password: Secret::new("pw") }));
        assert!(store.erase("localhost:5000").await.unwrap());
        assert_eq!(store.lookup("localhost:5000").await.unwrap(), None);
        let config: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(config["other"], 1, "other settings are kept");
        assert!(config["auths"]["keep.example.com"].is_object());
    }

    #[tokio::test]
    async fn a_missing_helper_is_a_clear_error() {
        let (_dir, store) = store_with(r#"{"credsStore": "hoist-test-absent"}"#);
        let err = store.lookup("reg.example.com").await.unwrap_err().to_string();
        assert!(err.contains("docker-credential-hoist-test-absent"), "{err}");
    }
}
