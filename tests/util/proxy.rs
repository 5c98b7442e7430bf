//! A fault-injecting HTTP proxy in front of the real registry: it forwards each request
//! (one per connection) and lets a test rewrite the request or the response, to play a
//! registry that lies, redirects or rate-limits. Also a stand-in for external blob storage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A response as the proxy holds it.
pub struct Response {
    /// Status line and headers, without the blank line.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Replaces the body and fixes Content-Length.
    pub fn set_body(&mut self, body: Vec<u8>) {
        let head: Vec<String> = self
            .head
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
            .map(str::to_owned)
            .collect();
        self.head = format!("{}\r\nContent-Length: {}", head.join("\r\n"), body.len());
        self.body = body;
    }
}

type Rewrite = dyn Fn(&str, &mut Response) + Send + Sync;
type RewriteRequest = dyn Fn(&mut String) + Send + Sync;

/// A running proxy.
pub struct Proxy {
    port: u16,
}

impl Proxy {
    /// Forwards to `upstream` (`127.0.0.1:PORT`); `rewrite(request_line, response)` may alter.
    pub fn start(upstream: String, rewrite: impl Fn(&str, &mut Response) + Send + Sync + 'static) -> Proxy {
        Proxy::start_with_requests(upstream, |_| {}, rewrite)
    }

    /// Like [`Proxy::start`], and `on_request` may alter each request head before it is sent.
    pub fn start_with_requests(
        upstream: String,
        on_request: impl Fn(&mut String) + Send + Sync + 'static,
        rewrite: impl Fn(&str, &mut Response) + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let on_request: Arc<RewriteRequest> = Arc::new(on_request);
        let rewrite: Arc<Rewrite> = Arc::new(rewrite);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                let on_request = Arc::clone(&on_request);
                let rewrite = Arc::clone(&rewrite);
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, on_request.as_ref(), rewrite.as_ref());
                });
            }
        });
        Proxy { port }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            return Ok((head, data[end + 4..].to_vec()));
        }
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&byte[..n]);
        if data[0] == 0x16 {
            // A TLS handshake: this proxy speaks plain HTTP, so hang up as a plain server would.
            stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n")?;
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn serve(mut client: TcpStream, upstream: &str, on_request: &RewriteRequest, rewrite: &Rewrite) -> std::io::Result<()> {
    let (mut head, mut body) = read_head(&mut client)?;
    on_request(&mut head);
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let forwarded: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(format!("{}\r\nConnection: close\r\n\r\n", forwarded.join("\r\n")).as_bytes())?;
    server.write_all(&body)?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let mut response = Response {
        head: String::from_utf8_lossy(&raw[..split]).into_owned(),
        body: raw.get(split + 4..).unwrap_or_default().to_vec(),
    };
    rewrite(&request_line, &mut response);
    client.write_all(response.head.as_bytes())?;
    client.write_all(b"\r\n\r\n")?;
    client.write_all(&response.body)?;
    Ok(())
}

/// A stand-in for external blob storage (what a registry redirects to): serves one body and
/// records every request head it receives.
pub struct StaticServer {
    port: u16,
    /// The request heads received.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl StaticServer {
    /// Serves `body` to every request.
    pub fn start(body: Vec<u8>) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let Ok((head, _)) = read_head(&mut client) else {
                    continue;
                };
                recorded.lock().unwrap().push(head);
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = client.write_all(reply.as_bytes());
                let _ = client.write_all(&body);
            }
        });
        StaticServer { port, requests }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }
}
