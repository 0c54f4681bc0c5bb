//! Order-preserving key encodings for every table.
//!
//! An object key is arbitrary UTF-8 (it may contain NUL), so inside a composite table key it is
//! *escaped* and *terminated*: `0x00 → 0x00 0xFF`, then the terminator `0x00 0x01`. For raw keys
//! `a`, `b`: `enc(a) < enc(b)` exactly when `a < b` in byte order, and `enc(a)` is never a
//! prefix of `enc(b)` (the encoding is self-delimiting). Escaping without the terminator is a
//! homomorphism (`esc(p ‖ s) = esc(p) ‖ esc(s)`), so all keys starting with a raw prefix `p`
//! are exactly the table keys starting with `esc(p)`: a prefix query is one range.
//!
//! Layouts (`‖` is concatenation, integers big-endian):
//! * object key (`heads`, `nulls`): `bucket_id(8) ‖ enc(key)`
//! * version key (`versions`): `bucket_id(8) ‖ enc(key) ‖ !stamp(8)`: newest first within a key
//! * upload index key (`upload_index`): `bucket_id(8) ‖ enc(key) ‖ upload_id`
//! * part key (`parts`): `enc(upload_id) ‖ part_number(4)`
//! * outbox index key (`outbox_index`, layout 2):
//!   `stamp(8) ‖ bucket_id(8) ‖ enc(key) ‖ enc(version_id) ‖ seq(8)`, where `stamp` is the
//!   version id's stamp (0 for the null version and tasks without a version)

use std::ops::Bound;

use xregion_types::VersionId;

use crate::error::MetaError;

/// Escape byte for NUL inside a key, after a 0x00.
const ESCAPED_NUL: u8 = 0xFF;
/// Terminator of an encoded key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Appends `raw` escaped (no terminator).
pub(crate) fn escape_into(out: &mut Vec<u8>, raw: &[u8]) {
    for &b in raw {
        if b == 0 {
            out.extend_from_slice(&[0x00, ESCAPED_NUL]);
        } else {
            out.push(b);
        }
    }
}

/// Appends `raw` escaped and terminated.
pub(crate) fn encode_into(out: &mut Vec<u8>, raw: &[u8]) {
    escape_into(out, raw);
    out.extend_from_slice(&TERMINATOR);
}

/// Decodes one escaped, terminated component at the start of `buf`; returns it and the rest.
pub(crate) fn decode_component(buf: &[u8]) -> Result<(Vec<u8>, &[u8]), MetaError> {
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < buf.len() {
        let b = buf[i];
        if b != 0 {
            out.push(b);
            i += 1;
            continue;
        }
        match buf.get(i + 1) {
            Some(&ESCAPED_NUL) => {
                out.push(0);
                i += 2;
            }
            Some(&0x01) => return Ok((out, &buf[i + 2..])),
            _ => return Err(MetaError::Corrupt("bad escape in stored key".into())),
        }
    }
    Err(MetaError::Corrupt("unterminated stored key".into()))
}

/// `bucket_id ‖ enc(key)`: the key of `heads` and `nulls`, and the prefix of a key's versions.
pub(crate) fn object_key(bucket_id: u64, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len() + 4);
    out.extend_from_slice(&bucket_id.to_be_bytes());
    encode_into(&mut out, key.as_bytes());
    out
}

/// `bucket_id ‖ esc(prefix)`: every table key of a key starting with `prefix` starts with this.
pub(crate) fn object_prefix(bucket_id: u64, prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + prefix.len() + 2);
    out.extend_from_slice(&bucket_id.to_be_bytes());
    escape_into(&mut out, prefix.as_bytes());
    out
}

/// `bucket_id ‖ enc(key) ‖ !stamp`: newest first within a key.
pub(crate) fn version_key(bucket_id: u64, key: &str, stamp: u64) -> Vec<u8> {
    let mut out = object_key(bucket_id, key);
    out.extend_from_slice(&(!stamp).to_be_bytes());
    out
}

/// `bucket_id ‖ enc(key) ‖ upload_id`: uploads by key, then upload id.
pub(crate) fn upload_index_key(bucket_id: u64, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = object_key(bucket_id, key);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

/// `stamp ‖ bucket_id ‖ enc(key) ‖ enc(version_id)`: prefix of one version's `outbox_index`
/// rows; `stamp` is the version id's (0 for the null version and for tasks without a version,
/// whose id is stored as `""`). The stamp leads so that the rows of new versions, which have the newest stamps, are
/// appended at the right edge of the tree and removed near its left edge in about the same
/// order: a commit of many replicated writes then dirties one or two index leaves, not one
/// per write (keyed by object key first, each write dirtied a leaf of its own).
pub(crate) fn outbox_version_prefix(bucket_id: u64, key: &str, version_id: Option<&VersionId>) -> Vec<u8> {
    let stamp = version_id.and_then(VersionId::stamp).unwrap_or(0);
    let id = version_id.map_or("", VersionId::as_str);
    let mut out = Vec::with_capacity(16 + key.len() + id.len() + 4);
    out.extend_from_slice(&stamp.to_be_bytes());
    out.extend_from_slice(&object_key(bucket_id, key));
    encode_into(&mut out, id.as_bytes());
    out
}

/// `stamp ‖ bucket_id ‖ enc(key) ‖ enc(version_id) ‖ seq`: one `outbox_index` row.
pub(crate) fn outbox_index_key(bucket_id: u64, key: &str, version_id: Option<&VersionId>, seq: u64) -> Vec<u8> {
    let mut out = outbox_version_prefix(bucket_id, key, version_id);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// `enc(upload_id)`: prefix of an upload's parts.
pub(crate) fn part_prefix(upload_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(upload_id.len() + 6);
    encode_into(&mut out, upload_id.as_bytes());
    out
}

/// `enc(upload_id) ‖ part_number`.
pub(crate) fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut out = part_prefix(upload_id);
    out.extend_from_slice(&part_number.to_be_bytes());
    out
}

/// Splits a table key that starts with `bucket_id ‖ enc(key)` into the bucket id, the key
/// and the rest (stamp, upload id, or nothing).
pub(crate) fn split_object_key(table_key: &[u8]) -> Result<(u64, String, &[u8]), MetaError> {
    let (id, rest) =
        table_key.split_first_chunk::<8>().ok_or_else(|| MetaError::Corrupt("stored key too short".into()))?;
    let (raw, rest) = decode_component(rest)?;
    let key = String::from_utf8(raw).map_err(|_| MetaError::Corrupt("stored key is not UTF-8".into()))?;
    Ok((u64::from_be_bytes(*id), key, rest))
}

/// The stamp at the end of a version key.
pub(crate) fn version_key_stamp(table_key: &[u8]) -> Result<u64, MetaError> {
    let (_, tail) =
        table_key.split_last_chunk::<8>().ok_or_else(|| MetaError::Corrupt("version key too short".into()))?;
    Ok(!u64::from_be_bytes(*tail))
}

/// The part number at the end of a part key.
pub(crate) fn part_key_number(table_key: &[u8]) -> Result<u32, MetaError> {
    let (_, tail) = table_key.split_last_chunk::<4>().ok_or_else(|| MetaError::Corrupt("part key too short".into()))?;
    Ok(u32::from_be_bytes(*tail))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` if
/// there is none (the prefix is empty or all `0xFF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last != 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// A scan start after every entry of `key` (all its versions or uploads). As a *lower*
/// bound, `Unbounded` means "past the end" (see [`crate::listing::Scan::run`]).
pub(crate) fn after_key(bucket_id: u64, key: &str) -> Bound<Vec<u8>> {
    after_prefix(&object_key(bucket_id, key))
}

/// A scan start after every entry starting with `prefix`; `Unbounded` means "past the end".
pub(crate) fn after_prefix(prefix: &[u8]) -> Bound<Vec<u8>> {
    match prefix_successor(prefix) {
        Some(s) => Bound::Included(s),
        None => Bound::Unbounded,
    }
}

/// The exclusive upper bound of every entry starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    match prefix_successor(prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    }
}

/// Borrows a pair of owned bounds as the slice bounds redb's `range` takes.
pub(crate) fn bounds<'a>(lower: &'a Bound<Vec<u8>>, upper: &'a Bound<Vec<u8>>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (lower.as_ref().map(Vec::as_slice), upper.as_ref().map(Vec::as_slice))
}

/// The range of every table key starting with `prefix`.
pub(crate) fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (Bound::Included(prefix.to_vec()), prefix_end(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, s);
        out
    }

    #[test]
    fn nul_is_escaped_and_terminated() {
        assert_eq!(enc(b"a\0b"), vec![b'a', 0, 0xFF, b'b', 0, 1]);
        assert_eq!(enc(b""), vec![0, 1]);
        // "a" < "a\0" < "a\x01" in raw order, and so encoded.
        assert!(enc(b"a") < enc(b"a\0"));
        assert!(enc(b"a\0") < enc(b"a\x01"));
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn version_keys_sort_newest_first() {
        assert!(version_key(1, "k", 10) < version_key(1, "k", 9));
        assert!(version_key(1, "k", 1) < version_key(1, "k\0", u64::MAX));
        assert_eq!(version_key_stamp(&version_key(1, "k", 42)).unwrap(), 42);
        let vk = version_key(7, "a\0/é", 3);
        let (b, k, rest) = split_object_key(&vk).unwrap();
        assert_eq!((b, k.as_str(), rest.len()), (7, "a\0/é", 8));
    }

    fn raw_key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), Just(b'/'), any::<u8>()], 0..12)
    }

    proptest! {
        /// Encoded order equals raw byte order, and the encoding is prefix-free.
        #[test]
        fn encoding_preserves_order(a in raw_key(), b in raw_key()) {
            let (ea, eb) = (enc(&a), enc(&b));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            if a != b {
                prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
            }
            let (back, rest) = decode_component(&ea).unwrap();
            prop_assert_eq!(back, a.clone());
            prop_assert!(rest.is_empty());
        }

        /// Composite keys keep key order regardless of what follows, and a raw prefix is a
        /// table-key prefix exactly when it is a raw-key prefix.
        #[test]
        fn composite_order_and_prefix(a in "[a\\x00/é]{0,6}", b in "[a\\x00/é]{0,6}", p in "[a\\x00/é]{0,3}", s1 in any::<u64>(), s2 in any::<u64>()) {
            let (ka, kb) = (version_key(3, &a, s1), version_key(3, &b, s2));
            if a != b {
                prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ka.cmp(&kb));
            } else {
                prop_assert_eq!(s2.cmp(&s1), ka.cmp(&kb));
            }
            let pre = object_prefix(3, &p);
            prop_assert_eq!(a.starts_with(p.as_str()), ka.starts_with(&pre));
            let upper = prefix_successor(&pre).unwrap();
            prop_assert_eq!(a.starts_with(p.as_str()), ka >= pre && ka < upper);
        }
    }
}
