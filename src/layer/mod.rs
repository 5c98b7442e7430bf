//! Layers: a directory or file turned into a reproducible, compressed tar blob.
//!
//! One streaming pass writes the tar, hashes it (the diff_id), compresses it and hands the
//! compressed bytes to the caller's writer, which hashes and stores them. Nothing holds a whole
//! layer in memory.

mod gzip;
pub mod ignore;
mod tar;

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

pub use self::gzip::ParallelGzip;
pub use self::tar::{write_tree, TarOptions};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
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
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
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

/// Bytes per zstd job. Fixed, so the output never depends on the machine; at 2 MiB the
/// encoder stays near 35 MiB of memory where zstd's default (8 MiB at level 3) needs 115 MiB.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// A writer that compresses into `W` with the chosen algorithm.
enum Compressor<W: Write + Send + 'static> {
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write + Send + 'static> Compressor<W> {
    fn new(compression: Compression, level: u32, out: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzip::new(out, level)),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
                // Always multithreaded: zstd's single-threaded mode writes other bytes, and the
                // multithreaded output does not depend on the number of workers.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                encoder.multithread(workers as u32)?;
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Compressor::Zstd(encoder)
            }
            Compression::None => Compressor::None(out),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(gzip) => gzip.finish(),
            Compressor::Zstd(zstd) => zstd.finish(),
            Compressor::None(out) => Ok(out),
        }
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(gzip) => gzip.write(buf),
            Compressor::Zstd(zstd) => zstd.write(buf),
            Compressor::None(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(gzip) => gzip.flush(),
            Compressor::Zstd(zstd) => zstd.flush(),
            Compressor::None(out) => out.flush(),
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
    // Stages on threads of their own: reading files into a tar; hashing the tar and feeding the
    // compressor (gzip and zstd add workers of their own); then `out`, on its own thread.
    let stored = OffloadWriter::new(out);
    let compressor = Compressor::new(compression, level, stored).at("start compressing", source)?;
    let hashed = OffloadWriter::new(HashingWriter::new(compressor));
    let tar = write_tree(source, dest, excludes, options, hashed)?;
    let (diff_id, _, compressor) = tar.finish().at("compress layer of", source)?.finish();
    let stored = compressor.finish().at("compress layer of", source)?;
    let out = stored.finish().at("store layer of", source)?;
    Ok((diff_id, out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// zstd's multithreaded output must not depend on the number of workers.
    #[test]
    fn zstd_output_is_the_same_for_any_number_of_workers() {
        let data: Vec<u8> = (0..7_000_000u32).flat_map(|i| (i / 3).to_le_bytes()).collect();
        let compress = |workers: u32| {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            encoder.multithread(workers).unwrap();
            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE)).unwrap();
            encoder.write_all(&data).unwrap();
            encoder.finish().unwrap()
        };
        let one = compress(1);
        assert_eq!(one, compress(2));
        assert_eq!(one, compress(4));
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}
