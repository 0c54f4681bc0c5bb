//! Peer lookups over the S3 API: "which region owns bucket X?" is a signed `HEAD /X` to each
//! peer, answered from the peer's local state only (`x-xregion-local-only: 1`, so peers
//! never ask each other in a loop). The answer is the `x-amz-bucket-region` header. A
//! destination bucket's versioning state (VAL-3) is then a signed `GET /X?versioning` to the
//! region that owns it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use xregion_core::{CoreError, CoreResult, PeerDirectory};
use xregion_types::VersioningState;

/// Header that asks a region to answer bucket lookups from local state only.
pub const LOCAL_ONLY_HEADER: &str = "x-xregion-local-only";

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the other regions of the deployment over HTTP.
pub struct HttpPeers {
    peers: BTreeMap<String, String>,
    access_key: String,
    secret_key: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpPeers {
    /// Peers by region name → endpoint, signing with the deployment's root credential.
    pub fn new(peers: BTreeMap<String, String>, access_key: String, secret_key: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { peers, access_key, secret_key, client }
    }

    /// Sends a signed, body-less request to a peer region, asking for an answer from its local
    /// state only (`x-xregion-local-only: 1`). `path_and_query` starts with `/`.
    async fn send(
        &self,
        method: &str,
        region: &str,
        endpoint: &str,
        path_and_query: &str,
    ) -> CoreResult<http::Response<hyper::body::Incoming>> {
        let url = format!("{endpoint}{path_and_query}");
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(LOCAL_ONLY_HEADER, "1")
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(Empty::<Bytes>::new())
            .map_err(|e| CoreError::Internal(format!("peer request: {e}")))?;
        let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&host).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        let identity =
            aws_credential_types::Credentials::new(&self.access_key, &self.secret_key, None, None, "xregion-peer")
                .into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> =
            req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
        let signable = SignableRequest::new(method, &url, headers.into_iter(), SignableBody::UnsignedPayload)
            .map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        tokio::time::timeout(LOOKUP_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| CoreError::Unavailable(format!("region {region} did not answer in time")))?
            .map_err(|e| CoreError::Unavailable(format!("region {region} is unreachable: {e}")))
    }

    /// `HEAD /{bucket}`: the region owning `bucket` if this peer has it.
    async fn ask(&self, region: &str, endpoint: &str, bucket: &str) -> CoreResult<Option<String>> {
        let resp = self.send("HEAD", region, endpoint, &format!("/{bucket}")).await?;
        let status = resp.status();
        if status.is_success() {
            let owner =
                resp.headers().get("x-amz-bucket-region").and_then(|v| v.to_str().ok()).unwrap_or(region).to_owned();
            return Ok(Some(owner));
        }
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Err(CoreError::Unavailable(format!("region {region} answered {status} to a bucket lookup")))
    }

    /// `GET /{bucket}?versioning` to the region that owns `bucket`.
    async fn versioning(&self, region: &str, bucket: &str) -> CoreResult<Option<VersioningState>> {
        let endpoint = self
            .peers
            .get(region)
            .ok_or_else(|| CoreError::Unavailable(format!("bucket {bucket} is in unknown region {region}")))?;
        let resp = self.send("GET", region, endpoint, &format!("/{bucket}?versioning")).await?;
        let status = resp.status();
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(CoreError::Unavailable(format!("region {region} answered {status} to a versioning lookup")));
        }
        let body = tokio::time::timeout(LOOKUP_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| CoreError::Unavailable(format!("region {region} did not answer in time")))?
            .map_err(|e| CoreError::Unavailable(format!("region {region}: {e}")))?
            .to_bytes();
        Ok(Some(parse_versioning_status(&String::from_utf8_lossy(&body))))
    }
}

/// The `<Status>` of a `GetBucketVersioning` answer (VER-3: absent means never configured).
fn parse_versioning_status(xml: &str) -> VersioningState {
    let status = xml.split_once("<Status>").and_then(|(_, rest)| rest.split_once("</Status>")).map(|(s, _)| s.trim());
    match status {
        Some("Enabled") => VersioningState::Enabled,
        Some("Suspended") => VersioningState::Suspended,
        _ => VersioningState::Unversioned,
    }
}

impl PeerDirectory for HttpPeers {
    fn locate_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>> {
        Box::pin(async move {
            for (region, endpoint) in &self.peers {
                if let Some(owner) = self.ask(region, endpoint, bucket).await? {
                    return Ok(Some(owner));
                }
            }
            Ok(None)
        })
    }

    fn bucket_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>> {
        Box::pin(async move {
            match self.locate_bucket(bucket).await? {
                Some(region) => self.versioning(&region, bucket).await,
                None => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioning_status_is_parsed() {
        let xml = |s: &str| {
            format!(r#"<?xml version="1.0"?><VersioningConfiguration xmlns="x">{s}</VersioningConfiguration>"#)
        };
        assert_eq!(parse_versioning_status(&xml("<Status>Enabled</Status>")), VersioningState::Enabled);
        assert_eq!(parse_versioning_status(&xml("<Status>Suspended</Status>")), VersioningState::Suspended);
        assert_eq!(parse_versioning_status(&xml("")), VersioningState::Unversioned);
    }
}
