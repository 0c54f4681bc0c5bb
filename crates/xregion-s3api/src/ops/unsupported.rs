//! S3 features xregion does not implement: SSE-KMS (SSE-S3 and SSE-C are implemented, see
//! `xregion_core::encryption`), ACLs, Object Lock and website redirects. A request that asks
//! for one is refused before anything is read or written, so no object is ever stored without
//! a property its writer asked for, and no replica lacks one its source has (ELI-10, ELI-12:
//! ACLs, Object Lock settings and KMS keys would travel with a version; here none exists to
//! travel).
//!
//! Where AWS itself answers such a request on a bucket without the feature, we give AWS's
//! answer, so that tools which probe for them (Terraform, backup tools) carry on:
//!
//! * **ACLs** behave as on a bucket with Object Ownership "bucket owner enforced", AWS's
//!   default for new buckets since April 2023: a write may name no ACL or the canned
//!   `bucket-owner-full-control`; any other ACL, and every ACL write, is
//!   `400 AccessControlListNotSupported`; reading an ACL shows the owner with `FULL_CONTROL`.
//! * **Object Lock** behaves as on a bucket created without it: lock headers on a write are
//!   `400 InvalidRequest` "Bucket is missing ObjectLockConfiguration" (the wording AWS uses
//!   for PutObject, CopyObject and CreateMultipartUpload), retention and legal-hold requests
//!   `400 InvalidRequest` "Bucket is missing Object Lock Configuration", and the bucket's lock
//!   configuration `404 ObjectLockConfigurationNotFoundError`.
//! * **Encryption**: SSE-S3 (`AES256`) and SSE-C are done (`xregion_core::encryption`).
//!   There is no KMS: a request for SSE-KMS or DSSE-KMS (a KMS key id or context, a bucket
//!   key) is `501 NotImplemented` with a message that says so.
//! * **Website redirects** (`x-amz-website-redirect-location`): `501 NotImplemented`; there is
//!   no static website hosting to follow them.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;

use crate::error::IntoS3;

/// The one canned ACL a write may carry on a bucket whose owner owns every object.
const OWNER_FULL_CONTROL: &str = "bucket-owner-full-control";

/// What an object write (PutObject, CopyObject, CreateMultipartUpload) asks for beyond the
/// object itself; see [`write_features_of`].
pub(crate) struct WriteFeatures<'a> {
    pub acl: Option<&'a str>,
    pub grants: bool,
    /// KMS encryption (SSE-S3 and SSE-C are not in here).
    pub encryption: bool,
    pub object_lock: bool,
    pub website_redirect: bool,
}

/// The [`WriteFeatures`] of an input DTO (the three write inputs share these field names).
macro_rules! write_features_of {
    ($input:expr) => {
        $crate::ops::unsupported::WriteFeatures {
            acl: $input.acl.as_ref().map(|a| a.as_str()),
            grants: $input.grant_full_control.is_some()
                || $input.grant_read.is_some()
                || $input.grant_read_acp.is_some()
                || $input.grant_write_acp.is_some(),
            encryption: $input.ssekms_key_id.is_some()
                || $input.ssekms_encryption_context.is_some()
                || $input.bucket_key_enabled == Some(true),
            object_lock: $input.object_lock_mode.is_some()
                || $input.object_lock_retain_until_date.is_some()
                || $input.object_lock_legal_hold_status.is_some(),
            website_redirect: $input.website_redirect_location.is_some(),
        }
    };
}
pub(crate) use write_features_of;

impl WriteFeatures<'_> {
    /// Refuses the write if it asks for a feature xregion does not have (see the module doc).
    pub(crate) fn check(&self) -> S3Result<()> {
        if self.encryption {
            return Err(encryption_not_supported());
        }
        if self.object_lock {
            return Err(s3_error!(InvalidRequest, "Bucket is missing ObjectLockConfiguration"));
        }
        if self.grants || self.acl.is_some_and(|acl| acl != OWNER_FULL_CONTROL) {
            return Err(acl_not_supported());
        }
        if self.website_redirect {
            return Err(s3_error!(
                NotImplemented,
                "x-amz-website-redirect-location is not supported: xregion has no static website hosting"
            ));
        }
        Ok(())
    }
}

fn encryption_not_supported() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "SSE-KMS is not supported: xregion has no KMS. Use x-amz-server-side-encryption: AES256 (SSE-S3) \
         or a customer-provided key (SSE-C)."
    )
}

fn acl_not_supported() -> s3s::S3Error {
    s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs")
}

/// The ACL every bucket and object has: the owner, with full control.
fn owner_full_control() -> (Option<Owner>, Option<Grants>) {
    let owner = super::owner();
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (Some(owner), Some(vec![grant]))
}

pub(crate) async fn get_bucket_acl(
    r: &Region,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    let (owner, grants) = owner_full_control();
    Ok(S3Response::new(GetBucketAclOutput { owner, grants }))
}

pub(crate) async fn put_bucket_acl(
    r: &Region,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    Err(acl_not_supported())
}

pub(crate) async fn get_object_acl(
    r: &Region,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    r.get_object(&input.bucket, &input.key, input.version_id.as_deref()).s3()?;
    let (owner, grants) = owner_full_control();
    Ok(S3Response::new(GetObjectAclOutput { owner, grants, ..Default::default() }))
}

pub(crate) async fn put_object_acl(
    r: &Region,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = req.input;
    r.get_object(&input.bucket, &input.key, input.version_id.as_deref()).s3()?;
    Err(acl_not_supported())
}

pub(crate) async fn get_bucket_ownership_controls(
    r: &Region,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    let rule = OwnershipControlsRule {
        object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub(crate) async fn get_object_lock_configuration(
    r: &Region,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    Err(s3_error!(ObjectLockConfigurationNotFoundError, "Object Lock configuration does not exist for this bucket"))
}

/// Retention and legal hold of an object version: the bucket has no Object Lock.
pub(crate) fn object_lock_missing<T>(r: &Region, bucket: &str) -> S3Result<T> {
    r.bucket(bucket).s3()?;
    Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> WriteFeatures<'static> {
        WriteFeatures { acl: None, grants: false, encryption: false, object_lock: false, website_redirect: false }
    }

    fn code(features: WriteFeatures<'_>) -> Option<String> {
        features.check().err().map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn eli10_writes_asking_for_what_xregion_lacks_are_refused() {
        assert_eq!(code(plain()), None);
        assert_eq!(code(WriteFeatures { acl: Some(OWNER_FULL_CONTROL), ..plain() }), None);
        assert_eq!(
            code(WriteFeatures { acl: Some("public-read"), ..plain() }).as_deref(),
            Some("AccessControlListNotSupported")
        );
        assert_eq!(
            code(WriteFeatures { acl: Some("private"), ..plain() }).as_deref(),
            Some("AccessControlListNotSupported")
        );
        assert_eq!(code(WriteFeatures { grants: true, ..plain() }).as_deref(), Some("AccessControlListNotSupported"));
        assert_eq!(code(WriteFeatures { encryption: true, ..plain() }).as_deref(), Some("NotImplemented"));
        assert_eq!(code(WriteFeatures { object_lock: true, ..plain() }).as_deref(), Some("InvalidRequest"));
        assert_eq!(code(WriteFeatures { website_redirect: true, ..plain() }).as_deref(), Some("NotImplemented"));
    }
}
