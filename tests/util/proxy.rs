//! A fault-injecting HTTP proxy in front of the real registry. It handles one request per
//! connection (it tells both sides `Connection: close`), records every request line, and lets a
//! test decide per request: forward it, answer instead of the registry, cut the connection
//! partway through the request body, stall, or rewrite the registry's response. Also a stand-in
//! for external blob storage.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response as the proxy holds it.
pub struct Response {
    /// Status line and headers, without the blank line.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status line (`"503 Service Unavailable"`), extra header lines and body.
    pub fn new(status: &str, headers: &[&str], body: &[u8]) -> Response {
        let mut head = format!("HTTP/1.1 {status}");
        for header in headers {
            head.push_str("\r\n");
            head.push_str(header);
        }
        let mut response = Response { head, body: Vec::new() };
        response.set_body(body.to_vec());
        response
    }

    /// Gives the header `name` (any case) the value `value` where the response has it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.head = rewrite_header(&self.head, name, value);
    }

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

/// One request as the fault hook sees it.
pub struct Request<'a> {
    /// `METHOD PATH HTTP/1.1`.
    pub line: &'a str,
    /// Its number, from 1, over the proxy's life.
    pub number: usize,
    /// Its body length (Content-Length).
    pub length: usize,
    /// Its whole head: the request line and the headers.
    pub head: &'a str,
}

impl Request<'_> {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The method.
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or_default()
    }

    /// The path with its query.
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or_default()
    }
}

/// What the proxy does with a request.
pub enum Fault {
    /// Pass it to the registry and its answer back.
    Forward,
    /// Answer this instead; the registry never sees the request.
    Respond(Response),
    /// Forward the head and this many body bytes, then drop both connections.
    CutAfter(usize),
    /// Read this many body bytes, then stop reading for the duration, then drop the connection.
    StallAfter(usize, Duration),
    /// Read the body at this many bytes a second (a slow link), then forward it.
    Throttle(u64),
    /// Pass the body on as it arrives, at most this many bytes a second (a slow link that
    /// streams, as a direct connection does): a client that goes away mid-body leaves the
    /// registry with what got through.
    Stream(u64),
}

type Rewrite = dyn Fn(&str, &mut Response) + Send + Sync;
type RewriteRequest = dyn Fn(&mut String) + Send + Sync;
type Faults = dyn Fn(&Request) -> Fault + Send + Sync;

struct Hooks {
    on_request: Box<RewriteRequest>,
    fault: Box<Faults>,
    rewrite: Box<Rewrite>,
    count: AtomicUsize,
    log: Arc<Mutex<Vec<String>>>,
    forwarded: Arc<std::sync::atomic::AtomicU64>,
}

/// A running proxy.
pub struct Proxy {
    port: u16,
    /// Every request line received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    forwarded: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    /// Forwards to `upstream` (`127.0.0.1:PORT`); `rewrite(request_line, response)` may alter.
    pub fn start(upstream: String, rewrite: impl Fn(&str, &mut Response) + Send + Sync + 'static) -> Proxy {
        Proxy::build(upstream, Box::new(|_| {}), Box::new(|_| Fault::Forward), Box::new(rewrite))
    }

    /// Like [`Proxy::start`], and `on_request` may alter each request head before it is sent.
    pub fn start_with_requests(
        upstream: String,
        on_request: impl Fn(&mut String) + Send + Sync + 'static,
        rewrite: impl Fn(&str, &mut Response) + Send + Sync + 'static,
    ) -> Proxy {
        Proxy::build(upstream, Box::new(on_request), Box::new(|_| Fault::Forward), Box::new(rewrite))
    }

    /// Forwards to `upstream`, doing to each request what `fault` says.
    pub fn with_faults(upstream: String, fault: impl Fn(&Request) -> Fault + Send + Sync + 'static) -> Proxy {
        Proxy::build(upstream, Box::new(|_| {}), Box::new(fault), Box::new(|_, _| {}))
    }

    fn build(upstream: String, on_request: Box<RewriteRequest>, fault: Box<Faults>, rewrite: Box<Rewrite>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let forwarded = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let hooks = Arc::new(Hooks {
            on_request,
            fault,
            rewrite,
            count: AtomicUsize::new(0),
            log: Arc::clone(&requests),
            forwarded: Arc::clone(&forwarded),
        });
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                let hooks = Arc::clone(&hooks);
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &hooks);
                });
            }
        });
        Proxy { port, requests, forwarded }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Request body bytes passed on to the registry so far.
    pub fn body_bytes(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// How many requests so far had this method and a path containing `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|l| l.starts_with(&format!("{method} ")) && l.contains(part)).count()
    }
}

/// `head` with every line of the header `name` (any case) set to `name: value`.
pub fn rewrite_header(head: &str, name: &str, value: &str) -> String {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let lines: Vec<String> = head
        .lines()
        .map(|l| match l.to_ascii_lowercase().starts_with(&prefix) {
            true => format!("{name}: {value}"),
            false => l.to_owned(),
        })
        .collect();
    lines.join("\r\n")
}

/// Reads a request head; returns it and the body bytes read past it.
pub fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
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

/// Reads until `body` holds `length` bytes (or the peer stops).
pub fn read_body(stream: &mut TcpStream, body: &mut Vec<u8>, length: usize) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < length {
        let want = chunk.len().min(length - body.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Like [`read_body`], at most `rate` bytes a second, in small reads so the sender sees a
/// steady flow rather than bursts.
fn read_throttled(stream: &mut TcpStream, body: &mut Vec<u8>, length: usize, rate: u64) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let step = (rate / 20).clamp(1024, 64 * 1024) as usize;
    let mut chunk = vec![0u8; step];
    while body.len() < length {
        let want = step.min(length - body.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
        let due = Duration::from_secs_f64(body.len() as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Passes the request on as its body arrives, at most `rate` bytes a second, counting what
/// went through; then the registry's answer back. When the client stops midway, the registry
/// sees its connection end after what got through.
fn stream_through(
    mut client: TcpStream,
    upstream: &str,
    head: &str,
    early: Vec<u8>,
    length: usize,
    rate: u64,
    hooks: &Hooks,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(head.as_bytes())?;
    let started = std::time::Instant::now();
    let step = (rate / 20).clamp(1024, 64 * 1024) as usize;
    let mut chunk = vec![0u8; step];
    let mut passed = early.len().min(length);
    server.write_all(&early[..passed])?;
    hooks.forwarded.fetch_add(passed as u64, Ordering::SeqCst);
    while passed < length {
        let want = step.min(length - passed);
        let n = match client.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => {
                let _ = server.shutdown(Shutdown::Both);
                return Ok(());
            }
            Ok(n) => n,
        };
        server.write_all(&chunk[..n])?;
        passed += n;
        hooks.forwarded.fetch_add(n as u64, Ordering::SeqCst);
        let due = Duration::from_secs_f64(passed as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let mut raw = Vec::new();
    server.read_to_end(&mut raw)?;
    client.write_all(&raw)?;
    Ok(())
}

fn serve(mut client: TcpStream, upstream: &str, hooks: &Hooks) -> std::io::Result<()> {
    let (mut head, mut body) = read_head(&mut client)?;
    (hooks.on_request)(&mut head);
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let line = head.lines().next().unwrap_or_default().to_owned();
    let number = hooks.count.fetch_add(1, Ordering::SeqCst) + 1;
    hooks.log.lock().unwrap().push(line.clone());
    let forwarded: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let forwarded_head = format!("{}\r\nConnection: close\r\n\r\n", forwarded.join("\r\n"));
    match (hooks.fault)(&Request { line: &line, number, length, head: &head }) {
        Fault::Respond(response) => {
            read_body(&mut client, &mut body, length)?;
            client.write_all(response.head.as_bytes())?;
            client.write_all(b"\r\nConnection: close\r\n\r\n")?;
            client.write_all(&response.body)?;
            return Ok(());
        }
        Fault::CutAfter(bytes) => {
            read_body(&mut client, &mut body, bytes.min(length))?;
            body.truncate(bytes);
            let mut server = TcpStream::connect(upstream)?;
            server.write_all(forwarded_head.as_bytes())?;
            server.write_all(&body)?;
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Fault::StallAfter(bytes, pause) => {
            read_body(&mut client, &mut body, bytes.min(length))?;
            std::thread::sleep(pause);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Fault::Throttle(rate) => read_throttled(&mut client, &mut body, length, rate)?,
        Fault::Stream(rate) => return stream_through(client, upstream, &forwarded_head, body, length, rate, hooks),
        Fault::Forward => {}
    }
    read_body(&mut client, &mut body, length)?;
    if body.len() < length {
        // The client went away mid-body: like a reverse proxy that buffers request bodies
        // (nginx's default), pass nothing on.
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(forwarded_head.as_bytes())?;
    server.write_all(&body)?;
    hooks.forwarded.fetch_add(body.len() as u64, Ordering::SeqCst);
    let mut raw = Vec::new();
    server.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let mut response = Response {
        head: String::from_utf8_lossy(&raw[..split]).into_owned(),
        body: raw.get(split + 4..).unwrap_or_default().to_vec(),
    };
    (hooks.rewrite)(&line, &mut response);
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
                let Ok((head, _)) = read_head(&mut client) else { continue };
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
