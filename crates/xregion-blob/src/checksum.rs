//! Checksums S3 knows (`x-amz-checksum-*`), usable without files: core uses these to verify
//! what a client sent and to compose multipart checksums.
//!
//! Digests are raw big-endian bytes (4 for CRC32/CRC32C, 8 for CRC64NVME, 20 for SHA1, 32 for
//! SHA256); S3 headers carry their standard, padded base64 ([`to_base64`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;
use sha1::Digest as _;
use xregion_types::ChecksumAlgorithm;

/// Incremental hasher for one [`ChecksumAlgorithm`].
pub struct Hasher {
    algorithm: ChecksumAlgorithm,
    state: State,
}

enum State {
    Crc(crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// New hasher for `alg`.
    pub fn new(alg: ChecksumAlgorithm) -> Self {
        let state = match crc_algorithm(alg) {
            Some(crc) => State::Crc(crc_fast::Digest::new(crc)),
            None if alg == ChecksumAlgorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            None => State::Sha256(sha2::Sha256::new()),
        };
        Self { algorithm: alg, state }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc(d) => d.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// The raw big-endian digest ([`digest_len`] bytes).
    pub fn finalize(self) -> Vec<u8> {
        match self.state {
            State::Crc(d) => crc_to_bytes(self.algorithm, d.finalize()),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// One-shot digest of `data`.
pub fn digest(alg: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finalize()
}

/// Length in bytes of a raw digest of `alg`.
pub fn digest_len(alg: ChecksumAlgorithm) -> usize {
    match alg {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// Base64 (standard alphabet, padded) of a raw digest, as S3 headers carry it.
pub fn to_base64(digest: &[u8]) -> String {
    STANDARD.encode(digest)
}

/// Decodes a base64 checksum value sent by a client into a raw digest of `alg`'s length.
/// `None` if it is not valid base64 or has the wrong length (S3 answers `InvalidRequest`).
pub fn from_base64(alg: ChecksumAlgorithm, value: &str) -> Option<Vec<u8>> {
    let raw = STANDARD.decode(value.trim()).ok()?;
    (raw.len() == digest_len(alg)).then_some(raw)
}

/// S3 COMPOSITE multipart checksum: the checksum of the concatenated raw part digests, base64,
/// then `-<number of parts>` (e.g. `"Kq5sNclPz7QV2+lfQIuc6R7oRu0=-3"`).
pub fn composite(alg: ChecksumAlgorithm, part_digests: &[Vec<u8>]) -> String {
    let mut h = Hasher::new(alg);
    for d in part_digests {
        h.update(d);
    }
    format!("{}-{}", to_base64(&h.finalize()), part_digests.len())
}

/// S3 FULL_OBJECT multipart checksum for the CRC algorithms: the CRC of the whole object,
/// computed from each part's raw CRC and length without reading the bytes.
///
/// `None` for SHA1/SHA256 (S3 offers only COMPOSITE for them) and when a part digest does not
/// have the algorithm's length. No parts gives the CRC of empty input.
pub fn combine_full_object(alg: ChecksumAlgorithm, parts: &[(Vec<u8>, u64)]) -> Option<Vec<u8>> {
    let crc = crc_algorithm(alg)?;
    let mut combined = crc_fast::checksum(crc, b"");
    for (index, (digest, len)) in parts.iter().enumerate() {
        let value = crc_from_bytes(alg, digest)?;
        combined = if index == 0 { value } else { crc_fast::checksum_combine(crc, combined, value, *len) };
    }
    Some(crc_to_bytes(alg, combined))
}

/// The crc-fast algorithm for a CRC checksum, `None` for SHA.
fn crc_algorithm(alg: ChecksumAlgorithm) -> Option<CrcAlgorithm> {
    match alg {
        ChecksumAlgorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// Big-endian bytes of a CRC value (crc-fast returns CRC32s in the low 32 bits of a `u64`).
fn crc_to_bytes(alg: ChecksumAlgorithm, value: u64) -> Vec<u8> {
    if digest_len(alg) == 4 {
        // CRC32 values fit in 32 bits; the truncation is exact.
        (value as u32).to_be_bytes().to_vec()
    } else {
        value.to_be_bytes().to_vec()
    }
}

/// Parses a raw big-endian CRC digest; `None` if its length is wrong.
fn crc_from_bytes(alg: ChecksumAlgorithm, digest: &[u8]) -> Option<u64> {
    match (digest_len(alg), digest) {
        (4, &[a, b, c, d]) => Some(u64::from(u32::from_be_bytes([a, b, c, d]))),
        (8, bytes) => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChecksumAlgorithm::*;
    use proptest::prelude::*;

    fn b64(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        to_base64(&digest(alg, data))
    }

    #[test]
    fn check_values_of_the_catalogue() {
        // "123456789" check values from the CRC catalogue (reveng) and FIPS test vectors.
        assert_eq!(digest(Crc32, b"123456789"), 0xcbf4_3926u32.to_be_bytes());
        assert_eq!(digest(Crc32c, b"123456789"), 0xe306_9283u32.to_be_bytes());
        assert_eq!(digest(Crc64Nvme, b"123456789"), 0xae8b_1486_0a79_9888u64.to_be_bytes());
        assert_eq!(hex::encode(digest(Sha1, b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex::encode(digest(Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hello_world_header_values() {
        // x-amz-checksum-* values for the body "hello world"; cross-checked with Python (zlib,
        // hashlib, and a bitwise reflected CRC for CRC32C and CRC64/NVME), not with crc-fast.
        assert_eq!(b64(Crc32, b"hello world"), "DUoRhQ==");
        assert_eq!(b64(Crc32c, b"hello world"), "yZRlqg==");
        assert_eq!(b64(Crc64Nvme, b"hello world"), "jSnVw/bqjr4=");
        assert_eq!(b64(Sha1, b"hello world"), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(b64(Sha256, b"hello world"), "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
    }

    #[test]
    fn empty_input() {
        assert_eq!(b64(Crc32, b""), "AAAAAA==");
        assert_eq!(b64(Crc32c, b""), "AAAAAA==");
        assert_eq!(b64(Crc64Nvme, b""), "AAAAAAAAAAA=");
        assert_eq!(b64(Sha1, b""), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
        assert_eq!(b64(Sha256, b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn matches_crc_fast_reference_functions() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        assert_eq!(digest(Crc32, &data), crc_fast::crc32_iso_hdlc(&data).to_be_bytes());
        assert_eq!(digest(Crc32c, &data), crc_fast::crc32_iscsi(&data).to_be_bytes());
        assert_eq!(digest(Crc64Nvme, &data), crc_fast::crc64_nvme(&data).to_be_bytes());
    }

    #[test]
    fn digest_lengths() {
        for alg in ChecksumAlgorithm::ALL {
            assert_eq!(digest(alg, b"x").len(), digest_len(alg), "{alg:?}");
        }
    }

    #[test]
    fn base64_round_trip_and_validation() {
        let d = digest(Crc32c, b"hello world");
        assert_eq!(from_base64(Crc32c, &to_base64(&d)), Some(d));
        assert_eq!(from_base64(Crc32c, "not base64!"), None);
        assert_eq!(from_base64(Crc64Nvme, "yZRlqg=="), None, "4 bytes is not a crc64");
    }

    #[test]
    fn composite_format() {
        let parts = vec![digest(Sha256, b"part one"), digest(Sha256, b"part two")];
        let mut concat = parts[0].clone();
        concat.extend_from_slice(&parts[1]);
        assert_eq!(composite(Sha256, &parts), format!("{}-2", to_base64(&digest(Sha256, &concat))));
    }

    #[test]
    fn composite_crc32_known_value() {
        // Reference computed with Python: zlib.crc32 over the concatenated big-endian part CRCs
        // of b"hello " and b"world", base64, "-2".
        let parts = vec![digest(Crc32, b"hello "), digest(Crc32, b"world")];
        assert_eq!(composite(Crc32, &parts), "1Fu2mQ==-2");
    }

    #[test]
    fn full_object_is_none_for_sha_and_bad_lengths() {
        assert_eq!(combine_full_object(Sha256, &[(digest(Sha256, b"a"), 1)]), None);
        assert_eq!(combine_full_object(Sha1, &[]), None);
        assert_eq!(combine_full_object(Crc32, &[(vec![1, 2, 3], 3)]), None);
        assert_eq!(combine_full_object(Crc64Nvme, &[(vec![0; 4], 3)]), None);
    }

    #[test]
    fn full_object_of_no_parts_is_crc_of_empty() {
        for alg in [Crc32, Crc32c, Crc64Nvme] {
            assert_eq!(combine_full_object(alg, &[]), Some(digest(alg, b"")));
        }
    }

    proptest! {
        #[test]
        fn full_object_equals_crc_of_concatenation(
            parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        ) {
            let whole: Vec<u8> = parts.concat();
            for alg in [Crc32, Crc32c, Crc64Nvme] {
                let digests: Vec<(Vec<u8>, u64)> =
                    parts.iter().map(|p| (digest(alg, p), p.len() as u64)).collect();
                prop_assert_eq!(combine_full_object(alg, &digests), Some(digest(alg, &whole)));
            }
        }

        #[test]
        fn incremental_equals_one_shot(data in prop::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
            let cut = cut.min(data.len());
            for alg in ChecksumAlgorithm::ALL {
                let mut h = Hasher::new(alg);
                h.update(&data[..cut]);
                h.update(&data[cut..]);
                prop_assert_eq!(h.finalize(), digest(alg, &data));
            }
        }
    }
}
