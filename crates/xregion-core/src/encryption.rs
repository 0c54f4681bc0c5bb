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
//!
//! Keys: the region's master key file is key 1; `xregion keys rotate` ([`rotate_master_key`])
//! adds key 2, 3, … beside it (`sse-master-2.key`, …), and from its next start the region wraps
//! new data keys with the newest one while every stored data key keeps opening with the key
//! that wrapped it ([`xregion_crypto::Keyring`]; as AWS KMS keeps a rotated key's old
//! material). Each key has its check file, so a lost or replaced key file stops the region at
//! start instead of making its objects unreadable. After a rotation the region re-wraps the
//! stored data keys under the newest key in the background ([`Region::rewrap_data_keys`]) and
//! then marks the older keys retired (`keys/sse-master-N.retired`): their files may then be
//! removed, and the region starts without them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use xregion_crypto::{CustomerKey, CustomerKeyError, DataKey, FIRST_KEY_ID, INLINE_LABEL, Keyring, MasterKey};
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

/// Reads the region's master key: from `configured` (which must exist), else from the default
/// key file in the data directory, created on first open. Either way it is checked against
/// `<data dir>/keys/sse-master.check`, which records the key the region's data is encrypted
/// with: another key refuses to open, and a default key file that disappeared is not made
/// again once there is a check file (its objects could never be read). Blocking.
fn load_master_key(data_dir: &Path, configured: Option<&Path>) -> CoreResult<MasterKey> {
    let check = check_path(data_dir, FIRST_KEY_ID);
    let path = first_key_path(data_dir, configured);
    let path = path.as_path();
    let may_create = configured.is_none() && !check.try_exists().unwrap_or(true);
    if !may_create && !path.try_exists().unwrap_or(true) {
        let why = match configured {
            Some(_) => "sse_master_key_file must name an existing key file",
            None => "this region has encrypted with it before; restore it, or name it with sse_master_key_file",
        };
        return Err(CoreError::Internal(format!("the SSE master key file {} does not exist ({why})", path.display())));
    }
    let key = MasterKey::load_or_create(path).map_err(|e| CoreError::Internal(e.to_string()))?;
    key.check_or_record(&check).map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(key)
}

/// The file of rotated key `id` (2, 3, …): beside the first key file, named after it
/// (`sse-master.key` → `sse-master-2.key`).
fn rotated_key_path(first: &Path, id: u32) -> PathBuf {
    let stem = first.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match first.extension() {
        Some(ext) => format!("{stem}-{id}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{id}"),
    };
    first.with_file_name(name)
}

/// The check file of key `id` in the data directory (key 1's is `keys/sse-master.check`).
fn check_path(data_dir: &Path, id: u32) -> PathBuf {
    match id {
        FIRST_KEY_ID => data_dir.join("keys/sse-master.check"),
        _ => data_dir.join(format!("keys/sse-master-{id}.check")),
    }
}

/// The file marking key `id` retired: no stored data key is wrapped by it any more.
fn retired_path(data_dir: &Path, id: u32) -> PathBuf {
    match id {
        FIRST_KEY_ID => data_dir.join("keys/sse-master.retired"),
        _ => data_dir.join(format!("keys/sse-master-{id}.retired")),
    }
}

/// The first key file: `configured`, else the default one in the data directory.
fn first_key_path(data_dir: &Path, configured: Option<&Path>) -> PathBuf {
    configured.map_or_else(|| data_dir.join("keys/sse-master.key"), Path::to_owned)
}

fn exists(path: &Path) -> CoreResult<bool> {
    path.try_exists().map_err(|e| CoreError::Internal(format!("reading {}: {e}", path.display())))
}

/// Every master key of the region ([`load_master_key`] for key 1, then the rotated keys 2, 3,
/// … while their files exist), each checked against its check file. A rotated key whose
/// check file exists but whose key file does not stops the region: objects were encrypted
/// with it. Blocking.
pub(crate) fn load_keyring(data_dir: &Path, configured: Option<&Path>) -> CoreResult<Keyring> {
    let first_path = first_key_path(data_dir, configured);
    let mut keys = Vec::new();
    // Key 1 is loaded unless it is retired and its file was removed (nothing needs it then).
    if exists(&first_path)? || !exists(&retired_path(data_dir, FIRST_KEY_ID))? {
        keys.push(load_master_key(data_dir, configured)?);
    }
    let mut id = FIRST_KEY_ID + 1;
    loop {
        let path = rotated_key_path(&first_path, id);
        let check = check_path(data_dir, id);
        if !exists(&path)? {
            if exists(&retired_path(data_dir, id))? {
                id += 1;
                continue;
            }
            if exists(&check)? {
                return Err(CoreError::Internal(format!(
                    "the SSE master key file {} does not exist, and this region has encrypted with key {id}: \
                     restore it",
                    path.display()
                )));
            }
            break;
        }
        let key = MasterKey::load_or_create_with_id(&path, id).map_err(|e| CoreError::Internal(e.to_string()))?;
        key.check_or_record(&check).map_err(|e| CoreError::Internal(e.to_string()))?;
        keys.push(key);
        id += 1;
    }
    Keyring::new(keys).map_err(|e| CoreError::Internal(format!("SSE master keys: {e}")))
}

/// `xregion keys rotate`: makes the region's next master key (a new random key in the next
/// free `…-N.key` beside the first key file, mode 0600, durably) and returns its id and file.
/// The region wraps new data keys with it from its next start; objects written before keep
/// opening with their keys, so every key file stays needed. Safe while the region runs (it
/// reads its keys at start only). Blocking.
pub fn rotate_master_key(data_dir: &Path, configured: Option<&Path>) -> CoreResult<(u32, PathBuf)> {
    let first_path = first_key_path(data_dir, configured);
    if !exists(&first_path)? && !exists(&check_path(data_dir, FIRST_KEY_ID))? {
        return Err(CoreError::Internal(format!(
            "no SSE master key at {} to rotate from (start the region once, or name its key with \
             sse_master_key_file)",
            first_path.display()
        )));
    }
    let mut id = FIRST_KEY_ID + 1;
    while exists(&rotated_key_path(&first_path, id))?
        || exists(&check_path(data_dir, id))?
        || exists(&retired_path(data_dir, id))?
    {
        id += 1;
    }
    let path = rotated_key_path(&first_path, id);
    MasterKey::load_or_create_with_id(&path, id).map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok((id, path))
}

/// What a re-wrap pass did ([`Region::rewrap_data_keys`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// Versions whose data key was re-wrapped.
    pub versions: u64,
    /// Multipart uploads whose data key was re-wrapped.
    pub uploads: u64,
    /// The keys marked retired at the end.
    pub retired: Vec<u32>,
}

/// Versions (or uploads) read per page, and re-wrapped concurrently, by the pass.
const REWRAP_PAGE: usize = 500;

/// The SSE-C key of a request's `x-amz-server-side-encryption-customer-*` headers (or the
/// `x-amz-copy-source-` ones), `None` without them; `400` with S3's words for a bad set.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> CoreResult<Option<CustomerKey>> {
    CustomerKey::from_headers(algorithm, key, key_md5).map_err(|e: CustomerKeyError| {
        let code = match e {
            CustomerKeyError::Algorithm => "InvalidEncryptionAlgorithmError",
            _ => "InvalidArgument",
        };
        InvalidInput::new(code, e.to_string()).into()
    })
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
    /// The region's master keys.
    fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The ids of the region's master keys, and the one new data keys are wrapped with.
    pub fn master_key_ids(&self) -> (Vec<u32>, u32) {
        (self.keyring().ids(), self.keyring().current().id())
    }

    /// The region's master keys older than the newest that are not marked retired yet: what a
    /// re-wrap pass ([`Region::rewrap_data_keys`]) is for. Blocking (reads the key directory).
    pub fn keys_to_retire(&self) -> CoreResult<Vec<u32>> {
        let (ids, current) = self.master_key_ids();
        let mut left = Vec::new();
        for id in ids.into_iter().filter(|id| *id != current) {
            if !exists(&retired_path(self.data_dir(), id))? {
                left.push(id);
            }
        }
        Ok(left)
    }

    /// After a key rotation: every stored data key wrapped by an older master key (of a
    /// version or of a multipart upload) is wrapped again by the newest one, bucket by bucket,
    /// a page at a time, each as a compare-and-set in the metadata store (the data key and
    /// the bytes it sealed do not change). Uploads go first: a completion copies its upload's
    /// key into the new version. Then the older keys are marked retired, durably: nothing
    /// needs them (new data keys are wrapped by the newest key), so their files may be removed
    /// and the region starts without them. Safe while the region serves; a pass cut short by
    /// a crash is run again at the next start.
    pub async fn rewrap_data_keys(&self) -> CoreResult<RewrapReport> {
        let old = self.keys_to_retire()?;
        let mut report = RewrapReport::default();
        if old.is_empty() {
            return Ok(report);
        }
        for bucket in self.meta().list_buckets()? {
            report.uploads += self.rewrap_uploads(&bucket).await?;
            report.versions += self.rewrap_versions(&bucket).await?;
        }
        for id in old {
            let path = retired_path(self.data_dir(), id);
            let text = format!("no stored data key is wrapped by SSE master key {id}: its file may be removed\n");
            xregion_crypto::write_durably(&path, text.as_bytes())
                .map_err(|e| CoreError::Internal(format!("writing {}: {e}", path.display())))?;
            report.retired.push(id);
        }
        Ok(report)
    }

    /// The new wrapping of `encryption`, if an older master key wrapped it (never an SSE-C
    /// one: the customer's key wraps it, which the region does not have).
    fn rewrapped(&self, encryption: &Encryption) -> CoreResult<Option<Encryption>> {
        if encryption.is_customer_key() {
            return Ok(None);
        }
        let again = self.keyring().rewrap(encryption.key_id, &encryption.wrapped_key);
        let again = again.map_err(|e| CoreError::Internal(format!("re-wrapping a data key: {e}")))?;
        Ok(again.map(|(wrapped_key, key_id)| Encryption { key_id, wrapped_key, labels: encryption.labels.clone() }))
    }

    /// Applies a page's re-wraps at once (the metadata writer groups them into few
    /// transactions); how many replaced a key.
    async fn write_rewraps(&self, ops: Vec<xregion_meta::WriteOp>) -> CoreResult<u64> {
        let writes = ops.into_iter().map(|op| self.meta().write(op));
        let mut done = 0;
        for outcome in futures::future::join_all(writes).await {
            done += u64::from(matches!(outcome?, xregion_meta::WriteOutcome::Rewrapped(true)));
        }
        Ok(done)
    }

    async fn rewrap_uploads(&self, bucket: &xregion_types::BucketRecord) -> CoreResult<u64> {
        use xregion_meta::{ListUploadsQuery, WriteOp};
        let mut q = ListUploadsQuery { max_uploads: REWRAP_PAGE, ..ListUploadsQuery::default() };
        let mut done = 0;
        loop {
            let page = self.meta().list_uploads(bucket.id, &q)?;
            let mut ops = Vec::new();
            for upload in &page.uploads {
                let Some(from) = &upload.template.encryption else { continue };
                if let Some(to) = self.rewrapped(from)? {
                    ops.push(WriteOp::RewrapUploadKey { upload_id: upload.upload_id.clone(), from: from.clone(), to });
                }
            }
            done += self.write_rewraps(ops).await?;
            if !page.is_truncated {
                return Ok(done);
            }
            q.key_marker = page.next_key_marker;
            q.upload_id_marker = page.next_upload_id_marker;
        }
    }

    async fn rewrap_versions(&self, bucket: &xregion_types::BucketRecord) -> CoreResult<u64> {
        use xregion_meta::{ListVersionsQuery, WriteOp};
        let mut q = ListVersionsQuery { max_keys: REWRAP_PAGE, ..ListVersionsQuery::default() };
        let mut done = 0;
        loop {
            let page = self.meta().list_versions(bucket.id, &q)?;
            let mut ops = Vec::new();
            for entry in &page.entries {
                let Some(from) = entry.record.object().and_then(|d| d.encryption.as_ref()) else { continue };
                if let Some(to) = self.rewrapped(from)? {
                    ops.push(WriteOp::RewrapVersionKey {
                        bucket: bucket.name.as_str().to_owned(),
                        key: entry.key.clone(),
                        version_id: entry.record.version_id.clone(),
                        from: from.clone(),
                        to,
                    });
                }
            }
            done += self.write_rewraps(ops).await?;
            if !page.is_truncated {
                return Ok(done);
            }
            q.key_marker = page.next_key_marker;
            q.version_id_marker = page.next_version_id_marker;
        }
    }

    /// A new data key for a version about to be written encrypted (wrapped by the newest
    /// master key).
    pub fn new_seal_key(&self) -> CoreResult<SealKey> {
        let (key, wrapped_key, key_id) =
            self.keyring().new_data_key().map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(SealKey { key: Arc::new(key), record: Encryption { key_id, wrapped_key, labels: Vec::new() } })
    }

    /// The key a new version of `bucket` is sealed with: the customer's key if the request
    /// brought one (SSE-C, `customer`); else encrypted if the request asked for `AES256`
    /// (`requested`, checked with [`check_sse_algorithm`]) or, when it did not say, if the
    /// bucket's default encryption rule says so. SSE-C wins over the bucket's default, as on
    /// S3; asking for both SSE-C and SSE-S3 is `400`.
    pub fn write_encryption(
        &self,
        bucket: &str,
        requested: Option<&str>,
        customer: Option<&CustomerKey>,
    ) -> CoreResult<Option<SealKey>> {
        if let Some(customer) = customer {
            if requested.is_some() {
                return Err(InvalidInput::new(
                    "InvalidArgument",
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
                )
                .into());
            }
            let (key, wrapped_key) = customer.new_data_key().map_err(|e| CoreError::Internal(e.to_string()))?;
            let record = Encryption { key_id: Encryption::CUSTOMER_KEY_ID, wrapped_key, labels: Vec::new() };
            return Ok(Some(SealKey { key: Arc::new(key), record }));
        }
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
        self.write_encryption(bucket, source_encrypted.then_some(AES256), None)
    }

    /// The data key of a stored version or upload, unwrapped with the region's master key. An
    /// SSE-C one needs the customer's key ([`Region::open_key`]) and fails here.
    pub fn data_key(&self, encryption: &Encryption) -> CoreResult<Arc<DataKey>> {
        if encryption.is_customer_key() {
            return Err(CoreError::Internal(
                "the version is encrypted with a customer-provided key (SSE-C), which only a client's request brings"
                    .into(),
            ));
        }
        self.keyring()
            .unwrap_key(encryption.key_id, &encryption.wrapped_key)
            .map(Arc::new)
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    /// The data key a client's read of a version (or a part upload into an upload) opens its
    /// bytes with, checking the request's SSE-C key against how they were stored, as S3 does:
    /// an SSE-C version needs its key (`400` without, `403 AccessDenied` with another one),
    /// and any other version refuses one (`400`). `None` for plain bytes.
    pub fn open_key(
        &self,
        encryption: Option<&Encryption>,
        customer: Option<&CustomerKey>,
    ) -> CoreResult<Option<Arc<DataKey>>> {
        match (encryption, customer) {
            (None, None) => Ok(None),
            (Some(e), Some(customer)) if e.is_customer_key() => match customer.unwrap_key(&e.wrapped_key) {
                Ok(key) => Ok(Some(Arc::new(key))),
                Err(_) => Err(CoreError::AccessDenied(
                    "The SSE-C key given is not the key the object was encrypted with.".into(),
                )),
            },
            (Some(e), None) if e.is_customer_key() => Err(InvalidInput::new(
                "InvalidRequest",
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            )
            .into()),
            (Some(e), None) => self.data_key(e).map(Some),
            (_, Some(_)) => {
                Err(InvalidInput::new("InvalidRequest", "The encryption parameters are not applicable to this object.")
                    .into())
            }
        }
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
                open_inline(&key, e.label(0, INLINE_LABEL), &stored)
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

/// Opens an inline body sealed by [`seal_inline`] (`label` [`INLINE_LABEL`]) or, in a replica
/// of an SSE-C version, as its source sealed it (the label its source recorded).
pub(crate) fn open_inline(key: &DataKey, label: &[u8], sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(key.segment(label).and_then(|cipher| cipher.open_all(sealed))?)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests replace key files by hand")]
mod tests {
    use std::sync::Arc;

    use crate::{NoPeers, Region, RegionOptions};

    /// Opens and closes the region; its error as text.
    fn open(dir: &std::path::Path, options: RegionOptions) -> Result<(), String> {
        Region::open_with("test-1", dir, Arc::new(NoPeers), options).map(drop).map_err(|e| e.to_string())
    }

    /// The key a region's data is encrypted with stays its key: a replaced key file, or a
    /// default key file that disappeared, stops the region at open instead of making objects
    /// unreadable (and a new key is never made once one was used).
    #[test]
    fn a_region_opens_only_with_the_key_it_encrypted_with() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("keys/sse-master.key");
        open(dir.path(), RegionOptions::default()).unwrap();
        let original = std::fs::read(&key_file).unwrap();
        open(dir.path(), RegionOptions::default()).unwrap();
        assert_eq!(std::fs::read(&key_file).unwrap(), original, "the key file is read, not replaced");

        std::fs::File::create(&key_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, "ab".repeat(32).as_bytes()))
            .unwrap();
        let err = open(dir.path(), RegionOptions::default()).unwrap_err();
        assert!(err.contains("not the one this region's encrypted objects were written with"), "{err}");

        std::fs::remove_file(&key_file).unwrap();
        let err = open(dir.path(), RegionOptions::default()).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!key_file.try_exists().unwrap(), "no new key is made in place of a lost one");

        let elsewhere = dir.path().join("elsewhere.key");
        let options = RegionOptions { sse_master_key_file: Some(elsewhere.clone()), ..RegionOptions::default() };
        let err = open(dir.path(), options.clone()).unwrap_err();
        assert!(err.contains("must name an existing key file"), "{err}");
        std::fs::File::create(&elsewhere).and_then(|mut f| std::io::Write::write_all(&mut f, &original)).unwrap();
        open(dir.path(), options).unwrap();
    }

    /// `xregion keys rotate`: the next key goes beside the first one; from the next open the
    /// region has both and wraps with the newest; a rotated key that is lost or replaced
    /// stops the region like the first one.
    #[test]
    fn rotated_keys_join_the_keyring_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let err = super::rotate_master_key(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("no SSE master key"), "{err}");
        let region = Region::open_with("test-1", dir.path(), Arc::new(NoPeers), RegionOptions::default()).unwrap();
        assert_eq!(region.master_key_ids(), (vec![1], 1));
        drop(region);

        let (id, path) = super::rotate_master_key(dir.path(), None).unwrap();
        assert_eq!((id, path.clone()), (2, dir.path().join("keys/sse-master-2.key")));
        let region = Region::open_with("test-1", dir.path(), Arc::new(NoPeers), RegionOptions::default()).unwrap();
        assert_eq!(region.master_key_ids(), (vec![1, 2], 2));
        let sealed = region.new_seal_key().unwrap();
        assert_eq!(sealed.record.key_id, 2);
        drop(region);
        assert_eq!(super::rotate_master_key(dir.path(), None).unwrap().0, 3);

        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, "cd".repeat(32)).unwrap();
        let err = open(dir.path(), RegionOptions::default()).unwrap_err();
        assert!(err.contains("not the one this region's encrypted objects were written with"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = open(dir.path(), RegionOptions::default()).unwrap_err();
        assert!(err.contains("has encrypted with key 2"), "{err}");
        std::fs::write(&path, original).unwrap();
        open(dir.path(), RegionOptions::default()).unwrap();

        // A configured first key file gets its rotated keys beside it.
        let other = tempfile::tempdir().unwrap();
        let first = other.path().join("site.key");
        std::fs::write(&first, "ef".repeat(32)).unwrap();
        let (id, path) = super::rotate_master_key(other.path(), Some(&first)).unwrap();
        assert_eq!((id, path), (2, other.path().join("site-2.key")));
    }
}
