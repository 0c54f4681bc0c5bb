//! Peer lookups over the S3 API: "which region owns bucket X?" is a signed `HEAD /X` to each
//! peer, answered from the peer's local state only (`x-xregion-local-only: 1`, so peers
//! never ask each other in a loop). The answer is the `x-amz-bucket-region` header. A
//! destination bucket's versioning state (VAL-3) is then a signed `GET /X?versioning` to the
//! region that owns it. A copy source in another region is read from its region with a signed
//! GET (`read.rs`); requests for a bucket of another region are forwarded there when they can
//! be (`forward.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use xregion_core::buckets::ListedBucket;
use xregion_core::copy::{RemoteObject, RemoteRead};
use xregion_core::{CoreError, CoreResult, PeerDirectory};
use xregion_identity::Credential;
use xregion_identity::sigv4::sign_request;
use xregion_replication::{Connector, DisplayErr, ExternalTargets, Transport};
use xregion_types::VersioningState;

mod forward;
mod read;

pub use forward::{ForwardCounters, ForwardError, ForwardRequest};

/// Header that asks a region to answer bucket lookups from local state only.
pub const LOCAL_ONLY_HEADER: &str = "x-xregion-local-only";

/// Header with which a region answers peer requests: its version stamp tag
/// (`xregion_types::stamp_tag`), so that two regions with the same tag notice.
pub const STAMP_TAG_HEADER: &str = "x-xregion-stamp-tag";

/// This region's stamp tag and the peers seen answering with the same one. Two regions with
/// one tag can generate the same version stamp, and a replica colliding with another version
/// at its stamp is refused for good. Tags differ when every region lists all the others as
/// peers; this catches deployments where they do not.
#[derive(Debug)]
pub struct StampTagCheck {
    own: u8,
    shared: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl StampTagCheck {
    /// The check for a region whose tag is `own`.
    pub fn new(own: u8) -> Self {
        Self { own, shared: std::sync::Mutex::default() }
    }

    /// This region's tag.
    pub fn own(&self) -> u8 {
        self.own
    }

    /// Peers seen with this region's tag, by name.
    pub fn shared_with(&self) -> Vec<String> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    /// Notes the tag a peer answered with (its `x-xregion-stamp-tag`, if any); warns the first
    /// time a peer has this region's tag, and forgets it once it answers with another (it was
    /// restarted with other peers or its own `stamp_tag`).
    fn observe(&self, peer: &str, header: Option<&http::HeaderValue>) {
        let Some(tag) = header.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u8>().ok()) else {
            return;
        };
        let mut shared = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tag != self.own {
            if shared.remove(peer) {
                tracing::info!(peer, stamp_tag = tag, "the peer region no longer has this region's version stamp tag");
            }
            return;
        }
        if shared.insert(peer.to_owned()) {
            tracing::warn!(
                peer,
                stamp_tag = tag,
                "a peer region has this region's version stamp tag, so both can generate the same version \
                 ids and replicas between them can be refused: list every region as a peer on each, or give \
                 each its own stamp_tag"
            );
        }
    }
}

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The body of a request to a peer: whole, or streamed (a forwarded upload).
type PeerBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body for a peer request.
fn whole(body: Bytes) -> PeerBody {
    Full::new(body).map_err(|never| match never {}).boxed_unsync()
}

/// How long a peer may take to answer.
enum Patience {
    /// From the moment the request is sent.
    Fixed(Duration),
    /// From the moment its streamed body was sent whole (the receiver hears it then): a
    /// client's upload may take longer than any answer should.
    AfterBody(Duration, tokio::sync::oneshot::Receiver<()>),
}

/// Asks the other regions of the deployment over HTTP(S).
pub struct HttpPeers {
    peers: BTreeMap<String, String>,
    credential: Credential,
    client: Client<Connector, PeerBody>,
    tags: std::sync::Arc<StampTagCheck>,
    /// Requests forwarded to each peer (`forward.rs`).
    forwarded: ForwardCounters,
    /// Buckets of other S3 services this region replicates to: asked for their versioning
    /// (VAL-3), and names no bucket of the deployment may take.
    external: std::sync::Arc<ExternalTargets>,
}

impl HttpPeers {
    /// Peers by region name → endpoint, signing with the deployment's root credential, over
    /// `transport` (`https://` peers); every answer's stamp tag is checked against `tags`.
    pub fn new(
        peers: BTreeMap<String, String>,
        access_key: String,
        secret_key: String,
        tags: std::sync::Arc<StampTagCheck>,
        transport: &Transport,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(transport.connector(None));
        let forwarded = ForwardCounters::new(peers.keys());
        let external = std::sync::Arc::default();
        Self { peers, credential: Credential { access_key, secret_key }, client, tags, forwarded, external }
    }

    /// The external targets of the region's configuration.
    pub fn with_external(mut self, external: std::sync::Arc<ExternalTargets>) -> Self {
        self.external = external;
        self
    }

    /// The peer regions and their endpoints, as configured.
    pub fn endpoints(&self) -> &BTreeMap<String, String> {
        &self.peers
    }

    /// Requests forwarded to each peer since start, for the operator report.
    pub fn forwarded_report(&self) -> Vec<xregion_replication::report::ForwardedReport> {
        self.forwarded.report()
    }

    /// Asks every peer once, only to learn their stamp tags; errors are ignored (a peer that
    /// is down is checked on the next exchange). The question is a ListBuckets of the peer's
    /// own buckets, an S3 request it answers without complaint (a `HEAD /` made every peer log
    /// an `ERROR` for an unknown operation at each start).
    pub async fn probe_stamp_tags(&self) {
        let probes: FuturesUnordered<_> =
            self.peers.iter().map(|(region, endpoint)| self.buckets_of(region, endpoint)).collect();
        let _: Vec<_> = probes.collect().await;
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
        let patience = Patience::Fixed(LOOKUP_TIMEOUT);
        self.send_body(method, region, endpoint, path_and_query, &[], whole(Bytes::new()), patience).await
    }

    /// [`Self::send`] with more headers and a body (sent unsigned, `UNSIGNED-PAYLOAD`): a
    /// whole one ([`whole`]) or a stream (a forwarded upload), waiting as `patience` says.
    #[allow(clippy::too_many_arguments, reason = "one request's parts; a struct would only rename them")]
    async fn send_body(
        &self,
        method: &str,
        region: &str,
        endpoint: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: PeerBody,
        patience: Patience,
    ) -> CoreResult<http::Response<hyper::body::Incoming>> {
        let url = format!("{endpoint}{path_and_query}");
        let mut builder = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(LOCAL_ONLY_HEADER, "1")
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut req = builder.body(body).map_err(|e| CoreError::Internal(format!("peer request: {e}")))?;
        let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&host).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        sign_request(&mut req, &self.credential, region)
            .map_err(|e| CoreError::Internal(format!("peer signing: {e}")))?;
        let late = || CoreError::Unavailable(format!("region {region} did not answer in time"));
        let answer = self.client.request(req);
        let resp = match patience {
            Patience::Fixed(timeout) => tokio::time::timeout(timeout, answer).await.map_err(|_| late())?,
            Patience::AfterBody(timeout, sent) => {
                let deadline = async move {
                    // A body that failed drops its sender: the request fails by itself then.
                    let _ = sent.await;
                    tokio::time::sleep(timeout).await;
                };
                tokio::select! {
                    resp = answer => resp,
                    () = deadline => return Err(late()),
                }
            }
        }
        .map_err(|e| CoreError::Unavailable(format!("region {region} is unreachable: {}", DisplayErr(&e))))?;
        self.tags.observe(region, resp.headers().get(STAMP_TAG_HEADER));
        Ok(resp)
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
        let body = read_body(region, resp).await?;
        Ok(Some(parse_versioning_status(&String::from_utf8_lossy(&body))))
    }
}

/// A peer's whole answer body, within the lookup timeout.
async fn read_body(region: &str, resp: http::Response<hyper::body::Incoming>) -> CoreResult<Bytes> {
    Ok(tokio::time::timeout(LOOKUP_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| CoreError::Unavailable(format!("region {region} did not answer in time")))?
        .map_err(|e| CoreError::Unavailable(format!("region {region}: {e}")))?
        .to_bytes())
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

impl HttpPeers {
    /// `GET /` (ListBuckets, local only) to one peer.
    async fn buckets_of(&self, region: &str, endpoint: &str) -> CoreResult<Vec<ListedBucket>> {
        let resp = self.send("GET", region, endpoint, "/").await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(CoreError::Unavailable(format!("region {region} answered {status} to ListBuckets")));
        }
        let body = read_body(region, resp).await?;
        Ok(parse_bucket_list(&String::from_utf8_lossy(&body), region))
    }
}

/// The text of the first `<name>` element of `xml`, trimmed (our own peers' XML: no
/// attributes on the elements read, values read as they are).
fn element(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    rest.split_once(&format!("</{name}>")).map(|(v, _)| v.trim().to_owned())
}

/// The buckets of a `ListAllMyBucketsResult` answer (our own peers' XML: bucket names need no
/// unescaping, dates are RFC 3339). Entries that do not parse are left out.
fn parse_bucket_list(xml: &str, region: &str) -> Vec<ListedBucket> {
    xml.split("<Bucket>")
        .skip(1)
        .filter_map(|b| {
            let b = b.split("</Bucket>").next()?;
            let created = element(b, "CreationDate")?;
            let created = time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339).ok()?;
            Some(ListedBucket {
                name: element(b, "Name")?,
                region: element(b, "BucketRegion").unwrap_or_else(|| region.to_owned()),
                created_ms: i64::try_from(created.unix_timestamp_nanos() / 1_000_000).ok()?,
            })
        })
        .collect()
}

impl PeerDirectory for HttpPeers {
    /// Asks every peer at once; the first that has the bucket answers. A peer that cannot be
    /// asked (down, slow, answering 5xx) is skipped: the lookup fails with `Unavailable` only if
    /// no reachable peer has the bucket and at least one peer could not be asked (it might be
    /// the owner), and is `None` only if every peer answered "not here".
    fn locate_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>> {
        Box::pin(async move {
            let mut answers: FuturesUnordered<_> =
                self.peers.iter().map(|(region, endpoint)| self.ask(region, endpoint, bucket)).collect();
            let mut unreachable = None;
            while let Some(answer) = answers.next().await {
                match answer {
                    Ok(Some(owner)) => return Ok(Some(owner)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(bucket, error = %e, "peer skipped in bucket lookup");
                        unreachable.get_or_insert(e);
                    }
                }
            }
            match unreachable {
                Some(e) => Err(e),
                None => Ok(None),
            }
        })
    }

    fn bucket_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>> {
        Box::pin(async move {
            if self.external.contains(bucket) {
                // A name in a rule must mean one place; a peer that is down cannot say.
                if let Ok(Some(region)) = self.locate_bucket(bucket).await {
                    return Err(CoreError::Invalid(xregion_types::InvalidInput::new(
                        "InvalidRequest",
                        format!(
                            "Destination bucket {bucket} is both an external target of this region and a bucket of \
                             region {region}: rename one of them."
                        ),
                    )));
                }
                return self.external.versioning(bucket).await;
            }
            match self.locate_bucket(bucket).await? {
                Some(region) => self.versioning(&region, bucket).await,
                None => Ok(None),
            }
        })
    }

    fn is_external_target(&self, bucket: &str) -> bool {
        self.external.contains(bucket)
    }

    fn read_object<'a>(&'a self, region: &'a str, read: RemoteRead<'a>) -> BoxFuture<'a, CoreResult<RemoteObject>> {
        Box::pin(self.read_remote(region, read))
    }

    fn list_buckets(&self) -> BoxFuture<'_, Vec<ListedBucket>> {
        Box::pin(async move {
            let answers: FuturesUnordered<_> = self
                .peers
                .iter()
                .map(|(region, endpoint)| async move { (region, self.buckets_of(region, endpoint).await) })
                .collect();
            let answers: Vec<_> = answers.collect().await;
            let mut all = Vec::new();
            for (region, answer) in answers {
                match answer {
                    Ok(buckets) => all.extend(buckets),
                    Err(e) => tracing::warn!(%region, error = %e, "ListBuckets leaves out an unreachable region"),
                }
            }
            all
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_list_is_parsed() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Buckets><Bucket><BucketRegion>eu-west-1</BucketRegion><CreationDate>2026-11-25T15:00:00.123Z</CreationDate><Name>photos</Name></Bucket><Bucket><CreationDate>bad</CreationDate><Name>x</Name></Bucket><Bucket><CreationDate>2026-11-25T15:00:01Z</CreationDate><Name>plain</Name></Bucket></Buckets></ListAllMyBucketsResult>"#;
        let listed = parse_bucket_list(xml, "ap-south-1");
        assert_eq!(
            listed,
            vec![
                ListedBucket { name: "photos".into(), region: "eu-west-1".into(), created_ms: 1_795_618_800_123 },
                ListedBucket { name: "plain".into(), region: "ap-south-1".into(), created_ms: 1_795_618_801_000 },
            ]
        );
    }

    #[test]
    fn versioning_status_is_parsed() {
        let xml = |s: &str| {
            format!(r#"<?xml version="1.0"?><VersioningConfiguration xmlns="x">{s}</VersioningConfiguration>"#)
        };
        assert_eq!(parse_versioning_status(&xml("<Status>Enabled</Status>")), VersioningState::Enabled);
        assert_eq!(parse_versioning_status(&xml("<Status>Suspended</Status>")), VersioningState::Suspended);
        assert_eq!(parse_versioning_status(&xml("")), VersioningState::Unversioned);
    }

    /// A peer answering every request with `response` (raw HTTP/1.1), forever.
    async fn fake_peer(response: &'static str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {
                        if conn.write_all(response.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    /// An endpoint nothing listens on.
    fn dead_peer() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    }

    const OWNER: &str = "HTTP/1.1 200 OK\r\nx-amz-bucket-region: eu-west-1\r\ncontent-length: 0\r\n\r\n";
    const NOT_HERE: &str = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";

    fn peers(list: &[(&str, &str)]) -> HttpPeers {
        peers_tagged(list, 0)
    }

    fn peers_tagged(list: &[(&str, &str)], tag: u8) -> HttpPeers {
        let map = list.iter().map(|(r, e)| ((*r).to_owned(), (*e).to_owned())).collect();
        HttpPeers::new(map, "AK".into(), "SK".into(), std::sync::Arc::new(StampTagCheck::new(tag)), &transport())
    }

    /// Clients trusting the system's roots.
    pub(super) fn transport() -> Transport {
        Transport::new(xregion_crypto::tls::ClientTls::new(None).expect("system roots"))
    }

    /// A peer answering with this region's stamp tag is noted (CON-3: the two could generate
    /// the same version ids); other tags, and answers without one, are not.
    #[tokio::test]
    async fn a_peer_with_the_same_stamp_tag_is_noted() {
        const TAGGED: &str = "HTTP/1.1 404 Not Found\r\nx-xregion-stamp-tag: 3\r\ncontent-length: 0\r\n\r\n";
        let (tagged, untagged) = (fake_peer(TAGGED).await, fake_peer(NOT_HERE).await);
        let list = [("eu-west-1", tagged.as_str()), ("us-west-2", untagged.as_str())];
        let same = peers_tagged(&list, 3);
        same.probe_stamp_tags().await;
        assert_eq!(same.locate_bucket("b").await.expect("lookup"), None);
        assert_eq!(same.tags.shared_with(), ["eu-west-1"]);
        let other = peers_tagged(&list, 2);
        other.probe_stamp_tags().await;
        assert!(other.tags.shared_with().is_empty());
    }

    /// An unreachable peer (sorted first) does not hide the peer that owns the bucket.
    #[tokio::test]
    async fn unreachable_peer_is_skipped_when_another_owns_the_bucket() {
        let (dead, owner) = (dead_peer(), fake_peer(OWNER).await);
        let p = peers(&[("aa-dead-1", &dead), ("eu-west-1", &owner)]);
        assert_eq!(p.locate_bucket("b").await.expect("lookup"), Some("eu-west-1".to_owned()));
    }

    /// No reachable peer has it: unknown if some peer could not be asked, absent otherwise.
    #[tokio::test]
    async fn lookup_fails_only_if_an_unreachable_peer_might_own_the_bucket() {
        let (dead, none) = (dead_peer(), fake_peer(NOT_HERE).await);
        let p = peers(&[("aa-dead-1", &dead), ("eu-west-1", &none)]);
        assert!(matches!(p.locate_bucket("b").await, Err(CoreError::Unavailable(_))));
        let p = peers(&[("eu-west-1", &none)]);
        assert_eq!(p.locate_bucket("b").await.expect("lookup"), None);
    }
}
