//! The replication failure table, listed for operators: every task that failed for good, so
//! its version reads `FAILED` (STS-5, STS-6), with the reason (IAM-8) and when. The report
//! counts them per queue; this says which versions they are, so that the cause can be fixed
//! and the versions sent again (a batch replication taking `FAILED`, BAT-1c).

use xregion_types::replication::TaskKind;

use crate::replica::decode_task;
use crate::{CoreResult, Region};

/// Failure rows read from the store per page while filtering by bucket.
const PAGE: usize = 1000;

/// One permanent replication failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// The failed task's outbox sequence number (the listing's order and paging token).
    pub seq: u64,
    /// Source bucket (`#<id>` if it was deleted since).
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The version or delete marker (`None` for a task that named none).
    pub version_id: Option<String>,
    /// Destination bucket (`?` if the stored task cannot be read).
    pub destination_bucket: String,
    /// The rule that sent it there.
    pub rule_id: String,
    /// What was to be sent: `object`, `delete-marker` or `tags`.
    pub operation: &'static str,
    /// Failure reason (IAM-8), e.g. `DstBucketUnversioned`.
    pub reason: String,
    /// When it failed, unix milliseconds.
    pub failed_ms: i64,
}

impl Region {
    /// Permanent replication failures after sequence number `after`, oldest first, at most
    /// `limit`, of source bucket `bucket` only if given; and the sequence number to continue
    /// after when more may follow. Blocking reads: call from a blocking thread.
    pub fn replication_failures(
        &self,
        bucket: Option<&str>,
        mut after: Option<u64>,
        limit: usize,
    ) -> CoreResult<(Vec<FailureRow>, Option<u64>)> {
        let bucket_id = match bucket {
            Some(name) => Some(self.bucket(name)?.id),
            None => None,
        };
        let mut rows = Vec::new();
        let mut names = std::collections::HashMap::new();
        loop {
            let page = self.meta().list_failures(after, PAGE)?;
            let full = page.len() == PAGE;
            for failed in page {
                after = Some(failed.entry.seq);
                if bucket_id.is_some_and(|id| id != failed.entry.bucket_id) {
                    continue;
                }
                let (destination_bucket, rule_id, operation) = match decode_task(&failed.entry.task) {
                    Ok(task) => (task.destination_bucket, task.rule_id, operation_name(task.kind)),
                    Err(_) => ("?".to_owned(), "?".to_owned(), "?"),
                };
                let id = failed.entry.bucket_id;
                let bucket = match names.get(&id) {
                    Some(name) => String::clone(name),
                    None => {
                        let name = self.meta().bucket_name(id)?.unwrap_or_else(|| format!("#{id}"));
                        names.insert(id, name.clone());
                        name
                    }
                };
                rows.push(FailureRow {
                    seq: failed.entry.seq,
                    bucket,
                    key: failed.entry.key,
                    version_id: failed.entry.version_id.map(|v| v.as_str().to_owned()),
                    destination_bucket,
                    rule_id,
                    operation,
                    reason: failed.reason,
                    failed_ms: failed.failed_ms,
                });
                if rows.len() == limit {
                    return Ok((rows, after));
                }
            }
            if !full {
                return Ok((rows, None));
            }
        }
    }
}

/// The name of what a task sends.
fn operation_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Object => "object",
        TaskKind::DeleteMarker => "delete-marker",
        TaskKind::Tags => "tags",
    }
}
