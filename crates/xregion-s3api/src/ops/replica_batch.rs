//! `POST /_xregion/replicate/<bucket>`: many replica versions and delete markers in one request
//! (wire format: `xregion_core::replica_batch`). Each entry is authorized like its
//! single-object replica write (`s3:ReplicateObject` / `s3:ReplicateDelete`, design invariant
//! 5), applied through the same core call, and answered on its own line; the entries run
//! concurrently, so their metadata commits share the writer's group commit.

use bytes::Bytes;
use futures::StreamExt as _;
use hyper::StatusCode;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
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
    let req = &req;
    // The bucket is looked up once for the whole batch. If it is missing or not versioned,
    // every entry that passes its own checks gets that error, as it would alone.
    let b = &r.replica_bucket(bucket).s3().map_err(|e| entry_error(&e));
    let results = futures::future::join_all(entries.into_iter().map(|(entry, bytes)| async move {
        match apply(r, auth, bucket, b, req, entry, bytes).await {
            Ok(()) => EntryResult::Ok,
            Err(e) => e,
        }
    }))
    .await;
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

async fn apply(
    r: &Region,
    auth: &ReplicaAuth,
    bucket: &str,
    b: &Result<BucketRecord, EntryResult>,
    req: &S3Request<Body>,
    entry: replica_batch::BatchEntry,
    bytes: Bytes,
) -> Result<(), EntryResult> {
    let failed = |e: S3Error| entry_error(&e);
    match entry.replica_put(bucket).s3().map_err(failed)? {
        Some(put) => {
            auth.check(req, "s3:ReplicateObject", bucket, &entry.key).map_err(failed)?;
            let b = b.as_ref().map_err(Clone::clone)?;
            let len = bytes.len() as u64;
            let body = futures::stream::iter([Ok::<_, xregion_core::objects::BodyError>(bytes)]).boxed();
            r.put_replica_into(b, put, body, Some(len)).await.s3().map_err(failed)?;
        }
        None => {
            auth.check(req, "s3:ReplicateDelete", bucket, &entry.key).map_err(failed)?;
            let b = b.as_ref().map_err(Clone::clone)?;
            let version_id = entry.version_id().s3().map_err(failed)?;
            r.delete_marker_replica_into(b, &entry.key, version_id, entry.last_modified_ms)
                .await
                .s3()
                .map_err(failed)?;
        }
    }
    Ok(())
}
