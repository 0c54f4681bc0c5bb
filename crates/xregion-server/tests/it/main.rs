//! End-to-end tests of xregion: real `xregion serve` processes on loopback, driven by
//! `aws-sdk-s3`, hand-signed raw requests, and boto3. One test binary (see style.md §3);
//! versioning tests cite the rules of `shared/spec/s3-replication.md` §1 (VER-n).
#![allow(
    clippy::disallowed_methods,
    reason = "the harness writes scratch files and waits for processes on blocking threads"
)]

mod attributes;
mod auth;
mod batch_jobs;
mod batch_replication;
mod boto3;
mod buckets;
mod checksums;
mod common;
mod copy_across_regions;
mod crash;
mod dev_mode;
mod disk_full;
mod encryption;
mod external_targets;
mod forwarded;
mod lifecycle;
mod listing;
mod multipart;
mod objects;
mod observability;
mod replication;
mod replication_chaos;
mod replication_config;
mod replication_rules_e2e;
mod replication_walkthrough;
mod sse_c;
mod tls;
mod unsupported;
mod versioning;
