//! Multipart uploads.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
use xregion_core::copy::CopySourceRef;
use xregion_core::multipart::UploadChecksum;
use xregion_meta::ListUploadsQuery;

use super::object::{
    body_of, checked_put_len, checksum_request_of, claimed_value, copy_error, copy_source, hand_off_upload,
    read_conditions,
};
use super::unsupported::write_features_of;
use super::write_version_header;
use crate::convert::{self, ChecksumFields, customer_key_of, etag, parse_tagging_header, ts};
use crate::error::IntoS3;

pub(crate) async fn create_multipart_upload(
    r: &Region,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    r.bucket(&input.bucket).s3()?;
    write_features_of!(input).check()?;
    let mut meta = convert::object_meta_of!(input);
    if let Some(t) = &input.tagging {
        meta.tags = parse_tagging_header(t)?;
    }
    let full_object = input.checksum_type.as_ref().is_some_and(|t| t.as_str() == ChecksumType::FULL_OBJECT);
    let alg = match &input.checksum_algorithm {
        Some(a) => Some(
            convert::checksum_alg(a)
                .ok_or_else(|| s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported."))?,
        ),
        None => None,
    };
    if full_object && alg.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        ));
    }
    let checksum = alg.map(|algorithm| UploadChecksum { algorithm, full_object });
    let sse = input.server_side_encryption.as_ref().map(|s| s.as_str());
    let customer = customer_key_of!(input)?;
    let up = r.create_upload(&input.bucket, &input.key, meta, checksum, sse, customer.as_ref()).await.s3()?;
    let checksum_type = upload_checksum_type(&up);
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    Ok(S3Response::new(CreateMultipartUploadOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(up.upload_id),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type,
        server_side_encryption: convert::sse_of(&up.template),
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(r: &Region, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let part_number = Region::check_part_number(req.input.part_number).s3()?;
    let upload = match r.upload(&req.input.bucket, &req.input.key, &req.input.upload_id) {
        Ok(upload) => upload,
        // Perhaps an upload to another region's bucket: the edge may forward the part.
        Err(e) => return Err(hand_off_upload!(e, req)),
    };
    let S3Request { input, headers, trailing_headers, .. } = req;
    let customer = customer_key_of!(input)?;
    let key = r.upload_key(&upload, customer.as_ref()).s3()?;
    let mut cs = checksum_request_of!(&headers, input)?;
    match (upload.checksum_algorithm, cs.algorithm) {
        // A part checksum of another algorithm would make the composite checksum wrong.
        (Some(expected), Some(actual)) if expected != actual => {
            return Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                expected.as_str().to_ascii_lowercase(),
                actual.as_str().to_ascii_lowercase()
            ));
        }
        (expected, None) => cs.algorithm = expected,
        _ => {}
    }
    let blob = r
        .write_blob(body_of(input.body), cs.algorithm, checked_put_len(&headers, input.content_length)?, key.as_deref())
        .await
        .s3()?;
    if let Some(md5) = &input.content_md5 {
        use base64::Engine as _;
        let ok = base64::engine::general_purpose::STANDARD
            .decode(md5.trim())
            .is_ok_and(|d| blob.md5.is_some_and(|m| d == m));
        if !ok {
            r.blobs().delete(&blob.segment).await.ok();
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
    }
    let expected = claimed_value(&cs, trailing_headers.as_ref());
    let part = r.commit_part(&upload, part_number, blob, expected.as_deref()).await.s3()?;
    let f = ChecksumFields::of(part.checksum.as_ref());
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        sse_customer_algorithm,
        sse_customer_key_md5,
        server_side_encryption: convert::sse_of(&upload.template),
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        ..Default::default()
    }))
}

pub(crate) async fn upload_part_copy(
    r: &Region,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let part_number = Region::check_part_number(input.part_number).s3()?;
    let upload = r.upload(&input.bucket, &input.key, &input.upload_id).s3()?;
    let (sb, sk, sv) = copy_source(&input.copy_source)?;
    let customer = customer_key_of!(input)?;
    let source_customer = customer_key_of!(copy_source input)?;
    let range = input.copy_source_range.as_deref().map(parse_copy_range).transpose()?;
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    );
    let source = CopySourceRef { bucket: &sb, key: &sk, version: sv.as_deref(), customer: source_customer.as_ref() };
    let (source_version, part) =
        r.copy_part(&upload, part_number, source, range, &conditions, customer.as_ref()).await.map_err(copy_error)?;
    let (sse_customer_algorithm, sse_customer_key_md5) = convert::sse_customer_of(customer.as_ref());
    Ok(S3Response::new(UploadPartCopyOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(ts(part.last_modified_ms)),
            ..Default::default()
        }),
        copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
        server_side_encryption: convert::sse_of(&upload.template),
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last` (inclusive, both required): `(first, last)`.
/// Whether it lies inside the source is checked when the source is read (`InvalidRange`).
fn parse_copy_range(s: &str) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (a, b) = s.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok((first, last))
}

pub(crate) async fn complete_multipart_upload(
    r: &Region,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let parts: Vec<(u32, String)> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let n = p.part_number.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
            (n, p.e_tag.map(|e| e.value().to_owned()).unwrap_or_default())
        })
        .collect();
    if parts.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    // A FULL_OBJECT upload's client may give the whole object's CRC; it is checked.
    let expected = [&input.checksum_crc32, &input.checksum_crc32c, &input.checksum_crc64nvme]
        .into_iter()
        .find_map(|c| c.as_deref());
    let res = r.complete_upload(&input.bucket, &input.key, &input.upload_id, &parts, expected).await.s3()?;
    let data = res.record.object().cloned().unwrap_or_default();
    let f = ChecksumFields::of(data.checksum.as_ref());
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(etag(&data.etag)),
        version_id: write_version_header(res.versioning, &res.record.version_id),
        server_side_encryption: convert::sse_of(&data),
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        checksum_type: f.checksum_type,
        ..Default::default()
    }))
}

pub(crate) async fn abort_multipart_upload(
    r: &Region,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    r.abort_upload(&input.bucket, &input.key, &input.upload_id).await.s3()?;
    Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
}

pub(crate) async fn list_parts(r: &Region, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let upload = r.upload(&input.bucket, &input.key, &input.upload_id).s3()?;
    let marker = u32::try_from(input.part_number_marker.unwrap_or(0)).unwrap_or(0);
    let max = usize::try_from(input.max_parts.unwrap_or(1000)).unwrap_or(1000).min(1000);
    let (parts, truncated) = r.meta().list_parts(&upload.upload_id, marker, max).s3()?;
    let next = parts.last().map(|p| i32::try_from(p.part_number).unwrap_or(0));
    let list = parts
        .into_iter()
        .map(|p| {
            let f = ChecksumFields::of(p.checksum.as_ref());
            Part {
                part_number: i32::try_from(p.part_number).ok(),
                e_tag: Some(etag(&p.etag)),
                size: i64::try_from(p.size).ok(),
                last_modified: Some(ts(p.last_modified_ms)),
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
            }
        })
        .collect();
    let checksum_type = upload_checksum_type(&upload);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        parts: Some(list),
        owner: Some(super::owner()),
        initiator: Some(Initiator { display_name: Some("xregion".into()), id: super::owner().id }),
        storage_class: Some(StorageClass::from(upload.template.storage_class.clone())),
        checksum_algorithm: upload.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
        checksum_type,
        ..Default::default()
    }))
}

/// An upload's `ChecksumType`, if it has an additional checksum.
fn upload_checksum_type(upload: &xregion_meta::UploadRecord) -> Option<ChecksumType> {
    UploadChecksum::of(upload).map(|c| match c.full_object {
        true => ChecksumType::from_static(ChecksumType::FULL_OBJECT),
        false => ChecksumType::from_static(ChecksumType::COMPOSITE),
    })
}

pub(crate) async fn list_multipart_uploads(
    r: &Region,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let b = r.bucket(&input.bucket).s3()?;
    let q = ListUploadsQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker: input.key_marker.clone().filter(|k| !k.is_empty()),
        upload_id_marker: input.upload_id_marker.clone().filter(|k| !k.is_empty()),
        max_uploads: usize::try_from(input.max_uploads.unwrap_or(1000)).unwrap_or(1000).min(1000),
    };
    let page = r.meta().list_uploads(b.id, &q).s3()?;
    let uploads = page
        .uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.upload_id),
            initiated: Some(ts(u.initiated_ms)),
            owner: Some(super::owner()),
            initiator: Some(Initiator { display_name: Some("xregion".into()), id: super::owner().id }),
            storage_class: Some(StorageClass::from(u.template.storage_class)),
            checksum_algorithm: u.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(i32::try_from(q.max_uploads).unwrap_or(1000)),
        is_truncated: Some(page.is_truncated),
        next_key_marker: page.next_key_marker,
        next_upload_id_marker: page.next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: Some(page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
