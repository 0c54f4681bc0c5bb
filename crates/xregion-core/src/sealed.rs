//! SSE-C versions travel sealed (ELI-7: S3 replicates objects encrypted with customer-provided
//! keys, and the replica keeps the same encryption).
//!
//! A region cannot open an SSE-C version without the client's key, which it never stores, so
//! replication cannot send the plaintext as it does for every other version. It sends what is
//! stored instead: the data key wrapped by the client's key, and each piece's sealed bytes
//! with the label its piece key was derived under ([`SealedVersion`]). The destination stores
//! them as they are, one blob per piece (or inline for one small piece), and records the
//! labels (`Encryption::labels`), since its own blobs have other ids. The client then reads the
//! replica with the same key as the source. What the destination can check: the transfer
//! CRC32C over the sealed bytes, and that their length is the one the pieces' sizes give;
//! every chunk is authenticated again when the client reads it.

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use xregion_blob::checksum::{Hasher, to_base64};
use xregion_crypto::{INLINE_LABEL, sealed_len};
use xregion_types::{BlobRef, BlobSegment, ChecksumAlgorithm, Encryption, InvalidInput, ObjectData};

use crate::objects::{Body, INLINE_MAX};
use crate::{CoreError, CoreResult, Region};

/// Most pieces a sealed version may have (S3's most parts).
const MAX_PIECES: usize = 10_000;
/// Largest piece (S3's largest object, 5 TiB): keeps every sum of sizes far from overflow.
const MAX_PIECE: u64 = 5 << 40;

/// One sealed piece of an SSE-C version: a blob segment or the inline body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPiece {
    /// The label its piece key was derived under.
    pub label: String,
    /// Its plaintext length (the sealed bytes are `sealed_len` of it).
    pub len: u64,
}

/// An SSE-C version as it travels to a replica: its wrapped data key and its pieces, whose
/// sealed bytes follow one another in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedVersion {
    /// The data key, wrapped by the client's key.
    pub wrapped_key: Vec<u8>,
    /// The pieces in order.
    pub pieces: Vec<SealedPiece>,
}

impl SealedVersion {
    /// The plaintext size of the version.
    pub fn size(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// How many sealed bytes the pieces take, back to back.
    pub fn sealed_size(&self) -> u64 {
        self.pieces.iter().map(|p| sealed_len(p.len)).sum()
    }

    /// The wrapped key as a header value (hex).
    pub fn key_header(&self) -> String {
        hex::encode(&self.wrapped_key)
    }

    /// The pieces as a header value: `label:len,label:len,…` (empty for an empty version).
    pub fn pieces_header(&self) -> String {
        let pieces: Vec<String> = self.pieces.iter().map(|p| format!("{}:{}", p.label, p.len)).collect();
        pieces.join(",")
    }

    /// Parses [`SealedVersion::key_header`] and [`SealedVersion::pieces_header`]. Labels are
    /// blob ids or `inline`: letters and digits only.
    pub fn parse(key: &str, pieces: &str) -> CoreResult<SealedVersion> {
        let bad = |what: &str| CoreError::Invalid(InvalidInput::new("InvalidArgument", format!("invalid {what}")));
        let wrapped_key = hex::decode(key.trim()).map_err(|_| bad("x-xregion-sealed-key"))?;
        let mut parsed = Vec::new();
        for piece in pieces.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, len) = piece.split_once(':').ok_or_else(|| bad("x-xregion-sealed-pieces"))?;
            let good_label = !label.is_empty() && label.len() <= 64 && label.bytes().all(|b| b.is_ascii_alphanumeric());
            let len: u64 = len.parse().map_err(|_| bad("x-xregion-sealed-pieces"))?;
            if !good_label || len > MAX_PIECE || parsed.len() == MAX_PIECES {
                return Err(bad("x-xregion-sealed-pieces"));
            }
            parsed.push(SealedPiece { label: label.to_owned(), len });
        }
        Ok(SealedVersion { wrapped_key, pieces: parsed })
    }

    /// The encryption record of a replica holding these pieces.
    pub(crate) fn encryption(&self) -> Encryption {
        Encryption {
            key_id: Encryption::CUSTOMER_KEY_ID,
            wrapped_key: self.wrapped_key.clone(),
            labels: self.pieces.iter().map(|p| p.label.clone()).collect(),
        }
    }
}

/// A sealed version stored by [`Region::store_sealed`], not committed yet.
#[derive(Debug)]
pub(crate) struct StoredSealed {
    /// The blob segments (plaintext lengths), when not inline.
    pub blob: BlobRef,
    /// The inline body (sealed), for one small piece.
    pub inline: Option<Vec<u8>>,
    /// CRC32C of the sealed bytes as received (base64).
    pub crc32c: String,
}

impl Region {
    /// The pieces of an SSE-C version as it is stored (`None` for any other version).
    pub fn sealed_version(&self, data: &ObjectData) -> Option<SealedVersion> {
        let encryption = data.encryption.as_ref().filter(|e| e.is_customer_key())?;
        let label = |i: usize, own: &[u8]| String::from_utf8_lossy(encryption.label(i, own)).into_owned();
        let pieces = match data.inline {
            Some(_) if data.size > 0 => vec![SealedPiece { label: label(0, INLINE_LABEL), len: data.size }],
            Some(_) => Vec::new(),
            None => data
                .blob
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| SealedPiece { label: label(i, s.id.as_bytes()), len: s.len })
                .collect(),
        };
        Some(SealedVersion { wrapped_key: encryption.wrapped_key.clone(), pieces })
    }

    /// The sealed bytes of an SSE-C version's pieces, back to back, as they are on disk.
    pub fn read_sealed_version(&self, data: &ObjectData) -> BoxStream<'static, std::io::Result<Bytes>> {
        if let Some(inline) = data.inline {
            let bytes = self
                .meta()
                .get_inline(inline)
                .map_err(std::io::Error::other)
                .and_then(|b| b.ok_or_else(|| std::io::Error::other("the object's inline data is gone")));
            return futures::stream::once(async move { bytes.map(Bytes::from) }).boxed();
        }
        // The files hold the sealed bytes: read as plain blobs of their sealed lengths.
        let segments: Vec<BlobSegment> =
            data.blob.segments.iter().map(|s| BlobSegment { id: s.id.clone(), len: sealed_len(s.len) }).collect();
        let total = segments.iter().map(|s| s.len).sum();
        self.blobs().read(&BlobRef { segments }, 0, total)
    }

    /// CRC32C (base64) of [`Region::read_sealed_version`]'s bytes: the transfer check of a
    /// sealed replica.
    pub async fn sealed_transfer_crc32c(&self, data: &ObjectData) -> CoreResult<String> {
        let mut hasher = Hasher::new(ChecksumAlgorithm::Crc32c);
        let mut stream = self.read_sealed_version(data);
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| CoreError::Internal(format!("reading the source version: {e}")))?);
        }
        Ok(to_base64(&hasher.finalize()))
    }

    /// Stores the sealed bytes of `sealed`'s pieces from `body` as they are: one durable blob
    /// per piece, or inline for a single piece of at most [`INLINE_MAX`] bytes. The body must
    /// hold exactly [`SealedVersion::sealed_size`] bytes. On an error nothing stays behind.
    pub(crate) async fn store_sealed(&self, body: Body<'_>, sealed: &SealedVersion) -> CoreResult<StoredSealed> {
        let mut segments = Vec::new();
        let result = self.store_sealed_into(body, sealed, &mut segments).await;
        if result.is_err() {
            self.free_blobs(&segments).await;
        }
        result
    }

    async fn store_sealed_into(
        &self,
        mut body: Body<'_>,
        sealed: &SealedVersion,
        segments: &mut Vec<BlobSegment>,
    ) -> CoreResult<StoredSealed> {
        let mut hasher = Hasher::new(ChecksumAlgorithm::Crc32c);
        let inline = matches!(&sealed.pieces[..], [only] if only.len <= INLINE_MAX as u64);
        let mut inline_bytes = Vec::new();
        let mut input = Input { body: &mut body, pending: Bytes::new(), hasher: &mut hasher };
        for piece in &sealed.pieces {
            let left = sealed_len(piece.len);
            if inline {
                input.copy(left, None, &mut inline_bytes).await.map_err(|e| e.unwrap_or_else(|| short_body(sealed)))?;
                continue;
            }
            let mut writer = self.blobs().writer_with(None, false, None)?;
            if let Err(e) = input.copy(left, Some(&mut writer), &mut inline_bytes).await {
                writer.abort().await;
                return Err(e.unwrap_or_else(|| short_body(sealed)));
            }
            let info = writer.finish().await?;
            segments.push(BlobSegment { id: info.segment.id, len: piece.len });
        }
        let mut trailing = !input.pending.is_empty();
        while !trailing && let Some(chunk) = body.next().await {
            trailing = !chunk.map_err(CoreError::Body)?.is_empty();
        }
        if trailing {
            return Err(CoreError::IncompleteBody(format!(
                "the sealed replica has more than the {} bytes its pieces take",
                sealed.sealed_size()
            )));
        }
        Ok(StoredSealed {
            blob: BlobRef { segments: segments.clone() },
            inline: (inline && sealed.size() > 0).then_some(inline_bytes),
            crc32c: to_base64(&hasher.finalize()),
        })
    }
}

/// A request body read piece by piece: what is left of the last chunk, and the CRC32C of
/// everything read.
struct Input<'b, 'a> {
    body: &'b mut Body<'a>,
    pending: Bytes,
    hasher: &'b mut Hasher,
}

impl Input<'_, '_> {
    /// Moves the next `len` bytes into `writer`, or onto `inline` without one. `Err(None)`:
    /// the body ended first.
    async fn copy(
        &mut self,
        mut len: u64,
        mut writer: Option<&mut xregion_blob::BlobWriter>,
        inline: &mut Vec<u8>,
    ) -> Result<(), Option<CoreError>> {
        while len > 0 {
            if self.pending.is_empty() {
                self.pending = match self.body.next().await {
                    Some(chunk) => chunk.map_err(|e| Some(CoreError::Body(e)))?,
                    None => return Err(None),
                };
                self.hasher.update(&self.pending);
                continue;
            }
            let take = self.pending.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            let part = self.pending.split_to(take);
            len -= take as u64;
            match writer.as_deref_mut() {
                Some(writer) => writer.write(part).await.map_err(|e| Some(e.into()))?,
                None => inline.extend_from_slice(&part),
            }
        }
        Ok(())
    }
}

fn short_body(sealed: &SealedVersion) -> CoreError {
    CoreError::IncompleteBody(format!(
        "the sealed replica ended before the {} bytes its pieces take",
        sealed.sealed_size()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let sealed = SealedVersion {
            wrapped_key: vec![1, 2, 255],
            pieces: vec![
                SealedPiece { label: "0123abcd".into(), len: 5_242_880 },
                SealedPiece { label: "inline".into(), len: 0 },
            ],
        };
        assert_eq!(sealed.pieces_header(), "0123abcd:5242880,inline:0");
        assert_eq!(SealedVersion::parse(&sealed.key_header(), &sealed.pieces_header()).unwrap(), sealed);
        assert_eq!(sealed.size(), 5_242_880);
        assert_eq!(sealed.sealed_size(), sealed_len(5_242_880));
        let empty = SealedVersion::parse("aa", "").unwrap();
        assert!(empty.pieces.is_empty() && empty.sealed_size() == 0);
        assert!(SealedVersion::parse("zz", "a:1").is_err(), "not hex");
        for bad in ["a:b", "a-b:1", ":1", "a", "../x:1", "a:-1", &format!("a:{}", MAX_PIECE + 1)] {
            assert!(SealedVersion::parse("aa", bad).is_err(), "{bad}");
        }
        let too_many = vec!["a:1"; MAX_PIECES + 1].join(",");
        assert!(SealedVersion::parse("aa", &too_many).is_err());
    }
}
