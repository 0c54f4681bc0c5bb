//! Multipart uploads: upload records, parts, and the per-bucket upload index.

use std::collections::HashSet;
use std::ops::Bound;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use xregion_types::{BlobSegment, ChecksumAlgorithm, ChecksumValue, ObjectData, VersionClock};

use crate::codec::decode;
use crate::error::MetaError;
use crate::listing::{Item, Scan};
use crate::ops::{Precondition, WriteOutcome};
use crate::writer::WTables;
use crate::{buckets, keys, objects};

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Upload id (chosen by the caller; should sort by creation time).
    pub upload_id: String,
    /// Bucket id.
    pub bucket_id: u64,
    /// Object key.
    pub key: String,
    /// Initiation time, unix milliseconds.
    pub initiated_ms: i64,
    /// Metadata given at create; its blob is empty.
    pub template: ObjectData,
    /// Checksum algorithm requested at create.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Upload time, unix milliseconds.
    pub last_modified_ms: i64,
    /// Where the bytes are.
    pub blob: BlobSegment,
    /// The part's checksum, if any.
    pub checksum: Option<ChecksumValue>,
}

/// A `ListMultipartUploads` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Groups keys by the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// Resume after this key (all its uploads, unless `upload_id_marker` is set).
    pub key_marker: Option<String>,
    /// With `key_marker`: resume after this upload of that key.
    pub upload_id_marker: Option<String>,
    /// Maximum uploads plus common prefixes returned.
    pub max_uploads: usize,
}

/// A `ListMultipartUploads` page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsPage {
    /// Uploads, by key then upload id.
    pub uploads: Vec<UploadRecord>,
    /// Common prefixes, ascending.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// When truncated: the key (or common prefix) of the last entry returned.
    pub next_key_marker: Option<String>,
    /// When truncated and the last entry is an upload: its id.
    pub next_upload_id_marker: Option<String>,
}

/// Highest part number S3 allows.
pub(crate) const MAX_PART_NUMBER: u32 = 10_000;

/// Reads an upload record from any table handle.
pub(crate) fn get<T>(uploads: &T, upload_id: &str) -> Result<Option<UploadRecord>, MetaError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match uploads.get(upload_id)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// `CreateMultipartUpload`.
pub(crate) fn create(t: &mut WTables<'_>, record: UploadRecord) -> Result<WriteOutcome, MetaError> {
    buckets::by_id(t, record.bucket_id)?;
    objects::check_key(&record.key)?;
    if record.upload_id.is_empty() {
        return Err(MetaError::InvalidArgument("upload id must not be empty".into()));
    }
    if get(&t.uploads, &record.upload_id)?.is_some() {
        return Err(MetaError::InvalidArgument(format!("upload id {} already exists", record.upload_id)));
    }
    t.put_upload(&record)?;
    Ok(WriteOutcome::Upload(record))
}

/// `WriteOp::RewrapUploadKey`: the upload's wrapped data key becomes `to` if it is `from`.
pub(crate) fn rewrap_key(
    t: &mut WTables<'_>,
    upload_id: &str,
    from: &xregion_types::Encryption,
    to: xregion_types::Encryption,
) -> Result<WriteOutcome, MetaError> {
    let Some(mut record) = get(&t.uploads, upload_id)? else {
        return Ok(WriteOutcome::Rewrapped(false));
    };
    if record.template.encryption.as_ref() != Some(from) {
        return Ok(WriteOutcome::Rewrapped(false));
    }
    record.template.encryption = Some(to);
    t.put_upload(&record)?;
    Ok(WriteOutcome::Rewrapped(true))
}

/// `UploadPart`: stores the part, replacing the same part number (the old blob is freed).
pub(crate) fn put_part(t: &mut WTables<'_>, upload_id: &str, part: PartRecord) -> Result<WriteOutcome, MetaError> {
    if get(&t.uploads, upload_id)?.is_none() {
        return Err(MetaError::NoSuchUpload);
    }
    if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
        return Err(MetaError::InvalidArgument(format!(
            "part number must be an integer between 1 and {MAX_PART_NUMBER}"
        )));
    }
    let old = match t.parts.get(keys::part_key(upload_id, part.part_number).as_slice())? {
        Some(guard) => Some(decode::<PartRecord>(guard.value())?),
        None => None,
    };

    // Validation done: write.
    t.put_part(upload_id, &part)?;
    let freed = old.map(|o| o.blob).filter(|b| b.id != part.blob.id).into_iter().collect();
    Ok(WriteOutcome::Freed(freed))
}

/// `CompleteMultipartUpload`: in one transaction, the version is inserted (as `PutVersion`) and
/// the upload and all its parts are removed. Parts whose blob `data` does not reference are
/// freed.
pub(crate) fn complete(
    t: &mut WTables<'_>,
    clock: &VersionClock,
    upload_id: &str,
    data: ObjectData,
    used_parts: &[u32],
    precondition: Option<&Precondition>,
    outbox: crate::ops::Outbox,
) -> Result<WriteOutcome, MetaError> {
    let upload = get(&t.uploads, upload_id)?.ok_or(MetaError::NoSuchUpload)?;
    for &number in used_parts {
        if t.parts.get(keys::part_key(upload_id, number).as_slice())?.is_none() {
            return Err(MetaError::InvalidPart(format!("part {number} was not uploaded")));
        }
    }
    let bucket = buckets::by_id(t, upload.bucket_id)?;
    let referenced: HashSet<String> = data.blob.segments.iter().map(|s| s.id.clone()).collect();

    // put_version validates before it writes; after it, only writes remain.
    let (record, mut freed) =
        objects::put_version(t, clock, &bucket, &upload.key, objects::Body::files(data), None, precondition, outbox)?;
    let parts = t.del_upload(&upload)?;
    freed.extend(parts.into_iter().map(|p| p.blob).filter(|b| !referenced.contains(&b.id)));
    Ok(WriteOutcome::Version { record, freed })
}

/// `AbortMultipartUpload`: removes the upload and its parts; returns their blobs.
pub(crate) fn abort(t: &mut WTables<'_>, upload_id: &str) -> Result<Vec<BlobSegment>, MetaError> {
    let upload = get(&t.uploads, upload_id)?.ok_or(MetaError::NoSuchUpload)?;
    let parts = t.del_upload(&upload)?;
    Ok(parts.into_iter().map(|p| p.blob).collect())
}

/// `ListParts`: parts above `marker`, at most `max_parts`, and whether more follow.
pub(crate) fn list_parts<U, P>(
    uploads: &U,
    parts: &P,
    upload_id: &str,
    marker: u32,
    max_parts: usize,
) -> Result<(Vec<PartRecord>, bool), MetaError>
where
    U: ReadableTable<&'static str, &'static [u8]>,
    P: ReadableTable<&'static [u8], &'static [u8]>,
{
    if get(uploads, upload_id)?.is_none() {
        return Err(MetaError::NoSuchUpload);
    }
    let prefix = keys::part_prefix(upload_id);
    let lower = Bound::Excluded(keys::part_key(upload_id, marker));
    let upper = keys::prefix_end(&prefix);
    let mut out = Vec::new();
    for item in parts.range::<&[u8]>(keys::bounds(&lower, &upper))? {
        let (k, v) = item?;
        if out.len() >= max_parts {
            return Ok((out, true));
        }
        let part: PartRecord = decode(v.value())?;
        debug_assert_eq!(keys::part_key_number(k.value()).ok(), Some(part.part_number));
        out.push(part);
    }
    Ok((out, false))
}

/// `ListMultipartUploads`: uploads by key then upload id, grouped by delimiter.
pub(crate) fn list_uploads<I, U>(
    index: &I,
    uploads: &U,
    bucket_id: u64,
    q: &ListUploadsQuery,
) -> Result<ListUploadsPage, MetaError>
where
    I: ReadableTable<&'static [u8], ()>,
    U: ReadableTable<&'static str, &'static [u8]>,
{
    let scan = Scan::new(bucket_id, &q.prefix, q.delimiter.as_deref(), q.max_uploads);
    // Without a key marker the upload-id marker is ignored (as S3 does).
    let start = match (&q.key_marker, &q.upload_id_marker) {
        (None, _) => None,
        (Some(key), _) if scan.group_of(key).is_some() => Some(scan.after_group_of(key)),
        (Some(key), None) => Some(keys::after_key(bucket_id, key)),
        (Some(key), Some(upload_id)) => Some(Bound::Excluded(keys::upload_index_key(bucket_id, key, upload_id))),
    };
    let (items, is_truncated) = scan.run(index, start, |key, table_key, _| {
        let (_, _, upload_id) = keys::split_object_key(table_key)?;
        let upload_id =
            std::str::from_utf8(upload_id).map_err(|_| MetaError::Corrupt("stored upload id is not UTF-8".into()))?;
        match get(uploads, upload_id)? {
            Some(record) => Ok(Some(record)),
            None => Err(MetaError::Corrupt(format!("upload index names missing upload {upload_id} of {key:?}"))),
        }
    })?;
    let mut page = ListUploadsPage { is_truncated, ..ListUploadsPage::default() };
    let last = items.last().map(|item| match item {
        Item::Entry(u) => (u.key.clone(), Some(u.upload_id.clone())),
        Item::Prefix(p) => (p.clone(), None),
    });
    for item in items {
        match item {
            Item::Entry(u) => page.uploads.push(u),
            Item::Prefix(p) => page.common_prefixes.push(p),
        }
    }
    if is_truncated && let Some((key, upload_id)) = last {
        page.next_key_marker = Some(key);
        page.next_upload_id_marker = upload_id;
    }
    Ok(page)
}
