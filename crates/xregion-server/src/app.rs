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
use xregion_core::Region;
use xregion_identity::{Credential, Identity, RootOnly};

use crate::config::RegionConfig;
use crate::peers::HttpPeers;

/// A region that is serving. Dropping it does not stop it; call [`RunningRegion::shutdown`].
pub struct RunningRegion {
    /// Region name.
    pub name: String,
    /// The bound address (useful when the configured port was 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRegion {
    /// Stops accepting, lets in-flight requests finish (bounded), and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Opens the region's storage and starts serving on an already bound listener.
pub fn start_region_on(cfg: &RegionConfig, listener: TcpListener) -> anyhow::Result<RunningRegion> {
    let addr = listener.local_addr()?;
    let peers = HttpPeers::new(cfg.peers.clone(), cfg.access_key.clone(), cfg.secret_key.clone());
    let region = Region::open(&cfg.region, &cfg.data_dir, Arc::new(peers))
        .with_context(|| format!("opening region {} at {}", cfg.region, cfg.data_dir.display()))?;
    let identity =
        Identity::with_root(Credential { access_key: cfg.access_key.clone(), secret_key: cfg.secret_key.clone() });
    let service = xregion_s3api::build_service(region, identity, Arc::new(RootOnly), cfg.domains.clone());
    let (stop, stop_rx) = watch::channel(false);
    let name = cfg.region.clone();
    let task = tokio::spawn(accept_loop(listener, service, stop_rx, name.clone()));
    tracing::info!(region = %name, %addr, "region listening");
    Ok(RunningRegion { name, addr, stop, task })
}

/// Binds `cfg.listen` and starts serving.
pub async fn start_region(cfg: &RegionConfig) -> anyhow::Result<RunningRegion> {
    let listener = TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    start_region_on(cfg, listener)
}

async fn accept_loop(listener: TcpListener, service: S3Service, mut stop: watch::Receiver<bool>, region: String) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let edge = Edge { s3: service };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(%region, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Header and body leave in separate writes; without NODELAY small GETs stall 40 ms.
                let _ = stream.set_nodelay(true);
                let edge = edge.clone();
                let conn = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), edge)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!(%region, "connections still open after 10 s; closing them");
    }
}

/// The edge of the HTTP stack: gives every response a request id (`x-amz-request-id`) and
/// puts it into error XML bodies, which s3s leaves without one.
#[derive(Clone)]
struct Edge {
    s3: S3Service,
}

impl hyper::service::Service<http::Request<Incoming>> for Edge {
    type Response = http::Response<s3s::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let s3 = self.s3.clone();
        Box::pin(async move {
            let request_id = hex::encode_upper(rand::random::<[u8; 8]>());
            let req = req.map(s3s::Body::from);
            let mut resp = match s3.call(req).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "request failed inside the protocol layer");
                    let body = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>{request_id}</RequestId></Error>"
                    );
                    let mut r = http::Response::new(s3s::Body::from(body));
                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    r
                }
            };
            if resp.status().as_u16() >= 400
                && let Some(bytes) = resp.body().bytes()
                && let Some(fixed) = add_request_id(&bytes, &request_id)
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
            Ok(resp)
        })
    }
}

/// Inserts `<RequestId>` into an S3 error document that lacks one.
fn add_request_id(body: &[u8], request_id: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") {
        return None;
    }
    let at = text.rfind("</Error>")?;
    Some(format!("{}<RequestId>{request_id}</RequestId>{}", &text[..at], &text[at..]))
}

#[cfg(test)]
mod tests {
    use super::add_request_id;

    #[test]
    fn request_id_goes_into_error_xml() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";
        let fixed = add_request_id(xml, "ABC").unwrap();
        assert!(fixed.ends_with("<RequestId>ABC</RequestId></Error>"));
        assert!(add_request_id(fixed.as_bytes(), "DEF").is_none());
        assert!(add_request_id(b"not xml", "X").is_none());
    }
}
