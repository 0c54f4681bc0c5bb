//! `POST /_xregion/replicate/<bucket>`: many replica versions and delete markers in one request
//! (wire format: `xregion_core::replica_batch`). Each entry is authorized like its
//! single-object replica write (`s3:ReplicateObject` / `s3:ReplicateDelete`, design invariant
//! 5), checked and stored as its single-object replica write would be, and answered on its own
//! line; the entries' metadata writes go to the writer together (`Region::put_replicas_into`),
//! in one round trip and one group commit, each still succeeding or failing alone.

use bytes::Bytes;
use hyper::StatusCode;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
use xregion_core::replica::ReplicaItem;
use xregion_core::replica_batch::{self, EntryResult, MAX_BATCH_BYTES};
use xregion_types::BucketRecord;

use super::replica::ReplicaAuth;
use crate::error::IntoS3;

/// Applies a batch to `bucket` and answers one result line per entry.
pub(crate) async fn replicate_batch(
    r: &Region,
    auth: &ReplicaAuth,
    bucket: &str,
    mut req: S3Request<Body>,
) -> S3Result<S3Response<Body>> {
    let body = req
        .input
        .store_all_limited(MAX_BATCH_BYTES)
        .await
        .map_err(|e| s3_error!(EntityTooLarge, "replica batch body: {}", e))?;
    let entries = replica_batch::decode(&body).s3()?;
    // The bucket is looked up once for the whole batch. If it is missing or not versioned,
    // every entry that passes its own checks gets that error, as it would alone.
    let b = r.replica_bucket(bucket).s3().map_err(|e| entry_error(&e));
    // Each entry is checked and authorized on its own; those that pass are written together.
    let mut results: Vec<Option<EntryResult>> = Vec::with_capacity(entries.len());
    let mut items = Vec::new();
    for (entry, bytes) in entries {
        match item(auth, bucket, &b, &req, entry, bytes) {
            Ok(item) => {
                items.push(item);
                results.push(None);
            }
            Err(e) => results.push(Some(e)),
        }
    }
    let written = match &b {
        Ok(b) => r.put_replicas_into(b, items).await,
        Err(_) => Vec::new(),
    };
    let mut written = written.into_iter().map(|w| match w.s3() {
        Ok(()) => EntryResult::Ok,
        Err(e) => entry_error(&e),
    });
    let lost = || EntryResult::Err { status: 500, code: "InternalError".into(), message: "lost a result".into() };
    let results: Vec<EntryResult> =
        results.into_iter().map(|r| r.unwrap_or_else(|| written.next().unwrap_or_else(lost))).collect();
    let mut resp = S3Response::with_status(Body::from(replica_batch::encode_results(&results)), StatusCode::OK);
    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// An entry's error line.
fn entry_error(e: &S3Error) -> EntryResult {
    EntryResult::Err {
        status: e.status_code().map_or(500, |s| s.as_u16()),
        code: e.code().as_str().to_owned(),
        message: e.message().unwrap_or_default().to_owned(),
    }
}

/// An entry as the core writes it, once its own checks and its authorization pass (and the
/// bucket was found).
fn item(
    auth: &ReplicaAuth,
    bucket: &str,
    b: &Result<BucketRecord, EntryResult>,
    req: &S3Request<Body>,
    entry: replica_batch::BatchEntry,
    bytes: Bytes,
) -> Result<ReplicaItem, EntryResult> {
    let failed = |e: S3Error| entry_error(&e);
    match entry.replica_put(bucket).s3().map_err(failed)? {
        Some(put) => {
            auth.check(req, "s3:ReplicateObject", bucket, &entry.key).map_err(failed)?;
            b.as_ref().map_err(Clone::clone)?;
            Ok(ReplicaItem::Object { put, bytes })
        }
        None => {
            auth.check(req, "s3:ReplicateDelete", bucket, &entry.key).map_err(failed)?;
            b.as_ref().map_err(Clone::clone)?;
            let version_id = entry.version_id().s3().map_err(failed)?;
            Ok(ReplicaItem::DeleteMarker { key: entry.key, version_id, last_modified_ms: entry.last_modified_ms })
        }
    }
}
