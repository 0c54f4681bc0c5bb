//! Batch replication jobs (spec §11, BAT-2..BAT-7): what an S3 Control `CreateJob` asked for,
//! and the durable record of a job's progress and of each of its tasks.
//!
//! A job is stored (postcard, with a format byte) in the metadata store's `jobs` table, its
//! tasks in `job_tasks`; the lifecycle is driven by `xregion_core::jobs`.

use serde::{Deserialize, Serialize};

use crate::{ReplicationStatus, VersionId};

/// What `CreateJob` asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The `x-amz-account-id` the job was created under (echoed in its ARN).
    pub account_id: String,
    /// Source bucket: `SourceBucket` of a generated manifest; for a CSV manifest the bucket
    /// its rows name, empty until `Region::create_job` has read the manifest's first row.
    pub bucket: String,
    /// `Manifest`: a CSV manifest given by the user; `None` for a generated one.
    pub manifest: Option<CsvManifest>,
    /// Which versions the generated manifest takes (unused with a CSV manifest).
    pub filter: JobFilter,
    /// `Report`, when enabled.
    pub report: Option<JobReportSpec>,
    /// `ManifestOutputLocation` when `EnableManifestOutput` is true: where the generated
    /// manifest is written.
    pub manifest_output: Option<ManifestOutput>,
    /// `Priority` as asked (higher runs first; the job's current one is
    /// [`JobRecord::priority`]).
    pub priority: i32,
    /// `RoleArn` (recorded; the deployment's principal does the work).
    pub role_arn: String,
    /// `Description`.
    pub description: Option<String>,
    /// `ConfirmationRequired`: the job waits in `Suspended` until set `Ready`.
    pub confirmation_required: bool,
    /// `ClientRequestToken`: a second `CreateJob` with the same token returns the same job.
    pub client_token: String,
    /// `Tags` as asked (the job's current ones are [`JobRecord::tags`]).
    pub tags: Vec<(String, String)>,
}

/// A user's manifest (`Manifest`, format `S3BatchOperations_CSV_20180820`, BAT-2): a CSV
/// object of this region whose rows are `Bucket,Key` or `Bucket,Key,VersionId`, keys
/// URL-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvManifest {
    /// Bucket of the manifest object (`Location.ObjectArn`).
    pub bucket: String,
    /// Key of the manifest object.
    pub key: String,
    /// `Location.ObjectVersionId`; set by `Region::create_job` to the version it checked, so
    /// a later overwrite of the object does not change the job's manifest.
    pub version_id: Option<String>,
    /// `Location.ETag` (without quotes): must be the manifest object's.
    pub etag: String,
    /// `Spec.Fields` has `VersionId` (third column).
    pub with_version_ids: bool,
}

/// `S3JobManifestGenerator.Filter` (BAT-2), plus `EnableManifestOutput`'s eligibility.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// `EligibleForReplication`: only versions a rule of the configuration selects.
    pub eligible_for_replication: bool,
    /// `CreatedAfter`, in milliseconds since the epoch.
    pub created_after_ms: Option<i64>,
    /// `CreatedBefore`, in milliseconds since the epoch.
    pub created_before_ms: Option<i64>,
    /// `ObjectReplicationStatuses` (`None`, `Failed`, `Completed`, `Replica`); empty: any.
    pub statuses: Vec<ReplicationStatus>,
    /// `KeyNameConstraint.MatchAnyPrefix`.
    pub match_any_prefix: Vec<String>,
    /// `KeyNameConstraint.MatchAnySuffix`.
    pub match_any_suffix: Vec<String>,
    /// `KeyNameConstraint.MatchAnySubstring`.
    pub match_any_substring: Vec<String>,
    /// `ObjectSizeGreaterThanBytes`.
    pub size_greater_than: Option<u64>,
    /// `ObjectSizeLessThanBytes`.
    pub size_less_than: Option<u64>,
    /// `MatchAnyStorageClass`; empty: any.
    pub storage_classes: Vec<String>,
}

/// `Report` of a job (BAT-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReportSpec {
    /// Bucket the report is written to (a bucket of this region).
    pub bucket: String,
    /// `Prefix`; the report goes under `<prefix>/job-<id>/`.
    pub prefix: Option<String>,
    /// `ReportScope = FailedTasksOnly`.
    pub failed_only: bool,
}

/// Where a generated manifest is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOutput {
    /// Bucket (a bucket of this region).
    pub bucket: String,
    /// `ManifestPrefix`.
    pub prefix: Option<String>,
}

/// A job's state (BAT-6). `Pausing`/`Paused` are not used: jobs are never paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Accepted, not yet started.
    New,
    /// The manifest is being generated.
    Preparing,
    /// Waiting for the user's confirmation (`ConfirmationRequired`).
    Suspended,
    /// Confirmed, waiting to run.
    Ready,
    /// Tasks are being queued and run.
    Active,
    /// Every task ran; the report is being written.
    Completing,
    /// Finished (some tasks may have failed).
    Complete,
    /// Cancelled by the user; the report is being written.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Failing (failure threshold or a job-level error); the report is being written.
    Failing,
    /// Failed.
    Failed,
}

impl JobStatus {
    /// The S3 Control name (`JobStatus`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Preparing => "Preparing",
            Self::Suspended => "Suspended",
            Self::Ready => "Ready",
            Self::Active => "Active",
            Self::Completing => "Completing",
            Self::Complete => "Complete",
            Self::Cancelling => "Cancelling",
            Self::Cancelled => "Cancelled",
            Self::Failing => "Failing",
            Self::Failed => "Failed",
        }
    }

    /// The status named `name` (`JobStatus`), if any (`Paused`/`Pausing` are names, never states).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::New,
            Self::Preparing,
            Self::Suspended,
            Self::Ready,
            Self::Active,
            Self::Completing,
            Self::Complete,
            Self::Cancelling,
            Self::Cancelled,
            Self::Failing,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// `Complete`, `Cancelled` or `Failed`: nothing more happens to the job.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::Cancelled | Self::Failed)
    }
}

/// A job and its progress, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Store-internal number (key of the job and of its tasks), never reused.
    pub seq: u64,
    /// The job id clients see (a UUID).
    pub id: String,
    /// What was asked for (as asked: a retried `CreateJob` is compared with it).
    pub spec: JobSpec,
    /// Current priority (`UpdateJobPriority`).
    pub priority: i32,
    /// Current tags (`PutJobTagging`, `DeleteJobTagging`).
    pub tags: Vec<(String, String)>,
    /// Where the job is.
    pub status: JobStatus,
    /// `StatusUpdateReason` of the last `UpdateJobStatus`.
    pub status_update_reason: Option<String>,
    /// `FailureReasons`: job-level failures (`(FailureCode, FailureReason)`).
    pub failure_reasons: Vec<(String, String)>,
    /// Creation time (ms).
    pub created_ms: i64,
    /// When the job reached a terminal status (ms).
    pub terminated_ms: Option<i64>,
    /// When the job was suspended for confirmation (ms).
    pub suspended_ms: Option<i64>,
    /// When it became `Active` (ms).
    pub active_since_ms: Option<i64>,
    /// Tasks in the manifest (known once `Preparing` ended).
    pub total_tasks: u64,
    /// Tasks that succeeded so far.
    pub succeeded: u64,
    /// Tasks that failed so far.
    pub failed: u64,
    /// `Preparing`: the version listing resumes after this (key, version id).
    pub scan_after: Option<(String, VersionId)>,
    /// `Preparing` with a CSV manifest: bytes of the manifest object read so far.
    pub manifest_offset: u64,
    /// `Active`: tasks before this number are queued.
    pub queued_upto: u64,
    /// `Active`: tasks before this number have their outcome.
    pub settled_upto: u64,
    /// Keys of the report files written (`manifest.json` last).
    pub report_keys: Vec<String>,
}

impl JobRecord {
    /// A job just created (`New`, nothing done yet); the store assigns `seq`.
    pub fn new(id: String, spec: JobSpec, created_ms: i64) -> Self {
        Self {
            seq: 0,
            id,
            priority: spec.priority,
            tags: spec.tags.clone(),
            spec,
            status: JobStatus::New,
            status_update_reason: None,
            failure_reasons: Vec::new(),
            created_ms,
            terminated_ms: None,
            suspended_ms: None,
            active_since_ms: None,
            total_tasks: 0,
            succeeded: 0,
            failed: 0,
            scan_after: None,
            manifest_offset: 0,
            queued_upto: 0,
            settled_upto: 0,
            report_keys: Vec::new(),
        }
    }
}

/// One version of a job's manifest and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    /// Object key.
    pub key: String,
    /// The version or delete marker.
    pub version_id: VersionId,
    /// What became of it.
    pub outcome: TaskOutcome,
}

/// A task's result (BAT-7's `TaskStatus`, `ErrorCode`, `HTTPStatusCode`, `ResultMessage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Not finished yet.
    Open,
    /// Replicated to every destination the rules name.
    Succeeded,
    /// Did not replicate: an error code (a replication failure reason, IAM-8, or an S3 code),
    /// the HTTP status that goes with it, and a message.
    Failed {
        /// Error code.
        code: String,
        /// HTTP status.
        http_status: u16,
        /// Message.
        message: String,
    },
}

/// Most tags a job may have (`PutJobTagging`, `CreateJob`'s `Tags`).
pub const MAX_JOB_TAGS: usize = 50;
/// Longest job tag key, in characters.
const MAX_JOB_TAG_KEY: usize = 128;
/// Longest job tag value, in characters.
const MAX_JOB_TAG_VALUE: usize = 256;

/// Why a job's tag set is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobTagsProblem {
    /// More than [`MAX_JOB_TAGS`] tags (`TooManyTagsException`).
    TooMany(usize),
    /// A key or value that is not allowed, or a key given twice; the message says which.
    Invalid(String),
}

/// Checks a job's tag set as S3 does: at most 50 tags with distinct keys of 1 to 128
/// characters and values of at most 256.
pub fn check_job_tags(tags: &[(String, String)]) -> Result<(), JobTagsProblem> {
    if tags.len() > MAX_JOB_TAGS {
        return Err(JobTagsProblem::TooMany(tags.len()));
    }
    let mut keys = std::collections::HashSet::new();
    for (key, value) in tags {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_JOB_TAG_KEY {
            return Err(JobTagsProblem::Invalid(format!(
                "A tag key must be 1 to {MAX_JOB_TAG_KEY} characters long; {key:?} is {key_len}."
            )));
        }
        if value.chars().count() > MAX_JOB_TAG_VALUE {
            return Err(JobTagsProblem::Invalid(format!(
                "The value of tag {key:?} is longer than {MAX_JOB_TAG_VALUE} characters."
            )));
        }
        if !keys.insert(key.as_str()) {
            return Err(JobTagsProblem::Invalid(format!("The tag key {key:?} is given more than once.")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn job_tags_are_checked_as_s3_does() {
        assert_eq!(check_job_tags(&[]), Ok(()));
        assert_eq!(check_job_tags(&[tag("team", ""), tag(&"k".repeat(128), &"é".repeat(256))]), Ok(()));
        let fifty: Vec<_> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(check_job_tags(&fifty), Ok(()));
        let fifty_one: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(check_job_tags(&fifty_one), Err(JobTagsProblem::TooMany(51)));
        for bad in [
            vec![tag("", "v")],
            vec![tag(&"k".repeat(129), "v")],
            vec![tag("k", &"v".repeat(257))],
            vec![tag("k", "1"), tag("k", "2")],
        ] {
            assert!(matches!(check_job_tags(&bad), Err(JobTagsProblem::Invalid(_))), "{bad:?}");
        }
    }
}
