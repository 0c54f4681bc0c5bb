//! Object use cases: PUT (blob first, then one metadata commit), GET/HEAD version
//! resolution (VER-12, VER-13), DELETE (VER-15, VER-16), tags (VER-10, VER-14), copy.

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use xregion_blob::BlobInfo;
use xregion_blob::checksum::to_base64;
use xregion_meta::{Precondition, WriteOp, WriteOutcome};
use xregion_types::replication::TaskKind;
use xregion_types::{
    BlobRef, BucketRecord, ChecksumAlgorithm, ChecksumValue, InvalidInput, ObjectData, ObjectKey, ReplicationStatus,
    VersionId, VersionRecord, VersioningState,
};

use crate::buckets::unexpected;
use crate::conditions::ReadConditions;
use crate::{CoreError, CoreResult, Region};

/// Boxed error of a request body stream.
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// A request body.
pub type Body<'a> = BoxStream<'a, Result<Bytes, BodyError>>;

/// Largest total size of user metadata (names + values), as in S3.
pub const MAX_USER_METADATA: usize = 2048;

/// Client-settable metadata of an object version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// The object data for a new version made of `blob`.
    pub fn into_data(self, size: u64, etag: String, blob: BlobRef, checksum: Option<ChecksumValue>) -> ObjectData {
        ObjectData {
            size,
            etag,
            content_type: self.content_type,
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
    /// Streams a request body into a new durable blob, hashing MD5 and `checksum` on the way.
    /// The blob is not visible until [`Region::commit_put`] commits it.
    pub async fn write_blob(
        &self,
        mut body: Body<'_>,
        checksum: Option<ChecksumAlgorithm>,
        declared_len: Option<u64>,
    ) -> CoreResult<BlobInfo> {
        let mut writer = self.blobs().writer(checksum)?;
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await;
                    return Err(CoreError::Body(e));
                }
            };
            total += chunk.len() as u64;
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await;
                return Err(e.into());
            }
        }
        if let Some(len) = declared_len
            && len != total
        {
            writer.abort().await;
            return Err(CoreError::IncompleteBody(format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header ({len} declared, {total} received)"
            )));
        }
        Ok(writer.finish().await?)
    }

    /// Verifies the digests of a stored blob and commits it as a new version of `req.key`.
    /// On any error the blob is deleted and nothing is visible.
    pub async fn commit_put(&self, req: PutRequest, blob: BlobInfo) -> CoreResult<PutResult> {
        let segment = blob.segment.clone();
        let result = self.commit_put_inner(req, blob).await;
        if result.is_err() {
            self.free_blobs(std::slice::from_ref(&segment)).await;
        }
        result
    }

    async fn commit_put_inner(&self, req: PutRequest, blob: BlobInfo) -> CoreResult<PutResult> {
        ObjectKey::parse(&req.key)?;
        req.meta.validate()?;
        verify_digests(&blob, req.content_md5.as_deref(), req.checksum.as_ref())?;
        let checksum = blob.checksum.as_ref().map(|(alg, digest)| ChecksumValue {
            algorithm: *alg,
            value: to_base64(digest),
            full_object: true,
        });
        let size = blob.segment.len;
        let blob_ref = if size == 0 {
            // An empty object needs no file; the empty blob was written only for hashing.
            self.free_blobs(std::slice::from_ref(&blob.segment)).await;
            BlobRef::default()
        } else {
            BlobRef { segments: vec![blob.segment.clone()] }
        };
        let data = req.meta.into_data(size, hex::encode(blob.md5), blob_ref, checksum);
        self.commit_version(&req.bucket, req.key, data, req.precondition).await
    }

    /// Commits prepared object data as the new version of a key.
    pub(crate) async fn commit_version(
        &self,
        bucket: &str,
        key: String,
        data: ObjectData,
        precondition: Option<Precondition>,
    ) -> CoreResult<PutResult> {
        // IMPL-1: eligibility is decided now and the tasks commit with the version (ELI-4/5).
        let outbox = self.plan_tasks(bucket, &key, &data.tags, TaskKind::Object, false)?;
        let queued = outbox.len();
        let op = WriteOp::PutVersion { bucket: bucket.to_owned(), key, data, replica: None, precondition, outbox };
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
            _ => Vec::new(),
        };
        let queued = outbox.len();
        let op = match &version {
            None => WriteOp::DeleteObject { bucket: bucket.to_owned(), key: key.to_owned(), outbox },
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
        // its replicas, to the destinations its tags selected (the tags before this change).
        // Replicas (ELI-13, TWO-3) and versions outside replication get no task.
        let outbox = match (&current.replication, current.object()) {
            (ReplicationStatus::Pending | ReplicationStatus::Completed | ReplicationStatus::Failed, Some(data)) => {
                self.plan_tasks(bucket, key, &data.tags, TaskKind::Tags, false)?
            }
            _ => Vec::new(),
        };
        let queued = outbox.len();
        let op = WriteOp::SetObjectTags {
            bucket: b.name.as_str().to_owned(),
            key: key.to_owned(),
            version_id: Some(current.version_id),
            tags,
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

    /// CopyObject: streams the source version's bytes into a new version of the target key.
    pub async fn copy_object(
        &self,
        source: (&str, &str, Option<&str>),
        conditions: &ReadConditions,
        target: (&str, &str),
        meta: Option<ObjectMeta>,
        tags: Option<Vec<(String, String)>>,
        checksum: Option<ChecksumAlgorithm>,
    ) -> CoreResult<(VersionRecord, PutResult)> {
        let (_, src) = self.get_object(source.0, source.1, source.2)?;
        let Some(data) = src.object() else {
            return Err(CoreError::Internal("copy source resolved to a delete marker".into()));
        };
        conditions.check(&data.etag, src.last_modified_ms)?;
        self.bucket(target.0)?;
        let mut new_meta = meta.unwrap_or_else(|| ObjectMeta::from_data(data));
        if let Some(tags) = tags {
            new_meta.tags = tags;
        }
        let algorithm = checksum.or(data.checksum.as_ref().map(|c| c.algorithm));
        let body = self.blobs().read(&data.blob, 0, data.size).map(|r| r.map_err(BodyError::from)).boxed();
        let blob = self.write_blob(body, algorithm, Some(data.size)).await?;
        let req = PutRequest {
            bucket: target.0.to_owned(),
            key: target.1.to_owned(),
            meta: new_meta,
            content_md5: None,
            checksum: algorithm.map(|a| ChecksumClaim { algorithm: a, expected: None }),
            precondition: None,
        };
        let put = self.commit_put(req, blob).await?;
        Ok((src, put))
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

fn verify_digests(blob: &BlobInfo, content_md5: Option<&str>, claim: Option<&ChecksumClaim>) -> CoreResult<()> {
    if let Some(md5_b64) = content_md5 {
        let sent = base64::engine::general_purpose::STANDARD
            .decode(md5_b64.trim())
            .map_err(|_| InvalidInput::new("InvalidDigest", "The Content-MD5 you specified was invalid."))?;
        if sent.len() != 16 {
            return Err(InvalidInput::new("InvalidDigest", "The Content-MD5 you specified was invalid.").into());
        }
        if sent != blob.md5 {
            return Err(CoreError::BadDigest("The Content-MD5 you specified did not match what we received.".into()));
        }
    }
    if let Some(claim) = claim
        && let Some(expected) = &claim.expected
    {
        let computed = blob.checksum.as_ref().map(|(_, d)| to_base64(d));
        if computed.as_deref() != Some(expected.trim()) {
            return Err(CoreError::BadDigest(format!(
                "The {} you specified did not match the calculated checksum.",
                claim.algorithm.as_str()
            )));
        }
    }
    Ok(())
}
