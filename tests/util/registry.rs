//! A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8), started on a
//! free loopback port with its own storage, and stopped when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry is set up beyond the basics.
#[derive(Default)]
pub struct Setup {
    /// `auth:` section (YAML, indented two spaces under `auth:`).
    pub auth: Option<String>,
    /// TLS certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// More top-level YAML (e.g. a `proxy:` section for a pull-through cache).
    pub extra: Option<String>,
}

/// A running registry.
pub struct Registry {
    child: Child,
    port: u16,
    /// Its temporary directory (config, storage).
    pub dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    /// A plain-HTTP registry without authentication.
    pub fn start() -> Registry {
        Registry::start_with(Setup::default())
    }

    /// A registry set up as `setup` says.
    pub fn start_with(setup: Setup) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: hoist-test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &setup.tls {
            config.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display()));
        }
        if let Some(extra) = &setup.extra {
            config.push_str(extra);
        }
        if let Some(auth) = &setup.auth {
            config.push_str("auth:\n");
            config.push_str(auth);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("registry.log")).unwrap()));
        for (key, _) in std::env::vars() {
            if key.starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry ({e}); scripts/test.sh installs it"));
        let registry = Registry { child, port, dir };
        registry.wait_until_listening();
        registry
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut first = [0u8; 1];
                if stream.read(&mut first).unwrap_or(0) > 0 {
                    return;
                }
                // A TLS registry closes a plain request without a byte; connected is enough.
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on port {}: {log}", self.port);
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry with htpasswd Basic auth for `users`; the htpasswd file lives in `dir`.
pub fn with_htpasswd(dir: &Path, users: &[(&str, &str)]) -> Registry {
    let passwords = htpasswd(dir, users);
    Registry::start_with(Setup {
        auth: Some(format!("  htpasswd:\n    realm: hoist-test\n    path: {}\n", passwords.display())),
        ..Setup::default()
    })
}

/// Writes an htpasswd file with bcrypt entries, as distribution requires.
pub fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    let lines: Vec<String> =
        users.iter().map(|(user, password)| format!("{user}:{}", bcrypt::hash(password, 5).unwrap())).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}
