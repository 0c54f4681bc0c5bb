//! Buckets: create, delete (VER-18), versioning state (VER-2, VER-4), tags, replication
//! configuration.

use redb::ReadableTable;
use xregion_types::{BucketName, BucketRecord, VersioningState};

use crate::codec::decode;
use crate::error::MetaError;
use crate::keys;
use crate::multipart::UploadRecord;
use crate::ops::WriteOutcome;
use crate::schema::META_NEXT_BUCKET_ID;
use crate::writer::WTables;

/// The AWS message for VER-4.
const REPLICATION_BLOCKS_SUSPEND: &str = "A replication configuration is present on this bucket, so you cannot \
     change the versioning state. To change the versioning state, first delete the replication configuration.";

/// The AWS message for VAL-2.
const REPLICATION_NEEDS_VERSIONING: &str = "Versioning must be 'Enabled' on the bucket to apply a replication \
     configuration";

/// Reads a bucket record by name from any table handle.
pub(crate) fn get<T>(buckets: &T, name: &str) -> Result<Option<BucketRecord>, MetaError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match buckets.get(name)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// The bucket named `name`, or `NoSuchBucket`.
pub(crate) fn by_name(t: &WTables<'_>, name: &str) -> Result<BucketRecord, MetaError> {
    get(&t.buckets, name)?.ok_or(MetaError::NoSuchBucket)
}

/// The bucket with id `id`, or `NoSuchBucket`.
pub(crate) fn by_id(t: &WTables<'_>, id: u64) -> Result<BucketRecord, MetaError> {
    let name = match t.bucket_ids.get(id)? {
        Some(guard) => guard.value().to_owned(),
        None => return Err(MetaError::NoSuchBucket),
    };
    by_name(t, &name)
}

/// `CreateBucket`: a new Unversioned bucket (VER-1) with a never-reused id.
pub(crate) fn create(t: &mut WTables<'_>, name: BucketName, created_ms: i64) -> Result<WriteOutcome, MetaError> {
    if let Some(existing) = get(&t.buckets, name.as_str())? {
        return Err(MetaError::BucketAlreadyExists(Box::new(existing)));
    }
    let id = t.take_counter(META_NEXT_BUCKET_ID, 1)?;
    let record = BucketRecord {
        name,
        id,
        created_ms,
        versioning: VersioningState::Unversioned,
        tags: Vec::new(),
        replication: None,
        lifecycle: None,
        encryption: None,
    };
    t.put_bucket(&record)?;
    Ok(WriteOutcome::Bucket(record))
}

/// `DeleteBucket`: only when no version or delete marker remains (VER-18); aborts the
/// bucket's in-progress uploads and returns their part blobs.
pub(crate) fn delete(t: &mut WTables<'_>, name: &str) -> Result<WriteOutcome, MetaError> {
    let record = by_name(t, name)?;
    let bucket_prefix = record.id.to_be_bytes();
    let (lower, upper) = keys::prefix_range(&bucket_prefix);
    if t.versions.range::<&[u8]>(keys::bounds(&lower, &upper))?.next().transpose()?.is_some() {
        return Err(MetaError::BucketNotEmpty);
    }
    let mut uploads = Vec::new();
    for item in t.upload_index.range::<&[u8]>(keys::bounds(&lower, &upper))? {
        let (k, _) = item?;
        let (_, _, upload_id) = keys::split_object_key(k.value())?;
        let upload_id =
            std::str::from_utf8(upload_id).map_err(|_| MetaError::Corrupt("stored upload id is not UTF-8".into()))?;
        if let Some(guard) = t.uploads.get(upload_id)? {
            uploads.push(decode::<UploadRecord>(guard.value())?);
        }
    }

    // Validation done: write.
    let mut freed = Vec::new();
    for upload in &uploads {
        freed.extend(t.del_upload(upload)?.into_iter().map(|p| p.blob));
    }
    t.del_bucket(&record)?;
    Ok(WriteOutcome::Freed(freed))
}

/// `PutBucketVersioning`: Enabled or Suspended only (VER-2); no suspend while replication is
/// configured (VER-4).
pub(crate) fn set_versioning(
    t: &mut WTables<'_>,
    name: &str,
    state: VersioningState,
) -> Result<WriteOutcome, MetaError> {
    let mut record = by_name(t, name)?;
    match state {
        VersioningState::Unversioned => {
            return Err(MetaError::InvalidArgument("versioning cannot return to unversioned".into()));
        }
        VersioningState::Suspended if record.replication.is_some() => {
            return Err(MetaError::InvalidBucketState(REPLICATION_BLOCKS_SUSPEND.into()));
        }
        VersioningState::Enabled | VersioningState::Suspended => {}
    }
    if record.versioning != state {
        record.versioning = state;
        t.put_bucket(&record)?;
    }
    Ok(WriteOutcome::Bucket(record))
}

/// Reads a bucket's record, applies `change` (which may refuse, changing nothing) and stores it.
fn update(
    t: &mut WTables<'_>,
    name: &str,
    change: impl FnOnce(&mut BucketRecord) -> Result<(), MetaError>,
) -> Result<WriteOutcome, MetaError> {
    let mut record = by_name(t, name)?;
    change(&mut record)?;
    t.put_bucket(&record)?;
    Ok(WriteOutcome::Bucket(record))
}

/// `PutBucketTagging` / `DeleteBucketTagging` (empty tags).
pub(crate) fn set_tags(
    t: &mut WTables<'_>,
    name: &str,
    tags: Vec<(String, String)>,
) -> Result<WriteOutcome, MetaError> {
    update(t, name, |record| {
        record.tags = tags;
        Ok(())
    })
}

/// `PutBucketLifecycleConfiguration` / `DeleteBucketLifecycle` (`None`).
pub(crate) fn set_lifecycle(
    t: &mut WTables<'_>,
    name: &str,
    config: Option<Vec<u8>>,
) -> Result<WriteOutcome, MetaError> {
    update(t, name, |record| {
        record.lifecycle = config;
        Ok(())
    })
}

/// `PutBucketEncryption` / `DeleteBucketEncryption` (`None`).
pub(crate) fn set_encryption(
    t: &mut WTables<'_>,
    name: &str,
    encryption: Option<xregion_types::BucketEncryption>,
) -> Result<WriteOutcome, MetaError> {
    update(t, name, |record| {
        record.encryption = encryption;
        Ok(())
    })
}

/// `PutBucketReplication` / `DeleteBucketReplication`. Checked inside the transaction so that
/// it cannot race with a suspend (VAL-2, VER-4).
pub(crate) fn set_replication(
    t: &mut WTables<'_>,
    name: &str,
    config: Option<Vec<u8>>,
) -> Result<WriteOutcome, MetaError> {
    update(t, name, |record| {
        if config.is_some() && record.versioning != VersioningState::Enabled {
            return Err(MetaError::InvalidRequest(REPLICATION_NEEDS_VERSIONING.into()));
        }
        record.replication = config;
        Ok(())
    })
}
