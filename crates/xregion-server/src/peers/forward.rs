//! Requests for a bucket that lives in another region, answered by asking that region.
//!
//! S3 answers any request sent to the wrong region's endpoint with `301 PermanentRedirect`,
//! and AWS clients follow it by switching to the bucket's regional endpoint. A client with a
//! custom endpoint (`--endpoint-url`, as every xregion client has) cannot: botocore re-signs
//! for the new region but sends to the same endpoint again and gives up. That made
//! `aws s3 cp s3://backup-eu/k s3://primary-us/k` and `aws s3 sync` between buckets of two
//! regions impossible: the CLI lists or HEADs the source, and copies into the target, through
//! one endpoint.
//!
//! So a region answers such requests itself when it can pass them on whole: it forwards the
//! request, signed with the deployment's credential and marked local-only, to the bucket's
//! region and streams the answer back unchanged. The client's request was authenticated and
//! authorized here first (it reached the operation and found no bucket). What is forwarded:
//!
//! * reads: GET and HEAD, HeadBucket too: the owner's `200` carries `x-amz-bucket-region`,
//!   as S3's `301` does, and clients with one endpoint (`aws s3api head-bucket`, boto3's
//!   `head_bucket`) cannot follow the `301`;
//! * object requests without a body: CopyObject, UploadPartCopy, DeleteObject,
//!   CreateMultipartUpload, AbortMultipartUpload;
//! * small XML bodies, kept whole while s3s reads them ([`ForwardRequest::capture`]):
//!   CompleteMultipartUpload, Put/DeleteObjectTagging, DeleteObjects;
//! * uploads (PutObject, UploadPart). Their bodies are streamed and, with `aws-chunked`
//!   framing, signed chunk by chunk for this region, so they cannot be passed on as received:
//!   the operation hands the decoded body back ([`xregion_s3api::handoff`]) and it is sent on
//!   with a plain `Content-Length`, each chunk's signature checked here as it passes, a
//!   trailing checksum checked before the last chunk leaves.
//!
//! Everything else gets the `301`, as on S3: bucket configuration, which is set in the
//! bucket's own region. Peers learn where a bucket lives from local-only HeadBuckets, which are
//! never forwarded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use xregion_core::{CoreError, CoreResult};
use xregion_replication::report::ForwardedReport;
use xregion_s3api::handoff::{PendingUpload, UploadHandoff};
use xregion_types::ChecksumAlgorithm;

use super::{HttpPeers, Patience, PeerBody, STAMP_TAG_HEADER, whole};

/// How long the bucket's region may take to start answering a forwarded read.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long it may take to answer a forwarded write. A copy answers only when its bytes are
/// stored, which for a large object takes minutes; giving up first would tell the client to
/// retry a copy that is still under way (and then done twice).
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Largest body kept to forward (a CompleteMultipartUpload of 10 000 parts is about 1 MB).
const MAX_KEPT_BODY: u64 = 2 * 1024 * 1024;

/// Request headers not forwarded: the client's signature and framing (the forwarded request
/// is signed anew and travels on its own connection).
const NOT_FORWARDED: [&str; 13] = [
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Query parameters not forwarded: those of a presigned URL (SigV4 and SigV2).
const PRESIGN_PARAMS: [&str; 10] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// Headers of an upload's framing, not forwarded with its decoded body.
const UPLOAD_FRAMING: [&str; 3] = ["content-length", "x-amz-decoded-content-length", "x-amz-trailer"];

/// Answer headers not passed back: connection-level ones, and the peer's stamp tag.
const NOT_RETURNED: [&str; 5] = ["connection", "keep-alive", "transfer-encoding", "upgrade", STAMP_TAG_HEADER];

/// Why a request was not answered by the bucket's region.
#[derive(Debug)]
pub enum ForwardError {
    /// The client's upload body failed, or did not match its checksum: the S3 error a local
    /// upload would have answered.
    Body {
        /// HTTP status.
        status: http::StatusCode,
        /// S3 error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The bucket's region could not be reached, or did not answer in time.
    Region(CoreError),
}

/// Requests forwarded to each peer region since start ([`HttpPeers::forwarded_report`]).
#[derive(Debug, Default)]
pub struct ForwardCounters {
    per_region: BTreeMap<String, Arc<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
    upload_bytes: AtomicU64,
    unavailable: AtomicU64,
}

impl ForwardCounters {
    /// Counters for each of `regions` (the peers; requests only go to them).
    pub fn new<'a>(regions: impl IntoIterator<Item = &'a String>) -> Self {
        Self { per_region: regions.into_iter().map(|r| (r.clone(), Arc::default())).collect() }
    }

    /// The counts as reported, per region.
    pub fn report(&self) -> Vec<ForwardedReport> {
        self.per_region
            .iter()
            .map(|(region, c)| ForwardedReport {
                region: region.clone(),
                reads: c.reads.load(Ordering::Relaxed),
                writes: c.writes.load(Ordering::Relaxed),
                upload_bytes: c.upload_bytes.load(Ordering::Relaxed),
                unavailable: c.unavailable.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// A client's request, kept while s3s handles it, in case it must be forwarded.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    /// The whole body (empty for requests without one).
    body: Bytes,
    /// For a streamed upload: where the operation leaves its body if the bucket is not here.
    upload: Option<UploadHandoff>,
}

impl ForwardRequest {
    /// The request as s3s gets it, and what is kept of it to forward, if it may be forwarded
    /// at all. A small subresource body (see the module docs) is read whole first (s3s would
    /// read it whole too, to check its hash). If it cannot be read (the client went away),
    /// s3s gets an empty body and refuses the request as malformed; nothing is forwarded.
    pub async fn capture(req: http::Request<Incoming>) -> (http::Request<s3s::Body>, Option<Self>) {
        fn kept(parts: &http::request::Parts, body: Bytes) -> ForwardRequest {
            ForwardRequest {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body,
                upload: None,
            }
        }
        match body_kind(&req) {
            BodyKind::None => {
                let (parts, body) = req.into_parts();
                let forward = kept(&parts, Bytes::new());
                (http::Request::from_parts(parts, s3s::Body::from(body)), Some(forward))
            }
            BodyKind::Small => {
                let (parts, body) = req.into_parts();
                match body.collect().await {
                    Ok(collected) => {
                        let bytes = collected.to_bytes();
                        let forward = kept(&parts, bytes.clone());
                        (http::Request::from_parts(parts, s3s::Body::from(bytes)), Some(forward))
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "reading a request body failed");
                        (http::Request::from_parts(parts, s3s::Body::empty()), None)
                    }
                }
            }
            // Only the handoff is kept; the headers come back with the body, if at all.
            BodyKind::Streamed if req.method() == http::Method::PUT => {
                let handoff = UploadHandoff::default();
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(handoff.clone());
                let forward = ForwardRequest {
                    method: parts.method.clone(),
                    uri: parts.uri.clone(),
                    headers: http::HeaderMap::new(),
                    body: Bytes::new(),
                    upload: Some(handoff),
                };
                (http::Request::from_parts(parts, s3s::Body::from(body)), Some(forward))
            }
            BodyKind::Streamed => (req.map(s3s::Body::from), None),
        }
    }

    /// The path and query to send to the bucket's region: path style, without presigning
    /// parameters. `virtual_host` tells whether the client named the bucket in its Host.
    /// `None` for a request that keeps its redirect (bucket writes but DeleteObjects).
    pub fn owner_path(&self, bucket: &str, virtual_host: bool) -> Option<String> {
        let path = self.uri.path();
        let path = if virtual_host { format!("/{bucket}{path}") } else { path.to_owned() };
        let bucket_level =
            path.strip_prefix('/').and_then(|p| p.strip_prefix(bucket)).is_some_and(|rest| matches!(rest, "" | "/"));
        let query: Vec<&str> = self
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !PRESIGN_PARAMS.contains(&p.split_once('=').map_or(*p, |(name, _)| name)))
            .collect();
        let forwarded = match self.method {
            http::Method::GET | http::Method::HEAD => true,
            // DeleteObjects is the one bucket-level write forwarded (`aws s3 rm --recursive`).
            http::Method::POST if bucket_level => param(&query, "delete"),
            // Object writes: uploads, copies, tags, deletes, multipart requests.
            _ => !bucket_level,
        };
        if !forwarded {
            return None;
        }
        Some(if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) })
    }

    /// What to forward with the request: for a streamed upload the body the operation handed
    /// back (its headers become the request's), else nothing more. `None` if an upload's
    /// operation handed back nothing: it did not get as far, and the request keeps its
    /// redirect.
    pub fn prepare(&mut self) -> Option<Option<PendingUpload>> {
        let Some(handoff) = &self.upload else {
            return Some(None);
        };
        let mut pending = handoff.take()?;
        self.headers = std::mem::take(&mut pending.headers);
        Some(Some(pending))
    }

    /// A read (GET, HEAD), which may be answered sooner than a write and is counted apart.
    fn is_read(&self) -> bool {
        self.method == http::Method::GET || self.method == http::Method::HEAD
    }

    /// The Host the client sent.
    pub fn host(&self) -> Option<&str> {
        self.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).or_else(|| self.uri.host())
    }
}

/// True if the query has the parameter `name` (with or without a value).
fn param(query: &[&str], name: &str) -> bool {
    query.iter().any(|p| *p == name || p.strip_prefix(name).is_some_and(|rest| rest.starts_with('=')))
}

/// How a request's body can be kept for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// No body: GET, HEAD, and writes with neither a length above 0 nor chunked framing.
    None,
    /// A small XML body of a subresource request, read whole to keep a copy.
    Small,
    /// Anything else: passed to s3s as a stream and never forwarded.
    Streamed,
}

fn body_kind<B>(req: &http::Request<B>) -> BodyKind {
    let h = req.headers();
    let length =
        h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = h.contains_key(http::header::TRANSFER_ENCODING);
    if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
        return BodyKind::None;
    }
    if !chunked && length.unwrap_or(0) == 0 {
        return BodyKind::None;
    }
    // Signed chunk by chunk for this region, or streamed: cannot be passed on as received.
    let streaming =
        h.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("STREAMING-"))
            || h.get(http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("aws-chunked"));
    let query: Vec<&str> = req.uri().query().unwrap_or_default().split('&').collect();
    let subresource = match *req.method() {
        http::Method::POST => param(&query, "uploadId") || param(&query, "delete"),
        http::Method::PUT => param(&query, "tagging"),
        _ => false,
    };
    match (subresource, streaming, chunked, length) {
        (true, false, false, Some(len)) if len <= MAX_KEPT_BODY => BodyKind::Small,
        _ => BodyKind::Streamed,
    }
}

impl HttpPeers {
    /// Sends a client's request to `region` at `path_and_query` and returns the answer to
    /// pass back: its status, headers (less connection-level ones) and streamed body.
    /// `upload` is a streamed upload's decoded body ([`ForwardRequest::prepare`]).
    pub async fn forward(
        &self,
        region: &str,
        req: &ForwardRequest,
        path_and_query: &str,
        upload: Option<PendingUpload>,
    ) -> Result<http::Response<Incoming>, ForwardError> {
        let (Some(endpoint), Some(counts)) = (self.peers.get(region), self.forwarded.per_region.get(region)) else {
            return Err(ForwardError::Region(CoreError::Unavailable(format!("unknown region {region}"))));
        };
        let counter = if req.is_read() { &counts.reads } else { &counts.writes };
        counter.fetch_add(1, Ordering::Relaxed);
        let failure = upload.as_ref().map(|u| u.failure.clone());
        let e = match self.forward_to(endpoint, counts, region, req, path_and_query, upload).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        // Not the region's fault when the client's own body failed.
        if let Some((status, code, message)) = failure.and_then(|f| f.get()) {
            return Err(ForwardError::Body { status, code, message });
        }
        counts.unavailable.fetch_add(1, Ordering::Relaxed);
        Err(ForwardError::Region(e))
    }

    /// [`Self::forward`] to a known peer.
    async fn forward_to(
        &self,
        endpoint: &str,
        counts: &Arc<Counts>,
        region: &str,
        req: &ForwardRequest,
        path_and_query: &str,
        upload: Option<PendingUpload>,
    ) -> CoreResult<http::Response<Incoming>> {
        let mut headers: Vec<(&str, String)> = req
            .headers
            .iter()
            .filter(|(name, _)| !NOT_FORWARDED.contains(&name.as_str()) && name.as_str() != super::LOCAL_ONLY_HEADER)
            .filter(|(name, _)| upload.is_none() || !UPLOAD_FRAMING.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?.to_owned())))
            .collect();
        let Some(upload) = upload else {
            let patience = Patience::Fixed(if req.is_read() { READ_TIMEOUT } else { WRITE_TIMEOUT });
            let body = whole(req.body.clone());
            return self.answer(region, endpoint, &req.method, path_and_query, &headers, body, patience).await;
        };
        for_decoded_body(&mut headers, upload.length, upload.trailer_algorithm);
        let (sent, sent_rx) = tokio::sync::oneshot::channel();
        let mut sent = Some(sent);
        let end = futures::stream::poll_fn(move |_| {
            if let Some(sent) = sent.take() {
                let _ = sent.send(());
            }
            std::task::Poll::Ready(None)
        });
        let counts = Arc::clone(counts);
        let counted = upload.body.inspect_ok(move |b| {
            counts.upload_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        });
        let frames = counted.chain(end).map_ok(hyper::body::Frame::data);
        let body = http_body_util::StreamBody::new(frames).boxed_unsync();
        let patience = Patience::AfterBody(WRITE_TIMEOUT, sent_rx);
        self.answer(region, endpoint, &req.method, path_and_query, &headers, body, patience).await
    }

    /// Sends a forwarded request and passes its answer back, less what is not returned.
    #[allow(clippy::too_many_arguments, reason = "one request's parts; a struct would only rename them")]
    async fn answer(
        &self,
        region: &str,
        endpoint: &str,
        method: &http::Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: PeerBody,
        patience: Patience,
    ) -> CoreResult<http::Response<Incoming>> {
        let mut resp =
            self.send_body(method.as_str(), region, endpoint, path_and_query, headers, body, patience).await?;
        for name in NOT_RETURNED {
            resp.headers_mut().remove(name);
        }
        Ok(resp)
    }
}

/// An upload's headers for its decoded body: no `aws-chunked` coding, its decoded length, and
/// the algorithm of a trailing checksum (`x-amz-checksum-algorithm`, which asks xregion to
/// compute one; the value was checked here) so that the bucket's region stores it too. The
/// framing headers ([`UPLOAD_FRAMING`]) are gone already.
fn for_decoded_body(headers: &mut Vec<(&str, String)>, length: Option<u64>, trailer: Option<ChecksumAlgorithm>) {
    headers.retain_mut(|(name, value)| {
        if *name != "content-encoding" {
            return true;
        }
        let codings: Vec<&str> =
            value.split(',').map(str::trim).filter(|c| !c.eq_ignore_ascii_case("aws-chunked")).collect();
        *value = codings.join(", ");
        !value.is_empty()
    });
    if let Some(len) = length {
        headers.push(("content-length", len.to_string()));
    }
    if let Some(alg) = trailer {
        headers.push(("x-amz-checksum-algorithm", alg.as_str().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap()
    }

    fn kept(method: &str, uri: &str) -> ForwardRequest {
        let req = request(method, uri, &[]);
        ForwardRequest {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            body: Bytes::new(),
            upload: None,
        }
    }

    #[test]
    fn bodies_are_kept_only_when_small_and_plain() {
        let kind = |method: &str, uri: &str, headers: &[(&str, &str)]| body_kind(&request(method, uri, headers));
        assert_eq!(kind("GET", "/b/k", &[]), BodyKind::None);
        assert_eq!(kind("PUT", "/b/k", &[("x-amz-copy-source", "/a/k"), ("content-length", "0")]), BodyKind::None);
        assert_eq!(kind("DELETE", "/b/k", &[]), BodyKind::None);
        assert_eq!(kind("PUT", "/b/k", &[("content-length", "5")]), BodyKind::Streamed, "PutObject");
        assert_eq!(kind("POST", "/b/k?uploadId=u", &[("content-length", "300")]), BodyKind::Small);
        assert_eq!(kind("POST", "/b?delete", &[("content-length", "300")]), BodyKind::Small);
        assert_eq!(kind("PUT", "/b/k?tagging", &[("content-length", "300")]), BodyKind::Small);
        let huge = (MAX_KEPT_BODY + 1).to_string();
        assert_eq!(kind("POST", "/b/k?uploadId=u", &[("content-length", &huge)]), BodyKind::Streamed);
        let signed_chunks = [("content-length", "300"), ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")];
        assert_eq!(kind("PUT", "/b/k?tagging", &signed_chunks), BodyKind::Streamed);
        assert_eq!(kind("PUT", "/b/k?tagging", &[("transfer-encoding", "chunked")]), BodyKind::Streamed);
    }

    #[test]
    fn an_upload_goes_on_without_its_framing() {
        let sent = |headers: &[(&'static str, &str)], trailer| {
            let mut headers: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
            for_decoded_body(&mut headers, Some(7), trailer);
            headers
        };
        let own = [("content-encoding", "gzip, aws-chunked"), ("x-amz-meta-a", "1")];
        assert_eq!(
            sent(&own, Some(ChecksumAlgorithm::Crc32)),
            [
                ("content-encoding", "gzip".to_owned()),
                ("x-amz-meta-a", "1".to_owned()),
                ("content-length", "7".to_owned()),
                ("x-amz-checksum-algorithm", "CRC32".to_owned())
            ]
        );
        assert_eq!(sent(&[("content-encoding", "aws-chunked")], None), [("content-length", "7".to_owned())]);
    }

    #[tokio::test]
    async fn forwarded_requests_are_counted_per_region() {
        let peers = [("eu-west-1".to_owned(), "http://127.0.0.1:1".to_owned())].into_iter().collect();
        let tags = Arc::new(super::super::StampTagCheck::new(0));
        let peers = HttpPeers::new(peers, "AK".into(), "SK".into(), tags, &super::super::tests::transport());
        let err = peers.forward("eu-west-1", &kept("GET", "/b/k"), "/b/k", None).await;
        assert!(matches!(err, Err(ForwardError::Region(CoreError::Unavailable(_)))), "{err:?}");
        let err = peers.forward("eu-west-1", &kept("DELETE", "/b/k"), "/b/k", None).await;
        assert!(matches!(err, Err(ForwardError::Region(CoreError::Unavailable(_)))), "{err:?}");
        assert!(peers.forward("ap-south-1", &kept("GET", "/b/k"), "/b/k", None).await.is_err());
        let report = peers.forwarded_report();
        let counts: Vec<_> = report.iter().map(|f| (f.region.as_str(), f.reads, f.writes, f.unavailable)).collect();
        assert_eq!(counts, [("eu-west-1", 1, 1, 2)], "an unknown region is not counted");
    }

    #[test]
    fn paths_become_path_style_without_presigning() {
        assert_eq!(kept("GET", "/b/k%20x?versionId=1").owner_path("b", false).as_deref(), Some("/b/k%20x?versionId=1"));
        assert_eq!(kept("GET", "/k%20x").owner_path("b", true).as_deref(), Some("/b/k%20x"));
        assert_eq!(kept("GET", "/b/b/k").owner_path("b", true).as_deref(), Some("/b/b/b/k"));
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Date=d&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s&response-content-type=text%2Fplain";
        assert_eq!(
            kept("GET", presigned).owner_path("b", false).as_deref(),
            Some("/b/k?response-content-type=text%2Fplain")
        );
        let v2 = "/b/k?AWSAccessKeyId=a&Expires=1&Signature=s";
        assert_eq!(kept("HEAD", v2).owner_path("b", false).as_deref(), Some("/b/k"));
        assert_eq!(
            kept("GET", "/b?list-type=2&prefix=a%2F").owner_path("b", false).as_deref(),
            Some("/b?list-type=2&prefix=a%2F")
        );
    }

    #[test]
    fn only_bucket_configuration_keeps_its_redirect() {
        assert!(kept("HEAD", "/b").owner_path("b", false).is_some(), "HeadBucket");
        assert!(kept("HEAD", "/").owner_path("b", true).is_some(), "HeadBucket, virtual-hosted");
        assert!(kept("HEAD", "/b/k").owner_path("b", false).is_some());
        assert!(kept("GET", "/b").owner_path("b", false).is_some());
        // A bucket is told from a key by the whole name, not a prefix of it.
        assert!(kept("PUT", "/bb?cors").owner_path("bb", false).is_none());
        assert!(kept("PUT", "/bb?cors").owner_path("b", false).is_some());
        assert!(kept("PUT", "/bb/x?cors").owner_path("b", true).is_some());
        assert_eq!(kept("DELETE", "/b").owner_path("b", false), None, "DeleteBucket");
        assert_eq!(kept("PUT", "/b?versioning").owner_path("b", false), None);
        assert!(kept("POST", "/b?delete").owner_path("b", false).is_some(), "DeleteObjects");
        assert!(kept("PUT", "/b/k").owner_path("b", false).is_some(), "PutObject, CopyObject");
        assert!(kept("PUT", "/b/k?partNumber=1&uploadId=u").owner_path("b", false).is_some(), "UploadPart");
        assert!(kept("PUT", "/b/k?tagging").owner_path("b", false).is_some());
        assert!(kept("DELETE", "/b/k?versionId=v").owner_path("b", false).is_some());
        assert!(kept("POST", "/b/k?uploads").owner_path("b", false).is_some());
    }
}
