//! A lean S3 load client: hyper legacy client (pooled keep-alive connections, TCP_NODELAY),
//! SigV4 header signing with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, request bodies
//! generated from one shared buffer without copies, response bodies counted and dropped.
//!
//! No client-side checksums: the client shares the machine's cores with the server under test.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use anyhow::{Context as _, anyhow, bail};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A request body of `remaining` bytes made of slices of `chunk`, repeated (refcounted, no copy).
pub struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl RepeatBody {
    /// `len` bytes taken from `chunk` over and over.
    pub fn new(chunk: Bytes, len: u64) -> Self {
        Self { chunk, remaining: len }
    }

    /// No body.
    pub fn empty() -> Self {
        Self { chunk: Bytes::new(), remaining: 0 }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 || this.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(this.chunk.len() as u64) as usize;
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Signs and sends S3 requests to one endpoint.
pub struct S3Client {
    http: Client<HttpsConnector<HttpConnector>, RepeatBody>,
    endpoint: String,
    host: String,
    region: String,
    credentials: aws_credential_types::Credentials,
}

impl S3Client {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:9000`), path-style addressing.
    pub fn new(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> anyhow::Result<Self> {
        Self::trusting(endpoint, region, access_key, secret_key, None)
    }

    /// [`S3Client::new`] for an `https://` endpoint whose certificate `ca_file` vouches for
    /// (besides the system's roots).
    pub fn trusting(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let uri: http::Uri = endpoint.parse().with_context(|| format!("endpoint {endpoint}"))?;
        let host = uri.authority().ok_or_else(|| anyhow!("endpoint {endpoint} has no host"))?.to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let tls = xregion_crypto::tls::ClientTls::new(ca_file).context("the client's TLS trust")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.config()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector);
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            host,
            region: region.to_owned(),
            credentials: aws_credential_types::Credentials::new(access_key, secret_key, None, None, "xregion-bench"),
        })
    }

    /// A request with extra (unsigned) headers, e.g. `Content-MD5`.
    fn signed_with(
        &self,
        method: Method,
        path: &str,
        body: RepeatBody,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Request<RepeatBody>> {
        let mut req = self.signed(method, path, body)?;
        for (name, value) in extra {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).context("header name")?,
                http::HeaderValue::from_str(value).context("header value")?,
            );
        }
        Ok(req)
    }

    fn signed(&self, method: Method, path: &str, body: RepeatBody) -> anyhow::Result<Request<RepeatBody>> {
        let url = format!("{}{path}", self.endpoint);
        let len = body.remaining;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::HOST, &self.host)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(body)
            .context("building request")?;
        let identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| anyhow!("signing parameters: {e}"))?
            .into();
        let headers = [("host", self.host.as_str()), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
        let signable = SignableRequest::new(method.as_str(), &url, headers.into_iter(), SignableBody::UnsignedPayload)
            .map_err(|e| anyhow!("signable request: {e}"))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| anyhow!("signing: {e}"))?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        if method == Method::PUT {
            req.headers_mut().insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
        }
        Ok(req)
    }

    /// Sends a request; on a non-2xx answer fails with the status and the start of the body.
    async fn send(&self, req: Request<RepeatBody>) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let what = format!("{} {}", req.method(), req.uri().path());
        let resp = self.http.request(req).await.with_context(|| format!("{what}: request failed"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
            bail!("{what}: server answered {status}: {text}");
        }
        Ok(resp)
    }

    /// `PUT /bucket`.
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let req = self.signed(Method::PUT, &format!("/{bucket}"), RepeatBody::empty())?;
        self.send(req).await?;
        Ok(())
    }

    /// `PUT /bucket/key` with `len` bytes from `chunk` repeated; returns the ETag (unquoted).
    pub async fn put(&self, bucket: &str, key: &str, chunk: &Bytes, len: u64) -> anyhow::Result<String> {
        let req = self.signed(Method::PUT, &format!("/{bucket}/{key}"), RepeatBody::new(chunk.clone(), len))?;
        let resp = self.send(req).await?;
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_default();
        // Drain the (empty) body so the connection goes back to the pool.
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            frame.with_context(|| format!("PUT /{bucket}/{key}: reading response"))?;
        }
        Ok(etag)
    }

    /// `PUT path_and_query` with a small document body and `Content-MD5` (bucket
    /// configuration: `?versioning`, `?replication`).
    pub async fn put_document(&self, path_and_query: &str, body: &str) -> anyhow::Result<()> {
        use base64::Engine as _;
        use md5::Digest as _;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        let body = Bytes::from(body.to_owned());
        let len = body.len() as u64;
        let req =
            self.signed_with(Method::PUT, path_and_query, RepeatBody::new(body, len), &[("content-md5", &md5)])?;
        let resp = self.send(req).await?;
        resp.into_body().collect().await.with_context(|| format!("PUT {path_and_query}: reading response"))?;
        Ok(())
    }

    /// `PUT /bucket/key` like [`S3Client::put`]; returns the version id (`x-amz-version-id`).
    pub async fn put_version(&self, bucket: &str, key: &str, chunk: &Bytes, len: u64) -> anyhow::Result<String> {
        let req = self.signed(Method::PUT, &format!("/{bucket}/{key}"), RepeatBody::new(chunk.clone(), len))?;
        let resp = self.send(req).await?;
        let version = resp.headers().get("x-amz-version-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        resp.into_body().collect().await.with_context(|| format!("PUT /{bucket}/{key}: reading response"))?;
        version.ok_or_else(|| anyhow!("PUT /{bucket}/{key}: no x-amz-version-id (is the bucket versioned?)"))
    }

    /// `HEAD /bucket/key?versionId=V`: whether that version exists (404 is `false`).
    pub async fn head_version(&self, bucket: &str, key: &str, version: &str) -> anyhow::Result<bool> {
        Ok(self.head_version_header(bucket, key, version, "x-amz-version-id").await?.is_some())
    }

    /// `HEAD /bucket/key?versionId=V`: the version's `x-amz-replication-status`, `None` if it
    /// has none or does not exist.
    pub async fn replication_status(&self, bucket: &str, key: &str, version: &str) -> anyhow::Result<Option<String>> {
        self.head_version_header(bucket, key, version, "x-amz-replication-status").await
    }

    /// `HEAD /bucket/key?versionId=V`: one header of the answer, `None` if the version does
    /// not exist (404) or the header is absent.
    async fn head_version_header(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let path = format!("/{bucket}/{key}?versionId={version}");
        let req = self.signed(Method::HEAD, &path, RepeatBody::empty())?;
        let resp = self.http.request(req).await.with_context(|| format!("HEAD {path}: request failed"))?;
        let status = resp.status();
        let value = resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        resp.into_body().collect().await.with_context(|| format!("HEAD {path}: reading response"))?;
        match status.as_u16() {
            200 => Ok(value),
            404 => Ok(None),
            other => bail!("HEAD {path}: server answered {other}"),
        }
    }

    /// `GET /bucket/key`, streaming the body through `on_data`; returns the byte count and
    /// checks it against Content-Length.
    pub async fn get_with(&self, bucket: &str, key: &str, mut on_data: impl FnMut(&[u8])) -> anyhow::Result<u64> {
        let req = self.signed(Method::GET, &format!("/{bucket}/{key}"), RepeatBody::empty())?;
        let resp = self.send(req).await?;
        let expected = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("GET /{bucket}/{key}: reading body"))?;
            if let Some(data) = frame.data_ref() {
                n += data.len() as u64;
                on_data(data);
            }
        }
        if let Some(e) = expected
            && e != n
        {
            bail!("GET /{bucket}/{key}: Content-Length {e} but {n} bytes arrived");
        }
        Ok(n)
    }

    /// `GET /bucket/key`, counting and discarding the body.
    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<u64> {
        self.get_with(bucket, key, |_| {}).await
    }

    /// `POST path_and_query` with a small document body and extra headers (S3 Control
    /// `CreateJob`, `/_xregion/batch-replication`); the whole answer body.
    pub async fn post_document(
        &self,
        path_and_query: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Bytes> {
        let body = Bytes::from(body.to_owned());
        let len = body.len().to_string();
        let mut headers = vec![("content-length", len.as_str())];
        headers.extend_from_slice(extra);
        let req =
            self.signed_with(Method::POST, path_and_query, RepeatBody::new(body.clone(), body.len() as u64), &headers)?;
        let resp = self.send(req).await?;
        let body = resp.into_body().collect().await.with_context(|| format!("POST {path_and_query}: reading body"))?;
        Ok(body.to_bytes())
    }

    /// `GET path_and_query` with extra headers, the whole body.
    pub async fn get_document_with(&self, path_and_query: &str, extra: &[(&str, &str)]) -> anyhow::Result<Bytes> {
        let req = self.signed_with(Method::GET, path_and_query, RepeatBody::empty(), extra)?;
        let resp = self.send(req).await?;
        let body = resp.into_body().collect().await.with_context(|| format!("GET {path_and_query}: reading body"))?;
        Ok(body.to_bytes())
    }

    /// `GET path_and_query`, the whole body (small documents such as `/_xregion/replication`).
    pub async fn get_document(&self, path_and_query: &str) -> anyhow::Result<Bytes> {
        let req = self.signed(Method::GET, path_and_query, RepeatBody::empty())?;
        let resp = self.send(req).await?;
        let body = resp.into_body().collect().await.with_context(|| format!("GET {path_and_query}: reading body"))?;
        Ok(body.to_bytes())
    }
}
