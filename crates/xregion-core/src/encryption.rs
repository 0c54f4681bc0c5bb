//! Server-side encryption at rest (SSE-S3, `x-amz-server-side-encryption: AES256`).
//!
//! Which writes are encrypted: those that ask for it (`AES256`), and those that do not say
//! in a bucket whose default encryption rule says so (PutBucketEncryption), as on S3. A replica
//! is encrypted when its source is (ELI-7: the replica keeps the source's encryption type) or
//! when the destination bucket's default says so (ELI-9). A copy follows its own request and
//! its destination bucket, never its source.
//!
//! How: each encrypted version (or multipart upload) gets a new data key from the region's
//! master key (`xregion_crypto`); its wrapped form is stored in the version
//! (`ObjectData::encryption`), and its blob files and inline body are sealed with it. MD5
//! (the ETag), checksums and sizes are those of the plaintext, so ETags equal the source's
//! across replication and copies (STS-13). Reads go through [`Region::read_object`], which
//! opens the chunks a range covers.

use std::path::Path;
use std::sync::Arc;

use xregion_crypto::{DataKey, INLINE_LABEL, MasterKey};
use xregion_types::{BucketEncryption, Encryption, InvalidInput};

use crate::{CoreError, CoreResult, Region};

/// The only algorithm xregion encrypts with (SSE-S3).
pub const AES256: &str = "AES256";

/// The data key of a new encrypted version and the form stored with it.
#[derive(Debug, Clone)]
pub struct SealKey {
    /// The data key bodies are sealed with.
    pub key: Arc<DataKey>,
    /// What the version stores (the wrapped key).
    pub record: Encryption,
}

/// Reads the region master key from `path`; `create` makes a new one if the file does not
/// exist (the default key file in the data directory). Blocking.
pub(crate) fn load_master_key(path: &Path, create: bool) -> CoreResult<MasterKey> {
    if !create && !path.try_exists().unwrap_or(true) {
        return Err(CoreError::Internal(format!(
            "the SSE master key file {} does not exist (sse_master_key_file must name an existing key file)",
            path.display()
        )));
    }
    MasterKey::load_or_create(path).map_err(|e| CoreError::Internal(e.to_string()))
}

/// Checks an `x-amz-server-side-encryption` value of a write: `AES256`, or the KMS ones S3
/// has and xregion does not (`501 NotImplemented`), or nothing S3 knows (`400`).
pub fn check_sse_algorithm(value: &str) -> CoreResult<()> {
    match value {
        AES256 => Ok(()),
        "aws:kms" | "aws:kms:dsse" => Err(CoreError::NotImplemented(format!(
            "Server-side encryption with {value} is not supported: xregion has no KMS (use AES256)"
        ))),
        _ => Err(InvalidInput::new("InvalidArgument", "The encryption method specified is not supported").into()),
    }
}

impl Region {
    /// The region's master key.
    fn master_key(&self) -> &MasterKey {
        &self.inner.master_key
    }

    /// A new data key for a version about to be written encrypted.
    pub fn new_seal_key(&self) -> CoreResult<SealKey> {
        let (key, wrapped_key) = self.master_key().new_data_key().map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(SealKey { key: Arc::new(key), record: Encryption { key_id: self.master_key().id(), wrapped_key } })
    }

    /// The key a new version of `bucket` is sealed with: encrypted if the request asked for
    /// `AES256` (`requested`, checked with [`check_sse_algorithm`]) or, when it did not say,
    /// if the bucket's default encryption rule says so.
    pub fn write_encryption(&self, bucket: &str, requested: Option<&str>) -> CoreResult<Option<SealKey>> {
        if let Some(algorithm) = requested {
            check_sse_algorithm(algorithm)?;
            return self.new_seal_key().map(Some);
        }
        match self.bucket(bucket)?.encryption {
            Some(_) => self.new_seal_key().map(Some),
            None => Ok(None),
        }
    }

    /// The key a replica is sealed with: when its source was encrypted (ELI-7), or when the
    /// destination bucket's default says so (ELI-9).
    pub fn replica_encryption(&self, bucket: &str, source_encrypted: bool) -> CoreResult<Option<SealKey>> {
        self.write_encryption(bucket, source_encrypted.then_some(AES256))
    }

    /// The data key of a stored version (unwrapped with the master key).
    pub fn data_key(&self, encryption: &Encryption) -> CoreResult<Arc<DataKey>> {
        self.master_key()
            .unwrap_key(encryption.key_id, &encryption.wrapped_key)
            .map(Arc::new)
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    /// The plaintext of a version's inline body as read from the metadata store
    /// (`MetaStore::get_inlines`): opened if the version is encrypted.
    pub fn inline_plaintext(&self, data: &xregion_types::ObjectData, stored: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match &data.encryption {
            None => Ok(stored),
            Some(e) => {
                let key = self
                    .data_key(e)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                open_inline(&key, &stored)
            }
        }
    }

    /// Sets (`Some`) or removes a bucket's default encryption rule.
    pub async fn set_bucket_encryption(&self, bucket: &str, rule: Option<BucketEncryption>) -> CoreResult<()> {
        if let Some(rule) = &rule {
            check_sse_algorithm(&rule.sse_algorithm)?;
        }
        self.bucket(bucket)?;
        self.meta()
            .write(xregion_meta::WriteOp::SetBucketEncryption { bucket: bucket.to_owned(), encryption: rule })
            .await?;
        Ok(())
    }

    /// A bucket's default encryption rule (`ServerSideEncryptionConfigurationNotFoundError`
    /// without one).
    pub fn bucket_encryption(&self, bucket: &str) -> CoreResult<BucketEncryption> {
        self.bucket(bucket)?.encryption.ok_or(CoreError::NoSuchEncryptionConfiguration)
    }
}

/// Seals an inline body with its version's key.
pub(crate) fn seal_inline(seal: &SealKey, plain: &[u8]) -> CoreResult<Vec<u8>> {
    seal.key
        .segment(INLINE_LABEL)
        .and_then(|cipher| cipher.seal_all(plain))
        .map_err(|e| CoreError::Internal(e.to_string()))
}

/// Opens an inline body sealed by [`seal_inline`].
pub(crate) fn open_inline(key: &DataKey, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(key.segment(INLINE_LABEL).and_then(|cipher| cipher.open_all(sealed))?)
}
