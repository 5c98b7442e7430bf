//! A registry of the tests' own that lies, stalls or floods: each request head goes to a
//! handler that decides the answer. One request per connection; every head is recorded.
//! Started with a certificate, it answers TLS and plain HTTP on the same port (by the first
//! byte, 0x16 for a TLS ClientHello), and the heads of requests that came over TLS start
//! with `TLS `.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the server sends back.
pub enum Reply {
    /// Status line (`"200 OK"`), header lines, body.
    Send(String, Vec<String>, Vec<u8>),
    /// Like `Send`, but the body one byte at a time with this pause between bytes.
    Trickle(String, Vec<String>, Vec<u8>, Duration),
    /// Like `Trickle`, and the head too: nothing arrives whole before the last byte.
    TrickleAll(String, Vec<String>, Vec<u8>, Duration),
    /// `200 OK` with a Content-Length of this many bytes of `x`, streamed.
    Flood(Vec<String>, u64),
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: &str, body: &str) -> Reply {
        Reply::Send(status.into(), vec!["Content-Type: application/json".into()], body.as_bytes().to_vec())
    }
}

/// A running hostile server.
pub struct Hostile {
    port: u16,
    /// Every request head, in order.
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    /// Answers each request (its head, with the request line first) with `handler`.
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Hostile {
        Hostile::serving(None, handler)
    }

    /// Like [`Hostile::start`], and answers TLS too with the certificate and key (PEM files)
    /// given; the heads of requests over TLS start with `TLS `.
    pub fn start_tls(
        certificate: &Path,
        key: &Path,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        let chain = CertificateDer::pem_file_iter(certificate).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Hostile::serving(Some(Arc::new(config)), handler)
    }

    fn serving(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&heads);
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (recorded, handler, tls) = (Arc::clone(&recorded), Arc::clone(&handler), tls.clone());
                std::thread::spawn(move || {
                    let _ = accept(client, tls, &recorded, handler.as_ref());
                });
            }
        });
        Hostile { port, heads }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The recorded heads that contain `part` (case-insensitive).
    pub fn heads_with(&self, part: &str) -> Vec<String> {
        let part = part.to_ascii_lowercase();
        self.heads.lock().unwrap().iter().filter(|h| h.to_ascii_lowercase().contains(&part)).cloned().collect()
    }
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// Serves one connection: over TLS when it starts with a ClientHello and the server has a
/// certificate; a ClientHello to a server without one gets a plain-HTTP 400.
fn accept(
    mut client: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    recorded: &Mutex<Vec<String>>,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut first = [0u8; 1];
    let hello = client.peek(&mut first)? == 1 && first[0] == 0x16;
    match (hello, tls) {
        (true, Some(config)) => {
            let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            serve(rustls::StreamOwned::new(connection, client), "TLS ", recorded, handler)
        }
        (true, None) => client.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n"),
        (false, _) => serve(client, "", recorded, handler),
    }
}

fn serve(
    mut client: impl Read + Write,
    prefix: &str,
    recorded: &Mutex<Vec<String>>,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut byte = [0u8; 4096];
    let head = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break format!("{prefix}{}", String::from_utf8_lossy(&data[..end]));
        }
        let n = client.read(&mut byte)?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&byte[..n]);
    };
    recorded.lock().unwrap().push(head.clone());
    let write_head = |client: &mut dyn Write, status: &str, headers: &[String], length: u64| {
        let mut text = format!("HTTP/1.1 {status}\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str(&format!("Content-Length: {length}\r\nConnection: close\r\n\r\n"));
        client.write_all(text.as_bytes())
    };
    match handler(&head) {
        Reply::Send(status, headers, body) => {
            write_head(&mut client, &status, &headers, body.len() as u64)?;
            client.write_all(&body)?;
        }
        Reply::Trickle(status, headers, body, pause) => {
            write_head(&mut client, &status, &headers, body.len() as u64)?;
            for byte in body {
                client.write_all(&[byte])?;
                std::thread::sleep(pause);
            }
        }
        Reply::TrickleAll(status, headers, body, pause) => {
            let mut all = Vec::new();
            write_head(&mut all, &status, &headers, body.len() as u64)?;
            all.extend_from_slice(&body);
            for byte in all {
                client.write_all(&[byte])?;
                client.flush()?;
                std::thread::sleep(pause);
            }
        }
        Reply::Flood(headers, length) => {
            write_head(&mut client, "200 OK", &headers, length)?;
            let block = vec![b'x'; 64 * 1024];
            let mut left = length;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                client.write_all(&block[..n])?;
                left -= n as u64;
            }
        }
    }
    client.flush()
}
