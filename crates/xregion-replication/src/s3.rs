//! The S3 target: pushes replicas to the region that owns the destination bucket, with
//! `aws-sdk-s3` and the replica headers of `docs/replication.md`.
//!
//! Endpoint resolution: destination bucket → owning region (`Region::locate_bucket`, i.e. the
//! local store or the peers' `HEAD /bucket`; cached once found) → endpoint from the region map
//! the server passes (peers plus this region itself, for same-region replication).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{StorageClass, Tag, Tagging};
use futures::StreamExt;
use futures::future::BoxFuture;
use xregion_core::buckets::BucketLocation;
use xregion_core::replica::{checksum_header, transfer_crc32c};
use xregion_core::{CoreError, Region};
use xregion_types::replication::TaskKind;
use xregion_types::{ObjectData, VersionRecord};

use crate::batch::{BatchClient, batchable};
use crate::external::ExternalTargets;
use crate::transport::{DisplayErr, Transport};
use crate::{Replica, ReplicationError, ReplicationTarget};

/// Sets a request's content headers to the source version's (ELI-10): `Content-Type`,
/// `-Encoding`, `-Disposition`, `-Language`, `Cache-Control`, `Expires`. A macro because
/// the SDK's request builders (PutObject, CreateMultipartUpload) share no trait.
macro_rules! with_content_headers {
    ($request:expr, $data:expr) => {{
        let data: &xregion_types::ObjectData = $data;
        let expires = data.expires.as_deref().and_then(|e| {
            aws_sdk_s3::primitives::DateTime::from_str(e, aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()
        });
        $request
            // The SDK would add a Content-Type of its own to a body without one; S3's default
            // is what the source serves for such a version, so the copy gets that.
            .content_type(data.content_type_or_default())
            .set_content_encoding(data.content_encoding.clone())
            .set_content_disposition(data.content_disposition.clone())
            .set_content_language(data.content_language.clone())
            .set_cache_control(data.cache_control.clone())
            .set_expires(expires)
    }};
}
pub(crate) use with_content_headers;

/// Connect timeout to a destination.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time without progress before a request is abandoned (the task is retried).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests at once to an external target from one batch of the worker.
const EXTERNAL_CONCURRENCY: usize = 16;

/// Replicates to xregion regions (or any endpoint speaking the replica protocol).
pub struct S3Target {
    endpoints: BTreeMap<String, String>,
    credentials: Credentials,
    batch: BatchClient,
    clients: Mutex<HashMap<String, Client>>,
    locations: Mutex<HashMap<String, String>>,
    external: Arc<ExternalTargets>,
    transport: Transport,
}

impl S3Target {
    /// `endpoints`: region name → `http(s)://host:port` (include this region for
    /// same-region replication). Requests are signed with `access_key` / `secret_key`, which
    /// must be allowed `s3:Replicate*` on the destinations (design invariant 5), over
    /// `transport` (what `https://` endpoints are trusted with).
    pub fn new(endpoints: BTreeMap<String, String>, access_key: &str, secret_key: &str, transport: Transport) -> Self {
        Self {
            endpoints,
            credentials: Credentials::new(access_key, secret_key, None, None, "xregion-replication"),
            batch: BatchClient::new(&transport, access_key, secret_key, CONNECT_TIMEOUT, READ_TIMEOUT),
            clients: Mutex::new(HashMap::new()),
            locations: Mutex::new(HashMap::new()),
            external: Arc::new(ExternalTargets::default()),
            transport,
        }
    }

    /// Sends to these buckets of other S3 services with the plain S3 API (`crate::external`)
    /// instead of looking them up among the regions.
    pub fn with_external(mut self, external: Arc<ExternalTargets>) -> Self {
        self.external = external;
        self
    }

    /// The region owning `bucket`, and whether that came from the cache (and may be stale).
    /// Unreachable peers are transient; a bucket no region has is `DstBucketNotFound` (CON-7).
    async fn locate(&self, region: &Region, bucket: &str) -> Result<(String, bool), ReplicationError> {
        if let Some(found) = lock(&self.locations).get(bucket) {
            return Ok((found.clone(), true));
        }
        let owner = match region.locate_bucket(bucket).await {
            Ok(BucketLocation::Local(_)) => region.name().to_owned(),
            Ok(BucketLocation::Remote(owner)) => owner,
            Err(CoreError::NoSuchBucket) => {
                return Err(ReplicationError::permanent(
                    "DstBucketNotFound",
                    format!("destination bucket {bucket} does not exist in any region"),
                ));
            }
            // No reachable region has it and some region could not be asked (the peer lookup
            // skips unreachable peers when another one owns the bucket): try again later.
            Err(e) => return Err(ReplicationError::unavailable(format!("locating bucket {bucket}: {e}"))),
        };
        lock(&self.locations).insert(bucket.to_owned(), owner.clone());
        Ok((owner, false))
    }

    fn forget_location(&self, bucket: &str) {
        lock(&self.locations).remove(bucket);
    }

    /// After an answer from `bucket`'s owner: a transient error may mean the bucket moved, so
    /// its owner is looked up again next time. So may `DstBucketNotFound` from an owner that
    /// came from the cache (the bucket was deleted there and created again in another
    /// region): that answer is made transient, and the next attempt, which looks the bucket up
    /// afresh, fails the task for good only if no region has it (CON-7).
    fn after_answer(
        &self,
        bucket: &str,
        cached: bool,
        answer: Result<(), ReplicationError>,
    ) -> Result<(), ReplicationError> {
        match answer {
            Err(e) if e.kind() != crate::ErrorKind::Permanent => {
                self.forget_location(bucket);
                Err(e)
            }
            Err(e) if cached && e.reason() == Some("DstBucketNotFound") => {
                self.forget_location(bucket);
                Err(ReplicationError::retryable(format!("{e}; looking the bucket up again")))
            }
            other => other,
        }
    }

    fn client(&self, region: &str) -> Result<Client, ReplicationError> {
        if let Some(client) = lock(&self.clients).get(region) {
            return Ok(client.clone());
        }
        let Some(endpoint) = self.endpoints.get(region) else {
            return Err(no_endpoint(region));
        };
        let client = sdk_client(endpoint, region, &self.credentials, true, &self.transport);
        lock(&self.clients).insert(region.to_owned(), client.clone());
        Ok(client)
    }

    async fn send_one(&self, region: &Region, r: &Replica) -> Result<(), ReplicationError> {
        if self.external.contains(&r.destination_bucket) {
            return self.external.send(region, r).await;
        }
        let (owner, cached) = self.locate(region, &r.destination_bucket).await?;
        let client = self.client(&owner)?;
        let result = match r.kind {
            TaskKind::Object => put_object(&client, region, r).await,
            TaskKind::DeleteMarker => put_delete_marker(&client, r).await,
            TaskKind::Tags => put_tags(&client, r).await,
        };
        self.after_answer(&r.destination_bucket, cached, result)
    }
}

impl S3Target {
    /// Small versions and delete markers in one batch request (`crate::batch`), the rest
    /// (larger objects, tag changes) one by one.
    async fn send_all(&self, region: &Region, replicas: &[Replica]) -> Vec<Result<(), ReplicationError>> {
        // One destination bucket per call. An external target takes no batches: its tasks go
        // side by side (at most one per key, so their order does not matter).
        if replicas.first().is_some_and(|r| self.external.contains(&r.destination_bucket)) {
            let sends: Vec<_> = replicas.iter().map(|r| self.send_one(region, r)).collect();
            return futures::stream::iter(sends).buffered(EXTERNAL_CONCURRENCY).collect().await;
        }
        let mut results: Vec<Option<Result<(), ReplicationError>>> = vec![None; replicas.len()];
        let (small, large): (Vec<usize>, Vec<usize>) =
            (0..replicas.len()).partition(|i| batchable(replicas[*i].kind, &replicas[*i].version));
        if let Some(first) = small.first() {
            let bucket = &replicas[*first].destination_bucket;
            let answers = match self.locate(region, bucket).await {
                Ok((owner, cached)) => match self.endpoints.get(&owner) {
                    Some(endpoint) => {
                        let batch: Vec<&Replica> = small.iter().map(|i| &replicas[*i]).collect();
                        let answers = self.batch.send(region, &owner, endpoint, &batch).await;
                        answers.into_iter().map(|a| self.after_answer(bucket, cached, a)).collect()
                    }
                    None => vec![Err(no_endpoint(&owner)); small.len()],
                },
                Err(e) => vec![Err(e); small.len()],
            };
            for (i, answer) in small.into_iter().zip(answers) {
                results[i] = Some(answer);
            }
        }
        for i in large {
            results[i] = Some(self.send_one(region, &replicas[i]).await);
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(ReplicationError::retryable("not sent")))).collect()
    }
}

/// An SDK client for one endpoint: no SDK retries (the worker owns them, with back-off per
/// task and destination), the worker's timeouts, and no checksum the source never had.
pub(crate) fn sdk_client(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    path_style: bool,
    transport: &Transport,
) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(transport.sdk_http_client())
        .region(aws_sdk_s3::config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials.clone())
        .force_path_style(path_style)
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build())
        // A copy carries the source's checksum in a header of its own; the SDK must not add
        // one the source never had.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// A region without a configured endpoint: a configuration gap, fixed by a restart with the
/// peer configured, so the task is kept.
fn no_endpoint(region: &str) -> ReplicationError {
    ReplicationError::unavailable(format!("no endpoint configured for region {region}"))
}

impl ReplicationTarget for S3Target {
    fn send<'a>(&'a self, region: &'a Region, replica: &'a Replica) -> BoxFuture<'a, Result<(), ReplicationError>> {
        Box::pin(self.send_one(region, replica))
    }

    fn send_many<'a>(
        &'a self,
        region: &'a Region,
        replicas: &'a [Replica],
    ) -> BoxFuture<'a, Vec<Result<(), ReplicationError>>> {
        Box::pin(self.send_all(region, replicas))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The replica headers common to every request: the marker and the source version.
fn replica_headers(v: &VersionRecord) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("x-xregion-replica", "1".to_owned()),
        ("x-xregion-source-version-id", v.version_id.as_str().to_owned()),
        ("x-xregion-source-last-modified", v.last_modified_ms.to_string()),
    ];
    // The `null` version's id carries no stamp to order it by (batch replication of a
    // version from before versioning).
    if v.version_id.is_null() {
        headers.push(("x-xregion-source-stamp", v.stamp.to_string()));
    }
    headers
}

fn object_headers(v: &VersionRecord, data: &ObjectData) -> Vec<(&'static str, String)> {
    let mut headers = replica_headers(v);
    headers.push(("x-xregion-source-etag", data.etag.clone()));
    if !data.part_sizes.is_empty() {
        let sizes: Vec<String> = data.part_sizes.iter().map(u64::to_string).collect();
        headers.push(("x-xregion-part-sizes", sizes.join(",")));
    }
    if let Some(c) = &data.checksum {
        headers.push(("x-xregion-source-checksum", checksum_header(c)));
    }
    let part_checksums = data.part_checksums.join(",");
    // Up to 10 000 SHA-256 digests would not fit in a request head (hyper takes about 400 KiB,
    // and the part sizes come too); a task whose request can never be sent would stay PENDING
    // for ever, so a replica of so many parts goes without their checksums (its whole-object
    // composite checksum still travels).
    if !part_checksums.is_empty() && part_checksums.len() <= MAX_PART_CHECKSUMS_HEADER {
        headers.push(("x-xregion-part-checksums", part_checksums));
    }
    headers
}

/// Longest `x-xregion-part-checksums` sent: every CRC of 10 000 parts fits, SHA-1 up to about
/// 9 000 parts, SHA-256 up to about 5 800.
const MAX_PART_CHECKSUMS_HEADER: usize = 256 * 1024;

/// ELI-10, STS-11..14: data, system and user metadata, tags, storage class, id, time, ETag,
/// checksum. The body streams from the source blobs (never buffered whole).
async fn put_object(client: &Client, region: &Region, r: &Replica) -> Result<(), ReplicationError> {
    let Some(data) = r.version.object() else {
        return Err(ReplicationError::permanent("SrcObjectNotEligible", "object task on a delete marker"));
    };
    let reading = |e: xregion_core::CoreError| ReplicationError::retryable(format!("reading the source version: {e}"));
    let mut headers = object_headers(&r.version, data);
    let (body, len, sse) = match region.sealed_version(data) {
        // ELI-7 for an SSE-C version: this region cannot open it, so its sealed pieces travel
        // as they are stored, with the wrapped data key and the pieces' labels and sizes
        // (`xregion_core::sealed`); the replica is SSE-C under the same client key. The
        // transfer CRC32C over the sealed bytes is the destination's only check of them.
        Some(sealed) => {
            headers.push(("x-xregion-transfer-crc32c", region.sealed_transfer_crc32c(data).await.map_err(reading)?));
            headers.push(("x-xregion-sealed-key", sealed.key_header()));
            headers.push(("x-xregion-sealed-pieces", sealed.pieces_header()));
            (stream_body(region.read_sealed_version(data)), sealed.sealed_size(), None)
        }
        None => {
            if !data.checksum.as_ref().is_some_and(|c| c.full_object) {
                // Lets the destination verify the bytes by CRC32C instead of recomputing the MD5
                // ETag (MD5 is the largest CPU cost of a large replica); reading the bytes twice
                // is cheaper.
                headers.push(("x-xregion-transfer-crc32c", transfer_crc32c(region, data).await.map_err(reading)?));
            }
            // ELI-7: the replica is encrypted as its source is (with the destination's own key).
            (source_body(region, data, 0, data.size), data.size, sse_of(data))
        }
    };
    let storage_class = r.storage_class.clone().unwrap_or_else(|| data.storage_class.clone());
    let request = client
        .put_object()
        .bucket(&r.destination_bucket)
        .key(&r.key)
        .body(body)
        .content_length(i64::try_from(len).unwrap_or(i64::MAX))
        .set_metadata(user_metadata(data));
    let result = with_content_headers!(request, data)
        .set_tagging(tagging_header(&data.tags))
        .storage_class(StorageClass::from(storage_class.as_str()))
        .set_server_side_encryption(sse)
        .customize()
        .mutate_request(move |req| add_headers(req, &headers))
        .send()
        .await;
    result.map(|_| ()).map_err(|e| classify(e, TaskKind::Object))
}

/// The `x-amz-server-side-encryption` a copy of `data` is written with: `AES256` when the
/// source version is encrypted at rest with its region's key (ELI-7; an SSE-C version travels
/// sealed instead).
pub(crate) fn sse_of(data: &ObjectData) -> Option<aws_sdk_s3::types::ServerSideEncryption> {
    data.encryption.as_ref().filter(|e| !e.is_customer_key()).map(|_| aws_sdk_s3::types::ServerSideEncryption::Aes256)
}

/// DEL-6: the marker keeps the source id and time.
async fn put_delete_marker(client: &Client, r: &Replica) -> Result<(), ReplicationError> {
    let headers = replica_headers(&r.version);
    let result = client
        .delete_object()
        .bucket(&r.destination_bucket)
        .key(&r.key)
        .customize()
        .mutate_request(move |req| add_headers(req, &headers))
        .send()
        .await;
    result.map(|_| ()).map_err(|e| classify(e, TaskKind::DeleteMarker))
}

/// ELI-12: the source version's current tag set onto the replica version.
async fn put_tags(client: &Client, r: &Replica) -> Result<(), ReplicationError> {
    let Some(data) = r.version.object() else {
        return Err(ReplicationError::permanent("SrcObjectNotEligible", "tag task on a delete marker"));
    };
    let tagging = tag_set(data)?;
    let mut headers = replica_headers(&r.version);
    // TWO-8: the destination keeps whichever tag set is newer. TWO-6: it never sends the
    // change back here.
    headers.push(("x-xregion-tags-changed-ms", r.version.tags_stamp().to_string()));
    headers.push(("x-xregion-source-bucket", r.source_bucket.clone()));
    let result = client
        .put_object_tagging()
        .bucket(&r.destination_bucket)
        .key(&r.key)
        .version_id(r.version.version_id.as_str())
        .tagging(tagging)
        .customize()
        .mutate_request(move |req| add_headers(req, &headers))
        .send()
        .await;
    result.map(|_| ()).map_err(|e| classify(e, TaskKind::Tags))
}

/// The source version's user metadata (`x-amz-meta-*`), if it has any.
pub(crate) fn user_metadata(data: &ObjectData) -> Option<HashMap<String, String>> {
    (!data.user_metadata.is_empty()).then(|| data.user_metadata.iter().cloned().collect())
}

/// The source version's tag set as a `Tagging` document.
pub(crate) fn tag_set(data: &ObjectData) -> Result<Tagging, ReplicationError> {
    let mut tag_set = Vec::with_capacity(data.tags.len());
    for (k, v) in &data.tags {
        let tag = Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| ReplicationError::permanent("SrcObjectNotEligible", format!("tag: {e}")))?;
        tag_set.push(tag);
    }
    Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| ReplicationError::permanent("SrcObjectNotEligible", format!("tagging: {e}")))
}

/// Bytes `start..end` of a source version as a request body, streamed from its blobs (never
/// buffered whole).
pub(crate) fn source_body(region: &Region, data: &ObjectData, start: u64, end: u64) -> ByteStream {
    stream_body(region.read_object(data, start, end))
}

/// A stream of bytes as a request body.
fn stream_body(stream: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>) -> ByteStream {
    let frames = SyncStream(std::sync::Mutex::new(stream.map(|chunk| chunk.map(http_body::Frame::data))));
    ByteStream::from_body_1_x(http_body_util::StreamBody::new(frames))
}

pub(crate) fn add_headers(req: &mut aws_sdk_s3::config::http::HttpRequest, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.clone());
    }
}

/// `x-amz-tagging`: URL-encoded `k=v&…`.
pub(crate) fn tagging_header(tags: &[(String, String)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let pairs: Vec<String> =
        tags.iter().map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))).collect();
    Some(pairs.join("&"))
}

/// Maps an SDK error to the scheduler's kinds and the IAM-8 reasons (IMPL-4, §9.4).
pub(crate) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: SdkError<E, HttpResponse>,
    kind: TaskKind,
) -> ReplicationError {
    let (status, code) = match &err {
        // A success the SDK could not read (a service whose answer differs from S3's): the
        // task stays pending with the reason, as for an answer lost on the way.
        SdkError::ServiceError(service) if service.raw().status().is_success() => {
            return ReplicationError::retryable(format!("answer not understood: {}", DisplayErr(&err)));
        }
        SdkError::ServiceError(service) => (service.raw().status().as_u16(), err.code().unwrap_or_default().to_owned()),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return ReplicationError::unavailable(format!("destination unreachable: {}", DisplayErr(&err)));
        }
        _ => return ReplicationError::retryable(format!("request not sent: {}", DisplayErr(&err))),
    };
    classify_response(status, &code, kind)
}

/// The decision table for a destination's error response.
pub(crate) fn classify_response(status: u16, code: &str, kind: TaskKind) -> ReplicationError {
    let message = format!("destination answered {status} {code}");
    let not_permitted = match kind {
        TaskKind::Object => "DstPutObjectNotPermitted",
        TaskKind::DeleteMarker => "DstDelObjNotPermitted",
        TaskKind::Tags => "DstPutTaggingNotPermitted",
    };
    match (status, code) {
        (500..=599, _) | (429, _) | (_, "SlowDown" | "BadDigest" | "RequestTimeout" | "InternalError") => {
            ReplicationError::retryable(message)
        }
        // The bucket is not where we thought: locate it again.
        (301 | 307, _) | (_, "PermanentRedirect") => ReplicationError::retryable(message),
        (_, "NoSuchBucket") => ReplicationError::permanent("DstBucketNotFound", message),
        // ELI-21 item 1, CON-7: the destination is not (or no longer) versioned.
        (_, "InvalidBucketState") => ReplicationError::permanent("DstBucketUnversioned", message),
        (_, "NoSuchVersion" | "NoSuchKey") if kind == TaskKind::Tags => {
            ReplicationError::permanent("DstVersionNotFound", message)
        }
        (403, _) | (_, "AccessDenied") => ReplicationError::permanent(not_permitted, message),
        _ => ReplicationError::permanent(not_permitted, message),
    }
}

/// Makes a `Send` stream `Sync` (the SDK body must be) without locking on the hot path:
/// `Mutex::get_mut` needs only `&mut self`, which polling already has.
struct SyncStream<S>(std::sync::Mutex<S>);

impl<S: futures::Stream + Unpin> futures::Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<S::Item>> {
        let this = self.get_mut();
        match this.0.get_mut() {
            Ok(s) => std::pin::Pin::new(s).poll_next(cx),
            Err(poisoned) => std::pin::Pin::new(poisoned.into_inner()).poll_next(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// IAM-8 / STS-5: which answers fail the task and with what reason.
    #[test]
    fn iam8_failure_reasons_and_transient_errors() {
        let c = |s, code, k| classify_response(s, code, k);
        assert_eq!(c(503, "SlowDown", TaskKind::Object).kind(), ErrorKind::Retryable);
        assert_eq!(c(500, "InternalError", TaskKind::Object).kind(), ErrorKind::Retryable);
        assert_eq!(c(400, "BadDigest", TaskKind::Object).kind(), ErrorKind::Retryable);
        assert_eq!(c(404, "NoSuchBucket", TaskKind::Object).reason(), Some("DstBucketNotFound"));
        assert_eq!(c(409, "InvalidBucketState", TaskKind::Object).reason(), Some("DstBucketUnversioned"));
        assert_eq!(c(403, "AccessDenied", TaskKind::Object).reason(), Some("DstPutObjectNotPermitted"));
        assert_eq!(c(403, "AccessDenied", TaskKind::DeleteMarker).reason(), Some("DstDelObjNotPermitted"));
        assert_eq!(c(403, "AccessDenied", TaskKind::Tags).reason(), Some("DstPutTaggingNotPermitted"));
        assert_eq!(c(404, "NoSuchVersion", TaskKind::Tags).reason(), Some("DstVersionNotFound"));
    }

    #[test]
    fn tagging_header_is_url_encoded() {
        let tags = vec![("a b".to_owned(), "c&d".to_owned()), ("k".to_owned(), "v".to_owned())];
        assert_eq!(tagging_header(&tags).as_deref(), Some("a%20b=c%26d&k=v"));
        assert_eq!(tagging_header(&[]), None);
    }
}
