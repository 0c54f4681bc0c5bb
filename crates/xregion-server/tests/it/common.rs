//! Test harness: real `xregion serve` processes on loopback, each in its own temporary data
//! directory, driven by `aws-sdk-s3` (and by hand-signed raw requests where a test needs to
//! send something the SDK will not).
//!
//! Every server is killed (SIGKILL) when its [`TestRegion`] is dropped, also when a test
//! panics; nextest additionally runs each test in its own process group.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
pub use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

/// Root access key every test region runs with.
pub const ACCESS_KEY: &str = "XRTESTACCESSKEY";
/// Root secret key every test region runs with.
pub const SECRET_KEY: &str = "xregion-test-secret-key";

/// How long a server may take to print its "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `xregion serve` child process.
pub struct TestRegion {
    name: String,
    port: u16,
    peers: Vec<(String, String)>,
    data: tempfile::TempDir,
    child: Option<Child>,
    /// More `xregion serve` flags.
    extra_args: Vec<String>,
    /// `https` when the region serves TLS (its flags name a certificate), with the CA clients
    /// trust (PEM); else `http`.
    tls: Option<String>,
}

impl TestRegion {
    /// Starts a region on a free port with the given peers (`region`, `http://host:port`).
    pub fn start(name: &str, peers: &[(&str, &str)]) -> Self {
        Self::start_with(name, peers, &[])
    }

    /// [`TestRegion::start`] with more `xregion serve` flags.
    pub fn start_with(name: &str, peers: &[(&str, &str)], extra_args: &[&str]) -> Self {
        let peers: Vec<(String, String)> = peers.iter().map(|(r, e)| ((*r).to_owned(), (*e).to_owned())).collect();
        let data = tempfile::Builder::new().prefix("xregion-it-").tempdir().expect("temp dir");
        let extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let mut region = Self { name: name.to_owned(), port: 0, peers, data, child: None, extra_args, tls: None };
        region.spawn().unwrap_or_else(|e| panic!("starting region {name}: {e}"));
        region
    }

    /// Starts one region per name, each knowing all the others as peers. Ports are chosen
    /// first (peers must be known at start); a lost race for a port is retried.
    pub fn start_many(names: &[&str]) -> Vec<Self> {
        Self::start_many_with_extra_peers(names, &[])
    }

    /// [`TestRegion::start_many`], where region `extra[i].0` also lists the peer `extra[i].1`
    /// (name, endpoint): a deployment whose regions do not all list the same names.
    pub fn start_many_with_extra_peers(names: &[&str], extra: &[(&str, (&str, &str))]) -> Vec<Self> {
        Self::start_many_configured(names, extra, &[], None)
    }

    /// [`TestRegion::start_many`] serving HTTPS: every region gets `flags` (the certificate
    /// and CA flags) and clients trust `ca_pem`.
    pub fn start_many_tls(names: &[&str], flags: &[&str], ca_pem: &str) -> Vec<Self> {
        Self::start_many_configured(names, &[], flags, Some(ca_pem))
    }

    fn start_many_configured(
        names: &[&str],
        extra: &[(&str, (&str, &str))],
        flags: &[&str],
        ca_pem: Option<&str>,
    ) -> Vec<Self> {
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
            let endpoints: Vec<(String, String)> =
                names.iter().zip(&ports).map(|(n, p)| ((*n).to_owned(), format!("{scheme}://127.0.0.1:{p}"))).collect();
            let mut regions = Vec::new();
            let mut failed = false;
            for (name, port) in names.iter().zip(&ports) {
                let mut peers: Vec<(String, String)> = endpoints.iter().filter(|(n, _)| n != name).cloned().collect();
                let more = extra.iter().filter(|(owner, _)| owner == name);
                peers.extend(more.map(|(_, (n, e))| ((*n).to_owned(), (*e).to_owned())));
                let data = tempfile::Builder::new().prefix("xregion-it-").tempdir().expect("temp dir");
                let mut region = Self {
                    name: (*name).to_owned(),
                    port: *port,
                    peers,
                    data,
                    child: None,
                    extra_args: flags.iter().map(|f| (*f).to_owned()).collect(),
                    tls: ca_pem.map(str::to_owned),
                };
                if let Err(e) = region.spawn() {
                    last_error = e;
                    failed = true;
                    break;
                }
                regions.push(region);
            }
            if !failed {
                return regions;
            }
        }
        panic!("could not start regions {names:?}: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xregion"));
        cmd.arg("serve")
            .args(["--region", &self.name])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(self.data.path())
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(&self.extra_args);
        for (region, endpoint) in &self.peers {
            cmd.args(["--peer", &format!("{region}={endpoint}")]);
        }
        // Configuration comes from the flags only, whatever the environment says.
        for (var, _) in std::env::vars() {
            if var.starts_with("XREGION_") && var != "XREGION_LOG" {
                cmd.env_remove(var);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("spawning xregion: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Reads the ready line, then keeps draining stdout until the process exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(" listening on ")
                    && let Some(tx) = tx.take()
                {
                    let url = line[at + " listening on ".len()..].trim();
                    let addr = url.trim_start_matches("http://").trim_start_matches("https://");
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(format!("region {} did not report listening ({status})", self.name));
            }
        };
        let addr: SocketAddr = addr.parse().map_err(|e| format!("bad listen address {addr:?}: {e}"))?;
        if !addr.ip().is_loopback() {
            let _ = child.kill();
            return Err(format!("region bound {addr}, not loopback"));
        }
        if self.port != 0 && addr.port() != self.port {
            let _ = child.kill();
            return Err(format!("region bound {addr}, asked for port {}", self.port));
        }
        self.port = addr.port();
        self.child = Some(child);
        Ok(())
    }

    /// The region's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Region name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (`https://` for a region serving TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// An SDK client with the root credentials.
    pub fn client(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY)
    }

    /// An SDK client with other credentials.
    pub fn client_with(&self, access_key: &str, secret_key: &str) -> Client {
        match &self.tls {
            Some(ca_pem) => sdk_client_trusting(&self.endpoint(), &self.name, ca_pem),
            None => sdk_client(&self.endpoint(), &self.name, access_key, secret_key),
        }
    }

    /// SIGKILL, as a crash would (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the process (`"STOP"`, `"CONT"`, ...) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("region running").id();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Replaces the extra `xregion serve` flags used by the next [`TestRegion::restart`].
    pub fn set_extra_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
    }

    /// Kills the process and starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        // The port was ours a moment ago; allow a few tries in case the OS is slow to free it.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("restarting region {}: {last}", self.name);
    }

    /// Sends a request signed (SigV4, header auth) with the root credentials to this region,
    /// path style. `path_and_query` starts with `/`.
    pub async fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let url = format!("{}{path_and_query}", self.endpoint());
        signed_request(&http_client(None), &self.name, method, &url, headers, body, ACCESS_KEY, SECRET_KEY).await
    }

    /// The same, virtual-hosted style: `http://{bucket}.localhost:PORT{path_and_query}`,
    /// with the name resolved to this region's loopback address.
    pub async fn signed_virtual_host(
        &self,
        bucket: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> RawResponse {
        let host = format!("{bucket}.localhost");
        let client = http_client(Some((&host, SocketAddr::from(([127, 0, 0, 1], self.port)))));
        let url = format!("http://{host}:{}{path_and_query}", self.port);
        signed_request(&client, &self.name, method, &url, &[], body, ACCESS_KEY, SECRET_KEY).await
    }

    /// An unsigned request (anonymous).
    pub async fn anonymous(&self, method: &str, path_and_query: &str) -> RawResponse {
        let url = format!("{}{path_and_query}", self.endpoint());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = http_client(None).request(method, url).send().await.expect("request");
        RawResponse::read(resp).await
    }
}

impl Drop for TestRegion {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One round of chaos: waits a random time from `min_ms` to `min_ms + spread_ms`, SIGKILLs
/// region `victim`, waits half as long, and restarts it (on a blocking thread, while the
/// test's tasks go on); gives the regions back.
pub async fn kill_and_restart(
    mut regions: Vec<TestRegion>,
    victim: usize,
    min_ms: u64,
    spread_ms: u32,
) -> Vec<TestRegion> {
    let pause = Duration::from_millis(min_ms + u64::from(rand::random::<u32>() % spread_ms));
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(pause);
        regions[victim].kill();
        std::thread::sleep(pause / 2);
        regions[victim].restart();
        regions
    })
    .await
    .expect("chaos round")
}

/// An SDK client for `endpoint` (path style), signing for `region`.
pub fn sdk_client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "xregion-it"))
        .force_path_style(true)
        // A test sees every answer as it is: no retries hiding a 5xx.
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(60)).build())
        .build();
    Client::from_conf(config)
}

/// [`sdk_client`] with the root credentials for an `https://` endpoint whose certificate
/// `ca_pem` (and nothing else) vouches for.
pub fn sdk_client_trusting(endpoint: &str, region: &str, ca_pem: &str) -> Client {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(ca_pem.as_bytes().to_vec());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(trust).build().expect("TLS context"))
        .build_https();
    let config = sdk_client(endpoint, region, ACCESS_KEY, SECRET_KEY).config().to_builder().http_client(http).build();
    Client::from_conf(config)
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A plain-HTTP client, optionally resolving one name to an address.
pub fn http_client(resolve: Option<(&str, SocketAddr)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60));
    if let Some((name, addr)) = resolve {
        builder = builder.resolve(name, addr);
    }
    builder.build().expect("http client")
}

/// Status, headers and body of a raw response.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl RawResponse {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("response body");
        Self { status, headers, body }
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `<Code>` of an S3 error body.
    pub fn error_code(&self) -> Option<String> {
        xml_element(&self.text(), "Code")
    }
}

/// The text of the first `<name>…</name>` in `xml`.
pub fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_owned())
}

/// Signs and sends one request (SigV4, payload hash in `x-amz-content-sha256`).
#[allow(clippy::too_many_arguments)]
pub async fn signed_request(
    client: &reqwest::Client,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    access_key: &str,
    secret_key: &str,
) -> RawResponse {
    signed_request_at(client, region, method, url, headers, body, access_key, secret_key, SystemTime::now()).await
}

/// [`signed_request`] with the signing time given (to test clock skew).
#[allow(clippy::too_many_arguments)]
pub async fn signed_request_at(
    client: &reqwest::Client,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    access_key: &str,
    secret_key: &str,
    time: SystemTime,
) -> RawResponse {
    let signer = Signer { region, access_key, secret_key, time };
    let signature = signature_headers(&signer, method, url, headers, body);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url).body(body.to_vec());
    for (name, value) in headers.iter().copied().chain(signature.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        req = req.header(name, value);
    }
    RawResponse::read(req.send().await.expect("send signed request")).await
}

/// Who signs a request, for which region, and when.
pub struct Signer<'a> {
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub time: SystemTime,
}

impl Signer<'static> {
    /// The root credential, for `region`, now.
    pub fn root(region: &'static str) -> Self {
        Signer { region, access_key: ACCESS_KEY, secret_key: SECRET_KEY, time: SystemTime::now() }
    }
}

/// The headers SigV4 adds to a request (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`), for tests that write requests by hand.
pub fn signature_headers(
    signer: &Signer<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    signature_headers_for(signer, method, url, headers, aws_sigv4::http_request::SignableBody::Bytes(body))
}

/// [`signature_headers`] for a body given by its payload hash, e.g. `SignableBody::Precomputed`
/// with `STREAMING-UNSIGNED-PAYLOAD-TRAILER` for an `aws-chunked` body written by hand.
pub fn signature_headers_for(
    signer: &Signer<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: aws_sigv4::http_request::SignableBody<'_>,
) -> Vec<(String, String)> {
    let Signer { region, access_key, secret_key, time } = *signer;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let identity = Credentials::new(access_key, secret_key, None, None, "xregion-it").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    // S3 signs the path as sent: no double encoding, no normalization.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(method, url, headers.iter().copied(), body).expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
    instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
}

/// HTTP status of an SDK error (from the raw response).
pub fn status_of<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> u16 {
    match err.raw_response() {
        Some(r) => r.status().as_u16(),
        None => panic!("no HTTP response in error: {err}"),
    }
}

/// A header of the raw response of an SDK error.
pub fn header_of<'a, E>(err: &'a SdkError<E, HttpResponse>, name: &str) -> Option<&'a str> {
    err.raw_response().and_then(|r| r.headers().get(name))
}

/// S3 error code of an SDK error.
pub fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    err.code().map(str::to_owned).unwrap_or_default()
}

/// Asserts an SDK call failed with this status and (if given) this S3 error code, and
/// returns the error for further checks.
#[track_caller]
pub fn expect_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::error::Error + 'static>(
    result: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: Option<&str>,
) -> SdkError<E, HttpResponse> {
    let err = match result {
        Ok(v) => panic!("expected HTTP {status} {code:?}, got success: {v:?}"),
        Err(e) => e,
    };
    let got_status = status_of(&err);
    let got_code = code_of(&err);
    assert_eq!(
        (got_status, code.map(|_| got_code.as_str())),
        (status, code),
        "unexpected error: {:?}",
        DebugSdkError(&err)
    );
    err
}

/// Debug output of an SDK error with the service error's code and message.
pub struct DebugSdkError<'a, E, R>(pub &'a SdkError<E, R>);

impl<E: std::fmt::Debug, R: std::fmt::Debug> std::fmt::Debug for DebugSdkError<'_, E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            SdkError::ServiceError(s) => {
                write!(f, "service error {:?} (raw {:?})", s.err(), s.raw())
            }
            other => write!(f, "{other:?}"),
        }
    }
}

/// A bucket name unique to this test process, valid under the S3 rules.
pub fn bucket_name(stem: &str) -> String {
    let n: u32 = rand::random();
    format!("{stem}-{n:08x}")
}

/// Creates a bucket (no LocationConstraint) and returns its name.
pub async fn create_bucket(client: &Client, stem: &str) -> String {
    let name = bucket_name(stem);
    client.create_bucket().bucket(&name).send().await.expect("create bucket");
    name
}

/// Creates a bucket with versioning Enabled.
pub async fn create_versioned_bucket(client: &Client, stem: &str) -> String {
    let name = create_bucket(client, stem).await;
    set_versioning(client, &name, aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    name
}

/// PutBucketVersioning.
pub async fn set_versioning(client: &Client, bucket: &str, status: aws_sdk_s3::types::BucketVersioningStatus) {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(aws_sdk_s3::types::VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put bucket versioning");
}

/// PutObject of bytes; returns the output.
pub async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key:?}: {:?}", DebugSdkError(&e)))
}

/// A two-part upload (`first` at least 5 MiB) asking for `sse` (`x-amz-server-side-encryption`);
/// every answer must say the same. Returns the completion's output.
pub async fn multipart_put(
    client: &Client,
    bucket: &str,
    key: &str,
    (first, second): (&[u8], &[u8]),
    sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let create = client.create_multipart_upload().bucket(bucket).key(key).set_server_side_encryption(sse.clone());
    let create = create.send().await.unwrap_or_else(|e| panic!("create upload {key}: {:?}", DebugSdkError(&e)));
    assert_eq!(create.server_side_encryption(), sse.as_ref());
    let upload_id = create.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (n, data) in [(1, first), (2, second)] {
        let out = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(out.server_side_encryption(), sse.as_ref());
        completed.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    let done = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete upload");
    assert_eq!(done.server_side_encryption(), sse.as_ref());
    assert!(unquote(done.e_tag().unwrap_or_default()).ends_with("-2"));
    done
}

/// GetObject's body (panics on error).
pub async fn get_body(client: &Client, bucket: &str, key: &str, version_id: Option<&str>) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key:?} {version_id:?}: {:?}", DebugSdkError(&e)));
    out.body.collect().await.expect("read body").into_bytes().to_vec()
}

/// Hex MD5.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

/// Base64 MD5 (`Content-MD5`).
pub fn md5_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// `"etag"` → `etag`.
pub fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Every entry of a one-page versions listing as (key, version id, is_latest,
/// is_delete_marker), in listing order (see [`merge_versions`]).
/// Object keys that are valid in S3 but need escaping in a URL, an XML listing or a header.
pub const KEYS_THAT_NEED_ESCAPING: [&str; 13] = [
    "unicode/日本語/файл-é.txt",
    "with space/and  two",
    "percent%20literal%",
    "plus+sign+",
    "line\nbreak",
    "tab\tchar",
    "question?mark#hash&amp=",
    "quotes'\"<xml>&",
    "/leading-slash",
    "trailing-slash/",
    "double//slash",
    "emoji-🦀",
    "~tilde*star(paren)",
];

pub async fn all_versions(client: &Client, bucket: &str) -> Vec<(String, String, bool, bool)> {
    let out = client.list_object_versions().bucket(bucket).send().await.expect("list versions");
    assert_eq!(out.is_truncated(), Some(false), "test listings fit one page");
    merge_versions(&out)
}

/// Every page of a bucket's version listing (`None` if a request failed).
pub async fn version_pages(
    client: &Client,
    bucket: &str,
) -> Option<Vec<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput>> {
    let mut pages = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let req = client.list_object_versions().bucket(bucket);
        let page = req.set_key_marker(key_marker).set_version_id_marker(version_marker).send().await.ok()?;
        let more = page.is_truncated() == Some(true);
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        pages.push(page);
        if !more {
            return Some(pages);
        }
    }
}

/// [`all_versions`] over every page, for buckets of more than 1000 versions.
pub async fn all_versions_paged(client: &Client, bucket: &str) -> Vec<(String, String, bool, bool)> {
    let pages = version_pages(client, bucket).await.expect("list versions");
    pages.iter().flat_map(merge_versions).collect()
}

/// Merges the `Version` and `DeleteMarker` lists of one page (the SDK splits them) back into
/// listing order: keys ascending; within a key the latest first, then by Last-Modified, and
/// within one millisecond by version id (xregion ids sort by creation within a key).
pub fn merge_versions(
    out: &aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput,
) -> Vec<(String, String, bool, bool)> {
    let mut entries: Vec<(String, String, bool, bool, i64)> = Vec::new();
    for v in out.versions() {
        entries.push((
            v.key().unwrap_or_default().to_owned(),
            v.version_id().unwrap_or_default().to_owned(),
            v.is_latest().unwrap_or(false),
            false,
            v.last_modified().map(|t| t.to_millis().unwrap_or(0)).unwrap_or(0),
        ));
    }
    for m in out.delete_markers() {
        entries.push((
            m.key().unwrap_or_default().to_owned(),
            m.version_id().unwrap_or_default().to_owned(),
            m.is_latest().unwrap_or(false),
            true,
            m.last_modified().map(|t| t.to_millis().unwrap_or(0)).unwrap_or(0),
        ));
    }
    // Keys ascending; within a key the latest first, then newest first by time.
    entries
        .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(b.2.cmp(&a.2)).then(b.4.cmp(&a.4)).then(b.1.cmp(&a.1)));
    entries.into_iter().map(|(k, v, l, d, _)| (k, v, l, d)).collect()
}

/// Whether the AWS CLI can run here. Without it a test that needs it is skipped with a message,
/// except under `CI=true` (`.ci/run` installs it), where its absence fails the test.
pub fn aws_cli_available(test: &str) -> bool {
    if Command::new("aws").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    let msg = format!("{test} needs the AWS CLI (`pip install awscli`)");
    assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{msg}: not available, and CI=true requires it");
    eprintln!("SKIPPED: {msg}");
    false
}

/// A directory for `PYTHONPATH` whose `sitecustomize.py` resolves names under `.localhost` to
/// loopback, as systemd-resolved does (RFC 6761) and this machine's C library may not: S3
/// Control clients send to `<account id>.<endpoint host>`.
pub fn localhost_resolver() -> String {
    format!("{}/tests/python/localhost_resolver", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a bash script (`-euo pipefail`) of AWS CLI commands in `dir` with the deployment's
/// root credential, as after the three `export` lines `xregion dev` prints, and no other
/// configuration; panics with its output if it fails. Returns its stdout.
pub fn run_aws_cli(script: &str, dir: &std::path::Path, default_region: &str) -> String {
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", default_region)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env("PYTHONPATH", localhost_resolver())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the AWS CLI script failed ({}):\n{stdout}\n{stderr}", output.status);
    stdout
}
