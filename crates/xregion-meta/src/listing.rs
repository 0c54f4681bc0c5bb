//! Listing: `ListObjects` over current versions (the `heads` table) and `ListObjectVersions`
//! over the `versions` table. Both are range scans that seek past common-prefix groups.

use std::ops::Bound;

use redb::{AccessGuard, ReadableTable, Value};
use xregion_types::{VersionId, VersionRecord};

use crate::codec::decode;
use crate::error::MetaError;
use crate::keys;
use crate::objects::stamp_of;

/// A `ListObjects`/`ListObjectsV2` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjectsQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Groups keys by the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// Exclusive start (v1 marker, v2 start-after or continuation token). If it falls in a
    /// common-prefix group, the whole group is skipped.
    pub start_after: Option<String>,
    /// Maximum objects plus common prefixes returned (0 gives an empty, untruncated page).
    pub max_keys: usize,
}

/// A `ListObjects` page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjectsPage {
    /// Keys with their current version (never a delete marker, VER-19), ascending.
    pub objects: Vec<(String, VersionRecord)>,
    /// Common prefixes, ascending.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// When truncated: the last key or common prefix returned.
    pub next_marker: Option<String>,
}

/// A `ListObjectVersions` request (VER-20).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListVersionsQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Groups keys by the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// Resume after this key (all its versions, unless `version_id_marker` is set).
    pub key_marker: Option<String>,
    /// With `key_marker`: resume after this version of that key.
    pub version_id_marker: Option<VersionId>,
    /// Maximum entries plus common prefixes returned.
    pub max_keys: usize,
}

/// A `ListObjectVersions` page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListVersionsPage {
    /// Versions and delete markers: keys ascending, newest first within a key.
    pub entries: Vec<VersionEntry>,
    /// Common prefixes, ascending.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// When truncated: the key (or common prefix) of the last entry returned.
    pub next_key_marker: Option<String>,
    /// When truncated and the last entry is a version: its id.
    pub next_version_id_marker: Option<VersionId>,
}

/// One entry of a versions listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// Object key.
    pub key: String,
    /// The version or delete marker.
    pub record: VersionRecord,
    /// True for the key's current version.
    pub is_latest: bool,
}

/// One listed item: an entry or a common prefix (each counts 1 toward the page size).
pub(crate) enum Item<E> {
    /// An entry of the listed table.
    Entry(E),
    /// A common prefix (a whole delimiter group, returned once).
    Prefix(String),
}

/// A grouped range scan over a table keyed `bucket_id ‖ enc(key) ‖ suffix`.
pub(crate) struct Scan<'q> {
    bucket_id: u64,
    prefix: &'q str,
    delimiter: Option<&'q str>,
    max: usize,
}

impl<'q> Scan<'q> {
    /// A scan of `prefix` in `bucket_id`; an empty delimiter means none.
    pub(crate) fn new(bucket_id: u64, prefix: &'q str, delimiter: Option<&'q str>, max: usize) -> Self {
        Self { bucket_id, prefix, delimiter: delimiter.filter(|d| !d.is_empty()), max }
    }

    /// The common prefix `key` belongs to: the prefix, then everything up to and including the
    /// first delimiter after it.
    pub(crate) fn group_of(&self, key: &str) -> Option<String> {
        let delimiter = self.delimiter?;
        let rest = key.strip_prefix(self.prefix)?;
        let at = rest.find(delimiter)?;
        Some(key[..self.prefix.len() + at + delimiter.len()].to_owned())
    }

    /// A scan start after the whole group `key` belongs to (after `key` if it is in none):
    /// S3 continuation skips a group that was already returned.
    pub(crate) fn after_group_of(&self, key: &str) -> Bound<Vec<u8>> {
        match self.group_of(key) {
            Some(group) => keys::after_prefix(&keys::object_prefix(self.bucket_id, &group)),
            None => keys::after_key(self.bucket_id, key),
        }
    }

    /// Runs the scan. `start`: `None` = from the beginning of the prefix; `Some(Unbounded)` =
    /// past the end; otherwise the position to start at (clamped to the prefix range).
    /// `make` turns a table entry into a listed entry (`None` skips it). Returns the items and
    /// whether more follow. Delimiter groups are skipped by seeking past them.
    pub(crate) fn run<T, V, E, F>(
        &self,
        table: &T,
        start: Option<Bound<Vec<u8>>>,
        mut make: F,
    ) -> Result<(Vec<Item<E>>, bool), MetaError>
    where
        T: ReadableTable<&'static [u8], V>,
        V: Value + 'static,
        F: FnMut(&str, &[u8], &AccessGuard<'_, V>) -> Result<Option<E>, MetaError>,
    {
        let mut items = Vec::new();
        if self.max == 0 {
            return Ok((items, false));
        }
        let lowest = keys::object_prefix(self.bucket_id, self.prefix);
        let upper = keys::prefix_end(&lowest);
        let mut from = match start {
            None => Bound::Included(lowest),
            Some(Bound::Unbounded) => return Ok((items, false)),
            Some(Bound::Included(k) | Bound::Excluded(k)) if k < lowest => Bound::Included(lowest),
            Some(bound) => bound,
        };
        loop {
            if is_past(&from, &upper) {
                return Ok((items, false));
            }
            let mut next_from = None;
            for entry in table.range::<&[u8]>(keys::bounds(&from, &upper))? {
                let (k, v) = entry?;
                let table_key = k.value();
                let (_, key, _) = keys::split_object_key(table_key)?;
                if let Some(group) = self.group_of(&key) {
                    if items.len() >= self.max {
                        return Ok((items, true));
                    }
                    next_from = Some(keys::after_prefix(&keys::object_prefix(self.bucket_id, &group)));
                    items.push(Item::Prefix(group));
                    break;
                }
                if let Some(item) = make(&key, table_key, &v)? {
                    if items.len() >= self.max {
                        return Ok((items, true));
                    }
                    items.push(Item::Entry(item));
                }
            }
            match next_from {
                Some(Bound::Unbounded) | None => return Ok((items, false)),
                Some(bound) => from = bound,
            }
        }
    }
}

/// True if no key can lie in `[from, upper)`.
fn is_past(from: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    let (Bound::Included(f) | Bound::Excluded(f)) = from else {
        return false;
    };
    match upper {
        Bound::Excluded(u) => f >= u,
        Bound::Included(u) => f > u,
        Bound::Unbounded => false,
    }
}

/// `ListObjects` over the `heads` table (current objects only, VER-19).
pub(crate) fn list_objects<T>(heads: &T, bucket_id: u64, q: &ListObjectsQuery) -> Result<ListObjectsPage, MetaError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let scan = Scan::new(bucket_id, &q.prefix, q.delimiter.as_deref(), q.max_keys);
    let start = q.start_after.as_deref().map(|after| scan.after_group_of(after));
    let (items, is_truncated) = scan.run(heads, start, |key, _, value| {
        let record: VersionRecord = decode(value.value())?;
        Ok((!record.is_delete_marker()).then(|| (key.to_owned(), record)))
    })?;
    let mut page = ListObjectsPage { is_truncated, ..ListObjectsPage::default() };
    let last = items.last().map(|item| match item {
        Item::Entry((key, _)) => key.clone(),
        Item::Prefix(p) => p.clone(),
    });
    for item in items {
        match item {
            Item::Entry(entry) => page.objects.push(entry),
            Item::Prefix(p) => page.common_prefixes.push(p),
        }
    }
    if is_truncated {
        page.next_marker = last;
    }
    Ok(page)
}

/// `ListObjectVersions` over the `versions` table (VER-20).
pub(crate) fn list_versions<V, N>(
    versions: &V,
    nulls: &N,
    bucket_id: u64,
    q: &ListVersionsQuery,
) -> Result<ListVersionsPage, MetaError>
where
    V: ReadableTable<&'static [u8], &'static [u8]>,
    N: ReadableTable<&'static [u8], u64>,
{
    let scan = Scan::new(bucket_id, &q.prefix, q.delimiter.as_deref(), q.max_keys);
    // Object-key bytes of the last key seen: its later entries are not the latest.
    let mut previous_key: Option<Vec<u8>> = None;
    let start = match (&q.key_marker, &q.version_id_marker) {
        (None, Some(_)) => {
            return Err(MetaError::InvalidArgument(
                "A version-id marker cannot be specified without a key marker.".into(),
            ));
        }
        (None, None) => None,
        (Some(key), _) if scan.group_of(key).is_some() => Some(scan.after_group_of(key)),
        (Some(key), None) => Some(keys::after_key(bucket_id, key)),
        (Some(key), Some(version_id)) => {
            // Resume mid-key, right after that version: none of the key's remaining entries
            // is the latest.
            previous_key = Some(keys::object_key(bucket_id, key));
            let stamp = match stamp_of(version_id)? {
                Some(stamp) => Some(stamp),
                None => nulls.get(keys::object_key(bucket_id, key).as_slice())?.map(|g| g.value()),
            };
            match stamp {
                Some(stamp) => Some(Bound::Excluded(keys::version_key(bucket_id, key, stamp))),
                // The null version named by the marker is gone: restart at the key (an entry may
                // repeat, none is lost).
                None => Some(Bound::Included(keys::object_key(bucket_id, key))),
            }
        }
    };
    let (items, is_truncated) = scan.run(versions, start, |key, table_key, value| {
        let object_key = &table_key[..table_key.len().saturating_sub(8)];
        let is_latest = previous_key.as_deref() != Some(object_key);
        if is_latest {
            previous_key = Some(object_key.to_vec());
        }
        let record: VersionRecord = decode(value.value())?;
        debug_assert_eq!(keys::version_key_stamp(table_key).ok(), Some(record.stamp));
        Ok(Some(VersionEntry { key: key.to_owned(), record, is_latest }))
    })?;
    let mut page = ListVersionsPage { is_truncated, ..ListVersionsPage::default() };
    let last = items.last().map(|item| match item {
        Item::Entry(e) => (e.key.clone(), Some(e.record.version_id.clone())),
        Item::Prefix(p) => (p.clone(), None),
    });
    for item in items {
        match item {
            Item::Entry(entry) => page.entries.push(entry),
            Item::Prefix(p) => page.common_prefixes.push(p),
        }
    }
    if is_truncated && let Some((key, version_id)) = last {
        page.next_key_marker = Some(key);
        page.next_version_id_marker = version_id;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    //! Model-based: random version histories (incl. delete markers, null versions, keys with
    //! shared prefixes, '/', NUL and non-ASCII), listed page by page through the markers, must
    //! equal a brute-force listing of a `BTreeMap` model (VER-19, VER-20).

    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use xregion_types::VersioningState;

    use super::*;
    use crate::tests::{bucket, open, put};
    use crate::{MetaStore, WriteOp, WriteOutcome};

    #[derive(Debug, Clone)]
    enum Action {
        Put(Index),
        Delete(Index),
        DeleteVersion(Index, Index),
        SetState(VersioningState),
    }

    /// key → versions, newest first.
    type Model = BTreeMap<String, Vec<VersionRecord>>;

    /// A listed item: `(key or common prefix, Some((version id, is_latest)))` or `(prefix, None)`.
    type Listed = (String, Option<(VersionId, bool)>);

    fn key_part() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "/", "\0", "é", "z", "ab", "a/"])
    }

    fn key() -> impl Strategy<Value = String> {
        prop::collection::vec(key_part(), 1..5).prop_map(|parts| parts.concat())
    }

    fn prefix() -> impl Strategy<Value = String> {
        prop::collection::vec(key_part(), 0..2).prop_map(|parts| parts.concat())
    }

    fn delimiter() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec!["/", "\0", "b", "ab", "é"]).prop_map(String::from))
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            5 => any::<Index>().prop_map(Action::Put),
            2 => any::<Index>().prop_map(Action::Delete),
            2 => (any::<Index>(), any::<Index>()).prop_map(|(k, v)| Action::DeleteVersion(k, v)),
            1 => prop::sample::select(vec![VersioningState::Enabled, VersioningState::Suspended])
                .prop_map(Action::SetState),
        ]
    }

    #[derive(Debug, Clone)]
    struct Query {
        prefix: String,
        delimiter: Option<String>,
        max_keys: usize,
        start: Option<String>,
    }

    fn query() -> impl Strategy<Value = Query> {
        (prefix(), delimiter(), 1usize..5, prop::option::of(key()))
            .prop_map(|(prefix, delimiter, max_keys, start)| Query { prefix, delimiter, max_keys, start })
    }

    fn apply(store: &MetaStore, model: &mut Model, keys: &[String], action: &Action) {
        match action {
            Action::Put(i) => {
                let key = i.get(keys);
                let (record, _) = put(store, "model", key, "e");
                let versions = model.entry(key.clone()).or_default();
                if record.version_id.is_null() {
                    versions.retain(|v| !v.version_id.is_null());
                }
                versions.insert(0, record);
            }
            Action::Delete(i) => {
                let key = i.get(keys);
                let op = WriteOp::DeleteObject {
                    bucket: "model".into(),
                    key: key.clone(),
                    outbox: vec![].into(),
                    if_current: None,
                };
                let Ok(WriteOutcome::Deleted { removed, marker, .. }) = store.write_blocking(op) else { panic!() };
                let versions = model.entry(key.clone()).or_default();
                if let Some(removed) = removed {
                    let before = versions.len();
                    versions.retain(|v| v != &removed);
                    assert_eq!(versions.len() + 1, before, "removed version was in the model");
                }
                if let Some(marker) = marker {
                    versions.insert(0, marker);
                }
                if versions.is_empty() {
                    model.remove(key);
                }
            }
            Action::DeleteVersion(k, v) => {
                let key = k.get(keys);
                let Some(versions) = model.get_mut(key) else {
                    return;
                };
                let target = v.get(versions).clone();
                let op = WriteOp::DeleteVersion {
                    bucket: "model".into(),
                    key: key.clone(),
                    version_id: target.version_id.clone(),
                };
                let Ok(WriteOutcome::Deleted { removed, .. }) = store.write_blocking(op) else { panic!() };
                assert_eq!(removed.as_ref(), Some(&target));
                versions.retain(|v| v != &target);
                if versions.is_empty() {
                    model.remove(key);
                }
            }
            Action::SetState(state) => {
                store.write_blocking(WriteOp::SetVersioning { name: "model".into(), state: *state }).unwrap();
            }
        }
    }

    fn group_of(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
        Scan::new(0, prefix, delimiter, 1).group_of(key)
    }

    /// Brute force: every item in listing order, `live_only` for ListObjects.
    fn expected(model: &Model, q: &Query, live_only: bool) -> Vec<Listed> {
        let mut out: Vec<Listed> = Vec::new();
        for (key, versions) in model {
            if !key.starts_with(&q.prefix) || (live_only && versions[0].is_delete_marker()) {
                continue;
            }
            if let Some(group) = group_of(key, &q.prefix, q.delimiter.as_deref()) {
                if out.last().is_none_or(|(last, v)| v.is_some() || *last != group) {
                    out.push((group, None));
                }
                continue;
            }
            let shown = if live_only { &versions[..1] } else { &versions[..] };
            for (i, v) in shown.iter().enumerate() {
                out.push((key.clone(), Some((v.version_id.clone(), i == 0))));
            }
        }
        // Continuation: only items after the start marker (a group containing it is skipped).
        if let Some(start) = &q.start {
            out.retain(|(item, _)| item.as_bytes() > start.as_bytes());
        }
        out
    }

    /// Interleaves a page's entries and prefixes back into listing order.
    fn merge(mut items: Vec<Listed>) -> Vec<Listed> {
        items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes())); // stable: versions keep order
        items
    }

    fn list_objects_all(store: &MetaStore, bucket_id: u64, q: &Query) -> Vec<Listed> {
        let mut all = Vec::new();
        let mut start_after = q.start.clone();
        for _ in 0..1000 {
            let lq = ListObjectsQuery {
                prefix: q.prefix.clone(),
                delimiter: q.delimiter.clone(),
                start_after: start_after.clone(),
                max_keys: q.max_keys,
            };
            let page = store.list_objects(bucket_id, &lq).unwrap();
            let mut items: Vec<Listed> =
                page.objects.iter().map(|(k, r)| (k.clone(), Some((r.version_id.clone(), true)))).collect();
            items.extend(page.common_prefixes.iter().map(|p| (p.clone(), None)));
            let items = merge(items);
            assert!(items.len() <= q.max_keys);
            if !page.is_truncated {
                assert!(page.next_marker.is_none());
                all.extend(items);
                return all;
            }
            assert_eq!(items.len(), q.max_keys, "a truncated page is full");
            assert_eq!(page.next_marker.as_ref(), items.last().map(|i| &i.0));
            start_after = page.next_marker;
            all.extend(items);
        }
        panic!("pagination does not end");
    }

    fn list_versions_all(store: &MetaStore, bucket_id: u64, q: &Query) -> Vec<Listed> {
        let mut all = Vec::new();
        let (mut key_marker, mut version_id_marker) = (q.start.clone(), None);
        for _ in 0..1000 {
            let lq = ListVersionsQuery {
                prefix: q.prefix.clone(),
                delimiter: q.delimiter.clone(),
                key_marker: key_marker.clone(),
                version_id_marker: version_id_marker.clone(),
                max_keys: q.max_keys,
            };
            let page = store.list_versions(bucket_id, &lq).unwrap();
            let mut items: Vec<Listed> = page
                .entries
                .iter()
                .map(|e| (e.key.clone(), Some((e.record.version_id.clone(), e.is_latest))))
                .collect();
            items.extend(page.common_prefixes.iter().map(|p| (p.clone(), None)));
            let items = merge(items);
            assert!(items.len() <= q.max_keys);
            if !page.is_truncated {
                assert!(page.next_key_marker.is_none() && page.next_version_id_marker.is_none());
                all.extend(items);
                return all;
            }
            assert_eq!(items.len(), q.max_keys, "a truncated page is full");
            let last = items.last().unwrap();
            assert_eq!(page.next_key_marker.as_ref(), Some(&last.0));
            assert_eq!(page.next_version_id_marker.as_ref(), last.1.as_ref().map(|(id, _)| id));
            key_marker = page.next_key_marker;
            version_id_marker = page.next_version_id_marker;
            all.extend(items);
        }
        panic!("pagination does not end");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn listing_pages_equal_the_model(
            keys in prop::collection::btree_set(key(), 1..10).prop_map(|s| s.into_iter().collect::<Vec<_>>()),
            enabled in any::<bool>(),
            actions in prop::collection::vec(action(), 1..30),
            queries in prop::collection::vec(query(), 1..5),
        ) {
            let (_dir, store) = open();
            let state = if enabled { VersioningState::Enabled } else { VersioningState::Unversioned };
            let b = bucket(&store, "model", state);
            let mut model = Model::new();
            for action in &actions {
                apply(&store, &mut model, &keys, action);
            }
            for key in &keys {
                let current = store.get_version(b.id, key, None).unwrap();
                prop_assert_eq!(current.as_ref(), model.get(key).map(|v| &v[0]));
            }
            for q in &queries {
                prop_assert_eq!(list_objects_all(&store, b.id, q), expected(&model, q, true), "objects {:?}", q);
                prop_assert_eq!(list_versions_all(&store, b.id, q), expected(&model, q, false), "versions {:?}", q);
            }
        }
    }
}
