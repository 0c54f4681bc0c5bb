//! The store suite: every VER rule `meta` implements (ids in test names), multipart, replicas,
//! the outbox, group commit under concurrency, and reopen.

use std::path::Path;
use std::sync::Arc;

use tempfile::TempDir;
use xregion_types::{
    BlobRef, BlobSegment, BucketName, BucketRecord, Encryption, ObjectData, ReplicationStatus, VersionId, VersionKind,
    VersionRecord, VersioningState,
};

use crate::{
    ListObjectsQuery, ListUploadsQuery, ListVersionsQuery, MetaError, MetaStore, PartRecord, Precondition,
    UploadRecord, WriteOp, WriteOutcome,
};

pub(crate) fn open() -> (TempDir, MetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(&dir.path().join("meta.redb")).unwrap();
    (dir, store)
}

pub(crate) fn w(store: &MetaStore, op: WriteOp) -> WriteOutcome {
    store.write_blocking(op).unwrap()
}

pub(crate) fn err(store: &MetaStore, op: WriteOp) -> MetaError {
    store.write_blocking(op).unwrap_err()
}

pub(crate) fn bucket(store: &MetaStore, name: &str, state: VersioningState) -> BucketRecord {
    let WriteOutcome::Bucket(record) =
        w(store, WriteOp::CreateBucket { name: BucketName::parse(name).unwrap(), created_ms: 1 })
    else {
        panic!("not a bucket")
    };
    if state == VersioningState::Unversioned {
        return record;
    }
    let WriteOutcome::Bucket(record) = w(store, WriteOp::SetVersioning { name: name.into(), state }) else {
        panic!("not a bucket")
    };
    record
}

pub(crate) fn data(etag: &str) -> ObjectData {
    ObjectData {
        size: 1,
        etag: etag.into(),
        storage_class: "STANDARD".into(),
        blob: BlobRef { segments: vec![seg(&format!("blob-{etag}"))] },
        ..ObjectData::default()
    }
}

fn seg(id: &str) -> BlobSegment {
    BlobSegment { id: id.into(), len: 1 }
}

pub(crate) fn put_op(bucket: &str, key: &str, etag: &str) -> WriteOp {
    WriteOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        data: data(etag),
        inline: None,
        replica: None,
        precondition: None,
        outbox: Vec::new().into(),
    }
}

pub(crate) fn put(store: &MetaStore, bucket: &str, key: &str, etag: &str) -> (VersionRecord, Vec<BlobSegment>) {
    match w(store, put_op(bucket, key, etag)) {
        WriteOutcome::Version { record, freed } => (record, freed),
        other => panic!("unexpected {other:?}"),
    }
}

fn delete(
    store: &MetaStore,
    bucket: &str,
    key: &str,
) -> (Option<VersionRecord>, Option<VersionRecord>, Vec<BlobSegment>) {
    match w(
        store,
        WriteOp::DeleteObject { bucket: bucket.into(), key: key.into(), outbox: Vec::new().into(), if_current: None },
    ) {
        WriteOutcome::Deleted { removed, marker, freed } => (removed, marker, freed),
        other => panic!("unexpected {other:?}"),
    }
}

fn delete_version(
    store: &MetaStore,
    bucket: &str,
    key: &str,
    id: &VersionId,
) -> (Option<VersionRecord>, Vec<BlobSegment>) {
    match w(store, WriteOp::DeleteVersion { bucket: bucket.into(), key: key.into(), version_id: id.clone() }) {
        WriteOutcome::Deleted { removed, marker: None, freed } => (removed, freed),
        other => panic!("unexpected {other:?}"),
    }
}

fn etag_of(record: &VersionRecord) -> &str {
    &record.object().unwrap().etag
}

fn all_versions(store: &MetaStore, bucket_id: u64) -> Vec<(String, VersionId, bool, bool)> {
    let page = store.list_versions(bucket_id, &ListVersionsQuery { max_keys: 1000, ..Default::default() }).unwrap();
    assert!(!page.is_truncated);
    page.entries
        .into_iter()
        .map(|e| (e.key, e.record.version_id.clone(), e.is_latest, e.record.is_delete_marker()))
        .collect()
}

fn listed_keys(store: &MetaStore, bucket_id: u64) -> Vec<String> {
    let page = store.list_objects(bucket_id, &ListObjectsQuery { max_keys: 1000, ..Default::default() }).unwrap();
    page.objects.into_iter().map(|(k, _)| k).collect()
}

/// A delete marker made only while the key's newest version is the one named (lifecycle
/// expiration decided on it): a version written since is never hidden, and nothing changes.
#[test]
fn delete_marker_if_current_refuses_when_a_newer_version_exists() {
    let (_dir, store) = open();
    let b = bucket(&store, "cond", VersioningState::Enabled);
    let (v1, _) = put(&store, "cond", "k", "a");
    let (v2, _) = put(&store, "cond", "k", "b");
    let op = |id: &VersionId| WriteOp::DeleteObject {
        bucket: "cond".into(),
        key: "k".into(),
        outbox: Vec::new().into(),
        if_current: Some(id.clone()),
    };
    assert!(matches!(err(&store, op(&v1.version_id)), MetaError::PreconditionFailed));
    assert_eq!(all_versions(&store, b.id).len(), 2);
    let WriteOutcome::Deleted { marker: Some(marker), .. } = w(&store, op(&v2.version_id)) else { panic!("no marker") };
    assert_eq!(all_versions(&store, b.id)[0].1, marker.version_id);
}

// ----- buckets ---------------------------------------------------------------------------

#[test]
fn buckets_create_list_delete_and_ids_are_never_reused() {
    let (_dir, store) = open();
    let b = bucket(&store, "bbb", VersioningState::Unversioned);
    let a = bucket(&store, "aaa", VersioningState::Unversioned);
    assert_eq!(b.versioning, VersioningState::Unversioned); // VER-1: initial state
    let names: Vec<_> = store.list_buckets().unwrap().into_iter().map(|b| b.name.to_string()).collect();
    assert_eq!(names, ["aaa", "bbb"]);
    match err(&store, WriteOp::CreateBucket { name: BucketName::parse("aaa").unwrap(), created_ms: 9 }) {
        MetaError::BucketAlreadyExists(existing) => assert_eq!(*existing, a),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(w(&store, WriteOp::DeleteBucket { name: "aaa".into() }), WriteOutcome::Freed(vec![]));
    assert_eq!(store.get_bucket("aaa").unwrap(), None);
    assert_eq!(err(&store, WriteOp::DeleteBucket { name: "aaa".into() }), MetaError::NoSuchBucket);
    let again = bucket(&store, "aaa", VersioningState::Unversioned);
    assert!(again.id != a.id && again.id != b.id);
}

#[test]
fn bucket_tags_set_and_delete() {
    let (_dir, store) = open();
    bucket(&store, "tags", VersioningState::Unversioned);
    let tags = vec![("a".to_string(), "1".to_string())];
    w(&store, WriteOp::SetBucketTags { name: "tags".into(), tags: tags.clone() });
    assert_eq!(store.get_bucket("tags").unwrap().unwrap().tags, tags);
    w(&store, WriteOp::SetBucketTags { name: "tags".into(), tags: vec![] });
    assert!(store.get_bucket("tags").unwrap().unwrap().tags.is_empty());
    assert_eq!(err(&store, WriteOp::SetBucketTags { name: "nope".into(), tags: vec![] }), MetaError::NoSuchBucket);
}

#[test]
fn ver2_transitions_and_no_way_back_to_unversioned() {
    let (_dir, store) = open();
    bucket(&store, "ver2", VersioningState::Unversioned);
    let set = |state| store.write_blocking(WriteOp::SetVersioning { name: "ver2".into(), state });
    assert!(matches!(set(VersioningState::Unversioned), Err(MetaError::InvalidArgument(_))));
    for state in [
        VersioningState::Suspended,
        VersioningState::Enabled,
        VersioningState::Suspended,
        VersioningState::Enabled,
        VersioningState::Enabled,
    ] {
        let Ok(WriteOutcome::Bucket(b)) = set(state) else { panic!() };
        assert_eq!(b.versioning, state);
    }
    assert_eq!(store.get_bucket("ver2").unwrap().unwrap().versioning, VersioningState::Enabled);
}

#[test]
fn ver4_no_suspend_with_replication_and_val2_replication_needs_enabled() {
    let (_dir, store) = open();
    bucket(&store, "rep", VersioningState::Unversioned);
    let set_rep =
        |config: Option<Vec<u8>>| store.write_blocking(WriteOp::SetReplication { name: "rep".into(), config });
    assert!(matches!(set_rep(Some(b"<x/>".to_vec())), Err(MetaError::InvalidRequest(_))));
    w(&store, WriteOp::SetVersioning { name: "rep".into(), state: VersioningState::Enabled });
    let Ok(WriteOutcome::Bucket(b)) = set_rep(Some(b"<x/>".to_vec())) else { panic!() };
    assert_eq!(b.replication.as_deref(), Some(&b"<x/>"[..]));
    match err(&store, WriteOp::SetVersioning { name: "rep".into(), state: VersioningState::Suspended }) {
        MetaError::InvalidBucketState(msg) => {
            assert!(msg.starts_with("A replication configuration is present"))
        }
        other => panic!("unexpected {other:?}"),
    }
    // Enabled again is a no-op success.
    w(&store, WriteOp::SetVersioning { name: "rep".into(), state: VersioningState::Enabled });
    set_rep(None).unwrap();
    w(&store, WriteOp::SetVersioning { name: "rep".into(), state: VersioningState::Suspended });
}

#[test]
fn ver18_delete_bucket_refuses_any_version_or_marker_and_aborts_uploads() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver18", VersioningState::Enabled);
    let (_, marker, _) = delete(&store, "ver18", "gone"); // only a delete marker
    assert_eq!(err(&store, WriteOp::DeleteBucket { name: "ver18".into() }), MetaError::BucketNotEmpty);
    let (v, _) = put(&store, "ver18", "k", "e1");
    delete_version(&store, "ver18", "gone", &marker.unwrap().version_id);
    assert_eq!(err(&store, WriteOp::DeleteBucket { name: "ver18".into() }), MetaError::BucketNotEmpty);
    delete_version(&store, "ver18", "k", &v.version_id);
    w(&store, WriteOp::CreateUpload { record: upload(b.id, "up", "u1") });
    w(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(1, "p1") });
    w(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(2, "p2") });
    assert_eq!(
        w(&store, WriteOp::DeleteBucket { name: "ver18".into() }),
        WriteOutcome::Freed(vec![seg("p1"), seg("p2")])
    );
    assert_eq!(store.get_upload("u1").unwrap(), None);
    assert_eq!(store.get_bucket("ver18").unwrap(), None);
}

// ----- writes ----------------------------------------------------------------------------

#[test]
fn ver8_enabled_every_write_is_a_new_current_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver8", VersioningState::Enabled);
    let (v1, f1) = put(&store, "ver8", "k", "e1");
    let (v2, f2) = put(&store, "ver8", "k", "e2");
    assert!(f1.is_empty() && f2.is_empty());
    assert!(!v1.version_id.is_null() && v1.version_id != v2.version_id);
    assert!(v2.stamp > v1.stamp);
    // VER-5: generated ids carry the stamp and parse back.
    for v in [&v1, &v2] {
        assert_eq!(v.version_id.stamp(), Some(v.stamp));
        assert_eq!(VersionId::parse(v.version_id.as_str()).unwrap(), v.version_id);
    }
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(v2.clone()));
    assert_eq!(store.get_version(b.id, "k", Some(&v1.version_id)).unwrap(), Some(v1.clone()));
    assert_eq!(store.get_version(b.id, "k", Some(&VersionId::Null)).unwrap(), None);
    assert_eq!(
        all_versions(&store, b.id),
        vec![("k".into(), v2.version_id, true, false), ("k".into(), v1.version_id, false, false)]
    );
}

#[test]
fn ver6_ver9_suspended_writes_replace_the_null_version_only() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver9", VersioningState::Unversioned);
    // VER-6: written while unversioned → null id; enabling keeps it.
    let (n1, _) = put(&store, "ver9", "k", "n1");
    assert_eq!(n1.version_id, VersionId::Null);
    w(&store, WriteOp::SetVersioning { name: "ver9".into(), state: VersioningState::Enabled });
    let (v1, _) = put(&store, "ver9", "k", "v1");
    assert_eq!(store.get_version(b.id, "k", Some(&VersionId::Null)).unwrap(), Some(n1.clone()));
    w(&store, WriteOp::SetVersioning { name: "ver9".into(), state: VersioningState::Suspended });
    // VER-9: the older null version is replaced; v1 is untouched; the new null is current.
    let (n2, freed) = put(&store, "ver9", "k", "n2");
    assert_eq!(freed, vec![seg("blob-n1")]);
    assert_eq!(n2.version_id, VersionId::Null);
    assert!(n2.stamp > v1.stamp, "a rewritten null version is the newest");
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(n2.clone()));
    let (n3, freed) = put(&store, "ver9", "k", "n3");
    assert_eq!(freed, vec![seg("blob-n2")]);
    assert_eq!(
        all_versions(&store, b.id),
        vec![("k".into(), VersionId::Null, true, false), ("k".into(), v1.version_id.clone(), false, false)]
    );
    assert_eq!(etag_of(&store.get_version(b.id, "k", None).unwrap().unwrap()), "n3");
    // A null delete marker is replaced too.
    let (removed, marker, freed) = delete(&store, "ver9", "k");
    assert_eq!(removed.unwrap().stamp, n3.stamp);
    assert_eq!(freed, vec![seg("blob-n3")]);
    assert!(marker.unwrap().version_id.is_null());
    let (n4, freed) = put(&store, "ver9", "k", "n4");
    assert!(freed.is_empty());
    assert_eq!(
        all_versions(&store, b.id),
        vec![("k".into(), VersionId::Null, true, false), ("k".into(), v1.version_id, false, false)]
    );
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(n4));
}

#[test]
fn ver9_unversioned_overwrite_keeps_one_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "unv", VersioningState::Unversioned);
    put(&store, "unv", "k", "a");
    let (second, freed) = put(&store, "unv", "k", "b");
    assert_eq!(freed, vec![seg("blob-a")]);
    assert_eq!(all_versions(&store, b.id), vec![("k".into(), VersionId::Null, true, false)]);
    assert_eq!(store.get_version(b.id, "k", Some(&VersionId::Null)).unwrap(), Some(second));
}

#[test]
fn ver11_conditional_writes() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver11", VersioningState::Enabled);
    let cond = |key: &str, etag: &str, p: Precondition| WriteOp::PutVersion {
        bucket: "ver11".into(),
        key: key.into(),
        data: data(etag),
        inline: None,
        replica: None,
        precondition: Some(p),
        outbox: vec![b"task".to_vec()].into(),
    };
    // Missing key: If-None-Match * succeeds, If-Match is NoSuchKey.
    assert_eq!(err(&store, cond("k", "x", Precondition::IfMatch("e".into()))), MetaError::NoSuchKey);
    w(&store, cond("k", "e1", Precondition::IfNoneMatchAny));
    assert_eq!(err(&store, cond("k", "x", Precondition::IfNoneMatchAny)), MetaError::PreconditionFailed);
    assert_eq!(err(&store, cond("k", "x", Precondition::IfMatch("zzz".into()))), MetaError::PreconditionFailed);
    w(&store, cond("k", "e2", Precondition::IfMatch("\"e1\"".into())));
    // Current delete marker: counts as absent for If-None-Match, NoSuchKey for If-Match.
    delete(&store, "ver11", "k");
    assert_eq!(err(&store, cond("k", "x", Precondition::IfMatch("e2".into()))), MetaError::NoSuchKey);
    w(&store, cond("k", "e3", Precondition::IfNoneMatchAny));
    // Failed conditional writes left no version and no outbox task behind.
    assert_eq!(all_versions(&store, b.id).len(), 4);
    assert_eq!(store.outbox_len().unwrap(), 3);
}

#[test]
fn keys_are_validated() {
    let (_dir, store) = open();
    bucket(&store, "keys", VersioningState::Enabled);
    assert!(matches!(err(&store, put_op("keys", "", "e")), MetaError::InvalidArgument(_)));
    assert!(matches!(err(&store, put_op("keys", &"k".repeat(1025), "e")), MetaError::InvalidArgument(_)));
    put(&store, "keys", &"k".repeat(1024), "e");
    assert_eq!(err(&store, put_op("nope", "k", "e")), MetaError::NoSuchBucket);
}

// ----- deletes ---------------------------------------------------------------------------

#[test]
fn ver15_enabled_delete_always_adds_a_marker_and_ver19_hides_the_key() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver15", VersioningState::Enabled);
    let (v1, _) = put(&store, "ver15", "k", "e1");
    let (removed, marker, freed) = delete(&store, "ver15", "k");
    let marker = marker.unwrap();
    assert!(removed.is_none() && freed.is_empty());
    assert!(marker.is_delete_marker() && !marker.version_id.is_null() && marker.stamp > v1.stamp);
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(marker.clone()));
    assert_eq!(listed_keys(&store, b.id), Vec::<String>::new()); // VER-19
    // Deleting again adds another marker; so does deleting a key that never existed.
    let (_, m2, _) = delete(&store, "ver15", "k");
    let (_, m3, _) = delete(&store, "ver15", "never");
    assert!(m2.unwrap().stamp > marker.stamp && m3.is_some());
    assert_eq!(
        all_versions(&store, b.id).into_iter().map(|(k, _, latest, dm)| (k, latest, dm)).collect::<Vec<_>>(),
        vec![
            ("k".into(), true, true),
            ("k".into(), false, true),
            ("k".into(), false, false),
            ("never".into(), true, true)
        ]
    );
}

#[test]
fn ver15_suspended_delete_replaces_null_with_null_marker() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver15s", VersioningState::Enabled);
    let (v1, _) = put(&store, "ver15s", "k", "e1");
    w(&store, WriteOp::SetVersioning { name: "ver15s".into(), state: VersioningState::Suspended });
    put(&store, "ver15s", "k", "n");
    let (removed, marker, freed) = delete(&store, "ver15s", "k");
    assert_eq!(etag_of(&removed.unwrap()), "n");
    assert_eq!(freed, vec![seg("blob-n")]);
    let marker = marker.unwrap();
    assert!(marker.version_id.is_null() && marker.is_delete_marker());
    assert_eq!(
        all_versions(&store, b.id),
        vec![("k".into(), VersionId::Null, true, true), ("k".into(), v1.version_id, false, false)]
    );
    // Without a null version, only the marker is added.
    let (removed, marker, _) = delete(&store, "ver15s", "other");
    assert!(removed.is_none() && marker.is_some());
}

#[test]
fn ver15_unversioned_delete_removes_permanently() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver15u", VersioningState::Unversioned);
    put(&store, "ver15u", "k", "e");
    let (removed, marker, freed) = delete(&store, "ver15u", "k");
    assert!(removed.is_some() && marker.is_none());
    assert_eq!(freed, vec![seg("blob-e")]);
    assert!(all_versions(&store, b.id).is_empty() && listed_keys(&store, b.id).is_empty());
    assert_eq!(delete(&store, "ver15u", "k"), (None, None, vec![]));
    // The bucket is empty again.
    w(&store, WriteOp::DeleteBucket { name: "ver15u".into() });
}

#[test]
fn ver16_delete_version_and_undelete() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver16", VersioningState::Enabled);
    let (v1, _) = put(&store, "ver16", "k", "e1");
    let (v2, _) = put(&store, "ver16", "k", "e2");
    let (_, marker, _) = delete(&store, "ver16", "k");
    let marker = marker.unwrap();
    assert!(listed_keys(&store, b.id).is_empty());
    // Removing the current delete marker makes the next newest current ("undelete").
    let (removed, freed) = delete_version(&store, "ver16", "k", &marker.version_id);
    assert!(removed.unwrap().is_delete_marker() && freed.is_empty());
    assert_eq!(listed_keys(&store, b.id), ["k"]);
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(v2.clone()));
    // Removing a noncurrent version leaves the current one.
    let (removed, freed) = delete_version(&store, "ver16", "k", &v1.version_id);
    assert_eq!(removed, Some(v1.clone()));
    assert_eq!(freed, vec![seg("blob-e1")]);
    // Unknown (well-formed) version: Ok, nothing removed (idempotent).
    assert_eq!(delete_version(&store, "ver16", "k", &v1.version_id), (None, vec![]));
    assert_eq!(delete_version(&store, "ver16", "k", &VersionId::Null), (None, vec![]));
    // A malformed id is InvalidArgument.
    let bad = VersionId::Id("not-an-id".into());
    assert!(matches!(
        err(&store, WriteOp::DeleteVersion { bucket: "ver16".into(), key: "k".into(), version_id: bad }),
        MetaError::InvalidArgument(_)
    ));
    // Removing the last version removes the key.
    delete_version(&store, "ver16", "k", &v2.version_id);
    assert!(listed_keys(&store, b.id).is_empty() && all_versions(&store, b.id).is_empty());
}

#[test]
fn ver16_version_id_null_targets_the_null_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "ver16n", VersioningState::Unversioned);
    let (n, _) = put(&store, "ver16n", "k", "n");
    w(&store, WriteOp::SetVersioning { name: "ver16n".into(), state: VersioningState::Enabled });
    let (v, _) = put(&store, "ver16n", "k", "v");
    let (removed, freed) = delete_version(&store, "ver16n", "k", &VersionId::Null);
    assert_eq!(removed, Some(n));
    assert_eq!(freed, vec![seg("blob-n")]);
    assert_eq!(all_versions(&store, b.id), vec![("k".into(), v.version_id, true, false)]);
}

// ----- tags ------------------------------------------------------------------------------

/// A master key rotation's re-wrap replaces a version's wrapped key only if it still has the
/// one the caller read (compare and set), in the version row and, for the current version,
/// in the listing's head row; a delete marker or a gone version is a no-op.
#[test]
fn rewrap_version_key_is_compare_and_set() {
    let (_dir, store) = open();
    let b = bucket(&store, "rewrap", VersioningState::Enabled);
    let old = Encryption { key_id: 1, wrapped_key: vec![1; 60], labels: Vec::new() };
    let new = Encryption { key_id: 2, wrapped_key: vec![2; 60], labels: Vec::new() };
    let put_encrypted = |etag: &str| {
        let mut op = put_op("rewrap", "k", etag);
        if let WriteOp::PutVersion { data, .. } = &mut op {
            data.encryption = Some(old.clone());
        }
        match w(&store, op) {
            WriteOutcome::Version { record, .. } => record,
            other => panic!("unexpected {other:?}"),
        }
    };
    let (v1, v2) = (put_encrypted("e1"), put_encrypted("e2"));
    let rewrap = |version_id: &VersionId, from: &Encryption| {
        w(
            &store,
            WriteOp::RewrapVersionKey {
                bucket: "rewrap".into(),
                key: "k".into(),
                version_id: version_id.clone(),
                from: from.clone(),
                to: new.clone(),
            },
        )
    };
    assert_eq!(rewrap(&v1.version_id, &old), WriteOutcome::Rewrapped(true));
    assert_eq!(rewrap(&v1.version_id, &old), WriteOutcome::Rewrapped(false), "already re-wrapped");
    let stored = store.get_version(b.id, "k", Some(&v1.version_id)).unwrap().unwrap();
    assert_eq!(stored.object().and_then(|d| d.encryption.clone()), Some(new.clone()));
    assert_eq!(stored.object().map(|d| d.etag.as_str()), Some("e1"), "nothing else changes");
    let head = |store: &MetaStore| {
        let page = store.list_objects(b.id, &ListObjectsQuery { max_keys: 10, ..Default::default() }).unwrap();
        page.objects[0].1.object().and_then(|d| d.encryption.clone())
    };
    assert_eq!(head(&store), Some(old.clone()), "the current version is not re-wrapped yet");
    assert_eq!(rewrap(&v2.version_id, &old), WriteOutcome::Rewrapped(true));
    assert_eq!(head(&store), Some(new.clone()));
    let (_, marker, _) = delete(&store, "rewrap", "k");
    assert_eq!(rewrap(&marker.expect("a marker").version_id, &old), WriteOutcome::Rewrapped(false));
    delete_version(&store, "rewrap", "k", &v1.version_id);
    assert_eq!(rewrap(&v1.version_id, &new), WriteOutcome::Rewrapped(false), "a gone version");
}

#[test]
fn ver10_ver14_object_tags() {
    let (_dir, store) = open();
    let b = bucket(&store, "tags", VersioningState::Enabled);
    let (v1, _) = put(&store, "tags", "k", "e1");
    let (v2, _) = put(&store, "tags", "k", "e2");
    let tag = |version_id: Option<VersionId>, t: &str| {
        store.write_blocking(WriteOp::SetObjectTags {
            bucket: "tags".into(),
            key: "k".into(),
            version_id,
            tags: vec![("t".into(), t.into())],
            replicated_ms: None,
            outbox: vec![].into(),
        })
    };
    assert_eq!(tag(None, "cur").unwrap(), WriteOutcome::Tags { version_id: v2.version_id.clone() });
    assert_eq!(
        tag(Some(v1.version_id.clone()), "old").unwrap(),
        WriteOutcome::Tags { version_id: v1.version_id.clone() }
    );
    // VER-10: no new version; the listing copy sees the new tags.
    assert_eq!(all_versions(&store, b.id).len(), 2);
    let current = store.get_version(b.id, "k", None).unwrap().unwrap();
    assert_eq!(current.object().unwrap().tags, vec![("t".to_string(), "cur".to_string())]);
    assert_eq!(current.stamp, v2.stamp);
    let page = store.list_objects(b.id, &ListObjectsQuery { max_keys: 10, ..Default::default() }).unwrap();
    assert_eq!(page.objects[0].1, current);
    let old = store.get_version(b.id, "k", Some(&v1.version_id)).unwrap().unwrap();
    assert_eq!(old.object().unwrap().tags, vec![("t".to_string(), "old".to_string())]);
    // VER-14: delete markers have no tags.
    let (_, marker, _) = delete(&store, "tags", "k");
    assert_eq!(tag(None, "x").unwrap_err(), MetaError::MethodNotAllowed);
    assert_eq!(tag(marker.map(|m| m.version_id), "x").unwrap_err(), MetaError::MethodNotAllowed);
    assert_eq!(
        store
            .write_blocking(WriteOp::SetObjectTags {
                bucket: "tags".into(),
                key: "nokey".into(),
                version_id: None,
                tags: vec![],
                replicated_ms: None,
                outbox: vec![].into(),
            })
            .unwrap_err(),
        MetaError::NoSuchKey
    );
    let gone = VersionId::generate(1, [0; 12]);
    assert_eq!(tag(Some(gone), "x").unwrap_err(), MetaError::NoSuchVersion);
}

// ----- multipart -------------------------------------------------------------------------

pub(crate) fn upload(bucket_id: u64, key: &str, upload_id: &str) -> UploadRecord {
    UploadRecord {
        upload_id: upload_id.into(),
        bucket_id,
        key: key.into(),
        initiated_ms: 5,
        template: ObjectData { content_type: Some("text/plain".into()), ..ObjectData::default() },
        checksum_algorithm: None,
    }
}

fn part(n: u32, blob: &str) -> PartRecord {
    PartRecord {
        part_number: n,
        size: 1,
        etag: format!("etag{n}"),
        last_modified_ms: 7,
        blob: seg(blob),
        checksum: None,
    }
}

#[test]
fn multipart_lifecycle() {
    let (_dir, store) = open();
    let b = bucket(&store, "mpu", VersioningState::Enabled);
    let rec = upload(b.id, "big", "u1");
    assert_eq!(w(&store, WriteOp::CreateUpload { record: rec.clone() }), WriteOutcome::Upload(rec.clone()));
    assert!(matches!(err(&store, WriteOp::CreateUpload { record: rec.clone() }), MetaError::InvalidArgument(_)));
    assert_eq!(err(&store, WriteOp::CreateUpload { record: upload(999, "k", "u9") }), MetaError::NoSuchBucket);
    assert_eq!(store.get_upload("u1").unwrap(), Some(rec));
    for (n, blob) in [(1, "p1"), (2, "p2"), (3, "p3"), (4, "p4")] {
        assert_eq!(
            w(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(n, blob) }),
            WriteOutcome::Freed(vec![])
        );
    }
    // Replacing a part frees the old blob.
    assert_eq!(
        w(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(2, "p2b") }),
        WriteOutcome::Freed(vec![seg("p2")])
    );
    assert!(matches!(
        err(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(0, "x") }),
        MetaError::InvalidArgument(_)
    ));
    assert!(matches!(
        err(&store, WriteOp::PutPart { upload_id: "u1".into(), part: part(10_001, "x") }),
        MetaError::InvalidArgument(_)
    ));
    assert_eq!(err(&store, WriteOp::PutPart { upload_id: "nope".into(), part: part(1, "x") }), MetaError::NoSuchUpload);
    // ListParts pagination.
    let (first, more) = store.list_parts("u1", 0, 2).unwrap();
    assert_eq!(first.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 2]);
    assert!(more);
    let (rest, more) = store.list_parts("u1", 2, 2).unwrap();
    assert_eq!(rest.iter().map(|p| p.part_number).collect::<Vec<_>>(), [3, 4]);
    assert!(!more);
    assert_eq!(store.list_parts("nope", 0, 2).unwrap_err(), MetaError::NoSuchUpload);

    let complete = |used: Vec<u32>| WriteOp::CompleteUpload {
        upload_id: "u1".into(),
        data: ObjectData {
            etag: "abc-2".into(),
            size: 2,
            blob: BlobRef { segments: vec![seg("p1"), seg("p2b")] },
            part_sizes: vec![1, 1],
            ..ObjectData::default()
        },
        used_parts: used,
        precondition: None,
        outbox: vec![].into(),
    };
    // A missing part fails and leaves the upload in place.
    assert!(matches!(err(&store, complete(vec![1, 5])), MetaError::InvalidPart(_)));
    assert!(store.get_upload("u1").unwrap().is_some());
    let WriteOutcome::Version { record, freed } = w(&store, complete(vec![1, 2])) else { panic!() };
    assert_eq!(freed, vec![seg("p3"), seg("p4")]);
    assert_eq!(etag_of(&record), "abc-2");
    assert_eq!(store.get_version(b.id, "big", None).unwrap(), Some(record));
    assert_eq!(store.get_upload("u1").unwrap(), None);
    assert_eq!(store.list_parts("u1", 0, 10).unwrap_err(), MetaError::NoSuchUpload);
    assert_eq!(err(&store, complete(vec![1])), MetaError::NoSuchUpload);

    // Abort frees every part.
    w(&store, WriteOp::CreateUpload { record: upload(b.id, "big", "u2") });
    w(&store, WriteOp::PutPart { upload_id: "u2".into(), part: part(1, "q1") });
    assert_eq!(w(&store, WriteOp::AbortUpload { upload_id: "u2".into() }), WriteOutcome::Freed(vec![seg("q1")]));
    assert_eq!(err(&store, WriteOp::AbortUpload { upload_id: "u2".into() }), MetaError::NoSuchUpload);
}

#[test]
fn complete_upload_honours_preconditions_atomically() {
    let (_dir, store) = open();
    let b = bucket(&store, "mpuc", VersioningState::Enabled);
    put(&store, "mpuc", "k", "e1");
    w(&store, WriteOp::CreateUpload { record: upload(b.id, "k", "u") });
    w(&store, WriteOp::PutPart { upload_id: "u".into(), part: part(1, "p1") });
    let op = WriteOp::CompleteUpload {
        upload_id: "u".into(),
        data: data("m"),
        used_parts: vec![1],
        precondition: Some(Precondition::IfNoneMatchAny),
        outbox: vec![b"t".to_vec()].into(),
    };
    assert_eq!(err(&store, op), MetaError::PreconditionFailed);
    assert!(store.get_upload("u").unwrap().is_some());
    assert_eq!(store.list_parts("u", 0, 10).unwrap().0.len(), 1);
    assert_eq!(store.outbox_len().unwrap(), 0);
    assert_eq!(all_versions(&store, b.id).len(), 1);
}

#[test]
fn list_uploads_orders_by_key_then_id_with_markers_and_prefixes() {
    let (_dir, store) = open();
    let b = bucket(&store, "lmu", VersioningState::Enabled);
    for (key, id) in [("a", "2"), ("a", "1"), ("d/x", "3"), ("d/y", "4"), ("e", "5")] {
        w(&store, WriteOp::CreateUpload { record: upload(b.id, key, id) });
    }
    let q = |key_marker: Option<&str>, upload_id_marker: Option<&str>, max: usize| ListUploadsQuery {
        prefix: String::new(),
        delimiter: Some("/".into()),
        key_marker: key_marker.map(Into::into),
        upload_id_marker: upload_id_marker.map(Into::into),
        max_uploads: max,
    };
    let page = store.list_uploads(b.id, &q(None, None, 2)).unwrap();
    let ids: Vec<_> = page.uploads.iter().map(|u| u.upload_id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert!(page.is_truncated);
    assert_eq!((page.next_key_marker.as_deref(), page.next_upload_id_marker.as_deref()), (Some("a"), Some("2")));
    let page = store.list_uploads(b.id, &q(Some("a"), Some("1"), 2)).unwrap();
    assert_eq!(page.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["2"]);
    assert_eq!(page.common_prefixes, ["d/"]);
    assert_eq!((page.next_key_marker.as_deref(), page.next_upload_id_marker.as_deref()), (Some("d/"), None));
    let page = store.list_uploads(b.id, &q(Some("d/"), None, 2)).unwrap();
    assert_eq!(page.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["5"]);
    assert!(!page.is_truncated && page.common_prefixes.is_empty());
    // key-marker alone skips every upload of that key.
    let page = store
        .list_uploads(b.id, &ListUploadsQuery { key_marker: Some("a".into()), max_uploads: 10, ..Default::default() })
        .unwrap();
    assert_eq!(page.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["3", "4", "5"]);
}

// ----- replicas and the outbox -----------------------------------------------------------

fn replica_op(bucket: &str, key: &str, record: &VersionRecord, etag: &str) -> WriteOp {
    WriteOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        data: data(etag),
        inline: None,
        replica: Some(record.clone()),
        precondition: None,
        outbox: vec![].into(),
    }
}

fn source_record(stamp: u64, kind: VersionKind) -> VersionRecord {
    VersionRecord {
        version_id: VersionId::generate(stamp, [7; 12]),
        stamp,
        last_modified_ms: 42,
        kind,
        replication: ReplicationStatus::Replica,
        replication_targets: Vec::new(),
        tags_changed_ms: None,
    }
}

#[test]
fn replicas_keep_source_identity_and_are_idempotent() {
    let (_dir, store) = open();
    let b = bucket(&store, "dst", VersioningState::Enabled);
    let (local, _) = put(&store, "dst", "k", "local");
    // An older replica lands below the local version and does not become current.
    let old = source_record(local.stamp - 1, VersionKind::Object(Box::default()));
    let WriteOutcome::Version { record, freed } = w(&store, replica_op("dst", "k", &old, "r1")) else { panic!() };
    assert!(freed.is_empty());
    assert_eq!(
        (record.version_id.clone(), record.stamp, record.last_modified_ms),
        (old.version_id.clone(), old.stamp, 42)
    );
    assert_eq!(record.replication, ReplicationStatus::Replica);
    assert_eq!(etag_of(&record), "r1");
    assert_eq!(store.get_version(b.id, "k", None).unwrap(), Some(local.clone()));
    // Replay: nothing changes, the new blob is reported freed.
    let WriteOutcome::Version { record: again, freed } = w(&store, replica_op("dst", "k", &old, "r1b")) else {
        panic!()
    };
    assert_eq!(again, record);
    assert_eq!(freed, vec![seg("blob-r1b")]);
    // A newer replica becomes current, and the clock moves past it.
    let far = local.stamp + 10_000_000_000;
    let newer = source_record(far, VersionKind::Object(Box::default()));
    w(&store, replica_op("dst", "k", &newer, "r2"));
    assert_eq!(store.get_version(b.id, "k", None).unwrap().unwrap().version_id, newer.version_id);
    let (after, _) = put(&store, "dst", "k2", "x");
    assert!(after.stamp > far);
    // A replicated delete marker becomes current and hides the key.
    let dm = source_record(far + 1, VersionKind::DeleteMarker);
    let WriteOutcome::Version { record, .. } = w(&store, replica_op("dst", "k", &dm, "ignored")) else { panic!() };
    assert!(record.is_delete_marker());
    assert_eq!(listed_keys(&store, b.id), ["k2"]);
    // Id and stamp must agree; a different version at the same stamp is refused.
    let mut bad = source_record(5, VersionKind::Object(Box::default()));
    bad.stamp = 6;
    assert!(matches!(err(&store, replica_op("dst", "k", &bad, "x")), MetaError::InvalidArgument(_)));
    let mut clash = source_record(local.stamp, VersionKind::Object(Box::default()));
    clash.version_id = VersionId::generate(local.stamp, [1; 12]);
    assert!(matches!(err(&store, replica_op("dst", "k", &clash, "x")), MetaError::InvalidArgument(_)));
}

/// `write_all`: one round trip, one result per op in order, and each op succeeds or fails
/// alone exactly as if sent on its own (a refused op leaves no trace).
#[tokio::test]
async fn write_all_answers_each_op_as_if_sent_alone() {
    let (_dir, store) = open();
    let b = bucket(&store, "many", VersioningState::Enabled);
    let older = source_record(5, VersionKind::Object(Box::default()));
    let mut bad = source_record(7, VersionKind::Object(Box::default()));
    bad.stamp = 8;
    let marker = source_record(9, VersionKind::DeleteMarker);
    let results = store
        .write_all(vec![
            replica_op("many", "a", &older, "e1"),
            replica_op("many", "b", &bad, "e2"),
            replica_op("nope", "c", &older, "e3"),
            replica_op("many", "a", &marker, "ignored"),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], Ok(WriteOutcome::Version { record, .. }) if record.version_id == older.version_id));
    assert!(matches!(results[1], Err(MetaError::InvalidArgument(_))));
    assert!(matches!(results[2], Err(MetaError::NoSuchBucket)));
    assert!(matches!(&results[3], Ok(WriteOutcome::Version { record, .. }) if record.is_delete_marker()));
    // The later op saw the earlier one: the marker is current over "a", and "b" never landed.
    let versions = all_versions(&store, b.id);
    assert_eq!(versions.iter().filter(|v| v.0 == "a").count(), 2);
    assert!(versions.iter().all(|v| v.0 != "b"));
    assert_eq!(store.get_version(b.id, "a", None).unwrap().unwrap().version_id, marker.version_id);
    assert!(store.write_all(Vec::new()).await.unwrap().is_empty());
}

#[test]
fn null_replicas_replace_only_older_null_versions() {
    let (_dir, store) = open();
    let b = bucket(&store, "dstn", VersioningState::Enabled);
    let null_at = |stamp| VersionRecord {
        version_id: VersionId::Null,
        stamp,
        last_modified_ms: 1,
        kind: VersionKind::Object(Box::default()),
        replication: ReplicationStatus::Replica,
        replication_targets: Vec::new(),
        tags_changed_ms: None,
    };
    w(&store, replica_op("dstn", "k", &null_at(100), "a"));
    let WriteOutcome::Version { record, freed } = w(&store, replica_op("dstn", "k", &null_at(200), "b")) else {
        panic!()
    };
    assert_eq!((record.stamp, freed), (200, vec![seg("blob-a")]));
    let WriteOutcome::Version { record, freed } = w(&store, replica_op("dstn", "k", &null_at(150), "c")) else {
        panic!()
    };
    assert_eq!((record.stamp, freed), (200, vec![seg("blob-c")]));
    assert_eq!(all_versions(&store, b.id), vec![("k".into(), VersionId::Null, true, false)]);
}

#[test]
fn outbox_tasks_commit_with_their_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "src", VersioningState::Enabled);
    let WriteOutcome::Version { record, .. } = w(
        &store,
        WriteOp::PutVersion {
            bucket: "src".into(),
            key: "k".into(),
            data: data("e"),
            inline: None,
            replica: None,
            precondition: None,
            outbox: vec![b"to-eu".to_vec(), b"to-ap".to_vec()].into(),
        },
    ) else {
        panic!()
    };
    assert_eq!(record.replication, ReplicationStatus::Pending);
    let (_, marker, _) = match w(
        &store,
        WriteOp::DeleteObject {
            bucket: "src".into(),
            key: "k".into(),
            outbox: vec![b"dm".to_vec()].into(),
            if_current: None,
        },
    ) {
        WriteOutcome::Deleted { removed, marker, freed } => (removed, marker, freed),
        other => panic!("{other:?}"),
    };
    let marker = marker.unwrap();
    assert_eq!(marker.replication, ReplicationStatus::Pending);
    assert_eq!(store.outbox_len().unwrap(), 3);
    let entries = store.list_outbox(None, 10).unwrap();
    let summary: Vec<_> =
        entries.iter().map(|e| (e.seq, e.bucket_id, e.key.as_str(), e.version_id.clone(), e.task.as_slice())).collect();
    assert_eq!(
        summary,
        vec![
            (1, b.id, "k", Some(record.version_id.clone()), &b"to-eu"[..]),
            (2, b.id, "k", Some(record.version_id.clone()), &b"to-ap"[..]),
            (3, b.id, "k", Some(marker.version_id.clone()), &b"dm"[..]),
        ]
    );
    assert_eq!(store.list_outbox(Some(2), 10).unwrap().len(), 1);
    // Without tasks, the version is not subject to replication.
    let (plain, _) = put(&store, "src", "k2", "e");
    assert_eq!(plain.replication, ReplicationStatus::None);
}

fn put_with_tasks(store: &MetaStore, bucket: &str, key: &str, tasks: &[&str]) -> VersionRecord {
    let op = WriteOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        data: data("e"),
        inline: None,
        replica: None,
        precondition: None,
        outbox: tasks.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>().into(),
    };
    match w(store, op) {
        WriteOutcome::Version { record, .. } => record,
        other => panic!("unexpected {other:?}"),
    }
}

/// Writes `source` (its id and stamp) as a replica (status REPLICA) of `key` in `bucket`.
fn replica_of(source: &VersionRecord, bucket: &str, key: &str) -> WriteOp {
    let mut replica = source.clone();
    replica.replication = ReplicationStatus::Replica;
    WriteOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        data: data("e"),
        inline: None,
        replica: Some(replica),
        precondition: None,
        outbox: Vec::new().into(),
    }
}

fn status(store: &MetaStore, bucket_id: u64, key: &str, id: &VersionId) -> ReplicationStatus {
    store.get_version(bucket_id, key, Some(id)).unwrap().unwrap().replication
}

fn finished(outcome: WriteOutcome) -> Option<ReplicationStatus> {
    match outcome {
        WriteOutcome::TaskFinished { status } => status,
        other => panic!("unexpected {other:?}"),
    }
}

/// STS-4/STS-7: a version is COMPLETED only when its last task completes; the head copy
/// (what ListObjects and GET of the current version read) follows.
#[test]
fn sts7_complete_task_aggregates_per_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "agg", VersioningState::Enabled);
    let v = put_with_tasks(&store, "agg", "k", &["eu", "ap"]);
    let other = put_with_tasks(&store, "agg", "k2", &["eu"]);
    assert_eq!(v.replication, ReplicationStatus::Pending);
    let seqs: Vec<u64> = store.list_outbox(None, 10).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 1 })), Some(ReplicationStatus::Pending));
    assert_eq!(status(&store, b.id, "k", &v.version_id), ReplicationStatus::Pending);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(ReplicationStatus::Completed));
    assert_eq!(status(&store, b.id, "k", &v.version_id), ReplicationStatus::Completed);
    let head = store.list_objects(b.id, &ListObjectsQuery { max_keys: 10, ..Default::default() }).unwrap();
    assert_eq!(head.objects[0].1.replication, ReplicationStatus::Completed);
    // Another version's task is untouched; idempotent replay of a finished seq is a no-op.
    assert_eq!(status(&store, b.id, "k2", &other.version_id), ReplicationStatus::Pending);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), None);
    assert_eq!(store.outbox_len().unwrap(), 1);
}

/// `FinishTasks` finishes each task as `CompleteTask`/`FailTask` would, in order, in one op:
/// the versions read the statuses the single ops leave (STS-7 aggregation included), an
/// unknown seq is a no-op, and the failure is recorded with its reason.
#[test]
fn finish_tasks_is_complete_and_fail_task_in_order() {
    let (_dir, store) = open();
    let b = bucket(&store, "many", VersioningState::Enabled);
    let v = put_with_tasks(&store, "many", "k", &["eu", "ap"]);
    let other = put_with_tasks(&store, "many", "k2", &["eu"]);
    use ReplicationStatus::{Completed, Failed, Pending};
    let finished = |tasks| match w(&store, WriteOp::FinishTasks { tasks }) {
        WriteOutcome::TasksFinished { finished } => finished,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(finished(vec![(1, None), (99, None)]), [true, false]);
    assert_eq!(status(&store, b.id, "k", &v.version_id), Pending);
    let tasks = vec![(2, None), (3, Some("DstBucketUnversioned".to_owned()))];
    assert_eq!(finished(tasks), [true, true]);
    assert_eq!(status(&store, b.id, "k", &v.version_id), Completed);
    assert_eq!(status(&store, b.id, "k2", &other.version_id), Failed);
    assert_eq!(store.outbox_len().unwrap(), 0);
    let failures = store.list_failures(None, 10).unwrap();
    assert_eq!((failures.len(), failures[0].entry.seq, failures[0].reason.as_str()), (1, 3, "DstBucketUnversioned"));
    // Replaying the whole op changes nothing.
    assert_eq!(finished(vec![(1, None), (3, Some("x".to_owned()))]), [false, false]);
    assert_eq!(store.list_failures(None, 10).unwrap().len(), 1);
}

/// BAT-1/BAT-3: `ReplicateVersion` queues tasks for an existing version or delete marker
/// whose status (as it reads) is asked for, marks it `Pending`, and removes the failures it
/// supersedes; a version with tasks in flight, another status or an empty plan is left alone.
#[test]
fn bat1_replicate_version_queues_existing_versions_once() {
    use ReplicationStatus::{Completed, Failed, Pending};
    let (_dir, store) = open();
    let b = bucket(&store, "batch", VersioningState::Enabled);
    let (old, _) = put(&store, "batch", "k", "e");
    assert_eq!(old.replication, ReplicationStatus::None);
    let marker = match w(
        &store,
        WriteOp::DeleteObject {
            bucket: "batch".into(),
            key: "k".into(),
            outbox: crate::Outbox::default(),
            if_current: None,
        },
    ) {
        WriteOutcome::Deleted { marker: Some(m), .. } => m,
        other => panic!("unexpected {other:?}"),
    };
    let again = |id: &VersionId, statuses: &[ReplicationStatus], tasks: &[&str], clear: Vec<u64>| {
        let op = WriteOp::ReplicateVersion {
            bucket: "batch".into(),
            key: "k".into(),
            version_id: id.clone(),
            statuses: statuses.to_vec(),
            outbox: tasks.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>().into(),
            clear_failures: clear,
        };
        match w(&store, op) {
            WriteOutcome::Queued(queued) => queued,
            other => panic!("unexpected {other:?}"),
        }
    };
    let none = [ReplicationStatus::None];
    assert!(!again(&old.version_id, &none, &[], vec![]), "an empty plan queues nothing");
    assert!(!again(&old.version_id, &[Failed], &["eu"], vec![]), "another status");
    assert!(again(&old.version_id, &none, &["eu"], vec![]));
    assert!(again(&marker.version_id, &none, &["eu"], vec![]), "a delete marker");
    assert_eq!(status(&store, b.id, "k", &old.version_id), Pending);
    assert!(!again(&old.version_id, &[ReplicationStatus::None, Pending], &["eu"], vec![]), "in flight");
    let queued = store.list_outbox(None, 10).unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].version_id.as_ref(), Some(&old.version_id));
    assert_eq!(queued[1].version_id.as_ref(), Some(&marker.version_id));

    // It fails; re-driving it removes the failure; then it completes.
    let fail = vec![(queued[0].seq, Some("DstBucketUnversioned".to_owned())), (queued[1].seq, None)];
    w(&store, WriteOp::FinishTasks { tasks: fail });
    assert_eq!(status(&store, b.id, "k", &old.version_id), Failed);
    assert_eq!(status(&store, b.id, "k", &marker.version_id), Completed);
    assert_eq!(store.list_failures(None, 10).unwrap().len(), 1);
    assert!(again(&old.version_id, &[Failed], &["eu"], vec![queued[0].seq]));
    assert_eq!(status(&store, b.id, "k", &old.version_id), Pending);
    assert!(store.list_failures(None, 10).unwrap().is_empty());
    let seq = store.list_outbox(None, 10).unwrap()[0].seq;
    w(&store, WriteOp::CompleteTask { seq });
    assert_eq!(status(&store, b.id, "k", &old.version_id), Completed);
    assert_eq!(
        store.get_version(b.id, "k", Some(&old.version_id)).unwrap().unwrap().replication_targets,
        Vec::<String>::new()
    );
    // A completed version is sent again only when asked for (back-filling a destination).
    assert!(!again(&old.version_id, &[ReplicationStatus::None, Failed], &["eu"], vec![]));
    assert!(again(&old.version_id, &[Completed], &["eu"], vec![]));

    // BAT-1d: a replica is taken only when `Replica` is asked for, and stays a replica.
    w(&store, replica_of(&old, "batch", "r"));
    let replicate = |statuses: &[ReplicationStatus]| {
        let op = WriteOp::ReplicateVersion {
            bucket: "batch".into(),
            key: "r".into(),
            version_id: old.version_id.clone(),
            statuses: statuses.to_vec(),
            outbox: vec![b"c".to_vec()].into(),
            clear_failures: Vec::new(),
        };
        w(&store, op) == WriteOutcome::Queued(true)
    };
    assert!(!replicate(&[ReplicationStatus::None, Failed, Completed]));
    assert!(replicate(&[ReplicationStatus::Replica]));
    assert_eq!(status(&store, b.id, "r", &old.version_id), ReplicationStatus::ReplicaPending);
    let seq = store.list_outbox(None, 10).unwrap().last().unwrap().seq;
    w(&store, WriteOp::FinishTasks { tasks: vec![(seq, Some("DstBucketNotFound".into()))] });
    assert_eq!(status(&store, b.id, "r", &old.version_id), ReplicationStatus::ReplicaFailed);
    assert!(replicate(&[ReplicationStatus::Replica]), "a replica whose last sync failed is a replica");
}

/// STS-4/STS-7: completing a version's last task does not rewrite the version (the row keeps
/// `Pending`, so finishing is two deletes); every read path settles it to `Completed`: the
/// version itself, the current version, `ListObjects` and `ListObjectVersions`. The null
/// version (index stamp 0) settles too, and a replica's sync settles to `Replica`.
#[test]
fn sts4_completed_is_read_from_the_outbox_not_written() {
    use ReplicationStatus::{Completed, Pending, Replica, ReplicaPending};
    use redb::ReadableDatabase;
    let (_dir, store) = open();
    let b = bucket(&store, "settle", VersioningState::Enabled);
    let v = put_with_tasks(&store, "settle", "k", &["eu", "ap"]);
    let stored = |store: &MetaStore| -> ReplicationStatus {
        let txn = store.db().begin_read().unwrap();
        let versions = txn.open_table(crate::schema::VERSIONS).unwrap();
        crate::objects::find_version(
            &versions,
            &txn.open_table(crate::schema::NULLS).unwrap(),
            b.id,
            "k",
            &v.version_id,
        )
        .unwrap()
        .unwrap()
        .replication
    };
    let listed = |store: &MetaStore| {
        let objects = store.list_objects(b.id, &ListObjectsQuery { max_keys: 10, ..Default::default() }).unwrap();
        let versions = store.list_versions(b.id, &ListVersionsQuery { max_keys: 10, ..Default::default() }).unwrap();
        (objects.objects[0].1.replication.clone(), versions.entries[0].record.replication.clone())
    };
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 1 })), Some(Pending));
    assert_eq!((status(&store, b.id, "k", &v.version_id), listed(&store)), (Pending, (Pending, Pending)));
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(Completed));
    assert_eq!(stored(&store), Pending);
    assert_eq!(status(&store, b.id, "k", &v.version_id), Completed);
    assert_eq!(store.get_version(b.id, "k", None).unwrap().unwrap().replication, Completed);
    assert_eq!(listed(&store), (Completed, Completed));
    // STS-8: a replicated tag change makes it pending again, until that task is done.
    let op = WriteOp::SetObjectTags {
        bucket: "settle".into(),
        key: "k".into(),
        version_id: Some(v.version_id.clone()),
        tags: vec![("t".into(), "1".into())],
        replicated_ms: None,
        outbox: vec![b"eu".to_vec()].into(),
    };
    w(&store, op);
    assert_eq!(status(&store, b.id, "k", &v.version_id), Pending);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 3 })), Some(Completed));
    assert_eq!(status(&store, b.id, "k", &v.version_id), Completed);

    // The null version: its outbox_index rows lead with stamp 0.
    let n = bucket(&store, "nulls", VersioningState::Suspended);
    let null = put_with_tasks(&store, "nulls", "k", &["eu"]);
    assert_eq!(null.version_id, VersionId::Null);
    assert_eq!(status(&store, n.id, "k", &VersionId::Null), Pending);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 4 })), Some(Completed));
    assert_eq!(status(&store, n.id, "k", &VersionId::Null), Completed);

    // A replica whose tag change is synced back (STS-10) reads REPLICA once it is applied.
    w(&store, replica_of(&v, "nulls", "r"));
    let op = WriteOp::SetObjectTags {
        bucket: "nulls".into(),
        key: "r".into(),
        version_id: Some(v.version_id.clone()),
        tags: Vec::new(),
        replicated_ms: None,
        outbox: vec![b"back".to_vec()].into(),
    };
    w(&store, op);
    assert_eq!(status(&store, n.id, "r", &v.version_id), ReplicaPending);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 5 })), Some(Replica));
    assert_eq!(status(&store, n.id, "r", &v.version_id), Replica);
}

/// TWO-8 [I]: replicated tag changes apply last writer wins on the tag time. Two ends that
/// changed a version's tags concurrently each keep the later change when the other's arrives
/// (instead of swapping); equal times are broken by the tag sets; a stale or repeated change
/// is a no-op that succeeds; a local change is stamped after the stored tags.
#[test]
fn two8_replicated_tag_changes_apply_last_writer_wins() {
    let (_dir, store) = open();
    let (a, b) = (bucket(&store, "end-a", VersioningState::Enabled), bucket(&store, "end-b", VersioningState::Enabled));
    // The same version at both ends, created at time 42.
    let record = source_record(1_000, VersionKind::Object(Box::default()));
    for name in ["end-a", "end-b"] {
        w(&store, replica_op(name, "k", &record, "e"));
    }
    let vid = record.version_id.clone();
    let set = |bucket: &str, value: &str, replicated_ms: Option<i64>| {
        let op = WriteOp::SetObjectTags {
            bucket: bucket.into(),
            key: "k".into(),
            version_id: Some(vid.clone()),
            tags: vec![("v".into(), value.into())],
            replicated_ms,
            outbox: Vec::new().into(),
        };
        assert!(matches!(w(&store, op), WriteOutcome::Tags { .. }));
    };
    let tags = |id: u64| {
        let v = store.get_version(id, "k", Some(&vid)).unwrap().unwrap();
        (v.object().unwrap().tags[0].1.clone(), v.tags_stamp())
    };
    // A local change is stamped now: after the creation time.
    set("end-a", "from-a", None);
    let (_, a_time) = tags(a.id);
    assert!(a_time > 42);
    // End b changed later, before a's change arrived.
    set("end-b", "from-b", Some(a_time + 5));
    // The changes cross: each end keeps the later one, b's.
    set("end-a", "from-b", Some(a_time + 5));
    set("end-b", "from-a", Some(a_time));
    assert_eq!(tags(a.id), ("from-b".to_owned(), a_time + 5));
    assert_eq!(tags(b.id), ("from-b".to_owned(), a_time + 5));
    // A repeated or older change changes nothing.
    set("end-a", "stale", Some(a_time + 5 - 1));
    assert_eq!(tags(a.id).0, "from-b");
    // Equal times: the greater tag set wins at both ends, whichever arrives first.
    let t = a_time + 10;
    set("end-a", "x", Some(t));
    set("end-a", "y", Some(t));
    set("end-b", "y", Some(t));
    set("end-b", "x", Some(t));
    assert_eq!(tags(a.id), ("y".to_owned(), t));
    assert_eq!(tags(b.id), ("y".to_owned(), t));
    // A local change behind the stored time (a clock behind the other end's) is still newer.
    set("end-b", "far", Some(i64::MAX / 2));
    set("end-b", "local", None);
    assert_eq!(tags(b.id), ("local".to_owned(), i64::MAX / 2 + 1));
}

/// `get_versions` answers every version as `get_version` does, from one snapshot: settled
/// statuses, the null version, a missing id, and a version of another bucket.
#[test]
fn get_versions_reads_each_version_as_get_version_does() {
    let (_dir, store) = open();
    let b = bucket(&store, "many", VersioningState::Enabled);
    let one = put_with_tasks(&store, "many", "k", &["eu"]);
    let two = put_with_tasks(&store, "many", "k", &["eu", "ap"]);
    let other = put_with_tasks(&store, "many", "j", &["eu"]);
    let n = bucket(&store, "nulls", VersioningState::Suspended);
    let null = put_with_tasks(&store, "nulls", "k", &["eu"]);
    assert_eq!(null.version_id, VersionId::Null);
    // seq 1 is `one`'s only task (now Completed); `two` keeps a task (Pending).
    w(&store, WriteOp::CompleteTask { seq: 1 });
    w(&store, WriteOp::CompleteTask { seq: 2 });
    let missing = VersionId::Null;
    let wanted = [
        (b.id, "k", &one.version_id),
        (b.id, "k", &two.version_id),
        (b.id, "j", &other.version_id),
        (n.id, "k", &null.version_id),
        (b.id, "k", &missing),
        (n.id, "k", &one.version_id),
    ];
    let many = store.get_versions(wanted).unwrap();
    let each: Vec<_> = wanted.iter().map(|(id, key, v)| store.get_version(*id, key, Some(v)).unwrap()).collect();
    assert_eq!(many, each);
    let statuses: Vec<_> = many.iter().map(|r| r.as_ref().map(|r| r.replication.clone())).collect();
    use ReplicationStatus::{Completed, Pending};
    assert_eq!(statuses, [Some(Completed), Some(Pending), Some(Pending), Some(Pending), None, None]);
}

/// STS-5/6/7: one failed destination makes the version FAILED even if the other completes
/// later; the failure keeps its reason (IAM-8).
#[test]
fn sts7_any_failed_task_makes_the_version_failed() {
    let (_dir, store) = open();
    let b = bucket(&store, "fail", VersioningState::Enabled);
    let v = put_with_tasks(&store, "fail", "k", &["eu", "ap"]);
    let reason = "DstBucketUnversioned".to_owned();
    assert_eq!(finished(w(&store, WriteOp::FailTask { seq: 1, reason })), Some(ReplicationStatus::Failed));
    assert_eq!(status(&store, b.id, "k", &v.version_id), ReplicationStatus::Failed);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(ReplicationStatus::Failed));
    assert_eq!(store.outbox_len().unwrap(), 0);
    let failures = store.list_failures(None, 10).unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!((failures[0].entry.seq, failures[0].reason.as_str()), (1, "DstBucketUnversioned"));
    assert_eq!(failures[0].entry.version_id.as_ref(), Some(&v.version_id));
    // Replay of a failed seq changes nothing.
    assert_eq!(finished(w(&store, WriteOp::FailTask { seq: 1, reason: "x".into() })), None);
    assert_eq!(store.list_failures(None, 10).unwrap().len(), 1);
}

/// A task whose version was deleted by id (DEL-1: not replicated) finishes without error.
#[test]
fn finishing_a_task_of_a_deleted_version_is_harmless() {
    let (_dir, store) = open();
    bucket(&store, "gone", VersioningState::Enabled);
    let v = put_with_tasks(&store, "gone", "k", &["eu"]);
    w(&store, WriteOp::DeleteVersion { bucket: "gone".into(), key: "k".into(), version_id: v.version_id });
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 1 })), None);
    assert_eq!(store.outbox_len().unwrap(), 0);
}

/// ELI-12 / STS-8: a replicated tag change queues a task with the tags and makes a completed
/// version pending again; completing it restores COMPLETED.
#[test]
fn eli12_tag_change_tasks_make_completed_versions_pending() {
    let (_dir, store) = open();
    let b = bucket(&store, "tagq", VersioningState::Enabled);
    let v = put_with_tasks(&store, "tagq", "k", &["eu"]);
    w(&store, WriteOp::CompleteTask { seq: 1 });
    let op = WriteOp::SetObjectTags {
        bucket: "tagq".into(),
        key: "k".into(),
        version_id: Some(v.version_id.clone()),
        tags: vec![("a".into(), "b".into())],
        replicated_ms: None,
        outbox: vec![b"tags-eu".to_vec()].into(),
    };
    w(&store, op);
    assert_eq!(status(&store, b.id, "k", &v.version_id), ReplicationStatus::Pending);
    let entries = store.list_outbox(None, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].seq, entries[0].task.as_slice()), (2, &b"tags-eu"[..]));
    assert_eq!(store.get_outbox(2).unwrap().as_ref(), Some(&entries[0]));
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(ReplicationStatus::Completed));
}

/// Outbox rows, their index and failures survive a reopen (restart resumes from disk).
#[test]
fn outbox_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    {
        let store = MetaStore::open(&path).unwrap();
        bucket(&store, "reo", VersioningState::Enabled);
        put_with_tasks(&store, "reo", "k", &["a", "b"]);
    }
    let store = reopen(&path);
    assert_eq!(store.outbox_len().unwrap(), 2);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 1 })), Some(ReplicationStatus::Pending));
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(ReplicationStatus::Completed));
    // Sequence numbers are never reused.
    put_with_tasks(&store, "reo", "k", &["c"]);
    assert_eq!(store.list_outbox(None, 10).unwrap()[0].seq, 3);
}

/// A layout-1 file (outbox index keyed by object key first) is migrated on open: its index
/// rows are rewritten in the layout-2 order, so aggregation (STS-7) still sees every task.
#[test]
fn layout_1_outbox_index_is_migrated_on_open() {
    use redb::{ReadableDatabase as _, ReadableTableMetadata as _};

    use crate::schema::{META, META_SCHEMA, OUTBOX_INDEX, SCHEMA_VERSION, SCHEMA_VERSION_1};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let (b, v) = {
        let store = MetaStore::open(&path).unwrap();
        let b = bucket(&store, "mig", VersioningState::Enabled);
        let v = put_with_tasks(&store, "mig", "k", &["a", "b"]);
        (b, v)
    };
    {
        // Rewrite the file as layout 1 wrote it: `bucket_id ‖ enc(key) ‖ enc(version_id) ‖ seq`.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut index = txn.open_table(OUTBOX_INDEX).unwrap();
            index.retain(|_, ()| false).unwrap();
            for seq in [1u64, 2] {
                let mut old = crate::keys::object_key(b.id, "k");
                crate::keys::encode_into(&mut old, v.version_id.as_str().as_bytes());
                old.extend_from_slice(&seq.to_be_bytes());
                index.insert(old.as_slice(), ()).unwrap();
            }
            txn.open_table(META).unwrap().insert(META_SCHEMA, SCHEMA_VERSION_1).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = reopen(&path);
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 1 })), Some(ReplicationStatus::Pending));
    assert_eq!(finished(w(&store, WriteOp::CompleteTask { seq: 2 })), Some(ReplicationStatus::Completed));
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(META).unwrap().get(META_SCHEMA).unwrap().unwrap().value(), SCHEMA_VERSION);
    assert_eq!(txn.open_table(OUTBOX_INDEX).unwrap().len().unwrap(), 0, "no stale layout-1 rows left");
}

/// Runs the test `name` of this binary in a child process with `var` set to `dir` (the test
/// sees the variable and plays the child's part), and waits for it.
fn run_as_child(name: &str, var: &str, dir: &Path) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env(var, dir)
        .output()
        .unwrap()
}

/// Crash consistency of the redo journal: a child process acknowledges writes committed to
/// redb without durability (journal only) and aborts, so redb never makes them durable; the
/// reopened store replays the journal and has every acknowledged write, with its tasks.
#[test]
fn acknowledged_writes_survive_an_abort_through_the_journal() {
    const CHILD: &str = "XREGION_TEST_JOURNAL_CHILD_DIR";
    const WRITES: usize = 300;
    if let Some(dir) = std::env::var_os(CHILD) {
        let store = MetaStore::open(&Path::new(&dir).join("meta.redb")).unwrap();
        bucket(&store, "crash", VersioningState::Enabled);
        for i in 0..WRITES {
            put_with_tasks(&store, "crash", &format!("k{i:04}"), &["eu"]);
        }
        w(&store, WriteOp::CompleteTask { seq: 1 });
        // No close, no final checkpoint, no redb shutdown: as a kill -9 after the last reply.
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status =
        run_as_child("tests::acknowledged_writes_survive_an_abort_through_the_journal", CHILD, dir.path()).status;
    assert!(!status.success(), "the child must abort");
    let journal = crate::journal::path_for(&dir.path().join("meta.redb"));
    let journaled = std::fs::metadata(&journal).unwrap().len();
    assert!(journaled > 0, "the child's groups must be in the journal");
    let store = reopen(&dir.path().join("meta.redb"));
    let b = store.get_bucket("crash").unwrap().expect("bucket survives");
    let listed = store.list_objects(b.id, &ListObjectsQuery { max_keys: 1000, ..Default::default() }).unwrap();
    assert_eq!(listed.objects.len(), WRITES);
    assert_eq!(store.outbox_len().unwrap(), WRITES as u64 - 1);
    let first = &listed.objects[0].1;
    assert_eq!(first.replication, ReplicationStatus::Completed);
    // Replayed into redb, and retired by the new epoch: a second open replays nothing.
    drop(store);
    let store = reopen(&dir.path().join("meta.redb"));
    let listed_again = store.list_objects(b.id, &ListObjectsQuery { max_keys: 1000, ..Default::default() }).unwrap();
    assert_eq!(listed_again.objects.len(), WRITES);
    // Sequence numbers and the clock carry on after the replayed state.
    let next = put_with_tasks(&store, "crash", "after", &["eu"]);
    assert!(next.stamp > first.stamp);
    assert_eq!(store.list_outbox(None, 1000).unwrap().last().unwrap().seq, WRITES as u64 + 1);
}

/// A failed redb write (here: the file may not grow, `RLIMIT_FSIZE`, as a full disk would
/// refuse it) leaves redb refusing every later write until the database is reopened. The store
/// must reopen it itself once the cause is gone, with every acknowledged write kept: a child
/// process writes 64 KiB inline bodies until one fails, lifts the limit, and writes again.
#[test]
#[expect(clippy::disallowed_methods, reason = "a synchronous test thread, no runtime")]
fn writes_resume_after_an_io_error_once_the_disk_takes_writes_again() {
    const CHILD: &str = "XREGION_TEST_IO_ERROR_CHILD_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        // SIGXFSZ would kill the process at the limit; a handler turns it into EFBIG.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _signal = runtime.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(25)).unwrap() // SIGXFSZ
        });
        let path = Path::new(&dir).join("meta.redb");
        let store = MetaStore::open(&path).unwrap();
        bucket(&store, "iox", VersioningState::Enabled);
        let body = vec![7u8; 64 * 1024];
        let inline_put = |key: &str| {
            let mut op = put_op("iox", key, key);
            if let WriteOp::PutVersion { inline, data, .. } = &mut op {
                *inline = Some(body.clone());
                data.blob = BlobRef::default();
                data.size = body.len() as u64;
            }
            store.write_blocking(op)
        };
        let limit = std::fs::metadata(&path).unwrap().len().max(1 << 20) + (1 << 20);
        let unlimited = rustix::process::getrlimit(rustix::process::Resource::Fsize);
        rustix::process::setrlimit(
            rustix::process::Resource::Fsize,
            rustix::process::Rlimit { current: Some(limit), maximum: unlimited.maximum },
        )
        .unwrap();
        let mut acknowledged = Vec::new();
        let failed = (0..2000).find_map(|i| {
            let key = format!("k{i:04}");
            match inline_put(&key) {
                Ok(_) => {
                    acknowledged.push(key);
                    None
                }
                Err(e) => Some(e),
            }
        });
        let failed = failed.expect("a write past the file-size limit fails");
        let failed_key = format!("k{:04}", acknowledged.len());
        eprintln!("failed after {} writes: {failed}", acknowledged.len());
        // The limit goes, as space would come back; the store takes writes again by itself.
        rustix::process::setrlimit(rustix::process::Resource::Fsize, unlimited).unwrap();
        let resumed = (0..50).find_map(|i| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            inline_put(&format!("after{i}")).ok()
        });
        assert!(resumed.is_some(), "writes must resume once the disk takes them again");
        let b = store.get_bucket("iox").unwrap().unwrap();
        for key in &acknowledged {
            assert!(store.get_version(b.id, key, None).unwrap().is_some(), "{key} was acknowledged");
        }
        drop(store);
        let store = reopen(&path);
        for key in &acknowledged {
            assert!(store.get_version(b.id, key, None).unwrap().is_some(), "{key} after reopen");
        }
        // An error that does not say the outcome is unknown means the write changed nothing.
        if !failed.outcome_unknown() {
            assert_eq!(store.get_version(b.id, &failed_key, None).unwrap(), None, "{failed_key} failed with {failed}");
        }
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let output =
        run_as_child("tests::writes_resume_after_an_io_error_once_the_disk_takes_writes_again", CHILD, dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed: {}\n{stderr}", output.status);
}

// ----- listing (examples; the model-based proptest is in `listing_model`) -------------------

#[test]
fn ver19_list_objects_with_delimiter_and_markers() {
    let (_dir, store) = open();
    let b = bucket(&store, "lst", VersioningState::Enabled);
    for key in ["a", "b/1", "b/2", "b/3", "c", "d/x/1", "e"] {
        put(&store, "lst", key, "e");
    }
    delete(&store, "lst", "c");
    let q = |start_after: Option<&str>, max_keys| ListObjectsQuery {
        prefix: String::new(),
        delimiter: Some("/".into()),
        start_after: start_after.map(Into::into),
        max_keys,
    };
    let page = store.list_objects(b.id, &q(None, 2)).unwrap();
    assert_eq!(page.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a"]);
    assert_eq!(page.common_prefixes, ["b/"]);
    assert!(page.is_truncated);
    assert_eq!(page.next_marker.as_deref(), Some("b/"));
    // Continuing from a common prefix skips the whole group; "c" is a delete marker.
    let page = store.list_objects(b.id, &q(Some("b/"), 1)).unwrap();
    assert!(page.objects.is_empty());
    assert_eq!(page.common_prefixes, ["d/"]);
    assert_eq!(page.next_marker.as_deref(), Some("d/"));
    let page = store.list_objects(b.id, &q(Some("d/"), 2)).unwrap();
    assert_eq!(page.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["e"]);
    assert!(!page.is_truncated && page.next_marker.is_none());
    // A start-after inside a group also skips the group.
    let page = store.list_objects(b.id, &q(Some("b/1"), 1)).unwrap();
    assert_eq!(page.common_prefixes, ["d/"]);
    // Prefix + delimiter.
    let page = store
        .list_objects(
            b.id,
            &ListObjectsQuery { prefix: "d/".into(), delimiter: Some("/".into()), start_after: None, max_keys: 10 },
        )
        .unwrap();
    assert_eq!(page.common_prefixes, ["d/x/"]);
    assert_eq!(store.list_objects(b.id, &q(None, 0)).unwrap(), Default::default());
}

#[test]
fn ver20_list_versions_markers() {
    let (_dir, store) = open();
    let b = bucket(&store, "lvv", VersioningState::Enabled);
    let (a1, _) = put(&store, "lvv", "a", "1");
    let (a2, _) = put(&store, "lvv", "a", "2");
    let (_, am, _) = delete(&store, "lvv", "a");
    let (b1, _) = put(&store, "lvv", "b", "1");
    let am = am.unwrap();
    let q = |key_marker: Option<&str>, vid: Option<&VersionId>, max_keys| ListVersionsQuery {
        prefix: String::new(),
        delimiter: None,
        key_marker: key_marker.map(Into::into),
        version_id_marker: vid.cloned(),
        max_keys,
    };
    let page = store.list_versions(b.id, &q(None, None, 2)).unwrap();
    let got: Vec<_> = page.entries.iter().map(|e| (e.record.version_id.clone(), e.is_latest)).collect();
    assert_eq!(got, vec![(am.version_id.clone(), true), (a2.version_id.clone(), false)]);
    assert_eq!(page.next_key_marker.as_deref(), Some("a"));
    assert_eq!(page.next_version_id_marker.as_ref(), Some(&a2.version_id));
    // Resume after that version: the rest of "a" is not latest, "b" is.
    let page = store.list_versions(b.id, &q(Some("a"), Some(&a2.version_id), 5)).unwrap();
    let got: Vec<_> = page.entries.iter().map(|e| (e.record.version_id.clone(), e.is_latest)).collect();
    assert_eq!(got, vec![(a1.version_id.clone(), false), (b1.version_id.clone(), true)]);
    assert!(!page.is_truncated);
    // key-marker alone skips every version of the key.
    let page = store.list_versions(b.id, &q(Some("a"), None, 5)).unwrap();
    assert_eq!(page.entries.len(), 1);
    // version-id-marker without key-marker is refused.
    assert!(matches!(store.list_versions(b.id, &q(None, Some(&a1.version_id), 5)), Err(MetaError::InvalidArgument(_))));
}

// ----- group commit, concurrency, reopen -------------------------------------------------

#[test]
fn group_commit_many_concurrent_writers_each_get_their_own_result() {
    let (_dir, store) = open();
    let b = bucket(&store, "conc", VersioningState::Enabled);
    let before = store.writer_stats();
    let threads = 16;
    let per_thread = 20;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..per_thread {
                    let key = format!("t{t}/k{}", i % 3);
                    let etag = format!("t{t}-{i}");
                    let (record, _) = put(&store, "conc", &key, &etag);
                    assert_eq!(etag_of(&record), etag);
                    mine.push((key, record));
                }
                // A failing op in the same stream fails alone.
                assert_eq!(
                    store.write_blocking(put_op("no-such-bucket", "k", "x")).unwrap_err(),
                    MetaError::NoSuchBucket
                );
                mine
            })
        })
        .collect();
    let mut written = Vec::new();
    for h in handles {
        written.extend(h.join().unwrap());
    }
    assert_eq!(written.len(), threads * per_thread);
    for (key, record) in &written {
        assert_eq!(store.get_version(b.id, key, Some(&record.version_id)).unwrap().as_ref(), Some(record));
    }
    let ids: std::collections::HashSet<_> = written.iter().map(|(_, r)| r.version_id.clone()).collect();
    assert_eq!(ids.len(), written.len());
    let stats = store.writer_stats();
    let ops = stats.ops - before.ops;
    let groups = stats.groups - before.groups;
    assert_eq!(ops as usize, threads * (per_thread + 1));
    assert!(groups < ops, "concurrent writers must share commits ({groups} groups for {ops} ops)");
    assert_eq!(stats.failed_groups, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writers_share_commits() {
    let (_dir, store) = open();
    let b = bucket(&store, "async", VersioningState::Enabled);
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.write(put_op("async", &format!("k{i}"), &format!("e{i}"))).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let WriteOutcome::Version { record, .. } = task.await.unwrap().unwrap() else { panic!() };
        assert_eq!(etag_of(&record), format!("e{i}"));
    }
    assert_eq!(listed_keys(&store, b.id).len(), 64);
}

#[test]
fn reopen_keeps_data_and_clock_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let far_future;
    let v1;
    let bucket_id;
    {
        let store = MetaStore::open(&path).unwrap();
        bucket_id = bucket(&store, "keep", VersioningState::Enabled).id;
        v1 = put(&store, "keep", "k", "e1").0;
        // A replica from a region whose clock runs an hour ahead.
        far_future = v1.stamp + 3_600_000_000;
        w(&store, replica_op("keep", "r", &source_record(far_future, VersionKind::Object(Box::default())), "r"));
        w(&store, WriteOp::CreateUpload { record: upload(bucket_id, "k", "u") });
    }
    let store = reopen(&path);
    assert_eq!(store.get_bucket("keep").unwrap().unwrap().id, bucket_id);
    assert_eq!(store.get_version(bucket_id, "k", None).unwrap(), Some(v1.clone()));
    assert!(store.get_upload("u").unwrap().is_some());
    // Stamps never go backwards across restarts: the next version is newer than anything stored.
    let (v2, _) = put(&store, "keep", "k", "e2");
    assert!(v2.stamp > far_future);
    let other = bucket(&store, "other", VersioningState::Unversioned);
    assert!(other.id > bucket_id);
}

fn reopen(path: &Path) -> MetaStore {
    MetaStore::open(path).unwrap()
}

/// A write reported as [`MetaError::OutcomeUnknown`] may have happened (here it did, as when a
/// durable commit's last sync fails after its header reached the disk): it is visible, it
/// survives a reopen, and the store takes the next write as usual. Callers must therefore not
/// undo what such a write references (`xregion-core` keeps the body's blob).
#[test]
fn a_write_whose_outcome_is_unknown_may_have_happened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let store = MetaStore::open(&path).unwrap();
    let b = bucket(&store, "unk", VersioningState::Enabled);
    store.inject_outcome_unknown();
    let e = err(&store, put_op("unk", "k", "e1"));
    assert!(e.outcome_unknown(), "{e:?}");
    let stored = store.get_version(b.id, "k", None).unwrap().expect("the write happened");
    assert_eq!(etag_of(&stored), "e1");
    // Only one group is affected: the next write is answered as usual.
    let (next, _) = put(&store, "unk", "k", "e2");
    assert!(next.stamp > stored.stamp);
    drop(store);
    let store = reopen(&path);
    let versions = all_versions(&store, b.id);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(store.get_version(b.id, "k", Some(&stored.version_id)).unwrap(), Some(stored));
}

#[test]
fn store_handle_is_clone_send_sync() {
    fn assert_handle<T: Clone + Send + Sync + 'static>() {}
    assert_handle::<MetaStore>();
}

fn inline_op(bucket: &str, key: &str, bytes: &[u8]) -> WriteOp {
    WriteOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        data: ObjectData { size: bytes.len() as u64, etag: "i".into(), ..ObjectData::default() },
        inline: Some(bytes.to_vec()),
        replica: None,
        precondition: None,
        outbox: Vec::new().into(),
    }
}

fn put_inline(store: &MetaStore, bucket: &str, key: &str, bytes: &[u8]) -> VersionRecord {
    match w(store, inline_op(bucket, key, bytes)) {
        WriteOutcome::Version { record, freed } => {
            assert!(freed.is_empty(), "replacing an inline or no version frees no blob: {freed:?}");
            record
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn inline_bytes(store: &MetaStore, record: &VersionRecord) -> Option<Vec<u8>> {
    store.get_inline(record.object().unwrap().inline.expect("stored inline")).unwrap()
}

/// Inline rows live and die with their version, in the same transaction: written with the
/// version, removed when a null version is replaced, when a version is deleted, when an
/// unversioned or suspended delete removes the null version; deleting the emptied bucket
/// leaves no row.
#[test]
fn inline_rows_follow_their_version() {
    let (_dir, store) = open();
    let b = bucket(&store, "inl", VersioningState::Unversioned);

    // Write: the row holds the bytes, the version points at it, nothing is freed.
    let v1 = put_inline(&store, "inl", "k", b"first");
    assert!(v1.object().unwrap().blob.segments.is_empty());
    assert_eq!(inline_bytes(&store, &v1).unwrap(), b"first");
    assert_eq!(store.get_version(b.id, "k", None).unwrap().unwrap(), v1);
    assert_eq!(store.inline_rows().unwrap(), 1);

    // Replacing the null version (inline → inline) removes the old row.
    let v2 = put_inline(&store, "inl", "k", b"second");
    assert_ne!(v1.object().unwrap().inline, v2.object().unwrap().inline, "ids are never reused");
    assert_eq!(inline_bytes(&store, &v1), None);
    assert_eq!(inline_bytes(&store, &v2).unwrap(), b"second");
    assert_eq!(store.inline_rows().unwrap(), 1);

    // Replacing it with a file-backed version removes the row too.
    let (_, freed) = put(&store, "inl", "k", "file");
    assert!(freed.is_empty());
    assert_eq!(store.inline_rows().unwrap(), 0);
    // And file → inline frees the old file.
    let WriteOutcome::Version { record: v3, freed } = w(&store, inline_op("inl", "k", b"third")) else { panic!() };
    assert_eq!(freed, vec![seg("blob-file")]);
    assert_eq!(store.inline_rows().unwrap(), 1);

    // Unversioned DELETE removes the null version and its row.
    let (removed, marker, freed) = delete(&store, "inl", "k");
    assert_eq!(removed.unwrap().version_id, v3.version_id);
    assert!(marker.is_none() && freed.is_empty());
    assert_eq!(store.inline_rows().unwrap(), 0);

    // Enabled: versions keep their rows until deleted by id; a delete marker keeps them.
    w(&store, WriteOp::SetVersioning { name: "inl".into(), state: VersioningState::Enabled });
    let a = put_inline(&store, "inl", "k", b"a");
    let bb = put_inline(&store, "inl", "k", b"bb");
    delete(&store, "inl", "k");
    assert_eq!(store.inline_rows().unwrap(), 2);
    let (removed, freed) = delete_version(&store, "inl", "k", &a.version_id);
    assert_eq!(removed.unwrap(), a);
    assert!(freed.is_empty());
    assert_eq!(inline_bytes(&store, &a), None);
    assert_eq!(inline_bytes(&store, &bb).unwrap(), b"bb");
    // Several at once, in order, from one snapshot.
    let ids = [&bb, &a, &bb].map(|r| r.object().unwrap().inline.unwrap());
    assert_eq!(store.get_inlines(ids).unwrap(), [Some(b"bb".to_vec()), None, Some(b"bb".to_vec())]);

    // Suspended: a DELETE replaces the null version (here none) with a null marker; a null
    // inline version is then replaced by the marker and its row removed.
    w(&store, WriteOp::SetVersioning { name: "inl".into(), state: VersioningState::Suspended });
    let n = put_inline(&store, "inl", "k", b"null");
    assert_eq!(store.inline_rows().unwrap(), 2);
    delete(&store, "inl", "k");
    assert_eq!(inline_bytes(&store, &n), None);
    assert_eq!(store.inline_rows().unwrap(), 1);

    // Delete everything, then the bucket: no row is left behind.
    for (_, id, _, _) in all_versions(&store, b.id) {
        delete_version(&store, "inl", "k", &id);
    }
    assert_eq!(w(&store, WriteOp::DeleteBucket { name: "inl".into() }), WriteOutcome::Freed(Vec::new()));
    assert_eq!(store.inline_rows().unwrap(), 0);
}

/// Inline data must be the whole object, without blobs, and the store assigns its id; an
/// invalid op leaves no row (validated before writing).
#[test]
fn inline_puts_are_validated() {
    let (_dir, store) = open();
    bucket(&store, "val", VersioningState::Enabled);
    let mut wrong_size = inline_op("val", "k", b"abc");
    if let WriteOp::PutVersion { data, .. } = &mut wrong_size {
        data.size = 4;
    }
    assert!(matches!(err(&store, wrong_size), MetaError::InvalidArgument(_)));
    let mut with_blob = inline_op("val", "k", b"abc");
    if let WriteOp::PutVersion { data, .. } = &mut with_blob {
        data.blob = BlobRef { segments: vec![seg("x")] };
    }
    assert!(matches!(err(&store, with_blob), MetaError::InvalidArgument(_)));
    let mut chosen_id = put_op("val", "k", "e");
    if let WriteOp::PutVersion { data, .. } = &mut chosen_id {
        data.inline = Some(xregion_types::InlineRef { id: 1 });
    }
    assert!(matches!(err(&store, chosen_id), MetaError::InvalidArgument(_)));
    let mut failing = inline_op("val", "k", b"abc");
    if let WriteOp::PutVersion { precondition, .. } = &mut failing {
        *precondition = Some(Precondition::IfMatch("nope".into()));
    }
    assert_eq!(err(&store, failing), MetaError::NoSuchKey);
    assert_eq!(store.inline_rows().unwrap(), 0);
}

/// A replica may carry inline bytes; an idempotent replay stores no second row, and a newer
/// null replica replacing an inline null version removes its row.
#[test]
fn inline_replicas_store_one_row() {
    let (_dir, store) = open();
    bucket(&store, "rep", VersioningState::Enabled);
    let source = source_record(1_000, VersionKind::Object(Box::default()));
    let op = |bytes: &[u8]| {
        let WriteOp::PutVersion { bucket, key, data, inline, precondition, outbox, .. } = inline_op("rep", "k", bytes)
        else {
            unreachable!()
        };
        WriteOp::PutVersion { bucket, key, data, inline, replica: Some(source.clone()), precondition, outbox }
    };
    let WriteOutcome::Version { record, .. } = w(&store, op(b"replica")) else { panic!() };
    assert_eq!(record.version_id, source.version_id);
    assert_eq!(inline_bytes(&store, &record).unwrap(), b"replica");
    let WriteOutcome::Version { record: again, freed } = w(&store, op(b"replica")) else { panic!() };
    assert_eq!(again, record);
    assert!(freed.is_empty());
    assert_eq!(store.inline_rows().unwrap(), 1);
}

/// Inline rows survive a reopen (they are part of the committed transaction).
#[test]
fn inline_rows_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let record = {
        let store = MetaStore::open(&path).unwrap();
        bucket(&store, "reopen", VersioningState::Enabled);
        put_inline(&store, "reopen", "k", b"durable")
    };
    let store = MetaStore::open(&path).unwrap();
    assert_eq!(inline_bytes(&store, &record).unwrap(), b"durable");
    // The id counter survived too: a new row gets a new id.
    let next = put_inline(&store, "reopen", "k2", b"x");
    assert_ne!(next.object().unwrap().inline, record.object().unwrap().inline);
}

/// CON-5: tasks planned under one replication configuration are planned again inside the
/// transaction when the bucket's configuration changed before the write committed; unchanged,
/// the planned tasks stand and the planner is not called. ELI-12: the new version records the
/// targets of the plan that was committed, and none when no task was.
#[test]
fn con5_outbox_is_replanned_when_the_configuration_changed() {
    use std::sync::Arc;

    use crate::ops::{Outbox, Plan, Planner};

    let (_dir, store) = open();
    let b = bucket(&store, "con5", VersioningState::Enabled);
    // The planner names the configuration it planned under.
    let planner: Arc<Planner> = Arc::new(|config: Option<&[u8]>| match config {
        Some(c) => Ok(Plan {
            tasks: vec![[b"under:".as_slice(), c].concat()],
            targets: vec![format!("target-of-{}", String::from_utf8_lossy(c))],
        }),
        None => Ok(Plan::default()),
    });
    let put = |key: &str, planned_under: Option<&[u8]>, tasks: Vec<Vec<u8>>| {
        let targets = tasks.iter().map(|_| "as planned".to_owned()).collect();
        let plan = Plan { tasks, targets };
        let outbox = Outbox::planned(plan, planned_under.map(<[u8]>::to_vec), Arc::clone(&planner));
        let op = WriteOp::PutVersion {
            bucket: "con5".into(),
            key: key.into(),
            data: data("e"),
            inline: None,
            replica: None,
            precondition: None,
            outbox,
        };
        match w(&store, op) {
            WriteOutcome::Version { record, .. } => record,
            other => panic!("unexpected {other:?}"),
        }
    };
    let tasks_of = |key: &str| -> Vec<Vec<u8>> {
        let rows = store.list_outbox(None, 100).unwrap();
        rows.into_iter().filter(|e| e.key == key).map(|e| e.task).collect()
    };
    // Planned with no configuration, but one was stored before the commit: planned again.
    w(&store, WriteOp::SetReplication { name: "con5".into(), config: Some(b"cfg-1".to_vec()) });
    let v = put("added", None, Vec::new());
    assert_eq!(v.replication, ReplicationStatus::Pending);
    assert_eq!(tasks_of("added"), vec![b"under:cfg-1".to_vec()]);
    assert_eq!(v.replication_targets, vec!["target-of-cfg-1".to_owned()]);
    // Planned under the stored configuration: the planned tasks stand.
    let v = put("same", Some(b"cfg-1"), vec![b"as planned".to_vec()]);
    assert_eq!(tasks_of("same"), vec![b"as planned".to_vec()]);
    assert_eq!(v.replication_targets, vec!["as planned".to_owned()]);
    // The record as stored (and read back) keeps them.
    let stored = store.get_version(b.id, "same", Some(&v.version_id)).unwrap().unwrap();
    assert_eq!(stored.replication_targets, vec!["as planned".to_owned()]);
    // The configuration was removed in between: no tasks, no status.
    w(&store, WriteOp::SetReplication { name: "con5".into(), config: None });
    let v = put("removed", Some(b"cfg-1"), vec![b"stale".to_vec()]);
    assert_eq!(v.replication, ReplicationStatus::None);
    assert!(v.replication_targets.is_empty());
    assert!(tasks_of("removed").is_empty());
    assert_eq!(status(&store, b.id, "removed", &v.version_id), ReplicationStatus::None);
}

/// The in-memory handoff (`fresh.rs`): only while subscribed, after the commit, in sequence
/// order, with the object version; a full channel drops and flags; a refused op hands over
/// nothing.
#[test]
fn committed_tasks_are_handed_over_in_order_while_subscribed() {
    let (_dir, store) = open();
    let b = bucket(&store, "src", VersioningState::Enabled);
    put_with_tasks(&store, "src", "before", &["t0"]);
    let fresh = store.subscribe_fresh(3);
    assert_eq!(fresh.try_next(), None, "tasks committed before the subscription stay on disk only");
    let v = put_with_tasks(&store, "src", "k", &["t1", "t2"]);
    let marker = match w(
        &store,
        WriteOp::DeleteObject {
            bucket: "src".into(),
            key: "k".into(),
            outbox: vec![b"dm".to_vec()].into(),
            if_current: None,
        },
    ) {
        WriteOutcome::Deleted { marker, .. } => marker.unwrap(),
        other => panic!("{other:?}"),
    };
    // A refused write queues nothing and hands over nothing.
    let refused = WriteOp::PutVersion {
        bucket: "src".into(),
        key: "k".into(),
        data: data("x"),
        inline: None,
        replica: None,
        precondition: Some(Precondition::IfMatch("nope".into())),
        outbox: vec![b"never".to_vec()].into(),
    };
    err(&store, refused);
    let got: Vec<_> = std::iter::from_fn(|| fresh.try_next()).collect();
    let summary: Vec<_> = got
        .iter()
        .map(|f| (f.entry.seq, f.entry.task.as_slice(), f.entry.version_id.clone(), f.version.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, &b"t1"[..], Some(v.version_id.clone()), Some(v.clone())),
            (3, &b"t2"[..], Some(v.version_id.clone()), Some(v.clone())),
            (4, &b"dm"[..], Some(marker.version_id.clone()), None),
        ]
    );
    assert_eq!(got[0].entry, store.list_outbox(Some(1), 1).unwrap()[0], "the row as stored");
    assert!(!fresh.take_lost());
    // Three tasks into a channel of three, then one more: it is dropped and flagged, once.
    put_with_tasks(&store, "src", "a", &["a1", "a2", "a3"]);
    put_with_tasks(&store, "src", "b", &["b1"]);
    assert!(fresh.take_lost());
    assert!(!fresh.take_lost());
    let got: Vec<u64> = std::iter::from_fn(|| fresh.try_next()).map(|f| f.entry.seq).collect();
    assert_eq!(got, [5, 6, 7]);
    assert_eq!(store.list_outbox(None, 100).unwrap().len(), 8, "the outbox on disk has them all");
    // Once the subscriber is gone, the writer stops collecting.
    drop(fresh);
    put_with_tasks(&store, "src", "c", &["c1"]);
    put_with_tasks(&store, "src", "d", &["d1"]);
    let again = store.subscribe_fresh(8);
    put_with_tasks(&store, "src", "e", &["e1"]);
    assert_eq!(again.try_next().map(|f| f.entry.seq), Some(11));
    assert_eq!(b.id, store.list_outbox(Some(10), 1).unwrap()[0].bucket_id);
}

#[test]
fn writer_counts_how_each_group_was_made_durable() {
    let (_dir, store) = open();
    bucket(&store, "counted", VersioningState::Enabled);
    let before = store.writer_stats();
    for i in 0..5 {
        put(&store, "counted", &format!("k{i}"), "e");
    }
    let stats = store.writer_stats();
    // One group per blocking write, each made durable by its journal record or a checkpoint.
    assert_eq!(stats.groups - before.groups, 5, "{stats:?}");
    assert_eq!(stats.ops - before.ops, 5, "{stats:?}");
    let durable = |s: &crate::WriterStats| s.journal_syncs + s.checkpoints;
    assert_eq!(durable(&stats) - durable(&before), 5, "{stats:?}");
    assert!(stats.busy_us >= stats.journal_us + stats.checkpoint_us, "{stats:?}");

    // A group that changed nothing writes no journal record.
    assert_eq!(err(&store, put_op("no-such-bucket", "k", "x")), MetaError::NoSuchBucket);
    let after = store.writer_stats();
    assert_eq!(after.groups, stats.groups + 1);
    assert_eq!(after.journal_syncs, stats.journal_syncs);
    assert_eq!(after.failed_groups, 0);
}

fn job_record(id: &str) -> xregion_types::job::JobRecord {
    use xregion_types::job::{JobFilter, JobRecord, JobSpec};
    let spec = JobSpec {
        account_id: "000000000000".into(),
        bucket: "src".into(),
        manifest: None,
        filter: JobFilter::default(),
        report: None,
        manifest_output: None,
        priority: 10,
        role_arn: "arn:aws:iam::000000000000:role/batch".into(),
        description: None,
        confirmation_required: false,
        client_token: id.into(),
        tags: Vec::new(),
    };
    JobRecord::new(id.into(), spec, 1)
}

/// BAT-6: jobs get their own never-reused sequence numbers; a job's record and its task rows
/// are written together and survive a reopen; task rows read back per job, in order, from a
/// given number.
#[test]
fn bat6_jobs_and_their_tasks_survive_reopen() {
    use xregion_types::job::{JobStatus, JobTask, TaskOutcome};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let task = |key: &str, outcome: TaskOutcome| JobTask { key: key.into(), version_id: VersionId::Null, outcome };
    {
        let store = MetaStore::open(&path).unwrap();
        let WriteOutcome::Job(first) = w(&store, WriteOp::CreateJob { record: job_record("a") }) else { panic!() };
        let WriteOutcome::Job(mut second) = w(&store, WriteOp::CreateJob { record: job_record("b") }) else { panic!() };
        assert_eq!((first.seq, second.seq), (1, 2));
        second.status = JobStatus::Active;
        second.total_tasks = 3;
        let tasks = (0..3).map(|n| (n, task(&format!("k{n}"), TaskOutcome::Open))).collect();
        assert_eq!(w(&store, WriteOp::UpdateJob { record: second.clone(), tasks }), WriteOutcome::Done);
        // The first job's rows stay apart from the second's.
        let rows = vec![(0, task("other", TaskOutcome::Succeeded))];
        w(&store, WriteOp::UpdateJob { record: first, tasks: rows });
        // Unknown jobs are not created by an update.
        let mut ghost = second.clone();
        ghost.seq = 99;
        assert!(matches!(
            store.write_blocking(WriteOp::UpdateJob { record: ghost, tasks: Vec::new() }),
            Err(MetaError::Corrupt(_))
        ));
        // An outcome replaces its row.
        second.succeeded = 1;
        second.settled_upto = 1;
        let failed = TaskOutcome::Failed { code: "DstBucketNotFound".into(), http_status: 404, message: "gone".into() };
        w(&store, WriteOp::UpdateJob { record: second, tasks: vec![(1, task("k1", failed))] });
    }
    let store = reopen(&path);
    let jobs = store.list_jobs().unwrap();
    assert_eq!(jobs.iter().map(|j| (j.id.as_str(), j.seq)).collect::<Vec<_>>(), [("a", 1), ("b", 2)]);
    assert_eq!((jobs[1].status, jobs[1].succeeded, jobs[1].settled_upto), (JobStatus::Active, 1, 1));
    let rows = store.job_tasks(2, 0, 10).unwrap();
    assert_eq!(rows.iter().map(|(n, t)| (*n, t.key.as_str())).collect::<Vec<_>>(), [(0, "k0"), (1, "k1"), (2, "k2")]);
    assert!(matches!(rows[1].1.outcome, TaskOutcome::Failed { http_status: 404, .. }));
    assert_eq!(store.job_tasks(2, 2, 10).unwrap().len(), 1);
    assert_eq!(store.job_tasks(2, 0, 2).unwrap().len(), 2);
    assert_eq!(store.job_tasks(1, 0, 10).unwrap().len(), 1);
    let WriteOutcome::Job(third) = w(&store, WriteOp::CreateJob { record: job_record("c") }) else { panic!() };
    assert_eq!(third.seq, 3, "job numbers are never reused");

    // Forgetting a job removes its rows a page at a time, then the job; others are untouched.
    assert_eq!(w(&store, WriteOp::ForgetJob { seq: 2, limit: 2 }), WriteOutcome::Forgot(false));
    assert_eq!(store.job_tasks(2, 0, 10).unwrap().len(), 1);
    assert_eq!(w(&store, WriteOp::ForgetJob { seq: 2, limit: 2 }), WriteOutcome::Forgot(true));
    assert_eq!(store.job_tasks(2, 0, 10).unwrap().len(), 0);
    let left: Vec<u64> = store.list_jobs().unwrap().iter().map(|j| j.seq).collect();
    assert_eq!(left, [1, 3]);
    assert_eq!(store.job_tasks(1, 0, 10).unwrap().len(), 1);
    drop(store);
    let store = reopen(&path);
    assert_eq!(store.list_jobs().unwrap().len(), 2, "the removal is durable");
}
