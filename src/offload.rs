//! A writer that hands its bytes to a thread of its own, so that the work behind it (hashing,
//! compressing, writing a file) runs beside the work in front of it on another core.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes per hand-over.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads: bounds the memory to `(DEPTH + 2) * CHUNK`.
const DEPTH: usize = 2;

/// Forwards everything written to `W` on a background thread, in order.
pub struct OffloadWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> OffloadWriter<W> {
    /// Starts the background thread writing into `inner`.
    pub fn new(mut inner: W) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = std::thread::spawn(move || {
            for mut chunk in full_rx {
                inner.write_all(&chunk)?;
                chunk.clear();
                let _ = empty_tx.try_send(chunk);
            }
            inner.flush()?;
            Ok(inner)
        });
        OffloadWriter { buffer: Vec::with_capacity(CHUNK), full: Some(full_tx), empty: empty_rx, thread: Some(thread) }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        let next = self.empty.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buffer, next);
        match self.full.as_ref().map(|full| full.send(chunk)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stop().err().unwrap_or_else(|| io::Error::other("writer thread stopped"))),
        }
    }

    /// Ends the thread and returns its writer, or the error that stopped it.
    fn stop(&mut self) -> io::Result<W> {
        self.full = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("writer thread panicked")),
            None => Err(io::Error::other("writer thread already stopped")),
        }
    }

    /// Writes what is buffered, waits for the thread and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buffer.is_empty() {
            self.hand_over()?;
        }
        self.stop()
    }
}

impl<W: Write + Send + 'static> Write for OffloadWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = buf.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes written to a file between two [`start_writeback`] calls.
pub const WRITEBACK_STEP: u64 = 16 << 20;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting (Linux `sync_file_range`), so that the fsync that ends a blob has little left to
/// wait for: the disk works while the compressors do. Best effort: errors are ignored, and
/// the fsync still gives the guarantee.
pub fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
        // SAFETY: the descriptor is open for as long as `file` is borrowed, and the call
        // reads and writes no memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Counts bytes written through a buffer into a file and starts their writeback every
/// [`WRITEBACK_STEP`] bytes.
#[derive(Debug, Default)]
pub struct Writeback {
    written: u64,
    started: u64,
}

impl Writeback {
    /// Records `n` more bytes written, of which `buffered` still wait in a buffer in front of
    /// `file`; starts the writeback of what reached the file when a step is full.
    pub fn wrote(&mut self, n: usize, buffered: usize, file: &std::fs::File) {
        self.written += n as u64;
        let in_file = self.written.saturating_sub(buffered as u64);
        if in_file >= self.started + WRITEBACK_STEP {
            start_writeback(file, self.started, in_file - self.started);
            self.started = in_file;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_come_back() {
        let data: Vec<u8> = (0..5 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let mut writer = OffloadWriter::new(Vec::new());
        for piece in data.chunks(70_001) {
            writer.write_all(piece).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), data);

        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = OffloadWriter::new(Full);
        let result = (0..10).try_for_each(|_| writer.write_all(&data));
        let error = result.err().unwrap_or_else(|| writer.finish().err().unwrap());
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }
}
