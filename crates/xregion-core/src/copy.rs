//! Copy sources: CopyObject and UploadPartCopy read a version stored in this region or in
//! another region of the deployment.
//!
//! S3 copies between buckets of any region ("restore from the backup region" is
//! `copy-object --copy-source backup-bucket/key` against the primary). A source bucket that
//! is not here is located through the peers and read from its region with a plain S3 GET
//! ([`PeerDirectory::read_object`](crate::PeerDirectory::read_object)), streamed into the
//! local write as a local source is: nothing is buffered whole. What the copy needs besides
//! the bytes (ETag, Last-Modified for the `x-amz-copy-source-if-*` conditions, metadata, tags,
//! checksum algorithm, the version id to report) comes from the same answer, so it describes
//! the bytes read. An SSE-C source's key (`x-amz-copy-source-server-side-encryption-customer-*`)
//! goes along with that GET as its own SSE-C headers, so the source's region checks it as it
//! checks a local read's.
//!
//! The bytes read from another region are checked before the copy commits: against the
//! source's ETag when that is an MD5 (a single-part upload), and against its full-object
//! checksum when the copy computes the same algorithm. A mismatch is an internal error and
//! commits nothing.
//!
//! Authorization: the copy request is authorized where it arrives, and the other region is
//! read with the deployment's own credential. Today the only principal is root, who may read
//! everything. When policies arrive, reading the source must be authorized for the caller
//! (`s3:GetObject` on it) before it is opened, for local and remote sources alike.

use futures::StreamExt as _;
use xregion_meta::{PartRecord, UploadRecord};
use xregion_types::{ChecksumAlgorithm, ChecksumValue, VersionId, VersioningState};

use crate::conditions::ReadConditions;
use crate::objects::{Body, BodyError, ChecksumClaim, DEFAULT_CHECKSUM, ObjectMeta, PutRequest, PutResult};
use crate::{CoreError, CoreResult, Region};

/// The version a copy names: bucket, key and optional version id (`x-amz-copy-source`).
#[derive(Debug, Clone, Copy)]
pub struct CopySourceRef<'a> {
    /// Source bucket.
    pub bucket: &'a str,
    /// Source key.
    pub key: &'a str,
    /// Source version id, if named.
    pub version: Option<&'a str>,
    /// The source's SSE-C key (`x-amz-copy-source-server-side-encryption-customer-*`), which
    /// an SSE-C source needs and any other source refuses ([`Region::open_key`]).
    pub customer: Option<&'a xregion_crypto::CustomerKey>,
}

/// What a read of a version in another region asks for.
#[derive(Debug, Clone, Copy)]
pub struct RemoteRead<'a> {
    /// The version to read.
    pub source: CopySourceRef<'a>,
    /// An inclusive byte range (`x-amz-copy-source-range`); `None` reads the whole object.
    pub range: Option<(u64, u64)>,
    /// Whether the version's tags are wanted too (CopyObject with `TaggingDirective: COPY`).
    pub tags: bool,
}

/// A version being read from another region: what its region said about it, and its bytes.
pub struct RemoteObject {
    /// `x-amz-version-id` of the answer: present when the source bucket is versioned.
    pub version_id: Option<VersionId>,
    /// ETag, without quotes.
    pub etag: String,
    /// Last-Modified, unix ms (whole seconds: HTTP dates have no more).
    pub last_modified_ms: i64,
    /// Size of the whole object.
    pub size: u64,
    /// Content headers, user metadata, storage class, and the tags if they were asked for.
    pub meta: ObjectMeta,
    /// The full-object or composite checksum, when the whole object is read.
    pub checksum: Option<ChecksumValue>,
    /// The bytes `[start, end)` that `body` yields.
    pub range: (u64, u64),
    /// The bytes.
    pub body: Body<'static>,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteObject")
            .field("version_id", &self.version_id)
            .field("etag", &self.etag)
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// A resolved copy source, ready to stream.
pub struct CopySource {
    /// `x-amz-copy-source-version-id`: the version read, when its bucket is versioned.
    pub version_header: Option<VersionId>,
    /// ETag of the source version, without quotes.
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// Its metadata (and tags, when they were asked for).
    pub meta: ObjectMeta,
    /// Its checksum, when known.
    pub checksum: Option<ChecksumValue>,
    /// The bytes `[start, end)` that the body yields.
    pub range: (u64, u64),
    /// The region the bytes come from, if not this one.
    pub from_region: Option<String>,
    body: Body<'static>,
}

impl CopySource {
    /// The number of bytes the body yields.
    pub fn len(&self) -> u64 {
        self.range.1 - self.range.0
    }

    /// True if the body yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MD5 the whole source's bytes must have, as `Content-MD5` (base64), when they are
    /// read from another region and the ETag is an MD5 (a single-part upload).
    fn expected_md5(&self) -> Option<String> {
        self.from_region.as_ref()?;
        if self.range != (0, self.size) || self.etag.len() != 32 {
            return None;
        }
        let md5 = hex::decode(&self.etag).ok()?;
        Some(xregion_blob::checksum::to_base64(&md5))
    }

    /// The checksum the whole source's bytes must have under `algorithm`, when they are read
    /// from another region and their full-object checksum is known.
    fn expected_checksum(&self, algorithm: ChecksumAlgorithm) -> Option<String> {
        self.from_region.as_ref()?;
        let c = self.checksum.as_ref().filter(|c| c.full_object && c.algorithm == algorithm)?;
        (self.range == (0, self.size)).then(|| c.value.clone())
    }
}

impl Region {
    /// Resolves a copy source and opens its bytes: a version in this region, or one in the
    /// region that owns the source bucket. `range` is inclusive (`x-amz-copy-source-range`)
    /// and must lie inside the object (`InvalidRange`); the `x-amz-copy-source-if-*`
    /// `conditions` are checked against the version read; `tags` reads its tags as well.
    pub async fn open_copy_source(
        &self,
        source: CopySourceRef<'_>,
        range: Option<(u64, u64)>,
        conditions: &ReadConditions,
        tags: bool,
    ) -> CoreResult<CopySource> {
        let (bucket, version) = match self.get_object(source.bucket, source.key, source.version) {
            Err(CoreError::NoSuchBucket) => match self.locate_bucket(source.bucket).await? {
                crate::buckets::BucketLocation::Remote(region) => {
                    return self.open_remote_copy_source(region, source, range, conditions, tags).await;
                }
                // Created here since the first look: read it again.
                crate::buckets::BucketLocation::Local(_) => {
                    self.get_object(source.bucket, source.key, source.version)?
                }
            },
            other => other?,
        };
        let Some(data) = version.object() else {
            return Err(CoreError::Internal("copy source resolved to a delete marker".into()));
        };
        let key = self.open_key(data.encryption.as_ref(), source.customer)?;
        conditions.check(&data.etag, version.last_modified_ms)?;
        let (start, end) = bounds(range, data.size)?;
        let body = self.read_object_with(data, start, end, key).map(|r| r.map_err(BodyError::from)).boxed();
        Ok(CopySource {
            version_header: (bucket.versioning != VersioningState::Unversioned).then(|| version.version_id.clone()),
            etag: data.etag.clone(),
            size: data.size,
            meta: ObjectMeta::from_data(data),
            checksum: data.checksum.clone(),
            range: (start, end),
            from_region: None,
            body,
        })
    }

    async fn open_remote_copy_source(
        &self,
        region: String,
        source: CopySourceRef<'_>,
        range: Option<(u64, u64)>,
        conditions: &ReadConditions,
        tags: bool,
    ) -> CoreResult<CopySource> {
        let remote = self.peers().read_object(&region, RemoteRead { source, range, tags }).await?;
        conditions.check(&remote.etag, remote.last_modified_ms)?;
        let (start, end) = bounds(range, remote.size)?;
        if remote.range != (start, end) {
            return Err(CoreError::Unavailable(format!(
                "region {region} answered bytes {}..{} of {}/{} for bytes {start}..{end}",
                remote.range.0, remote.range.1, source.bucket, source.key
            )));
        }
        Ok(CopySource {
            version_header: remote.version_id,
            etag: remote.etag,
            size: remote.size,
            meta: remote.meta,
            checksum: remote.checksum,
            range: remote.range,
            from_region: Some(region),
            body: remote.body,
        })
    }

    /// CopyObject: streams the source version's bytes into a new version of the target key.
    /// `meta` replaces the source's metadata (`MetadataDirective: REPLACE`), `tags` its tags
    /// (`TaggingDirective: REPLACE`); the checksum is `checksum`, else the source's algorithm,
    /// else the default. The copy is encrypted as `encryption` (the request's
    /// `x-amz-server-side-encryption`), `customer` (its SSE-C key) or the target bucket's
    /// default say, whatever the source's. Returns the source as read and the new version.
    #[allow(clippy::too_many_arguments)] // one per CopyObject parameter
    pub async fn copy_object(
        &self,
        source: CopySourceRef<'_>,
        conditions: &ReadConditions,
        target: (&str, &str),
        meta: Option<ObjectMeta>,
        tags: Option<Vec<(String, String)>>,
        checksum: Option<ChecksumAlgorithm>,
        encryption: Option<&str>,
        customer: Option<&xregion_crypto::CustomerKey>,
    ) -> CoreResult<(Option<VersionId>, PutResult)> {
        self.bucket(target.0)?;
        let seal = self.write_encryption(target.0, encryption, customer)?;
        let src = self.open_copy_source(source, None, conditions, tags.is_none()).await?;
        let algorithm = checksum.or(src.checksum.as_ref().map(|c| c.algorithm)).unwrap_or(DEFAULT_CHECKSUM);
        let content_md5 = src.expected_md5();
        let expected = src.expected_checksum(algorithm);
        let (version_header, len, from_region) = (src.version_header.clone(), src.len(), src.from_region.clone());
        let mut new_meta = meta.unwrap_or_else(|| src.meta.clone());
        if let Some(tags) = tags {
            new_meta.tags = tags;
        }
        let stored = self
            .write_object_body(target.0, src.body, Some(algorithm), Some(len), seal.as_ref())
            .await
            .map_err(|e| reading_failed(e, &from_region))?;
        let req = PutRequest {
            bucket: target.0.to_owned(),
            key: target.1.to_owned(),
            meta: new_meta,
            content_md5,
            checksum: Some(ChecksumClaim { algorithm, expected }),
            precondition: None,
        };
        let put = self.commit_put(req, stored).await.map_err(|e| match (e, from_region) {
            (CoreError::BadDigest(m), Some(region)) => CoreError::Internal(format!(
                "the bytes read from region {region} for {}/{} do not match the source: {m}",
                source.bucket, source.key
            )),
            (e, _) => e,
        })?;
        Ok((version_header, put))
    }

    /// UploadPartCopy: streams a byte range of the source version (the whole of it without
    /// `range`, which is inclusive) into a part of `upload` (sealed with its key; `customer`
    /// is the request's SSE-C key, which an SSE-C upload needs). Returns the source as read
    /// and the new part.
    pub async fn copy_part(
        &self,
        upload: &UploadRecord,
        part_number: u32,
        source: CopySourceRef<'_>,
        range: Option<(u64, u64)>,
        conditions: &ReadConditions,
        customer: Option<&xregion_crypto::CustomerKey>,
    ) -> CoreResult<(Option<VersionId>, PartRecord)> {
        let key = self.upload_key(upload, customer)?;
        let src = self.open_copy_source(source, range, conditions, false).await?;
        let content_md5 = src.expected_md5();
        let version_header = src.version_header.clone();
        let (len, from_region) = (src.len(), src.from_region.clone());
        let blob = self
            .write_blob(src.body, upload.checksum_algorithm, Some(len), key.as_deref())
            .await
            .map_err(|e| reading_failed(e, &from_region))?;
        if let Some(expected) = content_md5
            && blob.md5.map(|m| xregion_blob::checksum::to_base64(&m)).as_deref() != Some(expected.as_str())
        {
            self.free_blobs(std::slice::from_ref(&blob.segment)).await;
            return Err(CoreError::Internal(format!(
                "the bytes read for {}/{} do not match the source's ETag",
                source.bucket, source.key
            )));
        }
        let part = self.commit_part(upload, part_number, blob, None).await?;
        Ok((version_header, part))
    }
}

/// A copy whose source stopped or broke while it was read: not the client's fault (as the
/// same errors of a request body are), but the source region's (`Unavailable`, try again) or
/// this region's storage.
fn reading_failed(e: CoreError, from_region: &Option<String>) -> CoreError {
    match (e, from_region) {
        (CoreError::Body(e), Some(region)) => {
            CoreError::Unavailable(format!("reading the copy source from {region}: {e}"))
        }
        (CoreError::IncompleteBody(m), Some(region)) => {
            CoreError::Unavailable(format!("the copy source read from {region} ended early: {m}"))
        }
        (CoreError::Body(e), None) => CoreError::Internal(format!("reading the copy source: {e}")),
        (CoreError::IncompleteBody(m), None) => CoreError::Internal(format!("reading the copy source: {m}")),
        (e, _) => e,
    }
}

/// The bytes `[start, end)` an inclusive copy range selects of an object of `size` bytes.
fn bounds(range: Option<(u64, u64)>, size: u64) -> CoreResult<(u64, u64)> {
    match range {
        None => Ok((0, size)),
        Some((first, last)) if first <= last && last < size => Ok((first, last + 1)),
        Some(_) => Err(CoreError::InvalidRange),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::future::BoxFuture;

    use super::*;
    use crate::PeerDirectory;
    use crate::conditions::EtagMatch;

    /// A peer region `far-1` that owns bucket `far` and answers reads with
    /// `bytes`, claiming ETag `etag`.
    struct FarRegion {
        /// The body stops half-way.
        short: bool,
        bytes: Vec<u8>,
        etag: String,
        checksum: Option<ChecksumValue>,
    }

    impl PeerDirectory for FarRegion {
        fn locate_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>> {
            Box::pin(async move { Ok((bucket == "far").then(|| "far-1".to_owned())) })
        }

        fn bucket_versioning<'a>(&'a self, _bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>> {
            Box::pin(async { Ok(Some(VersioningState::Enabled)) })
        }

        fn read_object<'a>(&'a self, region: &'a str, read: RemoteRead<'a>) -> BoxFuture<'a, CoreResult<RemoteObject>> {
            Box::pin(async move {
                assert_eq!(region, "far-1");
                let size = self.bytes.len() as u64;
                let (start, end) = match read.range {
                    None => (0, size),
                    Some((first, last)) if last < size => (first, last + 1),
                    Some(_) => return Err(CoreError::InvalidRange),
                };
                let end_sent = if self.short { start + (end - start) / 2 } else { end };
                let chunk = Bytes::copy_from_slice(&self.bytes[start as usize..end_sent as usize]);
                let meta = ObjectMeta {
                    tags: if read.tags { vec![("k".into(), "v".into())] } else { Vec::new() },
                    ..ObjectMeta::default()
                };
                Ok(RemoteObject {
                    version_id: Some(VersionId::parse("null").unwrap()),
                    etag: self.etag.clone(),
                    last_modified_ms: 1_000_000,
                    size,
                    meta,
                    checksum: self.checksum.clone().filter(|_| read.range.is_none()),
                    range: (start, end),
                    body: futures::stream::iter([Ok::<_, BodyError>(chunk)]).boxed(),
                })
            })
        }
    }

    fn md5_hex(bytes: &[u8]) -> String {
        hex::encode(xregion_blob::md5::digest(bytes))
    }

    async fn region(peer: FarRegion) -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("here-1", dir.path(), Arc::new(peer)).unwrap();
        region.create_bucket("here", None).await.unwrap();
        (dir, region)
    }

    fn far(key: &str) -> CopySourceRef<'_> {
        CopySourceRef { bucket: "far", key, version: None, customer: None }
    }

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { files(&e.path()) } else { 1 }).sum())
            .unwrap_or(0)
    }

    fn big(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    /// Bytes that match the source's ETag are copied with its tags; bytes that do not commit
    /// nothing (neither an inline row nor a blob file) and are an internal error.
    #[tokio::test]
    async fn bytes_from_another_region_are_checked_against_the_source() {
        for len in [10, 200_000] {
            let bytes = big(len);
            let (_dir, r) =
                region(FarRegion { short: false, etag: md5_hex(&bytes), bytes: bytes.clone(), checksum: None }).await;
            let (version, put) = r
                .copy_object(far("a"), &ReadConditions::default(), ("here", "a"), None, None, None, None, None)
                .await
                .unwrap();
            assert_eq!(version.map(|v| v.as_str().to_owned()).as_deref(), Some("null"));
            let data = put.record.object().unwrap();
            assert_eq!((data.size, data.etag.as_str(), data.tags.len()), (len as u64, md5_hex(&bytes).as_str(), 1));

            let (_dir, r) = region(FarRegion { short: false, etag: md5_hex(b"other"), bytes, checksum: None }).await;
            let err =
                r.copy_object(far("a"), &ReadConditions::default(), ("here", "b"), None, None, None, None, None).await;
            assert!(matches!(&err, Err(CoreError::Internal(m)) if m.contains("far-1")), "{err:?}");
            assert!(matches!(r.get_object("here", "b", None), Err(CoreError::NoSuchKey { .. })));
            assert_eq!(r.meta().inline_rows().unwrap(), 0);
            assert_eq!(files(r.blobs().dir()), 0);
        }
    }

    /// A multipart source (no MD5 ETag) is checked by its full-object checksum when the copy
    /// computes the same algorithm; a part copy of the whole source by its MD5 ETag.
    #[tokio::test]
    async fn checksums_and_part_copies_are_checked_too() {
        let bytes = big(1000);
        let crc = xregion_blob::checksum::digest(ChecksumAlgorithm::Crc32c, &bytes);
        let good = ChecksumValue {
            algorithm: ChecksumAlgorithm::Crc32c,
            value: xregion_blob::checksum::to_base64(&crc),
            full_object: true,
        };
        let bad = ChecksumValue { value: "AAAAAA==".into(), ..good.clone() };
        let (_dir, r) =
            region(FarRegion { short: false, etag: "abc-2".into(), bytes: bytes.clone(), checksum: Some(good) }).await;
        let (_, put) = r
            .copy_object(far("a"), &ReadConditions::default(), ("here", "a"), None, None, None, None, None)
            .await
            .unwrap();
        assert_eq!(put.record.object().unwrap().etag, md5_hex(&bytes));
        let (_dir, r) =
            region(FarRegion { short: false, etag: "abc-2".into(), bytes: bytes.clone(), checksum: Some(bad) }).await;
        let err =
            r.copy_object(far("a"), &ReadConditions::default(), ("here", "a"), None, None, None, None, None).await;
        assert!(matches!(err, Err(CoreError::Internal(_))), "{err:?}");
        // Another algorithm asked for: nothing to compare with, the copy is made.
        r.copy_object(
            far("a"),
            &ReadConditions::default(),
            ("here", "a"),
            None,
            None,
            Some(ChecksumAlgorithm::Sha1),
            None,
            None,
        )
        .await
        .unwrap();

        let (_dir, r) =
            region(FarRegion { short: false, etag: md5_hex(b"other"), bytes: bytes.clone(), checksum: None }).await;
        let upload = r.create_upload("here", "mp", ObjectMeta::default(), None, None, None).await.unwrap();
        let conditions = ReadConditions::default();
        let err = r.copy_part(&upload, 1, far("a"), None, &conditions, None).await;
        assert!(matches!(err, Err(CoreError::Internal(_))), "{err:?}");
        // A range cannot be checked against the whole source's digest; it is copied.
        let (_, part) = r.copy_part(&upload, 1, far("a"), Some((0, 99)), &conditions, None).await.unwrap();
        assert_eq!(part.etag, md5_hex(&bytes[..100]));
        let err = r.copy_part(&upload, 2, far("a"), Some((0, 1000)), &conditions, None).await;
        assert!(matches!(err, Err(CoreError::InvalidRange)), "{err:?}");
    }

    /// A source region that stops sending half-way is `Unavailable` (retry), not the client's
    /// `IncompleteBody`, and nothing is stored.
    #[tokio::test]
    async fn a_source_that_stops_early_is_unavailable() {
        for len in [100, 200_000] {
            let bytes = big(len);
            let (_dir, r) = region(FarRegion { short: true, etag: md5_hex(&bytes), bytes, checksum: None }).await;
            let err =
                r.copy_object(far("a"), &ReadConditions::default(), ("here", "a"), None, None, None, None, None).await;
            assert!(matches!(&err, Err(CoreError::Unavailable(m)) if m.contains("far-1")), "{err:?}");
            let upload = r.create_upload("here", "mp", ObjectMeta::default(), None, None, None).await.unwrap();
            let err = r.copy_part(&upload, 1, far("a"), None, &ReadConditions::default(), None).await;
            assert!(matches!(&err, Err(CoreError::Unavailable(_))), "{err:?}");
            assert!(matches!(r.get_object("here", "a", None), Err(CoreError::NoSuchKey { .. })));
            assert_eq!(files(r.blobs().dir()), 0);
        }
    }

    /// `x-amz-copy-source-if-*` are judged on what the other region answered.
    #[tokio::test]
    async fn conditions_are_judged_on_the_remote_version() {
        let bytes = big(10);
        let etag = md5_hex(&bytes);
        let (_dir, r) = region(FarRegion { short: false, etag: etag.clone(), bytes, checksum: None }).await;
        let mismatch = ReadConditions { if_match: Some(EtagMatch::List(vec!["\"x\"".into()])), ..Default::default() };
        let err = r.copy_object(far("a"), &mismatch, ("here", "a"), None, None, None, None, None).await;
        assert!(matches!(err, Err(CoreError::PreconditionFailed)), "{err:?}");
        let unmodified = ReadConditions { if_unmodified_since: Some(999), ..Default::default() };
        let err = r.copy_object(far("a"), &unmodified, ("here", "a"), None, None, None, None, None).await;
        assert!(matches!(err, Err(CoreError::PreconditionFailed)), "{err:?}");
        let matching =
            ReadConditions { if_match: Some(EtagMatch::List(vec![format!("\"{etag}\"")])), ..Default::default() };
        r.copy_object(far("a"), &matching, ("here", "a"), None, None, None, None, None).await.unwrap();
    }
}
