//! Batch replication jobs (S3 Batch Operations' `S3ReplicateObject`, BAT-2..BAT-8).
//!
//! `CreateJob` stores a [`JobRecord`]; [`Region::run_jobs`] (one background task per region)
//! then drives every job through its lifecycle (BAT-6), one bounded step at a time, each step
//! one transaction that stores the job's record together with the task rows it produced:
//!
//! * `New` → `Preparing`: the manifest is generated (BAT-2) by listing the source bucket's
//!   versions and delete markers, a page per step, keeping those the filter takes; each page's
//!   tasks are stored with the listing position after them, so a restart resumes the listing
//!   where the last stored page ended. With `EnableManifestOutput` the manifest is written as a
//!   CSV object once complete. Then `Suspended` (if `ConfirmationRequired`, until
//!   `UpdateJobStatus Ready`) or straight on.
//! * `Ready` → `Active`: tasks are queued a page per step, exactly as the `/_xregion`
//!   batch replication queues versions (`WriteOp::ReplicateVersion`, planned under the
//!   configuration and tags as they stand now); the replication worker sends them as live work.
//!   Queuing a page again after a crash is harmless: a version with tasks in flight is never
//!   queued twice.
//! * Still `Active`, the tasks are *settled* in order: a task's outcome is known once no task
//!   of its version is left in the outbox. The version then reads `COMPLETED` (or `REPLICA`):
//!   the task succeeded; `FAILED` (`REPLICA` with a failed sync): it failed, with the recorded
//!   failure reason (IAM-8) as its error code. Outcomes and counts are stored together. A
//!   destination that is down keeps the job `Active`, as it keeps versions `PENDING`.
//! * Once at least 1000 tasks are settled, more than half of them failed fails the job
//!   (BAT-6). Every task settled: `Completing`; then the completion report (BAT-7) is written
//!   and the job is `Complete` (`Cancelled` after a cancel, `Failed` after a failure).
//!
//! All changes to a job (the runner's steps and the user's `UpdateJobStatus`) happen under one
//! lock, so neither overwrites the other's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use xregion_meta::{WriteOp, WriteOutcome};
use xregion_types::job::{
    CsvManifest, JobFilter, JobRecord, JobSpec, JobStatus, JobTagsProblem, JobTask, MAX_JOB_TAGS, TaskOutcome,
    check_job_tags,
};
use xregion_types::{BucketRecord, ReplicationStatus, VersionId, VersionRecord, now_ms};

use crate::batch_replication::{FailuresByVersion, batch_status};
use crate::buckets::{BucketLocation, unexpected};
use crate::objects::{ObjectMeta, PutRequest};
use crate::{CoreError, CoreResult, Region};

/// Versions listed, tasks queued or tasks settled per step.
const PAGE: usize = 1000;
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
/// Rows per CSV file of a report or manifest output (about 15 MB of report rows).
const ROWS_PER_FILE: usize = 100_000;
/// `ReportSchema` of the completion report (BAT-7).
const REPORT_SCHEMA: &str = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

/// The shared state of the job runner: one lock for every change to a job, and the runner's
/// wake-up.
#[derive(Default)]
pub(crate) struct JobsState {
    lock: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

/// What one runner step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Progress was made; step again.
    Progress,
    /// Waiting for replication (tasks not settled yet).
    Waiting,
    /// Nothing to do (terminal, or waiting for confirmation).
    Idle,
}

impl Region {
    /// S3 Control `CreateJob` (BAT-2): validates and stores a new job, or returns the job a
    /// previous request with the same `ClientRequestToken` created.
    pub async fn create_job(&self, mut spec: JobSpec) -> CoreResult<JobRecord> {
        check_tags(&spec.tags)?;
        let _guard = self.jobs_state().lock.lock().await;
        if let Some(existing) = self.meta().list_jobs()?.into_iter().find(|j| j.spec.client_token == spec.client_token)
        {
            // The same request again (a client's retry) is the same job; other parameters with
            // the same token are refused, as on AWS. What CreateJob filled in (a CSV
            // manifest's bucket and pinned version) is not the client's to repeat.
            let mut asked = existing.spec.clone();
            if let (Some(stored), Some(given)) = (&mut asked.manifest, &spec.manifest) {
                stored.version_id.clone_from(&given.version_id);
            }
            if spec.manifest.is_some() {
                asked.bucket.clone_from(&spec.bucket);
            }
            if asked != spec {
                return Err(CoreError::Idempotency(format!(
                    "The ClientRequestToken {} was used for job {} with other parameters.",
                    spec.client_token, existing.id
                )));
            }
            return Ok(existing);
        }
        if let Some(manifest) = &mut spec.manifest {
            // The manifest is checked now (it exists here, its ETag is the one given) and pinned
            // to the version checked; its first row names the bucket the job replicates.
            let data = self.manifest_object(manifest)?;
            let head = self.read_range(&data, 0, data.size.min(MANIFEST_CHUNK)).await?;
            let first = head.split(|b| *b == b'\n').find(|line| !line.iter().all(u8::is_ascii_whitespace));
            let row = first.map(|line| parse_manifest_row(line, manifest.with_version_ids)).transpose()?;
            spec.bucket = row.ok_or_else(|| invalid_request("The manifest has no rows.".into()))?.bucket;
        }
        // S3 Control jobs run in the source bucket's region (BAT-2); NoSuchBucket would read
        // as a request to reroute, so a bucket elsewhere is named, not redirected to.
        let bucket = match self.locate_bucket(&spec.bucket).await? {
            BucketLocation::Local(bucket) => bucket,
            BucketLocation::Remote(owner) => {
                return Err(invalid_request(format!(
                    "The source bucket {} is in region {owner}: create the job there.",
                    spec.bucket
                )));
            }
        };
        if bucket.replication.is_none() {
            return Err(CoreError::ReplicationConfigurationNotFound);
        }
        if let Some(report) = &spec.report {
            self.local_bucket_for(&report.bucket, "completion report")?;
        }
        if let Some(output) = &spec.manifest_output {
            self.local_bucket_for(&output.bucket, "manifest output")?;
        }
        let record = JobRecord::new(new_job_id(), spec, now_ms());
        let stored = match self.meta().write(WriteOp::CreateJob { record }).await? {
            WriteOutcome::Job(stored) => stored,
            other => return Err(unexpected(&other)),
        };
        self.jobs_state().wake.notify_one();
        Ok(stored)
    }

    /// S3 Control `DescribeJob`.
    pub fn job(&self, id: &str) -> CoreResult<JobRecord> {
        self.meta().list_jobs()?.into_iter().find(|j| j.id == id).ok_or_else(|| CoreError::NoSuchJob(id.to_owned()))
    }

    /// S3 Control `ListJobs`: jobs whose status is one of `statuses` (all if empty), newest
    /// first.
    pub fn jobs(&self, statuses: &[JobStatus]) -> CoreResult<Vec<JobRecord>> {
        let mut jobs: Vec<JobRecord> = self
            .meta()
            .list_jobs()?
            .into_iter()
            .filter(|j| statuses.is_empty() || statuses.contains(&j.status))
            .collect();
        jobs.reverse();
        Ok(jobs)
    }

    /// S3 Control `UpdateJobStatus`: `Ready` confirms a `Suspended` job; `Cancelled` cancels
    /// a job that has not finished (one that is queuing or settling tasks writes its report
    /// first, as `Cancelling`). Anything else is a `JobStatusException`.
    pub async fn update_job_status(
        &self,
        id: &str,
        requested: JobStatus,
        reason: Option<String>,
    ) -> CoreResult<JobRecord> {
        let _guard = self.jobs_state().lock.lock().await;
        let mut job = self.job(id)?;
        let next = match (requested, job.status) {
            (JobStatus::Ready, JobStatus::Suspended) => JobStatus::Ready,
            (JobStatus::Cancelled, s) if s.is_terminal() || matches!(s, JobStatus::Cancelling) => {
                return Err(CoreError::JobStatus(format!("The job is {} and cannot be cancelled.", s.as_str())));
            }
            (JobStatus::Cancelled, JobStatus::Active | JobStatus::Completing | JobStatus::Failing) => {
                JobStatus::Cancelling
            }
            (JobStatus::Cancelled, _) => JobStatus::Cancelled,
            (JobStatus::Ready, s) => {
                return Err(CoreError::JobStatus(format!(
                    "Only a Suspended job can be set Ready; this job is {}.",
                    s.as_str()
                )));
            }
            (other, _) => {
                return Err(CoreError::InvalidArgument(format!(
                    "requestedJobStatus must be Ready or Cancelled, not {}",
                    other.as_str()
                )));
            }
        };
        job.status = next;
        job.status_update_reason = reason;
        if next.is_terminal() {
            job.terminated_ms = Some(now_ms());
        }
        self.store_job(&job, Vec::new()).await?;
        self.jobs_state().wake.notify_one();
        Ok(job)
    }

    /// S3 Control `UpdateJobPriority`.
    pub async fn update_job_priority(&self, id: &str, priority: i32) -> CoreResult<JobRecord> {
        if priority < 0 {
            return Err(CoreError::InvalidArgument("Priority must be 0 or more".into()));
        }
        let _guard = self.jobs_state().lock.lock().await;
        let mut job = self.job(id)?;
        job.priority = priority;
        self.store_job(&job, Vec::new()).await?;
        Ok(job)
    }

    /// S3 Control `PutJobTagging` (and `DeleteJobTagging`, an empty set): replaces the job's
    /// tags, whatever its status. At most 50 tags with distinct keys.
    pub async fn put_job_tagging(&self, id: &str, tags: Vec<(String, String)>) -> CoreResult<JobRecord> {
        check_tags(&tags)?;
        let _guard = self.jobs_state().lock.lock().await;
        let mut job = self.job(id)?;
        job.tags = tags;
        self.store_job(&job, Vec::new()).await?;
        Ok(job)
    }

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
    async fn step_all_jobs(&self, retry_after: &mut HashMap<String, Instant>) -> CoreResult<Step> {
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
    async fn forget_jobs_ended_before(&self, jobs: &[JobRecord], cutoff_ms: i64) -> CoreResult<bool> {
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
    async fn step_job(&self, id: &str) -> CoreResult<Step> {
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

    /// `Preparing` with a CSV manifest: the next chunk of its rows into the job's tasks.
    async fn prepare_csv_page(&self, mut job: JobRecord, bucket: &BucketRecord) -> CoreResult<Step> {
        let Some(mut manifest) = job.spec.manifest.clone() else {
            return Err(CoreError::Internal("a CSV step for a job without a CSV manifest".into()));
        };
        let data = match self.manifest_object(&mut manifest) {
            Ok(data) => data,
            Err(CoreError::Invalid(e)) => return self.fail_job(job, "ManifestNotReadable", &e.message).await,
            Err(e) => return Err(e),
        };
        let start = job.manifest_offset;
        let end = data.size.min(start.saturating_add(MANIFEST_CHUNK));
        let chunk = self.read_range(&data, start, end).await?;
        // Whole lines only, unless this chunk ends the object.
        let used = match (end == data.size, chunk.iter().rposition(|b| *b == b'\n')) {
            (true, _) => chunk.len(),
            (false, Some(newline)) => newline + 1,
            (false, None) => {
                let reason = format!("A manifest row is longer than {MANIFEST_CHUNK} bytes.");
                return self.fail_job(job, "ManifestRowTooLong", &reason).await;
            }
        };
        let lines: Vec<&[u8]> = chunk[..used].split(|b| *b == b'\n').collect();
        let mut tasks = Vec::new();
        for line in lines.into_iter().filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            let task = match parse_manifest_row(line, manifest.with_version_ids) {
                Ok(row) if row.bucket != bucket.name.as_str() => JobTask {
                    key: row.key,
                    version_id: row.version_id.unwrap_or(VersionId::Null),
                    outcome: failed(
                        "InvalidRequest",
                        400,
                        &format!("The row names bucket {}; this job replicates {}.", row.bucket, bucket.name),
                    ),
                },
                Ok(row) => match row.version_id {
                    Some(version_id) => JobTask { key: row.key, version_id, outcome: TaskOutcome::Open },
                    // Without a version id, the current version (or delete marker) as it is now.
                    None => match self.meta().get_version(bucket.id, &row.key, None)? {
                        Some(current) => {
                            JobTask { key: row.key, version_id: current.version_id, outcome: TaskOutcome::Open }
                        }
                        None => JobTask {
                            key: row.key,
                            version_id: VersionId::Null,
                            outcome: failed("NoSuchKey", 404, "The key has no version."),
                        },
                    },
                },
                Err(e) => JobTask {
                    key: String::from_utf8_lossy(line).into_owned(),
                    version_id: VersionId::Null,
                    outcome: failed("InvalidRequest", 400, &e.to_string()),
                },
            };
            tasks.push((job.total_tasks, task));
            job.total_tasks += 1;
        }
        job.manifest_offset = start + used as u64;
        let done = job.manifest_offset >= data.size;
        self.store_job(&job, tasks).await?;
        if done {
            self.end_preparing(job).await?;
        }
        Ok(Step::Progress)
    }

    /// The manifest object's data, checked against the job's ETag.
    fn manifest_object(&self, manifest: &mut CsvManifest) -> CoreResult<xregion_types::ObjectData> {
        let unreadable =
            |why: &str| invalid_request(format!("The manifest s3://{}/{} {why}.", manifest.bucket, manifest.key));
        let bucket = match self.bucket(&manifest.bucket) {
            Ok(bucket) => bucket,
            Err(CoreError::NoSuchBucket) => return Err(unreadable("is not in a bucket of this region")),
            Err(e) => return Err(e),
        };
        let version = manifest.version_id.as_deref().map(VersionId::parse).transpose()?;
        let record = self.meta().get_version(bucket.id, &manifest.key, version.as_ref())?;
        let Some(record) = record else { return Err(unreadable("does not exist")) };
        let Some(data) = record.object() else { return Err(unreadable("is a delete marker")) };
        if data.etag != manifest.etag {
            return Err(unreadable(&format!("has ETag {}, not {}", data.etag, manifest.etag)));
        }
        manifest.version_id = Some(record.version_id.as_str().to_owned());
        Ok(data.clone())
    }

    /// Bytes `start..end` of an object version, in memory.
    async fn read_range(&self, data: &xregion_types::ObjectData, start: u64, end: u64) -> CoreResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = self.read_object(data, start, end);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| CoreError::Internal(format!("reading the manifest: {e}")))?);
        }
        Ok(out)
    }

    /// The manifest is complete: `Suspended` for confirmation, or `Active`.
    async fn end_preparing(&self, mut job: JobRecord) -> CoreResult<()> {
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
    async fn fail_job(&self, mut job: JobRecord, code: &str, reason: &str) -> CoreResult<Step> {
        job.failure_reasons.push((code.to_owned(), reason.to_owned()));
        job.status = JobStatus::Failing;
        self.store_job(&job, Vec::new()).await?;
        Ok(Step::Progress)
    }

    /// The completion report (BAT-7): result CSVs for succeeded and failed tasks (only the
    /// failed ones with `FailedTasksOnly`), [`ROWS_PER_FILE`] rows a file, and the
    /// `manifest.json` that lists them, under `<prefix>/job-<id>/`.
    async fn write_report(&self, job: &mut JobRecord) -> CoreResult<()> {
        let Some(report) = job.spec.report.clone() else { return Ok(()) };
        let base = job_prefix(report.prefix.as_deref(), &job.id);
        let mut succeeded = CsvFiles::new(&report.bucket, format!("{base}results/succeeded"));
        let mut failed_rows = CsvFiles::new(&report.bucket, format!("{base}results/failed"));
        let bucket = job.spec.bucket.clone();
        for page in self.task_pages(job) {
            for task in page? {
                let (target, status, http, code, message) = match &task.outcome {
                    TaskOutcome::Succeeded if report.failed_only => continue,
                    TaskOutcome::Succeeded => (&mut succeeded, "succeeded", 200, "", "Successful"),
                    TaskOutcome::Failed { code, http_status, message } => {
                        (&mut failed_rows, "failed", *http_status, code.as_str(), message.as_str())
                    }
                    // Cancelled or failed before the task ran.
                    TaskOutcome::Open => continue,
                };
                // The data columns are in the order of AWS's own reports: status, HTTP status,
                // error code, message (their `ReportSchema` line names the middle two the
                // other way round).
                let row = format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&bucket),
                    csv_field(&urlencoding::encode(&task.key)),
                    csv_field(task.version_id.as_str()),
                    status,
                    http,
                    csv_field(code),
                    csv_field(message)
                );
                target.push(self, &row).await?;
            }
        }
        let mut results = Vec::new();
        let mut keys = Vec::new();
        for (status, files) in [("succeeded", succeeded), ("failed", failed_rows)] {
            for (key, etag) in files.finish(self).await? {
                results.push(serde_json::json!({
                    "TaskExecutionStatus": status,
                    "Bucket": report.bucket,
                    "MD5Checksum": etag,
                    "Key": key,
                }));
                keys.push(key);
            }
        }
        let manifest = serde_json::json!({
            "Format": "Report_CSV_20180820",
            "ReportCreationDate": iso_time(now_ms()),
            "Results": results,
            "ReportSchema": REPORT_SCHEMA,
        });
        let key = format!("{base}manifest.json");
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.put_small_object(&report.bucket, &key, "application/json", body).await?;
        keys.push(key);
        job.report_keys = keys;
        Ok(())
    }

    /// With `EnableManifestOutput`: the generated manifest as CSV objects
    /// (`Bucket,Key,VersionId`, keys URL-encoded, [`ROWS_PER_FILE`] rows a file) named
    /// `<prefix>/job-<id>/manifest-<n>.csv`.
    async fn write_manifest(&self, job: &mut JobRecord) -> CoreResult<()> {
        let Some(output) = job.spec.manifest_output.clone() else { return Ok(()) };
        let mut files =
            CsvFiles::new(&output.bucket, format!("{}manifest", job_prefix(output.prefix.as_deref(), &job.id)));
        let bucket = job.spec.bucket.clone();
        for page in self.task_pages(job) {
            for task in page? {
                let row = format!(
                    "{},{},{}\n",
                    csv_field(&bucket),
                    csv_field(&urlencoding::encode(&task.key)),
                    csv_field(task.version_id.as_str())
                );
                files.push(self, &row).await?;
            }
        }
        files.finish(self).await?;
        Ok(())
    }

    /// Writes an object the region produces itself (a report); returns its ETag.
    async fn put_small_object(&self, bucket: &str, key: &str, content_type: &str, body: Vec<u8>) -> CoreResult<String> {
        let len = body.len() as u64;
        let stream =
            futures::stream::once(async move { Ok::<_, crate::objects::BodyError>(Bytes::from(body)) }).boxed();
        let stored = self.write_body(stream, None, Some(len)).await?;
        let meta = ObjectMeta { content_type: Some(content_type.to_owned()), ..ObjectMeta::default() };
        let req = PutRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta,
            content_md5: None,
            checksum: None,
            precondition: None,
        };
        Ok(self.commit_put(req, stored).await?.record.object().map(|d| d.etag.clone()).unwrap_or_default())
    }

    /// Stores the job and task rows in one transaction.
    async fn store_job(&self, job: &JobRecord, tasks: Vec<(u64, JobTask)>) -> CoreResult<()> {
        match self.meta().write(WriteOp::UpdateJob { record: job.clone(), tasks }).await? {
            WriteOutcome::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// A bucket of this region that a job writes to.
    fn local_bucket_for(&self, name: &str, what: &str) -> CoreResult<()> {
        match self.bucket(name) {
            Ok(_) => Ok(()),
            Err(CoreError::NoSuchBucket) => Err(invalid_request(format!(
                "The {what} bucket {name} must be a bucket of this region ({}).",
                self.name()
            ))),
            Err(e) => Err(e),
        }
    }

    /// The job's tasks in manifest order, a page per item.
    fn task_pages<'a>(&'a self, job: &'a JobRecord) -> impl Iterator<Item = CoreResult<Vec<JobTask>>> + Send + 'a {
        let mut from = Some(0);
        std::iter::from_fn(move || {
            let rows = match self.meta().job_tasks(job.seq, from?, PAGE) {
                Ok(rows) => rows,
                Err(e) => {
                    from = None;
                    return Some(Err(e.into()));
                }
            };
            from = rows.last().map(|(last, _)| last + 1);
            from.map(|_| Ok(rows.into_iter().map(|(_, task)| task).collect()))
        })
    }
}

/// Rows of a CSV the region writes (a report, a manifest): at most [`ROWS_PER_FILE`] rows a
/// file, so a job of any size is written with bounded memory. Files are `<stem>-<n>.csv`,
/// `n` from 1; no rows, no file.
struct CsvFiles {
    bucket: String,
    stem: String,
    body: String,
    rows: usize,
    /// Rows per file.
    limit: usize,
    written: Vec<(String, String)>,
}

impl CsvFiles {
    fn new(bucket: &str, stem: String) -> Self {
        Self::with_limit(bucket, stem, ROWS_PER_FILE)
    }

    fn with_limit(bucket: &str, stem: String, limit: usize) -> Self {
        Self { bucket: bucket.to_owned(), stem, body: String::new(), rows: 0, limit, written: Vec::new() }
    }

    async fn push(&mut self, region: &Region, row: &str) -> CoreResult<()> {
        self.body.push_str(row);
        self.rows += 1;
        if self.rows >= self.limit {
            self.flush(region).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, region: &Region) -> CoreResult<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let key = format!("{}-{}.csv", self.stem, self.written.len() + 1);
        let body = std::mem::take(&mut self.body).into_bytes();
        let etag = region.put_small_object(&self.bucket, &key, "text/csv", body).await?;
        self.rows = 0;
        self.written.push((key, etag));
        Ok(())
    }

    /// Writes the last file; every file's key and ETag.
    async fn finish(mut self, region: &Region) -> CoreResult<Vec<(String, String)>> {
        self.flush(region).await?;
        Ok(self.written)
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
fn filter_takes(f: &JobFilter, key: &str, record: &VersionRecord) -> bool {
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
fn job_statuses(f: &JobFilter) -> Vec<ReplicationStatus> {
    if f.statuses.is_empty() {
        use ReplicationStatus::{Completed, Failed, None, Replica};
        vec![None, Failed, Completed, Replica]
    } else {
        f.statuses.clone()
    }
}

/// Bytes of a CSV manifest read per step (a row is at most about 3 KiB: a bucket name, a
/// URL-encoded key of up to 1024 bytes, a version id).
const MANIFEST_CHUNK: u64 = 256 * 1024;

/// One row of a CSV manifest.
#[derive(Debug, PartialEq, Eq)]
pub struct ManifestRow {
    /// Bucket name as written.
    pub bucket: String,
    /// Key, URL-decoded.
    pub key: String,
    /// Version id; `None` for the current version.
    pub version_id: Option<VersionId>,
}

/// Parses a manifest row: `Bucket,Key[,VersionId]` (RFC 4180 quoting allowed), the key
/// URL-encoded as S3 writes manifests. An empty version id means the current version.
pub fn parse_manifest_row(line: &[u8], with_version_ids: bool) -> CoreResult<ManifestRow> {
    let bad = |why: &str| invalid_request(format!("Manifest row {:?}: {why}.", String::from_utf8_lossy(line)));
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?.trim_end_matches('\r');
    let fields = csv_fields(line).ok_or_else(|| bad("unbalanced quotes"))?;
    let (bucket, key, version) = match (fields.as_slice(), with_version_ids) {
        ([bucket, key], false) | ([bucket, key], true) => (bucket, key, None),
        ([bucket, key, version], true) => (bucket, key, Some(version)),
        _ => return Err(bad("wrong number of fields")),
    };
    let key = urlencoding::decode(key).map_err(|_| bad("the key is not URL-encoded UTF-8"))?.into_owned();
    if bucket.is_empty() || key.is_empty() {
        return Err(bad("empty bucket or key"));
    }
    let version_id = version.filter(|v| !v.is_empty()).map(|v| VersionId::parse(v)).transpose()?;
    Ok(ManifestRow { bucket: bucket.clone(), key, version_id })
}

/// The fields of a CSV line (RFC 4180: fields in double quotes may hold commas and doubled
/// quotes); `None` for unbalanced quotes.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    (!quoted).then_some(fields)
}

/// A job's tag set as S3 checks it: more than 50 is `TooManyTagsException`, a bad key or value
/// `InvalidRequest`.
fn check_tags(tags: &[(String, String)]) -> CoreResult<()> {
    check_job_tags(tags).map_err(|problem| match problem {
        JobTagsProblem::TooMany(n) => {
            CoreError::TooManyTags(format!("A job can have at most {MAX_JOB_TAGS} tags; {n} were given."))
        }
        JobTagsProblem::Invalid(message) => invalid_request(message),
    })
}

fn invalid_request(message: String) -> CoreError {
    CoreError::Invalid(xregion_types::InvalidInput::new("InvalidRequest", message))
}

fn failed(code: &str, http_status: u16, message: &str) -> TaskOutcome {
    TaskOutcome::Failed { code: code.to_owned(), http_status, message: message.to_owned() }
}

/// The HTTP status a replication failure reason (IAM-8) goes with in a report.
fn failure_http_status(reason: &str) -> u16 {
    match reason {
        "DstBucketNotFound" | "SrcObjectNotFound" | "DstObjectNotFound" => 404,
        r if r.contains("Permission") || r.contains("AccessDenied") || r.contains("NotPermitted") => 403,
        r if r.starts_with("Dst") || r.starts_with("Src") => 400,
        _ => 500,
    }
}

/// `<prefix>/job-<id>/` (no leading slash; the prefix's own trailing slash is not doubled).
fn job_prefix(prefix: Option<&str>, id: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/job-{id}/"),
        None => format!("job-{id}/"),
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// ISO-8601 UTC with milliseconds, as in `ReportCreationDate`.
fn iso_time(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
}

/// A random job id in the UUID form S3 uses.
fn new_job_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(size: Option<u64>, status: ReplicationStatus, modified_ms: i64) -> VersionRecord {
        use xregion_types::{ObjectData, VersionId, VersionKind};
        let kind = match size {
            Some(size) => VersionKind::Object(Box::new(ObjectData {
                size,
                storage_class: "STANDARD".into(),
                ..ObjectData::default()
            })),
            None => VersionKind::DeleteMarker,
        };
        VersionRecord {
            version_id: VersionId::Null,
            stamp: 1,
            last_modified_ms: modified_ms,
            kind,
            replication: status,
            replication_targets: Vec::new(),
            tags_changed_ms: None,
        }
    }

    /// BAT-2/BAT-3: each filter field narrows the manifest; none given takes every version
    /// batch replication can take, replicas included, never PENDING ones.
    #[test]
    fn bat2_filters() {
        use ReplicationStatus::{Completed, Failed, None, Pending, Replica, ReplicaFailed};
        let any = JobFilter::default();
        let object = version(Some(10), None, 1000);
        for status in [None, Failed, Completed, Replica, ReplicaFailed] {
            assert!(filter_takes(&any, "k", &version(Some(1), status.clone(), 1)), "{status:?}");
        }
        assert!(!filter_takes(&any, "k", &version(Some(1), Pending, 1)));
        assert!(!filter_takes(&any, "k", &version(Some(1), ReplicationStatus::ReplicaPending, 1)), "in flight");
        let failed_only = JobFilter { statuses: vec![Failed], ..JobFilter::default() };
        assert!(!filter_takes(&failed_only, "k", &object));
        assert!(filter_takes(&failed_only, "k", &version(Some(1), Failed, 1)));

        let keys = JobFilter {
            match_any_prefix: vec!["docs/".into()],
            match_any_suffix: vec![".jpg".into()],
            match_any_substring: vec!["2026".into()],
            ..JobFilter::default()
        };
        for key in ["docs/a", "x.jpg", "report-2026.txt"] {
            assert!(filter_takes(&keys, key, &object), "{key}");
        }
        assert!(!filter_takes(&keys, "other/a.png", &object));

        let dates = JobFilter { created_after_ms: Some(500), created_before_ms: Some(2000), ..JobFilter::default() };
        assert!(filter_takes(&dates, "k", &object));
        assert!(!filter_takes(&dates, "k", &version(Some(10), None, 500)));
        assert!(!filter_takes(&dates, "k", &version(Some(10), None, 2000)));

        let sizes = JobFilter { size_greater_than: Some(9), size_less_than: Some(11), ..JobFilter::default() };
        assert!(filter_takes(&sizes, "k", &object));
        assert!(!filter_takes(&sizes, "k", &version(Some(11), None, 1)));
        assert!(!filter_takes(&sizes, "k", &version(Option::None, None, 1)), "a delete marker has no size");
        assert!(filter_takes(&any, "k", &version(Option::None, None, 1)), "delete markers are taken otherwise");
        let classes = JobFilter { storage_classes: vec!["GLACIER".into()], ..JobFilter::default() };
        assert!(!filter_takes(&classes, "k", &object));
        let classes = JobFilter { storage_classes: vec!["STANDARD".into()], ..JobFilter::default() };
        assert!(filter_takes(&classes, "k", &object));
    }

    /// BAT-2 CSV manifests: `Bucket,Key[,VersionId]`, keys URL-encoded, RFC 4180 quoting.
    #[test]
    fn bat2_manifest_rows() {
        let id = VersionId::generate(7, [1; 12]);
        let row = |line: &str, versions: bool| parse_manifest_row(line.as_bytes(), versions);
        let plain = row("b1,dir%2Fa%20b.txt", false).unwrap();
        assert_eq!((plain.bucket.as_str(), plain.key.as_str(), plain.version_id), ("b1", "dir/a b.txt", None));
        let versioned = row(&format!("b1,k,{}\r", id.as_str()), true).unwrap();
        assert_eq!(versioned.version_id, Some(id.clone()));
        assert_eq!(row("b1,k,", true).unwrap().version_id, None, "an empty version id: the current version");
        assert_eq!(row("b1,k", true).unwrap().version_id, None);
        assert_eq!(row("\"b1\",\"a,\"\"b\"", false).unwrap().key, "a,\"b");
        assert_eq!(row("b1,null", false).unwrap().key, "null");
        assert_eq!(row("b1,k,null", true).unwrap().version_id, Some(VersionId::Null));
        for bad in ["b1", "b1,k,v", ",k", "b1,", "b1,\"k", "b1,%ff"] {
            assert!(row(bad, true).is_err() || row(bad, false).is_err(), "{bad}");
        }
        assert!(row("b1,k,extra", false).is_err(), "three fields without VersionId in the spec");
        assert!(row("b1,k,not-an-id", true).is_err());
        assert_eq!(csv_fields("a,,b"), Some(vec!["a".into(), String::new(), "b".into()]));
        assert_eq!(csv_fields("\"open"), None);
    }

    /// Reports and manifests are written a bounded number of rows per file, `<stem>-<n>.csv`.
    #[tokio::test]
    async fn csv_files_split_at_their_row_limit() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("test-1", dir.path(), std::sync::Arc::new(crate::NoPeers)).unwrap();
        region.create_bucket("out", None).await.unwrap();
        let mut files = CsvFiles::with_limit("out", "r/results/ok".into(), 2);
        for n in 0..5 {
            files.push(&region, &format!("row{n}\n")).await.unwrap();
        }
        let written = files.finish(&region).await.unwrap();
        let keys: Vec<&str> = written.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["r/results/ok-1.csv", "r/results/ok-2.csv", "r/results/ok-3.csv"]);
        let (b, record) = region.get_object("out", "r/results/ok-3.csv", None).unwrap();
        assert_eq!(b.name.as_str(), "out");
        let data = record.object().unwrap();
        assert_eq!(region.read_range(data, 0, data.size).await.unwrap(), b"row4\n");
        assert_eq!(written[2].1, data.etag, "each file is listed with its ETag");
        let empty = CsvFiles::with_limit("out", "r/none".into(), 2).finish(&region).await.unwrap();
        assert!(empty.is_empty(), "no rows, no file");
    }

    fn spec(token: &str, report: Option<&str>) -> JobSpec {
        JobSpec {
            account_id: "123456789012".into(),
            bucket: "src".into(),
            manifest: None,
            filter: JobFilter::default(),
            report: report.map(|b| xregion_types::job::JobReportSpec {
                bucket: b.into(),
                prefix: None,
                failed_only: false,
            }),
            manifest_output: None,
            priority: 1,
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            description: None,
            confirmation_required: false,
            client_token: token.into(),
            tags: Vec::new(),
        }
    }

    /// Steps a job until it stops making progress; its status then.
    async fn run(region: &Region, id: &str) -> (Step, JobStatus) {
        loop {
            let step = region.step_job(id).await.unwrap();
            if step != Step::Progress {
                return (step, region.job(id).unwrap().status);
            }
        }
    }

    /// Finishes every task in the outbox as the replication worker would on success.
    async fn complete_all(region: &Region) {
        for entry in region.meta().list_outbox(None, 1000).unwrap() {
            region.meta().write(WriteOp::CompleteTask { seq: entry.seq }).await.unwrap();
        }
    }

    /// BAT-6 step by step, without a worker: the job queues its tasks, waits while they are in
    /// the outbox (a destination that is down), and completes with one outcome per task once
    /// they are finished; a cancel while tasks wait ends it with a report of what settled.
    #[tokio::test]
    async fn bat6_a_job_waits_for_its_tasks_and_a_cancel_stops_it() {
        use crate::replica::tests::{configured, put};
        let (_dir, region) = configured().await;
        region.create_bucket("out", None).await.unwrap();
        for key in ["a", "b"] {
            put(&region, "src", key).await;
        }
        complete_all(&region).await;

        let job = region.create_job(spec("t1", Some("out"))).await.unwrap();
        assert_eq!(region.create_job(spec("t1", Some("out"))).await.unwrap().id, job.id, "same token, same job");
        let other = region.create_job(spec("t1", None)).await;
        assert!(matches!(other, Err(CoreError::Idempotency(_))), "same token, other parameters: {other:?}");
        assert_eq!(run(&region, &job.id).await, (Step::Waiting, JobStatus::Active));
        let waiting = region.job(&job.id).unwrap();
        assert_eq!((waiting.total_tasks, waiting.queued_upto, waiting.settled_upto), (2, 2, 0));
        assert_eq!(region.meta().outbox_len().unwrap(), 2, "both versions queued again (COMPLETED back-fill)");
        complete_all(&region).await;
        assert_eq!(run(&region, &job.id).await, (Step::Idle, JobStatus::Complete));
        let done = region.job(&job.id).unwrap();
        assert_eq!((done.succeeded, done.failed), (2, 0));
        let prefix = format!("job-{}/", job.id);
        assert_eq!(done.report_keys, [format!("{prefix}results/succeeded-1.csv"), format!("{prefix}manifest.json")]);

        // Cancelled while its tasks wait: Cancelling writes the report (nothing settled, so
        // no results file), then Cancelled; the queued tasks still run.
        let job = region.create_job(spec("t2", Some("out"))).await.unwrap();
        assert_eq!(run(&region, &job.id).await, (Step::Waiting, JobStatus::Active));
        let cancelled = region.update_job_status(&job.id, JobStatus::Cancelled, Some("enough".into())).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelling);
        assert_eq!(run(&region, &job.id).await, (Step::Idle, JobStatus::Cancelled));
        let job = region.job(&job.id).unwrap();
        assert_eq!(job.report_keys, [format!("job-{}/manifest.json", job.id)]);
        assert_eq!(job.status_update_reason.as_deref(), Some("enough"));
        assert!(region.update_job_status(&job.id, JobStatus::Cancelled, None).await.is_err());
        assert_eq!(region.meta().outbox_len().unwrap(), 2);
    }

    /// Job tags (`CreateJob`'s `Tags`, `PutJobTagging`, `DeleteJobTagging`) and priority are the
    /// job's current state; a retried `CreateJob` is compared with what was first asked, so it
    /// still returns the job after either changed. Bad tag sets change nothing.
    #[tokio::test]
    async fn job_tags_and_priority_change_without_breaking_retries() {
        use crate::replica::tests::configured;
        let (_dir, region) = configured().await;
        let tagged = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let asked = JobSpec { tags: tagged(&[("team", "ops")]), ..spec("tags", None) };
        let job = region.create_job(asked.clone()).await.unwrap();
        assert_eq!(job.tags, tagged(&[("team", "ops")]));

        let changed = region.put_job_tagging(&job.id, tagged(&[("a", "1"), ("b", "")])).await.unwrap();
        assert_eq!(changed.tags, tagged(&[("a", "1"), ("b", "")]));
        region.update_job_priority(&job.id, 9).await.unwrap();
        let stored = region.job(&job.id).unwrap();
        assert_eq!((stored.priority, stored.spec.priority), (9, 1));
        assert_eq!(stored.tags, tagged(&[("a", "1"), ("b", "")]));
        let retried = region.create_job(asked).await.unwrap();
        assert_eq!((retried.id, retried.priority), (job.id.clone(), 9), "a retry returns the job as it is now");

        let fifty_one: Vec<_> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        let too_many = region.put_job_tagging(&job.id, fifty_one.clone()).await;
        assert!(matches!(too_many, Err(CoreError::TooManyTags(_))), "{too_many:?}");
        let twice = region.put_job_tagging(&job.id, tagged(&[("k", "1"), ("k", "2")])).await;
        assert!(matches!(&twice, Err(CoreError::Invalid(e)) if e.code == "InvalidRequest"), "{twice:?}");
        let create = region.create_job(JobSpec { tags: fifty_one, ..spec("many", None) }).await;
        assert!(matches!(create, Err(CoreError::TooManyTags(_))), "{create:?}");
        assert_eq!(region.job(&job.id).unwrap().tags, tagged(&[("a", "1"), ("b", "")]));
        assert_eq!(region.jobs(&[]).unwrap().len(), 1, "the refused CreateJob made no job");

        region.put_job_tagging(&job.id, Vec::new()).await.unwrap();
        assert!(region.job(&job.id).unwrap().tags.is_empty());
        let missing = region.put_job_tagging("no-such-job", Vec::new()).await;
        assert!(matches!(missing, Err(CoreError::NoSuchJob(_))), "{missing:?}");
    }

    /// A job whose step fails is set aside for a while; the others still move.
    #[tokio::test]
    async fn a_failing_job_does_not_stop_the_others() {
        use crate::replica::tests::{configured, put};
        let (_dir, region) = configured().await;
        put(&region, "src", "a").await;
        let first = region.create_job(JobSpec { priority: 2, ..spec("first", None) }).await.unwrap();
        let second = region.create_job(spec("second", None)).await.unwrap();
        let mut retry_after = HashMap::new();
        // The first job's step (it runs first: higher priority) meets a write that fails.
        region.meta().inject_outcome_unknown();
        assert_eq!(region.step_all_jobs(&mut retry_after).await.unwrap(), Step::Progress);
        assert!(retry_after.contains_key(&first.id) && !retry_after.contains_key(&second.id));
        let stepped = region.job(&second.id).unwrap().status;
        assert_ne!(stepped, JobStatus::New, "the second job moved on");
        // Until its time, the first is left alone while the second goes on.
        let before = region.job(&first.id).unwrap();
        region.step_all_jobs(&mut retry_after).await.unwrap();
        assert_eq!(region.job(&first.id).unwrap(), before);
        // Then it runs to its end (no task: the one version is PENDING, which no job takes).
        retry_after.clear();
        assert_eq!(run(&region, &first.id).await.1, JobStatus::Complete);
    }

    /// Finished jobs past their retention are forgotten, rows and record; others stay.
    #[tokio::test]
    async fn finished_jobs_are_forgotten_after_their_retention() {
        use crate::replica::tests::{configured, put};
        let (_dir, region) = configured().await;
        put(&region, "src", "a").await;
        complete_all(&region).await;
        let done = region.create_job(spec("done", None)).await.unwrap();
        run(&region, &done.id).await;
        complete_all(&region).await;
        assert_eq!(run(&region, &done.id).await.1, JobStatus::Complete);
        assert_eq!(region.meta().job_tasks(done.seq, 0, 10).unwrap().len(), 1);
        let waiting = region.create_job(JobSpec { confirmation_required: true, ..spec("waits", None) }).await.unwrap();
        assert_eq!(run(&region, &waiting.id).await.1, JobStatus::Suspended);
        // Within the retention nothing goes; past it only the finished job does.
        let jobs = region.meta().list_jobs().unwrap();
        assert!(!region.forget_jobs_ended_before(&jobs, 0).await.unwrap());
        assert!(region.job(&done.id).is_ok());
        assert!(!region.forget_jobs_ended_before(&jobs, i64::MAX).await.unwrap());
        assert!(matches!(region.job(&done.id), Err(CoreError::NoSuchJob(_))));
        assert!(region.meta().job_tasks(done.seq, 0, 10).unwrap().is_empty());
        assert_eq!(region.job(&waiting.id).unwrap().status, JobStatus::Suspended);
    }

    /// A CSV manifest in an unversioned bucket overwritten before the job read it: the
    /// version the job pinned is gone, so the job fails, saying why.
    #[tokio::test]
    async fn bat2_an_overwritten_unversioned_manifest_fails_the_job() {
        use crate::replica::tests::{configured, put};
        let (_dir, region) = configured().await;
        region.create_bucket("lists", None).await.unwrap();
        let a = put(&region, "src", "a").await;
        let list = format!("src,a,{}\n", a.version_id.as_str());
        let etag = region.put_small_object("lists", "m.csv", "text/csv", list.into_bytes()).await.unwrap();
        let manifest = CsvManifest {
            bucket: "lists".into(),
            key: "m.csv".into(),
            version_id: None,
            etag: etag.clone(),
            with_version_ids: true,
        };
        let wrong = CsvManifest { etag: "0".repeat(32), ..manifest.clone() };
        let err = region.create_job(JobSpec { manifest: Some(wrong), bucket: String::new(), ..spec("w", None) }).await;
        assert!(matches!(err, Err(CoreError::Invalid(ref e)) if e.message.contains("ETag")), "{err:?}");
        let job = JobSpec { manifest: Some(manifest), bucket: String::new(), ..spec("m", None) };
        let retried = job.clone();
        let job = region.create_job(job).await.unwrap();
        assert_eq!(region.create_job(retried).await.unwrap().id, job.id, "a retry of a CSV job is the same job");
        assert_eq!(
            (job.spec.bucket.as_str(), job.spec.manifest.as_ref().unwrap().version_id.as_deref()),
            ("src", Some("null"))
        );
        region.put_small_object("lists", "m.csv", "text/csv", b"src,a,\n".to_vec()).await.unwrap();
        assert_eq!(run(&region, &job.id).await, (Step::Idle, JobStatus::Failed));
        let failed = region.job(&job.id).unwrap();
        assert_eq!(failed.failure_reasons[0].0, "ManifestNotReadable", "{failed:?}");
        assert_eq!(failed.total_tasks, 0);
    }

    #[test]
    fn failure_reasons_have_an_http_status() {
        assert_eq!(failure_http_status("DstBucketNotFound"), 404);
        assert_eq!(failure_http_status("DstBucketUnversioned"), 400);
        assert_eq!(failure_http_status("DstPutObjectNotPermitted"), 403);
        assert_eq!(failure_http_status("Something"), 500);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn job_prefixes() {
        assert_eq!(job_prefix(None, "x"), "job-x/");
        assert_eq!(job_prefix(Some(""), "x"), "job-x/");
        assert_eq!(job_prefix(Some("reports/"), "x"), "reports/job-x/");
        assert_eq!(job_prefix(Some("reports"), "x"), "reports/job-x/");
    }

    #[test]
    fn job_ids_look_like_uuids() {
        let id = new_job_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, new_job_id());
        assert_eq!(iso_time(1_765_097_551_123), "2025-12-07T08:52:31.123Z");
    }
}
