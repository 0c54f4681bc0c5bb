//! Value encoding: one format-version byte, then postcard.
//!
//! Every stored value (bucket, version, upload, part, outbox entry) starts with its format
//! byte. When a stored shape changes, the old shape is frozen in a `mod v1` here, the new one
//! gets the next format byte, and [`decode`] migrates old values on read (Garage's `Migrate`
//! pattern). The golden-bytes tests below fail if a type in `xregion-types` changes its
//! encoding by accident.
//!
//! * [`FORMAT_V1`]: the first layout.
//! * [`FORMAT_V2`]: `ObjectData` gained `inline: Option<InlineRef>` (small objects stored in
//!   the `inline_data` table). Only `VersionRecord` and `UploadRecord` contain an
//!   `ObjectData`; their v1 bytes decode through [`v1`] with `inline: None`.
//! * [`FORMAT_V3`]: `VersionRecord` gained `replication_targets: Vec<String>` (where
//!   a version's replicas are, for ELI-12) and `tags_changed_ms: Option<i64>` (last writer
//!   wins for replicated tag changes, TWO-8). Its v2 bytes decode through [`v2`] with neither.
//! * [`FORMAT_V4`]: `JobSpec` gained `tags` (as `CreateJob` asked), and `JobRecord` the job's
//!   current `priority` and `tags` (`UpdateJobPriority`, `PutJobTagging`). Its v3 bytes decode
//!   through [`v3`]: no tags, the current priority the one stored in the spec.
//! * [`FORMAT_V5`]: `BucketRecord` gained `lifecycle: Option<Vec<u8>>` (the bucket's
//!   lifecycle configuration). Its bytes of formats 1 to 4 decode through [`v4`], without one.
//! * [`FORMAT_V6`]: encryption at rest. `ObjectData` gained `encryption` (SSE-S3:
//!   the wrapped data key) and `BucketRecord` `encryption` (the default encryption rule).
//!   `VersionRecord`, `UploadRecord` and `BucketRecord` of earlier formats decode through
//!   [`v5`], unencrypted.
//! * [`FORMAT_V7`]: `Encryption` gained `labels` (the labels a replica of an SSE-C
//!   version's pieces were sealed under). `VersionRecord` and `UploadRecord` of format 6
//!   decode through [`v6`], with none; unencrypted values have the same bytes in both.
//! * [`FORMAT_V8`] (current): `ObjectData` gained `part_checksums` (a multipart version's
//!   parts' checksums, kept after completion). `VersionRecord` and `UploadRecord` of formats 6
//!   and 7 decode through [`v6`] (generic over their encryption record), with none.
//!
//! Every other stored type has the same shape in all formats.

use serde::Serialize;
use serde::de::DeserializeOwned;
use xregion_types::job::{JobRecord, JobTask};
use xregion_types::{BucketRecord, VersionRecord};

use crate::error::MetaError;
use crate::multipart::{PartRecord, UploadRecord};
use crate::queue::{FailedTask, OutboxEntry};

/// The first value format (read only).
pub(crate) const FORMAT_V1: u8 = 1;
/// The second value format (read only).
pub(crate) const FORMAT_V2: u8 = 2;
/// The third value format (read only).
pub(crate) const FORMAT_V3: u8 = 3;
/// The fourth value format (read only).
pub(crate) const FORMAT_V4: u8 = 4;
/// The fifth value format (read only).
pub(crate) const FORMAT_V5: u8 = 5;
/// The sixth value format (read only).
pub(crate) const FORMAT_V6: u8 = 6;
/// The seventh value format (read only).
pub(crate) const FORMAT_V7: u8 = 7;
/// The current value format.
pub(crate) const FORMAT_V8: u8 = 8;

/// A type stored with [`encode`]: knows how to read its format-1 bytes.
pub(crate) trait Stored: DeserializeOwned {
    /// Decodes a format-1 body. The default is for types whose shape did not change.
    fn decode_v1(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-2 body. The default is for types whose shape did not change.
    fn decode_v2(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-3 body. The default is for types whose shape did not change.
    fn decode_v3(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-4 body. The default is for types whose shape did not change.
    fn decode_v4(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-5 body. The default is for types whose shape did not change.
    fn decode_v5(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-6 body. The default is for types whose shape did not change.
    fn decode_v6(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }

    /// Decodes a format-7 body. The default is for types whose shape did not change.
    fn decode_v7(body: &[u8]) -> Result<Self, MetaError> {
        take_all(body)
    }
}

/// A bucket record had one shape in formats 1 to 4.
impl Stored for BucketRecord {
    fn decode_v1(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v4(body)
    }

    fn decode_v2(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v4(body)
    }

    fn decode_v3(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v4(body)
    }

    fn decode_v4(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v4::BucketRecord>(body).map(Into::into)
    }

    fn decode_v5(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v5::BucketRecord>(body).map(Into::into)
    }
}
impl Stored for PartRecord {}
impl Stored for OutboxEntry {}
impl Stored for FailedTask {}
impl Stored for JobRecord {
    fn decode_v3(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v3::JobRecord>(body).map(Into::into)
    }
}
impl Stored for JobTask {}

impl Stored for VersionRecord {
    fn decode_v1(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v1::VersionRecord>(body).map(Into::into)
    }

    fn decode_v2(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v2::VersionRecord>(body).map(Into::into)
    }

    fn decode_v3(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v5(body)
    }

    fn decode_v4(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v5(body)
    }

    fn decode_v5(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v5::VersionRecord>(body).map(Into::into)
    }

    fn decode_v6(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v6::VersionRecord<v6::Encryption>>(body).map(Into::into)
    }

    fn decode_v7(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v6::VersionRecord<xregion_types::Encryption>>(body).map(Into::into)
    }
}

impl Stored for UploadRecord {
    fn decode_v1(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v1::UploadRecord>(body).map(Into::into)
    }

    fn decode_v2(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v5(body)
    }

    fn decode_v3(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v5(body)
    }

    fn decode_v4(body: &[u8]) -> Result<Self, MetaError> {
        Self::decode_v5(body)
    }

    fn decode_v5(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v5::UploadRecord>(body).map(Into::into)
    }

    fn decode_v6(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v6::UploadRecord<v6::Encryption>>(body).map(Into::into)
    }

    fn decode_v7(body: &[u8]) -> Result<Self, MetaError> {
        take_all::<v6::UploadRecord<xregion_types::Encryption>>(body).map(Into::into)
    }
}

/// Encodes a value: `FORMAT_V8 ‖ postcard(value)`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, MetaError> {
    postcard::to_extend(value, vec![FORMAT_V8]).map_err(|e| MetaError::Corrupt(format!("cannot encode value: {e}")))
}

/// Decodes a value written by [`encode`] (any supported format version).
pub(crate) fn decode<T: Stored>(bytes: &[u8]) -> Result<T, MetaError> {
    match bytes.split_first() {
        Some((&FORMAT_V8, body)) => take_all(body),
        Some((&FORMAT_V7, body)) => T::decode_v7(body),
        Some((&FORMAT_V6, body)) => T::decode_v6(body),
        Some((&FORMAT_V5, body)) => T::decode_v5(body),
        Some((&FORMAT_V4, body)) => T::decode_v4(body),
        Some((&FORMAT_V3, body)) => T::decode_v3(body),
        Some((&FORMAT_V2, body)) => T::decode_v2(body),
        Some((&FORMAT_V1, body)) => T::decode_v1(body),
        Some((other, _)) => Err(MetaError::Corrupt(format!("unknown value format version {other}"))),
        None => Err(MetaError::Corrupt("empty stored value".into())),
    }
}

/// Postcard-decodes exactly `body` (trailing bytes are corruption).
fn take_all<T: DeserializeOwned>(body: &[u8]) -> Result<T, MetaError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| MetaError::Corrupt(format!("cannot decode stored value: {e}")))?;
    if !rest.is_empty() {
        return Err(MetaError::Corrupt("trailing bytes after stored value".into()));
    }
    Ok(value)
}

/// Frozen format-1 shapes of the types that changed in format 2. Never edit: they describe
/// bytes already on disk.
mod v1 {
    use serde::Deserialize;
    use xregion_types::{BlobRef, ChecksumAlgorithm, ChecksumValue, ReplicationStatus, VersionId};

    #[derive(Deserialize)]
    pub(super) struct VersionRecord {
        version_id: VersionId,
        stamp: u64,
        last_modified_ms: i64,
        kind: VersionKind,
        replication: ReplicationStatus,
    }

    #[derive(Deserialize)]
    enum VersionKind {
        Object(Box<ObjectData>),
        DeleteMarker,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectData {
        size: u64,
        etag: String,
        content_type: Option<String>,
        content_encoding: Option<String>,
        content_disposition: Option<String>,
        content_language: Option<String>,
        cache_control: Option<String>,
        expires: Option<String>,
        user_metadata: Vec<(String, String)>,
        tags: Vec<(String, String)>,
        checksum: Option<ChecksumValue>,
        storage_class: String,
        blob: BlobRef,
        part_sizes: Vec<u64>,
    }

    #[derive(Deserialize)]
    pub(super) struct UploadRecord {
        upload_id: String,
        bucket_id: u64,
        key: String,
        initiated_ms: i64,
        template: ObjectData,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    }

    impl From<ObjectData> for xregion_types::ObjectData {
        fn from(d: ObjectData) -> Self {
            Self {
                size: d.size,
                etag: d.etag,
                content_type: d.content_type,
                content_encoding: d.content_encoding,
                content_disposition: d.content_disposition,
                content_language: d.content_language,
                cache_control: d.cache_control,
                expires: d.expires,
                user_metadata: d.user_metadata,
                tags: d.tags,
                checksum: d.checksum,
                storage_class: d.storage_class,
                blob: d.blob,
                part_sizes: d.part_sizes,
                inline: None,
                encryption: None,
                part_checksums: Vec::new(),
            }
        }
    }

    impl From<VersionRecord> for xregion_types::VersionRecord {
        fn from(r: VersionRecord) -> Self {
            Self {
                version_id: r.version_id,
                stamp: r.stamp,
                last_modified_ms: r.last_modified_ms,
                kind: match r.kind {
                    VersionKind::Object(d) => xregion_types::VersionKind::Object(Box::new((*d).into())),
                    VersionKind::DeleteMarker => xregion_types::VersionKind::DeleteMarker,
                },
                replication: r.replication,
                replication_targets: Vec::new(),
                tags_changed_ms: None,
            }
        }
    }

    impl From<UploadRecord> for crate::multipart::UploadRecord {
        fn from(u: UploadRecord) -> Self {
            Self {
                upload_id: u.upload_id,
                bucket_id: u.bucket_id,
                key: u.key,
                initiated_ms: u.initiated_ms,
                template: u.template.into(),
                checksum_algorithm: u.checksum_algorithm,
            }
        }
    }
}

/// Frozen format-2 shape of `VersionRecord` (its `ObjectData` is that of formats 2 to 5). Never
/// edit.
mod v2 {
    use serde::Deserialize;
    use xregion_types::{ReplicationStatus, VersionId};

    use super::v5::VersionKind;

    #[derive(Deserialize)]
    pub(super) struct VersionRecord {
        version_id: VersionId,
        stamp: u64,
        last_modified_ms: i64,
        kind: VersionKind,
        replication: ReplicationStatus,
    }

    impl From<VersionRecord> for xregion_types::VersionRecord {
        fn from(r: VersionRecord) -> Self {
            Self {
                version_id: r.version_id,
                stamp: r.stamp,
                last_modified_ms: r.last_modified_ms,
                kind: r.kind.into(),
                replication: r.replication,
                replication_targets: Vec::new(),
                tags_changed_ms: None,
            }
        }
    }
}

/// Frozen format-3 shapes of the job records (the first format with jobs). Never edit.
mod v3 {
    use serde::Deserialize;
    use xregion_types::VersionId;
    use xregion_types::job::{CsvManifest, JobFilter, JobReportSpec, JobStatus, ManifestOutput};

    #[derive(Deserialize)]
    pub(super) struct JobSpec {
        account_id: String,
        bucket: String,
        manifest: Option<CsvManifest>,
        filter: JobFilter,
        report: Option<JobReportSpec>,
        manifest_output: Option<ManifestOutput>,
        priority: i32,
        role_arn: String,
        description: Option<String>,
        confirmation_required: bool,
        client_token: String,
    }

    #[derive(Deserialize)]
    pub(super) struct JobRecord {
        seq: u64,
        id: String,
        spec: JobSpec,
        status: JobStatus,
        status_update_reason: Option<String>,
        failure_reasons: Vec<(String, String)>,
        created_ms: i64,
        terminated_ms: Option<i64>,
        suspended_ms: Option<i64>,
        active_since_ms: Option<i64>,
        total_tasks: u64,
        succeeded: u64,
        failed: u64,
        scan_after: Option<(String, VersionId)>,
        manifest_offset: u64,
        queued_upto: u64,
        settled_upto: u64,
        report_keys: Vec<String>,
    }

    impl From<JobRecord> for xregion_types::job::JobRecord {
        fn from(r: JobRecord) -> Self {
            let s = r.spec;
            Self {
                seq: r.seq,
                id: r.id,
                // Format 3 kept the current priority in the spec, and no tags.
                priority: s.priority,
                tags: Vec::new(),
                spec: xregion_types::job::JobSpec {
                    account_id: s.account_id,
                    bucket: s.bucket,
                    manifest: s.manifest,
                    filter: s.filter,
                    report: s.report,
                    manifest_output: s.manifest_output,
                    priority: s.priority,
                    role_arn: s.role_arn,
                    description: s.description,
                    confirmation_required: s.confirmation_required,
                    client_token: s.client_token,
                    tags: Vec::new(),
                },
                status: r.status,
                status_update_reason: r.status_update_reason,
                failure_reasons: r.failure_reasons,
                created_ms: r.created_ms,
                terminated_ms: r.terminated_ms,
                suspended_ms: r.suspended_ms,
                active_since_ms: r.active_since_ms,
                total_tasks: r.total_tasks,
                succeeded: r.succeeded,
                failed: r.failed,
                scan_after: r.scan_after,
                manifest_offset: r.manifest_offset,
                queued_upto: r.queued_upto,
                settled_upto: r.settled_upto,
                report_keys: r.report_keys,
            }
        }
    }
}

/// The frozen shape of a bucket record in formats 1 to 4 (before lifecycle). Never edit.
mod v4 {
    use serde::Deserialize;
    use xregion_types::{BucketName, VersioningState};

    #[derive(Deserialize)]
    pub(super) struct BucketRecord {
        name: BucketName,
        id: u64,
        created_ms: i64,
        versioning: VersioningState,
        tags: Vec<(String, String)>,
        replication: Option<Vec<u8>>,
    }

    impl From<BucketRecord> for xregion_types::BucketRecord {
        fn from(b: BucketRecord) -> Self {
            Self {
                name: b.name,
                id: b.id,
                created_ms: b.created_ms,
                versioning: b.versioning,
                tags: b.tags,
                replication: b.replication,
                lifecycle: None,
                encryption: None,
            }
        }
    }
}

/// The frozen shapes of formats 2 to 5 (before encryption at rest): `ObjectData` and what
/// holds it, and the bucket record of format 5. Never edit.
mod v5 {
    use serde::Deserialize;
    use xregion_types::{
        BlobRef, BucketName, ChecksumAlgorithm, ChecksumValue, InlineRef, ReplicationStatus, VersionId, VersioningState,
    };

    #[derive(Deserialize)]
    pub(super) struct BucketRecord {
        name: BucketName,
        id: u64,
        created_ms: i64,
        versioning: VersioningState,
        tags: Vec<(String, String)>,
        replication: Option<Vec<u8>>,
        lifecycle: Option<Vec<u8>>,
    }

    #[derive(Deserialize)]
    pub(super) struct VersionRecord {
        version_id: VersionId,
        stamp: u64,
        last_modified_ms: i64,
        kind: VersionKind,
        replication: ReplicationStatus,
        replication_targets: Vec<String>,
        tags_changed_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    pub(super) enum VersionKind {
        Object(Box<ObjectData>),
        DeleteMarker,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectData {
        size: u64,
        etag: String,
        content_type: Option<String>,
        content_encoding: Option<String>,
        content_disposition: Option<String>,
        content_language: Option<String>,
        cache_control: Option<String>,
        expires: Option<String>,
        user_metadata: Vec<(String, String)>,
        tags: Vec<(String, String)>,
        checksum: Option<ChecksumValue>,
        storage_class: String,
        blob: BlobRef,
        part_sizes: Vec<u64>,
        inline: Option<InlineRef>,
    }

    #[derive(Deserialize)]
    pub(super) struct UploadRecord {
        upload_id: String,
        bucket_id: u64,
        key: String,
        initiated_ms: i64,
        template: ObjectData,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    }

    impl From<BucketRecord> for xregion_types::BucketRecord {
        fn from(b: BucketRecord) -> Self {
            Self {
                name: b.name,
                id: b.id,
                created_ms: b.created_ms,
                versioning: b.versioning,
                tags: b.tags,
                replication: b.replication,
                lifecycle: b.lifecycle,
                encryption: None,
            }
        }
    }

    impl From<ObjectData> for xregion_types::ObjectData {
        fn from(d: ObjectData) -> Self {
            Self {
                size: d.size,
                etag: d.etag,
                content_type: d.content_type,
                content_encoding: d.content_encoding,
                content_disposition: d.content_disposition,
                content_language: d.content_language,
                cache_control: d.cache_control,
                expires: d.expires,
                user_metadata: d.user_metadata,
                tags: d.tags,
                checksum: d.checksum,
                storage_class: d.storage_class,
                blob: d.blob,
                part_sizes: d.part_sizes,
                inline: d.inline,
                encryption: None,
                part_checksums: Vec::new(),
            }
        }
    }

    impl From<VersionKind> for xregion_types::VersionKind {
        fn from(k: VersionKind) -> Self {
            match k {
                VersionKind::Object(d) => Self::Object(Box::new((*d).into())),
                VersionKind::DeleteMarker => Self::DeleteMarker,
            }
        }
    }

    impl From<VersionRecord> for xregion_types::VersionRecord {
        fn from(r: VersionRecord) -> Self {
            Self {
                version_id: r.version_id,
                stamp: r.stamp,
                last_modified_ms: r.last_modified_ms,
                kind: r.kind.into(),
                replication: r.replication,
                replication_targets: r.replication_targets,
                tags_changed_ms: r.tags_changed_ms,
            }
        }
    }

    impl From<UploadRecord> for crate::multipart::UploadRecord {
        fn from(u: UploadRecord) -> Self {
            Self {
                upload_id: u.upload_id,
                bucket_id: u.bucket_id,
                key: u.key,
                initiated_ms: u.initiated_ms,
                template: u.template.into(),
                checksum_algorithm: u.checksum_algorithm,
            }
        }
    }
}

/// Frozen shapes of formats 6 and 7, the types that changed in format 8 (`ObjectData` gained
/// `part_checksums`), generic over their encryption record: format 6's had no `labels`
/// ([`v6::Encryption`]), format 7's is today's. Never edit: they describe bytes already on disk.
mod v6 {
    use serde::Deserialize;
    use xregion_types::{BlobRef, ChecksumAlgorithm, ChecksumValue, InlineRef, ReplicationStatus, VersionId};

    #[derive(Deserialize)]
    pub(super) struct VersionRecord<E> {
        version_id: VersionId,
        stamp: u64,
        last_modified_ms: i64,
        kind: VersionKind<E>,
        replication: ReplicationStatus,
        replication_targets: Vec<String>,
        tags_changed_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    pub(super) enum VersionKind<E> {
        Object(Box<ObjectData<E>>),
        DeleteMarker,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectData<E> {
        size: u64,
        etag: String,
        content_type: Option<String>,
        content_encoding: Option<String>,
        content_disposition: Option<String>,
        content_language: Option<String>,
        cache_control: Option<String>,
        expires: Option<String>,
        user_metadata: Vec<(String, String)>,
        tags: Vec<(String, String)>,
        checksum: Option<ChecksumValue>,
        storage_class: String,
        blob: BlobRef,
        part_sizes: Vec<u64>,
        inline: Option<InlineRef>,
        encryption: Option<E>,
    }

    /// Format 6's encryption record (format 7 added `labels`).
    #[derive(Deserialize)]
    pub(super) struct Encryption {
        key_id: u32,
        wrapped_key: Vec<u8>,
    }

    #[derive(Deserialize)]
    pub(super) struct UploadRecord<E> {
        upload_id: String,
        bucket_id: u64,
        key: String,
        initiated_ms: i64,
        template: ObjectData<E>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    }

    impl From<Encryption> for xregion_types::Encryption {
        fn from(e: Encryption) -> Self {
            Self { key_id: e.key_id, wrapped_key: e.wrapped_key, labels: Vec::new() }
        }
    }

    impl<E: Into<xregion_types::Encryption>> From<ObjectData<E>> for xregion_types::ObjectData {
        fn from(d: ObjectData<E>) -> Self {
            Self {
                size: d.size,
                etag: d.etag,
                content_type: d.content_type,
                content_encoding: d.content_encoding,
                content_disposition: d.content_disposition,
                content_language: d.content_language,
                cache_control: d.cache_control,
                expires: d.expires,
                user_metadata: d.user_metadata,
                tags: d.tags,
                checksum: d.checksum,
                storage_class: d.storage_class,
                blob: d.blob,
                part_sizes: d.part_sizes,
                inline: d.inline,
                encryption: d.encryption.map(Into::into),
                part_checksums: Vec::new(),
            }
        }
    }

    impl<E: Into<xregion_types::Encryption>> From<VersionKind<E>> for xregion_types::VersionKind {
        fn from(k: VersionKind<E>) -> Self {
            match k {
                VersionKind::Object(d) => Self::Object(Box::new((*d).into())),
                VersionKind::DeleteMarker => Self::DeleteMarker,
            }
        }
    }

    impl<E: Into<xregion_types::Encryption>> From<VersionRecord<E>> for xregion_types::VersionRecord {
        fn from(r: VersionRecord<E>) -> Self {
            Self {
                version_id: r.version_id,
                stamp: r.stamp,
                last_modified_ms: r.last_modified_ms,
                kind: r.kind.into(),
                replication: r.replication,
                replication_targets: r.replication_targets,
                tags_changed_ms: r.tags_changed_ms,
            }
        }
    }

    impl<E: Into<xregion_types::Encryption>> From<UploadRecord<E>> for crate::multipart::UploadRecord {
        fn from(u: UploadRecord<E>) -> Self {
            Self {
                upload_id: u.upload_id,
                bucket_id: u.bucket_id,
                key: u.key,
                initiated_ms: u.initiated_ms,
                template: u.template.into(),
                checksum_algorithm: u.checksum_algorithm,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xregion_types::{
        BlobRef, BlobSegment, ChecksumAlgorithm, ChecksumValue, InlineRef, ObjectData, ReplicationStatus, VersionId,
        VersionKind, VersionRecord,
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
            replication_targets: Vec::new(),
            tags_changed_ms: None,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Golden bytes: the on-disk encoding of a version record must never change silently.
    /// If this fails, a stored shape changed: add a format version and a migration instead.
    #[test]
    fn golden_version_record() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(hex(&bytes), golden_v8());
        assert_eq!(decode::<VersionRecord>(&unhex(&golden_v7())).unwrap(), sample());
        assert_eq!(decode::<VersionRecord>(&unhex(&golden_v6())).unwrap(), sample());
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), sample());
    }

    /// Replication targets are a postcard sequence of strings, then the tag time an option
    /// of a zigzag varint, at the end of the record.
    #[test]
    fn golden_version_record_with_targets() {
        let record =
            VersionRecord { replication_targets: vec!["b".into(), "cd".into()], tags_changed_ms: Some(-2), ..sample() };
        let bytes = encode(&record).unwrap();
        // `02` two targets ‖ `01 62` "b" ‖ `02 63 64` "cd" ‖ `01 03` Some(-2), in place of
        // `00 00` (none, None).
        let golden = golden_v8();
        let expected = format!("{}0201620263640103", &golden[..golden.len() - 4]);
        assert_eq!(hex(&bytes), expected);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), record);
    }

    /// Format 5 (a version record is stored as in formats 3 and 4): the format-2 bytes with
    /// format byte `05` and `00 00` (no targets, no tag time) at the end.
    fn golden_v5() -> String {
        format!("05{}0000", &GOLDEN_V2[2..])
    }

    /// Format 6: the format-5 bytes with `00` (no encryption) at the end of the ObjectData,
    /// before the replication status `01`.
    fn golden_v6() -> String {
        format!("06{}00010000", &GOLDEN_V2[2..GOLDEN_V2.len() - 2])
    }

    /// Format 7: for a value without encryption the same bytes as format 6.
    fn golden_v7() -> String {
        format!("07{}", &golden_v6()[2..])
    }

    /// Format 8: the format-7 bytes with `00` (no part checksums) at the end of the
    /// ObjectData, after its encryption `00`.
    fn golden_v8() -> String {
        format!("08{}0000010000", &GOLDEN_V2[2..GOLDEN_V2.len() - 2])
    }

    /// Values written by formats 3 to 5 (before job tags, bucket lifecycle, encryption at
    /// rest) still decode.
    #[test]
    fn format_v3_to_v5_records_still_decode() {
        for format in ["03", "04", "05"] {
            let old = unhex(&format!("{format}{}", &golden_v5()[2..]));
            assert_eq!(decode::<VersionRecord>(&old).unwrap(), sample());
        }
    }

    /// A bucket record: name, id, time, versioning, tags, replication, then (format 5) the
    /// lifecycle configuration and (format 6) the default encryption. Formats 1 to 4 stored
    /// it without the last two fields, format 5 without the last.
    #[test]
    fn bucket_records_of_every_format_decode() {
        let record = BucketRecord {
            name: xregion_types::BucketName::parse("abc").unwrap(),
            id: 3,
            created_ms: 1,
            versioning: xregion_types::VersioningState::Enabled,
            tags: vec![("k".into(), "v".into())],
            replication: Some(vec![7]),
            lifecycle: None,
            encryption: None,
        };
        let v8 = encode(&record).unwrap();
        // `08` ‖ `03 "abc"` ‖ id `03` ‖ time `02` (zigzag 1) ‖ `01` Enabled ‖ one tag `01`,
        // `01 6b` `01 76` ‖ replication `01` Some, `01 07` ‖ lifecycle `00` None ‖ encryption
        // `00` None.
        assert_eq!(hex(&v8), "080361626303020101016b01760101070000");
        // Formats 6 and 7 stored a bucket record as format 8 does.
        for format in [FORMAT_V6, FORMAT_V7] {
            let mut old = v8.clone();
            old[0] = format;
            assert_eq!(decode::<BucketRecord>(&old).unwrap(), record);
        }
        let with = BucketRecord {
            lifecycle: Some(vec![8, 9]),
            encryption: Some(xregion_types::BucketEncryption {
                sse_algorithm: "AES256".into(),
                bucket_key_enabled: Some(true),
            }),
            ..record.clone()
        };
        let with_bytes = encode(&with).unwrap();
        // ‖ `01` Some ‖ `06 "AES256"` ‖ `01 01` Some(true).
        assert!(hex(&with_bytes).ends_with("01064145533235360101"));
        assert_eq!(decode::<BucketRecord>(&with_bytes).unwrap(), with);
        // Format 5: the same bytes without the trailing `00` (no encryption); formats 1 to 4
        // also without the lifecycle's `00`.
        let mut v5 = v8[..v8.len() - 1].to_vec();
        v5[0] = FORMAT_V5;
        assert_eq!(decode::<BucketRecord>(&v5).unwrap(), record);
        for format in [FORMAT_V1, FORMAT_V2, FORMAT_V3, FORMAT_V4] {
            let mut old = v8[..v8.len() - 2].to_vec();
            old[0] = format;
            assert_eq!(decode::<BucketRecord>(&old).unwrap(), record);
        }
    }

    /// Values written by format 2 (before replication targets) still decode, with none.
    #[test]
    fn format_v2_records_still_decode() {
        let v2 = unhex(GOLDEN_V2);
        assert_eq!(decode::<VersionRecord>(&v2).unwrap(), sample());
    }

    /// An inline object: `inline: Some(InlineRef { id: 7 })` is `01 07` at the end of the
    /// ObjectData, and its `blob` is empty (`00`).
    #[test]
    fn golden_inline_version_record() {
        let mut record = sample();
        if let VersionKind::Object(d) = &mut record.kind {
            d.blob = BlobRef::default();
            d.inline = Some(InlineRef { id: 7 });
        }
        let bytes = encode(&record).unwrap();
        let expected = golden_v8().replace("0102623105010500000001", "0001050107000001");
        assert_eq!(hex(&bytes), expected);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), record);
    }

    /// An encrypted object: `encryption: Some { key_id: 1, wrapped_key: [0xaa, 0xbb], labels:
    /// [] }` is `01 01 02 aa bb 00` at the end of the ObjectData; with labels `["b7"]` the last
    /// `00` is `01 02 62 37`. Format 6 stored it without the labels, and decodes with none.
    #[test]
    fn golden_encrypted_version_record() {
        let mut record = sample();
        let encryption = xregion_types::Encryption { key_id: 1, wrapped_key: vec![0xaa, 0xbb], labels: Vec::new() };
        if let VersionKind::Object(d) = &mut record.kind {
            d.encryption = Some(encryption.clone());
        }
        let bytes = encode(&record).unwrap();
        let expected = golden_v8().replace("0102623105010500000001", "0102623105010500010102aabb000001");
        assert_eq!(hex(&bytes), expected);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), record);
        let v7 = golden_v7().replace("01026231050105000001", "0102623105010500010102aabb0001");
        assert_eq!(decode::<VersionRecord>(&unhex(&v7)).unwrap(), record);
        let v6 = golden_v6().replace("01026231050105000001", "0102623105010500010102aabb01");
        assert_eq!(decode::<VersionRecord>(&unhex(&v6)).unwrap(), record);

        let mut labelled = sample();
        if let VersionKind::Object(d) = &mut labelled.kind {
            d.encryption = Some(xregion_types::Encryption { labels: vec!["b7".into()], ..encryption });
        }
        let bytes = encode(&labelled).unwrap();
        let expected = golden_v8().replace("0102623105010500000001", "0102623105010500010102aabb010262370001");
        assert_eq!(hex(&bytes), expected);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), labelled);
    }

    /// A multipart version's part checksums: `part_checksums: ["AQ==", "Ag=="]` is
    /// `02 04 "AQ==" 04 "Ag=="` at the end of the ObjectData. Formats 6 and 7 stored none.
    #[test]
    fn golden_part_checksums() {
        let mut record = sample();
        if let VersionKind::Object(d) = &mut record.kind {
            d.part_checksums = vec!["AQ==".into(), "Ag==".into()];
        }
        let bytes = encode(&record).unwrap();
        let expected = golden_v8().replace("0102623105010500000001", "010262310501050000020441513d3d0441673d3d01");
        assert_eq!(hex(&bytes), expected);
        assert_eq!(decode::<VersionRecord>(&bytes).unwrap(), record);
    }

    /// Values written by format 1 (before inline objects) still decode, with `inline: None`.
    #[test]
    fn format_v1_records_still_decode() {
        let v1 = unhex(GOLDEN_V1);
        assert_eq!(decode::<VersionRecord>(&v1).unwrap(), sample());
        let upload = UploadRecord {
            upload_id: "u".into(),
            bucket_id: 3,
            key: "k".into(),
            initiated_ms: 1,
            template: ObjectData { content_type: Some("a".into()), ..ObjectData::default() },
            checksum_algorithm: Some(ChecksumAlgorithm::Crc32c),
        };
        let v8 = encode(&upload).unwrap();
        // Formats 6 and 7 stored an upload without the template's trailing `part_checksums`
        // (`00`), formats 2 to 5 also without its `encryption` (`00`) before it, format 1 also
        // without its `inline` (`00`) before that.
        let template_end = v8.len() - 4; // `00` encryption ‖ `00` part checksums ‖ `01 <alg>`
        assert_eq!(v8[template_end - 1..template_end + 2], [0, 0, 0]);
        let mut v7 = v8.clone();
        v7.remove(template_end + 1);
        for format in [FORMAT_V6, FORMAT_V7] {
            v7[0] = format;
            assert_eq!(decode::<UploadRecord>(&v7).unwrap(), upload);
        }
        let mut v5 = v7.clone();
        v5.remove(template_end);
        for format in [FORMAT_V2, FORMAT_V3, FORMAT_V4, FORMAT_V5] {
            v5[0] = format;
            assert_eq!(decode::<UploadRecord>(&v5).unwrap(), upload);
        }
        let mut v1 = v5.clone();
        v1.remove(template_end - 1);
        v1[0] = FORMAT_V1;
        assert_eq!(decode::<UploadRecord>(&v1).unwrap(), upload);
    }

    /// Format 2, frozen: `02` format ‖ `01 20 …` VersionId::Id, 32 chars ‖ varint stamp ‖
    /// zigzag last-modified ‖ `00` VersionKind::Object ‖ ObjectData fields in declaration order
    /// (ending with `00`: `inline` is None) ‖ `01` Pending.
    const GOLDEN_V2: &str = concat!(
        "0201202e463732302e4a35306b563831465a3831465a3831465a3831465a7a6b597a",
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
        "00",
        "01",
    );

    /// Format 1, frozen: the same record as written before inline objects existed.
    const GOLDEN_V1: &str = concat!(
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

    /// Job task rows (unchanged since format 3, the first with jobs): `05` ‖ key `01 6b` ‖ `VersionId::Null`
    /// `00` ‖ `TaskOutcome::Failed` `02` with code `01 43`, status 404 as varint `94 03`,
    /// message `01 6d`.
    #[test]
    fn golden_job_task() {
        use xregion_types::job::TaskOutcome;
        let task = JobTask {
            key: "k".into(),
            version_id: xregion_types::VersionId::Null,
            outcome: TaskOutcome::Failed { code: "C".into(), http_status: 404, message: "m".into() },
        };
        let bytes = encode(&task).unwrap();
        assert_eq!(hex(&bytes), "08016b000201439403016d");
        assert_eq!(decode::<JobTask>(&bytes).unwrap(), task);
        let mut v3 = bytes.clone();
        v3[0] = FORMAT_V3;
        assert_eq!(decode::<JobTask>(&v3).unwrap(), task);
    }

    /// A job record of format 3 (no tags; the priority only in the spec) decodes with no tags
    /// and its spec's priority as the current one. Postcard writes a struct as its fields one
    /// after the other, so the format-3 body is the same fields without the new ones.
    #[test]
    fn format_v3_job_records_still_decode() {
        use xregion_types::job::{JobFilter, JobRecord, JobReportSpec, JobSpec, JobStatus};
        let spec = JobSpec {
            account_id: "123456789012".into(),
            bucket: "src".into(),
            manifest: None,
            filter: JobFilter { eligible_for_replication: true, ..JobFilter::default() },
            report: Some(JobReportSpec { bucket: "reports".into(), prefix: Some("p".into()), failed_only: true }),
            manifest_output: None,
            priority: 7,
            role_arn: "arn:aws:iam::123456789012:role/batch".into(),
            description: Some("back-fill".into()),
            confirmation_required: false,
            client_token: "token".into(),
            tags: Vec::new(),
        };
        let mut record = JobRecord::new("job-1".into(), spec, 1_700_000_000_000);
        record.seq = 4;
        record.status = JobStatus::Active;
        record.total_tasks = 10;
        record.queued_upto = 6;
        record.report_keys = vec!["r/a.csv".into()];
        let s = &record.spec;
        let spec_v3 = (
            (&s.account_id, &s.bucket, &s.manifest, &s.filter, &s.report, &s.manifest_output),
            (s.priority, &s.role_arn, &s.description, s.confirmation_required, &s.client_token),
        );
        let r = &record;
        let record_v3 = (
            (r.seq, &r.id, spec_v3, r.status, &r.status_update_reason, &r.failure_reasons, r.created_ms),
            (r.terminated_ms, r.suspended_ms, r.active_since_ms, r.total_tasks, r.succeeded, r.failed),
            (&r.scan_after, r.manifest_offset, r.queued_upto, r.settled_upto, &r.report_keys),
        );
        let v3 = postcard::to_extend(&record_v3, vec![FORMAT_V3]).unwrap();
        assert_eq!(decode::<JobRecord>(&v3).unwrap(), record);
        // The same record now: the spec's tags, then the current priority and tags, are new.
        let v4 = encode(&record).unwrap();
        assert_eq!(v4.len(), v3.len() + 3);
        assert_eq!(decode::<JobRecord>(&v4).unwrap(), record);
    }

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
