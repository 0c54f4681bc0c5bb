//! Carries the lifecycle rules out: a pass over every bucket with a configuration, then a
//! pause, for as long as the region runs.
//!
//! **Contract.** A pass reads each key's versions (newest first) and decides from that
//! snapshot; every action is a normal write that re-checks what it changes, so a write that
//! arrives meanwhile is never lost: the current version is expired by a delete marker made
//! only while it is still current (`WriteOp::DeleteObject::if_current`); a noncurrent
//! version is removed by its id (it stays noncurrent whatever is written later); an expired
//! delete marker is removed by its id. Nothing is kept between passes: a crash, a restart or
//! a failed action only means the next pass does it (S3 too acts asynchronously, some time
//! after the rule makes an object eligible).
//!
//! **Time.** S3 counts whole days: an action `n` days after an instant is due at the first
//! midnight UTC at or after that instant plus `n` days (`due_ms`). A version becomes
//! noncurrent when its successor is written.

use std::time::Duration;

use xregion_meta::{ListUploadsQuery, ListVersionsQuery, MetaError, WriteOp, WriteOutcome};
use xregion_types::lifecycle::{DAY_MS, Expiration, LifecycleConfig, LifecycleRule, due_ms};
use xregion_types::{BucketRecord, ReplicationStatus, VersionId, VersionRecord, now_ms};

use crate::buckets::unexpected;
use crate::{CoreError, CoreResult, Region};

/// Entries read per listing page.
const PAGE: usize = 1000;

/// What one pass did (or several, added up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleReport {
    /// Current versions expired (a delete marker added, or removed in an unversioned bucket).
    pub expired: u64,
    /// Noncurrent versions removed.
    pub noncurrent_removed: u64,
    /// Expired object delete markers removed.
    pub markers_removed: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Actions put off because the version's replication is still pending (STS-9).
    pub waiting_for_replication: u64,
}

impl LifecycleReport {
    fn add(&mut self, other: &Self) {
        self.expired += other.expired;
        self.noncurrent_removed += other.noncurrent_removed;
        self.markers_removed += other.markers_removed;
        self.uploads_aborted += other.uploads_aborted;
        self.waiting_for_replication += other.waiting_for_replication;
    }
}

/// The lifecycle runner since the region started, for the operator report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleStats {
    /// Passes made.
    pub passes: u64,
    /// When the last pass ended, unix milliseconds.
    pub last_pass_ms: Option<i64>,
    /// What the last pass did (its `waiting_for_replication` is how many actions wait now).
    pub last_pass: LifecycleReport,
    /// The actions of every pass, added up.
    pub totals: LifecycleReport,
    /// Why the last pass stopped early, if it did (the next one starts over).
    pub last_error: Option<String>,
}

/// One action decided for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Expire the current version (it must still be current).
    Expire(VersionId),
    /// Remove this version or delete marker.
    Remove(VersionId, Removal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Noncurrent,
    ExpiredMarker,
}

impl Region {
    /// The length of a lifecycle day here ([`DAY_MS`] unless the region was opened with
    /// another for tests).
    pub fn lifecycle_day_ms(&self) -> i64 {
        self.options().lifecycle_day_ms.filter(|d| *d > 0).unwrap_or(DAY_MS)
    }

    /// Runs lifecycle passes until the task is dropped: one at start, then one per
    /// 1/24 of a lifecycle day (an hour; between 100 ms and an hour), and one soon after a
    /// configuration is put.
    pub async fn run_lifecycle(self) {
        let every = Duration::from_millis(u64::try_from(self.lifecycle_day_ms() / 24).unwrap_or(0))
            .clamp(Duration::from_millis(100), Duration::from_secs(3600));
        loop {
            let outcome = self.lifecycle_pass(now_ms()).await;
            match &outcome {
                Ok(report)
                    if report.expired + report.noncurrent_removed + report.markers_removed + report.uploads_aborted
                        > 0 =>
                {
                    tracing::info!(region = %self.name(), ?report, "lifecycle pass");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(region = %self.name(), error = %e, "lifecycle pass failed"),
            }
            self.record_pass(outcome);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.lifecycle_wake().notified() => {}
            }
        }
    }

    fn record_pass(&self, outcome: CoreResult<LifecycleReport>) {
        let mut stats = self.lifecycle_stats_mut();
        stats.passes += 1;
        stats.last_pass_ms = Some(now_ms());
        match outcome {
            Ok(report) => {
                stats.totals.add(&report);
                stats.last_pass = report;
                stats.last_error = None;
            }
            Err(e) => stats.last_error = Some(e.to_string()),
        }
    }

    /// One pass over every bucket with a lifecycle configuration, as of `now` (unix ms). It
    /// reads the store a page (at most [`PAGE`] entries) at a time, on a blocking thread,
    /// between its writes.
    pub async fn lifecycle_pass(&self, now: i64) -> CoreResult<LifecycleReport> {
        let mut report = LifecycleReport::default();
        for bucket in self.list_buckets()? {
            let Some(bytes) = &bucket.lifecycle else { continue };
            let config = super::decode(bytes)?;
            if !config.rules.iter().any(|r| r.enabled) {
                continue;
            }
            self.lifecycle_versions(&bucket, &config, now, &mut report).await?;
            self.lifecycle_uploads(&bucket, &config, now, &mut report).await?;
        }
        Ok(report)
    }

    async fn lifecycle_versions(
        &self,
        bucket: &BucketRecord,
        config: &LifecycleConfig,
        now: i64,
        report: &mut LifecycleReport,
    ) -> CoreResult<()> {
        let day = self.lifecycle_day_ms();
        let mut query = ListVersionsQuery { max_keys: PAGE, ..ListVersionsQuery::default() };
        // A key's versions may span pages: they are gathered before deciding.
        let mut key: Option<String> = None;
        let mut versions: Vec<VersionRecord> = Vec::new();
        loop {
            let (meta, q, id) = (self.meta().clone(), query.clone(), bucket.id);
            let page = tokio::task::spawn_blocking(move || meta.list_versions(id, &q))
                .await
                .map_err(|e| CoreError::Internal(format!("listing for lifecycle: {e}")))??;
            for entry in page.entries {
                if key.as_deref() != Some(entry.key.as_str()) {
                    if let Some(done) = key.take() {
                        let actions = decide(config, &done, &versions, now, day, report);
                        self.act(bucket, &done, actions, report).await?;
                    }
                    key = Some(entry.key.clone());
                    versions.clear();
                }
                versions.push(entry.record);
            }
            if !page.is_truncated {
                break;
            }
            query.key_marker = page.next_key_marker;
            query.version_id_marker = page.next_version_id_marker;
        }
        if let Some(done) = key {
            let actions = decide(config, &done, &versions, now, day, report);
            self.act(bucket, &done, actions, report).await?;
        }
        Ok(())
    }

    /// Carries out one key's actions. One that no longer applies (the key changed since it
    /// was read) is skipped; the next pass looks again.
    async fn act(
        &self,
        bucket: &BucketRecord,
        key: &str,
        actions: Vec<Action>,
        report: &mut LifecycleReport,
    ) -> CoreResult<()> {
        let name = bucket.name.as_str();
        for action in actions {
            let op = match &action {
                // DEL-5: a lifecycle delete marker is never replicated (no tasks).
                Action::Expire(current) => WriteOp::DeleteObject {
                    bucket: name.to_owned(),
                    key: key.to_owned(),
                    outbox: Default::default(),
                    if_current: Some(current.clone()),
                },
                Action::Remove(id, _) => {
                    WriteOp::DeleteVersion { bucket: name.to_owned(), key: key.to_owned(), version_id: id.clone() }
                }
            };
            let freed = match self.meta().write(op).await {
                // Removed by someone else meanwhile: nothing done.
                Ok(WriteOutcome::Deleted { removed: None, marker: None, .. }) => continue,
                Ok(WriteOutcome::Deleted { freed, .. }) => freed,
                Ok(other) => return Err(unexpected(&other)),
                Err(MetaError::PreconditionFailed | MetaError::NoSuchBucket) => continue,
                Err(e) => return Err(e.into()),
            };
            self.free_blobs(&freed).await;
            match action {
                Action::Expire(_) => report.expired += 1,
                Action::Remove(_, Removal::Noncurrent) => report.noncurrent_removed += 1,
                Action::Remove(_, Removal::ExpiredMarker) => report.markers_removed += 1,
            }
        }
        Ok(())
    }

    async fn lifecycle_uploads(
        &self,
        bucket: &BucketRecord,
        config: &LifecycleConfig,
        now: i64,
        report: &mut LifecycleReport,
    ) -> CoreResult<()> {
        let day = self.lifecycle_day_ms();
        let rules: Vec<(&LifecycleRule, u32)> = config
            .rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| r.abort_incomplete_upload_days.map(|d| (r, d)))
            .collect();
        if rules.is_empty() {
            return Ok(());
        }
        let mut query = ListUploadsQuery { max_uploads: PAGE, ..ListUploadsQuery::default() };
        loop {
            let (meta, q, id) = (self.meta().clone(), query.clone(), bucket.id);
            let page = tokio::task::spawn_blocking(move || meta.list_uploads(id, &q))
                .await
                .map_err(|e| CoreError::Internal(format!("listing uploads for lifecycle: {e}")))??;
            for upload in &page.uploads {
                let due = rules.iter().any(|(r, days)| {
                    upload.key.starts_with(r.filter.prefix()) && due_ms(upload.initiated_ms, *days, day) <= now
                });
                if !due {
                    continue;
                }
                match self.abort_upload(bucket.name.as_str(), &upload.key, &upload.upload_id).await {
                    Ok(()) => report.uploads_aborted += 1,
                    // Completed or aborted meanwhile.
                    Err(CoreError::NoSuchUpload) => {}
                    Err(e) => return Err(e),
                }
            }
            if !page.is_truncated {
                return Ok(());
            }
            query.key_marker = page.next_key_marker;
            query.upload_id_marker = page.next_upload_id_marker;
        }
    }
}

/// The actions the enabled rules call for on one key, whose versions are `versions`
/// (newest first, delete markers included), as of `now`.
fn decide(
    config: &LifecycleConfig,
    key: &str,
    versions: &[VersionRecord],
    now: i64,
    day: i64,
    report: &mut LifecycleReport,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(current) = versions.first() else { return actions };
    let rules: Vec<&LifecycleRule> = config.rules.iter().filter(|r| r.enabled).collect();
    let matches = |rule: &LifecycleRule, v: &VersionRecord| match v.object() {
        Some(d) => rule.filter.matches(key, d.size, &d.tags),
        None => rule.filter.matches_marker(key),
    };
    let pending = |v: &VersionRecord| v.replication == ReplicationStatus::Pending;
    // Expiration of the current version (VER-21): a delete marker on top.
    if current.object().is_some() {
        let due = rules.iter().any(|r| {
            matches(r, current)
                && match r.expiration {
                    Some(Expiration::Days(days)) => due_ms(current.last_modified_ms, days, day) <= now,
                    Some(Expiration::Date(date)) => date <= now,
                    _ => false,
                }
        });
        if due {
            match pending(current) {
                true => report.waiting_for_replication += 1,
                false => actions.push(Action::Expire(current.version_id.clone())),
            }
        }
    }
    // Noncurrent object versions: noncurrent since their successor was written.
    let mut newer_noncurrent = 0u32;
    for (i, version) in versions.iter().enumerate().skip(1) {
        if version.object().is_none() {
            continue;
        }
        let since = versions[i - 1].last_modified_ms;
        let due = rules.iter().any(|r| {
            matches(r, version)
                && r.noncurrent.as_ref().is_some_and(|n| {
                    due_ms(since, n.days, day) <= now && n.newer_versions.is_none_or(|keep| newer_noncurrent >= keep)
                })
        });
        newer_noncurrent += 1;
        if due {
            match pending(version) {
                true => report.waiting_for_replication += 1,
                false => actions.push(Action::Remove(version.version_id.clone(), Removal::Noncurrent)),
            }
        }
    }
    // An expired object delete marker: current, with no object version left under it.
    let only_markers = versions.iter().all(VersionRecord::is_delete_marker);
    if current.is_delete_marker()
        && only_markers
        && rules.iter().any(|r| r.expiration == Some(Expiration::ExpiredObjectDeleteMarker) && matches(r, current))
    {
        actions.push(Action::Remove(current.version_id.clone(), Removal::ExpiredMarker));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use xregion_types::lifecycle::{LifecycleFilter, NoncurrentExpiration};
    use xregion_types::{ObjectData, VersionKind};

    fn object(id: u64, at: i64) -> VersionRecord {
        VersionRecord {
            version_id: VersionId::generate(id, [0; 12]),
            stamp: id,
            last_modified_ms: at,
            kind: VersionKind::Object(Box::new(ObjectData { size: 10, ..ObjectData::default() })),
            replication: ReplicationStatus::None,
            replication_targets: Vec::new(),
            tags_changed_ms: None,
        }
    }

    fn marker(id: u64, at: i64) -> VersionRecord {
        VersionRecord { kind: VersionKind::DeleteMarker, ..object(id, at) }
    }

    fn rule(expiration: Option<Expiration>, noncurrent: Option<NoncurrentExpiration>) -> LifecycleConfig {
        LifecycleConfig {
            rules: vec![LifecycleRule {
                id: "r".into(),
                enabled: true,
                filter: LifecycleFilter::Prefix(None),
                expiration,
                noncurrent,
                abort_incomplete_upload_days: None,
            }],
        }
    }

    const D: i64 = 1000;

    #[test]
    fn current_versions_expire_at_the_midnight_after_their_days() {
        let config = rule(Some(Expiration::Days(2)), None);
        let v = [object(1, 2_500)];
        let mut r = LifecycleReport::default();
        // Created at 2.5 days, 2 days: due at day 5 (4.5 rounded up).
        assert!(decide(&config, "k", &v, 4_999, D, &mut r).is_empty());
        assert_eq!(decide(&config, "k", &v, 5_000, D, &mut r), [Action::Expire(v[0].version_id.clone())]);
        // A current delete marker is not expired again.
        assert!(decide(&config, "k", &[marker(2, 3_000), object(1, 2_500)], 9_000, D, &mut r).is_empty());
    }

    #[test]
    fn a_date_expires_every_current_version_from_then_on() {
        let config = rule(Some(Expiration::Date(5_000)), None);
        let v = [object(1, 9_000)];
        let mut r = LifecycleReport::default();
        assert!(decide(&config, "k", &v, 4_999, D, &mut r).is_empty());
        // Created after the date: expired at once.
        assert_eq!(decide(&config, "k", &v, 9_001, D, &mut r), [Action::Expire(v[0].version_id.clone())]);
    }

    /// STS-9: a version whose replication is pending waits.
    #[test]
    fn pending_replication_puts_actions_off() {
        let config = rule(Some(Expiration::Days(1)), None);
        let mut v = object(1, 0);
        v.replication = ReplicationStatus::Pending;
        let mut r = LifecycleReport::default();
        assert!(decide(&config, "k", &[v], 10_000, D, &mut r).is_empty());
        assert_eq!(r.waiting_for_replication, 1);
    }

    #[test]
    fn noncurrent_versions_expire_from_when_their_successor_came_and_newer_ones_are_kept() {
        let config = rule(None, Some(NoncurrentExpiration { days: 1, newer_versions: Some(1) }));
        // Newest first: current at 5.0, noncurrent since 5.0 (v3), since 3.0 (v2), since 2.0 (v1).
        let v = [object(4, 5_000), object(3, 3_000), object(2, 2_000), object(1, 1_000)];
        let mut r = LifecycleReport::default();
        // At 6.0: v3 is the one newer noncurrent version kept; v2 (due 4.0) and v1 (due 3.0) go.
        let actions = decide(&config, "k", &v, 6_000, D, &mut r);
        let removed: Vec<&VersionId> = actions
            .iter()
            .map(|a| match a {
                Action::Remove(id, Removal::Noncurrent) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(removed, [&v[2].version_id, &v[3].version_id]);
        // Earlier, at 3.5, only v1 is due (noncurrent since 2.0, due 3.0).
        let actions = decide(&config, "k", &v, 3_500, D, &mut r);
        assert_eq!(actions, [Action::Remove(v[3].version_id.clone(), Removal::Noncurrent)]);
    }

    #[test]
    fn an_expired_object_delete_marker_is_removed_only_when_alone() {
        let config = rule(Some(Expiration::ExpiredObjectDeleteMarker), None);
        let mut r = LifecycleReport::default();
        let alone = [marker(2, 1_000)];
        assert_eq!(
            decide(&config, "k", &alone, 1_000, D, &mut r),
            [Action::Remove(alone[0].version_id.clone(), Removal::ExpiredMarker)]
        );
        assert!(decide(&config, "k", &[marker(2, 1_000), object(1, 0)], 1_000, D, &mut r).is_empty());
    }

    proptest::proptest! {
        /// Over any history of a key (objects and markers, newest first, times growing):
        /// noncurrent expiration never touches the current version or a marker, keeps the
        /// `keep` newest noncurrent object versions, and once everything is due removes
        /// exactly the others; a current version is expired only when it is an object.
        #[test]
        fn noncurrent_expiration_keeps_what_it_must(
            kinds in proptest::collection::vec(proptest::bool::weighted(0.8), 1..12),
            gaps in proptest::collection::vec(0i64..3_000, 12),
            keep in proptest::option::of(1u32..4),
            now in 0i64..40_000,
        ) {
            // Oldest first, then reversed to the listing's newest-first order.
            let mut at = 0;
            let mut versions: Vec<VersionRecord> = kinds
                .iter()
                .enumerate()
                .map(|(i, object_kind)| {
                    at += gaps[i];
                    let id = u64::try_from(i).unwrap_or(0) + 1;
                    if *object_kind { object(id, at) } else { marker(id, at) }
                })
                .collect();
            versions.reverse();
            let config = rule(Some(Expiration::Days(1)), Some(NoncurrentExpiration { days: 1, newer_versions: keep }));
            let mut report = LifecycleReport::default();
            let actions = decide(&config, "k", &versions, now, D, &mut report);
            let noncurrent_objects: Vec<&VersionId> =
                versions.iter().skip(1).filter(|v| v.object().is_some()).map(|v| &v.version_id).collect();
            let kept = keep.map_or(0, |k| k as usize).min(noncurrent_objects.len());
            for action in &actions {
                match action {
                    Action::Expire(id) => {
                        proptest::prop_assert_eq!(id, &versions[0].version_id);
                        proptest::prop_assert!(versions[0].object().is_some());
                    }
                    Action::Remove(id, Removal::Noncurrent) => {
                        proptest::prop_assert!(noncurrent_objects[kept..].contains(&id), "removed {id:?}");
                    }
                    Action::Remove(_, Removal::ExpiredMarker) => proptest::prop_assert!(false, "no marker rule"),
                }
            }
            let everything_due = decide(&config, "k", &versions, i64::MAX / 2, D, &mut report);
            let removed: Vec<&VersionId> = everything_due
                .iter()
                .filter_map(|a| match a {
                    Action::Remove(id, _) => Some(id),
                    Action::Expire(_) => None,
                })
                .collect();
            proptest::prop_assert_eq!(removed, noncurrent_objects[kept..].to_vec());
        }
    }

    #[test]
    fn filters_and_disabled_rules_are_honoured() {
        let mut config = rule(Some(Expiration::Days(1)), None);
        config.rules[0].filter = LifecycleFilter::Prefix(Some("logs/".into()));
        let v = [object(1, 0)];
        let mut r = LifecycleReport::default();
        assert!(decide(&config, "data/k", &v, 10_000, D, &mut r).is_empty());
        assert_eq!(decide(&config, "logs/k", &v, 10_000, D, &mut r).len(), 1);
        config.rules[0].enabled = false;
        assert!(decide(&config, "logs/k", &v, 10_000, D, &mut r).is_empty());
    }
}
