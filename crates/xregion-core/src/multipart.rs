//! Multipart uploads: parts are separate blobs; completion commits a version whose blob is
//! the list of part blobs (no bytes are copied), with S3's multipart ETag.

use xregion_blob::checksum::{combine_full_object, composite, to_base64};
use xregion_blob::{BlobInfo, multipart_etag};
use xregion_meta::{PartRecord, UploadRecord, WriteOp, WriteOutcome};
use xregion_types::replication::TaskKind;
use xregion_types::{BlobRef, ChecksumAlgorithm, ChecksumValue, InvalidInput, ObjectData, ObjectKey, now_ms};

use crate::buckets::unexpected;
use crate::objects::{ObjectMeta, PutResult};
use crate::{CoreError, CoreResult, Region};

/// The additional checksum of a multipart upload (CreateMultipartUpload's `ChecksumAlgorithm`
/// and `ChecksumType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadChecksum {
    /// The algorithm every part is checked with.
    pub algorithm: ChecksumAlgorithm,
    /// `FULL_OBJECT`: the object's checksum is the CRC of all its bytes (CRC algorithms only),
    /// else `COMPOSITE`: the checksum of the parts' checksums, `-N`.
    pub full_object: bool,
}

impl UploadChecksum {
    /// The checksum `upload` was created with: its algorithm, and FULL_OBJECT when its
    /// template's checksum marks it so ([`Region::create_upload`] writes that mark).
    pub fn of(upload: &UploadRecord) -> Option<Self> {
        let full_object = upload.template.checksum.as_ref().is_some_and(|c| c.full_object);
        upload.checksum_algorithm.map(|algorithm| Self { algorithm, full_object })
    }
}

/// Smallest size of every part but the last (S3: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

impl Region {
    /// CreateMultipartUpload: records the upload and its metadata; returns the upload id.
    /// An upload encrypted as `encryption` (the request's `x-amz-server-side-encryption`),
    /// `customer` (its SSE-C key) or the bucket's default say gets its data key now: every part
    /// is sealed with it, and the completed version keeps it.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum: Option<UploadChecksum>,
        encryption: Option<&str>,
        customer: Option<&xregion_crypto::CustomerKey>,
    ) -> CoreResult<UploadRecord> {
        ObjectKey::parse(key)?;
        meta.validate()?;
        if let Some(c) = checksum.filter(|c| c.full_object && !c.algorithm.is_crc()) {
            return Err(InvalidInput::new(
                "InvalidRequest",
                format!(
                    "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                    c.algorithm.as_str().to_ascii_lowercase()
                ),
            )
            .into());
        }
        let b = self.bucket(bucket)?;
        let seal = self.write_encryption(bucket, encryption, customer)?;
        // Time first, so ListMultipartUploads (key, then upload id) lists uploads of a key in
        // the order they were started, as S3 does.
        let upload_id = format!("{:012x}{}", now_ms(), hex::encode(rand::random::<[u8; 10]>()));
        let record = UploadRecord {
            upload_id,
            bucket_id: b.id,
            key: key.to_owned(),
            initiated_ms: now_ms(),
            // A FULL_OBJECT upload is marked by its template's checksum (no value yet): the
            // completed version's checksum is the CRC of the whole object, not a composite.
            template: ObjectData {
                encryption: seal.map(|s| s.record),
                ..meta.into_data(
                    0,
                    String::new(),
                    BlobRef::default(),
                    checksum.filter(|c| c.full_object).map(|c| ChecksumValue {
                        algorithm: c.algorithm,
                        value: String::new(),
                        full_object: true,
                    }),
                )
            },
            checksum_algorithm: checksum.map(|c| c.algorithm),
        };
        match self.meta().write(WriteOp::CreateUpload { record }).await? {
            WriteOutcome::Upload(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// The data key an upload's parts are sealed with, if it is encrypted. An SSE-C upload
    /// needs the same customer key with every part (`customer`), as on S3.
    pub fn upload_key(
        &self,
        upload: &UploadRecord,
        customer: Option<&xregion_crypto::CustomerKey>,
    ) -> CoreResult<Option<std::sync::Arc<xregion_crypto::DataKey>>> {
        let encryption = upload.template.encryption.as_ref();
        if customer.is_none() && encryption.is_some_and(xregion_types::Encryption::is_customer_key) {
            return Err(xregion_types::InvalidInput::new(
                "InvalidRequest",
                "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.",
            )
            .into());
        }
        self.open_key(encryption, customer)
    }

    /// The upload, checked to belong to `bucket`/`key`.
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> CoreResult<UploadRecord> {
        let b = self.bucket(bucket)?;
        match self.meta().get_upload(upload_id)? {
            Some(u) if u.bucket_id == b.id && u.key == key => Ok(u),
            _ => Err(CoreError::NoSuchUpload),
        }
    }

    /// Checks a part number (1..=10000).
    pub fn check_part_number(part_number: i32) -> CoreResult<u32> {
        u32::try_from(part_number).ok().filter(|n| (1..=MAX_PART_NUMBER).contains(n)).ok_or_else(|| {
            CoreError::InvalidArgument("Part number must be an integer between 1 and 10000, inclusive".into())
        })
    }

    /// Records a stored part (UploadPart / UploadPartCopy). Returns the part's ETag (hex MD5).
    pub async fn commit_part(
        &self,
        upload: &UploadRecord,
        part_number: u32,
        blob: BlobInfo,
        expected_checksum: Option<&str>,
    ) -> CoreResult<PartRecord> {
        let checksum = blob.checksum.as_ref().map(|(alg, d)| ChecksumValue {
            algorithm: *alg,
            value: to_base64(d),
            full_object: true,
        });
        if let (Some(exp), Some(c)) = (expected_checksum, &checksum)
            && exp.trim() != c.value
        {
            self.free_blobs(std::slice::from_ref(&blob.segment)).await;
            return Err(CoreError::BadDigest(format!(
                "The {} you specified did not match the calculated checksum.",
                c.algorithm.as_str()
            )));
        }
        let part = PartRecord {
            part_number,
            size: blob.segment.len,
            etag: blob.etag().ok_or_else(|| CoreError::Internal("a part was stored without its MD5".into()))?,
            last_modified_ms: now_ms(),
            blob: blob.segment.clone(),
            checksum,
        };
        let op = WriteOp::PutPart { upload_id: upload.upload_id.clone(), part: part.clone() };
        match self.meta().write(op).await {
            Ok(WriteOutcome::Freed(freed)) => {
                self.free_blobs(&freed).await;
                Ok(part)
            }
            Ok(WriteOutcome::Done) => Ok(part),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => {
                let e = CoreError::from(e);
                self.abandon_blobs(&e, std::slice::from_ref(&blob.segment)).await;
                Err(e)
            }
        }
    }

    /// CompleteMultipartUpload: `parts` are (part number, ETag) as the client listed them;
    /// `expected` is the whole object's checksum the client gave for a FULL_OBJECT upload.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        expected: Option<&str>,
    ) -> CoreResult<PutResult> {
        let upload = self.upload(bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(CoreError::InvalidArgument("You must specify at least one part".into()));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(CoreError::InvalidPartOrder);
        }
        let (stored, _) = self.meta().list_parts(upload_id, 0, MAX_PART_NUMBER as usize)?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (number, etag) in parts {
            let found = stored.iter().find(|p| p.part_number == *number);
            match found {
                Some(p) if p.etag == etag.trim_matches('"') => chosen.push(p.clone()),
                _ => {
                    return Err(CoreError::InvalidPart(
                        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.".into(),
                    ));
                }
            }
        }
        if chosen[..chosen.len() - 1].iter().any(|p| p.size < MIN_PART_SIZE) {
            return Err(CoreError::EntityTooSmall);
        }
        let mut md5s = Vec::with_capacity(chosen.len());
        for p in &chosen {
            let raw = hex::decode(&p.etag).map_err(|e| CoreError::Internal(format!("stored part etag: {e}")))?;
            let arr: [u8; 16] =
                raw.try_into().map_err(|_| CoreError::Internal("stored part etag is not an md5".into()))?;
            md5s.push(arr);
        }
        let checksum = UploadChecksum::of(&upload).and_then(|UploadChecksum { algorithm: alg, full_object }| {
            let digests: Option<Vec<Vec<u8>>> =
                chosen.iter().map(|p| p.checksum.as_ref().and_then(|c| base64_decode(&c.value))).collect();
            let digests = digests?;
            match full_object {
                // The CRC of the whole object, from the parts' CRCs and sizes.
                true => {
                    let parts: Vec<(Vec<u8>, u64)> = digests.into_iter().zip(chosen.iter().map(|p| p.size)).collect();
                    let whole = combine_full_object(alg, &parts)?;
                    Some(ChecksumValue { algorithm: alg, value: to_base64(&whole), full_object: true })
                }
                false => Some(ChecksumValue { algorithm: alg, value: composite(alg, &digests), full_object: false }),
            }
        });
        if let (Some(expected), Some(c)) = (expected, checksum.as_ref().filter(|c| c.full_object))
            && expected.trim() != c.value
        {
            return Err(CoreError::BadDigest(format!(
                "The {} you specified for the whole object did not match what was computed from its parts.",
                c.algorithm.as_str()
            )));
        }
        // Kept for GetObjectAttributes' part list and `partNumber` reads, as S3 keeps them.
        let part_checksums = match &checksum {
            Some(_) => chosen.iter().filter_map(|p| p.checksum.as_ref().map(|c| c.value.clone())).collect(),
            None => Vec::new(),
        };
        let mut data = upload.template.clone();
        data.size = chosen.iter().map(|p| p.size).sum();
        data.etag = multipart_etag(&md5s);
        data.blob = BlobRef { segments: chosen.iter().map(|p| p.blob.clone()).collect() };
        data.part_sizes = chosen.iter().map(|p| p.size).collect();
        data.checksum = checksum;
        data.part_checksums = part_checksums;
        // IMPL-1, ELI-6: a completed multipart upload is a new version like any PUT.
        let outbox = self.plan_tasks(bucket, key, &data.tags, TaskKind::Object, false)?;
        let queued = outbox.len();
        let op = WriteOp::CompleteUpload {
            upload_id: upload_id.to_owned(),
            data,
            used_parts: chosen.iter().map(|p| p.part_number).collect(),
            precondition: None,
            outbox,
        };
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

    /// AbortMultipartUpload: forgets the upload and deletes its parts.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> CoreResult<()> {
        self.upload(bucket, key, upload_id)?;
        match self.meta().write(WriteOp::AbortUpload { upload_id: upload_id.to_owned() }).await? {
            WriteOutcome::Freed(freed) => {
                self.free_blobs(&freed).await;
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}
