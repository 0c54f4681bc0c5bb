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
//!
//! Files: this one holds the S3 Control use cases (create, describe, list, status, priority,
//! tags) and what they share; `runner.rs` the lifecycle steps; `manifest.rs` reading a user's
//! CSV manifest; `report.rs` the completion report and the manifest output.

use xregion_meta::{WriteOp, WriteOutcome};
use xregion_types::job::{
    JobRecord, JobSpec, JobStatus, JobTagsProblem, JobTask, MAX_JOB_TAGS, TaskOutcome, check_job_tags,
};
use xregion_types::now_ms;

use crate::buckets::{BucketLocation, unexpected};
use crate::{CoreError, CoreResult, Region};

mod manifest;
mod report;
mod runner;

use manifest::MANIFEST_CHUNK;
pub use manifest::{ManifestRow, parse_manifest_row};

/// Versions listed, tasks queued or tasks settled per step.
const PAGE: usize = 1000;

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

/// A random job id in the UUID form S3 uses.
fn new_job_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use xregion_types::job::{CsvManifest, JobFilter};
    use xregion_types::{ReplicationStatus, VersionId, VersionRecord};

    use super::manifest::csv_fields;
    use super::report::{CsvFiles, csv_field, iso_time, job_prefix};
    use super::runner::{failure_http_status, filter_takes};
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
