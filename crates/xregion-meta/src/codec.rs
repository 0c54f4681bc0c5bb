//! Value encoding: one format-version byte, then postcard.
//!
//! Every stored value (bucket, version, upload, part, outbox entry) starts with
//! [`FORMAT_V1`]. When a stored shape changes, the old shape is frozen in a `mod v1` here, the
//! new one gets `FORMAT_V2`, and [`decode`] migrates `v1 → v2` on read (Garage's `Migrate`
//! pattern). The golden-bytes test below fails if a type in `xregion-types` changes its
//! encoding by accident.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::MetaError;

/// The current value format.
pub(crate) const FORMAT_V1: u8 = 1;

/// Encodes a value: `FORMAT_V1 ‖ postcard(value)`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, MetaError> {
    postcard::to_extend(value, vec![FORMAT_V1]).map_err(|e| MetaError::Corrupt(format!("cannot encode value: {e}")))
}

/// Decodes a value written by [`encode`] (any supported format version).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MetaError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            let (value, rest) = postcard::take_from_bytes(body)
                .map_err(|e| MetaError::Corrupt(format!("cannot decode stored value: {e}")))?;
            if !rest.is_empty() {
                return Err(MetaError::Corrupt("trailing bytes after stored value".into()));
            }
            Ok(value)
        }
        Some((other, _)) => Err(MetaError::Corrupt(format!("unknown value format version {other}"))),
        None => Err(MetaError::Corrupt("empty stored value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xregion_types::{
        BlobRef, BlobSegment, ChecksumAlgorithm, ChecksumValue, ObjectData, ReplicationStatus, VersionId, VersionKind,
        VersionRecord,
    };

    fn sample() -> VersionRecord {
        VersionRecord {
            version_id: VersionId::generate(0x0102_0304_0506_0708, [9; 12]),
            stamp: 0x0102_0304_0506_0708,
            last_modified_ms: 1_700_000_000_000,
            kind: VersionKind::Object(Box::new(ObjectData {
                size: 5,
                etag: "abc".into(),
                content_type: Some("text/plain".into()),
                user_metadata: vec![("k".into(), "v".into())],
                tags: vec![("t".into(), "1".into())],
                checksum: Some(ChecksumValue {
                    algorithm: ChecksumAlgorithm::Crc32c,
                    value: "AAAAAA==".into(),
                    full_object: true,
                }),
                storage_class: "STANDARD".into(),
                blob: BlobRef { segments: vec![BlobSegment { id: "b1".into(), len: 5 }] },
                part_sizes: vec![5],
                ..ObjectData::default()
            })),
            replication: ReplicationStatus::Pending,
        }
    }

    /// Golden bytes: the on-disk encoding of a version record must never change silently.
    /// If this fails, a stored shape changed: add a format version and a migration instead.
    #[test]
    fn golden_version_record() {
        let bytes = encode(&sample()).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), sample());
    }

    /// `01` format ‖ `01 20 …` VersionId::Id, 32 chars ‖ varint stamp ‖ zigzag last-modified ‖
    /// `00` VersionKind::Object ‖ ObjectData fields in declaration order ‖ `01` Pending.
    const GOLDEN: &str = concat!(
        "0101202e463732302e4a35306b563831465a3831465a3831465a3831465a7a6b597a",
        "38888e98a8c0e08081",
        "0180a0abfef962",
        "00",
        "0503616263010a746578742f706c61696e0000000000",
        "01016b0176",
        "0101740131",
        "0101084141414141413d3d01",
        "085354414e44415244",
        "0102623105",
        "0105",
        "01",
    );

    #[test]
    fn rejects_unknown_format_and_garbage() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 9;
        assert!(matches!(decode::<VersionRecord>(&bytes), Err(MetaError::Corrupt(_))));
        assert!(matches!(decode::<VersionRecord>(&[]), Err(MetaError::Corrupt(_))));
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<VersionRecord>(&bytes), Err(MetaError::Corrupt(_))));
    }
}
