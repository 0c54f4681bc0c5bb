//! Object versions: put (VER-8, VER-9, replicas), delete (VER-15, VER-16), tags (VER-10,
//! VER-14), and the read helpers shared by readers and the writer.

use redb::ReadableTable;
use xregion_types::key::MAX_KEY_LEN;
use xregion_types::{
    BlobSegment, BucketRecord, ObjectData, ReplicationStatus, VersionClock, VersionId, VersionKind, VersionRecord,
    VersioningState, now_ms,
};

use crate::buckets;
use crate::codec::decode;
use crate::error::MetaError;
use crate::keys;
use crate::ops::{Outbox, Plan, Precondition, WriteOutcome};
use crate::writer::WTables;

/// Rejects keys that S3 rejects (empty, longer than 1024 bytes).
pub(crate) fn check_key(key: &str) -> Result<(), MetaError> {
    if key.is_empty() {
        return Err(MetaError::InvalidArgument("object key must not be empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(MetaError::InvalidArgument("object key is longer than 1024 bytes".into()));
    }
    Ok(())
}

/// The key's newest version (its current version, possibly a delete marker).
pub(crate) fn newest_version<T>(versions: &T, bucket_id: u64, key: &str) -> Result<Option<VersionRecord>, MetaError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let (lower, upper) = keys::prefix_range(&keys::object_key(bucket_id, key));
    let mut range = versions.range::<&[u8]>(keys::bounds(&lower, &upper))?;
    match range.next() {
        Some(item) => {
            let (_, value) = item?;
            Ok(Some(decode(value.value())?))
        }
        None => Ok(None),
    }
}

/// The stamp of a generated version id, or `InvalidArgument` (VER-16: malformed id).
pub(crate) fn stamp_of(version_id: &VersionId) -> Result<Option<u64>, MetaError> {
    match version_id {
        VersionId::Null => Ok(None),
        VersionId::Id(_) => version_id
            .stamp()
            .map(Some)
            .ok_or_else(|| MetaError::InvalidArgument("Invalid version id specified".into())),
    }
}

/// A specific version of a key (`Null` = the null version).
pub(crate) fn find_version<V, N>(
    versions: &V,
    nulls: &N,
    bucket_id: u64,
    key: &str,
    version_id: &VersionId,
) -> Result<Option<VersionRecord>, MetaError>
where
    V: ReadableTable<&'static [u8], &'static [u8]>,
    N: ReadableTable<&'static [u8], u64>,
{
    let stamp = match stamp_of(version_id)? {
        Some(stamp) => stamp,
        None => match nulls.get(keys::object_key(bucket_id, key).as_slice())? {
            Some(guard) => guard.value(),
            None => return Ok(None),
        },
    };
    match version_at(versions, bucket_id, key, stamp)? {
        Some(record) => Ok((record.version_id == *version_id).then_some(record)),
        None if version_id.is_null() => {
            Err(MetaError::Corrupt(format!("null pointer of key {key:?} names a missing version")))
        }
        None => Ok(None),
    }
}

/// The version at exactly `stamp`, whatever its id.
fn version_at<V>(versions: &V, bucket_id: u64, key: &str, stamp: u64) -> Result<Option<VersionRecord>, MetaError>
where
    V: ReadableTable<&'static [u8], &'static [u8]>,
{
    match versions.get(keys::version_key(bucket_id, key, stamp).as_slice())? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Checks a conditional write against the current version (VER-11).
fn check_precondition(precondition: Option<&Precondition>, current: Option<&VersionRecord>) -> Result<(), MetaError> {
    let current_object = current.and_then(VersionRecord::object);
    match precondition {
        None => Ok(()),
        // A current delete marker counts as absent.
        Some(Precondition::IfNoneMatchAny) if current_object.is_some() => Err(MetaError::PreconditionFailed),
        Some(Precondition::IfNoneMatchAny) => Ok(()),
        Some(Precondition::IfMatch(etag)) => {
            let Some(object) = current_object else {
                return Err(MetaError::NoSuchKey);
            };
            let wanted = etag.trim().trim_matches('"');
            if wanted == "*" || wanted == object.etag { Ok(()) } else { Err(MetaError::PreconditionFailed) }
        }
    }
}

/// A stamp newer than every version of the key, with the `null` id or a new generated id
/// carrying that stamp (VER-5, VER-8). A rewritten null version is thus the newest (VER-9).
fn next_version(clock: &VersionClock, newest: Option<&VersionRecord>, null: bool) -> (u64, VersionId) {
    if let Some(newest) = newest {
        clock.observe(newest.stamp);
    }
    match null {
        true => (clock.next(), VersionId::Null),
        false => clock.new_version_id(),
    }
}

/// Write phase shared by every insert: removes `replaced` (the null version the record
/// supersedes, VER-9), stores `record`, points the null pointer at it if it is the null
/// version, and makes it the head if it `becomes_current`. Returns the freed blobs.
fn store_version(
    t: &mut WTables<'_>,
    bucket_id: u64,
    key: &str,
    record: &VersionRecord,
    replaced: Option<&VersionRecord>,
    becomes_current: bool,
) -> Result<Vec<BlobSegment>, MetaError> {
    let mut freed = Vec::new();
    if let Some(old) = replaced {
        t.del_version(bucket_id, key, old.stamp)?;
        freed.extend(t.free_version(old)?);
    }
    t.put_version(bucket_id, key, record)?;
    if record.version_id.is_null() {
        t.put_null(bucket_id, key, record.stamp)?;
    }
    if becomes_current {
        t.set_head(bucket_id, key, Some(record))?;
    }
    Ok(freed)
}

/// The body of a new version: its data, and its bytes when they are stored inline.
pub(crate) struct Body {
    /// Object data; `data.inline` is assigned here, never by the caller.
    pub(crate) data: ObjectData,
    /// The whole object, to store in `inline_data` (then `data.blob` is empty).
    pub(crate) inline: Option<Vec<u8>>,
}

impl Body {
    /// A body whose bytes are in blob files (or an empty object).
    pub(crate) fn files(data: ObjectData) -> Self {
        Self { data, inline: None }
    }

    fn validate(&self) -> Result<(), MetaError> {
        if self.data.inline.is_some() {
            return Err(MetaError::InvalidArgument("inline data ids are assigned by the metadata store".into()));
        }
        // An encrypted body is stored sealed (`xregion_crypto`): longer by its chunks' tags.
        let stored_len = match &self.data.encryption {
            Some(_) => xregion_crypto::sealed_len(self.data.size),
            None => self.data.size,
        };
        if let Some(bytes) = &self.inline
            && (!self.data.blob.segments.is_empty() || bytes.len() as u64 != stored_len)
        {
            return Err(MetaError::InvalidArgument(
                "inline data must be the whole object and the object must have no blob".into(),
            ));
        }
        Ok(())
    }

    /// Write phase: stores the inline bytes (if any) and returns the data pointing at them.
    fn store(self, t: &mut WTables<'_>) -> Result<ObjectData, MetaError> {
        let mut data = self.data;
        if let Some(bytes) = self.inline {
            data.inline = Some(t.put_inline(&bytes)?);
        }
        Ok(data)
    }
}

/// Writes a new version of `key` in `bucket` (VER-8, VER-9) or stores a replica verbatim.
/// Returns the stored record and the blobs that became unreferenced.
#[allow(clippy::too_many_arguments, reason = "mirrors the fields of WriteOp::PutVersion")]
pub(crate) fn put_version(
    t: &mut WTables<'_>,
    clock: &VersionClock,
    bucket: &BucketRecord,
    key: &str,
    body: Body,
    replica: Option<VersionRecord>,
    precondition: Option<&Precondition>,
    outbox: Outbox,
) -> Result<(VersionRecord, Vec<BlobSegment>), MetaError> {
    // CON-5: the tasks as the bucket's configuration stands in this transaction.
    let Plan { tasks: outbox, targets } = outbox.resolve(bucket.replication.as_deref())?;
    check_key(key)?;
    body.validate()?;
    let bucket_id = bucket.id;
    let newest = newest_version(&t.versions, bucket_id, key)?;
    check_precondition(precondition, newest.as_ref())?;
    if let Some(replica) = replica {
        return put_replica(t, clock, bucket_id, key, body, replica, newest.as_ref(), outbox);
    }

    let null_mode = bucket.versioning != VersioningState::Enabled;
    // VER-9: the null version (object or delete marker) is replaced.
    let replaced = match null_mode {
        true => find_version(&t.versions, &t.nulls, bucket_id, key, &VersionId::Null)?,
        false => None,
    };
    let (stamp, version_id) = next_version(clock, newest.as_ref(), null_mode);

    // Validation done: write.
    let data = body.store(t)?;
    let record = VersionRecord {
        version_id,
        stamp,
        last_modified_ms: now_ms(),
        kind: VersionKind::Object(Box::new(data)),
        replication: pending_if(!outbox.is_empty()),
        // ELI-12: where a later metadata change of this version must go.
        replication_targets: if outbox.is_empty() { Vec::new() } else { targets },
        tags_changed_ms: None,
    };
    let freed = store_version(t, bucket_id, key, &record, replaced.as_ref(), true)?;
    t.push_outbox(bucket_id, key, Some(&record.version_id), Some(&record), outbox)?;
    Ok((record, freed))
}

/// `Pending` when replication tasks were queued with the version, else `None`.
fn pending_if(queued: bool) -> ReplicationStatus {
    match queued {
        true => ReplicationStatus::Pending,
        false => ReplicationStatus::None,
    }
}

/// Stores a replica with the source's id, stamp and last-modified (design invariant 4).
#[allow(clippy::too_many_arguments, reason = "the replica path of put_version")]
fn put_replica(
    t: &mut WTables<'_>,
    clock: &VersionClock,
    bucket_id: u64,
    key: &str,
    body: Body,
    replica: VersionRecord,
    newest: Option<&VersionRecord>,
    outbox: Vec<Vec<u8>>,
) -> Result<(VersionRecord, Vec<BlobSegment>), MetaError> {
    if let Some(id_stamp) = stamp_of(&replica.version_id)?
        && id_stamp != replica.stamp
    {
        return Err(MetaError::InvalidArgument("replica stamp does not match its version id".into()));
    }
    let unused_data = body.data.blob.segments.clone();
    let is_marker = replica.is_delete_marker();
    // The kind is filled in after validation (storing inline bytes is a write).
    let mut record = VersionRecord { kind: VersionKind::DeleteMarker, ..replica };
    let at_stamp = version_at(&t.versions, bucket_id, key, record.stamp)?;

    let replaced = if record.version_id.is_null() {
        let existing_null = find_version(&t.versions, &t.nulls, bucket_id, key, &VersionId::Null)?;
        if let Some(existing) = existing_null.as_ref().filter(|n| n.stamp >= record.stamp) {
            // Same null version already here, or a newer one: keep it (idempotent).
            return Ok((existing.clone(), unused_data));
        }
        existing_null
    } else {
        None
    };
    if let Some(existing) = at_stamp {
        if existing.version_id == record.version_id {
            return Ok((existing, unused_data)); // idempotent replay
        }
        return Err(MetaError::InvalidArgument(format!(
            "replica version {} collides with version {} at the same stamp",
            record.version_id, existing.version_id
        )));
    }
    let becomes_current = newest.is_none_or(|n| record.stamp > n.stamp);
    clock.observe(record.stamp);
    if !is_marker {
        record.kind = VersionKind::Object(Box::new(body.store(t)?));
    }

    // Validation done: write. A replica older than the key's newest version lands below it
    // (it never hides a newer version); the null version it replaces, if any, was older still,
    // so the head is unchanged.
    let freed = store_version(t, bucket_id, key, &record, replaced.as_ref(), becomes_current)?;
    t.push_outbox(bucket_id, key, Some(&record.version_id), Some(&record), outbox)?;
    Ok((record, freed))
}

/// DELETE without versionId (VER-15).
pub(crate) fn delete_object(
    t: &mut WTables<'_>,
    clock: &VersionClock,
    bucket: &str,
    key: &str,
    outbox: Outbox,
    if_current: Option<&VersionId>,
) -> Result<WriteOutcome, MetaError> {
    let bucket = buckets::by_name(t, bucket)?;
    let outbox = outbox.resolve(bucket.replication.as_deref())?.tasks;
    check_key(key)?;
    let bucket_id = bucket.id;
    let newest = newest_version(&t.versions, bucket_id, key)?;
    if let Some(expected) = if_current
        && newest.as_ref().map(|v| &v.version_id) != Some(expected)
    {
        return Err(MetaError::PreconditionFailed);
    }
    let existing_null = match bucket.versioning {
        VersioningState::Enabled => None,
        VersioningState::Suspended | VersioningState::Unversioned => {
            find_version(&t.versions, &t.nulls, bucket_id, key, &VersionId::Null)?
        }
    };
    // Enabled: always a new delete marker with a new id, even for a missing key.
    // Suspended: the null version (if any) is replaced by a null delete marker.
    // Unversioned: the object is removed permanently, no marker.
    let marker = match bucket.versioning {
        VersioningState::Enabled | VersioningState::Suspended => {
            let null = bucket.versioning == VersioningState::Suspended;
            let (stamp, version_id) = next_version(clock, newest.as_ref(), null);
            Some(VersionRecord {
                version_id,
                stamp,
                last_modified_ms: now_ms(),
                kind: VersionKind::DeleteMarker,
                replication: pending_if(!outbox.is_empty()),
                // A delete marker has no metadata to change later (VER-14).
                replication_targets: Vec::new(),
                tags_changed_ms: None,
            })
        }
        VersioningState::Unversioned => None,
    };

    // Validation done: write.
    let freed = match (&marker, &existing_null) {
        (Some(marker), replaced) => store_version(t, bucket_id, key, marker, replaced.as_ref(), true)?,
        (None, Some(old)) => {
            t.del_version(bucket_id, key, old.stamp)?;
            t.del_null(bucket_id, key)?;
            t.refresh_head(bucket_id, key)?;
            t.free_version(old)?
        }
        (None, None) => Vec::new(),
    };
    let created = marker.as_ref().or(existing_null.as_ref()).map(|r| &r.version_id);
    if !outbox.is_empty() {
        t.push_outbox(bucket_id, key, created, None, outbox)?;
    }
    Ok(WriteOutcome::Deleted { removed: existing_null, marker, freed })
}

/// DELETE with versionId (VER-16): removes that version or delete marker permanently; if it
/// was current, the next newest becomes current. Unknown versions are a no-op.
pub(crate) fn delete_version(
    t: &mut WTables<'_>,
    bucket: &str,
    key: &str,
    version_id: &VersionId,
) -> Result<WriteOutcome, MetaError> {
    let bucket = buckets::by_name(t, bucket)?;
    check_key(key)?;
    let bucket_id = bucket.id;
    let Some(record) = find_version(&t.versions, &t.nulls, bucket_id, key, version_id)? else {
        return Ok(WriteOutcome::Deleted { removed: None, marker: None, freed: Vec::new() });
    };
    let newest = newest_version(&t.versions, bucket_id, key)?;
    let was_current = newest.is_some_and(|n| n.stamp == record.stamp);

    // Validation done: write.
    t.del_version(bucket_id, key, record.stamp)?;
    if record.version_id.is_null() {
        t.del_null(bucket_id, key)?;
    }
    if was_current {
        t.refresh_head(bucket_id, key)?;
    }
    let freed = t.free_version(&record)?;
    Ok(WriteOutcome::Deleted { removed: Some(record), marker: None, freed })
}

/// `WriteOp::RewrapVersionKey`: the version's wrapped data key becomes `to` if it is `from`.
pub(crate) fn rewrap_key(
    t: &mut WTables<'_>,
    bucket: &str,
    key: &str,
    version_id: &VersionId,
    from: &xregion_types::Encryption,
    to: xregion_types::Encryption,
) -> Result<WriteOutcome, MetaError> {
    let bucket_id = buckets::by_name(t, bucket)?.id;
    check_key(key)?;
    let newest = newest_version(&t.versions, bucket_id, key)?;
    let Some(mut record) = find_version(&t.versions, &t.nulls, bucket_id, key, version_id)? else {
        return Ok(WriteOutcome::Rewrapped(false));
    };
    let VersionKind::Object(object) = &mut record.kind else {
        return Ok(WriteOutcome::Rewrapped(false));
    };
    if object.encryption.as_ref() != Some(from) {
        return Ok(WriteOutcome::Rewrapped(false));
    }
    object.encryption = Some(to);
    t.put_version(bucket_id, key, &record)?;
    if newest.is_some_and(|n| n.stamp == record.stamp) {
        t.set_head(bucket_id, key, Some(&record))?;
    }
    Ok(WriteOutcome::Rewrapped(true))
}

/// Replaces the tags of a version without creating one (VER-10); delete markers have no tags
/// (VER-14).
///
/// TWO-8 [I] (last writer wins): every tag set carries the time it was set
/// ([`VersionRecord::tags_stamp`]). A replicated change (`replicated_ms`) is applied only if
/// `(time, tags)` is greater than the stored pair, else it is a no-op that succeeds; a change
/// made here is stamped now, or just after the stored time if this clock is behind. So when
/// both ends of a two-way pair change a version's tags before either change arrives at the
/// other end, both keep the later change (the tag sets break a tie) instead of swapping.
#[allow(clippy::too_many_arguments, reason = "mirrors the fields of WriteOp::SetObjectTags")]
pub(crate) fn set_tags(
    t: &mut WTables<'_>,
    bucket: &str,
    key: &str,
    version_id: Option<&VersionId>,
    tags: Vec<(String, String)>,
    replicated_ms: Option<i64>,
    outbox: Outbox,
) -> Result<WriteOutcome, MetaError> {
    let bucket = buckets::by_name(t, bucket)?;
    let outbox = outbox.resolve(bucket.replication.as_deref())?.tasks;
    check_key(key)?;
    let bucket_id = bucket.id;
    let newest = newest_version(&t.versions, bucket_id, key)?;
    let mut record = match version_id {
        None => newest.clone().ok_or(MetaError::NoSuchKey)?,
        Some(id) => find_version(&t.versions, &t.nulls, bucket_id, key, id)?.ok_or(MetaError::NoSuchVersion)?,
    };
    let stored_stamp = record.tags_stamp();
    let VersionKind::Object(object) = &mut record.kind else {
        return Err(MetaError::MethodNotAllowed);
    };
    let changed_ms = match replicated_ms {
        Some(ms) if (ms, &tags) <= (stored_stamp, &object.tags) => {
            // TWO-8: the stored tags are as new or newer; nothing to do.
            return Ok(WriteOutcome::Tags { version_id: record.version_id });
        }
        Some(ms) => ms,
        None => now_ms().max(stored_stamp.saturating_add(1)),
    };
    object.tags = tags;
    record.tags_changed_ms = Some(changed_ms);
    let is_current = newest.is_some_and(|n| n.stamp == record.stamp);
    // STS-8 [I]: a replicated tag change makes a completed version pending again until it is
    // applied; a failed version stays failed (STS-6). STS-10: a replica whose change is synced
    // back (TWO-4) reads PENDING until it is applied, also after an earlier failed sync.
    if !outbox.is_empty() {
        record.replication = match record.replication {
            ReplicationStatus::Completed => ReplicationStatus::Pending,
            ReplicationStatus::Replica | ReplicationStatus::ReplicaFailed => ReplicationStatus::ReplicaPending,
            other => other,
        };
    }

    // Validation done: write.
    t.put_version(bucket_id, key, &record)?;
    if is_current {
        t.set_head(bucket_id, key, Some(&record))?;
    }
    if !outbox.is_empty() {
        t.push_outbox(bucket_id, key, Some(&record.version_id), None, outbox)?;
    }
    Ok(WriteOutcome::Tags { version_id: record.version_id })
}
