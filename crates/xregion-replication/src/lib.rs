//! Replication worker of xregion: drains the durable outbox (tasks committed with their
//! versions, design invariant 2) and pushes each version, delete marker or tag change to its
//! destination bucket with the S3 API plus the `x-xregion-*` replica headers
//! (`docs/replication.md`).
//!
//! **Owns**: scheduling (per destination bucket, bounded concurrency, ordered per key), retry
//! with exponential back-off and jitter for transient errors (the version stays `PENDING`),
//! and finishing tasks in the metadata store (`CompleteTask`, or `FailTask` with the AWS
//! failure reason of IAM-8 for permanent errors).
//!
//! **Never does**: block a writer (the source never waits for a destination, design invariant
//! 3), keep the backlog in memory (it lives in the outbox on disk; the worker holds a bounded
//! window of it), or decide what is eligible (that is `xregion_core::replication_rules`, at
//! write time).
//!
//! It is the only crate that uses `aws-sdk-s3` (style.md §3).
#![warn(missing_docs)]

mod backoff;
mod batch;
mod error;
mod external;
pub mod report;
mod s3;
mod target;
mod transport;
mod worker;

pub use backoff::Backoff;
pub use error::{ErrorKind, ReplicationError};
pub use external::{
    ExternalTargetConfig, ExternalTargets, META_SOURCE_LAST_MODIFIED, META_SOURCE_REGION, META_SOURCE_VERSION_ID,
};
pub use s3::S3Target;
pub use target::{Replica, ReplicationTarget};
pub use transport::{Connector, DisplayErr, Transport, connector};
pub use worker::{
    DestinationStatus, LAG_BUCKETS_MS, LagStats, StatusReader, WorkerConfig, WorkerHandle, WorkerStatus, spawn,
};
