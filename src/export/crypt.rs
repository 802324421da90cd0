//! Archives at rest: XChaCha20-Poly1305 in the STREAM construction (64 KiB
//! chunks, each authenticated, the last one marked), so an archive of any
//! size is encrypted and decrypted without holding it in memory, and a
//! truncated or altered file fails to open.

use std::io::{self, Read, Write};

use chacha20poly1305::{
    aead::stream::{DecryptorBE32, EncryptorBE32},
    KeyInit, XChaCha20Poly1305,
};
use rand::RngCore;

const MAGIC: &[u8; 4] = b"PPX1";
const CHUNK: usize = 64 * 1024;
const NONCE_PREFIX: usize = 19;

pub struct EncryptingWriter<W: Write> {
    inner: W,
    enc: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buf: Vec<u8>,
    written: u64,
}

fn other<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

impl<W: Write> EncryptingWriter<W> {
    pub fn new(mut inner: W, key: &[u8; 32]) -> io::Result<Self> {
        let mut prefix = [0u8; NONCE_PREFIX];
        rand::rng().fill_bytes(&mut prefix);
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        let cipher = XChaCha20Poly1305::new(key.into());
        Ok(EncryptingWriter {
            inner,
            enc: Some(EncryptorBE32::from_aead(cipher, (&prefix).into())),
            buf: Vec::with_capacity(CHUNK),
            written: (MAGIC.len() + NONCE_PREFIX) as u64,
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let ct = if last {
            let enc = self
                .enc
                .take()
                .ok_or_else(|| other("archive already finished"))?;
            enc.encrypt_last(self.buf.as_slice()).map_err(other)?
        } else {
            let enc = self
                .enc
                .as_mut()
                .ok_or_else(|| other("archive already finished"))?;
            enc.encrypt_next(self.buf.as_slice()).map_err(other)?
        };
        self.inner.write_all(&[last as u8])?;
        self.inner.write_all(&(ct.len() as u32).to_be_bytes())?;
        self.inner.write_all(&ct)?;
        self.written += 5 + ct.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the final chunk; returns the inner writer and the bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.emit(true)?;
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.emit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads an encrypted archive chunk by chunk, calling `sink` with plaintext.
pub fn decrypt<R: Read>(
    mut r: R,
    key: &[u8; 32],
    mut sink: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(other("not an archive"));
    }
    let mut prefix = [0u8; NONCE_PREFIX];
    r.read_exact(&mut prefix)?;
    let mut dec = Some(DecryptorBE32::from_aead(
        XChaCha20Poly1305::new(key.into()),
        (&prefix).into(),
    ));
    loop {
        let mut head = [0u8; 5];
        r.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > CHUNK + 16 {
            return Err(other("corrupt archive"));
        }
        let mut ct = vec![0u8; len];
        r.read_exact(&mut ct)?;
        if head[0] == 1 {
            let d = dec.take().ok_or_else(|| other("corrupt archive"))?;
            sink(
                d.decrypt_last(ct.as_slice())
                    .map_err(|_| other("archive failed authentication"))?,
            )?;
            return Ok(());
        }
        let d = dec.as_mut().ok_or_else(|| other("corrupt archive"))?;
        sink(
            d.decrypt_next(ct.as_slice())
                .map_err(|_| other("archive failed authentication"))?,
        )?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let key = [9u8; 32];
        let mut w = EncryptingWriter::new(Vec::new(), &key).unwrap();
        w.write_all(&data).unwrap();
        let (enc, n) = w.finish().unwrap();
        assert_eq!(n as usize, enc.len());
        let mut out = Vec::new();
        decrypt(enc.as_slice(), &key, |c| {
            out.extend(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn round_trips_any_size() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            roundtrip(len);
        }
    }

    #[test]
    fn detects_tampering_truncation_and_wrong_key() {
        let key = [3u8; 32];
        let mut w = EncryptingWriter::new(Vec::new(), &key).unwrap();
        w.write_all(&vec![7u8; CHUNK * 2]).unwrap();
        let (enc, _) = w.finish().unwrap();
        let sink = |_c: Vec<u8>| Ok(());
        let mut bad = enc.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(decrypt(bad.as_slice(), &key, sink).is_err());
        assert!(decrypt(&enc[..enc.len() - 10], &key, sink).is_err());
        assert!(decrypt(enc.as_slice(), &[4u8; 32], sink).is_err());
        // Dropping the last chunk must not pass as a complete archive.
        let first_chunk_end = 4 + NONCE_PREFIX + 5 + CHUNK + 16;
        assert!(decrypt(&enc[..first_chunk_end], &key, sink).is_err());
    }
}
