//! The encrypted archive in the database, as blocking `Write` and `Read`
//! ends for the builder and the decryptor (both run on a blocking thread):
//! about 1 MiB a row in `export_chunks`, so every instance can serve every
//! archive and neither side ever holds more than one chunk.

use std::{
    io::{self, Read, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::runtime::Handle;

use crate::store::{exports, Db};

/// Rows of this size stay well under PostgreSQL's 1 GiB value limit and
/// SQLite's default 1 GB blob limit, and are few for a large archive.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Writes the attempt's archive as chunks under its lease.
pub struct ChunkSink {
    handle: Handle,
    db: Db,
    request_id: String,
    lease: String,
    seq: i64,
    buf: Vec<u8>,
    /// Set when the attempt must stop: its lease was taken over, or the
    /// process is shutting down.
    stop: Arc<AtomicBool>,
}

impl ChunkSink {
    pub fn new(
        handle: Handle,
        db: Db,
        request_id: String,
        lease: String,
        stop: Arc<AtomicBool>,
    ) -> ChunkSink {
        ChunkSink {
            handle,
            db,
            request_id,
            lease,
            seq: 0,
            buf: Vec::with_capacity(CHUNK_BYTES),
            stop,
        }
    }

    fn store(&mut self) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("export attempt stopped"));
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        let stored = self
            .handle
            .block_on(exports::write_chunk(
                &self.db,
                &self.request_id,
                &self.lease,
                self.seq,
                data,
            ))
            .map_err(io::Error::other)?;
        if !stored {
            self.stop.store(true, Ordering::Relaxed);
            return Err(io::Error::other("export lease lost"));
        }
        self.seq += 1;
        Ok(())
    }

    /// Stores what is left after the encryptor's last chunk.
    pub fn close(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.store()?;
        }
        Ok(())
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK_BYTES - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.store()?;
        }
        Ok(n)
    }

    /// Chunks are stored when full or at [`ChunkSink::close`]; a flush in
    /// between would only make short rows.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads an archive back chunk by chunk. A missing chunk reads as the end,
/// which the decryptor rejects as a truncated archive.
pub struct ChunkReader {
    handle: Handle,
    db: Db,
    archive_id: String,
    seq: i64,
    buf: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub fn new(handle: Handle, db: Db, archive_id: String) -> ChunkReader {
        ChunkReader {
            handle,
            db,
            archive_id,
            seq: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let next = self
                .handle
                .block_on(exports::read_chunk(&self.db, &self.archive_id, self.seq))
                .map_err(io::Error::other)?;
            match next {
                Some(data) => {
                    self.buf = data;
                    self.pos = 0;
                    self.seq += 1;
                }
                None => return Ok(0),
            }
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
