//! Listing: ListObjects (v1, v2), ListObjectVersions. Range scans happen in `xregion-meta`;
//! this file validates parameters, pages, and applies `encoding-type=url`.

use base64::Engine as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
use xregion_meta::{ListObjectsQuery, ListVersionsQuery};
use xregion_types::{VersionId, VersionKind};

use crate::convert::{etag, storage_class, ts};
use crate::error::IntoS3;

const MAX_KEYS: usize = 1000;

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

/// `encoding-type`: only `url` is valid (VER-20).
fn url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(crate::error::with_fields(
            s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request"),
            &[("ArgumentName", "encoding-type"), ("ArgumentValue", other)],
        )),
    }
}

fn enc(s: &str, url: bool) -> String {
    if url { urlencoding::encode(s).replace("%2F", "/") } else { s.to_owned() }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> S3Result<T> + Send + 'static) -> S3Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| s3_error!(InternalError, "listing task failed: {}", e))?
}

fn object_entry(key: &str, v: &xregion_types::VersionRecord, url: bool) -> Option<Object> {
    let d = v.object()?;
    Some(Object {
        key: Some(enc(key, url)),
        e_tag: Some(etag(&d.etag)),
        last_modified: Some(ts(v.last_modified_ms)),
        size: Some(i64::try_from(d.size).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from(storage_class(d))),
        owner: Some(super::owner()),
        checksum_algorithm: d.checksum.as_ref().map(|c| vec![ChecksumAlgorithm::from(c.algorithm.as_str().to_owned())]),
        checksum_type: d.checksum.as_ref().map(|c| {
            ChecksumType::from_static(if c.full_object { ChecksumType::FULL_OBJECT } else { ChecksumType::COMPOSITE })
        }),
        ..Default::default()
    })
}

fn prefixes(list: &[String], url: bool) -> Option<Vec<CommonPrefix>> {
    Some(list.iter().map(|p| CommonPrefix { prefix: Some(enc(p, url)) }).collect())
}

pub(crate) async fn list_objects(
    r: &Region,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let url = url_encoding(input.encoding_type.as_ref())?;
    let b = r.bucket(&input.bucket).s3()?;
    let q = ListObjectsQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        start_after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let has_delimiter = q.delimiter.is_some();
    let meta = r.meta().clone();
    let page = blocking(move || meta.list_objects(b.id, &q).s3()).await?;
    let contents = page.objects.iter().filter_map(|(k, v)| object_entry(k, v, url)).collect();
    let out = ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(&input.prefix.unwrap_or_default(), url)),
        marker: Some(enc(&input.marker.unwrap_or_default(), url)),
        max_keys: Some(input.max_keys.unwrap_or(1000)),
        is_truncated: Some(page.is_truncated),
        contents: Some(contents),
        common_prefixes: prefixes(&page.common_prefixes, url),
        delimiter: input.delimiter.map(|d| enc(&d, url)),
        // NextMarker is returned only with a delimiter (AWS); clients use the last key otherwise.
        next_marker: if page.is_truncated && has_delimiter { page.next_marker.map(|m| enc(&m, url)) } else { None },
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

pub(crate) async fn list_objects_v2(
    r: &Region,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let url = url_encoding(input.encoding_type.as_ref())?;
    let b = r.bucket(&input.bucket).s3()?;
    let start_after = match &input.continuation_token {
        Some(t) => Some(decode_token(t)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let q = ListObjectsQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        start_after,
        max_keys: max_keys(input.max_keys)?,
    };
    let meta = r.meta().clone();
    let page = blocking(move || meta.list_objects(b.id, &q).s3()).await?;
    let contents: Vec<Object> = page
        .objects
        .iter()
        .filter_map(|(k, v)| {
            let mut o = object_entry(k, v, url)?;
            if input.fetch_owner != Some(true) {
                o.owner = None;
            }
            Some(o)
        })
        .collect();
    let key_count = contents.len() + page.common_prefixes.len();
    let out = ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(&input.prefix.unwrap_or_default(), url)),
        max_keys: Some(input.max_keys.unwrap_or(1000)),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        is_truncated: Some(page.is_truncated),
        next_continuation_token: if page.is_truncated { page.next_marker.as_deref().map(encode_token) } else { None },
        contents: Some(contents),
        common_prefixes: prefixes(&page.common_prefixes, url),
        delimiter: input.delimiter.map(|d| enc(&d, url)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|s| enc(&s, url)),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(t: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

pub(crate) async fn list_object_versions(
    r: &Region,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let url = url_encoding(input.encoding_type.as_ref())?;
    let key_marker = input.key_marker.clone().filter(|k| !k.is_empty());
    let vid_marker = input.version_id_marker.clone().filter(|v| !v.is_empty());
    if vid_marker.is_some() && key_marker.is_none() {
        let err = s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker.");
        return Err(crate::error::with_fields(
            err,
            &[("ArgumentName", "version-id-marker"), ("ArgumentValue", vid_marker.as_deref().unwrap_or_default())],
        ));
    }
    let version_id_marker = match &vid_marker {
        Some(v) => Some(VersionId::parse(v).s3()?),
        None => None,
    };
    let b = r.bucket(&input.bucket).s3()?;
    let q = ListVersionsQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker,
        version_id_marker,
        max_keys: max_keys(input.max_keys)?,
    };
    let meta = r.meta().clone();
    let page = blocking(move || meta.list_versions(b.id, &q).s3()).await?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for e in &page.entries {
        match &e.record.kind {
            VersionKind::Object(d) => versions.push(ObjectVersion {
                key: Some(enc(&e.key, url)),
                version_id: Some(e.record.version_id.as_str().to_owned()),
                is_latest: Some(e.is_latest),
                last_modified: Some(ts(e.record.last_modified_ms)),
                e_tag: Some(etag(&d.etag)),
                size: Some(i64::try_from(d.size).unwrap_or(i64::MAX)),
                storage_class: Some(ObjectVersionStorageClass::from(storage_class(d))),
                owner: Some(super::owner()),
                checksum_algorithm: d
                    .checksum
                    .as_ref()
                    .map(|c| vec![ChecksumAlgorithm::from(c.algorithm.as_str().to_owned())]),
                ..Default::default()
            }),
            VersionKind::DeleteMarker => markers.push(DeleteMarkerEntry {
                key: Some(enc(&e.key, url)),
                version_id: Some(e.record.version_id.as_str().to_owned()),
                is_latest: Some(e.is_latest),
                last_modified: Some(ts(e.record.last_modified_ms)),
                owner: Some(super::owner()),
            }),
        }
    }
    let out = ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(&input.prefix.unwrap_or_default(), url)),
        key_marker: Some(enc(&input.key_marker.unwrap_or_default(), url)),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(input.max_keys.unwrap_or(1000)),
        is_truncated: Some(page.is_truncated),
        next_key_marker: page.next_key_marker.map(|k| enc(&k, url)),
        next_version_id_marker: page.next_version_id_marker.map(|v| v.as_str().to_owned()),
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: prefixes(&page.common_prefixes, url),
        delimiter: input.delimiter.map(|d| enc(&d, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(out))
}
