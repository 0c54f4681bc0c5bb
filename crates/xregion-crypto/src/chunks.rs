//! Chunked AES-256-GCM: sealing a piece as it streams in, opening any run of its chunks.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::CryptoError;

/// Plaintext bytes per chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes of a chunk's tag.
pub const TAG_BYTES: usize = 16;
/// Bytes of a whole sealed chunk (every chunk but the last).
pub const SEALED_CHUNK_BYTES: usize = CHUNK_BYTES + TAG_BYTES;

/// The sealed length of `plain` plaintext bytes.
pub fn sealed_len(plain: u64) -> u64 {
    let rest = plain % CHUNK_BYTES as u64;
    plain / CHUNK_BYTES as u64 * SEALED_CHUNK_BYTES as u64 + if rest > 0 { rest + TAG_BYTES as u64 } else { 0 }
}

/// How many chunks `plain` plaintext bytes make.
pub fn chunk_count(plain: u64) -> u64 {
    plain.div_ceil(CHUNK_BYTES as u64)
}

/// The nonce of chunk `index`: a last-chunk flag, three zero bytes, the index big-endian.
fn nonce(index: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[0] = u8::from(last);
    bytes[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The cipher of one piece (a blob file or an inline body), from [`crate::DataKey::segment`].
pub struct SegmentCipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentCipher(..)")
    }
}

impl SegmentCipher {
    pub(crate) fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Internal("piece key"))?;
        Ok(Self { key: LessSafeKey::new(key) })
    }

    /// Seals chunk `index` (at most [`CHUNK_BYTES`]) in place and returns its tag.
    fn seal_chunk(&self, index: u64, last: bool, chunk: &mut [u8]) -> Result<[u8; TAG_BYTES], CryptoError> {
        debug_assert!(chunk.len() <= CHUNK_BYTES);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(index, last), Aad::empty(), chunk)
            .map_err(|_| CryptoError::Internal("seal chunk"))?;
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Seals a whole piece at once (an inline body).
    pub fn seal_all(&self, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(usize::try_from(sealed_len(plain.len() as u64)).unwrap_or(0));
        let total = chunk_count(plain.len() as u64);
        for (index, chunk) in (0..).zip(plain.chunks(CHUNK_BYTES)) {
            self.seal_into(index, index + 1 == total, chunk, &mut out)?;
        }
        Ok(out)
    }

    /// Appends chunk `index` sealed (ciphertext ‖ tag) to `out`.
    fn seal_into(&self, index: u64, last: bool, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = self.seal_chunk(index, last, &mut out[start..])?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a whole piece sealed by [`SegmentCipher::seal_all`] or a [`Sealer`].
    pub fn open_all(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = sealed.to_vec();
        let chunks = whole_chunks(buf.len() as u64)?;
        let n = self.open_chunks(0, chunks, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Opens, in place, the sealed chunks in `buf`: chunk `first` and the ones after it, of a
    /// piece of `total` chunks. `buf` holds whole sealed chunks back to back (the last one of
    /// the piece may be short). Their plaintext ends up at the start of `buf`; returns its
    /// length. Fails if any chunk does not authenticate.
    pub fn open_chunks(&self, first: u64, total: u64, buf: &mut [u8]) -> Result<usize, CryptoError> {
        let mut read = 0;
        let mut written = 0;
        let mut index = first;
        while read < buf.len() {
            let end = (read + SEALED_CHUNK_BYTES).min(buf.len());
            if end - read <= TAG_BYTES || index >= total || (end - read < SEALED_CHUNK_BYTES && index + 1 != total) {
                return Err(CryptoError::Open { index });
            }
            let last = index + 1 == total;
            let plain = self
                .key
                .open_in_place(nonce(index, last), Aad::empty(), &mut buf[read..end])
                .map_err(|_| CryptoError::Open { index })?
                .len();
            buf.copy_within(read..read + plain, written);
            written += plain;
            read = end;
            index += 1;
        }
        Ok(written)
    }
}

/// How many chunks a sealed piece of `len` bytes holds; fails for a length no plaintext seals to.
fn whole_chunks(len: u64) -> Result<u64, CryptoError> {
    let rest = len % SEALED_CHUNK_BYTES as u64;
    if rest != 0 && rest <= TAG_BYTES as u64 {
        return Err(CryptoError::Length { len });
    }
    Ok(len.div_ceil(SEALED_CHUNK_BYTES as u64))
}

/// Seals a piece as its plaintext streams in. A full chunk is sealed once more bytes follow
/// (so the last chunk can be marked as last by [`Sealer::finish`]); at most one chunk of
/// plaintext is held.
#[derive(Debug)]
pub struct Sealer {
    cipher: SegmentCipher,
    next: u64,
    pending: Vec<u8>,
}

impl Sealer {
    /// A sealer for a new piece.
    pub fn new(cipher: SegmentCipher) -> Self {
        Self { cipher, next: 0, pending: Vec::new() }
    }

    /// Takes more plaintext; appends the sealed chunks it completes to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !data.is_empty() {
            if self.pending.len() == CHUNK_BYTES {
                self.seal_pending(false, out)?;
            }
            // A whole chunk with more bytes after it goes from `data` to `out` directly
            // (one copy of the plaintext less).
            if self.pending.is_empty() && data.len() > CHUNK_BYTES {
                let (chunk, rest) = data.split_at(CHUNK_BYTES);
                self.cipher.seal_into(self.next, false, chunk, out)?;
                self.next += 1;
                data = rest;
                continue;
            }
            let take = (CHUNK_BYTES - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals what is held as the last chunk (nothing for an empty piece).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.seal_pending(true, out)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.cipher.seal_into(self.next, last, &self.pending, out)?;
        self.pending.clear();
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::MasterKey;

    fn cipher() -> SegmentCipher {
        let master = MasterKey::from_hex(&"44".repeat(32)).unwrap();
        let (key, _) = master.new_data_key().unwrap();
        key.segment(b"piece").unwrap()
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn lengths() {
        let c = CHUNK_BYTES as u64;
        assert_eq!(sealed_len(0), 0);
        assert_eq!(sealed_len(1), 17);
        assert_eq!(sealed_len(c), c + 16);
        assert_eq!(sealed_len(c + 1), c + 16 + 17);
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(c), 1);
        assert_eq!(chunk_count(c + 1), 2);
        assert!(whole_chunks(16).is_err());
        assert!(whole_chunks(SEALED_CHUNK_BYTES as u64 + 3).is_err());
    }

    #[test]
    fn every_changed_byte_or_cut_is_detected() {
        let cipher = cipher();
        let sealed = cipher.seal_all(&plain(CHUNK_BYTES + 100)).unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(CHUNK_BYTES as u64 + 100));
        for i in (0..sealed.len()).step_by(997).chain([sealed.len() - 1]) {
            let mut changed = sealed.clone();
            changed[i] ^= 0x80;
            assert!(cipher.open_all(&changed).is_err(), "byte {i}");
        }
        // Dropping the last chunk leaves a first chunk not marked last.
        assert!(cipher.open_all(&sealed[..SEALED_CHUNK_BYTES]).is_err());
        // Swapping chunks of equal size.
        let two = cipher.seal_all(&plain(3 * CHUNK_BYTES)).unwrap();
        let mut swapped = two[SEALED_CHUNK_BYTES..2 * SEALED_CHUNK_BYTES].to_vec();
        swapped.extend_from_slice(&two[..SEALED_CHUNK_BYTES]);
        swapped.extend_from_slice(&two[2 * SEALED_CHUNK_BYTES..]);
        assert!(cipher.open_all(&swapped).is_err());
    }

    #[test]
    fn an_empty_piece_seals_to_nothing() {
        let cipher = cipher();
        assert!(cipher.seal_all(b"").unwrap().is_empty());
        assert!(cipher.open_all(b"").unwrap().is_empty());
    }

    proptest! {
        /// Whatever the write pattern, the sealed bytes are those of `seal_all`, and any run
        /// of chunks opens to its plaintext.
        #[test]
        fn streamed_sealing_and_ranged_opening(
            len in 0usize..(3 * CHUNK_BYTES + 50),
            cuts in prop::collection::vec(1usize..70_000, 0..8),
            first in 0u64..4,
            count in 1u64..4,
        ) {
            let data = plain(len);
            let master = MasterKey::from_hex(&"44".repeat(32)).unwrap();
            let (key, _) = master.new_data_key().unwrap();
            let cipher = key.segment(b"piece").unwrap();
            let mut sealer = Sealer::new(key.segment(b"piece").unwrap());
            let mut streamed = Vec::new();
            let mut rest = &data[..];
            for cut in cuts {
                let n = cut.min(rest.len());
                sealer.push(&rest[..n], &mut streamed).unwrap();
                rest = &rest[n..];
            }
            sealer.push(rest, &mut streamed).unwrap();
            sealer.finish(&mut streamed).unwrap();
            prop_assert_eq!(streamed.len() as u64, sealed_len(len as u64));
            prop_assert_eq!(&cipher.open_all(&streamed).unwrap(), &data);

            let total = chunk_count(len as u64);
            prop_assume!(first < total);
            let end_chunk = (first + count).min(total);
            let from = first as usize * SEALED_CHUNK_BYTES;
            let to = (end_chunk as usize * SEALED_CHUNK_BYTES).min(streamed.len());
            let mut buf = streamed[from..to].to_vec();
            let n = cipher.open_chunks(first, total, &mut buf).unwrap();
            let plain_from = first as usize * CHUNK_BYTES;
            let plain_to = (end_chunk as usize * CHUNK_BYTES).min(len);
            prop_assert_eq!(&buf[..n], &data[plain_from..plain_to]);
        }
    }
}
