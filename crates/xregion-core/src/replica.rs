//! Replication in the use-case layer: planning tasks in the write path (IMPL-1), their stored
//! form in the outbox, and the destination side of the replica protocol (IMPL-2): writing a
//! replica version, a replicated delete marker, and replicated tags, each keeping the source's
//! version id and last-modified and marked `REPLICA` (STS-11..13). See `docs/replication.md`.
//!
//! Who may call the replica writes (design invariant 5) is decided by the protocol layer
//! (`s3:ReplicateObject` / `s3:ReplicateDelete` / `s3:ReplicateTags`); ordinary writes can
//! never choose a version id.

use bytes::Bytes;
use futures::StreamExt as _;
use std::sync::Arc;
use xregion_blob::checksum::to_base64;

use xregion_meta::{Outbox, Plan, Planner, WriteOp, WriteOutcome};
use xregion_types::replication::{ReplicationConfig, ReplicationTask, TaskKind};
use xregion_types::{
    BlobSegment, BucketRecord, ChecksumAlgorithm, ChecksumValue, InvalidInput, ObjectKey, ReplicationStatus, VersionId,
    VersionKind, VersionRecord, VersioningState,
};

use crate::buckets::unexpected;
use crate::objects::{Body, INLINE_MAX, ObjectMeta, PutResult, StoredBody, validate_tags};
use crate::sealed::SealedVersion;
use crate::{CoreError, CoreResult, Region, replication_rules};

/// Format byte of a stored task (first byte of `OutboxEntry::task`) before `batch` existed.
const TASK_FORMAT_V1: u8 = 1;
/// Format byte of a stored task: `ReplicationTask` with `batch`.
const TASK_FORMAT_V2: u8 = 2;

/// The stored form of a task: a format byte, then postcard.
pub fn encode_task(task: &ReplicationTask) -> Vec<u8> {
    match postcard::to_extend(task, vec![TASK_FORMAT_V2]) {
        Ok(bytes) => bytes,
        // Serialising plain owned data into a Vec cannot fail.
        Err(e) => unreachable!("postcard encode of a replication task: {e}"),
    }
}

/// Decodes a task written by [`encode_task`].
pub fn decode_task(bytes: &[u8]) -> CoreResult<ReplicationTask> {
    match bytes.split_first() {
        Some((&TASK_FORMAT_V2, body)) => postcard::from_bytes(body).map_err(corrupt_task),
        // Written before batch tasks were marked: taken as live ones.
        Some((&TASK_FORMAT_V1, body)) => {
            postcard::from_bytes::<TaskV1>(body).map_err(corrupt_task).map(|t| ReplicationTask {
                kind: t.kind,
                rule_id: t.rule_id,
                destination_bucket: t.destination_bucket,
                storage_class: t.storage_class,
                batch: false,
            })
        }
        Some((v, _)) => Err(CoreError::Internal(format!("stored replication task has unknown format {v}"))),
        None => Err(CoreError::Internal("stored replication task is empty".into())),
    }
}

/// A task as format 1 stored it (frozen: bytes on disk have this shape).
#[derive(serde::Deserialize)]
struct TaskV1 {
    kind: TaskKind,
    rule_id: String,
    destination_bucket: String,
    storage_class: Option<String>,
}

fn corrupt_task(e: postcard::Error) -> CoreError {
    CoreError::Internal(format!("stored replication task is corrupt: {e}"))
}

/// Error message a destination gives when its versioning is not Enabled (ELI-21, CON-7); the
/// worker maps it to `DstBucketUnversioned`.
pub const DESTINATION_UNVERSIONED: &str = "Destination bucket must have versioning enabled.";

/// A replica version as the source described it (headers `x-xregion-source-*`).
#[derive(Debug, Clone)]
pub struct ReplicaPut {
    /// Destination bucket.
    pub bucket: String,
    /// Key (same as the source's).
    pub key: String,
    /// Content headers, user metadata, tags and storage class.
    pub meta: ObjectMeta,
    /// The source version id (STS-11).
    pub version_id: VersionId,
    /// The source Last-Modified, unix ms (STS-12).
    pub last_modified_ms: i64,
    /// The source version's creation stamp, needed only for the `null` version (whose id does
    /// not carry one: a version from before versioning, sent by a batch replication).
    pub stamp: Option<u64>,
    /// The source ETag without quotes (STS-13); verified when it is a plain MD5.
    pub etag: String,
    /// Part sizes of a multipart source (kept for `partNumber` reads).
    pub part_sizes: Vec<u64>,
    /// The source's part checksums (`ObjectData::part_checksums`), one per part size.
    pub part_checksums: Vec<String>,
    /// The source's checksum; verified when it is a full-object checksum.
    pub checksum: Option<ChecksumValue>,
    /// CRC32C of the bytes as the source sent them (base64, `x-xregion-transfer-crc32c`): with
    /// it, the bytes are verified by CRC32C instead of by recomputing the MD5 ETag.
    pub transfer_crc32c: Option<String>,
    /// The source version is encrypted at rest (SSE-S3): so is the replica (ELI-7), with this
    /// region's own key.
    pub encrypted: bool,
    /// The source version is SSE-C: the body is its sealed pieces, stored as they are
    /// (`crate::sealed`).
    pub sealed: Option<SealedVersion>,
}

/// What storing a replica's body gave: size, blob location, inline bytes, encryption, and the
/// blob files written (to free if the version is not committed).
type StoredReplica =
    (u64, xregion_types::BlobRef, Option<Vec<u8>>, Option<xregion_types::Encryption>, Vec<BlobSegment>);

/// One entry of a replica batch ([`Region::put_replicas_into`]).
// Items live for one request, most of them objects: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ReplicaItem {
    /// A replica version and its bytes.
    Object {
        /// What the source said about it.
        put: ReplicaPut,
        /// The object's bytes.
        bytes: Bytes,
    },
    /// A replicated delete marker (DEL-6).
    DeleteMarker {
        /// Its key.
        key: String,
        /// The source marker's id.
        version_id: VersionId,
        /// The source marker's Last-Modified, unix ms.
        last_modified_ms: i64,
    },
}

/// A replica write checked and ready for its metadata write.
// Short-lived and almost always `Write`.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    /// Already stored (a replay): nothing to write.
    Stored(VersionRecord),
    /// The write, and the blob file written for it (deleted if the write fails).
    Write { op: WriteOp, file: Vec<BlobSegment> },
}

/// How a replica's bytes are checked against what the source said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    /// The source's full-object checksum (computed while storing; no MD5 needed).
    SourceChecksum(ChecksumAlgorithm),
    /// The transfer CRC32C the source computed from its stored bytes (no MD5 needed).
    TransferCrc32c,
    /// MD5 against a plain ETag (and nothing else for a multipart ETag, which is not an MD5
    /// of the bytes).
    Md5,
}

impl ReplicaPut {
    /// The cheapest complete check: a full-object checksum or a transfer CRC32C each prove
    /// the bytes equal the source's, which computed its ETag from them; only without either
    /// is the MD5 recomputed (it is the largest CPU cost of a large replica).
    fn verification(&self) -> Verification {
        match (self.checksum.as_ref().filter(|c| c.full_object), &self.transfer_crc32c) {
            (Some(c), _) => Verification::SourceChecksum(c.algorithm),
            (None, Some(_)) => Verification::TransferCrc32c,
            (None, None) => Verification::Md5,
        }
    }
}

impl Region {
    /// The encoded tasks a new version (or tag change) gets under the bucket's replication
    /// configuration (PRI-1, ELI-4/5/13, DEL-2..4); none without a configuration. The outbox
    /// carries the planner, so that the metadata writer plans again if the configuration
    /// changes before the write commits (CON-5: a configuration applies to every later write).
    pub(crate) fn plan_tasks(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
        kind: TaskKind,
        is_replica: bool,
    ) -> CoreResult<Outbox> {
        let (key, tags) = (key.to_owned(), tags.to_vec());
        self.planned(bucket, move |config| replication_rules::plan(config, &key, &tags, kind, is_replica))
    }

    /// [`Self::plan_tasks`] for a version that already exists, queued by batch replication:
    /// the tasks are marked `batch` (MET-2, RTC-2).
    pub(crate) fn plan_batch_tasks(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
        kind: TaskKind,
    ) -> CoreResult<Outbox> {
        let (key, tags) = (key.to_owned(), tags.to_vec());
        self.planned(bucket, move |config| {
            let mut tasks = replication_rules::plan(config, &key, &tags, kind, false);
            for task in &mut tasks {
                task.batch = true;
            }
            tasks
        })
    }

    /// The encoded tasks a tag change of a version gets, to the destinations it was planned
    /// to when it was written (`targets`, ELI-12 with ELI-5; see
    /// [`replication_rules::plan_change`]).
    pub(crate) fn plan_change_tasks(&self, bucket: &str, key: &str, targets: &[String]) -> CoreResult<Outbox> {
        let (key, targets) = (key.to_owned(), targets.to_vec());
        self.planned(bucket, move |config| replication_rules::plan_change(config, &key, &targets))
    }

    /// Plans with `plan` under the bucket's stored configuration, and hands the writer the
    /// same planner for CON-5. The plan records each task's destination bucket as its target.
    fn planned<F>(&self, bucket: &str, plan: F) -> CoreResult<Outbox>
    where
        F: Fn(&ReplicationConfig) -> Vec<ReplicationTask> + Send + Sync + 'static,
    {
        let stored = self.bucket(bucket)?.replication;
        let planner: Arc<Planner> = Arc::new(move |config: Option<&[u8]>| {
            let Some(bytes) = config else { return Ok(Plan::default()) };
            let config = replication_rules::decode(bytes).map_err(|e| e.to_string())?;
            let tasks = plan(&config);
            Ok(Plan {
                targets: tasks.iter().map(|t| t.destination_bucket.clone()).collect(),
                tasks: tasks.iter().map(encode_task).collect(),
            })
        });
        let plan = planner(stored.as_deref()).map_err(CoreError::Internal)?;
        Ok(Outbox::planned(plan, stored, planner))
    }

    /// Wakes the replication worker if `tasks` were committed.
    pub(crate) fn tasks_committed(&self, tasks: usize) {
        if tasks > 0 {
            self.replication_wake().notify_one();
        }
    }

    /// The destination bucket of a replica write: it must exist and have versioning Enabled
    /// (ELI-21 item 1; otherwise the source records `DstBucketUnversioned`). A batch of
    /// replicas looks it up once and hands it to [`Self::put_replica_into`] and
    /// [`Self::delete_marker_replica_into`] (a read of the store per replica was a few per cent
    /// of the destination's request threads at full speed). The metadata write checks it again.
    pub fn replica_bucket(&self, bucket: &str) -> CoreResult<BucketRecord> {
        let b = self.bucket(bucket)?;
        if b.versioning != VersioningState::Enabled {
            return Err(CoreError::InvalidBucketState(DESTINATION_UNVERSIONED.into()));
        }
        Ok(b)
    }

    /// The stamp of a replicated version: the one its id carries, or for the `null` version
    /// the one the source sent with it (`x-xregion-source-stamp`). A foreign id, or a `null`
    /// one without a stamp, cannot be ordered.
    fn replica_stamp(version_id: &VersionId, sent: Option<u64>) -> CoreResult<u64> {
        match (version_id.stamp(), sent) {
            (Some(own), Some(sent)) if own != sent => Err(CoreError::InvalidArgument(format!(
                "replica version id {version_id} carries stamp {own}, not the {sent} sent with it"
            ))),
            (Some(own), _) => Ok(own),
            (None, Some(sent)) if version_id.is_null() => Ok(sent),
            _ => Err(CoreError::InvalidArgument(format!(
                "replica version id {version_id} does not carry a creation stamp"
            ))),
        }
    }

    /// Writes a replica version (IMPL-2): streams `body` into a blob (hashing MD5 and the
    /// source's checksum algorithm on the way), verifies the plain-MD5 ETag, the full-object
    /// checksum and the size, then stores it with the source's id, last-modified and ETag,
    /// status `REPLICA`. Idempotent by version id: a replay leaves the stored version as it is
    /// (the body is drained, not stored). Ordered by the source stamp: an older replica never
    /// becomes current (STS-15, CON-3).
    pub async fn put_replica(
        &self,
        req: ReplicaPut,
        body: Body<'_>,
        declared_len: Option<u64>,
    ) -> CoreResult<PutResult> {
        let b = self.replica_bucket(&req.bucket)?;
        self.put_replica_into(&b, req, body, declared_len).await
    }

    /// [`Self::put_replica`] into `b`, the record [`Self::replica_bucket`] returned for
    /// `req.bucket`.
    pub async fn put_replica_into(
        &self,
        b: &BucketRecord,
        req: ReplicaPut,
        body: Body<'_>,
        declared_len: Option<u64>,
    ) -> CoreResult<PutResult> {
        match self.prepare_replica_put(b, req, body, declared_len).await? {
            Prepared::Stored(record) => Ok(PutResult { record, versioning: b.versioning }),
            Prepared::Write { op, file } => {
                let record = self.finish_replica(self.meta().write(op).await, &file).await?;
                Ok(PutResult { record, versioning: b.versioning })
            }
        }
    }

    /// Many replica versions and delete markers into `b` (a record [`Self::replica_bucket`]
    /// returned), as a replica batch brings them: each is checked and its body stored exactly
    /// as [`Self::put_replica_into`] / [`Self::delete_marker_replica_into`] would, and their
    /// metadata writes reach the writer in one round trip (`MetaStore::write_all`), where each
    /// still succeeds or fails alone. One result per item, in order.
    pub async fn put_replicas_into(&self, b: &BucketRecord, items: Vec<ReplicaItem>) -> Vec<CoreResult<()>> {
        let prepared = futures::future::join_all(items.into_iter().map(|item| async move {
            match item {
                ReplicaItem::Object { put, bytes } => {
                    let len = bytes.len() as u64;
                    let body = futures::stream::iter([Ok::<_, crate::objects::BodyError>(bytes)]).boxed();
                    self.prepare_replica_put(b, put, body, Some(len)).await
                }
                // A `null` marker, which needs its stamp sent, never travels in a batch.
                ReplicaItem::DeleteMarker { key, version_id, last_modified_ms } => {
                    Self::prepare_marker_replica(b, &key, version_id, last_modified_ms, None)
                }
            }
        }))
        .await;
        let mut ops = Vec::new();
        let mut files = Vec::with_capacity(prepared.len());
        let mut results: Vec<Option<CoreResult<()>>> = Vec::with_capacity(prepared.len());
        for p in prepared {
            match p {
                Ok(Prepared::Write { op, file }) => {
                    ops.push(op);
                    files.push(file);
                    results.push(None);
                }
                Ok(Prepared::Stored(_)) => results.push(Some(Ok(()))),
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let written = match self.meta().write_all(ops).await {
            Ok(written) => written,
            Err(e) => (0..files.len()).map(|_| Err(e.clone())).collect(),
        };
        let mut finished = Vec::with_capacity(files.len());
        for (outcome, file) in written.into_iter().zip(&files) {
            finished.push(self.finish_replica(outcome, file).await.map(drop));
        }
        let mut finished = finished.into_iter();
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    finished.next().unwrap_or_else(|| Err(CoreError::Internal("lost a replica result".into())))
                })
            })
            .collect()
    }

    /// The checks and the body of a replica version, up to its metadata write.
    async fn prepare_replica_put(
        &self,
        b: &BucketRecord,
        mut req: ReplicaPut,
        body: Body<'_>,
        declared_len: Option<u64>,
    ) -> CoreResult<Prepared> {
        same_bucket(b, &req.bucket)?;
        ObjectKey::parse(&req.key)?;
        req.meta.validate()?;
        if !req.part_checksums.is_empty()
            && (req.part_checksums.len() != req.part_sizes.len() || req.checksum.is_none())
        {
            return Err(CoreError::InvalidArgument(
                "a replica's part checksums need its checksum and one part size each".into(),
            ));
        }
        let stamp = Self::replica_stamp(&req.version_id, req.stamp)?;
        // A replay of a body that is stored inline needs no read here: the metadata write
        // keeps the stored version as it is (`put_replica` in xregion-meta) and commits
        // nothing. A larger body is checked first, so that a replay writes no blob file.
        let inline_sized = declared_len.is_some_and(|n| n <= INLINE_MAX as u64);
        if !inline_sized && let Some(existing) = self.meta().get_version(b.id, &req.key, Some(&req.version_id))? {
            // Replay: keep what is stored. The body is drained, not stored, so that the sender
            // sees a normal end of request rather than a connection cut mid-upload.
            let mut body = body;
            while let Some(chunk) = body.next().await {
                chunk.map_err(CoreError::Body)?;
            }
            return Ok(Prepared::Stored(existing));
        }
        let (size, blob_ref, inline, encryption, file) = match req.sealed.take() {
            Some(sealed) => self.store_sealed_replica(&req, body, declared_len, &sealed).await?,
            None => self.store_replica_body(&req, body, declared_len).await?,
        };
        let mut data = req.meta.into_data(size, req.etag, blob_ref, req.checksum);
        data.part_sizes = req.part_sizes;
        data.part_checksums = req.part_checksums;
        data.encryption = encryption;
        let record = VersionRecord {
            version_id: req.version_id,
            stamp,
            last_modified_ms: req.last_modified_ms,
            kind: VersionKind::Object(Box::default()),
            replication: ReplicationStatus::Replica,
            replication_targets: Vec::new(),
            tags_changed_ms: None,
        };
        let op = WriteOp::PutVersion {
            bucket: req.bucket.clone(),
            key: req.key,
            data,
            inline,
            replica: Some(record),
            precondition: None,
            outbox: Outbox::default(),
        };
        Ok(Prepared::Write { op, file })
    }

    /// Stores a replica's plaintext body (encrypted with this region's key when its source
    /// was, ELI-7, or the bucket's default says so, ELI-9) and verifies it against what the
    /// source said: size, location, encryption, and the blob files to free on a failure.
    async fn store_replica_body(
        &self,
        req: &ReplicaPut,
        body: Body<'_>,
        declared_len: Option<u64>,
    ) -> CoreResult<StoredReplica> {
        let seal = self.replica_encryption(&req.bucket, req.encrypted)?;
        let seal = seal.as_ref();
        let stored = match req.verification() {
            Verification::SourceChecksum(algorithm) => {
                self.write_body_without_md5(body, algorithm, declared_len, seal).await?
            }
            Verification::TransferCrc32c => {
                self.write_body_without_md5(body, ChecksumAlgorithm::Crc32c, declared_len, seal).await?
            }
            Verification::Md5 => self.write_body_sealed(body, None, declared_len, seal).await?,
        };
        let file: Vec<_> = stored.file().cloned().into_iter().collect();
        let verified = verify_replica(req, &stored);
        if let Err(e) = verified {
            self.free_blobs(&file).await;
            return Err(e);
        }
        let size = stored.len;
        if size == 0 {
            // An empty object needs no file.
            self.free_blobs(&file).await;
        }
        let encryption = stored.encryption.clone();
        let (blob_ref, inline) = stored.into_location();
        Ok((size, blob_ref, inline, encryption, file))
    }

    /// Stores a replica of an SSE-C version as its source sent it: sealed pieces this region
    /// cannot open (`crate::sealed`). Checked: the body's length against the pieces', the
    /// transfer CRC32C (required: nothing else can be checked without the client's key), and
    /// the part sizes against the pieces.
    async fn store_sealed_replica(
        &self,
        req: &ReplicaPut,
        body: Body<'_>,
        declared_len: Option<u64>,
        sealed: &SealedVersion,
    ) -> CoreResult<StoredReplica> {
        let invalid = |m: &str| CoreError::Invalid(InvalidInput::new("InvalidArgument", m));
        let Some(expected_crc) = req.transfer_crc32c.as_deref() else {
            return Err(invalid("a sealed replica needs x-xregion-transfer-crc32c"));
        };
        if declared_len.is_some_and(|len| len != sealed.sealed_size()) {
            return Err(invalid("the sealed replica's length is not the one its pieces take"));
        }
        check_part_sizes(req, sealed.size())?;
        let stored = self.store_sealed(body, sealed).await?;
        let file = stored.blob.segments.clone();
        if stored.crc32c != expected_crc {
            self.free_blobs(&file).await;
            return Err(CoreError::BadDigest("replica bytes do not match the transfer CRC32C".into()));
        }
        Ok((sealed.size(), stored.blob, stored.inline, Some(sealed.encryption()), file))
    }

    /// The metadata write of a replicated delete marker.
    fn prepare_marker_replica(
        b: &BucketRecord,
        key: &str,
        version_id: VersionId,
        last_modified_ms: i64,
        stamp: Option<u64>,
    ) -> CoreResult<Prepared> {
        ObjectKey::parse(key)?;
        let stamp = Self::replica_stamp(&version_id, stamp)?;
        let record = VersionRecord {
            version_id,
            stamp,
            last_modified_ms,
            kind: VersionKind::DeleteMarker,
            replication: ReplicationStatus::Replica,
            replication_targets: Vec::new(),
            tags_changed_ms: None,
        };
        let op = WriteOp::PutVersion {
            bucket: b.name.as_str().to_owned(),
            key: key.to_owned(),
            data: Default::default(),
            inline: None,
            replica: Some(record),
            precondition: None,
            outbox: Outbox::default(),
        };
        Ok(Prepared::Write { op, file: Vec::new() })
    }

    /// After a replica's metadata write: the blobs it freed are deleted; if it failed, so is
    /// the file written for it (unless the outcome is unknown, see [`Region::abandon_blobs`]).
    async fn finish_replica(
        &self,
        outcome: Result<WriteOutcome, xregion_meta::MetaError>,
        file: &[BlobSegment],
    ) -> CoreResult<VersionRecord> {
        match outcome {
            Ok(WriteOutcome::Version { record, freed }) => {
                self.free_blobs(&freed).await;
                Ok(record)
            }
            Ok(other) => Err(unexpected(&other)),
            Err(e) => {
                let e = CoreError::from(e);
                self.abandon_blobs(&e, file).await;
                Err(e)
            }
        }
    }

    /// Writes a replicated delete marker (DEL-6): the source marker's id and timestamp, status
    /// `REPLICA`; current only if it is the key's newest version (CON-4). Idempotent.
    /// `stamp`: the marker's creation stamp, needed only for a `null` marker.
    pub async fn delete_marker_replica(
        &self,
        bucket: &str,
        key: &str,
        version_id: VersionId,
        last_modified_ms: i64,
        stamp: Option<u64>,
    ) -> CoreResult<VersionRecord> {
        let b = self.replica_bucket(bucket)?;
        self.delete_marker_replica_into(&b, key, version_id, last_modified_ms, stamp).await
    }

    /// [`Self::delete_marker_replica`] into `b`, a record [`Self::replica_bucket`] returned.
    pub async fn delete_marker_replica_into(
        &self,
        b: &BucketRecord,
        key: &str,
        version_id: VersionId,
        last_modified_ms: i64,
        stamp: Option<u64>,
    ) -> CoreResult<VersionRecord> {
        match Self::prepare_marker_replica(b, key, version_id, last_modified_ms, stamp)? {
            Prepared::Write { op, file } => self.finish_replica(self.meta().write(op).await, &file).await,
            Prepared::Stored(record) => Ok(record),
        }
    }

    /// Applies a replicated tag change to a version (ELI-12 onto a replica, or TWO-4 replica
    /// modification sync onto the original). The version must exist (`NoSuchVersion`
    /// otherwise: the source records `DstVersionNotFound`).
    ///
    /// `changed_ms`: when the change was made at its origin; the stored tags are then replaced
    /// only if older (TWO-8, last writer wins). `None` (a sender that does not say) replaces
    /// them.
    ///
    /// A change arriving at a replica is never sent on (TWO-3, ELI-13). A change synced back
    /// onto the original (TWO-4) is sent on to the original's other replicas, the destinations
    /// it was planned to except `from`, the bucket the change came from (TWO-6: no
    /// ping-pong), so that every copy converges; without `from` (a sender that does not say)
    /// it is not sent on.
    pub async fn set_replica_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: VersionId,
        tags: Vec<(String, String)>,
        changed_ms: Option<i64>,
        from: Option<&str>,
    ) -> CoreResult<VersionId> {
        validate_tags(&tags, 10)?;
        let (_, current) = self.get_object(bucket, key, Some(version_id.as_str()))?;
        let others: Vec<String> = match from {
            // A replica never sends a change on (ELI-13); only a planned version has targets.
            Some(from) if !current.replication.is_replica() => {
                current.replication_targets.iter().filter(|t| t.as_str() != from).cloned().collect()
            }
            _ => Vec::new(),
        };
        let outbox = match others.is_empty() {
            true => Outbox::default(),
            false => self.plan_change_tasks(bucket, key, &others)?,
        };
        let queued = outbox.len();
        let op = WriteOp::SetObjectTags {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(version_id),
            tags,
            // Without a time the change is applied as made now.
            replicated_ms: changed_ms,
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

/// A multipart source's part sizes must add up to the replica's size.
fn check_part_sizes(req: &ReplicaPut, size: u64) -> CoreResult<()> {
    if !req.part_sizes.is_empty() && req.part_sizes.iter().sum::<u64>() != size {
        return Err(CoreError::BadDigest("replica size does not match the source's part sizes".into()));
    }
    Ok(())
}

/// Checks the received bytes against what the source said (see [`ReplicaPut::verification`]):
/// size (multipart part sizes), then the full-object checksum, the transfer CRC32C, or the
/// ETag when it is a plain MD5.
fn verify_replica(req: &ReplicaPut, blob: &StoredBody) -> CoreResult<()> {
    check_part_sizes(req, blob.len)?;
    let computed = blob.checksum.as_ref().map(|(_, d)| to_base64(d));
    let (claim, what) = match req.verification() {
        Verification::SourceChecksum(algorithm) => {
            (req.checksum.as_ref().map(|c| c.value.as_str()), format!("the source {} checksum", algorithm.as_str()))
        }
        Verification::TransferCrc32c => (req.transfer_crc32c.as_deref(), "the transfer CRC32C".to_owned()),
        Verification::Md5 => {
            if !req.etag.contains('-') && Some(req.etag.clone()) != blob.md5.map(hex::encode) {
                return Err(CoreError::BadDigest("replica bytes do not match the source ETag".into()));
            }
            return Ok(());
        }
    };
    if computed.is_none() || computed.as_deref() != claim {
        return Err(CoreError::BadDigest(format!("replica bytes do not match {what}")));
    }
    Ok(())
}

/// The transfer CRC32C of a stored version's bytes (base64, as `x-xregion-transfer-crc32c`
/// carries it), read back from wherever they are stored.
pub async fn transfer_crc32c(region: &Region, data: &xregion_types::ObjectData) -> CoreResult<String> {
    let mut hasher = xregion_blob::checksum::Hasher::new(ChecksumAlgorithm::Crc32c);
    let mut stream = region.read_object(data, 0, data.size);
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk.map_err(|e| CoreError::Internal(format!("reading the source version: {e}")))?);
    }
    Ok(to_base64(&hasher.finalize()))
}

/// Parses the replica checksum header value `ALGORITHM:base64:FULL_OBJECT|COMPOSITE`.
pub fn parse_checksum_header(value: &str) -> CoreResult<ChecksumValue> {
    let bad = || CoreError::Invalid(InvalidInput::new("InvalidArgument", "invalid x-xregion-source-checksum"));
    let mut parts = value.splitn(3, ':');
    let (Some(alg), Some(val), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let algorithm = xregion_types::ChecksumAlgorithm::parse(alg).ok_or_else(bad)?;
    let full_object = match kind {
        "FULL_OBJECT" => true,
        "COMPOSITE" => false,
        _ => return Err(bad()),
    };
    Ok(ChecksumValue { algorithm, value: val.to_owned(), full_object })
}

/// The replica checksum header value for a stored checksum (see [`parse_checksum_header`]).
pub fn checksum_header(c: &ChecksumValue) -> String {
    let kind = if c.full_object { "FULL_OBJECT" } else { "COMPOSITE" };
    format!("{}:{}:{kind}", c.algorithm.as_str(), c.value)
}

/// A bucket record handed to a `*_into` replica write must be the one the request names.
fn same_bucket(b: &BucketRecord, bucket: &str) -> CoreResult<()> {
    match b.name.as_str() == bucket {
        true => Ok(()),
        false => {
            Err(CoreError::InvalidArgument(format!("replica for bucket {bucket} given bucket {}", b.name.as_str())))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::StreamExt as _;
    use xregion_types::replication::{Destination, Filter, ReplicationConfig, Rule, RuleSchema};

    use super::*;
    use crate::NoPeers;
    use crate::objects::{Body, PutRequest};

    fn body(bytes: &'static [u8]) -> Body<'static> {
        futures::stream::iter(vec![Ok(Bytes::from_static(bytes))]).boxed()
    }

    /// A replica is ordered by the stamp its id carries; the `null` version only by the one
    /// sent with it, which must agree with the id's when both are there.
    #[test]
    fn replica_stamps() {
        let clock = xregion_types::VersionClock::new();
        let stamp = clock.next();
        let id = VersionId::generate(stamp, [7; 12]);
        assert_eq!(Region::replica_stamp(&id, None).unwrap(), stamp);
        assert_eq!(Region::replica_stamp(&id, Some(stamp)).unwrap(), stamp);
        assert!(Region::replica_stamp(&id, Some(stamp + 1)).is_err());
        assert_eq!(Region::replica_stamp(&VersionId::Null, Some(42)).unwrap(), 42);
        assert!(Region::replica_stamp(&VersionId::Null, None).is_err());
    }

    /// `src` → `dst` in one region, whole bucket, delete markers on.
    pub(crate) async fn configured() -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        for name in ["src", "dst"] {
            region.create_bucket(name, None).await.unwrap();
            region.set_versioning(name, VersioningState::Enabled).await.unwrap();
        }
        let rule = Rule {
            id: "all".into(),
            priority: Some(1),
            enabled: true,
            schema: RuleSchema::V2,
            filter: Filter::default(),
            destination: Destination {
                bucket_arn: "arn:aws:s3:::dst".into(),
                bucket: "dst".into(),
                account: None,
                storage_class: None,
                owner_override: false,
                replica_kms_key_id: None,
                replication_time: None,
                metrics: None,
            },
            delete_marker_replication: Some(true),
            sse_kms_encrypted_objects: None,
            replica_modifications: None,
            existing_object_replication: None,
        };
        let config = ReplicationConfig { role: "arn:aws:iam::1:role/r".into(), rules: vec![rule] };
        region.set_replication("src", Some(config)).await.unwrap();
        (dir, region)
    }

    pub(crate) async fn put(region: &Region, bucket: &str, key: &str) -> VersionRecord {
        let blob = region.write_body(body(b"data"), None, None).await.unwrap();
        let req = PutRequest {
            bucket: bucket.into(),
            key: key.into(),
            meta: ObjectMeta::default(),
            content_md5: None,
            checksum: None,
            precondition: None,
        };
        region.commit_put(req, blob).await.unwrap().record
    }

    fn tasks(region: &Region) -> Vec<(String, Option<VersionId>, TaskKind)> {
        let entries = region.meta().list_outbox(None, 100).unwrap();
        entries.into_iter().map(|e| (e.key, e.version_id, decode_task(&e.task).unwrap().kind)).collect()
    }

    /// IMPL-1, DEL-1, DEL-3, ELI-12, ELI-13: what the write path queues.
    #[tokio::test]
    async fn impl1_write_path_queues_exactly_the_eligible_operations() {
        let (_dir, region) = configured().await;
        let v = put(&region, "src", "k").await;
        assert_eq!(v.replication, ReplicationStatus::Pending);
        let marker = region.delete_object("src", "k", None).await.unwrap().version_id.unwrap();
        // DEL-1: deleting by version id queues nothing.
        region.delete_object("src", "k", Some(marker.as_str())).await.unwrap();
        // ELI-12: a tag change on a PENDING version queues a Tags task.
        region.set_object_tags("src", "k", Some(v.version_id.as_str()), vec![("a".into(), "b".into())]).await.unwrap();
        assert_eq!(
            tasks(&region),
            vec![
                ("k".to_owned(), Some(v.version_id.clone()), TaskKind::Object),
                ("k".to_owned(), Some(marker), TaskKind::DeleteMarker),
                ("k".to_owned(), Some(v.version_id.clone()), TaskKind::Tags),
            ]
        );
        // A bucket without configuration queues nothing; its versions have no status.
        assert_eq!(put(&region, "dst", "plain").await.replication, ReplicationStatus::None);
        assert_eq!(tasks(&region).len(), 3);
    }

    /// A replica of `data` (4 bytes) as key `r` in bucket `src`, with version `id`.
    fn replica_of_data(id: &VersionId) -> ReplicaPut {
        ReplicaPut {
            bucket: "src".into(),
            key: "r".into(),
            meta: ObjectMeta::default(),
            version_id: id.clone(),
            last_modified_ms: 1_234,
            stamp: None,
            etag: "8d777f385d3dfec8815d20f7496026dc".into(), // md5("data")
            part_sizes: Vec::new(),
            part_checksums: Vec::new(),
            checksum: None,
            transfer_crc32c: None,
            encrypted: false,
            sealed: None,
        }
    }

    /// ELI-13, TWO-2: replicas are never queued, not even when their bucket replicates, and
    /// tagging a replica stays local (TWO-3). Replays are idempotent (invariant 4).
    #[tokio::test]
    async fn eli13_replicas_get_no_tasks_and_replays_are_idempotent() {
        let (_dir, region) = configured().await;
        let source = put(&region, "dst", "seed").await; // a real id to replicate
        let req = replica_of_data(&source.version_id);
        let stored = region.put_replica(req.clone(), body(b"data"), Some(4)).await.unwrap().record;
        assert_eq!(stored.replication, ReplicationStatus::Replica);
        assert_eq!((stored.version_id.clone(), stored.last_modified_ms), (source.version_id.clone(), 1_234));
        // Both replay paths: an inline-sized body is left to the metadata write, a body of
        // unknown length is checked against the store first.
        let again = region.put_replica(req.clone(), body(b"data"), Some(4)).await.unwrap().record;
        assert_eq!(again, stored);
        let again = region.put_replica(req, body(b"data"), None).await.unwrap().record;
        assert_eq!(again, stored);
        region.set_object_tags("src", "r", None, vec![("x".into(), "y".into())]).await.unwrap();
        assert!(tasks(&region).is_empty());
    }

    /// TWO-4, STS-10: with ReplicaModifications Enabled, tagging a replica queues a Tags task
    /// and the replica reads PENDING; a failed sync reads FAILED, the next change PENDING again,
    /// and a finished one REPLICA. The replica is never treated as an original (ELI-13).
    #[tokio::test]
    async fn two4_sts10_replica_modifications_are_queued_and_tracked() {
        let (_dir, region) = configured().await;
        let mut config = region.replication_config("src").unwrap().unwrap();
        config.rules[0].replica_modifications = Some(true);
        region.set_replication("src", Some(config)).await.unwrap();
        let source = put(&region, "dst", "seed").await;
        let req = replica_of_data(&source.version_id);
        region.put_replica(req, body(b"data"), Some(4)).await.unwrap();
        let vid = source.version_id.clone();
        let status = |region: &Region| region.get_object("src", "r", Some(vid.as_str())).unwrap().1.replication;
        let tag = |v: &str| vec![("t".to_owned(), v.to_owned())];

        region.set_object_tags("src", "r", Some(vid.as_str()), tag("1")).await.unwrap();
        assert_eq!(tasks(&region), vec![("r".to_owned(), Some(vid.clone()), TaskKind::Tags)]);
        assert_eq!(status(&region), ReplicationStatus::ReplicaPending);
        assert_eq!(status(&region).header_value(), Some("PENDING"));
        let seq = region.meta().list_outbox(None, 10).unwrap()[0].seq;
        region.meta().write(WriteOp::FailTask { seq, reason: "DstVersionNotFound".into() }).await.unwrap();
        assert_eq!(status(&region), ReplicationStatus::ReplicaFailed);
        assert_eq!(status(&region).header_value(), Some("FAILED"));

        region.set_object_tags("src", "r", Some(vid.as_str()), tag("2")).await.unwrap();
        assert_eq!(status(&region), ReplicationStatus::ReplicaPending);
        let seq = region.meta().list_outbox(None, 10).unwrap()[0].seq;
        region.meta().write(WriteOp::CompleteTask { seq }).await.unwrap();
        assert_eq!(status(&region), ReplicationStatus::Replica);
        assert!(tasks(&region).is_empty());
    }

    /// IMPL-2: with a transfer CRC32C the replica is verified by it (no MD5 computed); a wrong
    /// one is `BadDigest` and stores nothing. Without one, the plain-MD5 ETag is checked.
    #[tokio::test]
    async fn impl2_replicas_are_verified_by_transfer_crc32c_or_md5() {
        let (_dir, region) = configured().await;
        let bytes = vec![7u8; 100_000]; // above the inline limit: a blob file
        let mut hasher = xregion_blob::checksum::Hasher::new(ChecksumAlgorithm::Crc32c);
        hasher.update(&bytes);
        let crc = to_base64(&hasher.finalize());
        let clock = xregion_types::VersionClock::new();
        let ids: Vec<VersionId> = (0..3).map(|i| VersionId::generate(clock.next(), [i; 12])).collect();
        let req = |id: &VersionId, etag: &str, crc: Option<&str>| ReplicaPut {
            bucket: "dst".into(),
            key: format!("k-{id}"),
            meta: ObjectMeta::default(),
            version_id: id.clone(),
            last_modified_ms: 1,
            stamp: None,
            etag: etag.into(),
            part_sizes: Vec::new(),
            part_checksums: Vec::new(),
            checksum: None,
            transfer_crc32c: crc.map(str::to_owned),
            encrypted: false,
            sealed: None,
        };
        let body = |b: &[u8]| futures::stream::iter(vec![Ok(Bytes::copy_from_slice(b))]).boxed();
        let md5 = hex::encode(xregion_blob::md5::digest(&bytes));
        let ok = region.put_replica(req(&ids[0], &md5, Some(&crc)), body(&bytes), Some(bytes.len() as u64)).await;
        assert_eq!(ok.unwrap().record.object().map(|d| d.etag.clone()), Some(md5.clone()));
        let wrong = region.put_replica(req(&ids[1], &md5, Some("AAAAAA==")), body(&bytes), None).await;
        assert!(matches!(wrong, Err(CoreError::BadDigest(_))), "{wrong:?}");
        assert!(region.get_object("dst", &format!("k-{}", ids[1]), None).is_err(), "nothing stored");
        let bad_md5 = region.put_replica(req(&ids[2], &"0".repeat(32), None), body(&bytes), None).await;
        assert!(matches!(bad_md5, Err(CoreError::BadDigest(_))), "{bad_md5:?}");
    }

    /// ELI-7 for SSE-C: a sealed replica is stored as sent, one blob per piece, and needs its
    /// transfer CRC32C; a wrong CRC, a body shorter or longer than its pieces, or no CRC at
    /// all store nothing (no version, no blob file left).
    #[tokio::test]
    async fn sealed_replicas_are_stored_as_sent_or_not_at_all() {
        use crate::sealed::{SealedPiece, SealedVersion};
        let (dir, region) = configured().await;
        let lens = [200_000u64, 3];
        let sealed = SealedVersion {
            wrapped_key: vec![5; 60],
            pieces: lens.iter().enumerate().map(|(i, len)| SealedPiece { label: format!("p{i}"), len: *len }).collect(),
        };
        let bytes = vec![9u8; sealed.sealed_size() as usize];
        let mut hasher = xregion_blob::checksum::Hasher::new(ChecksumAlgorithm::Crc32c);
        hasher.update(&bytes);
        let crc = to_base64(&hasher.finalize());
        let clock = xregion_types::VersionClock::new();
        let req = |crc: Option<&str>| ReplicaPut {
            bucket: "dst".into(),
            key: "sealed".into(),
            meta: ObjectMeta::default(),
            version_id: VersionId::generate(clock.next(), [1; 12]),
            last_modified_ms: 1,
            stamp: None,
            etag: "abc-2".into(),
            part_sizes: lens.to_vec(),
            part_checksums: Vec::new(),
            checksum: None,
            transfer_crc32c: crc.map(str::to_owned),
            encrypted: false,
            sealed: Some(sealed.clone()),
        };
        let body = |b: &[u8]| futures::stream::iter(vec![Ok(Bytes::copy_from_slice(b))]).boxed();
        let blob_files = || {
            let mut n = 0;
            let mut stack = vec![dir.path().join("blobs")];
            while let Some(p) = stack.pop() {
                for e in std::fs::read_dir(&p).unwrap() {
                    let e = e.unwrap();
                    match e.file_type().unwrap().is_dir() {
                        true => stack.push(e.path()),
                        false => n += 1,
                    }
                }
            }
            n
        };
        let before = blob_files();
        let wrong = region.put_replica(req(Some("AAAAAA==")), body(&bytes), None).await;
        assert!(matches!(wrong, Err(CoreError::BadDigest(_))), "{wrong:?}");
        let short = region.put_replica(req(Some(&crc)), body(&bytes[1..]), None).await;
        assert!(matches!(short, Err(CoreError::IncompleteBody(_))), "{short:?}");
        let long = region.put_replica(req(Some(&crc)), body(&[&bytes[..], b"x"].concat()), None).await;
        assert!(matches!(long, Err(CoreError::IncompleteBody(_))), "{long:?}");
        let unchecked = region.put_replica(req(None), body(&bytes), None).await;
        assert!(matches!(unchecked, Err(CoreError::Invalid(_))), "{unchecked:?}");
        assert!(region.get_object("dst", "sealed", None).is_err(), "nothing stored");
        assert_eq!(blob_files(), before, "no blob file left behind");

        let stored = region.put_replica(req(Some(&crc)), body(&bytes), None).await.unwrap().record;
        let data = stored.object().unwrap();
        assert_eq!(data.size, 200_003);
        assert_eq!(data.blob.segments.iter().map(|s| s.len).collect::<Vec<_>>(), lens);
        let encryption = data.encryption.as_ref().unwrap();
        assert!(encryption.is_customer_key());
        assert_eq!(encryption.labels, ["p0", "p1"]);
        // What the region sends onwards is what it received.
        assert_eq!(region.sealed_version(data), Some(sealed));
        let mut sent = Vec::new();
        let mut stream = region.read_sealed_version(data);
        while let Some(chunk) = stream.next().await {
            sent.extend_from_slice(&chunk.unwrap());
        }
        assert!(sent == bytes);
    }

    #[test]
    fn task_encoding_round_trips_and_rejects_garbage() {
        let task = ReplicationTask {
            kind: TaskKind::DeleteMarker,
            rule_id: "r1".into(),
            destination_bucket: "dst".into(),
            storage_class: Some("STANDARD_IA".into()),
            batch: true,
        };
        let bytes = encode_task(&task);
        assert_eq!(bytes[0], TASK_FORMAT_V2);
        assert_eq!(decode_task(&bytes).unwrap(), task);
        assert!(decode_task(&[]).is_err());
        assert!(decode_task(&[9, 1, 2]).is_err());
        // Format 1 (before `batch`): the same fields without the last byte, a live task.
        let mut v1 = bytes.clone();
        v1[0] = TASK_FORMAT_V1;
        assert_eq!(v1.pop(), Some(1), "`batch: true` is the last byte");
        assert_eq!(decode_task(&v1).unwrap(), ReplicationTask { batch: false, ..task });
    }

    #[test]
    fn checksum_header_round_trips() {
        let c = ChecksumValue {
            algorithm: xregion_types::ChecksumAlgorithm::Crc32c,
            value: "abc=-3".into(),
            full_object: false,
        };
        assert_eq!(parse_checksum_header(&checksum_header(&c)).unwrap(), c);
        assert!(parse_checksum_header("MD5:x:FULL_OBJECT").is_err());
        assert!(parse_checksum_header("CRC32").is_err());
    }
}
