//! Buckets: names (S3 naming rules) and the bucket record.

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// A bucket name that passed the S3 naming rules (3–63 chars, lowercase letters, digits,
/// dots and hyphens, starts and ends with a letter or digit, not an IP address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketName(String);

impl BucketName {
    /// Validates `name` against the S3 naming rules.
    pub fn parse(name: &str) -> Result<Self, InvalidInput> {
        let bad =
            |why: &str| InvalidInput::new("InvalidBucketName", format!("The specified bucket is not valid: {why}"));
        if name.len() < 3 || name.len() > 63 {
            return Err(bad("length must be between 3 and 63"));
        }
        let bytes = name.as_bytes();
        if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-') {
            return Err(bad("only lowercase letters, digits, dots and hyphens are allowed"));
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(bad("must begin and end with a letter or digit"));
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return Err(bad("adjacent periods or period-hyphen"));
        }
        if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
            return Err(bad("must not be formatted as an IP address"));
        }
        if name.starts_with("xn--")
            || name.starts_with("sthree-")
            || name.ends_with("-s3alias")
            || name.ends_with("--ol-s3")
        {
            return Err(bad("reserved prefix or suffix"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BucketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Versioning state of a bucket (VER-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VersioningState {
    /// Never configured: writes replace the `null` version, no version headers.
    #[default]
    Unversioned,
    /// Every write creates a new version with a generated id.
    Enabled,
    /// Writes replace the `null` version; existing versions stay.
    Suspended,
}

/// What the metadata store keeps about one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Bucket name.
    pub name: BucketName,
    /// Internal id, unique for the life of the store (never reused after a delete).
    pub id: u64,
    /// Creation time, unix milliseconds.
    pub created_ms: i64,
    /// Versioning state.
    pub versioning: VersioningState,
    /// Bucket tags (Put/GetBucketTagging); empty means none.
    pub tags: Vec<(String, String)>,
    /// Replication configuration, stored as the validated document (opaque to `meta`).
    pub replication: Option<Vec<u8>>,
    /// Lifecycle configuration, stored as the validated document (opaque to `meta`).
    pub lifecycle: Option<Vec<u8>>,
    /// Default encryption (PutBucketEncryption): new objects written without an encryption
    /// header are encrypted as it says.
    pub encryption: Option<BucketEncryption>,
}

/// A bucket's default encryption rule (`ServerSideEncryptionConfiguration`, one rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `SSEAlgorithm`: `AES256` (the only one xregion accepts today).
    pub sse_algorithm: String,
    /// `BucketKeyEnabled` as given (S3 uses it for SSE-KMS only; stored and echoed).
    pub bucket_key_enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.example", "a1b2c3", &"a".repeat(63)] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "192.168.1.1", "a_b", &"a".repeat(64), "xn--abc"] {
            assert_eq!(BucketName::parse(bad).unwrap_err().code, "InvalidBucketName", "{bad}");
        }
    }
}
