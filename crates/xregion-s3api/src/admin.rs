//! Operator endpoints beside the S3 API (design invariant 6: every queue is observable):
//!
//! * `GET /_xregion/replication`: the replication report as JSON;
//! * `GET /_xregion/metrics`: the same figures in the Prometheus text format.
//!
//! Both are SigV4-signed like any S3 request (`curl --aws-sigv4 "aws:amz:<region>:s3"`) and
//! authorized through the `Authorizer` hook as `xregion:GetReplicationReport` on the service;
//! anonymous requests get `403 AccessDenied`. `_xregion` can never be a bucket name (it has an
//! underscore), so the path cannot shadow a bucket. What the reports contain is computed
//! outside this crate, behind [`AdminReports`].

use std::sync::Arc;

use futures::future::BoxFuture;
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::host::S3Host as _;
use s3s::route::S3Route;
use s3s::validation::NameValidation;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use xregion_identity::{Authorizer, Decision, Identity, Resource};

use crate::RegionHost;

/// The path prefix of the operator endpoints (a name no bucket can have).
pub const ADMIN_PREFIX: &str = "_xregion";

/// IAM-style action name checked for the reports.
pub const REPORT_ACTION: &str = "xregion:GetReplicationReport";

/// Which report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminReport {
    /// `GET /_xregion/replication`: JSON.
    ReplicationJson,
    /// `GET /_xregion/metrics`: Prometheus text.
    Metrics,
}

impl AdminReport {
    fn from_path(path: &str) -> Option<Self> {
        match path.strip_prefix('/')?.strip_prefix(ADMIN_PREFIX)? {
            "/replication" => Some(Self::ReplicationJson),
            "/metrics" => Some(Self::Metrics),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::ReplicationJson => "application/json",
            Self::Metrics => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Produces the report bodies (implemented by the server, which owns the replication worker).
pub trait AdminReports: Send + Sync + 'static {
    /// The body of `report`, or a message for a 500 response.
    fn render(&self, report: AdminReport) -> BoxFuture<'_, Result<String, String>>;
}

/// The s3s custom route serving [`AdminReport`]s.
pub(crate) struct AdminRoute {
    reports: Arc<dyn AdminReports>,
    host: RegionHost,
    identity: Identity,
    authorizer: Arc<dyn Authorizer>,
}

impl AdminRoute {
    pub(crate) fn new(
        reports: Arc<dyn AdminReports>,
        host: RegionHost,
        identity: Identity,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        Self { reports, host, identity, authorizer }
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _extensions: &mut Extensions) -> bool {
        // A virtual-hosted-style request names a bucket: its path is an object key.
        let vhost_bucket = headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| self.host.parse_host_header(h).ok().map(|vh| vh.bucket().is_some()))
            .unwrap_or(false);
        *method == Method::GET && !vhost_bucket && AdminReport::from_path(uri.path()).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let principal = req.credentials.as_ref().and_then(|c| self.identity.principal(&c.access_key));
        match self.authorizer.authorize(principal, REPORT_ACTION, &Resource::Service) {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(s3_error!(AccessDenied, "Access Denied: {}", why)),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(report) = AdminReport::from_path(req.uri.path()) else {
            return Err(s3_error!(NoSuchKey, "No such xregion endpoint."));
        };
        let body = self.reports.render(report).await.map_err(|e| s3_error!(InternalError, "{}", e))?;
        let mut resp = S3Response::with_status(Body::from(body), StatusCode::OK);
        resp.headers
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(report.content_type()));
        Ok(resp)
    }
}

/// S3's bucket-name rules, plus the reserved [`ADMIN_PREFIX`] so that s3s routes its paths to
/// [`AdminRoute`] instead of refusing them as invalid bucket names. Creating a bucket of that
/// name is still refused by `xregion-core`.
pub(crate) struct Names;

impl NameValidation for Names {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == ADMIN_PREFIX || s3s::path::check_bucket_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(AdminReport::from_path("/_xregion/replication"), Some(AdminReport::ReplicationJson));
        assert_eq!(AdminReport::from_path("/_xregion/metrics"), Some(AdminReport::Metrics));
        assert_eq!(AdminReport::from_path("/_xregion/other"), None);
        assert_eq!(AdminReport::from_path("/_xregion"), None);
        assert_eq!(AdminReport::from_path("/bucket/_xregion/metrics"), None);
        assert!(Names.validate_bucket_name("_xregion") && Names.validate_bucket_name("photos"));
        assert!(!Names.validate_bucket_name("_other"));
    }
}
