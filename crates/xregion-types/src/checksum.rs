//! Additional checksums (`x-amz-checksum-*`).

use serde::{Deserialize, Serialize};

/// The checksum algorithms S3 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// True for the CRCs, whose checksum of a whole multipart object can be made from its
    /// parts' (S3's FULL_OBJECT type); SHA-1 and SHA-256 have only COMPOSITE.
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }

    /// All algorithms, in a fixed order.
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// The S3 name (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// Parses the S3 name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The header that carries this checksum, e.g. `x-amz-checksum-crc32c`.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }
}

/// A stored checksum of an object (or part): algorithm, base64 value, and whether it is a
/// checksum of the whole object or a composite checksum of part checksums (`-N` suffix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumValue {
    /// Algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Base64 of the big-endian digest; composite values end in `-<parts>`.
    pub value: String,
    /// True for `FULL_OBJECT`, false for `COMPOSITE`.
    pub full_object: bool,
}
