//! Where replicas go: the [`ReplicationTarget`] trait (the S3 implementation is
//! [`crate::S3Target`]; tests plug in fakes).

use futures::future::BoxFuture;
use xregion_core::Region;
use xregion_types::VersionRecord;
use xregion_types::replication::TaskKind;

use crate::ReplicationError;

/// One replica write: what the source has, and where it goes.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Object, delete marker or tag change.
    pub kind: TaskKind,
    /// Source bucket name.
    pub source_bucket: String,
    /// Destination bucket name.
    pub destination_bucket: String,
    /// Object key (same on both sides).
    pub key: String,
    /// The source version as it is now (its tags are the ones to send).
    pub version: VersionRecord,
    /// Storage class override of the rule (STS-14).
    pub storage_class: Option<String>,
    /// Queued by batch replication (the version existed before; it may be older than what
    /// the destination holds of the key), not by live replication.
    pub batch: bool,
    /// Certainly never sent before: the task was committed while this process ran (after the
    /// worker started) and this is its first attempt. Otherwise an earlier attempt (of this
    /// process, or of one that crashed) may have reached the destination without its answer
    /// being recorded.
    pub first_attempt: bool,
}

/// Writes replicas somewhere. Must be idempotent per (bucket, key, version id): the worker
/// may send a replica again after a crash or a lost acknowledgement.
pub trait ReplicationTarget: Send + Sync + 'static {
    /// Sends one replica; `region` is the source (to stream the bytes from).
    fn send<'a>(&'a self, region: &'a Region, replica: &'a Replica) -> BoxFuture<'a, Result<(), ReplicationError>>;

    /// Sends several replicas bound for one destination bucket, at most one per key; one
    /// result per replica, in order. The default sends them one by one; a target may batch.
    fn send_many<'a>(
        &'a self,
        region: &'a Region,
        replicas: &'a [Replica],
    ) -> BoxFuture<'a, Vec<Result<(), ReplicationError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(replicas.len());
            for r in replicas {
                results.push(self.send(region, r).await);
            }
            results
        })
    }
}
