//! Batch replication (BAT-1..BAT-4, BAT-10): replicating existing versions on demand.
//!
//! Live replication takes only versions written after the configuration (ELI-1). A batch takes
//! the versions that exist, chosen by their replication status (BAT-3): `NONE` (written before
//! the configuration, or never eligible), `FAILED` (to retry after the cause is fixed: the
//! failure records they leave are removed, BAT-1c), `COMPLETED` (to back-fill a new
//! destination), `REPLICA` (replicas of this bucket, to pass them on down a chain: A→B, then
//! B→C for what A sent before C existed, BAT-1d; they stay replicas). Each chosen version or delete marker is planned under the bucket's current
//! configuration and current tags, as the rules stand now, and its tasks are committed to the
//! outbox with the version marked `PENDING`, one transaction per version; the replication
//! worker then sends them exactly as it sends live work (same retries, statuses, failure
//! reasons and report). Versions with tasks in flight are skipped, so running a batch twice
//! queues nothing twice.
//!
//! Differences from S3 Batch Operations, on purpose for a first version: the batch is one
//! request that queues and returns (the replication report shows the progress; there is no job
//! object, priority or CSV completion report, BAT-6/BAT-7), and replicas are taken only when
//! `REPLICA` is asked for (a batch without a status list takes NONE, FAILED and COMPLETED: in a
//! two-way pair, sending replicas back to where they came from would only be repeated work).

use std::collections::HashMap;

use futures::StreamExt as _;
use xregion_meta::{ListVersionsQuery, Outbox, WriteOp, WriteOutcome};
use xregion_types::replication::TaskKind;
use xregion_types::{ReplicationStatus, VersionId, VersionRecord};

use crate::buckets::unexpected;
use crate::{CoreError, CoreResult, Region};

/// Versions examined per listing page.
const PAGE: usize = 1000;

/// Version writes in flight at once (they share group commits).
const IN_FLIGHT: usize = 64;

/// The status a batch (or a job's filter) judges a version by (BAT-3): a replica whose last
/// sync failed is a `REPLICA` to send again; every other status reads as it is (`PENDING` and
/// a replica's pending sync match no batch status: versions with tasks in flight are left).
pub(crate) fn batch_status(status: &ReplicationStatus) -> ReplicationStatus {
    match status {
        ReplicationStatus::ReplicaFailed => ReplicationStatus::Replica,
        other => other.clone(),
    }
}

/// Failure records by (key, version id): `(task sequence number, reason)` each.
pub(crate) type FailuresByVersion = HashMap<(String, VersionId), Vec<(u64, String)>>;

/// What a batch replication did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Versions and delete markers of the bucket looked at.
    pub versions_examined: u64,
    /// Of those, queued for replication now.
    pub versions_queued: u64,
    /// Failure records removed because their version was queued again.
    pub failures_cleared: u64,
}

impl Region {
    /// Queues every version and delete marker of `bucket` whose replication status is one of
    /// `statuses` (`None`, `Failed`, `Completed`) and that a rule of the bucket's
    /// configuration selects now (BAT-1..BAT-4). The bucket must have a replication
    /// configuration (`ReplicationConfigurationNotFound`).
    pub async fn replicate_existing(&self, bucket: &str, statuses: &[ReplicationStatus]) -> CoreResult<BatchSummary> {
        use ReplicationStatus::{Completed, Failed, Replica};
        let b = self.bucket(bucket)?;
        if b.replication.is_none() {
            return Err(CoreError::ReplicationConfigurationNotFound);
        }
        if let Some(other) =
            statuses.iter().find(|s| !matches!(s, ReplicationStatus::None | Failed | Completed | Replica))
        {
            return Err(CoreError::InvalidArgument(format!(
                "a batch replication takes versions by status NONE, FAILED, COMPLETED or REPLICA, not {other:?}"
            )));
        }
        let failures = if statuses.contains(&Failed) { self.failures_by_version(b.id)? } else { HashMap::new() };
        let mut summary = BatchSummary::default();
        let mut query = ListVersionsQuery { max_keys: PAGE, ..ListVersionsQuery::default() };
        loop {
            let page = self.meta().list_versions(b.id, &query)?;
            let mut entries = page.entries;
            summary.versions_examined += entries.len() as u64;
            // Oldest first within a key, so that a delete marker follows the versions it hides.
            entries.sort_by(|a, b| a.key.cmp(&b.key).then(a.record.stamp.cmp(&b.record.stamp)));
            let mut writes = Vec::new();
            for entry in entries {
                if !statuses.contains(&batch_status(&entry.record.replication)) {
                    continue;
                }
                // BAT-4: unlike live replication (ELI-13), a batch replicates replicas too, under
                // the rules that select originals.
                let outbox = self.plan_existing(bucket, &entry.key, &entry.record)?;
                if outbox.is_empty() {
                    continue;
                }
                let version = (entry.key.clone(), entry.record.version_id.clone());
                let clear_failures = failures.get(&version).map(|f| f.iter().map(|(seq, _)| *seq).collect());
                let clear_failures = clear_failures.unwrap_or_default();
                let op = WriteOp::ReplicateVersion {
                    bucket: bucket.to_owned(),
                    key: entry.key,
                    version_id: entry.record.version_id,
                    statuses: statuses.to_vec(),
                    outbox,
                    clear_failures,
                };
                writes.push(op);
            }
            let cleared: Vec<u64> = writes
                .iter()
                .map(|op| match op {
                    WriteOp::ReplicateVersion { clear_failures, .. } => clear_failures.len() as u64,
                    _ => 0,
                })
                .collect();
            for (queued, cleared) in self.queue_versions(writes).await?.into_iter().zip(cleared) {
                if queued {
                    summary.versions_queued += 1;
                    summary.failures_cleared += cleared;
                }
            }
            if !page.is_truncated {
                return Ok(summary);
            }
            query.key_marker = page.next_key_marker;
            query.version_id_marker = page.next_version_id_marker;
        }
    }

    /// The tasks an existing version or delete marker gets under the configuration and its
    /// tags as they stand now. BAT-4: unlike live replication (ELI-13), replicas too, under
    /// the rules that select originals.
    pub(crate) fn plan_existing(&self, bucket: &str, key: &str, record: &VersionRecord) -> CoreResult<Outbox> {
        match record.object() {
            Some(data) => self.plan_batch_tasks(bucket, key, &data.tags, TaskKind::Object),
            None => self.plan_batch_tasks(bucket, key, &[], TaskKind::DeleteMarker),
        }
    }

    /// Commits `ReplicateVersion` ops, [`IN_FLIGHT`] at a time (they share group commits), and
    /// wakes the worker; per op, whether it queued tasks.
    pub(crate) async fn queue_versions(&self, writes: Vec<WriteOp>) -> CoreResult<Vec<bool>> {
        let outcomes: Vec<_> = futures::stream::iter(writes.into_iter().map(|op| self.meta().write(op)))
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let mut queued = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome? {
                WriteOutcome::Queued(q) => queued.push(q),
                other => return Err(unexpected(&other)),
            }
        }
        self.tasks_committed(queued.iter().filter(|q| **q).count());
        Ok(queued)
    }

    /// The failure records of a bucket's versions, by (key, version id): each failed task's
    /// sequence number and reason (IAM-8), in failure order (BAT-1c, BAT-7). One scan of the
    /// failure table, which holds only permanent failures.
    pub(crate) fn failures_by_version(&self, bucket_id: u64) -> CoreResult<FailuresByVersion> {
        let mut by_version = FailuresByVersion::new();
        let mut after = None;
        loop {
            let page = self.meta().list_failures(after, PAGE)?;
            let Some(last) = page.last() else { return Ok(by_version) };
            after = Some(last.entry.seq);
            for failed in page {
                if let (true, Some(version)) = (failed.entry.bucket_id == bucket_id, failed.entry.version_id) {
                    by_version.entry((failed.entry.key, version)).or_default().push((failed.entry.seq, failed.reason));
                }
            }
        }
    }
}
