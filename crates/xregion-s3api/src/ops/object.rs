//! Object operations: PUT, GET, HEAD, COPY, DELETE, DeleteObjects, tagging.

use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use xregion_core::conditions::ReadConditions;
use xregion_core::copy::CopySourceRef;
use xregion_core::objects::{Body, ChecksumClaim, DEFAULT_CHECKSUM, PutRequest};
use xregion_core::{CoreError, Region};
use xregion_meta::Precondition;
use xregion_types::{ChecksumAlgorithm, VersionRecord, VersioningState};

use super::unsupported::write_features_of;
use super::{read_version_header, write_version_header};
use crate::convert::{
    self, ChecksumFields, customer_key_of, etag, etag_match, parse_tagging_header, tags_from, tags_to, ts,
};
use crate::error::{IntoS3, to_s3};

/// Wraps an s3s request body as a core body.
pub(crate) fn body_of(blob: Option<StreamingBlob>) -> Body<'static> {
    match blob {
        Some(b) => b.boxed(),
        None => futures::stream::empty().boxed(),
    }
}

/// Largest object (or part) a single PUT may carry, as in S3: 5 GiB.
pub(crate) const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The length the client declared for the (decoded) body. Replica PUTs use this directly: a
/// replica of a multipart object may exceed 5 GiB in one request.
pub(crate) fn declared_len(headers: &HeaderMap, content_length: Option<i64>) -> Option<u64> {
    match headers.get("x-amz-decoded-content-length") {
        Some(v) => v.to_str().ok().and_then(|s| s.parse().ok()),
        None => content_length.and_then(|l| u64::try_from(l).ok()),
    }
}

/// [`declared_len`] for client PUTs and parts: more than 5 GiB is refused up front with
/// `EntityTooLarge`, before any byte is read.
pub(crate) fn checked_put_len(headers: &HeaderMap, content_length: Option<i64>) -> S3Result<Option<u64>> {
    let declared = declared_len(headers, content_length);
    if declared.is_some_and(|len| len > MAX_PUT_SIZE) {
        return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size."));
    }
    Ok(declared)
}

/// Which additional checksum a request carries: a header value, a trailer, or just an algorithm.
pub(crate) struct ChecksumRequest {
    pub algorithm: Option<ChecksumAlgorithm>,
    pub header_value: Option<String>,
    pub trailer: Option<&'static str>,
}

pub(crate) fn checksum_request(
    headers: &HeaderMap,
    algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    values: [Option<&String>; 5],
) -> S3Result<ChecksumRequest> {
    let [crc32, crc32c, crc64, sha1, sha256] = values;
    let given = [
        (ChecksumAlgorithm::Crc32, crc32),
        (ChecksumAlgorithm::Crc32c, crc32c),
        (ChecksumAlgorithm::Crc64Nvme, crc64),
        (ChecksumAlgorithm::Sha1, sha1),
        (ChecksumAlgorithm::Sha256, sha256),
    ];
    let mut present = given.iter().filter_map(|(a, v)| v.map(|v| (*a, v.clone())));
    let first = present.next();
    if present.next().is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    let requested = match algorithm {
        Some(a) => Some(convert::checksum_alg(a).ok_or_else(|| {
            s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        })?),
        None => None,
    };
    if let Some((alg, value)) = first {
        return Ok(ChecksumRequest { algorithm: Some(alg), header_value: Some(value), trailer: None });
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        let name = trailer.trim().to_ascii_lowercase();
        if let Some(alg) = ChecksumAlgorithm::ALL.into_iter().find(|a| a.header_name() == name) {
            return Ok(ChecksumRequest { algorithm: Some(alg), header_value: None, trailer: Some(alg.header_name()) });
        }
    }
    Ok(ChecksumRequest { algorithm: requested, header_value: None, trailer: None })
}

/// [`checksum_request`] of an upload's input (PutObject, UploadPart): the same five fields.
macro_rules! checksum_request_of {
    ($headers:expr, $input:expr) => {
        $crate::ops::object::checksum_request(
            $headers,
            $input.checksum_algorithm.as_ref(),
            [
                $input.checksum_crc32.as_ref(),
                $input.checksum_crc32c.as_ref(),
                $input.checksum_crc64nvme.as_ref(),
                $input.checksum_sha1.as_ref(),
                $input.checksum_sha256.as_ref(),
            ],
        )
    };
}
pub(crate) use checksum_request_of;

/// For an upload (PutObject, UploadPart) that found no bucket here: hands its body to the edge,
/// which may forward it to the bucket's region ([`crate::handoff`]), and evaluates to the error.
macro_rules! hand_off_upload {
    ($err:expr, $req:ident) => {{
        let checksum = $crate::ops::object::checksum_request_of!(&$req.headers, $req.input)?;
        let unsent = $crate::handoff::Unsent {
            headers: &$req.headers,
            body: $req.input.body,
            length: $crate::ops::object::checked_put_len(&$req.headers, $req.input.content_length)?,
            trailer: checksum.trailer_of($req.trailing_headers),
        };
        $crate::handoff::hand_off($err, &$req.extensions, unsent)
    }};
}
pub(crate) use hand_off_upload;

impl ChecksumRequest {
    /// A trailing checksum's algorithm and name, with the trailers to read it from.
    pub(crate) fn trailer_of(
        &self,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> Option<(ChecksumAlgorithm, &'static str, Option<s3s::TrailingHeaders>)> {
        Some((self.algorithm?, self.trailer?, trailers))
    }
}

/// After the body was read: the value the client claims (header or trailer).
pub(crate) fn claimed_value(c: &ChecksumRequest, trailers: Option<&s3s::TrailingHeaders>) -> Option<String> {
    if let Some(v) = &c.header_value {
        return Some(v.clone());
    }
    let name = c.trailer?;
    trailers.and_then(|t| t.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned))).flatten()
}

pub(crate) async fn put_object(r: &Region, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    if let Err(e) = r.bucket(&req.input.bucket) {
        // Perhaps another region's bucket: the edge may forward the upload.
        return Err(hand_off_upload!(e, req));
    }
    let S3Request { input, headers, trailing_headers, .. } = req;
    write_features_of!(input).check()?;
    let mut meta = convert::object_meta_of!(input);
    if let Some(t) = &input.tagging {
        meta.tags = parse_tagging_header(t)?;
    }
    meta.validate().s3()?;
    let precondition = write_precondition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let checksum = checksum_request_of!(&headers, input)?;
    let customer = customer_key_of!(input)?;
    let sse = input.server_side_encryption.as_ref().map(|s| s.as_str());
    let seal = r.write_encryption(&input.bucket, sse, customer.as_ref()).s3()?;
    let stored = r
        .write_object_body(
            &input.bucket,
            body_of(input.body),
            Some(checksum.algorithm.unwrap_or(DEFAULT_CHECKSUM)),
            checked_put_len(&headers, input.content_length)?,
            seal.as_ref(),
        )
        .await
        .s3()?;
    let put = PutRequest {
        bucket: input.bucket,
        key: input.key,
        meta,
        content_md5: input.content_md5,
        checksum: checksum.algorithm.map(|algorithm| ChecksumClaim {
            algorithm,
            expected: claimed_value(&checksum, trailing_headers.as_ref()),
        }),
        precondition,
    };
    let res = r.commit_put(put, stored).await.s3()?;
    let data = res.record.object().cloned().unwrap_or_default();
    let cs = ChecksumFields::of(data.checksum.as_ref());
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    let out = PutObjectOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        e_tag: Some(etag(&data.etag)),
        version_id: write_version_header(res.versioning, &res.record.version_id),
        checksum_crc32: cs.crc32,
        checksum_crc32c: cs.crc32c,
        checksum_crc64nvme: cs.crc64nvme,
        checksum_sha1: cs.sha1,
        checksum_sha256: cs.sha256,
        checksum_type: cs.checksum_type,
        server_side_encryption: convert::sse_of(&data),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

/// If-Match / If-None-Match on a write (VER-11).
pub(crate) fn write_precondition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<Precondition>> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(NotImplemented, "If-Match and If-None-Match together are not supported")),
        (Some(m), None) => match m.as_etag() {
            Some(e) => Ok(Some(Precondition::IfMatch(e.value().to_owned()))),
            None => Err(s3_error!(NotImplemented, "If-Match: * is not supported on writes")),
        },
        (None, Some(n)) if n.is_any() => Ok(Some(Precondition::IfNoneMatchAny)),
        (None, Some(_)) => Err(s3_error!(NotImplemented, "If-None-Match on writes only supports *")),
        (None, None) => Ok(None),
    }
}

pub(crate) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(etag_match),
        if_none_match: if_none_match.map(etag_match),
        if_modified_since: if_modified_since.map(convert::unix_secs),
        if_unmodified_since: if_unmodified_since.map(convert::unix_secs),
    }
}

/// The byte range a GET/HEAD asks for: `Range`, or the bounds of `partNumber`.
fn byte_range(
    v: &VersionRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(Option<std::ops::Range<u64>>, Option<i32>)> {
    let data = v.object().ok_or_else(|| to_s3(CoreError::Internal("range on a delete marker".into())))?;
    if range.is_some() && part_number.is_some() {
        return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
    }
    if let Some(n) = part_number {
        let sizes: Vec<u64> = if data.part_sizes.is_empty() { vec![data.size] } else { data.part_sizes.clone() };
        let idx = usize::try_from(n).ok().filter(|i| *i >= 1 && *i <= sizes.len()).ok_or_else(|| {
            let mut e = S3Error::with_message(
                s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            e.set_status_code(StatusCode::RANGE_NOT_SATISFIABLE);
            e
        })?;
        let start: u64 = sizes[..idx - 1].iter().sum();
        let count = i32::try_from(sizes.len()).unwrap_or(i32::MAX);
        return Ok((Some(start..start + sizes[idx - 1]), Some(count)));
    }
    match range {
        None => Ok((None, None)),
        Some(rg) => match rg.check(data.size) {
            Ok(r) => Ok((Some(r), None)),
            Err(_) => Err(to_s3(CoreError::InvalidRange)),
        },
    }
}

/// The checksum a GET or HEAD answers with `x-amz-checksum-mode: ENABLED`: the version's for
/// the whole object; for `partNumber` that part's (kept since completion,
/// `ObjectData::part_checksums`), or the version's when it has one part only; none for a
/// `Range`.
fn read_checksum(
    data: &xregion_types::ObjectData,
    whole: bool,
    part_number: Option<i32>,
    mode: Option<&ChecksumMode>,
) -> ChecksumFields {
    if mode.is_none_or(|m| m.as_str() != ChecksumMode::ENABLED) {
        return ChecksumFields::default();
    }
    if whole || (part_number == Some(1) && data.part_sizes.is_empty()) {
        return ChecksumFields::of(data.checksum.as_ref());
    }
    let index = part_number.and_then(|n| usize::try_from(n).ok()).and_then(|n| n.checked_sub(1));
    match (data.checksum.as_ref(), index.and_then(|i| data.part_checksums.get(i))) {
        (Some(c), Some(value)) => ChecksumFields::of(Some(&xregion_types::ChecksumValue {
            algorithm: c.algorithm,
            value: value.clone(),
            full_object: true,
        })),
        _ => ChecksumFields::default(),
    }
}

/// Resolves the version for GET/HEAD and maps core errors (VER-12/13).
fn resolve(
    r: &Region,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<(xregion_types::BucketRecord, VersionRecord)> {
    r.get_object(bucket, key, version).s3()
}

pub(crate) async fn get_object(r: &Region, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let customer = customer_key_of!(input)?;
    let (b, v) = resolve(r, &input.bucket, &input.key, input.version_id.as_deref())?;
    let Some(data) = v.object() else {
        return Err(to_s3(CoreError::NoSuchKey { delete_marker: None }));
    };
    let key = r.open_key(data.encryption.as_ref(), customer.as_ref()).s3()?;
    read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )
    .check(&data.etag, v.last_modified_ms)
    .s3()?;
    let (range, parts_count) = byte_range(&v, input.range.as_ref(), input.part_number)?;
    let (start, end) = range.clone().map_or((0, data.size), |r| (r.start, r.end));
    let stream = r.read_object_with(data, start, end, key);
    let body = StreamingBlob::wrap(SyncStream::new(stream));
    let cs = read_checksum(data, range.is_none(), input.part_number, input.checksum_mode.as_ref());
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    let out = GetObjectOutput {
        body: Some(body),
        sse_customer_algorithm,
        sse_customer_key_md5,
        accept_ranges: Some("bytes".to_owned()),
        content_length: Some(i64::try_from(end - start).unwrap_or(i64::MAX)),
        content_range: range.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), data.size)),
        content_type: input.response_content_type.or_else(|| Some(data.content_type_or_default().to_owned())),
        content_encoding: input.response_content_encoding.or_else(|| data.content_encoding.clone()),
        content_disposition: input.response_content_disposition.or_else(|| data.content_disposition.clone()),
        content_language: input.response_content_language.or_else(|| data.content_language.clone()),
        cache_control: input.response_cache_control.or_else(|| data.cache_control.clone()),
        expires: input.response_expires.or_else(|| data.expires.as_deref().and_then(convert::expires_from_string)),
        e_tag: Some(etag(&data.etag)),
        last_modified: Some(ts(v.last_modified_ms)),
        metadata: convert::metadata_to(&data.user_metadata),
        version_id: read_version_header(b.versioning, &v.version_id),
        tag_count: (!data.tags.is_empty()).then(|| i32::try_from(data.tags.len()).unwrap_or(i32::MAX)),
        parts_count,
        storage_class: (data.storage_class != "STANDARD").then(|| StorageClass::from(convert::storage_class(data))),
        replication_status: v.replication.header_value().map(|s| ReplicationStatus::from(s.to_owned())),
        server_side_encryption: convert::sse_of(data),
        checksum_crc32: cs.crc32,
        checksum_crc32c: cs.crc32c,
        checksum_crc64nvme: cs.crc64nvme,
        checksum_sha1: cs.sha1,
        checksum_sha256: cs.sha256,
        checksum_type: cs.checksum_type,
        ..Default::default()
    };
    if range.is_some() {
        return Ok(S3Response::with_status(out, StatusCode::PARTIAL_CONTENT));
    }
    Ok(S3Response::new(out))
}

pub(crate) async fn head_object(r: &Region, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let customer = customer_key_of!(input)?;
    let (b, v) = resolve(r, &input.bucket, &input.key, input.version_id.as_deref())?;
    let Some(data) = v.object() else {
        return Err(to_s3(CoreError::NoSuchKey { delete_marker: None }));
    };
    // HEAD opens no bytes, but checks an SSE-C key as GET does (S3 answers HEAD of an SSE-C
    // object without its key with 400).
    r.open_key(data.encryption.as_ref(), customer.as_ref()).s3()?;
    read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )
    .check(&data.etag, v.last_modified_ms)
    .s3()?;
    let (range, parts_count) = byte_range(&v, input.range.as_ref(), input.part_number)?;
    let (start, end) = range.clone().map_or((0, data.size), |r| (r.start, r.end));
    let cs = read_checksum(data, range.is_none(), input.part_number, input.checksum_mode.as_ref());
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    let out = HeadObjectOutput {
        accept_ranges: Some("bytes".to_owned()),
        sse_customer_algorithm,
        sse_customer_key_md5,
        content_length: Some(i64::try_from(end - start).unwrap_or(i64::MAX)),
        content_range: range.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), data.size)),
        content_type: input.response_content_type.or_else(|| Some(data.content_type_or_default().to_owned())),
        content_encoding: input.response_content_encoding.or_else(|| data.content_encoding.clone()),
        content_disposition: input.response_content_disposition.or_else(|| data.content_disposition.clone()),
        content_language: input.response_content_language.or_else(|| data.content_language.clone()),
        cache_control: input.response_cache_control.or_else(|| data.cache_control.clone()),
        expires: input.response_expires.or_else(|| data.expires.as_deref().and_then(convert::expires_from_string)),
        e_tag: Some(etag(&data.etag)),
        last_modified: Some(ts(v.last_modified_ms)),
        metadata: convert::metadata_to(&data.user_metadata),
        version_id: read_version_header(b.versioning, &v.version_id),
        parts_count,
        storage_class: (data.storage_class != "STANDARD").then(|| StorageClass::from(convert::storage_class(data))),
        replication_status: v.replication.header_value().map(|s| ReplicationStatus::from(s.to_owned())),
        server_side_encryption: convert::sse_of(data),
        checksum_crc32: cs.crc32,
        checksum_crc32c: cs.crc32c,
        checksum_crc64nvme: cs.crc64nvme,
        checksum_sha1: cs.sha1,
        checksum_sha256: cs.sha256,
        checksum_type: cs.checksum_type,
        ..Default::default()
    };
    if range.is_some() {
        return Ok(S3Response::with_status(out, StatusCode::PARTIAL_CONTENT));
    }
    Ok(S3Response::new(out))
}

/// The S3 error of a failed copy: a failed copy-source precondition is 412 even when it is
/// If-None-Match.
pub(crate) fn copy_error(e: CoreError) -> S3Error {
    match e {
        CoreError::NotModified => to_s3(CoreError::PreconditionFailed),
        other => to_s3(other),
    }
}

/// Splits a CopySource into (bucket, key, version).
pub(crate) fn copy_source(src: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match src {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_ref().map(ToString::to_string)))
        }
        _ => Err(s3_error!(NotImplemented, "access point copy sources are not supported")),
    }
}

pub(crate) async fn copy_object(r: &Region, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let (sb, sk, sv) = copy_source(&input.copy_source)?;
    r.bucket(&input.bucket).s3()?;
    write_features_of!(input).check()?;
    let source_customer = customer_key_of!(copy_source input)?;
    let customer = customer_key_of!(input)?;
    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if let Some(d) = &input.metadata_directive
        && d.as_str() != MetadataDirective::REPLACE
        && d.as_str() != MetadataDirective::COPY
    {
        return Err(s3_error!(InvalidArgument, "Unknown metadata directive."));
    }
    let changes_encryption = input.server_side_encryption.is_some() || customer.is_some();
    if sb == input.bucket
        && sk == input.key
        && sv.is_none()
        && !replace
        && input.storage_class.is_none()
        && !changes_encryption
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let meta = replace.then(|| convert::object_meta_of!(input));
    let tags = match input.tagging_directive.as_ref().map(TaggingDirective::as_str) {
        Some("REPLACE") => Some(match &input.tagging {
            Some(t) => parse_tagging_header(t)?,
            None => Vec::new(),
        }),
        _ => None,
    };
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    );
    let algorithm = input.checksum_algorithm.as_ref().and_then(convert::checksum_alg);
    let source = CopySourceRef { bucket: &sb, key: &sk, version: sv.as_deref(), customer: source_customer.as_ref() };
    let (source_version, put) = r
        .copy_object(
            source,
            &conditions,
            (&input.bucket, &input.key),
            meta,
            tags,
            algorithm,
            input.server_side_encryption.as_ref().map(|s| s.as_str()),
            customer.as_ref(),
        )
        .await
        .map_err(copy_error)?;
    let data = put.record.object().cloned().unwrap_or_default();
    let cs = ChecksumFields::of(data.checksum.as_ref());
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    let out = CopyObjectOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&data.etag)),
            last_modified: Some(ts(put.record.last_modified_ms)),
            checksum_crc32: cs.crc32,
            checksum_crc32c: cs.crc32c,
            checksum_crc64nvme: cs.crc64nvme,
            checksum_sha1: cs.sha1,
            checksum_sha256: cs.sha256,
            checksum_type: cs.checksum_type,
        }),
        copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
        version_id: write_version_header(put.versioning, &put.record.version_id),
        server_side_encryption: convert::sse_of(&data),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

pub(crate) async fn delete_object(
    r: &Region,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    let res = r.delete_object(&input.bucket, &input.key, input.version_id.as_deref()).await.s3()?;
    let out = DeleteObjectOutput {
        delete_marker: res.delete_marker.then_some(true),
        version_id: res.version_id.map(|v| v.as_str().to_owned()),
        ..Default::default()
    };
    Ok(S3Response::with_status(out, StatusCode::NO_CONTENT))
}

pub(crate) async fn delete_objects(
    r: &Region,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let bucket = r.bucket(&input.bucket).s3()?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects {
        let version = obj.version_id.clone();
        let result = r.delete_object(&input.bucket, &obj.key, version.as_deref()).await.and_then(|res| {
            // VER-17: an unknown VersionId is an Error entry, not a Deleted one.
            if res.found || bucket.versioning == VersioningState::Unversioned {
                Ok(res)
            } else {
                Err(CoreError::NoSuchVersion)
            }
        });
        match result {
            Ok(res) => {
                if quiet {
                    continue;
                }
                // VER-17: a new marker reports DeleteMarkerVersionId; a removed marker reports both.
                let (version_id, dm_version) = match (&version, res.delete_marker) {
                    (None, true) => (None, res.version_id.map(|v| v.as_str().to_owned())),
                    (Some(v), true) => (Some(v.clone()), Some(v.clone())),
                    (Some(v), false) => (Some(v.clone()), None),
                    (None, false) => (None, None),
                };
                deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id,
                    delete_marker: res.delete_marker.then_some(true),
                    delete_marker_version_id: dm_version,
                });
            }
            Err(e) => {
                let s3: S3Error = to_s3(e);
                errors.push(Error {
                    code: Some(s3.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: s3.message().map(str::to_owned),
                    version_id: version,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}

/// Tagging addresses the current version; a current delete marker is 405 there (VER-14).
fn tagging_target(
    r: &Region,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<(xregion_types::BucketRecord, VersionRecord)> {
    r.get_object(bucket, key, version).map_err(|e| match e {
        CoreError::NoSuchKey { delete_marker: Some(version_id) } => {
            to_s3(CoreError::DeleteMarkerNotAllowed { version_id, last_modified_ms: 0 })
        }
        other => to_s3(other),
    })
}

pub(crate) async fn put_object_tagging(
    r: &Region,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let (b, v) = tagging_target(r, &input.bucket, &input.key, input.version_id.as_deref())?;
    let tags = tags_from(&input.tagging.tag_set);
    let vid = r.set_object_tags(&input.bucket, &input.key, Some(v.version_id.as_str()), tags).await.s3()?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id: read_version_header(b.versioning, &vid) }))
}

pub(crate) async fn get_object_tagging(
    r: &Region,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    let (b, v) = tagging_target(r, &input.bucket, &input.key, input.version_id.as_deref())?;
    let tags = v.object().map(|d| tags_to(&d.tags)).unwrap_or_default();
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tags,
        version_id: read_version_header(b.versioning, &v.version_id),
    }))
}

pub(crate) async fn delete_object_tagging(
    r: &Region,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    let (b, v) = tagging_target(r, &input.bucket, &input.key, input.version_id.as_deref())?;
    let vid = r.set_object_tags(&input.bucket, &input.key, Some(v.version_id.as_str()), Vec::new()).await.s3()?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput { version_id: read_version_header(b.versioning, &vid) },
        StatusCode::NO_CONTENT,
    ))
}

/// Makes a `Send` stream `Sync` (s3s bodies must be) without locking: `Mutex::get_mut`
/// needs only `&mut self`, which polling already has.
pub(crate) struct SyncStream<S> {
    inner: std::sync::Mutex<S>,
}

impl<S> SyncStream<S> {
    pub(crate) fn new(s: S) -> Self {
        Self { inner: std::sync::Mutex::new(s) }
    }
}

impl<S: futures::Stream + Unpin> futures::Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<S::Item>> {
        let this = self.get_mut();
        match this.inner.get_mut() {
            Ok(s) => std::pin::Pin::new(s).poll_next(cx),
            Err(poisoned) => std::pin::Pin::new(poisoned.into_inner()).poll_next(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_over_five_gib_is_entity_too_large() {
        let mut h = HeaderMap::new();
        assert_eq!(checked_put_len(&h, Some(10)).unwrap(), Some(10));
        assert_eq!(checked_put_len(&h, Some(5 * 1024 * 1024 * 1024)).unwrap(), Some(MAX_PUT_SIZE));
        let err = checked_put_len(&h, Some(5 * 1024 * 1024 * 1024 + 1)).unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::EntityTooLarge);
        h.insert("x-amz-decoded-content-length", http::HeaderValue::from_static("6000000000"));
        assert!(checked_put_len(&h, Some(100)).is_err());
        // Replicas of multipart objects may be larger than 5 GiB.
        assert_eq!(declared_len(&h, Some(100)), Some(6_000_000_000));
    }
}
