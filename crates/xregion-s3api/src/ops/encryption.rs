//! Bucket default encryption (Put/Get/DeleteBucketEncryption): one rule, SSE-S3 (`AES256`).
//! What it does to writes is in `xregion_core::encryption`.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::{AES256, CoreError, Region};
use xregion_types::{BucketEncryption, InvalidInput};

use crate::error::IntoS3;
use crate::ops::replication::require_body_checksum;

pub(crate) async fn put_bucket_encryption(
    r: &Region,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    require_body_checksum(&req.headers)?;
    let rule = rule_from(&req.input.server_side_encryption_configuration)?;
    r.set_bucket_encryption(&req.input.bucket, Some(rule)).await.s3()?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(crate) async fn get_bucket_encryption(
    r: &Region,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let rule = r.bucket_encryption(&req.input.bucket).s3()?;
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            kms_master_key_id: None,
            sse_algorithm: ServerSideEncryption::from(rule.sse_algorithm),
        }),
        bucket_key_enabled: rule.bucket_key_enabled,
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration { rules: vec![rule] }),
    }))
}

pub(crate) async fn delete_bucket_encryption(
    r: &Region,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    r.set_bucket_encryption(&req.input.bucket, None).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketEncryptionOutput {}, http::StatusCode::NO_CONTENT))
}

/// The one rule of a configuration, as xregion stores it. A KMS key with `AES256` is S3's
/// `InvalidArgument`; KMS itself is `501` (no KMS here).
fn rule_from(config: &ServerSideEncryptionConfiguration) -> S3Result<BucketEncryption> {
    let malformed = || {
        CoreError::Invalid(InvalidInput::new(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        ))
    };
    let [rule] = config.rules.as_slice() else {
        return Err(malformed()).s3();
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(malformed()).s3();
    };
    let algorithm = default.sse_algorithm.as_str();
    xregion_core::check_sse_algorithm(algorithm).s3()?;
    if algorithm == AES256 && default.kms_master_key_id.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
        ));
    }
    Ok(BucketEncryption { sse_algorithm: algorithm.to_owned(), bucket_key_enabled: rule.bucket_key_enabled })
}
