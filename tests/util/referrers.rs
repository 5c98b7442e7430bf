//! A registry with the OCI 1.1 referrers API, for tests: in front of the real registry
//! (distribution 2.8, which has no such API), it answers `GET /v2/<name>/referrers/<digest>`
//! from the manifests with a `subject` it saw pushed, and forwards everything else.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::proxy::{read_body, read_head};

/// Referrer descriptors by (repository, subject digest).
type Index = BTreeMap<(String, String), Vec<Value>>;

/// A running referrers-API front.
pub struct ReferrersRegistry {
    port: u16,
    /// Every request line received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl ReferrersRegistry {
    /// Serves in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: String) -> ReferrersRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let index: Arc<Mutex<Index>> = Arc::default();
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log, index) = (upstream.clone(), Arc::clone(&log), Arc::clone(&index));
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &log, &index);
                });
            }
        });
        ReferrersRegistry { port, requests }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// `/v2/<name>/<kind>/<rest>` split into name and rest.
fn route<'a>(path: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let inner = path.strip_prefix("/v2/")?;
    let marker = format!("/{kind}/");
    let at = inner.rfind(&marker)?;
    Some((&inner[..at], &inner[at + marker.len()..]))
}

fn serve(mut client: TcpStream, upstream: &str, log: &Mutex<Vec<String>>, index: &Mutex<Index>) -> std::io::Result<()> {
    let (head, mut body) = read_head(&mut client)?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    read_body(&mut client, &mut body, length)?;
    let line = head.lines().next().unwrap_or_default().to_owned();
    log.lock().unwrap().push(line.clone());
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split('?').next().unwrap_or_default();

    if method == "GET" {
        if let Some((name, subject)) = route(path, "referrers") {
            let found = index.lock().unwrap().get(&(name.to_owned(), subject.to_owned())).cloned().unwrap_or_default();
            let document = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": found,
            });
            let bytes = serde_json::to_vec(&document).unwrap();
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            client.write_all(reply.as_bytes())?;
            return client.write_all(&bytes);
        }
    }

    let forwarded: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(format!("{}\r\nConnection: close\r\n\r\n", forwarded.join("\r\n")).as_bytes())?;
    server.write_all(&body)?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw)?;
    let created = raw.starts_with(b"HTTP/1.1 201");
    if let (true, "PUT", Some((name, _))) = (created, method, route(path, "manifests")) {
        if let Ok(manifest) = serde_json::from_slice::<Value>(&body) {
            if let Some(subject) = manifest["subject"]["digest"].as_str() {
                let mut descriptor = json!({
                    "mediaType": manifest["mediaType"],
                    "digest": format!("sha256:{:x}", Sha256::digest(&body)),
                    "size": body.len(),
                    "artifactType": manifest["artifactType"].as_str().unwrap_or(manifest["config"]["mediaType"].as_str().unwrap_or_default()),
                });
                if manifest["annotations"].is_object() {
                    descriptor["annotations"] = manifest["annotations"].clone();
                }
                let mut index = index.lock().unwrap();
                let entries = index.entry((name.to_owned(), subject.to_owned())).or_default();
                if !entries.contains(&descriptor) {
                    entries.push(descriptor);
                }
            }
        }
    }
    client.write_all(&raw)
}
