//! Object use cases: PUT (blob first, then one metadata commit), GET/HEAD version
//! resolution (VER-12, VER-13), DELETE (VER-15, VER-16), tags (VER-10, VER-14), copy.

use base64::Engine as _;
use bytes::Bytes;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use xregion_blob::checksum::{Hasher, to_base64};
use xregion_blob::md5::Md5;
use xregion_blob::{BlobInfo, BlobWriter};
use xregion_meta::{Outbox, Precondition, WriteOp, WriteOutcome};
use xregion_types::replication::TaskKind;
use xregion_types::{
    BlobRef, BlobSegment, BucketRecord, ChecksumAlgorithm, ChecksumValue, InvalidInput, ObjectData, ObjectKey,
    ReplicationStatus, VersionId, VersionRecord, VersioningState,
};

use crate::buckets::unexpected;
use crate::{CoreError, CoreResult, Region};

/// Boxed error of a request body stream.
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// A request body.
pub type Body<'a> = BoxStream<'a, Result<Bytes, BodyError>>;

/// Largest total size of user metadata (names + values), as in S3.
pub const MAX_USER_METADATA: usize = 2048;

/// Largest object body (simple PUT, CopyObject, replica) stored inline: in the metadata store's
/// `inline_data` table, written in the same group-committed transaction as its version, instead
/// of in a blob file of its own.
///
/// Why 64 KiB: below it, the cost of a blob file (create, write, fsync, rename, directory
/// fsync: several device flushes per object) dwarfs the cost of the bytes, while inline bytes
/// share the group commit's one fsync with up to 256 other ops. The value keeps the worst
/// group-commit transaction bounded (256 × 64 KiB = 16 MiB written per commit), keeps every
/// inline value within a small multiple of redb's 4 KiB page (large values are stored out of
/// the B-tree as overflow pages, never copied on unrelated updates), and keeps the whole body
/// of a small object buffered in memory at most this long per request. Above it, per-file
/// overhead is a small fraction of the transfer time, and the blob path's streaming (no
/// buffering) and large sequential writes win.
pub const INLINE_MAX: usize = 64 * 1024;

/// The checksum S3 adds to a new object uploaded without one ("default data integrity
/// protection": `ChecksumCRC64NVME` is present if the object was uploaded without a checksum
/// and S3 added the default). It is computed in the same pass as MD5, at little cost, and is
/// what replication then verifies a replica by, instead of recomputing its MD5.
pub const DEFAULT_CHECKSUM: ChecksumAlgorithm = ChecksumAlgorithm::Crc64Nvme;

/// Where a stored, not yet committed body lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStorage {
    /// The whole body, to be written inline with the version (at most [`INLINE_MAX`] bytes).
    Inline(Vec<u8>),
    /// A durable blob file.
    File(BlobSegment),
}

/// A request body after [`Region::write_body`]: its length, digests and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    /// Length in bytes.
    pub len: u64,
    /// MD5 of the bytes (the ETag of a simple upload); `None` from
    /// [`Region::write_body_without_md5`].
    pub md5: Option<[u8; 16]>,
    /// The requested additional checksum: algorithm and raw big-endian digest.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
    /// Inline bytes or blob file (sealed when `encryption` is set).
    pub storage: BodyStorage,
    /// The encryption the body was stored with, to commit with its version.
    pub encryption: Option<xregion_types::Encryption>,
}

impl StoredBody {
    /// The blob file, if the body went to one (to delete when the write is abandoned).
    pub fn file(&self) -> Option<&BlobSegment> {
        match &self.storage {
            BodyStorage::File(segment) => Some(segment),
            BodyStorage::Inline(_) => None,
        }
    }

    /// The data location to commit, and the inline bytes to commit with it. An empty body
    /// needs neither a file nor an inline row.
    pub(crate) fn into_location(self) -> (BlobRef, Option<Vec<u8>>) {
        match self.storage {
            _ if self.len == 0 => (BlobRef::default(), None),
            BodyStorage::Inline(bytes) => (BlobRef::default(), Some(bytes)),
            BodyStorage::File(segment) => (BlobRef { segments: vec![segment] }, None),
        }
    }
}

/// Client-settable metadata of an object version (also carried by batched replica writes).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires.
    pub expires: Option<String>,
    /// `x-amz-meta-*`.
    pub user_metadata: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Storage class; `STANDARD` when absent.
    pub storage_class: Option<String>,
}

impl ObjectMeta {
    /// Checks S3's limits on metadata and tags.
    pub fn validate(&self) -> CoreResult<()> {
        let size: usize = self.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_USER_METADATA {
            return Err(InvalidInput::new(
                "MetadataTooLarge",
                "Your metadata headers exceed the maximum allowed metadata size",
            )
            .into());
        }
        validate_tags(&self.tags, 10)
    }

    /// Copies the metadata of an existing version (CopyObject with `COPY` directive).
    pub fn from_data(d: &ObjectData) -> Self {
        Self {
            content_type: d.content_type.clone(),
            content_encoding: d.content_encoding.clone(),
            content_disposition: d.content_disposition.clone(),
            content_language: d.content_language.clone(),
            cache_control: d.cache_control.clone(),
            expires: d.expires.clone(),
            user_metadata: d.user_metadata.clone(),
            tags: d.tags.clone(),
            storage_class: Some(d.storage_class.clone()),
        }
    }

    /// The object data for a new version made of `blob`. Without a Content-Type it gets S3's
    /// default, as on S3, so that a copy or a replica of it has the same one.
    pub fn into_data(self, size: u64, etag: String, blob: BlobRef, checksum: Option<ChecksumValue>) -> ObjectData {
        ObjectData {
            size,
            etag,
            content_type: Some(self.content_type.unwrap_or_else(|| xregion_types::DEFAULT_CONTENT_TYPE.to_owned())),
            content_encoding: self.content_encoding,
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            cache_control: self.cache_control,
            expires: self.expires,
            user_metadata: self.user_metadata,
            tags: self.tags,
            checksum,
            storage_class: self.storage_class.unwrap_or_else(|| "STANDARD".to_owned()),
            blob,
            part_sizes: Vec::new(),
            inline: None,
            encryption: None,
            part_checksums: Vec::new(),
        }
    }
}

/// Checks tag count, lengths and uniqueness (S3: 10 per object, 50 per bucket).
pub fn validate_tags(tags: &[(String, String)], max: usize) -> CoreResult<()> {
    let invalid = |m: &str| CoreError::Invalid(InvalidInput::new("InvalidTag", m));
    if tags.len() > max {
        return Err(invalid(&format!("Object tags cannot be greater than {max}")));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > 256 {
            return Err(invalid("The TagValue you have provided is invalid"));
        }
        if !seen.insert(k) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// The additional checksum a PUT carries: the algorithm, and the value the client sent
/// (in a header, or read from the trailer after the body) if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumClaim {
    /// Algorithm to compute.
    pub algorithm: ChecksumAlgorithm,
    /// Base64 value the client claims, checked after the body (BadDigest on mismatch).
    pub expected: Option<String>,
}

/// A PUT after its body is stored: what to commit.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// Bucket name.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Metadata.
    pub meta: ObjectMeta,
    /// `Content-MD5` (base64), verified against the body.
    pub content_md5: Option<String>,
    /// Additional checksum.
    pub checksum: Option<ChecksumClaim>,
    /// If-None-Match / If-Match on the write (VER-11).
    pub precondition: Option<Precondition>,
}

/// A committed write and the bucket's versioning state at that time (for VER-7 headers).
#[derive(Debug, Clone)]
pub struct PutResult {
    /// The new version.
    pub record: VersionRecord,
    /// Versioning state of the bucket.
    pub versioning: VersioningState,
}

/// Outcome of DeleteObject.
#[derive(Debug, Clone)]
pub struct DeleteResult {
    /// The version id to report (`x-amz-version-id`), if any.
    pub version_id: Option<VersionId>,
    /// Whether a delete marker was created or removed (`x-amz-delete-marker: true`).
    pub delete_marker: bool,
    /// Whether the addressed version existed (always true without a version id). DELETE of
    /// an unknown version is a no-op; DeleteObjects reports it as `NoSuchVersion` (VER-17).
    pub found: bool,
}

impl Region {
    /// Stores a request body: kept in memory when it ends within [`INLINE_MAX`] bytes (to be
    /// committed inline with its version: no file at all), else streamed into a new durable
    /// blob. MD5 and `checksum` are computed once either way. Nothing is visible until
    /// [`Region::commit_put`] (or a replica write) commits it.
    pub async fn write_body(
        &self,
        body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
    ) -> CoreResult<StoredBody> {
        self.store_body(body, checksum, declared_len, Some(INLINE_MAX), true, None, false).await
    }

    /// [`Region::write_body_sealed`] of a new version of an object in `bucket` (PutObject,
    /// CopyObject). When the bucket has a replication configuration, the bytes of a file stay
    /// in memory for a while once written (`xregion_blob::BlobWriter::keep_for_reading`): the
    /// replication source sends the version within milliseconds, and reading it back from the
    /// disk competed with both regions' writes when they share one. Never for an SSE-C body:
    /// its plaintext is not kept past the request (and its replica sends the sealed bytes).
    pub async fn write_object_body(
        &self,
        bucket: &str,
        body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
        seal: Option<&crate::SealKey>,
    ) -> CoreResult<StoredBody> {
        let keep = !seal.is_some_and(|s| s.record.is_customer_key())
            && self.bucket(bucket).is_ok_and(|b| b.replication.is_some());
        self.store_body(body, checksum, declared_len, Some(INLINE_MAX), true, seal, keep).await
    }

    /// [`Region::write_body`] of a body to store encrypted with `seal` (SSE, see
    /// [`Region::write_encryption`]), or not when `None`. Digests and length are the
    /// plaintext's.
    pub async fn write_body_sealed(
        &self,
        body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
        seal: Option<&crate::SealKey>,
    ) -> CoreResult<StoredBody> {
        self.store_body(body, checksum, declared_len, Some(INLINE_MAX), true, seal, false).await
    }

    /// [`Region::write_body`] for bytes verified by `checksum` rather than by MD5 (a replica
    /// whose ETag the source already computed): no MD5 is computed, saving its CPU cost.
    pub async fn write_body_without_md5(
        &self,
        body: Body<'_>,
        checksum: ChecksumAlgorithm,
        declared_len: Option<u64>,
        seal: Option<&crate::SealKey>,
    ) -> CoreResult<StoredBody> {
        self.store_body(body, Some(checksum), declared_len, Some(INLINE_MAX), false, seal, false).await
    }

    /// Streams a request body into a new durable blob, hashing MD5 and `checksum` on the way
    /// (multipart parts: always a file, even when small or empty), sealed with `key` when the
    /// upload is encrypted. The blob is not visible until a commit references it.
    pub async fn write_blob(
        &self,
        body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
        key: Option<&xregion_crypto::DataKey>,
    ) -> CoreResult<BlobInfo> {
        let stored = self.store_plain_or_sealed(body, checksum, declared_len, None, true, key, false).await?;
        match stored.storage {
            BodyStorage::File(segment) => Ok(BlobInfo { segment, md5: stored.md5, checksum: stored.checksum }),
            BodyStorage::Inline(_) => Err(CoreError::Internal("a blob write kept its body inline".into())),
        }
    }

    /// The one body path: buffers up to `inline_max` bytes (`None`: never inline); if the body
    /// goes past it, the buffered chunks and the rest are streamed into a `BlobWriter`, which
    /// hashes them. A body that ends within the limit is hashed here, once. MD5 is skipped
    /// only when `md5` is false and a `checksum` verifies the bytes instead. A file's bytes
    /// stay in memory for a while with `keep` (see [`Region::write_object_body`]).
    #[allow(clippy::too_many_arguments, reason = "private: the public entry points each fix most of them")]
    async fn store_body(
        &self,
        body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
        inline_max: Option<usize>,
        md5: bool,
        seal: Option<&crate::SealKey>,
        keep: bool,
    ) -> CoreResult<StoredBody> {
        let key = seal.map(|s| &*s.key);
        let mut stored = self.store_plain_or_sealed(body, checksum, declared_len, inline_max, md5, key, keep).await?;
        if let Some(seal) = seal {
            if let BodyStorage::Inline(bytes) = &mut stored.storage {
                *bytes = crate::encryption::seal_inline(seal, bytes)?;
            }
            stored.encryption = Some(seal.record.clone());
        }
        Ok(stored)
    }

    /// The body path shared by [`Region::store_body`] and [`Region::write_blob`]; a file
    /// is sealed with `key`, inline bytes are left to the caller.
    #[allow(clippy::too_many_arguments, reason = "private: shared by the entry points above")]
    async fn store_plain_or_sealed(
        &self,
        mut body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
        inline_max: Option<usize>,
        md5: bool,
        key: Option<&xregion_crypto::DataKey>,
        keep: bool,
    ) -> CoreResult<StoredBody> {
        self.ensure_space(declared_len.unwrap_or(0))?;
        let md5 = md5 || checksum.is_none();
        let new_writer = || {
            let mut writer = self.blobs().writer_with(checksum, md5, key)?;
            if keep {
                writer.keep_for_reading();
            }
            Ok::<_, xregion_blob::BlobError>(writer)
        };
        // A body announced as too large for inline storage goes straight to a file.
        let inline_max = inline_max.filter(|max| declared_len.is_none_or(|len| len <= *max as u64));
        let mut writer = match inline_max {
            None => Some(new_writer()?),
            Some(_) => None,
        };
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    abort(writer).await;
                    return Err(CoreError::Body(e));
                }
            };
            total += chunk.len() as u64;
            if writer.is_none() && inline_max.is_some_and(|max| total <= max as u64) {
                buffered.push(chunk);
                continue;
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(new_writer()?),
            };
            for c in buffered.drain(..).chain(std::iter::once(chunk)) {
                if let Err(e) = w.write(c).await {
                    abort(writer).await;
                    return Err(e.into());
                }
            }
        }
        if let Some(len) = declared_len
            && len != total
        {
            abort(writer).await;
            return Err(CoreError::IncompleteBody(format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header ({len} declared, {total} received)"
            )));
        }
        if let Some(w) = writer {
            let info = w.finish().await?;
            return Ok(StoredBody {
                len: info.segment.len,
                md5: info.md5,
                checksum: info.checksum,
                storage: BodyStorage::File(info.segment),
                encryption: None,
            });
        }
        let mut md5 = md5.then(Md5::new);
        let mut hasher = checksum.map(Hasher::new);
        let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for chunk in &buffered {
            if let Some(m) = &mut md5 {
                m.update(chunk);
            }
            if let Some(h) = &mut hasher {
                h.update(chunk);
            }
            bytes.extend_from_slice(chunk);
        }
        Ok(StoredBody {
            len: total,
            md5: md5.map(|m| m.finalize()),
            checksum: hasher.map(|h| (h.algorithm(), h.finalize())),
            storage: BodyStorage::Inline(bytes),
            encryption: None,
        })
    }

    /// Streams bytes `start..end` of an object version, wherever they are stored (inline in
    /// the metadata store, or in blob files). Every reader of object bytes goes through here.
    /// Encrypted bytes are opened on the way (see `encryption.rs`).
    /// An SSE-C version fails here: its bytes open only with the key a client's request
    /// brings ([`Region::read_object_with`]).
    pub fn read_object(&self, data: &ObjectData, start: u64, end: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
        match data.encryption.as_ref().map(|e| self.data_key(e)).transpose() {
            Ok(key) => self.read_object_with(data, start, end, key),
            Err(e) => {
                let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
                futures::stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    /// [`Region::read_object`] with the data key already opened ([`Region::open_key`], which
    /// checks a request's SSE-C key), `None` for plain bytes.
    pub fn read_object_with(
        &self,
        data: &ObjectData,
        start: u64,
        end: u64,
        key: Option<Arc<xregion_crypto::DataKey>>,
    ) -> BoxStream<'static, std::io::Result<Bytes>> {
        let labels = data.encryption.as_ref().map_or(&[][..], |e| &e.labels[..]);
        match (data.inline, key) {
            (None, None) => self.blobs().read(&data.blob, start, end),
            (None, Some(key)) => self.blobs().read_sealed(&data.blob, start, end, key, labels),
            (Some(inline), key) => {
                let own = xregion_crypto::INLINE_LABEL;
                let label = data.encryption.as_ref().map_or(own, |e| e.label(0, own));
                let result = self.inline_range(inline, data.size, start, end, key.as_deref().map(|k| (k, label)));
                futures::stream::once(async move { result }).boxed()
            }
        }
    }

    fn inline_range(
        &self,
        inline: xregion_types::InlineRef,
        size: u64,
        start: u64,
        end: u64,
        key: Option<(&xregion_crypto::DataKey, &[u8])>,
    ) -> std::io::Result<Bytes> {
        use std::io::{Error, ErrorKind};
        let mut bytes = self
            .meta()
            .get_inline(inline)
            .map_err(Error::other)?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "the object's inline data is gone (version deleted)"))?;
        if let Some((key, label)) = key {
            bytes = crate::encryption::open_inline(key, label, &bytes)?;
        }
        if bytes.len() as u64 != size {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("inline data has {} bytes, metadata says {size}", bytes.len()),
            ));
        }
        if start > end || end > size {
            return Err(Error::new(ErrorKind::InvalidInput, format!("range {start}..{end} outside 0..{size}")));
        }
        // Both bounds are at most `size`, which fits in memory (it was just read).
        Ok(Bytes::from(bytes).slice(start as usize..end as usize))
    }

    /// Verifies the digests of a stored body and commits it as a new version of `req.key`.
    /// On an error its blob file (if any) is deleted and nothing is visible, unless the
    /// outcome is unknown ([`CoreError::OutcomeUnknown`]): then the version may exist, and
    /// the file stays for the orphan collection to judge.
    pub async fn commit_put(&self, req: PutRequest, body: StoredBody) -> CoreResult<PutResult> {
        let file = body.file().cloned();
        let result = self.commit_put_inner(req, body).await;
        if let Err(e) = &result
            && let Some(segment) = file
        {
            self.abandon_blobs(e, std::slice::from_ref(&segment)).await;
        }
        result
    }

    async fn commit_put_inner(&self, req: PutRequest, body: StoredBody) -> CoreResult<PutResult> {
        ObjectKey::parse(&req.key)?;
        req.meta.validate()?;
        let md5 = body.md5.ok_or_else(|| CoreError::Internal("a client body was stored without its MD5".into()))?;
        verify_digests(&md5, body.checksum.as_ref(), req.content_md5.as_deref(), req.checksum.as_ref())?;
        let checksum = body.checksum.as_ref().map(|(alg, digest)| ChecksumValue {
            algorithm: *alg,
            value: to_base64(digest),
            full_object: true,
        });
        let (size, etag) = (body.len, hex::encode(md5));
        if size == 0
            && let Some(segment) = body.file()
        {
            // An empty object needs no file.
            self.free_blobs(std::slice::from_ref(segment)).await;
        }
        let encryption = body.encryption.clone();
        let (blob_ref, inline) = body.into_location();
        let data = ObjectData { encryption, ..req.meta.into_data(size, etag, blob_ref, checksum) };
        self.commit_version(&req.bucket, req.key, data, inline, req.precondition).await
    }

    /// Commits prepared object data (and its inline bytes, if any) as the new version of a key.
    pub(crate) async fn commit_version(
        &self,
        bucket: &str,
        key: String,
        data: ObjectData,
        inline: Option<Vec<u8>>,
        precondition: Option<Precondition>,
    ) -> CoreResult<PutResult> {
        // IMPL-1: eligibility is decided now and the tasks commit with the version (ELI-4/5).
        let outbox = self.plan_tasks(bucket, &key, &data.tags, TaskKind::Object, false)?;
        let queued = outbox.len();
        let op =
            WriteOp::PutVersion { bucket: bucket.to_owned(), key, data, inline, replica: None, precondition, outbox };
        match self.meta().write(op).await? {
            WriteOutcome::Version { record, freed } => {
                self.tasks_committed(queued);
                self.free_blobs(&freed).await;
                let versioning = self.bucket(bucket)?.versioning;
                Ok(PutResult { record, versioning })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Resolves the version a GET/HEAD addresses (VER-12, VER-13). Returns the bucket too,
    /// because response headers depend on its versioning state (VER-7).
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> CoreResult<(BucketRecord, VersionRecord)> {
        let b = self.bucket(bucket)?;
        let version = parse_version_for(&b, version)?;
        match version {
            None => match self.meta().get_version(b.id, key, None)? {
                None => Err(CoreError::NoSuchKey { delete_marker: None }),
                Some(v) if v.is_delete_marker() => Err(CoreError::NoSuchKey { delete_marker: Some(v.version_id) }),
                Some(v) => Ok((b, v)),
            },
            Some(vid) => match self.meta().get_version(b.id, key, Some(&vid))? {
                None if b.versioning == VersioningState::Unversioned => {
                    Err(CoreError::NoSuchKey { delete_marker: None })
                }
                None => Err(CoreError::NoSuchVersion),
                Some(v) if v.is_delete_marker() => Err(CoreError::DeleteMarkerNotAllowed {
                    version_id: v.version_id,
                    last_modified_ms: v.last_modified_ms,
                }),
                Some(v) => Ok((b, v)),
            },
        }
    }

    /// DeleteObject with or without a version id (VER-15, VER-16).
    pub async fn delete_object(&self, bucket: &str, key: &str, version: Option<&str>) -> CoreResult<DeleteResult> {
        let b = self.bucket(bucket)?;
        let version = parse_version_for(&b, version)?;
        // DEL-1: only a DELETE without versionId (a new delete marker) may be replicated;
        // DEL-2..4 decide whether this marker is.
        let outbox = match (&version, b.versioning) {
            (None, VersioningState::Enabled) => self.plan_tasks(bucket, key, &[], TaskKind::DeleteMarker, false)?,
            _ => Outbox::default(),
        };
        let queued = outbox.len();
        let op = match &version {
            None => WriteOp::DeleteObject { bucket: bucket.to_owned(), key: key.to_owned(), outbox, if_current: None },
            Some(v) => WriteOp::DeleteVersion { bucket: bucket.to_owned(), key: key.to_owned(), version_id: v.clone() },
        };
        let WriteOutcome::Deleted { removed, marker, freed } = self.meta().write(op).await? else {
            return Err(CoreError::Internal("unexpected outcome of delete".into()));
        };
        self.tasks_committed(queued);
        self.free_blobs(&freed).await;
        Ok(match (version, marker) {
            // A delete marker was inserted (Enabled or Suspended).
            (None, Some(m)) => DeleteResult { version_id: Some(m.version_id), delete_marker: true, found: true },
            // Unversioned: the object is gone, no headers.
            (None, None) => DeleteResult { version_id: None, delete_marker: false, found: true },
            (Some(v), _) => DeleteResult {
                delete_marker: removed.as_ref().is_some_and(VersionRecord::is_delete_marker),
                found: removed.is_some(),
                version_id: (b.versioning != VersioningState::Unversioned || !v.is_null()).then_some(v),
            },
        })
    }

    /// Replaces the tags of a version (VER-10: no new version). Returns the version id.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> CoreResult<VersionId> {
        validate_tags(&tags, 10)?;
        let (b, current) = self.get_object(bucket, key, version)?;
        // ELI-12: a tag change on a version that takes part in replication is replicated onto
        // its replicas, at the destinations it was planned to when it was written (ELI-5; its
        // new tags are not judged). A version written before xregion recorded those (format 2)
        // goes where its tags before this change select. A change on a replica stays local
        // (TWO-3) unless a rule of this bucket enables ReplicaModifications (TWO-4). Versions
        // outside replication get no task.
        let outbox = match (&current.replication, current.object()) {
            (ReplicationStatus::None, _) | (_, None) => Outbox::default(),
            (status, Some(_)) if !status.is_replica() && !current.replication_targets.is_empty() => {
                self.plan_change_tasks(bucket, key, &current.replication_targets)?
            }
            (status, Some(data)) => self.plan_tasks(bucket, key, &data.tags, TaskKind::Tags, status.is_replica())?,
        };
        let queued = outbox.len();
        let op = WriteOp::SetObjectTags {
            bucket: b.name.as_str().to_owned(),
            key: key.to_owned(),
            version_id: Some(current.version_id),
            tags,
            replicated_ms: None,
            outbox,
        };
        match self.meta().write(op).await? {
            WriteOutcome::Tags { version_id } => {
                self.tasks_committed(queued);
                Ok(version_id)
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// Parses a client's `versionId` for a bucket: on an unversioned bucket only `null` is valid
/// (VER-13); elsewhere any well-formed id (unknown ones become `NoSuchVersion` later).
pub fn parse_version_for(b: &BucketRecord, version: Option<&str>) -> CoreResult<Option<VersionId>> {
    let Some(v) = version else { return Ok(None) };
    let parsed = VersionId::parse(v)?;
    if b.versioning == VersioningState::Unversioned && !parsed.is_null() {
        return Err(InvalidInput::new("InvalidArgument", "Invalid version id specified").into());
    }
    Ok(Some(parsed))
}

/// Abandons a blob write that was started, if any.
async fn abort(writer: Option<BlobWriter>) {
    if let Some(w) = writer {
        w.abort().await;
    }
}

fn verify_digests(
    md5: &[u8; 16],
    checksum: Option<&(ChecksumAlgorithm, Vec<u8>)>,
    content_md5: Option<&str>,
    claim: Option<&ChecksumClaim>,
) -> CoreResult<()> {
    if let Some(md5_b64) = content_md5 {
        let sent = base64::engine::general_purpose::STANDARD
            .decode(md5_b64.trim())
            .map_err(|_| InvalidInput::new("InvalidDigest", "The Content-MD5 you specified was invalid."))?;
        if sent.len() != 16 {
            return Err(InvalidInput::new("InvalidDigest", "The Content-MD5 you specified was invalid.").into());
        }
        if sent != md5 {
            return Err(CoreError::BadDigest("The Content-MD5 you specified did not match what we received.".into()));
        }
    }
    if let Some(claim) = claim
        && let Some(expected) = &claim.expected
    {
        let computed = checksum.map(|(_, d)| to_base64(d));
        if computed.as_deref() != Some(expected.trim()) {
            return Err(CoreError::BadDigest(format!(
                "The {} you specified did not match the calculated checksum.",
                claim.algorithm.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xregion_blob::checksum::digest;

    use super::*;
    use crate::NoPeers;
    use crate::conditions::ReadConditions;

    /// A body of `len` bytes in chunks of `chunk` bytes.
    fn body(bytes: &[u8], chunk: usize) -> Body<'static> {
        let chunks: Vec<Result<Bytes, BodyError>> =
            bytes.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(chunks).boxed()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn region() -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        region.create_bucket("bkt", None).await.unwrap();
        (dir, region)
    }

    fn blob_files(region: &Region) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum::<usize>())
                .unwrap_or(0)
        }
        walk(region.blobs().dir())
    }

    async fn read_all(region: &Region, data: &ObjectData, start: u64, end: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = region.read_object(data, start, end);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    async fn put(region: &Region, key: &str, bytes: &[u8], chunk: usize) -> VersionRecord {
        let stored = region
            .write_body(body(bytes, chunk), Some(ChecksumAlgorithm::Crc32c), Some(bytes.len() as u64))
            .await
            .unwrap();
        assert_eq!(stored.len, bytes.len() as u64);
        let req = PutRequest {
            bucket: "bkt".into(),
            key: key.into(),
            meta: ObjectMeta::default(),
            content_md5: Some(base64::engine::general_purpose::STANDARD.encode(xregion_blob::md5::digest(bytes))),
            checksum: Some(ChecksumClaim {
                algorithm: ChecksumAlgorithm::Crc32c,
                expected: Some(to_base64(&digest(ChecksumAlgorithm::Crc32c, bytes))),
            }),
            precondition: None,
        };
        region.commit_put(req, stored).await.unwrap().record
    }

    /// Exactly `INLINE_MAX` bytes are stored inline (no file); one byte more goes to a file.
    /// Both read back whole and by range, with the same digests, whatever the chunking
    /// (including a chunk that crosses the threshold).
    #[tokio::test]
    async fn threshold_boundary() {
        let (_dir, region) = region().await;
        for (len, chunk, inline) in [
            (INLINE_MAX, 1000, true),
            (INLINE_MAX, INLINE_MAX, true),
            (INLINE_MAX + 1, 1000, false),
            (INLINE_MAX + 1, INLINE_MAX + 1, false),
            (INLINE_MAX + 1, 7, false),
            (1, 1, true),
        ] {
            let bytes = pattern(len);
            let files_before = blob_files(&region);
            let record = put(&region, &format!("k{len}-{chunk}"), &bytes, chunk).await;
            let data = record.object().unwrap();
            assert_eq!(data.size, len as u64);
            assert_eq!(data.etag, hex::encode(xregion_blob::md5::digest(&bytes)));
            assert_eq!(data.is_inline(), inline, "len {len}, chunk {chunk}");
            assert_eq!(data.blob.segments.is_empty(), inline);
            assert_eq!(blob_files(&region) - files_before, usize::from(!inline), "len {len}");
            assert_eq!(read_all(&region, data, 0, len as u64).await, bytes);
            if len > 2 {
                assert_eq!(read_all(&region, data, 1, len as u64 - 1).await, bytes[1..len - 1]);
            }
        }
    }

    /// A body that declares more than `INLINE_MAX` but sends less is refused without leaving
    /// a file; an empty body stores neither a file nor an inline row.
    #[tokio::test]
    async fn short_and_empty_bodies() {
        let (_dir, region) = region().await;
        let bytes = pattern(10);
        let err = region.write_body(body(&bytes, 3), None, Some(INLINE_MAX as u64 + 5)).await.unwrap_err();
        assert!(matches!(err, CoreError::IncompleteBody(_)), "{err:?}");
        let err = region.write_body(body(&bytes, 3), None, Some(11)).await.unwrap_err();
        assert!(matches!(err, CoreError::IncompleteBody(_)), "{err:?}");
        let empty = put(&region, "empty", b"", 1).await;
        let data = empty.object().unwrap();
        assert!(!data.is_inline() && data.blob.segments.is_empty());
        assert_eq!(read_all(&region, data, 0, 0).await, b"");
        assert_eq!(region.meta().inline_rows().unwrap(), 0);
        assert_eq!(blob_files(&region), 0);
    }

    /// A copy of an inline object reads it through `read_object` and is inline too; deleting
    /// the source leaves the copy readable; a bad Content-MD5 stores nothing.
    #[tokio::test]
    async fn copy_and_bad_digest_of_inline_objects() {
        let (_dir, region) = region().await;
        let bytes = pattern(100);
        put(&region, "src", &bytes, 10).await;
        let (_, copy) = region
            .copy_object(
                crate::copy::CopySourceRef { bucket: "bkt", key: "src", version: None, customer: None },
                &ReadConditions::default(),
                ("bkt", "dst"),
                None,
                None,
                None,
                None,
                None,
            )
            .await
            .unwrap();
        region.delete_object("bkt", "src", None).await.unwrap();
        let data = copy.record.object().unwrap();
        assert!(data.is_inline());
        assert_eq!(read_all(&region, data, 0, 100).await, bytes);
        assert_eq!(region.meta().inline_rows().unwrap(), 1);

        let stored = region.write_body(body(&bytes, 10), None, None).await.unwrap();
        let req = PutRequest {
            bucket: "bkt".into(),
            key: "bad".into(),
            meta: ObjectMeta::default(),
            content_md5: Some(base64::engine::general_purpose::STANDARD.encode([0u8; 16])),
            checksum: None,
            precondition: None,
        };
        assert!(matches!(region.commit_put(req, stored).await, Err(CoreError::BadDigest(_))));
        assert_eq!(region.meta().inline_rows().unwrap(), 1);
        assert_eq!(blob_files(&region), 0);
    }
}
