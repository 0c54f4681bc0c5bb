//! Replication to buckets of other S3 services ("external targets",
//! `docs/design/external-targets.md`): AWS S3, another provider, a MinIO or Ceph cluster, an
//! xregion deployment that is not a peer. Such a service takes only the S3 API, not the
//! replica protocol, so a copy there is an ordinary new version of the target's own:
//!
//! * its version id and last-modified time are the target's; the source's travel as user
//!   metadata ([`META_SOURCE_VERSION_ID`], [`META_SOURCE_LAST_MODIFIED`],
//!   [`META_SOURCE_REGION`]), which is also how a copy is recognised later;
//! * the bytes, content headers, user metadata, tags and storage class are the source's, and
//!   so is the ETag: a single-part version goes with `Content-MD5` (the target checks the
//!   bytes before storing them), a multipart version as a multipart upload with the source's
//!   part sizes, whose combined ETag is compared with the source's before the upload is
//!   completed;
//! * a delete marker is a `DeleteObject` without a version id (the target makes its own
//!   marker); a tag change is a `PutObjectTagging` on the target version holding the source
//!   version.
//!
//! **Exactly once across crashes.** The worker may send a task again when it crashed between
//! the target's answer and finishing the task, or when an answer was lost. Unless the task is
//! certainly new (`Replica::first_attempt`), the target is first asked for the key's current
//! version (`HeadObject`): if that is the copy of this very source version, it was sent and is
//! not sent again. Tasks of one key are sent in order, so a copy of ours can only be current.
//! Likewise a delete marker is not sent again onto a key whose current version is already a
//! delete marker. A target principal that may not read (`403` on the `HEAD`) gets the
//! versions sent again instead: at least once. Batch tasks also look in the key's history
//! and keep the newest version current (`External::restore_current`).
//!
//! **Unversioned targets** (`unversioned = true`: a service without versioning, such as
//! Garage) keep one object per key, so they hold the source's newest state, not its history:
//! a version is written over the key, a delete marker deletes the key, a tag change is applied
//! only while the key holds that version. Tasks of one key arrive in order, so live
//! replication leaves the newest version there. A batch (back-fill) task sends a version or a
//! marker only if it is the source's current one of its key: an older version written there
//! would replace a newer one, and the target cannot keep both. Such a task is done without a
//! request (`COMPLETED`: the target holds the key as new as the source or newer), as is a tag
//! change of a version the key no longer holds.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, StorageClass};
use md5::Digest as _;
use xregion_core::{CoreError, CoreResult, Region};
use xregion_types::replication::TaskKind;
use xregion_types::{InvalidInput, ObjectData, VersioningState};

use crate::s3::{
    add_headers, classify, sdk_client, source_body, sse_of, tag_set, tagging_header, user_metadata,
    with_content_headers,
};
use crate::transport::{DisplayErr, Transport};
use crate::{Replica, ReplicationError};

/// User metadata (`x-amz-meta-…`) naming the source version a copy holds.
pub const META_SOURCE_VERSION_ID: &str = "xregion-source-version-id";
/// User metadata with the source version's last-modified time (unix milliseconds).
pub const META_SOURCE_LAST_MODIFIED: &str = "xregion-source-last-modified";
/// User metadata naming the region that sent the copy.
pub const META_SOURCE_REGION: &str = "xregion-source-region";

/// How far the target's clock may be behind the source's. A copy is made after its source
/// version, so the search for it in the key's history (newest first) stops at versions the
/// target made more than this before the source version's time.
const CLOCK_SKEW_MS: i64 = 60 * 60 * 1000;

/// One bucket of another S3 service and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalTargetConfig {
    /// The bucket's name there, which is also the name replication rules give it
    /// (`arn:aws:s3:::<bucket>`).
    pub bucket: String,
    /// The service's endpoint, `https://host[:port]` (or `http://`).
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// Access key of a principal of that service allowed to write the bucket.
    pub access_key: String,
    /// Its secret key.
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.endpoint/key`): most self-hosted services want it.
    pub path_style: bool,
    /// The bucket keeps no versions (`unversioned = true` in the configuration): it holds
    /// the newest version of each key (see [`ExternalTargets::versioning`] and the module
    /// documentation).
    pub unversioned: bool,
}

impl std::fmt::Debug for ExternalTargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalTargetConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .field("unversioned", &self.unversioned)
            .finish()
    }
}

/// The external targets a region replicates to, by bucket name.
#[derive(Default)]
pub struct ExternalTargets {
    targets: BTreeMap<String, External>,
}

struct External {
    config: ExternalTargetConfig,
    client: Client,
}

/// What the target holds as a key's current version.
enum Current {
    /// A copy sent by xregion: the source version id it holds, that version's last-modified
    /// time (unix ms), and the copy's version id there.
    Copy { source: String, modified: Option<i64>, version_id: Option<String> },
    /// A delete marker.
    DeleteMarker,
    /// Anything else, nothing, or it could not be read.
    Other,
}

impl Current {
    fn holds(&self, replica: &Replica) -> bool {
        matches!(self, Current::Copy { source, .. } if source == replica.version.version_id.as_str())
    }
}

impl ExternalTargets {
    /// The targets of a region's configuration (bucket names are unique there), reached over
    /// `transport`.
    pub fn new(configs: impl IntoIterator<Item = ExternalTargetConfig>, transport: &Transport) -> Self {
        let targets = configs
            .into_iter()
            .map(|config| {
                let credentials =
                    Credentials::new(&config.access_key, &config.secret_key, None, None, "xregion-external-target");
                let client = sdk_client(&config.endpoint, &config.region, &credentials, config.path_style, transport);
                (config.bucket.clone(), External { config, client })
            })
            .collect();
        Self { targets }
    }

    /// Whether `bucket` is an external target's.
    pub fn contains(&self, bucket: &str) -> bool {
        self.targets.contains_key(bucket)
    }

    /// The targets' bucket names, sorted.
    pub fn buckets(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// The targets' endpoints, by bucket name.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        self.targets.iter().map(|(bucket, t)| (bucket.clone(), t.config.endpoint.clone())).collect()
    }

    /// VAL-3 for an external destination: the bucket's versioning state as the target reports
    /// it with the configured credentials, or `None` if `bucket` is no target's. A target that
    /// cannot be reached (or answers `5xx`) is `Unavailable`; one that has no such bucket or
    /// refuses the credentials is `InvalidRequest` saying so.
    pub async fn versioning(&self, bucket: &str) -> CoreResult<Option<VersioningState>> {
        let Some(target) = self.targets.get(bucket) else {
            return Ok(None);
        };
        if target.config.unversioned {
            // Declared unversioned by the operator, whatever it reports: VAL-3 is satisfied
            // by that choice; the bucket must still exist and admit the credentials.
            return match target.client.head_bucket().bucket(bucket).send().await {
                Ok(_) => Ok(Some(VersioningState::Enabled)),
                Err(e) => Err(target.check_error(&e)),
            };
        }
        match target.client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(out) => Ok(Some(match out.status() {
                Some(BucketVersioningStatus::Enabled) => VersioningState::Enabled,
                Some(BucketVersioningStatus::Suspended) => VersioningState::Suspended,
                _ => VersioningState::Unversioned,
            })),
            // A `200` the SDK could not parse: some services (moto) name the document's root
            // element otherwise, which the Rust SDK refuses and other SDKs accept. Its
            // `Status` element is what S3 defines.
            Err(SdkError::ServiceError(e)) if e.raw().status().is_success() => {
                let body = e.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                Ok(Some(versioning_status(&body)))
            }
            Err(e) => Err(target.check_error(&e)),
        }
    }

    /// Sends one task to the target holding `replica.destination_bucket`.
    pub(crate) async fn send(&self, region: &Region, replica: &Replica) -> Result<(), ReplicationError> {
        let Some(target) = self.targets.get(&replica.destination_bucket) else {
            return Err(ReplicationError::permanent(
                "DstBucketNotFound",
                format!("{} is not an external target of this region", replica.destination_bucket),
            ));
        };
        // Another S3 service can only be sent plaintext, and an SSE-C version opens only with
        // its client's key, which this region does not keep.
        if replica.kind == TaskKind::Object
            && replica.version.object().is_some_and(|d| region.sealed_version(d).is_some())
        {
            return Err(ReplicationError::permanent(
                "SrcObjectNotEligible",
                "an SSE-C version cannot be copied to another S3 service: only its client's key opens it",
            ));
        }
        if target.config.unversioned {
            return target.send_unversioned(region, replica).await;
        }
        match replica.kind {
            TaskKind::Object => target.put_version(region, replica).await,
            TaskKind::DeleteMarker => target.put_delete_marker(region, replica).await,
            TaskKind::Tags => target.put_tags(replica).await,
        }
    }
}

impl External {
    fn check_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        err: &SdkError<E, HttpResponse>,
    ) -> CoreError {
        let (bucket, endpoint) = (&self.config.bucket, &self.config.endpoint);
        let status = match err {
            SdkError::ServiceError(service) => service.raw().status().as_u16(),
            _ => {
                return CoreError::Unavailable(format!(
                    "the S3 service at {endpoint} holding destination bucket {bucket} cannot be reached: {}",
                    DisplayErr(err)
                ));
            }
        };
        let code = err.code().unwrap_or_default();
        if status >= 500 || status == 429 {
            return CoreError::Unavailable(format!(
                "the S3 service at {endpoint} holding destination bucket {bucket} answered {status} {code}"
            ));
        }
        let message = match (status, code) {
            (404, _) | (_, "NoSuchBucket") => format!("Destination bucket {bucket} does not exist at {endpoint}."),
            _ => format!(
                "The S3 service at {endpoint} refused to read destination bucket {bucket} with the configured \
                 credentials: {status} {code}"
            ),
        };
        CoreError::Invalid(InvalidInput::new("InvalidRequest", message))
    }

    /// A task to an unversioned target (module documentation): the key there follows the
    /// source's newest state.
    async fn send_unversioned(&self, region: &Region, replica: &Replica) -> Result<(), ReplicationError> {
        // Back-fill of a version that is no longer the source's newest: the target holds
        // the key as new or newer (or will, from the newest version's own task).
        if replica.batch && replica.kind != TaskKind::Tags && !Self::is_source_current(region, replica)? {
            return Ok(());
        }
        let bucket = &self.config.bucket;
        match replica.kind {
            TaskKind::Object => {
                let Some(data) = replica.version.object() else {
                    return Err(ReplicationError::permanent("SrcObjectNotEligible", "object task on a delete marker"));
                };
                // A retry finds its own copy there: sent already.
                if (replica.batch || !replica.first_attempt) && self.current(replica).await?.holds(replica) {
                    return Ok(());
                }
                self.put_new(region, replica, data).await
            }
            // Deleting a key that is not there succeeds: a retry needs no look first.
            TaskKind::DeleteMarker => {
                let result = self.client.delete_object().bucket(bucket).key(&replica.key).send().await;
                result.map(|_| ()).map_err(|e| classify(e, TaskKind::DeleteMarker))
            }
            TaskKind::Tags => {
                let Some(data) = replica.version.object() else {
                    return Err(ReplicationError::permanent("SrcObjectNotEligible", "tag task on a delete marker"));
                };
                // Only the version the key holds keeps tags there.
                if !self.current(replica).await?.holds(replica) {
                    return Ok(());
                }
                let request = self.client.put_object_tagging().bucket(bucket).key(&replica.key).tagging(tag_set(data)?);
                request.send().await.map(|_| ()).map_err(|e| classify(e, TaskKind::Tags))
            }
        }
    }

    /// The key's current version on the target.
    async fn current(&self, replica: &Replica) -> Result<Current, ReplicationError> {
        let head = self.client.head_object().bucket(&self.config.bucket).key(&replica.key).send().await;
        match head {
            Ok(head) => Ok(copy_of(head.metadata(), head.version_id())),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => {
                let marker = e.raw().headers().get("x-amz-delete-marker").is_some_and(|v| v == "true");
                Ok(if marker { Current::DeleteMarker } else { Current::Other })
            }
            // May write but not read: send (at least once rather than not at all).
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 403 => Ok(Current::Other),
            Err(e) => Err(classify(e, replica.kind)),
        }
    }

    /// Batch replication sends versions that existed before, possibly older than what the
    /// target holds of the key; sent there, such a version would become the key's current
    /// version. Unless the source version is the source's current one, the target's
    /// previous current version is put back on top: a copy of a newer source version by a
    /// server-side `CopyObject` of it onto itself (bytes, metadata and tags stay; a multipart
    /// copy's ETag becomes a plain one, as with any S3 copy), a delete marker by a new marker.
    async fn restore_current(
        &self,
        region: &Region,
        replica: &Replica,
        before: Current,
    ) -> Result<(), ReplicationError> {
        if Self::is_source_current(region, replica)? {
            return Ok(());
        }
        let bucket = &self.config.bucket;
        let result = match before {
            Current::Copy { version_id: Some(version_id), modified: Some(modified), .. }
                if modified > replica.version.last_modified_ms =>
            {
                let source = format!(
                    "{}/{}?versionId={}",
                    urlencoding::encode(bucket),
                    urlencoding::encode(&replica.key),
                    urlencoding::encode(&version_id)
                );
                // The copy put back is of the source's current version: encrypted as it is (ELI-7).
                let sse = match region.get_object(&replica.source_bucket, &replica.key, None) {
                    Ok((_, current)) => current.object().and_then(sse_of),
                    Err(_) => None,
                };
                let copy = self.client.copy_object().bucket(bucket).key(&replica.key).copy_source(source);
                let copy = copy.set_server_side_encryption(sse);
                copy.send().await.map(|_| ()).map_err(|e| classify(e, TaskKind::Object))
            }
            Current::DeleteMarker => {
                let delete = self.client.delete_object().bucket(bucket).key(&replica.key);
                delete.send().await.map(|_| ()).map_err(|e| classify(e, TaskKind::DeleteMarker))
            }
            Current::Copy { .. } | Current::Other => Ok(()),
        };
        // The back-filled version is on the target: the retry finds it current and puts the
        // version below it back (`restore_after_retry`).
        result
    }

    /// Whether the replica's version is the source's current version of its key.
    fn is_source_current(region: &Region, replica: &Replica) -> Result<bool, ReplicationError> {
        let current = match region.get_object(&replica.source_bucket, &replica.key, None) {
            Ok((_, v)) => Some(v.version_id),
            Err(CoreError::NoSuchKey { delete_marker }) => delete_marker,
            Err(e) => return Err(ReplicationError::retryable(format!("reading the source's current version: {e}"))),
        };
        Ok(current.as_ref() == Some(&replica.version.version_id))
    }

    /// [`External::restore_current`] for a retry that finds the back-filled copy current: the
    /// version below it is put back on top if it is a copy of a newer source version. (A
    /// delete marker below it is not: the listing's split of versions and markers loses
    /// their order.)
    async fn restore_after_retry(&self, region: &Region, replica: &Replica) -> Result<(), ReplicationError> {
        if Self::is_source_current(region, replica)? {
            return Ok(());
        }
        let bucket = &self.config.bucket;
        let listed = self.client.list_object_versions().bucket(bucket).prefix(&replica.key).max_keys(2).send().await;
        let listed = listed.map_err(|e| classify(e, replica.kind))?;
        let Some(below) = listed.versions().iter().filter(|v| v.key() == Some(replica.key.as_str())).nth(1) else {
            return Ok(());
        };
        let Some(id) = below.version_id() else {
            return Ok(());
        };
        let head = self.client.head_object().bucket(bucket).key(&replica.key).version_id(id).send().await;
        let head = head.map_err(|e| classify(e, replica.kind))?;
        self.restore_current(region, replica, copy_of(head.metadata(), Some(id))).await
    }

    /// The source's metadata plus where the copy comes from.
    fn metadata(region: &Region, replica: &Replica, data: &ObjectData) -> HashMap<String, String> {
        let mut metadata = user_metadata(data).unwrap_or_default();
        metadata.insert(META_SOURCE_VERSION_ID.to_owned(), replica.version.version_id.as_str().to_owned());
        metadata.insert(META_SOURCE_LAST_MODIFIED.to_owned(), replica.version.last_modified_ms.to_string());
        metadata.insert(META_SOURCE_REGION.to_owned(), region.name().to_owned());
        metadata
    }

    async fn put_version(&self, region: &Region, replica: &Replica) -> Result<(), ReplicationError> {
        let Some(data) = replica.version.object() else {
            return Err(ReplicationError::permanent("SrcObjectNotEligible", "object task on a delete marker"));
        };
        // A live version on its first attempt needs no look: nothing can have sent it, and
        // it goes on top whatever is there (a `HEAD` per version was a third of the servers'
        // CPU per 4 KiB copy, bench/results/2026-12-07-session20-external.md).
        if replica.first_attempt && !replica.batch {
            return self.put_new(region, replica, data).await;
        }
        let before = self.current(replica).await?;
        if before.holds(replica) {
            return match replica.batch {
                // Sent by an attempt that could not put the previous current version back.
                true => self.restore_after_retry(region, replica).await,
                false => Ok(()),
            };
        }
        // A back-filled version may have been sent before: look in the key's history.
        if replica.batch && self.find_copy(replica, &before).await?.is_some() {
            return Ok(());
        }
        self.put_new(region, replica, data).await?;
        match replica.batch {
            true => self.restore_current(region, replica, before).await,
            false => Ok(()),
        }
    }

    /// Sends the version as a new version of the target's.
    async fn put_new(&self, region: &Region, replica: &Replica, data: &ObjectData) -> Result<(), ReplicationError> {
        match data.part_sizes.is_empty() {
            true => self.put_single(region, replica, data).await,
            false => self.put_multipart(region, replica, data).await,
        }
    }

    async fn put_single(&self, region: &Region, replica: &Replica, data: &ObjectData) -> Result<(), ReplicationError> {
        let storage_class = replica.storage_class.as_deref().unwrap_or(&data.storage_class);
        let request = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(&replica.key)
            .body(source_body(region, data, 0, data.size))
            .content_length(i64::try_from(data.size).unwrap_or(i64::MAX))
            .set_content_md5(content_md5(&data.etag))
            .set_metadata(Some(Self::metadata(region, replica, data)));
        // The target checks the source's own checksum too, and keeps it.
        let headers: Vec<(&'static str, String)> = data
            .checksum
            .as_ref()
            .filter(|c| c.full_object)
            .map(|c| (checksum_header_name(c.algorithm), c.value.clone()))
            .into_iter()
            .collect();
        let result = with_content_headers!(request, data)
            .set_tagging(tagging_header(&data.tags))
            .storage_class(StorageClass::from(storage_class))
            .set_server_side_encryption(sse_of(data))
            .customize()
            .mutate_request(move |req| add_headers(req, &headers))
            .send()
            .await;
        result.map(|_| ()).map_err(|e| classify(e, TaskKind::Object))
    }

    /// A multipart version as a multipart upload with the same part sizes, so that the
    /// target's ETag (MD5 of the parts' MD5s, `-N`) is the source's. The parts' ETags are
    /// checked against the source's ETag before completing: bytes changed on the way leave
    /// nothing on the target (the upload is aborted and the task retried).
    async fn put_multipart(
        &self,
        region: &Region,
        replica: &Replica,
        data: &ObjectData,
    ) -> Result<(), ReplicationError> {
        let bucket = &self.config.bucket;
        let storage_class = replica.storage_class.as_deref().unwrap_or(&data.storage_class);
        let part_algorithm = part_checksum_algorithm(data);
        let request = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(&replica.key)
            .set_metadata(Some(Self::metadata(region, replica, data)));
        let created = with_content_headers!(request, data)
            .set_tagging(tagging_header(&data.tags))
            .storage_class(StorageClass::from(storage_class))
            .set_server_side_encryption(sse_of(data))
            // The parts' checksums travel too: the target checks each part against its own and
            // keeps the same composite (or FULL_OBJECT) checksum.
            .set_checksum_algorithm(part_algorithm.map(sdk_algorithm))
            .set_checksum_type(part_algorithm.map(|_| match data.checksum.as_ref().is_some_and(|c| c.full_object) {
                true => aws_sdk_s3::types::ChecksumType::FullObject,
                false => aws_sdk_s3::types::ChecksumType::Composite,
            }))
            .send()
            .await
            .map_err(|e| classify(e, TaskKind::Object))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(ReplicationError::retryable("CreateMultipartUpload answered without an upload id"));
        };
        let result = self.upload_parts(region, replica, data, &upload_id).await;
        if result.is_err() {
            let abort = self.client.abort_multipart_upload().bucket(bucket).key(&replica.key).upload_id(&upload_id);
            if let Err(e) = abort.send().await {
                tracing::debug!(bucket, key = %replica.key, error = %DisplayErr(&e), "aborting an upload to an external target");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        region: &Region,
        replica: &Replica,
        data: &ObjectData,
        upload_id: &str,
    ) -> Result<(), ReplicationError> {
        let bucket = &self.config.bucket;
        let mut parts = Vec::with_capacity(data.part_sizes.len());
        let mut etags = Vec::with_capacity(data.part_sizes.len());
        let mut offset = 0u64;
        let algorithm = part_checksum_algorithm(data);
        for (i, size) in data.part_sizes.iter().enumerate() {
            let number = i32::try_from(i + 1)
                .map_err(|_| ReplicationError::permanent("SrcObjectNotEligible", "more parts than S3 allows"))?;
            let checksum = algorithm.zip(data.part_checksums.get(i));
            let headers: Vec<(&'static str, String)> =
                checksum.map(|(a, value)| (checksum_header_name(a), value.clone())).into_iter().collect();
            let out = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(&replica.key)
                .upload_id(upload_id)
                .part_number(number)
                .body(source_body(region, data, offset, offset + size))
                .content_length(i64::try_from(*size).unwrap_or(i64::MAX))
                .customize()
                .mutate_request(move |req| add_headers(req, &headers))
                .send()
                .await
                .map_err(|e| classify(e, TaskKind::Object))?;
            let Some(etag) = out.e_tag() else {
                return Err(ReplicationError::retryable(format!("UploadPart {number} answered without an ETag")));
            };
            etags.push(etag.trim_matches('"').to_owned());
            parts.push(completed_part(number, etag, checksum));
            offset += size;
        }
        match multipart_etag(&etags) {
            Some(etag) if etag != data.etag => {
                return Err(ReplicationError::retryable(format!(
                    "the parts sent make ETag {etag}, the source version has {}: bytes changed on the way",
                    data.etag
                )));
            }
            Some(_) => {}
            // Parts whose ETags are not MD5s (a target that encrypts with KMS, some
            // providers): the copy's ETag will differ from the source's, as S3 says of SSE-KMS.
            None => tracing::debug!(bucket, key = %replica.key, "external target's part ETags are not MD5s"),
        }
        let upload = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(&replica.key)
            .upload_id(upload_id)
            .multipart_upload(upload)
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            // A `200` without S3's `<Error>` body is a completed upload whatever the document
            // is called (moto answers `CompleteMultipartUploadResponse`, which the Rust SDK
            // refuses); S3's own failures in a `200` are `<Error>` documents.
            Err(SdkError::ServiceError(e))
                if e.raw().status().is_success()
                    && !e.raw().body().bytes().is_some_and(|b| String::from_utf8_lossy(b).contains("<Error>")) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(e, TaskKind::Object)),
        }
    }

    /// DEL-6 as far as another service allows: a new delete marker of its own.
    async fn put_delete_marker(&self, region: &Region, replica: &Replica) -> Result<(), ReplicationError> {
        let before = match replica.first_attempt && !replica.batch {
            true => Current::Other,
            false => self.current(replica).await?,
        };
        if let Current::DeleteMarker = before {
            return Ok(());
        }
        let result = self.client.delete_object().bucket(&self.config.bucket).key(&replica.key).send().await;
        result.map_err(|e| classify(e, TaskKind::DeleteMarker))?;
        match replica.batch {
            true => self.restore_current(region, replica, before).await,
            false => Ok(()),
        }
    }

    /// ELI-12: the source version's current tag set onto the target's copy of it.
    async fn put_tags(&self, replica: &Replica) -> Result<(), ReplicationError> {
        let Some(data) = replica.version.object() else {
            return Err(ReplicationError::permanent("SrcObjectNotEligible", "tag task on a delete marker"));
        };
        let current = self.current(replica).await?;
        let Some(version_id) = self.find_copy(replica, &current).await? else {
            return Err(ReplicationError::permanent(
                "DstVersionNotFound",
                format!(
                    "no version of {} on the external target holds source version {}",
                    replica.key,
                    replica.version.version_id.as_str()
                ),
            ));
        };
        let result = self
            .client
            .put_object_tagging()
            .bucket(&self.config.bucket)
            .key(&replica.key)
            .version_id(version_id)
            .tagging(tag_set(data)?)
            .send()
            .await;
        result.map(|_| ()).map_err(|e| classify(e, TaskKind::Tags))
    }

    /// The target's version id of the copy of the replica's source version: the current
    /// version (`current`, as read before) if it is the copy, else the first version in the
    /// key's history, newest first, whose metadata names it. The history is read page by
    /// page down to versions the target made before the source version existed (with
    /// [`CLOCK_SKEW_MS`] to spare); each version above is read with a `HEAD`, so finding an
    /// old version on a key with a long history costs a request per newer version.
    async fn find_copy(&self, replica: &Replica, current: &Current) -> Result<Option<String>, ReplicationError> {
        if let Current::Copy { version_id, .. } = current
            && current.holds(replica)
        {
            return Ok(version_id.clone());
        }
        let bucket = &self.config.bucket;
        let not_before = replica.version.last_modified_ms.saturating_sub(CLOCK_SKEW_MS);
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(&replica.key)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| classify(e, replica.kind))?;
            for v in page.versions() {
                if v.key() != Some(replica.key.as_str()) {
                    // Keys sort after ours (it is their prefix): the key's history is over.
                    return Ok(None);
                }
                let made_ms = v.last_modified().map_or(i64::MAX, |t| t.secs().saturating_mul(1000));
                if made_ms < not_before {
                    return Ok(None);
                }
                let Some(id) = v.version_id() else { continue };
                let head = self.client.head_object().bucket(bucket).key(&replica.key).version_id(id).send().await;
                let head = head.map_err(|e| classify(e, replica.kind))?;
                if copy_of(head.metadata(), Some(id)).holds(replica) {
                    return Ok(Some(id.to_owned()));
                }
            }
            if page.is_truncated() != Some(true) || page.next_key_marker() != Some(replica.key.as_str()) {
                return Ok(None);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }
}

/// What a target version is, from its metadata: a copy xregion sent, or something else.
fn copy_of(metadata: Option<&HashMap<String, String>>, version_id: Option<&str>) -> Current {
    let Some(source) = metadata.and_then(|m| m.get(META_SOURCE_VERSION_ID)) else {
        return Current::Other;
    };
    let modified = metadata.and_then(|m| m.get(META_SOURCE_LAST_MODIFIED)).and_then(|t| t.parse().ok());
    Current::Copy { source: source.clone(), modified, version_id: version_id.map(str::to_owned) }
}

/// The `Status` of a `GetBucketVersioning` document (none: never versioned).
fn versioning_status(xml: &str) -> VersioningState {
    let status = xml.split_once("<Status>").and_then(|(_, rest)| rest.split_once("</Status>")).map(|(s, _)| s.trim());
    match status {
        Some("Enabled") => VersioningState::Enabled,
        Some("Suspended") => VersioningState::Suspended,
        _ => VersioningState::Unversioned,
    }
}

/// `Content-MD5` for a single-part ETag (the hex MD5 of the bytes); none for another form.
fn content_md5(etag: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = hex::decode(etag).ok().filter(|b| b.len() == 16)?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// S3's multipart ETag of parts with these ETags (hex MD5s), or `None` if one is not an MD5.
fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut md5 = md5::Md5::new();
    for etag in part_etags {
        let bytes = hex::decode(etag).ok().filter(|b| b.len() == 16)?;
        md5.update(&bytes);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), part_etags.len()))
}

/// The algorithm of a multipart version's part checksums, when it kept one per part.
fn part_checksum_algorithm(data: &ObjectData) -> Option<xregion_types::ChecksumAlgorithm> {
    let kept = !data.part_checksums.is_empty() && data.part_checksums.len() == data.part_sizes.len();
    data.checksum.as_ref().filter(|_| kept).map(|c| c.algorithm)
}

/// The SDK's name of a checksum algorithm.
fn sdk_algorithm(algorithm: xregion_types::ChecksumAlgorithm) -> aws_sdk_s3::types::ChecksumAlgorithm {
    use aws_sdk_s3::types::ChecksumAlgorithm as S;
    use xregion_types::ChecksumAlgorithm as A;
    match algorithm {
        A::Crc32 => S::Crc32,
        A::Crc32c => S::Crc32C,
        A::Crc64Nvme => S::Crc64Nvme,
        A::Sha1 => S::Sha1,
        A::Sha256 => S::Sha256,
    }
}

/// A part of CompleteMultipartUpload: its number, ETag and, when the upload has part
/// checksums, its checksum.
fn completed_part(
    number: i32,
    etag: &str,
    checksum: Option<(xregion_types::ChecksumAlgorithm, &String)>,
) -> CompletedPart {
    use xregion_types::ChecksumAlgorithm as A;
    let part = CompletedPart::builder().e_tag(etag).part_number(number);
    match checksum {
        None => part,
        Some((A::Crc32, v)) => part.checksum_crc32(v),
        Some((A::Crc32c, v)) => part.checksum_crc32_c(v),
        Some((A::Crc64Nvme, v)) => part.checksum_crc64_nvme(v),
        Some((A::Sha1, v)) => part.checksum_sha1(v),
        Some((A::Sha256, v)) => part.checksum_sha256(v),
    }
    .build()
}

/// The `x-amz-checksum-*` header of a checksum: a full-object one, or a part's.
fn checksum_header_name(algorithm: xregion_types::ChecksumAlgorithm) -> &'static str {
    use xregion_types::ChecksumAlgorithm as A;
    match algorithm {
        A::Crc32 => "x-amz-checksum-crc32",
        A::Crc32c => "x-amz-checksum-crc32c",
        A::Crc64Nvme => "x-amz-checksum-crc64nvme",
        A::Sha1 => "x-amz-checksum-sha1",
        A::Sha256 => "x-amz-checksum-sha256",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_only_for_plain_etags() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(content_md5("d41d8cd98f00b204e9800998ecf8427e").as_deref(), Some("1B2M2Y8AsgTpgAmY7PhCfg=="));
        assert_eq!(content_md5("d41d8cd98f00b204e9800998ecf8427e-2"), None);
        assert_eq!(content_md5("not hex"), None);
    }

    #[test]
    fn multipart_etag_is_s3s() {
        let a = hex::encode(md5::Md5::digest(b"a"));
        let b = hex::encode(md5::Md5::digest(b"b"));
        let mut both = md5::Md5::digest(b"a").to_vec();
        both.extend_from_slice(&md5::Md5::digest(b"b"));
        let expected = format!("{}-2", hex::encode(md5::Md5::digest(&both)));
        assert_eq!(multipart_etag(&[a, b.clone()]).as_deref(), Some(expected.as_str()));
        assert_eq!(multipart_etag(&[b, "kms-etag".to_owned()]), None);
    }

    #[test]
    fn versioning_status_whatever_the_root_element() {
        let moto = r#"<?xml version="1.0"?><GetBucketVersioningResponse xmlns="x"><Status>Enabled</Status></GetBucketVersioningResponse>"#;
        assert_eq!(versioning_status(moto), VersioningState::Enabled);
        assert_eq!(
            versioning_status("<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"),
            VersioningState::Suspended
        );
        assert_eq!(versioning_status("<VersioningConfiguration/>"), VersioningState::Unversioned);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = ExternalTargetConfig {
            bucket: "b".into(),
            endpoint: "https://s3.example".into(),
            region: "eu-central-1".into(),
            access_key: "AK".into(),
            secret_key: "very-secret".into(),
            path_style: true,
            unversioned: false,
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret") && shown.contains("AK"), "{shown}");
    }
}
