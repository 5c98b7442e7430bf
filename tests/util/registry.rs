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
    /// CA files for client certificates (`http.tls.clientcas`): with any, the registry refuses
    /// a TLS client that shows no certificate signed by one of them.
    pub client_cas: Vec<PathBuf>,
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
            if !setup.client_cas.is_empty() {
                config.push_str("    clientcas:\n");
                for ca in &setup.client_cas {
                    config.push_str(&format!("      - {}\n", ca.display()));
                }
            }
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

/// A certificate authority made for a test.
pub struct TestCa {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        TestCa { certificate, key }
    }

    /// Writes the CA's certificate to `path` (PEM) and returns the path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, self.certificate.pem()).unwrap();
        path.to_owned()
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by this CA, written
    /// to `dir/NAME.crt` and `dir/NAME.key`; returns both paths.
    pub fn server(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let certificate = params.signed_by(&key, &self.certificate, &self.key).unwrap();
        write_pair(dir, &format!("{file}.crt"), &format!("{file}.key"), &certificate.pem(), &key.serialize_pem())
    }

    /// A client certificate signed by this CA, written as docker's `client.cert` and
    /// `client.key` in `dir`; returns both paths.
    pub fn client(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "hoist test client");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.certificate, &self.key).unwrap();
        write_pair(dir, "client.cert", "client.key", &certificate.pem(), &key.serialize_pem())
    }
}

/// A self-signed certificate for `names` with `CA:TRUE`, as `openssl req -x509` makes one by
/// default (the registry documentation's recipe), written to `dir/NAME.crt` and `dir/NAME.key`.
pub fn self_signed_ca_certificate(dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    let certificate = params.self_signed(&key).unwrap();
    write_pair(dir, &format!("{file}.crt"), &format!("{file}.key"), &certificate.pem(), &key.serialize_pem())
}

fn write_pair(dir: &Path, cert_name: &str, key_name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert_path, key_path) = (dir.join(cert_name), dir.join(key_name));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}
