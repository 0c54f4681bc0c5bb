//! The `/_xregion/...` endpoints beside the S3 API, one s3s custom route:
//!
//! * `GET /_xregion/replication`: the replication report as JSON, and
//!   `GET /_xregion/metrics`: the same figures in the Prometheus text format (design
//!   invariant 6: every queue is observable). Authorized through the `Authorizer` hook as
//!   `xregion:GetReplicationReport` on the service; anonymous requests get `403 AccessDenied`.
//!   What the reports contain is computed outside this crate, behind [`AdminReports`].
//! * `GET /_xregion/replication/failures[?bucket=B&after=SEQ&max-items=N]`: the permanent
//!   replication failures, oldest first, as JSON (`xregion_core::failures`), authorized like
//!   the reports.
//! * `POST /_xregion/replicate/<bucket>`: a batch of replica writes
//!   (`ops::replica_batch`), each entry authorized like its single-object replica write.
//! * `POST /_xregion/batch-replication/<bucket>[?statuses=NONE,FAILED,COMPLETED,REPLICA]`:
//!   batch replication of the bucket's existing versions with those statuses (all but REPLICA
//!   without the parameter, BAT-3), answered with a JSON
//!   summary (`xregion_core::batch_replication`). Authorized as `s3:InitiateReplication` on
//!   the bucket (BAT-5).
//!
//! * The S3 Control job operations of batch replication (`/v20180820/jobs...` with an
//!   `x-amz-account-id` header: CreateJob, DescribeJob, ListJobs, UpdateJobStatus,
//!   UpdateJobPriority; `crate::control`), each authorized as its `s3:` action on the service.
//!
//! All are SigV4-signed like any S3 request (`curl --aws-sigv4 "aws:amz:<region>:s3"`).
//! `_xregion` can never be a bucket name (it has an underscore), so the paths cannot shadow a
//! bucket; in a virtual-hosted-style request they are object keys.

use std::sync::Arc;

use futures::future::BoxFuture;
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::host::S3Host as _;
use s3s::route::S3Route;
use s3s::validation::NameValidation;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use xregion_identity::{Authorizer, Decision, Identity, Resource};

use xregion_core::Region;
use xregion_types::ReplicationStatus;

use crate::RegionHost;
use crate::control::api::{ControlOp, param, query_pairs};
use crate::ops::replica::ReplicaAuth;

/// The path prefix of the operator endpoints (a name no bucket can have).
pub const ADMIN_PREFIX: &str = "_xregion";

/// IAM-style action name checked for the reports.
///
/// Reports and batch replica writes share this route because s3s takes one custom route.
pub const REPORT_ACTION: &str = "xregion:GetReplicationReport";

/// Path prefix of the batch replica writes (`/_xregion/replicate/<bucket>`).
const REPLICATE_PREFIX: &str = "/_xregion/replicate/";

/// Path prefix of batch replication (`/_xregion/batch-replication/<bucket>`).
const BATCH_PREFIX: &str = "/_xregion/batch-replication/";

/// Path of the failure listing.
const FAILURES_PATH: &str = "/_xregion/replication/failures";

/// Most failures one listing answers (and the default).
const MAX_FAILURES: usize = 1000;

/// IAM-style action checked for a batch replication (BAT-5).
pub const BATCH_ACTION: &str = "s3:InitiateReplication";

/// What a `/_xregion/...` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Report(AdminReport),
    Failures,
    Replicate(String),
    Batch(String),
}

impl Endpoint {
    fn of(method: &Method, path: &str) -> Option<Self> {
        let bucket = |prefix: &str| path.strip_prefix(prefix).filter(|b| !b.is_empty() && !b.contains('/'));
        match *method {
            Method::GET if path == FAILURES_PATH => Some(Self::Failures),
            Method::GET => AdminReport::from_path(path).map(Self::Report),
            Method::POST => match (bucket(REPLICATE_PREFIX), bucket(BATCH_PREFIX)) {
                (Some(b), _) => Some(Self::Replicate(b.to_owned())),
                (_, Some(b)) => Some(Self::Batch(b.to_owned())),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The statuses a batch replication takes (`statuses=NONE,FAILED,COMPLETED,REPLICA`; the
/// first three when the parameter is absent, BAT-3).
fn batch_statuses(query: Option<&str>) -> S3Result<Vec<ReplicationStatus>> {
    let params = query_pairs(query);
    let Some(listed) = param(&params, "statuses") else {
        return Ok(vec![ReplicationStatus::None, ReplicationStatus::Failed, ReplicationStatus::Completed]);
    };
    listed
        .split(',')
        .map(|s| match s.trim().to_ascii_uppercase().as_str() {
            "NONE" => Ok(ReplicationStatus::None),
            "FAILED" => Ok(ReplicationStatus::Failed),
            "COMPLETED" => Ok(ReplicationStatus::Completed),
            "REPLICA" => Ok(ReplicationStatus::Replica),
            other => {
                Err(s3_error!(InvalidArgument, "statuses takes NONE, FAILED, COMPLETED and REPLICA, not {:?}", other))
            }
        })
        .collect()
}

/// Which report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminReport {
    /// `GET /_xregion/replication`: JSON.
    ReplicationJson,
    /// `GET /_xregion/metrics`: Prometheus text.
    Metrics,
}

impl AdminReport {
    /// The report a path names (`/_xregion/replication`, `/_xregion/metrics`).
    pub fn from_path(path: &str) -> Option<Self> {
        match path.strip_prefix('/')?.strip_prefix(ADMIN_PREFIX)? {
            "/replication" => Some(Self::ReplicationJson),
            "/metrics" => Some(Self::Metrics),
            _ => None,
        }
    }

    /// The `Content-Type` of the report body.
    pub fn content_type(self) -> &'static str {
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

/// The s3s custom route serving every [`Endpoint`].
pub(crate) struct XregionRoute {
    region: Region,
    replica_auth: ReplicaAuth,
    reports: Arc<dyn AdminReports>,
    host: RegionHost,
    identity: Identity,
    authorizer: Arc<dyn Authorizer>,
}

impl XregionRoute {
    pub(crate) fn new(
        region: Region,
        reports: Arc<dyn AdminReports>,
        host: RegionHost,
        identity: Identity,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        let replica_auth = ReplicaAuth::new(identity.clone(), Arc::clone(&authorizer));
        Self { region, replica_auth, reports, host, identity, authorizer }
    }
}

#[async_trait::async_trait]
impl S3Route for XregionRoute {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _extensions: &mut Extensions) -> bool {
        // A virtual-hosted-style request names a bucket: its path is an object key.
        let vhost_bucket = headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| self.host.parse_host_header(h).ok().map(|vh| vh.bucket().is_some()))
            .unwrap_or(false);
        // S3 Control requests come to `<account>.<host>`, which may look like a bucket host.
        ControlOp::of(method, uri.path(), headers).is_some()
            || (!vhost_bucket && Endpoint::of(method, uri.path()).is_some())
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let principal = req.credentials.as_ref().and_then(|c| self.identity.principal(&c.access_key));
        let authorize = |action: &str, resource: &Resource| match self.authorizer.authorize(principal, action, resource)
        {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(s3_error!(AccessDenied, "Access Denied: {}", why)),
        };
        if let Some(op) = ControlOp::of(&req.method, req.uri.path(), &req.headers) {
            return authorize(op.action(), &Resource::Service);
        }
        match Endpoint::of(&req.method, req.uri.path()) {
            Some(Endpoint::Report(_) | Endpoint::Failures) => authorize(REPORT_ACTION, &Resource::Service),
            Some(Endpoint::Batch(bucket)) => authorize(BATCH_ACTION, &Resource::Bucket(bucket)),
            // Each entry is authorized on its own object (s3:ReplicateObject / ReplicateDelete).
            Some(Endpoint::Replicate(_)) if req.credentials.is_some() => Ok(()),
            _ => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        // s3s logs every error a custom route returns at ERROR level. A client's mistake (an
        // unknown job, a bad request) is no fault of the server: it is answered here with the
        // error document s3s would have written (the edge adds the request id), and only
        // server-side failures go back to s3s as errors.
        match self.serve(req).await {
            // `501 NotImplemented` too: a request for what xregion does not do (s3s still logs
            // every 5xx answer once).
            Err(e) if status_of(&e).is_client_error() || status_of(&e) == StatusCode::NOT_IMPLEMENTED => {
                Ok(client_error(&e))
            }
            other => other,
        }
    }
}

impl XregionRoute {
    /// Serves one request of the route (see the module docs).
    async fn serve(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if let Some(op) = ControlOp::of(&req.method, req.uri.path(), &req.headers) {
            return crate::control::api::call(&self.region, op, req).await;
        }
        match Endpoint::of(&req.method, req.uri.path()) {
            Some(Endpoint::Report(report)) => {
                let body = self.reports.render(report).await.map_err(|e| s3_error!(InternalError, "{}", e))?;
                let mut resp = S3Response::with_status(Body::from(body), StatusCode::OK);
                let content_type = hyper::header::HeaderValue::from_static(report.content_type());
                resp.headers.insert(hyper::header::CONTENT_TYPE, content_type);
                Ok(resp)
            }
            Some(Endpoint::Failures) => {
                // A scan of the failure table: off the runtime threads, as listings are.
                let (region, query) = (self.region.clone(), req.uri.query().map(str::to_owned));
                let body = tokio::task::spawn_blocking(move || failures_json(&region, query.as_deref()))
                    .await
                    .map_err(|e| s3_error!(InternalError, "failure listing task failed: {}", e))??;
                let mut resp = S3Response::with_status(Body::from(body), StatusCode::OK);
                resp.headers
                    .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                Ok(resp)
            }
            Some(Endpoint::Replicate(bucket)) => {
                crate::ops::replica_batch::replicate_batch(&self.region, &self.replica_auth, &bucket, req).await
            }
            Some(Endpoint::Batch(bucket)) => {
                let statuses = batch_statuses(req.uri.query())?;
                let summary = self.region.replicate_existing(&bucket, &statuses).await.map_err(crate::error::to_s3)?;
                let statuses: Vec<String> = statuses.iter().map(|s| format!("\"{}\"", status_name(s))).collect();
                let body = format!(
                    "{{\"bucket\":\"{bucket}\",\"statuses\":[{}],\"versions_examined\":{},\"versions_queued\":{},\"failures_cleared\":{}}}\n",
                    statuses.join(","),
                    summary.versions_examined,
                    summary.versions_queued,
                    summary.failures_cleared
                );
                let mut resp = S3Response::with_status(Body::from(body), StatusCode::OK);
                resp.headers
                    .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                Ok(resp)
            }
            None => Err(s3_error!(NoSuchKey, "No such xregion endpoint.")),
        }
    }
}

/// The failure listing for a query (`bucket`, `after`, `max-items`), as JSON:
/// `{"failures": [...], "next_after": SEQ | null}`.
fn failures_json(region: &Region, query: Option<&str>) -> S3Result<String> {
    let params = query_pairs(query);
    let given = |name: &str| param(&params, name);
    let after = match given("after") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| s3_error!(InvalidArgument, "after must be a number"))?),
        None => None,
    };
    let limit = match given("max-items") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_FAILURES).contains(n))
            .ok_or_else(|| s3_error!(InvalidArgument, "max-items must be a number from 1 to {}", MAX_FAILURES))?,
        None => MAX_FAILURES,
    };
    let (rows, next) = region.replication_failures(given("bucket"), after, limit).map_err(crate::error::to_s3)?;
    let failures: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|f| {
            serde_json::json!({
                "seq": f.seq,
                "bucket": f.bucket,
                "key": f.key,
                "version_id": f.version_id,
                "destination_bucket": f.destination_bucket,
                "rule_id": f.rule_id,
                "operation": f.operation,
                "reason": f.reason,
                "failed_ms": f.failed_ms,
            })
        })
        .collect();
    let body = serde_json::json!({ "failures": failures, "next_after": next });
    serde_json::to_string_pretty(&body).map_err(|e| s3_error!(InternalError, "{}", e))
}

/// The status an error answers with: its own, else its code's (as s3s would choose).
fn status_of(e: &s3s::S3Error) -> StatusCode {
    e.status_code().or_else(|| e.code().status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A client error as an S3 error response: status, `<Error>` with code and message, and the
/// error's own headers (the fields the edge adds to the document).
fn client_error(e: &s3s::S3Error) -> S3Response<Body> {
    let status = status_of(e);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        quick_xml::escape::escape(e.code().as_str()),
        quick_xml::escape::escape(e.message().unwrap_or_default())
    );
    let mut resp = S3Response::with_status(Body::from(body), status);
    if let Some(headers) = e.headers() {
        resp.headers.extend(headers.clone());
    }
    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/xml"));
    resp
}

/// The batch-replication name of a status.
fn status_name(s: &ReplicationStatus) -> &'static str {
    match s {
        ReplicationStatus::Failed => "FAILED",
        ReplicationStatus::Completed => "COMPLETED",
        ReplicationStatus::Replica => "REPLICA",
        _ => "NONE",
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
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/replicate/b1"), Some(Endpoint::Replicate("b1".into())));
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/replicate/"), None);
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/replicate/b/k"), None);
        assert_eq!(Endpoint::of(&Method::GET, "/_xregion/replicate/b1"), None);
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/metrics"), None);
        assert_eq!(Endpoint::of(&Method::GET, "/_xregion/replication/failures"), Some(Endpoint::Failures));
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/replication/failures"), None);
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/batch-replication/b1"), Some(Endpoint::Batch("b1".into())));
        assert_eq!(Endpoint::of(&Method::POST, "/_xregion/batch-replication/"), None);
        assert_eq!(Endpoint::of(&Method::GET, "/_xregion/batch-replication/b1"), None);
    }

    #[test]
    fn batch_statuses_are_parsed() {
        use ReplicationStatus::{Completed, Failed, None};
        assert_eq!(batch_statuses(Option::None).unwrap(), vec![None, Failed, Completed]);
        assert_eq!(batch_statuses(Some("x=1&statuses=failed%2CNONE")).unwrap(), vec![Failed, None]);
        assert!(batch_statuses(Some("statuses=PENDING")).is_err());
        assert_eq!(batch_statuses(Some("statuses=REPLICA")).unwrap(), vec![ReplicationStatus::Replica]);
        assert!(batch_statuses(Some("statuses=")).is_err());
    }
}
