//! The replication outbox: opaque tasks committed in the same transaction as the version they
//! describe (design invariant 2). Reserved for the replication issue; `meta` only stores them.

use serde::{Deserialize, Serialize};
use xregion_types::VersionId;

/// One stored outbox task, wrapped with the coordinates of the version it was committed with
/// (the caller cannot know a generated version id before the commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Sequence number, increasing in commit order, never reused.
    pub seq: u64,
    /// Bucket id of the version.
    pub bucket_id: u64,
    /// Object key of the version.
    pub key: String,
    /// The version (or delete marker) the write created; `None` if it created none.
    pub version_id: Option<VersionId>,
    /// The caller's opaque task.
    pub task: Vec<u8>,
}
