//! What replication owes and how it is doing, for operators (design invariant 6): per source
//! bucket and destination bucket, the pending operations and bytes, the age of the oldest
//! pending version, the permanent failures with their last reason, and the worker's counters
//! and lag histogram since start. Beside them, the counters of the region's metadata writer
//! (`MetaStore::writer_stats`): every PUT, every replica write and every finished task passes
//! that one thread, so its busy time, fsync times and checkpoints explain a lag or a slow
//! ingest that the queues alone do not.
//!
//! The pending figures are read from the outbox on disk, not from the worker's bounded
//! in-memory window, so they are true for any backlog size; the cost is one scan of the
//! outbox (and one version lookup per row) per report. Rendered as JSON
//! ([`ReplicationReport::to_json`]) and in the Prometheus text exposition format
//! ([`ReplicationReport::to_prometheus`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use xregion_core::replica::decode_task;
use xregion_core::{DiskStatus, Region};
use xregion_meta::{MetaError, WriterStats};
use xregion_types::VersionKind;
use xregion_types::replication::TaskKind;

use crate::worker::{LAG_BUCKETS_MS, LagStats, WorkerStatus};

/// Outbox rows read per page while building a report.
const PAGE: usize = 1024;

/// Replication Time Control's threshold (RTC-1: 15 minutes, the only value AWS takes): an
/// operation still pending this long after it became eligible has missed it (EVT-3's
/// `OperationMissedThreshold`, counted here rather than sent as an event, RTC-4).
pub const RTC_THRESHOLD_MS: i64 = 15 * 60 * 1000;

/// The whole report of one region.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    /// Region name.
    pub region: String,
    /// When the report was made, unix milliseconds.
    pub generated_ms: i64,
    /// Tasks in the outbox (all destinations).
    pub pending_operations: u64,
    /// Per (source bucket, destination bucket, rule) with pending work or recorded failures.
    pub queues: Vec<QueueReport>,
    /// The worker since start, per destination bucket.
    pub destinations: Vec<DestinationReport>,
    /// The worker since start, all destinations.
    pub totals: Totals,
    /// The region's metadata writer since start (times in microseconds).
    pub metadata_writer: WriterStats,
    /// Space on the data directory's filesystem and the reserve body writes leave free (a
    /// region whose available bytes reach the reserve refuses object writes and replicas with
    /// `507 InsufficientStorage`). `None` if the filesystem could not be asked.
    pub disk: Option<DiskStatus>,
    /// This region's version stamp tag and the peers seen answering with the same one (the
    /// server fills it in; `None` from [`build`]). A peer in `shared_with` can generate the
    /// same version stamps as this region: each region must list all the others as peers.
    pub stamp_tag: Option<StampTagReport>,
    /// Requests for buckets of other regions that this region passed on to them, per region,
    /// since start (the server fills it in; empty from [`build`]). Each forwarded byte crosses
    /// between the sites twice: to the owner and back, or from the client and on.
    pub forwarded: Vec<ForwardedReport>,
    /// Batch replication jobs that have not finished (S3 Control, BAT-6), oldest first, and
    /// how many jobs there are in each status.
    pub jobs: JobsReport,
    /// The other regions of the deployment, region name → endpoint, as this region is
    /// configured (the server fills it in; empty from [`build`]); `xregion status --all`
    /// follows them.
    pub peers: BTreeMap<String, String>,
    /// Buckets of other S3 services this region replicates to (`[[targets]]`), bucket →
    /// endpoint (the server fills it in; empty from [`build`]). Their queues and destinations
    /// appear above like any other.
    pub targets: BTreeMap<String, String>,
    /// The lifecycle runner since start (`xregion_core::lifecycle`).
    pub lifecycle: xregion_core::lifecycle::LifecycleStats,
    /// The certificate the region serves HTTPS with (the server fills it in; `None` without
    /// TLS, and from [`build`]): when it expires, peers stop replicating to the region.
    pub tls: Option<TlsReport>,
}

/// The certificate a region serves.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// The end of its validity, unix milliseconds.
    pub certificate_not_after_ms: i64,
    /// The names it is valid for.
    pub certificate_names: Vec<String>,
}

/// Batch replication jobs of the region (`xregion_core::jobs`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobsReport {
    /// Jobs per status (`Active`, `Complete`, …), every job the region keeps.
    pub by_status: BTreeMap<String, u64>,
    /// The jobs not yet `Complete`, `Cancelled` or `Failed`.
    pub unfinished: Vec<JobReport>,
}

/// One unfinished batch replication job.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Job id (as `DescribeJob` takes it).
    pub id: String,
    /// Source bucket.
    pub bucket: String,
    /// Status (`Preparing`, `Suspended`, `Active`, …).
    pub status: String,
    /// Priority.
    pub priority: i32,
    /// Tasks in the manifest so far.
    pub total_tasks: u64,
    /// Tasks queued for replication.
    pub queued_tasks: u64,
    /// Tasks that succeeded.
    pub succeeded_tasks: u64,
    /// Tasks that failed.
    pub failed_tasks: u64,
    /// Creation time, unix milliseconds.
    pub created_ms: i64,
}

/// Requests forwarded to one peer region since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForwardedReport {
    /// The region the requests went to.
    pub region: String,
    /// Reads (GET, HEAD) forwarded.
    pub reads: u64,
    /// Writes forwarded (uploads, copies, deletes, tags, multipart requests).
    pub writes: u64,
    /// Bytes of upload bodies sent on.
    pub upload_bytes: u64,
    /// Requests the region was found to own but did not answer (it went away, was too slow,
    /// or broke off); the client got `503`. A region that cannot be asked at all fails the
    /// lookup before this, also with `503`, and shows in `destinations` and the log.
    pub unavailable: u64,
}

/// A region's version stamp tag (`xregion_types::stamp_tag`) and the peers that share it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StampTagReport {
    /// This region's tag.
    pub tag: u8,
    /// Peers that answered with the same tag (should be empty).
    pub shared_with: Vec<String>,
}

/// Pending work and recorded failures of one source bucket towards one destination bucket
/// under one rule: the four series of S3's replication metrics (MET-1, MET-3: operations and
/// bytes pending, latency, failed operations) and RTC's threshold (RTC-4).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueReport {
    /// Source bucket (`#<id>` if it was deleted meanwhile).
    pub source_bucket: String,
    /// Destination bucket.
    pub destination_bucket: String,
    /// The rule that sent the operations there (PRI-1: the winning rule for the destination).
    pub rule_id: String,
    /// Operations waiting (new versions, delete markers, tag changes).
    pub pending_operations: u64,
    /// Bytes of the object versions waiting.
    pub pending_bytes: u64,
    /// Of the pending operations, those batch replication queued (versions that already
    /// existed, BAT-1); the figures below leave them out, as S3's do (MET-2, RTC-2).
    pub batch_operations: u64,
    /// When the oldest pending live operation became eligible, unix milliseconds: the
    /// version's last-modified time, or for a tag change the time of the change.
    pub oldest_pending_ms: Option<i64>,
    /// Its age when the report was made, seconds (S3's `ReplicationLatency` for the rule).
    pub oldest_pending_age_seconds: Option<f64>,
    /// Pending live operations that became eligible more than [`RTC_THRESHOLD_MS`] ago.
    pub operations_over_threshold: u64,
    /// Operations that failed for good (kept in the failure table).
    pub failed_operations: u64,
    /// The reason of the latest of those failures (IAM-8 code).
    pub last_failure_reason: Option<String>,
}

/// The worker's view of one destination bucket since start.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    /// Destination bucket.
    pub bucket: String,
    /// Tasks in the worker's memory window.
    pub queued: usize,
    /// Tasks being sent.
    pub in_flight: usize,
    /// The destination could not be reached and is waiting before the next try.
    pub paused: bool,
    /// The last transient error, if the destination has not succeeded since.
    pub last_error: Option<String>,
    /// Tasks completed, failed for good, and retried since start.
    pub completed: u64,
    /// See `completed`.
    pub failed: u64,
    /// See `completed`.
    pub retries: u64,
    /// Lag of what was replicated since start.
    pub lag: LagReport,
}

/// Lag summary: source last-modified → acknowledged by the destination.
#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    /// Versions and delete markers measured.
    pub count: u64,
    /// Sum of the lags, milliseconds.
    pub sum_ms: u64,
    /// Mean lag, milliseconds.
    pub mean_ms: Option<f64>,
    /// Largest lag, milliseconds.
    pub max_ms: u64,
    /// Count per histogram bucket (not cumulative), in bound order.
    pub histogram: Vec<HistogramBucket>,
}

/// One bucket of the lag histogram.
#[derive(Debug, Clone, Serialize)]
pub struct HistogramBucket {
    /// Upper bound in milliseconds (inclusive); `null` for the last, unbounded bucket.
    pub le_ms: Option<u64>,
    /// Lags in this bucket.
    pub count: u64,
}

/// The worker's counters over all destinations.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Tasks completed since start.
    pub completed: u64,
    /// Tasks failed for good since start.
    pub failed: u64,
    /// Transient failures since start.
    pub retries: u64,
    /// Lag of everything replicated since start.
    pub lag: LagReport,
}

impl LagReport {
    fn from(stats: &LagStats) -> Self {
        let bounds = LAG_BUCKETS_MS.iter().map(|b| Some(*b)).chain(std::iter::once(None));
        Self {
            count: stats.count,
            sum_ms: stats.sum_ms,
            mean_ms: (stats.count > 0).then(|| stats.sum_ms as f64 / stats.count as f64),
            max_ms: stats.max_ms,
            histogram: bounds.zip(stats.buckets).map(|(le_ms, count)| HistogramBucket { le_ms, count }).collect(),
        }
    }
}

/// Builds the report: scans the outbox and the failure table of `region` (blocking reads; call
/// from a blocking thread) and adds the worker's `status`.
pub fn build(region: &Region, status: &WorkerStatus) -> Result<ReplicationReport, MetaError> {
    build_at(region, status, xregion_types::now_ms())
}

/// [`build`] with the clock read: ages are measured to `now` (unix milliseconds).
fn build_at(region: &Region, status: &WorkerStatus, now: i64) -> Result<ReplicationReport, MetaError> {
    let meta = region.meta();
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut name_of = |id: u64| -> Result<String, MetaError> {
        if let Some(n) = names.get(&id) {
            return Ok(n.clone());
        }
        let n = meta.bucket_name(id)?.unwrap_or_else(|| format!("#{id}"));
        names.insert(id, n.clone());
        Ok(n)
    };
    let mut queues: BTreeMap<(String, String, String), QueueReport> = BTreeMap::new();
    let mut pending = 0;
    let mut after = None;
    loop {
        let rows = meta.list_outbox(after, PAGE)?;
        let full = rows.len() == PAGE;
        for entry in rows {
            after = Some(entry.seq);
            pending += 1;
            // An undecodable task is failed by the worker; it still counts as pending here.
            let (kind, dest, rule, batch) = match decode_task(&entry.task) {
                Ok(t) => (Some(t.kind), t.destination_bucket, t.rule_id, t.batch),
                Err(_) => (None, "?".to_owned(), "?".to_owned(), false),
            };
            let q = queue_of(&mut queues, name_of(entry.bucket_id)?, dest, rule);
            q.pending_operations += 1;
            let Some(id) = &entry.version_id else { continue };
            let Some(version) = meta.get_version(entry.bucket_id, &entry.key, Some(id))? else { continue };
            if let (Some(TaskKind::Object), VersionKind::Object(data)) = (kind, &version.kind) {
                q.pending_bytes += data.size;
            }
            if batch {
                q.batch_operations += 1;
                continue;
            }
            // A tag change is eligible when it was made, not when its version was written.
            let eligible = match kind {
                Some(TaskKind::Tags) => version.tags_changed_ms.unwrap_or(version.last_modified_ms),
                _ => version.last_modified_ms,
            };
            if now - eligible > RTC_THRESHOLD_MS {
                q.operations_over_threshold += 1;
            }
            if q.oldest_pending_ms.is_none_or(|o| eligible < o) {
                q.oldest_pending_ms = Some(eligible);
                q.oldest_pending_age_seconds = Some((now - eligible).max(0) as f64 / 1000.0);
            }
        }
        if !full {
            break;
        }
    }
    let mut after = None;
    loop {
        let rows = meta.list_failures(after, PAGE)?;
        let full = rows.len() == PAGE;
        for failure in rows {
            after = Some(failure.entry.seq);
            let (dest, rule) = decode_task(&failure.entry.task)
                .map(|t| (t.destination_bucket, t.rule_id))
                .unwrap_or_else(|_| ("?".into(), "?".into()));
            let q = queue_of(&mut queues, name_of(failure.entry.bucket_id)?, dest, rule);
            q.failed_operations += 1;
            q.last_failure_reason = Some(failure.reason);
        }
        if !full {
            break;
        }
    }
    let destinations = status
        .destinations
        .iter()
        .map(|d| DestinationReport {
            bucket: d.bucket.clone(),
            queued: d.queued,
            in_flight: d.running,
            paused: d.paused,
            last_error: d.last_error.clone(),
            completed: d.completed,
            failed: d.failed,
            retries: d.retries,
            lag: LagReport::from(&d.lag),
        })
        .collect();
    Ok(ReplicationReport {
        region: region.name().to_owned(),
        generated_ms: now,
        pending_operations: pending,
        queues: queues.into_values().collect(),
        destinations,
        totals: Totals {
            completed: status.completed,
            failed: status.failed,
            retries: status.retries,
            lag: LagReport::from(&status.lag),
        },
        metadata_writer: meta.writer_stats(),
        disk: region.disk_status().ok(),
        stamp_tag: None,
        forwarded: Vec::new(),
        jobs: jobs_report(meta.list_jobs()?),
        peers: BTreeMap::new(),
        targets: BTreeMap::new(),
        lifecycle: region.lifecycle_stats(),
        tls: None,
    })
}

/// The report of (source, destination, rule), added empty if new.
fn queue_of(
    queues: &mut BTreeMap<(String, String, String), QueueReport>,
    source_bucket: String,
    destination_bucket: String,
    rule_id: String,
) -> &mut QueueReport {
    let key = (source_bucket.clone(), destination_bucket.clone(), rule_id.clone());
    queues.entry(key).or_insert_with(|| QueueReport {
        source_bucket,
        destination_bucket,
        rule_id,
        ..QueueReport::default()
    })
}

/// Counts jobs by status and lists the unfinished ones.
fn jobs_report(jobs: Vec<xregion_types::job::JobRecord>) -> JobsReport {
    let mut report = JobsReport::default();
    for job in jobs {
        *report.by_status.entry(job.status.as_str().to_owned()).or_default() += 1;
        if !job.status.is_terminal() {
            report.unfinished.push(JobReport {
                id: job.id,
                bucket: job.spec.bucket,
                status: job.status.as_str().to_owned(),
                priority: job.priority,
                total_tasks: job.total_tasks,
                queued_tasks: job.queued_upto,
                succeeded_tasks: job.succeeded,
                failed_tasks: job.failed,
                created_ms: job.created_ms,
            });
        }
    }
    report
}

impl ReplicationReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        match serde_json::to_string_pretty(self) {
            Ok(s) => s,
            // Plain structs of strings and numbers always serialise.
            Err(e) => unreachable!("replication report to JSON: {e}"),
        }
    }

    /// The report in the Prometheus text exposition format (version 0.0.4). Written by hand:
    /// a handful of gauges and one histogram do not justify a metrics crate and its registry.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let region = label(&self.region);
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{region=\"{region}\"{labels}}} {value}");
            }
        };
        let queue = |q: &QueueReport| {
            format!(
                ",source_bucket=\"{}\",destination_bucket=\"{}\",rule_id=\"{}\"",
                label(&q.source_bucket),
                label(&q.destination_bucket),
                label(&q.rule_id)
            )
        };
        family(
            "xregion_replication_pending_operations",
            "gauge",
            "Replication operations waiting in the outbox.",
            self.queues.iter().map(|q| (queue(q), q.pending_operations.to_string())).collect(),
        );
        family(
            "xregion_replication_pending_bytes",
            "gauge",
            "Bytes of the object versions waiting to be replicated.",
            self.queues.iter().map(|q| (queue(q), q.pending_bytes.to_string())).collect(),
        );
        family(
            "xregion_replication_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest live operation waiting to be replicated (0 when none waits).",
            self.queues.iter().map(|q| (queue(q), q.oldest_pending_age_seconds.unwrap_or(0.0).to_string())).collect(),
        );
        family(
            "xregion_replication_batch_pending_operations",
            "gauge",
            "Of the operations waiting, those batch replication queued (versions that already existed).",
            self.queues.iter().map(|q| (queue(q), q.batch_operations.to_string())).collect(),
        );
        family(
            "xregion_replication_operations_over_threshold",
            "gauge",
            "Live operations still waiting 15 minutes after they became eligible (RTC's OperationMissedThreshold).",
            self.queues.iter().map(|q| (queue(q), q.operations_over_threshold.to_string())).collect(),
        );
        family(
            "xregion_replication_failed_operations",
            "gauge",
            "Replication operations that failed for good (status FAILED), kept with their reason.",
            self.queues.iter().map(|q| (queue(q), q.failed_operations.to_string())).collect(),
        );
        let dest = |d: &DestinationReport| format!(",destination_bucket=\"{}\"", label(&d.bucket));
        for (name, help, get) in [
            (
                "completed",
                "Replication tasks completed since start.",
                (|d| d.completed) as fn(&DestinationReport) -> u64,
            ),
            ("failed", "Replication tasks failed for good since start.", |d| d.failed),
            ("retries", "Transient replication failures (each retried) since start.", |d| d.retries),
        ] {
            family(
                &format!("xregion_replication_tasks_{name}_total"),
                "counter",
                help,
                self.destinations.iter().map(|d| (dest(d), get(d).to_string())).collect(),
            );
        }
        family(
            "xregion_replication_destination_paused",
            "gauge",
            "1 while the destination is unreachable and waiting before the next try.",
            self.destinations.iter().map(|d| (dest(d), u8::from(d.paused).to_string())).collect(),
        );
        let w = &self.metadata_writer;
        let seconds = |us: u64| (us as f64 / 1e6).to_string();
        for (name, help, value) in [
            ("groups_total", "Metadata write groups (one transaction each) since start.", w.groups.to_string()),
            (
                "ops_total",
                "Metadata write operations since start; ops / groups is the mean group size.",
                w.ops.to_string(),
            ),
            ("failed_groups_total", "Metadata write groups that failed as a whole.", w.failed_groups.to_string()),
            ("busy_seconds_total", "Time the metadata writer spent committing groups.", seconds(w.busy_us)),
            ("journal_syncs_total", "Groups made durable by a journal record.", w.journal_syncs.to_string()),
            ("journal_seconds_total", "Time spent writing and fsyncing journal records.", seconds(w.journal_us)),
            ("checkpoints_total", "Durable commits of the metadata database.", w.checkpoints.to_string()),
            ("checkpoint_seconds_total", "Time spent in checkpoints.", seconds(w.checkpoint_us)),
        ] {
            family(&format!("xregion_metadata_writer_{name}"), "counter", help, vec![(String::new(), value)]);
        }
        if let Some(disk) = &self.disk {
            for (name, help, value) in [
                ("available_bytes", "Free space on the data directory's filesystem.", disk.available_bytes),
                ("total_bytes", "Size of the data directory's filesystem.", disk.total_bytes),
                (
                    "reserve_bytes",
                    "Free space kept for metadata: object writes are refused (507) when available falls below it.",
                    disk.reserve_bytes,
                ),
            ] {
                family(&format!("xregion_disk_{name}"), "gauge", help, vec![(String::new(), value.to_string())]);
            }
        }
        if let Some(tls) = &self.tls {
            family(
                "xregion_tls_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the certificate the region serves HTTPS with expires (unix seconds).",
                vec![(String::new(), (tls.certificate_not_after_ms / 1000).to_string())],
            );
        }
        let life = &self.lifecycle;
        family(
            "xregion_lifecycle_actions_total",
            "counter",
            "Lifecycle actions taken since start, by kind.",
            [
                ("expired", life.totals.expired),
                ("noncurrent_removed", life.totals.noncurrent_removed),
                ("expired_delete_marker_removed", life.totals.markers_removed),
                ("upload_aborted", life.totals.uploads_aborted),
            ]
            .into_iter()
            .map(|(action, n)| (format!(",action=\"{action}\""), n.to_string()))
            .collect(),
        );
        family(
            "xregion_lifecycle_waiting_for_replication",
            "gauge",
            "Lifecycle actions the last pass put off because their version's replication is pending (STS-9).",
            vec![(String::new(), life.last_pass.waiting_for_replication.to_string())],
        );
        if let Some(tags) = &self.stamp_tag {
            family(
                "xregion_stamp_tag_shared_with_peers",
                "gauge",
                "Peers answering with this region's version stamp tag (should be 0: list every region as a peer on each).",
                vec![(String::new(), tags.shared_with.len().to_string())],
            );
        }
        let to = |f: &ForwardedReport| format!(",to_region=\"{}\"", label(&f.region));
        family(
            "xregion_forwarded_requests_total",
            "counter",
            "Requests for buckets of other regions passed on to them.",
            self.forwarded
                .iter()
                .flat_map(|f| {
                    [(format!("{},kind=\"read\"", to(f)), f.reads), (format!("{},kind=\"write\"", to(f)), f.writes)]
                })
                .map(|(labels, n)| (labels, n.to_string()))
                .collect(),
        );
        family(
            "xregion_forwarded_upload_bytes_total",
            "counter",
            "Bytes of upload bodies passed on to other regions.",
            self.forwarded.iter().map(|f| (to(f), f.upload_bytes.to_string())).collect(),
        );
        family(
            "xregion_forwarded_unavailable_total",
            "counter",
            "Requests passed on to their bucket's region that it did not answer (answered 503).",
            self.forwarded.iter().map(|f| (to(f), f.unavailable.to_string())).collect(),
        );
        family(
            "xregion_batch_jobs",
            "gauge",
            "Batch replication jobs (S3 Control) kept by the region, per status.",
            self.jobs
                .by_status
                .iter()
                .map(|(status, n)| (format!(",status=\"{}\"", label(status)), n.to_string()))
                .collect(),
        );
        let remaining: u64 =
            self.jobs.unfinished.iter().map(|j| j.total_tasks.saturating_sub(j.succeeded_tasks + j.failed_tasks)).sum();
        family(
            "xregion_batch_job_tasks_remaining",
            "gauge",
            "Tasks of unfinished batch replication jobs without an outcome yet.",
            vec![(String::new(), remaining.to_string())],
        );
        let name = "xregion_replication_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Source last-modified to destination acknowledgement, per replicated version.\n# TYPE {name} histogram"
        );
        for d in &self.destinations {
            let labels = format!("region=\"{region}\"{}", dest(d));
            let mut cumulative = 0;
            for bucket in &d.lag.histogram {
                cumulative += bucket.count;
                let le = bucket.le_ms.map_or_else(|| "+Inf".to_owned(), |ms| (ms as f64 / 1000.0).to_string());
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", d.lag.sum_ms as f64 / 1000.0);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", d.lag.count);
        }
        out
    }
}

/// Escapes a Prometheus label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xregion_core::NoPeers;
    use xregion_core::replica::encode_task;
    use xregion_meta::{WriteOp, WriteOutcome};
    use xregion_types::replication::ReplicationTask;
    use xregion_types::{BucketName, ObjectData, VersioningState};

    use super::*;
    use crate::worker::DestinationStatus;

    fn task(kind: TaskKind, dest: &str) -> Vec<u8> {
        encode_task(&ReplicationTask {
            kind,
            rule_id: "r".into(),
            destination_bucket: dest.into(),
            storage_class: None,
            batch: false,
        })
    }

    /// A region with a versioned bucket `src` (no replication configuration: the tests write
    /// its outbox rows themselves).
    async fn source_region() -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        let name = BucketName::parse("src").unwrap();
        region.meta().write(WriteOp::CreateBucket { name, created_ms: 0 }).await.unwrap();
        let op = WriteOp::SetVersioning { name: "src".into(), state: VersioningState::Enabled };
        region.meta().write(op).await.unwrap();
        (dir, region)
    }

    async fn put(region: &Region, key: &str, size: u64, outbox: Vec<Vec<u8>>) {
        let data = ObjectData { size, storage_class: "STANDARD".into(), ..ObjectData::default() };
        let op = WriteOp::PutVersion {
            bucket: "src".into(),
            key: key.into(),
            data,
            inline: None,
            replica: None,
            precondition: None,
            outbox: outbox.into(),
        };
        assert!(matches!(region.meta().write(op).await.unwrap(), WriteOutcome::Version { .. }));
    }

    #[test]
    fn lag_buckets_are_upper_bounds() {
        let mut lag = LagStats::default();
        for ms in [0, 10, 11, 900_000, 900_001] {
            lag.record(ms);
        }
        assert_eq!((lag.count, lag.sum_ms, lag.max_ms), (5, 1_800_022, 900_001));
        assert_eq!(lag.buckets[0], 2, "0 and 10 ms are <= 10 ms");
        assert_eq!(lag.buckets[1], 1, "11 ms is <= 25 ms");
        assert_eq!(lag.buckets[LAG_BUCKETS_MS.len() - 1], 1, "15 minutes is within RTC's threshold");
        assert_eq!(lag.buckets[LAG_BUCKETS_MS.len()], 1, "beyond the last bound: after the threshold");
    }

    /// Invariant 6: pending operations and bytes, oldest pending version and failures per
    /// source and destination bucket, read from the outbox on disk; the Prometheus text
    /// carries the same figures.
    #[tokio::test]
    async fn inv6_report_counts_what_the_outbox_and_failure_table_hold() {
        let (_dir, region) = source_region().await;
        let before = xregion_types::now_ms();
        put(&region, "a", 100, vec![task(TaskKind::Object, "d1"), task(TaskKind::Object, "d2")]).await;
        put(&region, "b", 20, vec![task(TaskKind::Object, "d1")]).await;
        put(&region, "c", 7, vec![task(TaskKind::Tags, "d1")]).await;
        let first = region.meta().list_outbox(None, 1).unwrap()[0].seq;
        region.meta().write(WriteOp::FailTask { seq: first, reason: "DstBucketUnversioned".into() }).await.unwrap();

        let mut lag = LagStats::default();
        lag.record(40);
        let status = WorkerStatus {
            completed: 3,
            lag: lag.clone(),
            destinations: vec![DestinationStatus { bucket: "d1".into(), completed: 3, lag, ..Default::default() }],
            ..Default::default()
        };
        let report = build(&region, &status).unwrap();
        assert_eq!(report.pending_operations, 3);
        assert!(report.queues.iter().all(|q| q.rule_id == "r" && q.operations_over_threshold == 0));
        let q: Vec<_> = report
            .queues
            .iter()
            .map(|q| (q.destination_bucket.as_str(), q.pending_operations, q.pending_bytes, q.failed_operations))
            .collect();
        // d1: b (20 bytes) and c's tag change (no bytes); a's task failed. d2: a (100 bytes).
        assert_eq!(q, vec![("d1", 2, 20, 1), ("d2", 1, 100, 0)]);
        assert!(report.queues.iter().all(|q| q.source_bucket == "src"));
        assert_eq!(report.queues[0].last_failure_reason.as_deref(), Some("DstBucketUnversioned"));
        assert!(report.queues[0].oldest_pending_ms.is_some_and(|t| t >= before));
        assert_eq!(report.totals.lag.max_ms, 40);

        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["queues"][1]["pending_bytes"], 100);
        let text = report.to_prometheus();
        let line = "xregion_replication_pending_bytes{region=\"test-1\",source_bucket=\"src\",destination_bucket=\"d2\",rule_id=\"r\"} 100";
        assert!(text.contains(line), "{text}");
        assert!(text.contains(
            "xregion_replication_failed_operations{region=\"test-1\",source_bucket=\"src\",destination_bucket=\"d1\",rule_id=\"r\"} 1"
        ));
        assert!(text.contains(
            "xregion_replication_lag_seconds_bucket{region=\"test-1\",destination_bucket=\"d1\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "xregion_replication_lag_seconds_bucket{region=\"test-1\",destination_bucket=\"d1\",le=\"0.025\"} 0"
        ));
        assert!(text.contains("xregion_replication_lag_seconds_count{region=\"test-1\",destination_bucket=\"d1\"} 1"));
        assert!(
            text.contains("xregion_replication_tasks_completed_total{region=\"test-1\",destination_bucket=\"d1\"} 3")
        );
        // The metadata writer's counters: two setup writes, three PUTs and one FailTask so far.
        assert_eq!(report.metadata_writer.ops, 6);
        assert_eq!(json["metadata_writer"]["ops"], 6);
        assert!(text.contains("xregion_metadata_writer_ops_total{region=\"test-1\"} 6"), "{text}");
        assert!(!text.contains("xregion_forwarded_requests_total{"), "no peers, nothing forwarded: {text}");
        assert!(!text.contains("xregion_tls_"), "no HTTPS, no certificate: {text}");
        // The certificate of a region serving HTTPS, as the server fills it in.
        let mut with_tls = report.clone();
        with_tls.tls = Some(TlsReport {
            certificate_not_after_ms: 1_798_761_600_000,
            certificate_names: vec!["s3.example".into()],
        });
        assert!(
            with_tls
                .to_prometheus()
                .contains("xregion_tls_certificate_expiry_timestamp_seconds{region=\"test-1\"} 1798761600\n")
        );
        let json: serde_json::Value = serde_json::from_str(&with_tls.to_json()).expect("JSON");
        assert_eq!(json["tls"]["certificate_names"][0], "s3.example");
        // Forwarded requests, as the server fills them in.
        let mut with_peers = report.clone();
        let eu = ForwardedReport { region: "eu-west-1".into(), reads: 2, writes: 3, upload_bytes: 100, unavailable: 1 };
        with_peers.forwarded = vec![eu];
        let text = with_peers.to_prometheus();
        for line in [
            "xregion_forwarded_requests_total{region=\"test-1\",to_region=\"eu-west-1\",kind=\"read\"} 2",
            "xregion_forwarded_requests_total{region=\"test-1\",to_region=\"eu-west-1\",kind=\"write\"} 3",
            "xregion_forwarded_upload_bytes_total{region=\"test-1\",to_region=\"eu-west-1\"} 100",
            "xregion_forwarded_unavailable_total{region=\"test-1\",to_region=\"eu-west-1\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let json: serde_json::Value = serde_json::from_str(&with_peers.to_json()).unwrap();
        assert_eq!(json["forwarded"][0]["upload_bytes"], 100);
        let groups = report.metadata_writer.groups;
        assert!(text.contains(&format!("xregion_metadata_writer_groups_total{{region=\"test-1\"}} {groups}")));
        assert!(text.contains("# TYPE xregion_metadata_writer_checkpoint_seconds_total counter"));
        // The disk the region writes to, and the reserve below which it refuses object writes.
        let disk = report.disk.expect("statvfs of the data directory");
        assert!(disk.total_bytes > 0 && disk.available_bytes <= disk.total_bytes);
        assert_eq!(disk.reserve_bytes, xregion_core::default_reserve(disk.total_bytes));
        assert_eq!(json["disk"]["reserve_bytes"], disk.reserve_bytes);
        assert!(text.contains(&format!("xregion_disk_reserve_bytes{{region=\"test-1\"}} {}", disk.reserve_bytes)));
        assert!(text.contains("# TYPE xregion_disk_available_bytes gauge"), "{text}");
    }

    /// RTC-4, MET-1: operations are counted per rule, and those pending for more than 15
    /// minutes since they became eligible are over RTC's threshold; a tag change becomes
    /// eligible when it is made, not when its version was written.
    #[tokio::test]
    async fn rtc4_operations_over_the_threshold_are_counted_per_rule() {
        let (_dir, region) = source_region().await;
        let rule = |kind, rule_id: &str| {
            let task = ReplicationTask {
                kind,
                rule_id: rule_id.into(),
                destination_bucket: "d".into(),
                storage_class: None,
                batch: false,
            };
            encode_task(&task)
        };
        put(&region, "a", 1, vec![rule(TaskKind::Object, "first")]).await;
        put(&region, "b", 1, vec![rule(TaskKind::Object, "second")]).await;
        // MET-2, RTC-2: an operation batch replication queued counts as pending, not for RTC.
        let mut queued_by_batch = decode_task(&rule(TaskKind::Object, "second")).unwrap();
        queued_by_batch.batch = true;
        put(&region, "c", 1, vec![encode_task(&queued_by_batch)]).await;
        let written = xregion_types::now_ms();
        let status = WorkerStatus::default();

        let soon = build_at(&region, &status, written + RTC_THRESHOLD_MS - 1000).unwrap();
        let per_rule: Vec<_> = soon
            .queues
            .iter()
            .map(|q| (q.rule_id.as_str(), q.pending_operations, q.batch_operations, q.operations_over_threshold))
            .collect();
        assert_eq!(per_rule, vec![("first", 1, 0, 0), ("second", 2, 1, 0)]);
        let late = build_at(&region, &status, written + RTC_THRESHOLD_MS + 1000).unwrap();
        assert!(late.queues.iter().all(|q| q.operations_over_threshold == 1), "{:?}", late.queues);
        let text = late.to_prometheus();
        let line = "xregion_replication_operations_over_threshold{region=\"test-1\",source_bucket=\"src\",\
                    destination_bucket=\"d\",rule_id=\"second\"} 1";
        assert!(text.contains(line), "{text}");

        // A tag change, much later than its version was written, is as old as the change.
        let entry = region.meta().list_outbox(None, 1).unwrap().remove(0);
        let version = region.meta().get_version(entry.bucket_id, "a", None).unwrap().expect("version a");
        let changed_ms = written + 2 * RTC_THRESHOLD_MS;
        let op = WriteOp::SetObjectTags {
            bucket: "src".into(),
            key: "a".into(),
            version_id: Some(version.version_id.clone()),
            tags: vec![("k".into(), "v".into())],
            replicated_ms: Some(changed_ms),
            outbox: vec![rule(TaskKind::Tags, "first")].into(),
        };
        region.meta().write(op).await.unwrap();
        let report = build_at(&region, &status, changed_ms + 1000).unwrap();
        let first = report.queues.iter().find(|q| q.rule_id == "first").unwrap();
        assert_eq!((first.pending_operations, first.operations_over_threshold), (2, 1), "{first:?}");
        assert_eq!(first.oldest_pending_ms, Some(version.last_modified_ms));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
