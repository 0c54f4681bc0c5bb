//! The S3 Control job operations (REST paths under `/v20180820/jobs`, BAT-2, BAT-6): which
//! request is which, what it is authorized as, and the handlers, which parse with
//! [`super::xml`] and call the use cases in `xregion_core::jobs`.
//!
//! S3 Control requests carry the account in `x-amz-account-id` (SDKs also put it in front of
//! the host name: `<account>.<endpoint host>`, which this region accepts like its own name).
//! xregion has one account per deployment; any 12-digit id is taken, and a job is visible
//! only under the id it was created with, as on AWS.

use hyper::{HeaderMap, Method, StatusCode};
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use xregion_core::Region;
use xregion_types::job::{JobRecord, JobStatus};

use super::xml::{self, ControlError};
use crate::error::to_s3;

/// The path every S3 Control operation is under.
const CONTROL_PREFIX: &str = "/v20180820/";
/// The path every job operation is under.
const JOBS_PATH: &str = "/v20180820/jobs";
/// The account header S3 Control requires.
const ACCOUNT_HEADER: &str = "x-amz-account-id";
/// Largest `CreateJob` body read.
const MAX_BODY: usize = 64 * 1024;
/// `ListJobs` page size when `maxResults` is absent (and its upper bound).
const MAX_RESULTS: usize = 1000;

/// One S3 Control job operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ControlOp {
    /// `POST /v20180820/jobs`.
    CreateJob,
    /// `GET /v20180820/jobs`.
    ListJobs,
    /// `GET /v20180820/jobs/<id>`.
    DescribeJob(String),
    /// `POST /v20180820/jobs/<id>/status`.
    UpdateJobStatus(String),
    /// `POST /v20180820/jobs/<id>/priority`.
    UpdateJobPriority(String),
    /// `GET /v20180820/jobs/<id>/tagging`.
    GetJobTagging(String),
    /// `PUT /v20180820/jobs/<id>/tagging`.
    PutJobTagging(String),
    /// `DELETE /v20180820/jobs/<id>/tagging`.
    DeleteJobTagging(String),
    /// Any other S3 Control request (access points, Storage Lens, …): answered
    /// `501 NotImplemented`, not taken for an object of a bucket named `v20180820`.
    Unsupported(String),
}

impl ControlOp {
    /// The operation a request is, if it is one: its path is under [`JOBS_PATH`] and it
    /// names an account.
    pub(crate) fn of(method: &Method, path: &str, headers: &HeaderMap) -> Option<Self> {
        if !headers.contains_key(ACCOUNT_HEADER) {
            return None;
        }
        let unsupported = || Some(Self::Unsupported(format!("{method} {path}")));
        let Some(rest) = path.strip_prefix(JOBS_PATH) else {
            return path.starts_with(CONTROL_PREFIX).then(unsupported).flatten();
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return unsupported();
        }
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        match (method, rest.is_empty(), parts.as_slice()) {
            (&Method::POST, true, _) => Some(Self::CreateJob),
            (&Method::GET, true, _) => Some(Self::ListJobs),
            (&Method::GET, false, [id]) if !id.is_empty() => Some(Self::DescribeJob((*id).to_owned())),
            (&Method::POST, false, [id, "status"]) if !id.is_empty() => Some(Self::UpdateJobStatus((*id).to_owned())),
            (&Method::POST, false, [id, "priority"]) if !id.is_empty() => {
                Some(Self::UpdateJobPriority((*id).to_owned()))
            }
            (&Method::GET, false, [id, "tagging"]) if !id.is_empty() => Some(Self::GetJobTagging((*id).to_owned())),
            (&Method::PUT, false, [id, "tagging"]) if !id.is_empty() => Some(Self::PutJobTagging((*id).to_owned())),
            (&Method::DELETE, false, [id, "tagging"]) if !id.is_empty() => {
                Some(Self::DeleteJobTagging((*id).to_owned()))
            }
            _ => unsupported(),
        }
    }

    /// The IAM action the operation is authorized as.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Self::CreateJob => "s3:CreateJob",
            Self::ListJobs => "s3:ListJobs",
            Self::DescribeJob(_) => "s3:DescribeJob",
            Self::UpdateJobStatus(_) => "s3:UpdateJobStatus",
            Self::UpdateJobPriority(_) => "s3:UpdateJobPriority",
            Self::GetJobTagging(_) => "s3:GetJobTagging",
            Self::PutJobTagging(_) => "s3:PutJobTagging",
            Self::DeleteJobTagging(_) => "s3:DeleteJobTagging",
            // Refused for any principal allowed to reach the API; the answer is the same.
            Self::Unsupported(_) => "s3:ListJobs",
        }
    }
}

/// Serves one S3 Control job operation.
pub(crate) async fn call(region: &Region, op: ControlOp, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
    let account = account_of(&req.headers)?;
    let query = query_pairs(req.uri.query());
    let body = match op {
        ControlOp::CreateJob => {
            let bytes = read_body(&mut req, "CreateJob").await?;
            let spec = xml::parse_create_job(&bytes, &account).map_err(control_error)?;
            let job = region.create_job(spec).await.map_err(to_s3)?;
            xml::render_create_job(&job.id)
        }
        ControlOp::DescribeJob(id) => {
            let job = visible_job(region, &id, &account)?;
            xml::render_describe_job(&job, region.name())
        }
        ControlOp::ListJobs => {
            let mut statuses = Vec::new();
            for (_, name) in query.iter().filter(|(k, _)| k == "jobStatuses") {
                // `Paused`/`Pausing` are valid names that no xregion job is ever in.
                if !matches!(name.as_str(), "Paused" | "Pausing") {
                    statuses.push(JobStatus::parse(name).ok_or_else(|| {
                        control_error(ControlError::new("InvalidRequest", format!("Unknown job status {name}.")))
                    })?);
                }
            }
            let wanted_only_paused = statuses.is_empty() && query.iter().any(|(k, _)| k == "jobStatuses");
            let max = match param(&query, "maxResults") {
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RESULTS).contains(n))
                    .ok_or_else(|| invalid("maxResults must be a number from 1 to 1000."))?,
                None => MAX_RESULTS,
            };
            let mut jobs: Vec<JobRecord> = if wanted_only_paused {
                Vec::new()
            } else {
                region.jobs(&statuses).map_err(to_s3)?.into_iter().filter(|j| j.spec.account_id == account).collect()
            };
            // The token is the id of the last job of the previous page.
            if let Some(after) = param(&query, "nextToken") {
                match jobs.iter().position(|j| j.id == after) {
                    Some(at) => {
                        jobs.drain(..=at);
                    }
                    None => return Err(invalid("The nextToken is not valid.")),
                }
            }
            let next = (jobs.len() > max).then(|| jobs[max - 1].id.clone());
            jobs.truncate(max);
            xml::render_list_jobs(&jobs, next.as_deref())
        }
        ControlOp::UpdateJobStatus(id) => {
            visible_job(region, &id, &account)?;
            let requested =
                param(&query, "requestedJobStatus").ok_or_else(|| invalid("requestedJobStatus is required."))?;
            let requested = match requested {
                "Ready" => JobStatus::Ready,
                "Cancelled" => JobStatus::Cancelled,
                other => return Err(invalid(&format!("requestedJobStatus must be Ready or Cancelled, not {other}."))),
            };
            let reason = param(&query, "statusUpdateReason").map(str::to_owned);
            let job = region.update_job_status(&id, requested, reason).await.map_err(to_s3)?;
            xml::render_update_job_status(&job)
        }
        ControlOp::GetJobTagging(id) => xml::render_get_job_tagging(&visible_job(region, &id, &account)?),
        ControlOp::PutJobTagging(id) => {
            visible_job(region, &id, &account)?;
            let bytes = read_body(&mut req, "PutJobTagging").await?;
            let tags = xml::parse_put_job_tagging(&bytes).map_err(control_error)?;
            region.put_job_tagging(&id, tags).await.map_err(to_s3)?;
            xml::render_empty("PutJobTaggingResult")
        }
        ControlOp::DeleteJobTagging(id) => {
            visible_job(region, &id, &account)?;
            region.put_job_tagging(&id, Vec::new()).await.map_err(to_s3)?;
            xml::render_empty("DeleteJobTaggingResult")
        }
        ControlOp::Unsupported(what) => {
            let message = format!(
                "The S3 Control operation {what} is not supported: xregion serves the batch replication \
                 job operations (CreateJob, DescribeJob, ListJobs, UpdateJobStatus, UpdateJobPriority, \
                 GetJobTagging, PutJobTagging, DeleteJobTagging)."
            );
            return Err(control_error(ControlError::new("NotImplemented", message)));
        }
        ControlOp::UpdateJobPriority(id) => {
            visible_job(region, &id, &account)?;
            let priority = param(&query, "priority")
                .and_then(|p| p.parse::<i32>().ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| invalid("priority must be a number from 0 to 2147483647."))?;
            let job = region.update_job_priority(&id, priority).await.map_err(to_s3)?;
            xml::render_update_job_priority(&job)
        }
    };
    let mut resp = S3Response::with_status(Body::from(body), StatusCode::OK);
    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/xml"));
    Ok(resp)
}

/// The request body, at most [`MAX_BODY`] bytes, of operation `what`.
async fn read_body(req: &mut S3Request<Body>, what: &str) -> S3Result<bytes::Bytes> {
    let body = req.input.store_all_limited(MAX_BODY).await;
    body.map_err(|e| control_error(ControlError::new("MalformedXML", format!("{what} body: {e}"))))
}

/// The job `id` if it was created under `account` (else `NotFoundException`, as on AWS).
fn visible_job(region: &Region, id: &str, account: &str) -> S3Result<JobRecord> {
    let job = region.job(id).map_err(to_s3)?;
    if job.spec.account_id != account {
        return Err(to_s3(xregion_core::CoreError::NoSuchJob(id.to_owned())));
    }
    Ok(job)
}

/// The 12-digit account of the request.
fn account_of(headers: &HeaderMap) -> S3Result<String> {
    let account = headers.get(ACCOUNT_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(account.to_owned())
    } else {
        Err(invalid("x-amz-account-id must be a 12-digit account id."))
    }
}

/// Decoded query parameters, in order (a name may repeat: `jobStatuses`).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_default();
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The value of query parameter `name`, if given.
pub(crate) fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn invalid(message: &str) -> S3Error {
    control_error(ControlError::new("InvalidRequest", message.to_owned()))
}

/// A codec error as an S3 error response (`400`, `501` for `NotImplemented`).
fn control_error(e: ControlError) -> S3Error {
    let status = match e.code {
        "NotImplemented" => StatusCode::NOT_IMPLEMENTED,
        "AccessDenied" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = S3ErrorCode::from_bytes(e.code.as_bytes()).unwrap_or(S3ErrorCode::Custom(e.code.into()));
    let mut err = S3Error::with_message(code, e.message);
    err.set_status_code(status);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(account: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        if account {
            h.insert(ACCOUNT_HEADER, "123456789012".parse().unwrap());
        }
        h
    }

    #[test]
    fn operations_by_method_and_path() {
        let h = headers(true);
        let of = |m: Method, p: &str| ControlOp::of(&m, p, &h);
        assert_eq!(of(Method::POST, "/v20180820/jobs"), Some(ControlOp::CreateJob));
        assert_eq!(of(Method::GET, "/v20180820/jobs"), Some(ControlOp::ListJobs));
        assert_eq!(of(Method::GET, "/v20180820/jobs/abc"), Some(ControlOp::DescribeJob("abc".into())));
        assert_eq!(of(Method::POST, "/v20180820/jobs/abc/status"), Some(ControlOp::UpdateJobStatus("abc".into())));
        assert_eq!(of(Method::POST, "/v20180820/jobs/abc/priority"), Some(ControlOp::UpdateJobPriority("abc".into())));
        let unsupported = |m: Method, p: &str| matches!(of(m, p), Some(ControlOp::Unsupported(_)));
        assert!(unsupported(Method::GET, "/v20180820/jobs/abc/status"));
        assert!(unsupported(Method::DELETE, "/v20180820/jobs/abc"));
        assert_eq!(of(Method::GET, "/v20180820/jobs/abc/tagging"), Some(ControlOp::GetJobTagging("abc".into())));
        assert_eq!(of(Method::PUT, "/v20180820/jobs/abc/tagging"), Some(ControlOp::PutJobTagging("abc".into())));
        assert_eq!(of(Method::DELETE, "/v20180820/jobs/abc/tagging"), Some(ControlOp::DeleteJobTagging("abc".into())));
        assert!(unsupported(Method::POST, "/v20180820/jobs/abc/tagging"));
        assert!(unsupported(Method::GET, "/v20180820/jobsx"));
        assert!(unsupported(Method::GET, "/v20180820/jobs/"));
        assert!(unsupported(Method::GET, "/v20180820/accesspoint"));
        assert_eq!(of(Method::GET, "/bucket/v20180820/jobs"), None);
        assert_eq!(of(Method::GET, "/v20180820"), None);
        // Without the account header it is an object path like any other.
        assert_eq!(ControlOp::of(&Method::GET, "/v20180820/jobs", &headers(false)), None);
    }

    #[test]
    fn accounts_and_queries() {
        assert_eq!(account_of(&headers(true)).unwrap(), "123456789012");
        let mut h = HeaderMap::new();
        h.insert(ACCOUNT_HEADER, "12345".parse().unwrap());
        assert!(account_of(&h).is_err());
        let q = query_pairs(Some("jobStatuses=Active&jobStatuses=Complete&statusUpdateReason=a%20b+c"));
        assert_eq!(q.len(), 3);
        assert_eq!(param(&q, "statusUpdateReason"), Some("a b c"));
        assert_eq!(q.iter().filter(|(k, _)| k == "jobStatuses").count(), 2);
    }
}
