//! Reading a version from the region that owns its bucket (a copy source in another region):
//! a signed S3 `GET /{bucket}/{key}?versionId=…`, answered from that region's local state,
//! and, when the copy keeps the source's tags, `GET …?tagging&versionId=…` for the version
//! the first answer named. Everything the copy needs is read from the answer's headers; the
//! bytes stream from its body.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::BodyStream;
use hyper::body::Incoming;
use xregion_core::copy::{RemoteObject, RemoteRead};
use xregion_core::objects::{Body, BodyError, ObjectMeta};
use xregion_core::{CoreError, CoreResult};
use xregion_types::{ChecksumAlgorithm, ChecksumValue, InvalidInput, VersionId};

use super::{HttpPeers, Patience, element, read_body, whole};

/// How long a peer may take to start answering an object read (its head). Longer than a
/// lookup's: the peer may be busy, and the copy's client is waiting for bytes anyway.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the body of an object read may pause before the copy gives up on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpPeers {
    /// [`xregion_core::PeerDirectory::read_object`] over HTTP.
    pub(super) async fn read_remote(&self, region: &str, read: RemoteRead<'_>) -> CoreResult<RemoteObject> {
        let endpoint = self.peers.get(region).ok_or_else(|| {
            CoreError::Unavailable(format!("bucket {} is in unknown region {region}", read.source.bucket))
        })?;
        let path = object_path(read.source.bucket, read.source.key);
        let query = read.source.version.map(|v| format!("?versionId={}", urlencoding::encode(v))).unwrap_or_default();
        let mut headers = Vec::new();
        // An SSE-C source opens only with its client's key: it goes along (the other region's
        // edge refuses it unless the peers' connection is TLS or loopback).
        if let Some(key) = read.source.customer {
            headers.push(("x-amz-server-side-encryption-customer-algorithm", xregion_core::AES256.to_owned()));
            headers.push(("x-amz-server-side-encryption-customer-key", key.key_base64().to_owned()));
            headers.push(("x-amz-server-side-encryption-customer-key-md5", key.key_md5().to_owned()));
        }
        match read.range {
            Some((first, last)) => headers.push(("range", format!("bytes={first}-{last}"))),
            None => headers.push(("x-amz-checksum-mode", "ENABLED".to_owned())),
        }
        let path_and_query = format!("{path}{query}");
        let resp = self
            .send_body(
                "GET",
                region,
                endpoint,
                &path_and_query,
                &headers,
                whole(Bytes::new()),
                Patience::Fixed(READ_TIMEOUT),
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let h = resp.headers().clone();
            let body = read_body(region, resp).await.unwrap_or_default();
            return Err(read_error(region, status, &h, &body, read.source.customer.is_some()));
        }
        let head = ObjectHead::parse(resp.headers())
            .map_err(|m| CoreError::Unavailable(format!("region {region} answered a read of {path} with {m}")))?;
        let mut meta = head.meta;
        if read.tags && head.tag_count > 0 {
            let version = head.version_id.as_ref().map_or("null", VersionId::as_str);
            let tagging = format!("{path}?tagging&versionId={}", urlencoding::encode(version));
            let tags = self
                .send_body("GET", region, endpoint, &tagging, &[], whole(Bytes::new()), Patience::Fixed(READ_TIMEOUT))
                .await?;
            let status = tags.status();
            let h = tags.headers().clone();
            let body = read_body(region, tags).await?;
            if !status.is_success() {
                return Err(read_error(region, status, &h, &body, false));
            }
            meta.tags = parse_tagging(&body)
                .map_err(|m| CoreError::Unavailable(format!("region {region} sent tags that do not parse: {m}")))?;
        }
        Ok(RemoteObject {
            version_id: head.version_id,
            etag: head.etag,
            last_modified_ms: head.last_modified_ms,
            size: head.size,
            meta,
            checksum: head.checksum,
            range: head.range,
            body: body_stream(region.to_owned(), resp.into_body()),
        })
    }
}

/// `/{bucket}/{key}` with every byte of the key but the unreserved ones and `/`
/// percent-encoded, as S3 clients send it (and as the signature covers it).
fn object_path(bucket: &str, key: &str) -> String {
    let key: Vec<_> = key.split('/').map(urlencoding::encode).collect();
    format!("/{bucket}/{}", key.join("/"))
}

/// What the head of a successful GET says about the version.
#[derive(Debug)]
struct ObjectHead {
    version_id: Option<VersionId>,
    etag: String,
    last_modified_ms: i64,
    size: u64,
    range: (u64, u64),
    meta: ObjectMeta,
    tag_count: usize,
    checksum: Option<ChecksumValue>,
}

impl ObjectHead {
    fn parse(h: &http::HeaderMap) -> Result<Self, String> {
        // Values may carry UTF-8 (user metadata as clients sent it), which `to_str` refuses.
        let text = |name: &str| h.get(name).and_then(|v| std::str::from_utf8(v.as_bytes()).ok()).map(str::to_owned);
        let required = |name: &str| text(name).ok_or_else(|| format!("no {name} header"));
        let version_id = text("x-amz-version-id")
            .map(|v| VersionId::parse(&v).map_err(|e| format!("version id {v:?}: {}", e.message)))
            .transpose()?;
        let etag = required("etag")?.trim_matches('"').to_owned();
        let last_modified = required("last-modified")?;
        let last_modified_ms =
            http_date_ms(&last_modified).ok_or_else(|| format!("Last-Modified {last_modified:?}"))?;
        let length: u64 =
            required("content-length")?.parse().map_err(|_| "a Content-Length that is not a number".to_owned())?;
        let (range, size) = match text("content-range") {
            None => ((0, length), length),
            Some(r) => {
                let (first, last, total) = parse_content_range(&r).ok_or_else(|| format!("Content-Range {r:?}"))?;
                if last + 1 - first != length {
                    return Err(format!("Content-Range {r:?} with Content-Length {length}"));
                }
                ((first, last + 1), total)
            }
        };
        let mut user_metadata: Vec<(String, String)> = h
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), std::str::from_utf8(value.as_bytes()).ok()?.to_owned()))
            })
            .collect();
        user_metadata.sort();
        let meta = ObjectMeta {
            content_type: text("content-type"),
            content_encoding: text("content-encoding"),
            content_disposition: text("content-disposition"),
            content_language: text("content-language"),
            cache_control: text("cache-control"),
            expires: text("expires"),
            user_metadata,
            tags: Vec::new(),
            storage_class: Some(text("x-amz-storage-class").unwrap_or_else(|| "STANDARD".to_owned())),
        };
        let tag_count = match text("x-amz-tagging-count") {
            None => 0,
            Some(n) => n.parse().map_err(|_| format!("x-amz-tagging-count {n:?}"))?,
        };
        let checksum = ChecksumAlgorithm::ALL.into_iter().find_map(|algorithm| {
            Some(ChecksumValue {
                algorithm,
                value: text(algorithm.header_name())?,
                full_object: text("x-amz-checksum-type").is_none_or(|t| t != "COMPOSITE"),
            })
        });
        Ok(Self { version_id, etag, last_modified_ms, size, range, meta, tag_count, checksum })
    }
}

/// An HTTP date (`Last-Modified`) as unix milliseconds.
fn http_date_ms(date: &str) -> Option<i64> {
    let since_epoch = httpdate::parse_http_date(date).ok()?.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}

/// `bytes first-last/total`.
fn parse_content_range(s: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = s.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last, total) = (first.parse().ok()?, last.parse().ok()?, total.parse().ok()?);
    (first <= last && last < total).then_some((first, last, total))
}

/// The tags of a `GetObjectTagging` answer.
fn parse_tagging(xml: &[u8]) -> Result<Vec<(String, String)>, String> {
    use s3s::xml::Deserialize as _;
    let mut d = s3s::xml::Deserializer::new(xml);
    let tagging = s3s::dto::Tagging::deserialize(&mut d).map_err(|e| format!("{e:?}"))?;
    Ok(tagging.tag_set.into_iter().filter_map(|t| Some((t.key?, t.value?))).collect())
}

/// The error a peer's refusal of a read means for the copy: the source's own errors as they
/// are (the bucket, key or version is gone, a delete marker, a range outside the object);
/// anything else says the source could not be read now.
fn read_error(
    region: &str,
    status: http::StatusCode,
    h: &http::HeaderMap,
    body: &[u8],
    with_customer_key: bool,
) -> CoreError {
    let xml = String::from_utf8_lossy(body);
    let code = element(&xml, "Code").unwrap_or_default();
    let message = element(&xml, "Message").unwrap_or_else(|| status.to_string());
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let marker = || header("x-amz-version-id").and_then(|v| VersionId::parse(v).ok());
    let is_marker = header("x-amz-delete-marker") == Some("true");
    match (status.as_u16(), code.as_str()) {
        (404, "NoSuchBucket") => CoreError::NoSuchBucket,
        (404, "NoSuchVersion") => CoreError::NoSuchVersion,
        (404, _) => CoreError::NoSuchKey { delete_marker: marker().filter(|_| is_marker) },
        (405, _) if is_marker => match marker() {
            Some(version_id) => CoreError::DeleteMarkerNotAllowed {
                version_id,
                last_modified_ms: header("last-modified").and_then(http_date_ms).unwrap_or_default(),
            },
            None => CoreError::Unavailable(format!("region {region} refused the read: {status} {code}")),
        },
        (416, _) => CoreError::InvalidRange,
        (400, "InvalidArgument") => CoreError::Invalid(InvalidInput::new("InvalidArgument", message)),
        // An SSE-C source without its key, or a key for another source (or one the other
        // region would not take over the peers' connection).
        (400, "InvalidRequest") => CoreError::Invalid(InvalidInput::new("InvalidRequest", message)),
        // The client's SSE-C key is not the source's. Without one, a refusal of the
        // deployment's own credential is this deployment's fault, not the client's.
        (403, "AccessDenied") if with_customer_key => CoreError::AccessDenied(message),
        (s, _) if s >= 500 => {
            CoreError::Unavailable(format!("region {region} could not serve the copy source: {code} {message}"))
        }
        _ => CoreError::Internal(format!("region {region} refused to read the copy source: {status} {code} {message}")),
    }
}

/// The bytes of a peer's answer; a pause longer than [`IDLE_TIMEOUT`] ends it with an error.
fn body_stream(region: String, body: Incoming) -> Body<'static> {
    futures::stream::unfold(Some((BodyStream::new(body), region)), |state| async move {
        let (mut frames, region) = state?;
        match tokio::time::timeout(IDLE_TIMEOUT, frames.next()).await {
            Err(_) => {
                let e: BodyError = format!("region {region} stopped sending the copy source").into();
                Some((Err(e), None))
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                let e: BodyError = format!("reading the copy source from region {region}: {e}").into();
                Some((Err(e), None))
            }
            Ok(Some(Ok(frame))) => {
                let bytes = frame.into_data().unwrap_or_else(|_| Bytes::new());
                Some((Ok(bytes), Some((frames, region))))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> http::HeaderMap {
        list.iter()
            .map(|(k, v)| {
                (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap())
            })
            .collect()
    }

    #[test]
    fn keys_are_encoded_as_clients_encode_them() {
        assert_eq!(object_path("b", "a/b c+é%?#"), "/b/a/b%20c%2B%C3%A9%25%3F%23");
        assert_eq!(object_path("b", "/lead//x/"), "/b//lead//x/");
    }

    #[test]
    fn head_of_a_whole_object() {
        let h = headers(&[
            ("etag", "\"0123456789abcdef0123456789abcdef\""),
            ("last-modified", "Mon, 07 Dec 2026 04:30:32 GMT"),
            ("content-length", "11"),
            ("content-type", "text/plain"),
            ("cache-control", "no-cache"),
            ("x-amz-meta-b", "2"),
            ("x-amz-meta-a", "1"),
            ("x-amz-version-id", "null"),
            ("x-amz-tagging-count", "2"),
            ("x-amz-checksum-crc32c", "yZRlqg=="),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ]);
        let head = ObjectHead::parse(&h).unwrap();
        assert_eq!(head.etag, "0123456789abcdef0123456789abcdef");
        assert_eq!(head.last_modified_ms, 1_796_617_832_000);
        assert_eq!((head.size, head.range), (11, (0, 11)));
        assert_eq!(head.meta.user_metadata, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(head.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(head.meta.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(head.tag_count, 2);
        assert_eq!(head.version_id.map(|v| v.as_str().to_owned()).as_deref(), Some("null"));
        let c = head.checksum.unwrap();
        assert_eq!((c.algorithm, c.value.as_str(), c.full_object), (ChecksumAlgorithm::Crc32c, "yZRlqg==", true));
    }

    #[test]
    fn head_of_a_range() {
        let base = [("etag", "\"e-2\""), ("last-modified", "Mon, 07 Dec 2026 04:30:32 GMT")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            ObjectHead::parse(&headers(&all))
        };
        let head = with(&[("content-length", "5"), ("content-range", "bytes 10-14/100")]).unwrap();
        assert_eq!((head.size, head.range), (100, (10, 15)));
        assert!(head.version_id.is_none() && head.checksum.is_none());
        assert!(with(&[("content-length", "4"), ("content-range", "bytes 10-14/100")]).is_err());
        assert!(with(&[("content-length", "5"), ("content-range", "bytes 10-14/12")]).is_err());
        assert!(with(&[("content-length", "x")]).is_err());
        assert!(with(&[]).is_err());
    }

    #[test]
    fn tags_are_unescaped() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a&amp;b</Key><Value>&lt;1&gt;</Value></Tag><Tag><Key>c</Key><Value></Value></Tag></TagSet></Tagging>"#;
        assert_eq!(parse_tagging(xml).unwrap(), vec![("a&b".into(), "<1>".into()), ("c".into(), String::new())]);
        assert!(parse_tagging(b"<Tagging><TagSet>").is_err());
    }

    #[test]
    fn refusals_become_the_sources_errors() {
        let err = |status: u16, h: &[(&str, &str)], code: &str| {
            let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
            read_error("eu-west-1", http::StatusCode::from_u16(status).unwrap(), &headers(h), body.as_bytes(), false)
        };
        assert!(matches!(err(404, &[], "NoSuchBucket"), CoreError::NoSuchBucket));
        assert!(matches!(err(404, &[], "NoSuchVersion"), CoreError::NoSuchVersion));
        assert!(matches!(err(404, &[], "NoSuchKey"), CoreError::NoSuchKey { delete_marker: None }));
        let marker = [("x-amz-delete-marker", "true"), ("x-amz-version-id", "null")];
        assert!(matches!(err(404, &marker, "NoSuchKey"), CoreError::NoSuchKey { delete_marker: Some(_) }));
        assert!(matches!(err(405, &marker, "MethodNotAllowed"), CoreError::DeleteMarkerNotAllowed { .. }));
        assert!(matches!(err(416, &[], "InvalidRange"), CoreError::InvalidRange));
        assert!(matches!(err(400, &[], "InvalidArgument"), CoreError::Invalid(_)));
        assert!(matches!(err(503, &[], "SlowDown"), CoreError::Unavailable(_)));
        assert!(matches!(err(403, &[], "AccessDenied"), CoreError::Internal(_)));
        // With an SSE-C key sent along, these are the client's: its key is missing or wrong.
        assert!(matches!(err(400, &[], "InvalidRequest"), CoreError::Invalid(_)));
        let body = b"<Error><Code>AccessDenied</Code><Message>m</Message></Error>";
        let wrong_key = read_error("eu-west-1", http::StatusCode::FORBIDDEN, &headers(&[]), body, true);
        assert!(matches!(wrong_key, CoreError::AccessDenied(_)), "{wrong_key:?}");
    }
}
