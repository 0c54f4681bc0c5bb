//! S3 protocol adapter of xregion, built on `s3s`: the only crate that sees s3s types.
//!
//! Each operation is a thin translation: s3s DTO → one `xregion-core` call → s3s DTO. The
//! mapping of core errors to S3 error codes lives in one place ([`error`]). Authentication
//! (SigV4 header, presigned, streaming) is s3s's; the secret comes from
//! `xregion-identity`, and every request is authorized through its `Authorizer` hook.
#![warn(missing_docs)]

mod access;
pub mod admin;
mod control;
mod convert;
pub mod error;
pub mod handoff;
mod host;
mod ops;
mod service;

use std::sync::Arc;

use s3s::service::{S3Service, S3ServiceBuilder};
use xregion_core::Region;
use xregion_identity::{Authorizer, Identity};

pub use host::RegionHost;

/// The S3 Control `CreateJob` body parser, for the fuzz target (`fuzz/fuzz_targets/create_job.rs`):
/// the job it asks for, or the AWS error code and message.
#[doc(hidden)]
pub fn parse_create_job_request(body: &[u8], account_id: &str) -> Result<xregion_types::job::JobSpec, String> {
    control::xml::parse_create_job(body, account_id).map_err(|e| e.to_string())
}

/// The S3 Control `PutJobTagging` body parser, for the same fuzz target: the tag set, or the
/// AWS error code and message.
#[doc(hidden)]
pub fn parse_put_job_tagging_request(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    control::xml::parse_put_job_tagging(body).map_err(|e| e.to_string())
}

/// Builds the S3 service of one region.
/// `domains` are the base domains for virtual-hosted-style addressing (`bucket.domain`);
/// path-style always works.
/// `reports` serves the operator endpoints (`GET /_xregion/replication` and `/_xregion/metrics`,
/// see [`admin`]).
pub fn build_service(
    region: Region,
    identity: Identity,
    authorizer: Arc<dyn Authorizer>,
    domains: Vec<String>,
    reports: Arc<dyn admin::AdminReports>,
) -> S3Service {
    let api =
        service::Api::new(region.clone(), ops::replica::ReplicaAuth::new(identity.clone(), Arc::clone(&authorizer)));
    let host = RegionHost::new(domains);
    let mut builder = S3ServiceBuilder::new(api);
    builder.set_auth(access::Auth::new(identity.clone()));
    builder.set_access(access::Access::new(identity.clone(), Arc::clone(&authorizer)));
    builder.set_route(admin::XregionRoute::new(region, reports, host.clone(), identity, authorizer));
    builder.set_validation(admin::Names);
    builder.set_host(host);
    builder.build()
}
