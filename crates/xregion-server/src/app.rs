//! Running a region: open storage, build the S3 service, accept connections, shut down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3Service;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xregion_core::buckets::BucketLocation;
use xregion_core::{CoreError, Region, RegionOptions};
use xregion_crypto::tls::{ClientTls, ServerTls};
use xregion_identity::{Credential, Identity, RootOnly};
use xregion_replication::report::StampTagReport;
use xregion_replication::{ExternalTargets, S3Target, StatusReader, Transport, WorkerConfig, WorkerHandle};
use xregion_s3api::admin::{AdminReport, AdminReports};
use xregion_s3api::error::ERROR_FIELDS_HEADER;

use crate::config::RegionConfig;
use crate::peers::{ForwardError, ForwardRequest, HttpPeers, STAMP_TAG_HEADER, StampTagCheck};

/// A region that is serving. Dropping it does not stop it; call [`RunningRegion::shutdown`].
pub struct RunningRegion {
    /// Region name.
    pub name: String,
    /// The bound address (useful when the configured port was 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// The accept loops: the configured listener, and with TLS the loopback one
    /// ([`internal_listener`]).
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Reloads a renewed certificate: present exactly when the region serves HTTPS.
    tls_reload: Option<tokio::task::JoinHandle<()>>,
    replication: WorkerHandle,
    /// The batch replication job runner (`xregion_core::jobs`); its state is all on disk.
    jobs: tokio::task::JoinHandle<()>,
    /// The lifecycle runner (`xregion_core::lifecycle`); it keeps nothing between passes.
    lifecycle: tokio::task::JoinHandle<()>,
}

impl RunningRegion {
    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls_reload.is_some() { "https" } else { "http" }, self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (bounded), stops the replication
    /// worker (its backlog stays in the outbox) and the job runner (jobs resume from disk at
    /// the next start), and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(reload) = self.tls_reload {
            reload.abort();
        }
        self.jobs.abort();
        let _ = self.jobs.await;
        self.lifecycle.abort();
        let _ = self.lifecycle.await;
        self.replication.shutdown().await;
    }
}

/// Opens the region's storage and starts serving on an already bound listener.
pub fn start_region_on(cfg: &RegionConfig, listener: TcpListener) -> anyhow::Result<RunningRegion> {
    let addr = listener.local_addr()?;
    // Distinct on every region only if each lists all the others, or the operator set them
    // (docs/replication.md); the peers' answers are checked (`StampTagCheck`), first by a
    // probe right after start.
    let stamp_tag =
        cfg.stamp_tag.unwrap_or_else(|| xregion_types::stamp_tag(&cfg.region, cfg.peers.keys().map(String::as_str)));
    tracing::info!(region = %cfg.region, stamp_tag, peers = ?cfg.peers.keys().collect::<Vec<_>>(), "version stamp tag");
    let tags = Arc::new(StampTagCheck::new(stamp_tag));
    let server_tls = match &cfg.tls {
        Some(files) => {
            Some(Arc::new(ServerTls::load(&files.cert_file, &files.key_file).context("loading the TLS certificate")?))
        }
        None => None,
    };
    let transport = Transport::new(ClientTls::new(cfg.tls_ca_file.as_deref()).context("loading tls_ca_file")?);
    let external = Arc::new(ExternalTargets::new(cfg.targets.iter().cloned(), &transport));
    let peers = Arc::new(
        HttpPeers::new(
            cfg.peers.clone(),
            cfg.access_key.clone(),
            cfg.secret_key.clone(),
            Arc::clone(&tags),
            &transport,
        )
        .with_external(Arc::clone(&external)),
    );
    let options = RegionOptions {
        min_free_bytes: cfg.min_free_bytes,
        stamp_tag,
        lifecycle_day_ms: cfg.lifecycle_day_ms,
        sse_master_key_file: cfg.sse_master_key_file.clone(),
    };
    let region = Region::open_with(&cfg.region, &cfg.data_dir, peers.clone(), options)
        .with_context(|| format!("opening region {} at {}", cfg.region, cfg.data_dir.display()))?;
    check_targets(&region, &external)?;
    let (key_ids, current_key) = region.master_key_ids();
    tracing::info!(region = %cfg.region, keys = ?key_ids, current = current_key, "SSE master keys");
    spawn_orphan_collection(&region);
    spawn_rewrap(&region)?;
    let identity =
        Identity::with_root(Credential { access_key: cfg.access_key.clone(), secret_key: cfg.secret_key.clone() });
    // With TLS, same-region replication reaches this region through a plain loopback
    // listener: the certificate names the region's public host, not 127.0.0.1.
    let internal = match server_tls {
        Some(_) => Some(internal_listener(addr)?),
        None => None,
    };
    let own = internal.as_ref().map(TcpListener::local_addr).transpose()?.unwrap_or(addr);
    let replication = start_replication(cfg, own, &region, Arc::clone(&external), transport);
    let jobs = tokio::spawn({
        let region = region.clone();
        async move { region.run_jobs().await }
    });
    let lifecycle = tokio::spawn(region.clone().run_lifecycle());
    let reports = Arc::new(Reports {
        region: region.clone(),
        status: replication.status_reader(),
        tags: Arc::clone(&tags),
        peers: Arc::clone(&peers),
        targets: external.endpoints(),
        tls: server_tls.clone(),
    });
    let region_handle = region.clone();
    let reports_handle: Arc<dyn AdminReports> = reports.clone();
    let service = xregion_s3api::build_service(region, identity, Arc::new(RootOnly), cfg.domains.clone(), reports);
    let (stop, stop_rx) = watch::channel(false);
    let name = cfg.region.clone();
    let edge = Edge {
        s3: service,
        redirects: Arc::new(Redirects {
            region: region_handle,
            endpoints: cfg.peers.clone(),
            peers: Arc::clone(&peers),
            host: xregion_s3api::RegionHost::new(cfg.domains.clone()),
        }),
        scrape: cfg.metrics_token.clone().map(|token| Arc::new(Scrape { token, reports: reports_handle })),
        stamp_tag: http::HeaderValue::from(u16::from(stamp_tag)),
        secure: false,
    };
    let acceptor = server_tls.as_ref().map(|tls| tokio_rustls::TlsAcceptor::from(tls.config()));
    let mut tasks = vec![tokio::spawn(accept_loop(listener, edge.clone(), acceptor, stop_rx.clone(), name.clone()))];
    if let Some(internal) = internal {
        tracing::info!(region = %name, addr = %internal.local_addr()?, "loopback listener for same-region replication");
        tasks.push(tokio::spawn(accept_loop(internal, edge, None, stop_rx, name.clone())));
    }
    let tls_reload = server_tls.map(|tls| tokio::spawn(reload_certificate(tls, name.clone())));
    tracing::info!(region = %name, %addr, tls = tls_reload.is_some(), "region listening");
    tokio::spawn(async move { peers.probe_stamp_tags().await });
    Ok(RunningRegion { name, addr, stop, tasks, tls_reload, replication, jobs, lifecycle })
}

/// A name in a replication rule must mean one place: a region refuses to start when one of
/// its buckets has the name of an external target (the deployment refuses to create such a
/// bucket once the target is configured, `Region::create_bucket`).
fn check_targets(region: &Region, external: &ExternalTargets) -> anyhow::Result<()> {
    for bucket in external.buckets() {
        if region.bucket(bucket).is_ok() {
            anyhow::bail!(
                "bucket {bucket} of region {} is also configured as an external replication target ([[targets]]); \
                 rename one of them",
                region.name()
            );
        }
    }
    for (bucket, endpoint) in external.endpoints() {
        tracing::info!(region = %region.name(), bucket, endpoint, "external replication target");
    }
    Ok(())
}

/// Deletes blob files a crash left without metadata (see `xregion_core::orphans`): lists the
/// blob files now, before the region writes anything (call it before replication and the
/// accept loop start), and deletes the unreferenced ones in the background.
fn spawn_orphan_collection(region: &Region) {
    let candidates = match region.orphan_candidates() {
        Ok(candidates) => candidates,
        Err(e) => {
            tracing::warn!(region = %region.name(), error = %e, "cannot list blob files; orphan collection skipped");
            return;
        }
    };
    let region = region.clone();
    tokio::task::spawn_blocking(move || match region.collect_orphan_blobs(candidates) {
        Ok(report) => tracing::debug!(region = %region.name(), ?report, "orphan blob collection done"),
        Err(e) => tracing::warn!(region = %region.name(), error = %e, "orphan blob collection failed"),
    });
}

/// After a master key rotation, re-wraps the stored data keys under the newest key in the
/// background and retires the older keys (`Region::rewrap_data_keys`); nothing to do otherwise.
fn spawn_rewrap(region: &Region) -> anyhow::Result<()> {
    let old = region.keys_to_retire()?;
    if old.is_empty() {
        return Ok(());
    }
    let region = region.clone();
    tokio::spawn(async move {
        tracing::info!(region = %region.name(), keys = ?old, "re-wrapping data keys under the newest SSE master key");
        match region.rewrap_data_keys().await {
            Ok(report) => tracing::info!(
                region = %region.name(),
                versions = report.versions,
                uploads = report.uploads,
                retired = ?report.retired,
                "data keys re-wrapped; the retired keys' files may be removed"
            ),
            Err(e) => {
                tracing::warn!(region = %region.name(), error = %e, "re-wrapping data keys stopped; it runs again at the next start")
            }
        }
    });
    Ok(())
}

/// Starts the replication worker: destinations are reached at the peers' endpoints (and at
/// this region's own address for same-region replication), signed with the root credential.
fn start_replication(
    cfg: &RegionConfig,
    addr: SocketAddr,
    region: &Region,
    external: Arc<ExternalTargets>,
    transport: Transport,
) -> WorkerHandle {
    let mut endpoints = cfg.peers.clone();
    let own = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    endpoints.insert(cfg.region.clone(), format!("http://{own}"));
    let target = S3Target::new(endpoints, &cfg.access_key, &cfg.secret_key, transport).with_external(external);
    xregion_replication::spawn(region.clone(), Arc::new(target), WorkerConfig::default())
}

/// The operator reports (`/_xregion/...`): the replication report, built from the outbox on
/// disk and the worker's status, on a blocking thread (it scans the outbox).
struct Reports {
    region: Region,
    status: StatusReader,
    tags: Arc<StampTagCheck>,
    peers: Arc<HttpPeers>,
    /// External targets, bucket → endpoint.
    targets: std::collections::BTreeMap<String, String>,
    /// The certificate served, if the region serves HTTPS.
    tls: Option<Arc<ServerTls>>,
}

impl AdminReports for Reports {
    fn render(&self, report: AdminReport) -> BoxFuture<'_, Result<String, String>> {
        let (region, status) = (self.region.clone(), self.status.get());
        let stamp_tag = StampTagReport { tag: self.tags.own(), shared_with: self.tags.shared_with() };
        let forwarded = self.peers.forwarded_report();
        let peers = self.peers.endpoints().clone();
        let targets = self.targets.clone();
        let tls = self.tls.as_ref().and_then(|t| t.info()).map(|info| xregion_replication::report::TlsReport {
            certificate_not_after_ms: info.not_after_ms,
            certificate_names: info.names,
        });
        Box::pin(async move {
            let mut built = tokio::task::spawn_blocking(move || xregion_replication::report::build(&region, &status))
                .await
                .map_err(|e| format!("report task failed: {e}"))?
                .map_err(|e| format!("reading the outbox: {e}"))?;
            built.stamp_tag = Some(stamp_tag);
            built.forwarded = forwarded;
            built.peers = peers;
            built.targets = targets;
            built.tls = tls;
            Ok(match report {
                AdminReport::ReplicationJson => built.to_json(),
                AdminReport::Metrics => built.to_prometheus(),
            })
        })
    }
}

/// Binds `cfg.listen` and starts serving.
pub async fn start_region(cfg: &RegionConfig) -> anyhow::Result<RunningRegion> {
    let listener = TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    start_region_on(cfg, listener)
}

/// A listener on a free loopback port, of the address family of `addr`, for the region's own
/// replication requests when it serves HTTPS: plain HTTP, still SigV4-signed, reachable only
/// from this host (where the data directory is anyway).
fn internal_listener(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let loopback: SocketAddr = match addr {
        SocketAddr::V4(_) => ([127, 0, 0, 1], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    let listener = std::net::TcpListener::bind(loopback).with_context(|| format!("binding {loopback}"))?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// How often the certificate files are checked for a renewal.
const CERTIFICATE_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// A certificate this close to its end is warned about (once a day): ACME clients renew
/// 30 days ahead, so a renewal has failed for two weeks by then.
const EXPIRY_WARNING_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// Warns if the certificate in use ends within [`EXPIRY_WARNING_MS`], unless it did so less
/// than a day ago (`last`).
fn warn_if_expiring(tls: &ServerTls, region: &str, last: &mut Option<std::time::Instant>) {
    let Some(info) = tls.info() else { return };
    let left_ms = info.not_after_ms.saturating_sub(xregion_types::now_ms());
    let recently = last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(24 * 60 * 60));
    if left_ms < EXPIRY_WARNING_MS && !recently {
        let days = left_ms / (24 * 60 * 60 * 1000);
        tracing::warn!(%region, names = ?info.names, days_left = days, "the TLS certificate expires soon (or has): renew it");
        *last = Some(std::time::Instant::now());
    }
}

/// Serves a renewed certificate from the next handshake on; a renewal that does not load is
/// reported once and the old certificate kept. Warns of a certificate about to expire.
async fn reload_certificate(tls: Arc<ServerTls>, region: String) {
    let mut reported = None;
    let mut warned = None;
    loop {
        warn_if_expiring(&tls, &region, &mut warned);
        tokio::time::sleep(CERTIFICATE_CHECK).await;
        let tls = Arc::clone(&tls);
        match tokio::task::spawn_blocking(move || tls.reload_if_changed()).await {
            Ok(Ok(true)) => {
                tracing::info!(%region, "TLS certificate reloaded");
                reported = None;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                let text = e.to_string();
                if reported.as_ref() != Some(&text) {
                    tracing::warn!(%region, error = %text, "the changed TLS files do not load; still serving the previous certificate");
                    reported = Some(text);
                }
            }
            Err(_) => {}
        }
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    edge: Edge,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    region: String,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(%region, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Header and body leave in separate writes; without NODELAY small GETs stall 40 ms.
                let _ = stream.set_nodelay(true);
                let mut edge = edge.clone();
                edge.secure = tls.is_some() || peer.ip().is_loopback();
                let watcher = graceful.watcher();
                match &tls {
                    None => {
                        tokio::spawn(serve(watcher, stream, edge));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake = async {
                                if speaks_plain_http(&stream).await {
                                    answer_plain_http(stream).await;
                                    return Err(std::io::Error::other("a plain HTTP request on the HTTPS port"));
                                }
                                acceptor.accept(stream).await
                            };
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => serve(watcher, stream, edge).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, peer = %peer, "TLS handshake failed"),
                                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!(%region, "connections still open after 10 s; closing them");
    }
}

/// Whether a connection to the HTTPS port opens with an HTTP request line instead of a TLS
/// handshake (whose first byte is 0x16): a client given `http://` for an `https://` endpoint.
async fn speaks_plain_http(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// Tells a plain HTTP client what is wrong, rather than closing on it (Go's servers do the
/// same): `400` with S3's error XML, then close.
async fn answer_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // Read the request head first: closing a socket with unread bytes resets the connection,
    // which can discard the answer before the client reads it.
    let _ = stream.read(&mut [0u8; 8192]).await;
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>BadRequest</Code><Message>This endpoint speaks HTTPS: use https:// in the endpoint URL.</Message></Error>";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Largest request head a connection reads (hyper's default is about 400 KiB). A replica of an
/// SSE-C version of 10 000 parts names every piece and part size in its headers (about 550 KiB):
/// a head that never fits would leave its task PENDING for ever. The buffer grows to this only
/// for such a head.
const MAX_REQUEST_HEAD: usize = 1024 * 1024;

/// Serves HTTP/1.1 on one accepted (and, with TLS, handshaken) connection.
async fn serve<S>(watcher: hyper_util::server::graceful::Watcher, stream: S, edge: Edge)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_REQUEST_HEAD);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), edge).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The edge of the HTTP stack: gives every response a request id (`x-amz-request-id`) and
/// puts it into error XML bodies, which s3s leaves without one; answers `NoSuchBucket` for a
/// bucket that lives in another region with that region's answer to the request, or with
/// S3's `301 PermanentRedirect`.
#[derive(Clone)]
struct Edge {
    s3: S3Service,
    redirects: Arc<Redirects>,
    /// Bearer-token access to the reports, if configured.
    scrape: Option<Arc<Scrape>>,
    /// This region's version stamp tag, sent to peers with every answer to them.
    stamp_tag: http::HeaderValue,
    /// The connection is one a key may travel on: TLS, or from this machine (set per
    /// connection; see [`exposes_customer_key`]).
    secure: bool,
}

/// `GET /_xregion/metrics` and `/_xregion/replication` with `Authorization: Bearer <token>`:
/// for Prometheus and other scrapers that cannot sign SigV4. Served here, before s3s, which
/// would refuse a non-AWS `Authorization` header. A wrong token is `403 AccessDenied`.
struct Scrape {
    token: String,
    reports: Arc<dyn AdminReports>,
}

impl Scrape {
    /// The answer, if `req` is a bearer-token report request.
    async fn answer(&self, req: &http::Request<Incoming>, request_id: &str) -> Option<http::Response<s3s::Body>> {
        if req.method() != http::Method::GET {
            return None;
        }
        let report = AdminReport::from_path(req.uri().path())?;
        let presented = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
        if !xregion_identity::sigv4::same_secret(presented.trim(), &self.token) {
            let (status, message) = (http::StatusCode::FORBIDDEN, "Access Denied: wrong bearer token");
            return Some(error_response(status, "AccessDenied", message, &[], request_id));
        }
        let body = match self.reports.render(report).await {
            Ok(body) => body,
            Err(e) => {
                let status = http::StatusCode::INTERNAL_SERVER_ERROR;
                return Some(error_response(status, "InternalError", &e, &[], request_id));
            }
        };
        let mut resp = http::Response::new(s3s::Body::from(body));
        resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(report.content_type()));
        Some(resp)
    }
}

/// Where buckets of other regions live, for [`Redirects::reroute`].
struct Redirects {
    region: Region,
    /// Region name → endpoint (the configured peers).
    endpoints: std::collections::BTreeMap<String, String>,
    /// The peers, to forward reads to (`peers/forward.rs`).
    peers: Arc<HttpPeers>,
    /// Tells virtual-hosted requests from path-style ones.
    host: xregion_s3api::RegionHost,
}

impl Redirects {
    /// S3 answers a request sent to the wrong region's endpoint with `301 PermanentRedirect`,
    /// the bucket's region in `x-amz-bucket-region` and its endpoint in the body. Every
    /// operation that names a bucket ends in `NoSuchBucket` when the bucket is not here, so
    /// that answer is checked against the peers (only then: the error path) and rewritten:
    /// a request that can be passed on (`forward`: reads, object requests with no body, a
    /// small one, or an upload's body handed back by its operation; `peers/forward.rs` says
    /// which and why) is forwarded to the bucket's region and its answer returned, anything
    /// else is redirected.
    /// Lookups from peers (`x-xregion-local-only`) are answered from local state, as asked.
    async fn reroute(
        &self,
        error_xml: &[u8],
        fields: &[(String, String)],
        forward: Option<ForwardRequest>,
        request_id: &str,
    ) -> Option<http::Response<s3s::Body>> {
        let text = std::str::from_utf8(error_xml).ok()?;
        if !text.contains("<Code>NoSuchBucket</Code>") {
            return None;
        }
        let bucket = fields.iter().find(|(k, _)| k == "BucketName").map(|(_, v)| v.as_str())?;
        let owner = match self.region.locate_bucket(bucket).await {
            Ok(BucketLocation::Remote(owner)) => owner,
            Ok(BucketLocation::Local(_)) | Err(CoreError::NoSuchBucket) => return None,
            // A region that might own the bucket cannot be asked: "no such bucket" could be
            // wrong, so the client is told to retry rather than that the bucket is gone.
            Err(e) => {
                let message = format!("Please reduce your request rate or retry: {e}");
                let status = http::StatusCode::SERVICE_UNAVAILABLE;
                return Some(error_response(status, "ServiceUnavailable", &message, &[], request_id));
            }
        };
        if let Some(mut forward) = forward
            && let Some(upload) = forward.prepare()
        {
            let virtual_host = forward
                .host()
                .and_then(|h| s3s::host::S3Host::parse_host_header(&self.host, h).ok())
                .is_some_and(|v| v.bucket().is_some());
            if let Some(path) = forward.owner_path(bucket, virtual_host) {
                return Some(match self.peers.forward(&owner, &forward, &path, upload).await {
                    Ok(resp) => resp.map(s3s::Body::from),
                    Err(ForwardError::Body { status, code, message }) => {
                        error_response(status, &code, &message, &[], request_id)
                    }
                    Err(ForwardError::Region(e)) => {
                        tracing::warn!(bucket, region = %owner, error = %e, "a request could not be forwarded");
                        let message = format!("Please reduce your request rate or retry: {e}");
                        error_response(
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            "ServiceUnavailable",
                            &message,
                            &[],
                            request_id,
                        )
                    }
                });
            }
        }
        let endpoint = self.endpoints.get(&owner).map(String::as_str).unwrap_or_default();
        let host = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest).trim_end_matches('/');
        let message = "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.";
        let extra = [("Endpoint", host), ("Bucket", bucket)];
        let mut resp =
            error_response(http::StatusCode::MOVED_PERMANENTLY, "PermanentRedirect", message, &extra, request_id);
        let h = resp.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&owner) {
            h.insert("x-amz-bucket-region", v);
        }
        Some(resp)
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Edge {
    type Response = http::Response<s3s::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let s3 = self.s3.clone();
        let redirects = Arc::clone(&self.redirects);
        let scrape = self.scrape.clone();
        let stamp_tag = self.stamp_tag.clone();
        let secure = self.secure;
        Box::pin(async move {
            let request_id = hex::encode_upper(rand::random::<[u8; 8]>());
            if exposes_customer_key(secure, req.headers()) {
                let message = "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.";
                return Ok(error_response(http::StatusCode::BAD_REQUEST, "InvalidRequest", message, &[], &request_id));
            }
            let local_only = req.headers().contains_key(crate::peers::LOCAL_ONLY_HEADER);
            let close_after = expects_continue_without_body(req.headers());
            let scraped = match &scrape {
                Some(scrape) => scrape.answer(&req, &request_id).await,
                None => None,
            };
            let attributes = asks_object_attributes(&req);
            let (mut req, forward) = match local_only {
                true => (req.map(s3s::Body::from), None),
                false => ForwardRequest::capture(req).await,
            };
            merge_content_encoding(req.headers_mut());
            let response = match scraped {
                Some(resp) => Ok(resp),
                None => s3.call(req).await,
            };
            let mut resp = match response {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "request failed inside the protocol layer");
                    let message = "We encountered an internal error. Please try again.";
                    error_response(http::StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message, &[], &request_id)
                }
            };
            let fields = resp
                .headers_mut()
                .remove(ERROR_FIELDS_HEADER)
                .and_then(|v| v.to_str().ok().map(parse_fields))
                .unwrap_or_default();
            if resp.status() == http::StatusCode::NOT_FOUND
                && !local_only
                && let Some(bytes) = resp.body().bytes()
                && let Some(rerouted) = redirects.reroute(&bytes, &fields, forward, &request_id).await
            {
                resp = rerouted;
            } else if resp.status().as_u16() >= 400
                && let Some(bytes) = resp.body().bytes()
                && let Some(fixed) = complete_error_body(&bytes, &request_id, &fields)
            {
                resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                *resp.body_mut() = s3s::Body::from(fixed);
            }
            if attributes
                && resp.status() == http::StatusCode::OK
                && let Some(bytes) = resp.body().bytes()
                && let Some(fixed) = unquote_attributes_etag(&bytes)
            {
                resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                *resp.body_mut() = s3s::Body::from(fixed);
            }
            let h = resp.headers_mut();
            if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                h.insert("x-amz-request-id", v.clone());
                h.insert("x-amz-id-2", v);
            }
            h.insert(http::header::SERVER, http::HeaderValue::from_static("xregion"));
            if close_after {
                h.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            if local_only {
                h.insert(STAMP_TAG_HEADER, stamp_tag);
            }
            Ok(resp)
        })
    }
}

/// An SSE-C request (`x-amz-server-side-encryption-customer-*` or its `x-amz-copy-source-`
/// form) that came over plain HTTP from another machine: its key crossed the network readable.
/// S3 refuses those (`400 InvalidRequest`) before anything else, and so does xregion. Secure
/// enough: TLS, a loopback peer (the key never left the machine; `xregion dev` and tests), or
/// a TLS-terminating proxy in front that says `X-Forwarded-Proto: https` (a client that claims
/// it falsely exposes only its own key).
fn exposes_customer_key(secure: bool, headers: &http::HeaderMap) -> bool {
    if secure {
        return false;
    }
    let proxied_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    !proxied_tls
        && headers.keys().any(|name| {
            let name = name.as_str();
            name.starts_with("x-amz-server-side-encryption-customer-")
                || name.starts_with("x-amz-copy-source-server-side-encryption-customer-")
        })
}

/// A request with `Expect: 100-continue` and an empty body. hyper answers it without a
/// `100 Continue` (there is no body to ask for), which HTTP allows, but botocore (the AWS CLI,
/// boto3) then keeps expecting the final status it saw in place of the 100 for every later
/// request on that connection: the next response's status line is read as a header, its
/// length is lost, and the client waits for its read timeout (60 s in the CLI) on each one.
/// `aws s3 sync` of a tree with an empty file stalled so. Closing such a connection after
/// the answer resets botocore's state; it costs one reconnect per empty upload.
fn expects_continue_without_body(headers: &http::HeaderMap) -> bool {
    let expects = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let empty = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim) == Some("0");
    expects && empty
}

/// A GetObjectAttributes request (`GET …?attributes`).
fn asks_object_attributes<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::GET
        && req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "attributes" || p.starts_with("attributes=")))
}

/// S3 answers GetObjectAttributes with the ETag unquoted (`<ETag>abc</ETag>`), unlike every
/// header and listing; s3s writes every `ETag` element quoted. The XML of that one answer is
/// mended here, as the SDKs hand the value to callers as it is.
fn unquote_attributes_etag(xml: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(xml).ok()?;
    let (before, rest) = text.split_once("<ETag>\"")?;
    let (value, after) = rest.split_once("\"</ETag>")?;
    Some(format!("{before}<ETag>{value}</ETag>{after}"))
}

/// SDKs send `Content-Encoding: gzip` and `Content-Encoding: aws-chunked` as two header lines;
/// s3s rejects repeated headers, so fold them into one comma-separated value (RFC 9110 §5.3).
fn merge_content_encoding(headers: &mut http::HeaderMap) {
    let values: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if values.len() > 1
        && let Ok(v) = http::HeaderValue::from_str(&values.join(","))
    {
        headers.insert(http::header::CONTENT_ENCODING, v);
    }
}

fn parse_fields(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), urlencoding::decode(v).ok()?.into_owned())))
        .collect()
}

/// An S3 error response made here at the edge: `<Error>` with the code, the message, `extra`
/// elements (values escaped) and the request id.
fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
    extra: &[(&str, &str)],
    request_id: &str,
) -> http::Response<s3s::Body> {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>",
        xml_escape(message)
    );
    for (name, value) in extra {
        body.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
    }
    body.push_str(&format!("<RequestId>{request_id}</RequestId></Error>"));
    let mut resp = http::Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// AWS's message for errors s3s raises without one (parse failures happen before our code).
fn default_message(error_xml: &str) -> &'static str {
    if error_xml.contains("<Code>MalformedXML</Code>") {
        "The XML you provided was not well-formed or did not validate against our published schema"
    } else if error_xml.contains("<Code>InvalidBucketName</Code>") {
        "The specified bucket is not valid."
    } else {
        "The request is not valid."
    }
}

/// Completes an S3 error document: adds a default `<Message>` when s3s sent none, the extra
/// elements the API layer asked for (`<Key>`, `<BucketName>`, …), and `<RequestId>`.
fn complete_error_body(body: &[u8], request_id: &str, fields: &[(String, String)]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.rfind("</Error>")?;
    let mut extra = String::new();
    if !text.contains("<Message>") {
        extra.push_str(&format!("<Message>{}</Message>", default_message(text)));
    }
    for (name, value) in fields {
        if name.bytes().all(|b| b.is_ascii_alphanumeric()) && !text.contains(&format!("<{name}>")) {
            extra.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
        }
    }
    if !text.contains("<RequestId>") {
        extra.push_str(&format!("<RequestId>{request_id}</RequestId>"));
    }
    if extra.is_empty() {
        return None;
    }
    Some(format!("{}{extra}{}", &text[..at], &text[at..]))
}

#[cfg(test)]
mod tests {
    use super::{
        asks_object_attributes, complete_error_body, exposes_customer_key, merge_content_encoding, parse_fields,
        unquote_attributes_etag,
    };

    /// SSE-C keys travel only on connections that keep them secret (S3: "must be made over a
    /// secure connection").
    #[test]
    fn sse_c_keys_need_a_secure_connection() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, http::HeaderValue::from_static(value));
            }
            h
        };
        let key = headers(&[("x-amz-server-side-encryption-customer-key", "k")]);
        let copy_key = headers(&[("x-amz-copy-source-server-side-encryption-customer-algorithm", "AES256")]);
        assert!(exposes_customer_key(false, &key));
        assert!(exposes_customer_key(false, &copy_key));
        assert!(!exposes_customer_key(true, &key), "TLS or loopback");
        assert!(!exposes_customer_key(false, &headers(&[("x-amz-server-side-encryption", "AES256")])));
        let proxied = headers(&[("x-amz-server-side-encryption-customer-key", "k"), ("x-forwarded-proto", "https")]);
        assert!(!exposes_customer_key(false, &proxied));
        let plain_proxy = headers(&[("x-amz-server-side-encryption-customer-key", "k"), ("x-forwarded-proto", "http")]);
        assert!(exposes_customer_key(false, &plain_proxy));
    }

    #[test]
    fn object_attributes_answers_get_an_unquoted_etag() {
        let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
        assert!(asks_object_attributes(&get("/b/k?attributes")));
        assert!(asks_object_attributes(&get("/b/k?versionId=v&attributes=")));
        assert!(!asks_object_attributes(&get("/b/k?attributes-x")));
        assert!(!asks_object_attributes(&http::Request::put("/b/k?attributes").body(()).unwrap()));
        let xml =
            b"<GetObjectAttributesOutput><ETag>\"abc\"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesOutput>";
        let fixed = unquote_attributes_etag(xml).unwrap();
        assert_eq!(
            fixed,
            "<GetObjectAttributesOutput><ETag>abc</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesOutput>"
        );
        assert!(unquote_attributes_etag(fixed.as_bytes()).is_none());
    }

    #[test]
    fn error_xml_gets_request_id_message_and_fields() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        let fields = parse_fields("Key=a%26b%3Cc&BucketName=bkt");
        let fixed = complete_error_body(xml, "ABC", &fields).unwrap();
        assert!(
            fixed.ends_with("<Key>a&amp;b&lt;c</Key><BucketName>bkt</BucketName><RequestId>ABC</RequestId></Error>")
        );
        assert!(complete_error_body(fixed.as_bytes(), "DEF", &fields).is_none());
        assert!(complete_error_body(b"not xml", "X", &[]).is_none());
        let bare = complete_error_body(b"<Error><Code>InvalidBucketName</Code></Error>", "X", &[]).unwrap();
        assert!(bare.contains("<Message>"));
    }

    #[test]
    fn repeated_content_encoding_is_folded() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
        h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("aws-chunked"));
        merge_content_encoding(&mut h);
        assert_eq!(h.get_all(http::header::CONTENT_ENCODING).iter().count(), 1);
        assert_eq!(h.get(http::header::CONTENT_ENCODING).unwrap(), "gzip,aws-chunked");
    }
}
