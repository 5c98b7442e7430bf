//! A small token server for the real registry's `auth.token` mode: it checks Basic credentials,
//! records the scopes asked for, and signs ES256 JWTs with a `kid` the registry trusts (the
//! libtrust key ID of the key in `rootcertbundle`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

/// The identity (refresh) token the server accepts in the OAuth2 refresh grant.
pub const REFRESH_TOKEN: &str = "hoist-refresh-token";
/// Service and issuer names shared by the registry config and the tokens.
pub const SERVICE: &str = "hoist-test-registry";
const ISSUER: &str = "hoist-test-issuer";

/// A running token server.
pub struct TokenServer {
    port: u16,
    /// Every request's scopes, in order.
    pub requests: Arc<Mutex<Vec<Vec<String>>>>,
    certificate: PathBuf,
}

#[derive(serde::Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(serde::Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

/// libtrust's key ID: base32 of the first 30 bytes of sha256(SPKI DER), in groups of four.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(spki_der);
    let encoded = base32(&hash[..30]);
    encoded.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// RFC 4648 base32 without padding (30 bytes → 48 characters).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u64, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | byte as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl TokenServer {
    /// Starts a server accepting `user`/`password`, with its signing certificate in `dir`.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate =
            rcgen::CertificateParams::new(vec!["hoist-token-signer".into()]).unwrap().self_signed(&key).unwrap();
        let certificate_path = dir.join("token-signer.crt");
        std::fs::write(&certificate_path, certificate.pem()).unwrap();
        let kid = libtrust_key_id(&key.public_key_der());
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut authorization = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorization = value.trim().to_owned();
                        }
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let mut form = vec![0u8; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut form);
                let form = String::from_utf8_lossy(&form).into_owned();
                let field = |text: &str, key: &str| -> Vec<String> {
                    text.split('&')
                        .filter_map(|pair| pair.strip_prefix(&format!("{key}=")))
                        .map(percent_decode)
                        .collect()
                };
                // GET carries scopes in the query; the OAuth2 refresh grant POSTs them, space-separated.
                let mut scopes: Vec<String> = field(query, "scope");
                scopes.extend(
                    field(&form, "scope")
                        .iter()
                        .flat_map(|s| s.split(' ').map(str::to_owned))
                        .filter(|s| !s.is_empty()),
                );
                let refreshed =
                    field(&form, "grant_type") == ["refresh_token"] && field(&form, "refresh_token") == [REFRESH_TOKEN];
                recorded.lock().unwrap().push(scopes.clone());
                let response = if authorization != expected && !refreshed {
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    format!("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                    let access = scopes
                        .iter()
                        .filter_map(|scope| {
                            let mut parts = scope.rsplitn(2, ':');
                            let actions = parts.next()?;
                            let (kind, name) = parts.next()?.split_once(':')?;
                            Some(Access {
                                kind: kind.into(),
                                name: name.into(),
                                actions: actions.split(',').map(str::to_owned).collect(),
                            })
                        })
                        .collect();
                    let claims = Claims {
                        iss: ISSUER.into(),
                        sub: "tester".into(),
                        aud: SERVICE.into(),
                        exp: now + 300,
                        nbf: now - 10,
                        iat: now,
                        jti: format!("{now}-{}", scopes.len()),
                        access,
                    };
                    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                    header.kid = Some(kid.clone());
                    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
                    let body = match refreshed {
                        true => format!(r#"{{"access_token":"{token}","expires_in":300}}"#),
                        false => format!(r#"{{"token":"{token}","expires_in":300}}"#),
                    };
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        TokenServer { port, requests, certificate: certificate_path }
    }

    /// The registry's `auth:` section for this server.
    pub fn registry_auth(&self) -> String {
        format!(
            "  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.certificate.display()
        )
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("20");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b' '));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn base32_matches_rfc_4648() {
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
}
