//! Layers: a directory or file turned into a reproducible, compressed tar blob.
//!
//! One streaming pass writes the tar, hashes it (the diff_id), compresses it and hands the
//! compressed bytes to the caller's writer, which hashes and stores them; [`diff_id`] makes the
//! same pass without compressing, for a layer cache that is keyed on it. Nothing holds a whole
//! layer in memory.

mod blocks;
pub mod ignore;
mod tar;

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

pub use self::blocks::{BlockCodec, ParallelCompressor};
pub use self::tar::{write_tree, TarOptions};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::model::MediaType;
use crate::offload::OffloadWriter;

/// How layer tars are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (`tar+gzip`), the most widely supported.
    #[default]
    Gzip,
    /// zstd (`tar+zstd`): faster and smaller; needs containerd 1.5+ or podman to run.
    Zstd,
    /// No compression (`tar`).
    None,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::Gzip => MediaType::OciLayerGzip,
            Compression::Zstd => MediaType::OciLayerZstd,
            Compression::None => MediaType::OciLayer,
        }
    }

    /// The level used when none is given: gzip 6 and zstd 3, as their command-line tools.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
            Compression::None => 0,
        }
    }

    /// The block codec for this compression at `level`; `None` for no compression.
    pub fn codec(self, level: u32) -> Option<BlockCodec> {
        match self {
            Compression::Gzip => Some(BlockCodec::Gzip(level)),
            Compression::Zstd => Some(BlockCodec::Zstd(level)),
            Compression::None => None,
        }
    }

    /// Everything besides the input that decides the compressed bytes: algorithm, level, block
    /// size and backend version. Two builds with the same identity and the same tar write the
    /// same blob, which is what makes a layer cache keyed on it sound.
    pub fn identity(self, level: u32) -> String {
        match self.codec(level) {
            Some(codec) => format!("{self}/level={level}/block={}/{}", codec.block_size(), codec.backend()),
            None => self.to_string(),
        }
    }

    /// Checks that `level` is one this compressor accepts.
    pub fn check_level(self, level: u32) -> Result<()> {
        let max = match self {
            Compression::Gzip => 9,
            Compression::Zstd => 19,
            Compression::None => 0,
        };
        if level > max {
            return Err(Error::invalid(
                "compression level",
                level.to_string(),
                format!("{self} takes a level from 0 to {max}"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        })
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Compression> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            _ => Err(Error::invalid("compression", s, "use gzip, zstd or none")),
        }
    }
}

/// Writes the compressed layer of `source` placed at `dest` into `out`.
///
/// Returns the diff_id (sha256 of the uncompressed tar) and the writer, which has received
/// every compressed byte.
pub fn write_layer<W: Write + Send + 'static>(
    source: &Path,
    dest: &str,
    excludes: &[String],
    options: &TarOptions,
    compression: Compression,
    level: u32,
    out: W,
) -> Result<(Digest, W)> {
    match compression.codec(level) {
        // This thread reads files into a tar, cut into blocks; workers compress the blocks;
        // a writer thread hashes the tar and passes the compressed blocks in order to `out`,
        // which hashes and stores them on a thread of its own.
        Some(codec) => {
            let stored = OffloadWriter::new(out);
            let compressor = ParallelCompressor::new(stored, codec).at("start compressing", source)?;
            let tar = write_tree(source, dest, excludes, options, compressor)?;
            let (diff_id, stored) = tar.finish().at("compress layer of", source)?;
            Ok((diff_id, stored.finish().at("store layer of", source)?))
        }
        // Hashing and storing on a thread of their own, beside the reading.
        None => {
            let hashed = OffloadWriter::new(HashingWriter::new(out));
            let tar = write_tree(source, dest, excludes, options, hashed)?;
            let (diff_id, _, out) = tar.finish().at("hash layer of", source)?.finish();
            Ok((diff_id, out))
        }
    }
}

/// The diff_id of the layer of `source` placed at `dest`: the sha256 of its tar, which is
/// written and hashed but neither compressed nor stored.
pub fn diff_id(source: &Path, dest: &str, excludes: &[String], options: &TarOptions) -> Result<Digest> {
    let (diff_id, _) = write_layer(source, dest, excludes, options, Compression::None, 0, io::sink())?;
    Ok(diff_id)
}
