//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::CoreError;
use xregion_core::Region;
use xregion_core::buckets::BucketLocation;
use xregion_types::VersioningState;

use crate::convert::{tags_from, tags_to, ts};
use crate::error::{IntoS3, to_s3};

/// ListBuckets: every bucket of the deployment with its region (`BucketRegion`); a peer asking
/// with `x-xregion-local-only` gets this region's buckets only.
pub(crate) async fn list_buckets(
    r: &Region,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let list: Vec<Bucket> = if req.headers.contains_key(LOCAL_ONLY_HEADER) {
        r.list_buckets()
            .s3()?
            .into_iter()
            .map(|b| Bucket {
                bucket_region: Some(r.name().to_owned()),
                creation_date: Some(ts(b.created_ms)),
                name: Some(b.name.as_str().to_owned()),
            })
            .collect()
    } else {
        r.list_all_buckets()
            .await
            .s3()?
            .into_iter()
            .map(|b| Bucket {
                bucket_region: Some(b.region),
                creation_date: Some(ts(b.created_ms)),
                name: Some(b.name),
            })
            .collect()
    };
    Ok(S3Response::new(ListBucketsOutput { buckets: Some(list), owner: Some(super::owner()), ..Default::default() }))
}

pub(crate) async fn create_bucket(
    r: &Region,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    if input.object_lock_enabled_for_bucket == Some(true) {
        return Err(s3_error!(NotImplemented, "Object Lock is not supported yet"));
    }
    let rec = r.create_bucket(&input.bucket, location.as_deref()).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", rec.name)) }))
}

/// Header a peer region sends to get an answer from local state only (no lookup loops).
const LOCAL_ONLY_HEADER: &str = "x-xregion-local-only";

pub(crate) async fn head_bucket(r: &Region, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    let location = if req.headers.contains_key(LOCAL_ONLY_HEADER) {
        BucketLocation::Local(r.bucket(&req.input.bucket).s3()?)
    } else {
        r.locate_bucket(&req.input.bucket).await.s3()?
    };
    match location {
        BucketLocation::Local(_) => {
            Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(r.name().to_owned()), ..Default::default() }))
        }
        BucketLocation::Remote(region) => Err(to_s3(CoreError::WrongRegion { region })),
    }
}

pub(crate) async fn get_bucket_location(
    r: &Region,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let region = match r.locate_bucket(&req.input.bucket).await.s3()? {
        BucketLocation::Local(_) => r.name().to_owned(),
        BucketLocation::Remote(region) => region,
    };
    // AWS reports us-east-1 as an empty LocationConstraint.
    let location_constraint = (region != "us-east-1").then(|| BucketLocationConstraint::from(region));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

pub(crate) async fn delete_bucket(
    r: &Region,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    r.delete_bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketOutput {}, http::StatusCode::NO_CONTENT))
}

pub(crate) async fn put_bucket_versioning(
    r: &Region,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let cfg = req.input.versioning_configuration;
    if cfg.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
    }
    // VER-4: missing Status → IllegalVersioningConfigurationException; other values → MalformedXML.
    let state = match cfg.status.as_ref().map(BucketVersioningStatus::as_str) {
        None => {
            return Err(s3_error!(IllegalVersioningConfigurationException, "The Versioning element must be specified"));
        }
        Some("Enabled") => VersioningState::Enabled,
        Some("Suspended") => VersioningState::Suspended,
        Some(_) => {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
    };
    r.bucket(&req.input.bucket).s3()?;
    r.set_versioning(&req.input.bucket, state).await.s3()?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub(crate) async fn get_bucket_versioning(
    r: &Region,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let b = r.bucket(&req.input.bucket).s3()?;
    // VER-3: no Status element for a never-configured bucket.
    let status = match b.versioning {
        VersioningState::Unversioned => None,
        VersioningState::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        VersioningState::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    Ok(S3Response::new(GetBucketVersioningOutput { mfa_delete: None, status }))
}

pub(crate) async fn put_bucket_tagging(
    r: &Region,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let tags = tags_from(&req.input.tagging.tag_set);
    r.set_bucket_tags(&req.input.bucket, tags).await.s3()?;
    Ok(S3Response::with_status(PutBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}

pub(crate) async fn get_bucket_tagging(
    r: &Region,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let b = r.bucket(&req.input.bucket).s3()?;
    if b.tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tags_to(&b.tags) }))
}

pub(crate) async fn delete_bucket_tagging(
    r: &Region,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    r.set_bucket_tags(&req.input.bucket, Vec::new()).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}
