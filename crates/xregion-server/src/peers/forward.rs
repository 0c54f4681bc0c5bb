//! Reads of a bucket that lives in another region, answered by asking that region.
//!
//! S3 answers any request sent to the wrong region's endpoint with `301 PermanentRedirect`,
//! and AWS clients follow it by switching to the bucket's regional endpoint. A client with a
//! custom endpoint (`--endpoint-url`, as every xregion client has) cannot: botocore re-signs
//! for the new region but sends to the same endpoint again and gives up. That made
//! `aws s3 cp s3://backup-eu/k s3://primary-us/k` and `aws s3 sync` between buckets of two
//! regions impossible: the CLI lists or HEADs the source through the endpoint it writes to.
//!
//! So a region answers reads (GET and HEAD, except HeadBucket) of another region's bucket
//! itself: it forwards the request, signed with the deployment's credential and marked
//! local-only, to the bucket's region and streams the answer back unchanged. The client's
//! request was authenticated and authorized here first (it reached the operation and found
//! no bucket). Writes still get the `301`, as on S3; HeadBucket too, so that clients and
//! peers learn where a bucket lives from it.

use hyper::body::Incoming;
use xregion_core::{CoreError, CoreResult};

use super::{HttpPeers, STAMP_TAG_HEADER};

/// How long the bucket's region may take to start answering a forwarded read.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Request headers not forwarded: the client's signature and framing (the forwarded request
/// is signed anew, has no body, and travels on its own connection).
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

/// Answer headers not passed back: connection-level ones, and the peer's stamp tag.
const NOT_RETURNED: [&str; 5] = ["connection", "keep-alive", "transfer-encoding", "upgrade", STAMP_TAG_HEADER];

/// A client's GET or HEAD, kept while s3s handles it, in case it must be forwarded.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl ReadRequest {
    /// The request's method, URI and headers, if it is a GET or HEAD.
    pub fn of<B>(req: &http::Request<B>) -> Option<Self> {
        let method = req.method();
        (method == http::Method::GET || method == http::Method::HEAD).then(|| Self {
            method: method.clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        })
    }

    /// The path and query to send to the bucket's region: path style, without presigning
    /// parameters. `virtual_host` tells whether the client named the bucket in its Host.
    /// `None` for HeadBucket, which keeps its redirect.
    pub fn owner_path(&self, bucket: &str, virtual_host: bool) -> Option<String> {
        let path = self.uri.path();
        let path = if virtual_host { format!("/{bucket}{path}") } else { path.to_owned() };
        let bucket_level =
            path.strip_prefix('/').and_then(|p| p.strip_prefix(bucket)).is_some_and(|rest| matches!(rest, "" | "/"));
        if self.method == http::Method::HEAD && bucket_level {
            return None;
        }
        let query: Vec<&str> = self
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !PRESIGN_PARAMS.contains(&p.split_once('=').map_or(*p, |(name, _)| name)))
            .collect();
        Some(if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) })
    }

    /// The Host the client sent.
    pub fn host(&self) -> Option<&str> {
        self.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).or_else(|| self.uri.host())
    }
}

impl HttpPeers {
    /// Sends a client's read to `region` at `path_and_query` and returns the answer to pass
    /// back: its status, headers (less connection-level ones) and streamed body.
    pub async fn forward_read(
        &self,
        region: &str,
        read: &ReadRequest,
        path_and_query: &str,
    ) -> CoreResult<http::Response<Incoming>> {
        let endpoint =
            self.peers.get(region).ok_or_else(|| CoreError::Unavailable(format!("unknown region {region}")))?;
        let headers: Vec<(&str, String)> = read
            .headers
            .iter()
            .filter(|(name, _)| !NOT_FORWARDED.contains(&name.as_str()) && name.as_str() != super::LOCAL_ONLY_HEADER)
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?.to_owned())))
            .collect();
        let mut resp =
            self.send_with(read.method.as_str(), region, endpoint, path_and_query, &headers, FORWARD_TIMEOUT).await?;
        for name in NOT_RETURNED {
            resp.headers_mut().remove(name);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(method: &str, uri: &str) -> ReadRequest {
        let req = http::Request::builder().method(method).uri(uri).body(()).unwrap();
        ReadRequest::of(&req).unwrap()
    }

    #[test]
    fn only_reads_are_kept() {
        for method in ["PUT", "POST", "DELETE"] {
            let req = http::Request::builder().method(method).uri("/b/k").body(()).unwrap();
            assert!(ReadRequest::of(&req).is_none(), "{method}");
        }
    }

    #[test]
    fn paths_become_path_style_without_presigning() {
        assert_eq!(read("GET", "/b/k%20x?versionId=1").owner_path("b", false).as_deref(), Some("/b/k%20x?versionId=1"));
        assert_eq!(read("GET", "/k%20x").owner_path("b", true).as_deref(), Some("/b/k%20x"));
        assert_eq!(read("GET", "/b/b/k").owner_path("b", true).as_deref(), Some("/b/b/b/k"));
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Date=d&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s&response-content-type=text%2Fplain";
        assert_eq!(
            read("GET", presigned).owner_path("b", false).as_deref(),
            Some("/b/k?response-content-type=text%2Fplain")
        );
        let v2 = "/b/k?AWSAccessKeyId=a&Expires=1&Signature=s";
        assert_eq!(read("HEAD", v2).owner_path("b", false).as_deref(), Some("/b/k"));
        assert_eq!(
            read("GET", "/b?list-type=2&prefix=a%2F").owner_path("b", false).as_deref(),
            Some("/b?list-type=2&prefix=a%2F")
        );
    }

    #[test]
    fn head_bucket_keeps_its_redirect() {
        assert_eq!(read("HEAD", "/b").owner_path("b", false), None);
        assert_eq!(read("HEAD", "/b/").owner_path("b", false), None);
        assert_eq!(read("HEAD", "/").owner_path("b", true), None);
        assert!(read("HEAD", "/b/k").owner_path("b", false).is_some());
        assert!(read("GET", "/b").owner_path("b", false).is_some());
        assert!(read("HEAD", "/bb").owner_path("bb", false).is_none());
        assert!(read("HEAD", "/bb").owner_path("b", false).is_some());
        assert!(read("HEAD", "/bb/x").owner_path("b", true).is_some());
    }
}
