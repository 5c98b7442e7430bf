//! Deterministic parallel gzip, in the manner of pigz.
//!
//! The input is cut into fixed-size blocks. Each block is deflated on its own thread, primed
//! with the last 32 KiB of the block before it as a dictionary, and ended with a sync flush, so
//! the concatenated blocks form one ordinary deflate stream. The output depends only on the
//! input and the level, never on the number of threads. Blocks whose bytes look random (high
//! entropy: already compressed data) are stored instead of searched for matches, which is what
//! makes this faster than pigz on real layers.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per block.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Deflate's window: the dictionary handed from one block to the next.
const WINDOW: usize = 32 * 1024;
/// Above this many bits of entropy per byte, a block is stored rather than compressed.
const STORE_ENTROPY_BITS: f64 = 7.95;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

struct Job {
    sequence: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

type Compressed = (u64, io::Result<Vec<u8>>);

/// A gzip encoder that compresses on all cores and writes byte-identical output on any machine.
pub struct ParallelGzip<W: Write + Send + 'static> {
    level: Compression,
    block: Vec<u8>,
    /// The last 32 KiB of the previous block: the next block's dictionary.
    dictionary: Vec<u8>,
    sequence: u64,
    crc: crc32fast::Hasher,
    total: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    sink: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    /// Starts an encoder at `level` (0–9) writing to `out`, with one worker per core.
    pub fn new(out: W, level: u32) -> ParallelGzip<W> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParallelGzip::with_threads(out, level, threads)
    }

    /// Starts an encoder with `threads` workers; the output is the same for any number.
    pub fn with_threads(out: W, level: u32, threads: usize) -> ParallelGzip<W> {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let (done_tx, done_rx) = mpsc::sync_channel::<Compressed>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let level = Compression::new(level.min(9));
        let workers = (0..threads)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || work(level, &jobs, &done))
            })
            .collect();
        drop(done_tx);
        let sink = std::thread::spawn(move || write_in_order(out, done_rx));
        ParallelGzip {
            level,
            block: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            sequence: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            jobs: Some(job_tx),
            workers,
            sink: Some(sink),
        }
    }

    /// Hands the current block to the workers; `last` ends the deflate stream.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let next_dictionary = match self.level.level() {
            0 => Vec::new(),
            _ => data[data.len().saturating_sub(WINDOW)..].to_vec(),
        };
        let job = Job {
            sequence: self.sequence,
            dictionary: std::mem::replace(&mut self.dictionary, next_dictionary),
            data,
            last,
        };
        self.sequence += 1;
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        Err(self.sink_error())
    }

    /// The error that stopped the writer thread.
    fn sink_error(&mut self) -> io::Error {
        self.jobs = None;
        match self.sink.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("gzip writer thread stopped"),
        }
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        self.jobs = None;
        for worker in self.workers.drain(..) {
            worker.join().map_err(|_| io::Error::other("gzip worker panicked"))?;
        }
        let mut out = match self.sink.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            _ => return Err(io::Error::other("gzip writer thread panicked")),
        };
        out.write_all(&self.crc.clone().finalize().to_le_bytes())?;
        out.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(out)
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.block.len();
        let taken = &buf[..buf.len().min(room)];
        self.block.extend_from_slice(taken);
        self.crc.update(taken);
        self.total += taken.len() as u64;
        if self.block.len() == BLOCK_SIZE {
            self.dispatch(false)?;
        }
        Ok(taken.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn work(level: Compression, jobs: &Mutex<Receiver<Job>>, done: &SyncSender<Compressed>) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let result = deflate_block(level, &job.dictionary, &job.data, job.last);
        if done.send((job.sequence, result)).is_err() {
            return;
        }
    }
}

/// Writes the gzip header, then each compressed block in sequence order.
fn write_in_order<W: Write>(mut out: W, done: Receiver<Compressed>) -> io::Result<W> {
    out.write_all(&HEADER)?;
    let mut next = 0u64;
    let mut waiting = BTreeMap::new();
    for (sequence, block) in done {
        waiting.insert(sequence, block);
        while let Some(block) = waiting.remove(&next) {
            out.write_all(&block?)?;
            next += 1;
        }
    }
    Ok(out)
}

/// Raw-deflates one block, byte-aligned at its end (sync flush) or final (`last`).
pub(crate) fn deflate_block(level: Compression, dictionary: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let store = level.level() == 0 || looks_random(data);
    let mut deflate = Compress::new(if store { Compression::none() } else { level }, false);
    if !store && !dictionary.is_empty() {
        deflate.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let expected = if store { data.len() + data.len() / 8192 } else { data.len() / 2 };
    let mut out = Vec::with_capacity(expected + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(data.len() / 8 + 1024);
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = deflate.total_in() as usize == data.len();
        let finished = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if finished {
            return Ok(out);
        }
    }
}

/// Whether the bytes' Shannon entropy says deflate would find nothing to gain.
fn looks_random(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &byte in data {
        counts[byte as usize] += 1;
    }
    let total = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum();
    entropy > STORE_ENTROPY_BITS
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Text-like data (compressible) followed by pseudo-random data (stored).
    fn sample(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut line = 0u64;
        while data.len() < len / 2 {
            data.extend_from_slice(format!("line {line}: the quick brown fox {}\n", line % 17).as_bytes());
            line += 1;
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        while data.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        data.truncate(len);
        data
    }

    fn gzip(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut encoder = ParallelGzip::with_threads(Vec::new(), level, threads);
        for chunk in data.chunks(100_003) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_level_and_size() {
        for len in [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, 3 * BLOCK_SIZE + 12_345] {
            let data = sample(len);
            for level in [0, 1, 6, 9] {
                assert_eq!(gunzip(&gzip(&data, level, 2)), data, "len {len} level {level}");
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_the_number_of_threads() {
        let data = sample(5 * BLOCK_SIZE + 777);
        let one = gzip(&data, 6, 1);
        assert_eq!(one, gzip(&data, 6, 2));
        assert_eq!(one, gzip(&data, 6, 5));
    }

    #[test]
    fn random_blocks_are_stored_and_text_is_compressed() {
        let data = sample(4 * BLOCK_SIZE);
        let compressed = gzip(&data, 6, 2);
        let text_half = gzip(&data[..2 * BLOCK_SIZE], 6, 2).len();
        assert!(text_half < BLOCK_SIZE / 4, "text compresses well: {text_half}");
        let overhead = compressed.len() as f64 / (2 * BLOCK_SIZE + text_half) as f64;
        assert!(overhead < 1.001, "stored random data stays its size: {overhead}");
    }

    /// The deflate backend (zlib-rs) is pinned: a silent switch would change every layer digest.
    #[test]
    fn golden_digest_catches_a_backend_change() {
        let digest = crate::Digest::of(&gzip(&sample(3 * BLOCK_SIZE), 6, 2));
        assert_eq!(digest.to_string(), GOLDEN);
    }

    const GOLDEN: &str = "sha256:97087cb27b972039e43aa1241c4157b02b90c1307caa452ad71e92157dc9b466";
}
