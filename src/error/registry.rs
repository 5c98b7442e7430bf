//! What can go wrong talking to a registry, each case with its fix.

use serde::Deserialize;

/// A registry failure, classified so that messages and exit codes can say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry could not be reached at all.
    #[error(
        "cannot reach registry {registry}: {detail}; check the host name and port and that the registry is running"
    )]
    Connect {
        /// `host[:port]`.
        registry: String,
        /// The underlying error.
        detail: String,
    },
    /// The registry could not be reached when hoist first tried it: not retried, since a
    /// registry that is down or a wrong port does not fix itself within a command.
    #[error(
        "cannot reach registry {registry}: {detail}; check the host name and port and that the registry is running"
    )]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// The underlying error.
        detail: String,
    },
    /// The registry's host name does not resolve.
    #[error("cannot resolve the host name of registry {registry}: {detail}; check the spelling, or the DNS settings")]
    Resolve {
        /// `host[:port]`.
        registry: String,
        /// The resolver's error.
        detail: String,
    },
    /// The TLS handshake failed, usually an unknown certificate authority.
    #[error("TLS with registry {registry} failed: {detail}; for a private CA pass --ca-cert FILE or put it in /etc/docker/certs.d/{registry}/ca.crt; for a plain-HTTP registry pass --insecure-registry {registry}")]
    Tls {
        /// `host[:port]`.
        registry: String,
        /// The TLS error.
        detail: String,
    },
    /// The registry speaks plain HTTP where HTTPS was required.
    #[error("registry {registry} answers plain HTTP, not HTTPS; if that is intended, mark it with --insecure-registry {registry}")]
    PlainHttp {
        /// `host[:port]`.
        registry: String,
    },
    /// A redirect led from HTTPS to plain HTTP for a registry not insecure by configuration.
    #[error("registry {registry} redirected {from} to plain HTTP ({to}); hoist does not leave HTTPS for HTTP, where the request and its credentials would travel unencrypted; have the registry redirect to https://, or, if it is meant to be reached over plain HTTP, mark it with --insecure-registry {registry}")]
    InsecureRedirect {
        /// `host[:port]`.
        registry: String,
        /// The HTTPS URL redirected (without its query).
        from: String,
        /// The plain-HTTP URL it pointed to (without its query).
        to: String,
    },
    /// Redirects went round in a loop, or on past the most hoist follows.
    #[error("registry {registry} redirects in a loop at {url} (back to an address already visited, or more than {limit} redirects); fix the redirect on the registry or on the proxy in front of it (often http/https or a host name rewritten back and forth), or give the address the registry is served at")]
    RedirectLoop {
        /// `host[:port]`.
        registry: String,
        /// The URL the loop came back to (without its query).
        url: String,
        /// The most redirects followed for one request.
        limit: usize,
    },
    /// No credentials, or the registry rejected them.
    #[error("registry {registry} refused the credentials for {scope} ({message}); run `hoist login {registry}` or pass --creds USER:PASS")]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// What was asked for.
        scope: String,
        /// The registry's message.
        message: String,
    },
    /// A 401 came from another origin than the registry's (a server a redirect led to): hoist
    /// answers only the registry's own challenges, so no credential was looked up or sent.
    #[error("registry {registry} redirected to {origin}, which asks for credentials; hoist answers only the registry's own challenges, so none were sent there; the storage a registry redirects to must accept the redirect as it is (check the registry's storage settings, or the proxy in front of it)")]
    ForeignChallenge {
        /// `host[:port]`.
        registry: String,
        /// The origin (scheme, host and port) that asked.
        origin: String,
    },
    /// The credentials are valid but lack permission.
    #[error("registry {registry} denied access to {scope}: {message}; check that the account may use this repository")]
    Denied {
        /// `host[:port]`.
        registry: String,
        /// What was asked for.
        scope: String,
        /// The registry's message.
        message: String,
    },
    /// A repository, tag, manifest or blob does not exist.
    #[error(
        "{what} not found on {registry} ({message}); check the name and tag (`hoist tags REPOSITORY` lists the tags)"
    )]
    NotFound {
        /// `host[:port]`.
        registry: String,
        /// What was looked for.
        what: String,
        /// The registry's message.
        message: String,
    },
    /// The registry is rate limiting.
    #[error("registry {registry} is rate limiting requests ({message}); {}", match retry_after { Some(s) => format!("retry in {s} s"), None => "retry later".to_owned() })]
    TooManyRequests {
        /// `host[:port]`.
        registry: String,
        /// Seconds to wait, from Retry-After.
        retry_after: Option<u64>,
        /// The registry's message.
        message: String,
    },
    /// A document is larger than hoist accepts.
    #[error("{what} from {registry} is larger than {limit} bytes; refusing it")]
    TooLarge {
        /// `host[:port]`.
        registry: String,
        /// What it is.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The registry answered something hoist cannot use.
    #[error("registry {registry} answered {status} to {request}: {message}")]
    Status {
        /// `host[:port]`.
        registry: String,
        /// HTTP status.
        status: u16,
        /// What was asked.
        request: String,
        /// The registry's message.
        message: String,
    },
    /// The registry kept sending an upload back (sessions lost, offsets that do not move).
    #[error("registry {registry} made no progress with {what}; it kept losing or rewinding the upload")]
    NoProgress {
        /// `host[:port]`.
        registry: String,
        /// What was being uploaded.
        what: String,
    },
    /// A transfer made no progress for too long and was cut.
    #[error("upload to registry {registry} made no progress for {seconds} s; cut it to retry")]
    Stalled {
        /// `host[:port]`.
        registry: String,
        /// The stall timeout.
        seconds: u64,
    },
    /// A response did not arrive in time.
    #[error("registry {registry} did not answer in time ({detail}); check the network, or retry")]
    Timeout {
        /// `host[:port]`.
        registry: String,
        /// The underlying error.
        detail: String,
    },
}

/// An error code of the OCI distribution spec (and Docker Hub's `TOOMANYREQUESTS`), as a
/// registry's error envelope gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`
    BlobUploadUnknown,
    /// `DIGEST_INVALID`
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`
    ManifestUnknown,
    /// `NAME_INVALID`
    NameInvalid,
    /// `NAME_UNKNOWN`
    NameUnknown,
    /// `SIZE_INVALID`
    SizeInvalid,
    /// `UNAUTHORIZED`
    Unauthorized,
    /// `DENIED`
    Denied,
    /// `UNSUPPORTED`
    Unsupported,
    /// `TOOMANYREQUESTS`
    TooManyRequests,
    /// Any other code, as sent (made printable; empty when there was none).
    Other(String),
}

const CODES: [(ErrorCode, &str); 14] = [
    (ErrorCode::BlobUnknown, "BLOB_UNKNOWN"),
    (ErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID"),
    (ErrorCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN"),
    (ErrorCode::DigestInvalid, "DIGEST_INVALID"),
    (ErrorCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN"),
    (ErrorCode::ManifestInvalid, "MANIFEST_INVALID"),
    (ErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN"),
    (ErrorCode::NameInvalid, "NAME_INVALID"),
    (ErrorCode::NameUnknown, "NAME_UNKNOWN"),
    (ErrorCode::SizeInvalid, "SIZE_INVALID"),
    (ErrorCode::Unauthorized, "UNAUTHORIZED"),
    (ErrorCode::Denied, "DENIED"),
    (ErrorCode::Unsupported, "UNSUPPORTED"),
    (ErrorCode::TooManyRequests, "TOOMANYREQUESTS"),
];

impl ErrorCode {
    /// The code as registries write it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Other(text) => text,
            known => CODES.iter().find(|(code, _)| code == known).map_or("", |(_, text)| text),
        }
    }
}

impl From<&str> for ErrorCode {
    /// The code `text` names; anything unknown kept, made printable.
    fn from(text: &str) -> ErrorCode {
        CODES
            .iter()
            .find(|(_, known)| *known == text)
            .map_or_else(|| ErrorCode::Other(crate::text::printable(text)), |(code, _)| code.clone())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ErrorCode, D::Error> {
        Ok(ErrorCode::from(String::deserialize(deserializer)?.as_str()))
    }
}

impl Default for ErrorCode {
    fn default() -> ErrorCode {
        ErrorCode::Other(String::new())
    }
}

/// The OCI distribution error envelope: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    /// The errors.
    #[serde(default)]
    pub errors: Vec<EnvelopeError>,
}

/// One error of an [`Envelope`].
#[derive(Debug, Deserialize)]
pub struct EnvelopeError {
    /// Its code.
    #[serde(default)]
    pub code: ErrorCode,
    /// Human message.
    #[serde(default)]
    pub message: String,
}

impl Envelope {
    /// Parses a body, once, into typed codes; an unparsable one gives an empty envelope. Codes
    /// and messages come out printable (no control characters).
    pub fn parse(body: &[u8]) -> Envelope {
        let mut envelope: Envelope = serde_json::from_slice(body).unwrap_or_default();
        for error in &mut envelope.errors {
            error.message = crate::text::printable(&error.message);
        }
        envelope
    }

    /// The first error's code.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.errors.first().map(|e| &e.code)
    }

    /// Every message, joined; `fallback` when there is none.
    pub fn message(&self, fallback: &str) -> String {
        let messages: Vec<String> = self
            .errors
            .iter()
            .map(|e| match e.message.is_empty() {
                true => e.code.to_string(),
                false => format!("{}: {}", e.code, e.message),
            })
            .collect();
        match messages.is_empty() {
            true => fallback.to_owned(),
            false => messages.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_parse_and_fall_back() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let envelope = Envelope::parse(body);
        assert_eq!(envelope.code().map(ErrorCode::as_str), Some("MANIFEST_UNKNOWN"));
        assert_eq!(envelope.message("-"), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(Envelope::parse(b"<html>").message("502 Bad Gateway"), "502 Bad Gateway");
    }

    #[test]
    fn codes_are_read_once_into_their_kind_and_others_kept_printable() {
        let body = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"},{"code":"NEW\u001b[31m","message":""},{"message":"m"}]}"#;
        let envelope = Envelope::parse(body);
        assert_eq!(envelope.code(), Some(&ErrorCode::TooManyRequests));
        assert_eq!(envelope.errors[1].code, ErrorCode::Other("NEW\\u{1b}[31m".into()));
        assert_eq!(envelope.message("-"), "TOOMANYREQUESTS: slow down; NEW\\u{1b}[31m; : m");
        for (code, text) in CODES.iter() {
            assert_eq!(&ErrorCode::from(*text), code);
            assert_eq!(code.as_str(), *text);
        }
    }
}
