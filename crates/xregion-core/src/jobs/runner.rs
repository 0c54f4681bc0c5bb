//! The lifecycle of a job (BAT-6), one bounded step at a time under the job lock: generating
//! the manifest, queuing its tasks, settling their outcomes, and ending the job (see the
//! module docs of `jobs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xregion_meta::{WriteOp, WriteOutcome};
use xregion_types::job::{JobFilter, JobRecord, JobSpec, JobStatus, JobTask, TaskOutcome};
use xregion_types::{BucketRecord, ReplicationStatus, VersionRecord, now_ms};

use super::{PAGE, Step, failed};
use crate::batch_replication::{FailuresByVersion, batch_status};
use crate::buckets::unexpected;
use crate::{CoreError, CoreResult, Region};

/// Settled tasks after which the failure rate is judged (BAT-6).
const FAILURE_THRESHOLD_TASKS: u64 = 1000;

/// How long a finished job is kept (DescribeJob, ListJobs) before it is forgotten, as on AWS.
const JOB_RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

/// How long a job whose step failed is left alone before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the runner looks at jobs waiting for their tasks to settle, at first.
const SETTLE_POLL: Duration = Duration::from_millis(200);

/// The longest wait between those looks, reached when nothing settles for a while.
const SETTLE_POLL_MAX: Duration = Duration::from_secs(5);

impl Region {
    /// Runs the jobs of this region until the process ends: steps every runnable job in
    /// priority order (higher first, BAT-8: several jobs on one bucket run side by side), and
    /// sleeps when none made progress, until a job is created or changed or, while one waits
    /// for replication, for a short poll. Errors are logged and retried (a job is never
    /// dropped because a step failed).
    pub async fn run_jobs(&self) {
        // A job whose step failed is left alone for a second (the others go on), so one
        // broken job neither starves the rest nor fills the log.
        let mut retry_after: HashMap<String, Instant> = HashMap::new();
        // Jobs waiting for replication are looked at every SETTLE_POLL at first, less often
        // the longer nothing settles (a destination that stays down), up to SETTLE_POLL_MAX.
        let mut settle_poll = SETTLE_POLL;
        loop {
            let step = self.step_all_jobs(&mut retry_after).await;
            if !matches!(step, Ok(Step::Waiting)) {
                settle_poll = SETTLE_POLL;
            }
            let waited = match step {
                Ok(Step::Progress) => continue,
                Ok(Step::Waiting) => {
                    let waited = settle_poll;
                    settle_poll = (settle_poll * 2).min(SETTLE_POLL_MAX);
                    waited
                }
                Ok(Step::Idle) if !retry_after.is_empty() => RETRY_AFTER,
                Ok(Step::Idle) => Duration::from_secs(60),
                Err(e) => {
                    tracing::warn!(error = %e, "batch replication jobs cannot be listed; retrying");
                    RETRY_AFTER
                }
            };
            let _ = tokio::time::timeout(waited, self.jobs_state().wake.notified()).await;
        }
    }

    /// One step of every job that can move (except those in `retry_after` until their time);
    /// the most hopeful outcome of them.
    pub(super) async fn step_all_jobs(&self, retry_after: &mut HashMap<String, Instant>) -> CoreResult<Step> {
        let mut jobs = self.meta().list_jobs()?;
        let forgot = self.forget_jobs_ended_before(&jobs, now_ms().saturating_sub(JOB_RETENTION_MS)).await?;
        jobs.retain(|j| !j.status.is_terminal() && j.status != JobStatus::Suspended);
        jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
        let now = Instant::now();
        retry_after.retain(|id, at| *at > now && jobs.iter().any(|j| &j.id == id));
        jobs.retain(|j| !retry_after.contains_key(&j.id));
        let mut overall = Step::Idle;
        for job in &jobs {
            let step = match self.step_job(&job.id).await {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(job = %job.id, status = job.status.as_str(), error = %e, "batch replication job step failed; retrying");
                    retry_after.insert(job.id.clone(), Instant::now() + RETRY_AFTER);
                    Step::Idle
                }
            };
            overall = match (overall, step) {
                (Step::Progress, _) | (_, Step::Progress) => Step::Progress,
                (Step::Waiting, _) | (_, Step::Waiting) => Step::Waiting,
                _ => Step::Idle,
            };
        }
        Ok(if forgot { Step::Progress } else { overall })
    }

    /// Forgets those of `jobs` (the stored ones, as just listed) that ended (`Complete`,
    /// `Cancelled`, `Failed`) before `cutoff_ms`: their task rows a few pages per call, then
    /// the record (AWS keeps a job 90 days). True if rows are left to forget. Reports the
    /// jobs wrote are objects, and stay.
    pub(super) async fn forget_jobs_ended_before(&self, jobs: &[JobRecord], cutoff_ms: i64) -> CoreResult<bool> {
        let expired = jobs.iter().filter(|j| j.status.is_terminal() && j.terminated_ms.is_some_and(|t| t < cutoff_ms));
        for job in expired {
            let _guard = self.jobs_state().lock.lock().await;
            match self.meta().write(WriteOp::ForgetJob { seq: job.seq, limit: 10 * PAGE }).await? {
                WriteOutcome::Forgot(true) => {
                    tracing::info!(job = %job.id, "forgot a batch replication job past its retention")
                }
                WriteOutcome::Forgot(false) => return Ok(true),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(false)
    }

    /// Moves one job one step (see the module docs), under the job lock.
    pub(super) async fn step_job(&self, id: &str) -> CoreResult<Step> {
        let _guard = self.jobs_state().lock.lock().await;
        let mut job = self.job(id)?;
        match job.status {
            JobStatus::New => {
                job.status = JobStatus::Preparing;
                self.store_job(&job, Vec::new()).await?;
                Ok(Step::Progress)
            }
            JobStatus::Preparing | JobStatus::Active => {
                let bucket = match self.bucket(&job.spec.bucket) {
                    Ok(bucket) => bucket,
                    Err(CoreError::NoSuchBucket) => {
                        return self.fail_job(job, "NoSuchBucket", "The source bucket was deleted.").await;
                    }
                    Err(e) => return Err(e),
                };
                match job.status {
                    JobStatus::Preparing if job.spec.manifest.is_some() => self.prepare_csv_page(job, &bucket).await,
                    JobStatus::Preparing => self.prepare_page(job, &bucket).await,
                    _ if job.queued_upto < job.total_tasks => self.queue_page(job, &bucket).await,
                    _ => self.settle_page(job, &bucket).await,
                }
            }
            JobStatus::Ready => {
                job.status = JobStatus::Active;
                job.active_since_ms = Some(now_ms());
                self.store_job(&job, Vec::new()).await?;
                Ok(Step::Progress)
            }
            JobStatus::Completing | JobStatus::Cancelling | JobStatus::Failing => {
                let mut status = match job.status {
                    JobStatus::Completing => JobStatus::Complete,
                    JobStatus::Cancelling => JobStatus::Cancelled,
                    _ => JobStatus::Failed,
                };
                // A report bucket deleted meanwhile: the job ends without its report, failed.
                match self.write_report(&mut job).await {
                    Ok(()) => {}
                    Err(CoreError::NoSuchBucket) => {
                        let reason = "The completion report could not be written: its bucket was deleted.";
                        job.failure_reasons.push(("ReportBucketNotFound".into(), reason.into()));
                        status = JobStatus::Failed;
                    }
                    Err(e) => return Err(e),
                }
                job.status = status;
                job.terminated_ms = Some(now_ms());
                self.store_job(&job, Vec::new()).await?;
                Ok(Step::Progress)
            }
            JobStatus::Suspended | JobStatus::Complete | JobStatus::Cancelled | JobStatus::Failed => Ok(Step::Idle),
        }
    }

    /// `Preparing`: one page of the version listing into the manifest.
    async fn prepare_page(&self, mut job: JobRecord, bucket: &BucketRecord) -> CoreResult<Step> {
        let mut query = xregion_meta::ListVersionsQuery { max_keys: PAGE, ..Default::default() };
        if let Some((key, version)) = &job.scan_after {
            query.key_marker = Some(key.clone());
            query.version_id_marker = Some(version.clone());
        }
        let page = self.meta().list_versions(bucket.id, &query)?;
        let mut entries = page.entries;
        // Oldest first within a key, so that a delete marker is queued after the versions it hides.
        entries.sort_by(|a, b| a.key.cmp(&b.key).then(a.record.stamp.cmp(&b.record.stamp)));
        let mut tasks = Vec::new();
        for entry in entries {
            if !self.manifest_takes(&job.spec, &entry.key, &entry.record)? {
                continue;
            }
            let task = JobTask { key: entry.key, version_id: entry.record.version_id, outcome: TaskOutcome::Open };
            tasks.push((job.total_tasks, task));
            job.total_tasks += 1;
        }
        if page.is_truncated {
            job.scan_after = page.next_key_marker.zip(page.next_version_id_marker);
            self.store_job(&job, tasks).await?;
            return Ok(Step::Progress);
        }
        // The manifest is complete: store its last page before writing it out.
        job.scan_after = None;
        self.store_job(&job, tasks).await?;
        self.end_preparing(job).await?;
        Ok(Step::Progress)
    }

    /// The manifest is complete: `Suspended` for confirmation, or `Active`.
    pub(super) async fn end_preparing(&self, mut job: JobRecord) -> CoreResult<()> {
        if job.spec.manifest_output.is_some() {
            self.write_manifest(&mut job).await?;
        }
        if job.spec.confirmation_required {
            job.status = JobStatus::Suspended;
            job.suspended_ms = Some(now_ms());
        } else {
            job.status = JobStatus::Active;
            job.active_since_ms = Some(now_ms());
        }
        self.store_job(&job, Vec::new()).await
    }

    /// Whether the generated manifest takes this version (BAT-2's `Filter`, BAT-3).
    fn manifest_takes(&self, spec: &JobSpec, key: &str, record: &VersionRecord) -> CoreResult<bool> {
        let f = &spec.filter;
        if !filter_takes(f, key, record) {
            return Ok(false);
        }
        if f.eligible_for_replication {
            return Ok(!self.plan_existing(&spec.bucket, key, record)?.is_empty());
        }
        Ok(true)
    }

    /// `Active`: queues the next page of tasks for replication.
    async fn queue_page(&self, mut job: JobRecord, b: &BucketRecord) -> CoreResult<Step> {
        let bucket = &job.spec.bucket;
        let statuses = job_statuses(&job.spec.filter);
        let rows = self.meta().job_tasks(job.seq, job.queued_upto, PAGE)?;
        let wanted: Vec<_> = rows.iter().map(|(_, t)| (b.id, t.key.as_str(), &t.version_id)).collect();
        let versions = self.meta().get_versions(wanted)?;
        let mut decided = Vec::new();
        let mut writes = Vec::new();
        let mut failures = LazyFailures::default();
        for ((number, task), version) in rows.iter().zip(versions) {
            if task.outcome != TaskOutcome::Open {
                continue; // Failed while the manifest was read.
            }
            let Some(record) = version else {
                let gone = failed("NoSuchVersion", 404, "The version no longer exists.");
                decided.push((*number, JobTask { outcome: gone, ..task.clone() }));
                continue;
            };
            let outbox = self.plan_existing(bucket, &task.key, &record)?;
            if outbox.is_empty() {
                let message = "No rule of the bucket's replication configuration selects this version.";
                decided.push((*number, JobTask { outcome: failed("InvalidRequest", 400, message), ..task.clone() }));
                continue;
            }
            let clear_failures = match record.replication {
                ReplicationStatus::Failed | ReplicationStatus::ReplicaFailed => {
                    let failures = failures.get_or(self, b.id)?;
                    let of_version = failures.get(&(task.key.clone(), record.version_id.clone()));
                    of_version.map(|f| f.iter().map(|(seq, _)| *seq).collect()).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            writes.push(WriteOp::ReplicateVersion {
                bucket: bucket.clone(),
                key: task.key.clone(),
                version_id: record.version_id,
                statuses: statuses.clone(),
                outbox,
                clear_failures,
            });
        }
        self.queue_versions(writes).await?;
        job.queued_upto += rows.len() as u64;
        self.store_job(&job, decided).await?;
        Ok(Step::Progress)
    }

    /// `Active`, everything queued: records the outcome of the tasks whose versions have
    /// settled, in order, up to the first that has not.
    async fn settle_page(&self, mut job: JobRecord, b: &BucketRecord) -> CoreResult<Step> {
        if job.settled_upto >= job.total_tasks {
            job.status = JobStatus::Completing;
            self.store_job(&job, Vec::new()).await?;
            return Ok(Step::Progress);
        }
        let rows = self.meta().job_tasks(job.seq, job.settled_upto, PAGE)?;
        let wanted: Vec<_> = rows.iter().map(|(_, t)| (b.id, t.key.as_str(), &t.version_id)).collect();
        let versions = self.meta().get_versions(wanted)?;
        let mut settled = Vec::new();
        let mut failures = LazyFailures::default();
        for ((number, task), version) in rows.into_iter().zip(versions) {
            let outcome = match (&task.outcome, version) {
                (TaskOutcome::Failed { .. } | TaskOutcome::Succeeded, _) => task.outcome.clone(),
                (TaskOutcome::Open, None) => failed("NoSuchVersion", 404, "The version no longer exists."),
                (TaskOutcome::Open, Some(record)) => match record.replication {
                    ReplicationStatus::Pending | ReplicationStatus::ReplicaPending => break,
                    ReplicationStatus::Completed | ReplicationStatus::Replica => TaskOutcome::Succeeded,
                    ReplicationStatus::Failed | ReplicationStatus::ReplicaFailed => {
                        let failures = failures.get_or(self, b.id)?;
                        let of_version = failures.get(&(task.key.clone(), record.version_id.clone()));
                        let reason = of_version.and_then(|f| f.first()).map(|(_, reason)| reason.clone());
                        let reason = reason.unwrap_or_else(|| "ReplicationFailed".to_owned());
                        let message = format!("Replication failed: {reason}");
                        failed(&reason, failure_http_status(&reason), &message)
                    }
                    ReplicationStatus::None => {
                        failed("InvalidRequest", 400, "The version was not replicated: no rule selected it.")
                    }
                },
            };
            match outcome {
                TaskOutcome::Succeeded => job.succeeded += 1,
                TaskOutcome::Failed { .. } => job.failed += 1,
                TaskOutcome::Open => {}
            }
            settled.push((number, JobTask { outcome, ..task }));
        }
        if settled.is_empty() {
            return Ok(Step::Waiting);
        }
        job.settled_upto += settled.len() as u64;
        let done = job.succeeded + job.failed;
        if done >= FAILURE_THRESHOLD_TASKS && job.failed * 2 > done {
            job.status = JobStatus::Failing;
            let reason = format!("{} of {} tasks failed, more than half (BAT-6).", job.failed, done);
            job.failure_reasons.push(("TaskFailureRateExceeded".into(), reason));
        }
        self.store_job(&job, settled).await?;
        Ok(Step::Progress)
    }

    /// Fails a job for a job-level reason (its report is still written).
    pub(super) async fn fail_job(&self, mut job: JobRecord, code: &str, reason: &str) -> CoreResult<Step> {
        job.failure_reasons.push((code.to_owned(), reason.to_owned()));
        job.status = JobStatus::Failing;
        self.store_job(&job, Vec::new()).await?;
        Ok(Step::Progress)
    }
}

/// A bucket's failure records, read once a page needs them.
#[derive(Default)]
struct LazyFailures(Option<FailuresByVersion>);

impl LazyFailures {
    fn get_or(&mut self, region: &Region, bucket_id: u64) -> CoreResult<&FailuresByVersion> {
        if self.0.is_none() {
            self.0 = Some(region.failures_by_version(bucket_id)?);
        }
        Ok(self.0.get_or_insert_default())
    }
}

/// Whether the filter's own conditions (not eligibility) take a version.
pub(super) fn filter_takes(f: &JobFilter, key: &str, record: &VersionRecord) -> bool {
    if !job_statuses(f).contains(&batch_status(&record.replication)) {
        return false;
    }
    if f.created_after_ms.is_some_and(|after| record.last_modified_ms <= after)
        || f.created_before_ms.is_some_and(|before| record.last_modified_ms >= before)
    {
        return false;
    }
    // `KeyNameConstraint`: any of its patterns matching is enough; none given takes every key.
    let any_key = f.match_any_prefix.is_empty() && f.match_any_suffix.is_empty() && f.match_any_substring.is_empty();
    let key_matches = any_key
        || f.match_any_prefix.iter().any(|p| key.starts_with(p.as_str()))
        || f.match_any_suffix.iter().any(|s| key.ends_with(s.as_str()))
        || f.match_any_substring.iter().any(|s| key.contains(s.as_str()));
    if !key_matches {
        return false;
    }
    let sized = f.size_greater_than.is_some() || f.size_less_than.is_some() || !f.storage_classes.is_empty();
    match record.object() {
        // A delete marker has no size or storage class: only filters without them take it.
        None => !sized,
        Some(data) => {
            f.size_greater_than.is_none_or(|min| data.size > min)
                && f.size_less_than.is_none_or(|max| data.size < max)
                && (f.storage_classes.is_empty() || f.storage_classes.contains(&data.storage_class))
        }
    }
}

/// The statuses a job takes: its filter's, or every one batch replication can take (BAT-3:
/// without a status filter everything eligible is attempted, replicas included, BAT-4).
pub(super) fn job_statuses(f: &JobFilter) -> Vec<ReplicationStatus> {
    if f.statuses.is_empty() {
        use ReplicationStatus::{Completed, Failed, None, Replica};
        vec![None, Failed, Completed, Replica]
    } else {
        f.statuses.clone()
    }
}

/// The HTTP status a replication failure reason (IAM-8) goes with in a report.
pub(super) fn failure_http_status(reason: &str) -> u16 {
    match reason {
        "DstBucketNotFound" | "SrcObjectNotFound" | "DstObjectNotFound" => 404,
        r if r.contains("Permission") || r.contains("AccessDenied") || r.contains("NotPermitted") => 403,
        r if r.starts_with("Dst") || r.starts_with("Src") => 400,
        _ => 500,
    }
}
