//! Content digests (`sha256:<hex>`) and writers that compute them while data streams through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A sha256 content digest, as written in OCI descriptors: `sha256:` and 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
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

    /// The digest a running sha256 hasher has reached.
    pub fn of_hasher(hasher: Sha256) -> Digest {
        Digest::from_hasher(hasher)
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        let bytes = hasher.finalize();
        let mut hex = String::with_capacity(64);
        for byte in bytes {
            hex.push_str(&format!("{byte:02x}"));
        }
        Digest { hex }
    }

    /// The 64 hex digits, without the algorithm (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::invalid("digest", s, "hoist handles sha256 digests: sha256:<64 hex digits>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::invalid("digest", s, "expected sha256: followed by 64 lowercase hex digits"));
        }
        Ok(Digest { hex: hex.to_owned() })
    }
}

/// Whether `bytes` have the digest `expected` (`sha256:`, `sha384:` or `sha512:` and lowercase
/// hex), checked with the algorithm it names. `None` for an algorithm hoist does not know.
pub fn matches(expected: &str, bytes: &[u8]) -> Option<bool> {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    let (algorithm, wanted) = expected.split_once(':')?;
    let found = match algorithm {
        "sha256" => hex(&Sha256::digest(bytes)),
        "sha384" => hex(&sha2::Sha384::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        _ => return None,
    };
    Some(found == wanted)
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

impl Digest {
    /// The same digest as oci-spec's type, for descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        oci_spec::image::Digest::try_from(self.to_string()).expect("a sha256 digest is a valid OCI digest")
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
