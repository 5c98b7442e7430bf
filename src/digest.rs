//! Content digests (`sha256:<hex>`) and writers that compute them while data streams through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The digest algorithms hoist can check: sha256, which it computes and stores content by, and
/// sha384 and sha512, which a reference may pin (go-digest's three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`
    Sha256,
    /// `sha384`
    Sha384,
    /// `sha512`
    Sha512,
}

impl Algorithm {
    /// Its name, as digests write it before the `:`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm called `name`, if hoist knows it.
    pub fn named(name: &str) -> Option<Algorithm> {
        [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512].into_iter().find(|a| a.name() == name)
    }

    /// How many hex digits its digests have.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    /// The lowercase hex of `bytes` hashed with it.
    fn hex_of(self, bytes: &[u8]) -> String {
        match self {
            Algorithm::Sha256 => hex(&Sha256::digest(bytes)),
            Algorithm::Sha384 => hex(&sha2::Sha384::digest(bytes)),
            Algorithm::Sha512 => hex(&sha2::Sha512::digest(bytes)),
        }
    }
}

/// A content digest, as written in OCI descriptors and references: `algorithm:hex`.
///
/// Content hoist computes, stores and reads from documents is sha256 ([`Digest::of`], and
/// parsing with `str::parse`); a reference may pin sha384 or sha512 too ([`Digest::parse_any`]),
/// which is then checked with its own algorithm ([`Digest::verifies`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest and size of everything `reader` gives, read through once in 1 MiB chunks.
    pub fn of_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 1 << 20];
        let mut size = 0u64;
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return Ok((Digest::from_hasher(hasher), size)),
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The digest a [`BackgroundHash`] reached over every piece handed to it.
    pub async fn of_background(hash: &BackgroundHash) -> Result<Digest> {
        hash.finish().await.map(Digest::from_hasher)
    }

    /// The digest a running sha256 hasher has reached.
    pub fn of_hasher(hasher: Sha256) -> Digest {
        Digest::from_hasher(hasher)
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        Digest { algorithm: Algorithm::Sha256, hex: hex(&hasher.finalize()) }
    }

    /// A digest in any algorithm hoist can check, as distribution/reference and go-digest read
    /// one: a known algorithm and exactly its number of lowercase hex digits. The error is the
    /// reason, for the caller to name the text it came from.
    pub fn parse_any(text: &str) -> std::result::Result<Digest, String> {
        let (name, hex) = text.split_once(':').ok_or("a digest is algorithm:hex, e.g. sha256:<64 hex digits>")?;
        let algorithm = Algorithm::named(name).ok_or("unsupported digest algorithm; use sha256, sha384 or sha512")?;
        let length = algorithm.hex_len();
        if hex.len() != length || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("a {name} digest has exactly {length} lowercase hex digits"));
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits, without the algorithm (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `bytes` have this digest, hashed with its algorithm.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        self.algorithm.hex_of(bytes) == self.hex
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// A sha256 digest: what hoist stores content by and reads in documents.
    fn from_str(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::invalid("digest", s, "hoist handles sha256 digests: sha256:<64 hex digits>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::invalid("digest", s, "expected sha256: followed by 64 lowercase hex digits"));
        }
        Ok(Digest { algorithm: Algorithm::Sha256, hex: hex.to_owned() })
    }
}

/// Whether `bytes` have the digest `expected`, text from outside (a registry's
/// Docker-Content-Digest), checked with the algorithm it names: `None` for an algorithm hoist
/// does not know, `Some(false)` for a known one with malformed hex.
pub fn matches(expected: &str, bytes: &[u8]) -> Option<bool> {
    let (name, _) = expected.split_once(':')?;
    Algorithm::named(name)?;
    Some(Digest::parse_any(expected).is_ok_and(|digest| digest.verifies(bytes)))
}

/// A writer that passes bytes on to `inner` while counting them and hashing them with sha256.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), size: 0 }
    }

    /// The inner writer, for reads of its state.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Ends hashing: the digest and size of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod matches_tests {
    #[test]
    fn every_named_algorithm_is_checked() {
        let sha512 = "sha512:ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff";
        assert_eq!(super::matches(sha512, b"test"), Some(true));
        assert_eq!(super::matches(sha512, b"other"), Some(false));
        assert_eq!(super::matches(&super::Digest::of(b"x").to_string(), b"x"), Some(true));
        assert_eq!(super::matches("md5:abc", b"x"), None);
        assert_eq!(super::matches("sha256:not-hex", b"x"), Some(false), "a known algorithm with bad hex");
    }

    #[test]
    fn pins_in_any_known_algorithm_parse_and_verify_with_it() {
        let sha512 = super::Digest::parse_any(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        assert_eq!(sha512.algorithm(), super::Algorithm::Sha512);
        assert!(!sha512.verifies(b"test"));
        let text = "sha512:ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff";
        let test = super::Digest::parse_any(text).unwrap();
        assert!(test.verifies(b"test") && test.to_string() == text);
        assert!(text.parse::<super::Digest>().is_err(), "content is addressed by sha256 only");
        let sha256 = super::Digest::of(b"x");
        assert_eq!(super::Digest::parse_any(&sha256.to_string()).unwrap(), sha256);
        for bad in ["sha384:00", "md5:00", "nocolon", &format!("sha256:{}", "A".repeat(64))] {
            assert!(super::Digest::parse_any(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest_and_counts_bytes() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (digest, size, inner) = writer.finish();
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(size, 11);
        assert_eq!(inner, b"hello world");
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_forms() {
        let text = Digest::of(b"x").to_string();
        assert_eq!(text.parse::<Digest>().unwrap().to_string(), text);
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("md5:00".parse::<Digest>().is_err());
        assert!(text.to_uppercase().parse::<Digest>().is_err());
    }
}

/// Pieces waiting for the hashing thread, at most: with 256 KiB reads, 16 MiB.
const HASH_BACKLOG: usize = 64;

/// A SHA-256 computed on a thread of the blocking pool from pieces handed to it as they pass,
/// so that hashing never holds up the bytes it checks (the pieces are shared, not copied; at
/// most [`HASH_BACKLOG`] wait, which bounds memory). The thread starts with the first piece.
#[derive(Default)]
pub struct BackgroundHash {
    pieces: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<bytes::Bytes>>>,
    hashed: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Sha256>>>,
}

impl BackgroundHash {
    /// Hands `piece` to the hashing thread (waiting only when it is far behind).
    pub async fn update(&self, piece: bytes::Bytes) {
        let sender = self.pieces.lock().ok().map(|mut pieces| pieces.get_or_insert_with(|| self.start()).clone());
        if let Some(sender) = sender {
            // The thread ends only when every sender is gone: the send cannot fail before.
            let _ = sender.send(piece).await;
        }
    }

    /// Starts the hashing thread; returns where pieces go.
    fn start(&self) -> tokio::sync::mpsc::Sender<bytes::Bytes> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(HASH_BACKLOG);
        let worker = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(piece) = receiver.blocking_recv() {
                hasher.update(&piece);
            }
            hasher
        });
        if let Ok(mut hashed) = self.hashed.try_lock() {
            *hashed = Some(worker);
        }
        sender
    }

    /// The hash of every piece handed over (of none, if none was).
    async fn finish(&self) -> Result<Sha256> {
        drop(self.pieces.lock().ok().and_then(|mut pieces| pieces.take()));
        match self.hashed.lock().await.take() {
            Some(worker) => worker.await.map_err(|e| Error::io("hash", "a blob", io::Error::other(e.to_string()))),
            None => Ok(Sha256::new()),
        }
    }
}
