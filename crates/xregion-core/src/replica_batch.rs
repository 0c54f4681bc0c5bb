//! Batched replica writes: the wire format of `POST /_xregion/replicate/<bucket>`, an xregion
//! extension of the replica protocol (`docs/replication.md`, "Batches").
//!
//! One HTTP request carries many small replica versions and delete markers, so that a busy
//! source pays one request, one signature check and one group commit on the destination per
//! batch rather than per object (the per-request cost, not bytes, bounds small-object
//! replication). Each entry is applied exactly as the single-object replica write would apply
//! it (`Region::put_replica` / `Region::delete_marker_replica`: same checks, idempotent by
//! version id) and gets its own result; one bad entry fails only itself.
//!
//! Request body: `XRB1`, then per entry `u32` BE header length, the header (postcard
//! [`BatchEntry`]), `u32` BE body length, the body (empty for a delete marker).
//! The header's last byte is `BatchObject::encrypted` (since encryption at rest). Postcard
//! reads a prefix, so a reader from before ignores it, and a header from before, without it,
//! decodes through the frozen shape in `v1` as unencrypted.
//! Response body (`text/plain`): one line per entry, in order: `OK`, or
//! `ERR <http status> <S3 error code> <message>`.
//!
//! Hand-written framing: the format is four length-prefixed fields, and a zero-copy parse of
//! one buffer needs no framing crate.

use bytes::{Buf as _, BufMut as _, Bytes};
use serde::{Deserialize, Serialize};
use xregion_types::{InvalidInput, VersionId};

use crate::objects::{INLINE_MAX, ObjectMeta};
use crate::replica::{ReplicaPut, parse_checksum_header};
use crate::{CoreError, CoreResult};

/// First bytes of a batch body (format 1).
pub const MAGIC: &[u8; 4] = b"XRB1";
/// Objects up to this size travel in batches; larger ones stream one per request.
pub const BATCH_OBJECT_MAX: u64 = INLINE_MAX as u64;
/// Most entries in one batch.
pub const MAX_ENTRIES: usize = 256;
/// Largest batch body accepted.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// One replica in a batch: an object version (with `object`) or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// Object key.
    pub key: String,
    /// The source version id (STS-11).
    pub version_id: String,
    /// The source last-modified, unix ms (STS-12).
    pub last_modified_ms: i64,
    /// The version's description; `None` for a delete marker (DEL-6).
    pub object: Option<BatchObject>,
}

/// What a replica object version carries besides its bytes (ELI-10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchObject {
    /// Source ETag without quotes (STS-13).
    pub etag: String,
    /// Part sizes of a multipart source.
    pub part_sizes: Vec<u64>,
    /// Source checksum in the `x-xregion-source-checksum` form.
    pub checksum: Option<String>,
    /// Content headers, user metadata, tags and storage class (the rule's override applied).
    pub meta: ObjectMeta,
    /// The source version is encrypted at rest: so is the replica (ELI-7). Keep it last (see
    /// the module doc).
    pub encrypted: bool,
}

impl BatchEntry {
    /// The single-object replica write this entry stands for (objects only).
    pub fn replica_put(&self, bucket: &str) -> CoreResult<Option<ReplicaPut>> {
        let Some(o) = &self.object else { return Ok(None) };
        let checksum = o.checksum.as_deref().map(parse_checksum_header).transpose()?;
        Ok(Some(ReplicaPut {
            bucket: bucket.to_owned(),
            key: self.key.clone(),
            meta: o.meta.clone(),
            version_id: self.version_id()?,
            last_modified_ms: self.last_modified_ms,
            // A `null` version, which needs its stamp sent, never travels in a batch.
            stamp: None,
            etag: o.etag.clone(),
            part_sizes: o.part_sizes.clone(),
            part_checksums: Vec::new(),
            checksum,
            // Batched objects are small: the MD5 check costs little.
            transfer_crc32c: None,
            encrypted: o.encrypted,
            sealed: None,
        }))
    }

    /// The source version id, parsed.
    pub fn version_id(&self) -> CoreResult<VersionId> {
        Ok(VersionId::parse(&self.version_id)?)
    }
}

fn malformed(why: &str) -> CoreError {
    CoreError::Invalid(InvalidInput::new("InvalidRequest", format!("malformed replica batch: {why}")))
}

/// Encodes a batch: each entry with its body (empty for a delete marker).
pub fn encode(entries: &[(BatchEntry, Bytes)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(e, b)| 8 + e.key.len() + 128 + b.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + size);
    out.put_slice(MAGIC);
    for (entry, body) in entries {
        let header = match postcard::to_extend(entry, Vec::new()) {
            Ok(h) => h,
            // Serialising plain owned data into a Vec cannot fail.
            Err(e) => unreachable!("postcard encode of a batch entry: {e}"),
        };
        out.put_u32(u32::try_from(header.len()).unwrap_or(u32::MAX));
        out.put_slice(&header);
        out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.put_slice(body);
    }
    out
}

/// Decodes a batch body; the entry bodies are slices of `buf` (no copy). Any framing error
/// rejects the whole batch (nothing is applied).
pub fn decode(buf: &Bytes) -> CoreResult<Vec<(BatchEntry, Bytes)>> {
    if buf.len() > MAX_BATCH_BYTES {
        return Err(malformed("body too large"));
    }
    let mut rest = buf.clone();
    if rest.len() < MAGIC.len() || &rest[..MAGIC.len()] != MAGIC {
        return Err(malformed("missing XRB1 magic"));
    }
    rest.advance(MAGIC.len());
    let take = |rest: &mut Bytes| -> CoreResult<Bytes> {
        if rest.len() < 4 {
            return Err(malformed("truncated length"));
        }
        let len = rest.get_u32() as usize;
        if rest.len() < len {
            return Err(malformed("truncated field"));
        }
        Ok(rest.split_to(len))
    };
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if entries.len() == MAX_ENTRIES {
            return Err(malformed("too many entries"));
        }
        let header = take(&mut rest)?;
        let entry = decode_entry(&header)?;
        let body = take(&mut rest)?;
        if entry.object.is_none() && !body.is_empty() {
            return Err(malformed("a delete marker has no body"));
        }
        entries.push((entry, body));
    }
    Ok(entries)
}

/// Decodes an entry header, of today's shape or of the one before `encrypted`.
fn decode_entry(header: &[u8]) -> CoreResult<BatchEntry> {
    let full = postcard::take_from_bytes::<BatchEntry>(header);
    if let Ok((entry, rest)) = full
        && rest.is_empty()
    {
        return Ok(entry);
    }
    match postcard::take_from_bytes::<v1::BatchEntry>(header) {
        Ok((entry, [])) => Ok(entry.into()),
        _ => Err(malformed("bad entry header")),
    }
}

/// The entry header before encryption at rest (no `encrypted`). Never edit.
mod v1 {
    use serde::Deserialize;

    use crate::objects::ObjectMeta;

    #[derive(Deserialize)]
    pub(super) struct BatchEntry {
        key: String,
        version_id: String,
        last_modified_ms: i64,
        object: Option<BatchObject>,
    }

    #[derive(Deserialize)]
    struct BatchObject {
        etag: String,
        part_sizes: Vec<u64>,
        checksum: Option<String>,
        meta: ObjectMeta,
    }

    impl From<BatchEntry> for super::BatchEntry {
        fn from(e: BatchEntry) -> Self {
            Self {
                key: e.key,
                version_id: e.version_id,
                last_modified_ms: e.last_modified_ms,
                object: e.object.map(|o| super::BatchObject {
                    etag: o.etag,
                    part_sizes: o.part_sizes,
                    checksum: o.checksum,
                    meta: o.meta,
                    encrypted: false,
                }),
            }
        }
    }
}

/// The outcome of one entry, as sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Applied (or already there: replays are idempotent).
    Ok,
    /// Refused, with the S3 error the single-object write would have answered.
    Err {
        /// HTTP status.
        status: u16,
        /// S3 error code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Encodes the per-entry results (one line each).
pub fn encode_results(results: &[EntryResult]) -> String {
    let mut out = String::new();
    for r in results {
        match r {
            EntryResult::Ok => out.push_str("OK\n"),
            EntryResult::Err { status, code, message } => {
                let message = message.replace(['\n', '\r'], " ");
                out.push_str(&format!("ERR {status} {code} {message}\n"));
            }
        }
    }
    out
}

/// Decodes [`encode_results`]; `None` if a line is not understood.
pub fn decode_results(text: &str) -> Option<Vec<EntryResult>> {
    text.lines()
        .map(|line| {
            if line == "OK" {
                return Some(EntryResult::Ok);
            }
            let mut parts = line.strip_prefix("ERR ")?.splitn(3, ' ');
            let status = parts.next()?.parse().ok()?;
            let code = parts.next()?.to_owned();
            let message = parts.next().unwrap_or("").to_owned();
            Some(EntryResult::Err { status, code, message })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn object(key: &str) -> BatchEntry {
        BatchEntry {
            key: key.into(),
            version_id: "v".into(),
            last_modified_ms: 7,
            object: Some(BatchObject {
                etag: "e".into(),
                meta: ObjectMeta {
                    tags: vec![("k".into(), "v".into())],
                    storage_class: Some("STANDARD".into()),
                    ..ObjectMeta::default()
                },
                ..BatchObject::default()
            }),
        }
    }

    #[test]
    fn round_trip_and_framing_errors() {
        let marker = BatchEntry { key: "m".into(), version_id: "v".into(), last_modified_ms: 1, object: None };
        let batch = vec![(object("a"), Bytes::from_static(b"hello")), (marker, Bytes::new())];
        let bytes = Bytes::from(encode(&batch));
        assert_eq!(decode(&bytes).unwrap(), batch);
        assert_eq!(decode(&Bytes::from_static(b"XRB1")).unwrap(), vec![]);
        assert!(decode(&Bytes::from_static(b"XRB2")).is_err());
        assert!(decode(&bytes.slice(..bytes.len() - 1)).is_err(), "truncated");
        // A delete marker with a body is refused.
        let bad = encode(&[(batch[1].0.clone(), Bytes::from_static(b"x"))]);
        assert!(decode(&Bytes::from(bad)).is_err());
    }

    /// Headers from before `encrypted` decode as unencrypted; today's headers end with it, so
    /// a reader from before (which ignores what follows its shape) reads them too.
    #[test]
    fn headers_without_the_encrypted_flag_still_decode() {
        let mut entry = object("a");
        let new = postcard::to_allocvec(&entry).unwrap();
        assert_eq!(new.last(), Some(&0), "encrypted is the header's last byte");
        let old = &new[..new.len() - 1];
        assert_eq!(decode_entry(old).unwrap(), entry);
        if let Some(o) = &mut entry.object {
            o.encrypted = true;
        }
        let new = postcard::to_allocvec(&entry).unwrap();
        assert_eq!(decode_entry(&new).unwrap(), entry);
        let (old_reader, _) = postcard::take_from_bytes::<v1::BatchEntry>(&new).unwrap();
        assert_eq!(super::BatchEntry::from(old_reader).key, "a");
        let marker = BatchEntry { key: "m".into(), version_id: "v".into(), last_modified_ms: 1, object: None };
        assert_eq!(decode_entry(&postcard::to_allocvec(&marker).unwrap()).unwrap(), marker);
    }

    #[test]
    fn results_round_trip() {
        let results = vec![
            EntryResult::Ok,
            EntryResult::Err { status: 409, code: "InvalidBucketState".into(), message: "not\nversioned".into() },
        ];
        let text = encode_results(&results);
        let back = decode_results(&text).unwrap();
        assert_eq!(back[0], EntryResult::Ok);
        assert_eq!(
            back[1],
            EntryResult::Err { status: 409, code: "InvalidBucketState".into(), message: "not versioned".into() }
        );
        assert_eq!(decode_results("what"), None);
    }

    proptest! {
        /// Any byte string decodes to entries or an error, never a panic.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&Bytes::from(framed));
            let _ = decode(&Bytes::from(bytes));
        }

        #[test]
        fn entries_round_trip(keys in proptest::collection::vec("[a-z/]{1,12}", 0..8), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let batch: Vec<_> = keys.iter().map(|k| (object(k), Bytes::from(body.clone()))).collect();
            prop_assert_eq!(decode(&Bytes::from(encode(&batch))).unwrap(), batch);
        }
    }
}
