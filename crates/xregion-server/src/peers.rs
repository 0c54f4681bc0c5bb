//! Peer lookups over the S3 API: "which region owns bucket X?" is a signed `HEAD /X` to each
//! peer, answered from the peer's local state only (`x-xregion-local-only: 1`, so peers
//! never ask each other in a loop). The answer is the `x-amz-bucket-region` header.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use xregion_core::{CoreError, CoreResult, PeerDirectory};

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

    async fn ask(&self, region: &str, endpoint: &str, bucket: &str) -> CoreResult<Option<String>> {
        let url = format!("{endpoint}/{bucket}");
        let mut req = http::Request::builder()
            .method("HEAD")
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
        let signable = SignableRequest::new("HEAD", &url, headers.into_iter(), SignableBody::UnsignedPayload)
            .map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        let resp = tokio::time::timeout(LOOKUP_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| CoreError::Unavailable(format!("region {region} did not answer in time")))?
            .map_err(|e| CoreError::Unavailable(format!("region {region} is unreachable: {e}")))?;
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
}
