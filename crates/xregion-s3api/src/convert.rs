//! Conversions between s3s DTO pieces and xregion types.

use s3s::dto::{self, ETag, Timestamp};
use time::OffsetDateTime;
use xregion_core::conditions::EtagMatch;
use xregion_core::objects::ObjectMeta;
use xregion_types::{ChecksumAlgorithm, ChecksumValue, ObjectData};

/// Unix milliseconds → s3s timestamp.
pub(crate) fn ts(ms: i64) -> Timestamp {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// s3s timestamp → unix seconds.
pub(crate) fn unix_secs(t: &Timestamp) -> i64 {
    OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// s3s timestamp → unix milliseconds.
pub(crate) fn unix_ms(t: &Timestamp) -> i64 {
    i64::try_from(OffsetDateTime::from(t.clone()).unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds → an HTTP date (`Last-Modified` header).
pub(crate) fn http_date(ms: i64) -> String {
    let mut out = Vec::new();
    let _ = ts(ms).format(dto::TimestampFormat::HttpDate, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Stored ETag (no quotes) → DTO ETag.
/// `x-amz-server-side-encryption` of a version: `AES256` when it is encrypted at rest with
/// the region's key (SSE-S3). An SSE-C version answers with [`sse_customer_of`] instead.
pub(crate) fn sse_of(data: &xregion_types::ObjectData) -> Option<dto::ServerSideEncryption> {
    data.encryption
        .as_ref()
        .filter(|e| !e.is_customer_key())
        .map(|_| dto::ServerSideEncryption::from_static(dto::ServerSideEncryption::AES256))
}

/// `x-amz-server-side-encryption-customer-algorithm` and `-key-MD5` of an answer about an
/// SSE-C version or upload: those of the request's key, which [`xregion_core::Region::open_key`]
/// (or the write) has matched with the version, as S3 echoes them.
pub(crate) fn sse_customer_of(customer: Option<&xregion_core::CustomerKey>) -> (Option<String>, Option<String>) {
    match customer {
        Some(key) => (Some(xregion_core::AES256.to_owned()), Some(key.key_md5().to_owned())),
        None => (None, None),
    }
}

/// The SSE-C key of a request's three `…-customer-*` headers (`400` for a bad set).
pub(crate) fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> s3s::S3Result<Option<xregion_core::CustomerKey>> {
    use crate::error::IntoS3 as _;
    xregion_core::customer_key(algorithm, key, key_md5).s3()
}

/// [`customer_key`] of an input DTO's `sse_customer_*` fields (or, with the `copy_source`
/// prefix, its `copy_source_sse_customer_*` ones).
macro_rules! customer_key_of {
    ($input:expr) => {
        $crate::convert::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
    (copy_source $input:expr) => {
        $crate::convert::customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
    };
}
pub(crate) use customer_key_of;

pub(crate) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

/// An If-Match / If-None-Match header value → a core condition.
pub(crate) fn etag_match(c: &dto::ETagCondition) -> EtagMatch {
    match c.as_etag() {
        None => EtagMatch::Any,
        Some(e) => EtagMatch::List(vec![e.value().to_owned()]),
    }
}

/// DTO tag set → pairs.
pub(crate) fn tags_from(set: &[dto::Tag]) -> Vec<(String, String)> {
    set.iter().map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default())).collect()
}

/// Pairs → DTO tag set.
pub(crate) fn tags_to(tags: &[(String, String)]) -> Vec<dto::Tag> {
    tags.iter().map(|(k, v)| dto::Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

/// Parses the `x-amz-tagging` header (URL query encoding).
pub(crate) fn parse_tagging_header(s: &str) -> Result<Vec<(String, String)>, s3s::S3Error> {
    let mut out = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            urlencoding::decode(&x.replace('+', " "))
                .map(|c| c.into_owned())
                .map_err(|_| s3s::s3_error!(InvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
        };
        out.push((dec(k)?, dec(v)?));
    }
    Ok(out)
}

/// User metadata map → sorted pairs (lowercase names).
pub(crate) fn metadata_from(m: Option<&dto::Metadata>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> =
        m.map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Pairs → user metadata map (None when empty).
pub(crate) fn metadata_to(pairs: &[(String, String)]) -> Option<dto::Metadata> {
    if pairs.is_empty() {
        return None;
    }
    Some(pairs.iter().cloned().collect())
}

/// Formats an `Expires` timestamp as an HTTP date string for storage.
pub(crate) fn expires_to_string(t: &Timestamp) -> String {
    let mut out = Vec::new();
    let _ = t.format(dto::TimestampFormat::HttpDate, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Parses a stored `Expires` string back.
pub(crate) fn expires_from_string(s: &str) -> Option<Timestamp> {
    Timestamp::parse(dto::TimestampFormat::HttpDate, s).ok()
}

/// Content metadata shared by PUT, CopyObject (REPLACE) and CreateMultipartUpload.
#[allow(clippy::too_many_arguments)]
pub(crate) fn object_meta(
    content_type: Option<&dto::ContentType>,
    content_encoding: Option<&String>,
    content_disposition: Option<&String>,
    content_language: Option<&String>,
    cache_control: Option<&String>,
    expires: Option<&Timestamp>,
    metadata: Option<&dto::Metadata>,
    storage_class: Option<&dto::StorageClass>,
) -> ObjectMeta {
    ObjectMeta {
        content_type: content_type.map(ToString::to_string),
        content_encoding: stored_content_encoding(content_encoding),
        content_disposition: content_disposition.cloned(),
        content_language: content_language.cloned(),
        cache_control: cache_control.cloned(),
        expires: expires.map(expires_to_string),
        user_metadata: metadata_from(metadata),
        tags: Vec::new(),
        storage_class: storage_class.map(|s| s.as_str().to_owned()),
    }
}

/// `Content-Encoding` as stored: without `aws-chunked`, which frames a streamed upload and is
/// not an encoding of the object (AWS never returns it).
pub(crate) fn stored_content_encoding(value: Option<&String>) -> Option<String> {
    let kept: Vec<&str> =
        value?.split(',').map(str::trim).filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// [`object_meta`] from any input DTO with the standard content fields (PutObject,
/// CopyObject, CreateMultipartUpload): they are separate generated types with the same names.
macro_rules! object_meta_of {
    ($input:expr) => {
        $crate::convert::object_meta(
            $input.content_type.as_ref(),
            $input.content_encoding.as_ref(),
            $input.content_disposition.as_ref(),
            $input.content_language.as_ref(),
            $input.cache_control.as_ref(),
            $input.expires.as_ref(),
            $input.metadata.as_ref(),
            $input.storage_class.as_ref(),
        )
    };
}
pub(crate) use object_meta_of;

/// DTO checksum algorithm → ours (None for an unknown name).
pub(crate) fn checksum_alg(a: &dto::ChecksumAlgorithm) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::parse(a.as_str())
}

/// The five checksum fields of an output DTO.
#[derive(Default)]
pub(crate) struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub checksum_type: Option<dto::ChecksumType>,
}

impl ChecksumFields {
    pub(crate) fn of(c: Option<&ChecksumValue>) -> Self {
        let mut f = Self::default();
        if let Some(c) = c {
            let v = Some(c.value.clone());
            match c.algorithm {
                ChecksumAlgorithm::Crc32 => f.crc32 = v,
                ChecksumAlgorithm::Crc32c => f.crc32c = v,
                ChecksumAlgorithm::Crc64Nvme => f.crc64nvme = v,
                ChecksumAlgorithm::Sha1 => f.sha1 = v,
                ChecksumAlgorithm::Sha256 => f.sha256 = v,
            }
            f.checksum_type = Some(dto::ChecksumType::from_static(if c.full_object {
                dto::ChecksumType::FULL_OBJECT
            } else {
                dto::ChecksumType::COMPOSITE
            }));
        }
        f
    }
}

/// The storage class DTO of an object.
pub(crate) fn storage_class(d: &ObjectData) -> String {
    if d.storage_class.is_empty() { "STANDARD".to_owned() } else { d.storage_class.clone() }
}

#[cfg(test)]
mod tests {
    use super::stored_content_encoding;

    #[test]
    fn aws_chunked_is_not_stored_as_content_encoding() {
        let enc = |s: &str| stored_content_encoding(Some(&s.to_owned()));
        assert_eq!(enc("aws-chunked"), None);
        assert_eq!(enc("gzip,aws-chunked"), Some("gzip".to_owned()));
        assert_eq!(enc("aws-chunked, gzip"), Some("gzip".to_owned()));
        assert_eq!(enc("gzip, br"), Some("gzip,br".to_owned()));
        assert_eq!(stored_content_encoding(None), None);
    }
}
