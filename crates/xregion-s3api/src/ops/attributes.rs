//! GetObjectAttributes: in one answer, what HeadObject tells of a version (ETag, checksum, size,
//! storage class) and how many parts a multipart object has. The version is resolved as for
//! HEAD (VER-12, VER-13: a current delete marker is `404` with `x-amz-delete-marker`, one named
//! by id `405`).
//!
//! `ObjectParts` carries `PartsCount`, and, as on S3, lists the parts (`Parts`, with `MaxParts`
//! and `PartNumberMarker` paging) of an object uploaded with an additional checksum, each part
//! with its size and checksum (`ObjectData::part_checksums`, kept since stored format 8; an
//! object completed before has none to list).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::{CoreError, Region};

use super::read_version_header;
use crate::convert::{self, ChecksumFields, customer_key_of, etag, ts};
use crate::error::{IntoS3, to_s3};

/// The attributes a request may ask for (`x-amz-object-attributes`).
const ATTRIBUTES: [&str; 5] = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"];

pub(crate) async fn get_object_attributes(
    r: &Region,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let customer = customer_key_of!(input)?;
    // One header, a comma-separated list: botocore joins the names with "," and s3s splits on
    // ", " only.
    let asked: Vec<&str> = input
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if asked.is_empty() {
        return Err(s3_error!(InvalidArgument, "x-amz-object-attributes must name at least one attribute"));
    }
    if let Some(unknown) = asked.iter().find(|a| !ATTRIBUTES.contains(a)) {
        return Err(s3_error!(InvalidArgument, "Invalid attribute name specified: {}", unknown));
    }
    let wanted = |name: &str| asked.contains(&name);
    let (b, v) = r.get_object(&input.bucket, &input.key, input.version_id.as_deref()).s3()?;
    let Some(data) = v.object() else {
        return Err(to_s3(CoreError::NoSuchKey { delete_marker: None }));
    };
    // An SSE-C version's attributes need its key, as its HEAD does.
    r.open_key(data.encryption.as_ref(), customer.as_ref()).s3()?;
    let checksum = data.checksum.as_ref().filter(|_| wanted("Checksum")).map(|c| {
        // HEAD shows a composite checksum with its part count (`…-3`); this answer gives the
        // bare base64 digest (clients decode it as such) and the count in `ObjectParts`.
        let mut c = c.clone();
        if !c.full_object
            && let Some((digest, _parts)) = c.value.rsplit_once('-')
        {
            c.value = digest.to_owned();
        }
        let f = ChecksumFields::of(Some(&c));
        Checksum {
            checksum_crc32: f.crc32,
            checksum_crc32c: f.crc32c,
            checksum_crc64nvme: f.crc64nvme,
            checksum_sha1: f.sha1,
            checksum_sha256: f.sha256,
            checksum_type: f.checksum_type,
        }
    });
    let object_parts = match wanted("ObjectParts") && !data.part_sizes.is_empty() {
        true => Some(object_parts(data, input.max_parts, input.part_number_marker)?),
        false => None,
    };
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: wanted("ETag").then(|| etag(&data.etag)),
        checksum,
        object_parts,
        object_size: wanted("ObjectSize").then(|| i64::try_from(data.size).unwrap_or(i64::MAX)),
        storage_class: wanted("StorageClass").then(|| StorageClass::from(convert::storage_class(data))),
        last_modified: Some(ts(v.last_modified_ms)),
        version_id: read_version_header(b.versioning, &v.version_id),
        ..Default::default()
    }))
}

/// Most parts one answer lists (S3's default and limit for `MaxParts`).
const MAX_PARTS: i32 = 1000;

/// `ObjectParts` of a multipart version: its part count and, when it was uploaded with an
/// additional checksum, its parts after `marker` (at most `max_parts`), each with its size and
/// checksum, as S3 lists them.
fn object_parts(
    data: &xregion_types::ObjectData,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> S3Result<GetObjectAttributesParts> {
    let total = i32::try_from(data.part_sizes.len()).unwrap_or(i32::MAX);
    let mut parts = GetObjectAttributesParts { total_parts_count: Some(total), ..Default::default() };
    let Some(checksum) = data.checksum.as_ref().filter(|_| data.part_checksums.len() == data.part_sizes.len()) else {
        return Ok(parts);
    };
    let max = max_parts.unwrap_or(MAX_PARTS);
    let marker = marker.unwrap_or(0);
    if max < 0 || marker < 0 {
        return Err(s3_error!(InvalidArgument, "max-parts and part-number-marker must not be negative"));
    }
    let first = usize::try_from(marker).unwrap_or(usize::MAX);
    let listed: Vec<ObjectPart> = data
        .part_sizes
        .iter()
        .zip(&data.part_checksums)
        .enumerate()
        .skip(first)
        .take(usize::try_from(max.min(MAX_PARTS)).unwrap_or(0))
        .map(|(i, (size, value))| {
            let f = ChecksumFields::of(Some(&xregion_types::ChecksumValue {
                algorithm: checksum.algorithm,
                value: value.clone(),
                full_object: true,
            }));
            ObjectPart {
                part_number: i32::try_from(i + 1).ok(),
                size: i64::try_from(*size).ok(),
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
            }
        })
        .collect();
    let last = listed.last().and_then(|p| p.part_number).unwrap_or(marker);
    parts.is_truncated = Some(last < total);
    parts.max_parts = Some(max);
    parts.part_number_marker = Some(marker);
    parts.next_part_number_marker = Some(last);
    parts.parts = Some(listed);
    Ok(parts)
}
