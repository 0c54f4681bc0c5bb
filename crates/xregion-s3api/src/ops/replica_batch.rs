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
    let results = futures::future::join_all(entries.into_iter().map(|(entry, bytes)| async move {
        match apply(r, auth, bucket, req, entry, bytes).await {
            Ok(()) => EntryResult::Ok,
            Err(e) => EntryResult::Err {
                status: e.status_code().map_or(500, |s| s.as_u16()),
                code: e.code().as_str().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            },
        }
    }))
    .await;
    let mut resp = S3Response::with_status(Body::from(replica_batch::encode_results(&results)), StatusCode::OK);
    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    Ok(resp)
}

async fn apply(
    r: &Region,
    auth: &ReplicaAuth,
    bucket: &str,
    req: &S3Request<Body>,
    entry: replica_batch::BatchEntry,
    bytes: Bytes,
) -> Result<(), S3Error> {
    match entry.replica_put(bucket).s3()? {
        Some(put) => {
            auth.check(req, "s3:ReplicateObject", bucket, &entry.key)?;
            let len = bytes.len() as u64;
            let body = futures::stream::iter([Ok::<_, xregion_core::objects::BodyError>(bytes)]).boxed();
            r.put_replica(put, body, Some(len)).await.s3()?;
        }
        None => {
            auth.check(req, "s3:ReplicateDelete", bucket, &entry.key)?;
            let version_id = entry.version_id().s3()?;
            r.delete_marker_replica(bucket, &entry.key, version_id, entry.last_modified_ms).await.s3()?;
        }
    }
    Ok(())
}
