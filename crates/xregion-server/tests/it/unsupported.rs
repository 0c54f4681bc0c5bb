//! Features xregion does not implement (encryption, ACLs, Object Lock, website redirects):
//! a write that asks for one is refused with AWS's own error and stores nothing, so no
//! version (and no replica, ELI-10) silently lacks what its writer asked for; the read side
//! answers as AWS does for a bucket without the feature (`ops/unsupported.rs`).

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AccessControlPolicy, ObjectCannedAcl, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectOwnership, Owner, Permission, ServerSideEncryption, Type,
};

use crate::common::*;

#[tokio::test]
async fn eli10_writes_asking_for_encryption_acls_or_object_lock_are_refused_and_store_nothing() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "unsupported").await;
    let body = || ByteStream::from_static(b"payload");
    let until = DateTime::from_secs(4_102_444_800); // 2100-01-01

    // SSE-S3 (AES256) is supported (tests/it/encryption.rs); KMS and customer keys are not.
    let r = s3.put_object().bucket(&bucket).key("k").body(body()).server_side_encryption(ServerSideEncryption::AwsKms);
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let r = s3.put_object().bucket(&bucket).key("k").body(body()).ssekms_key_id("arn:aws:kms:us-east-1:1:key/x");
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let r = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(body())
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until);
    let err = expect_error(r.send().await, 400, Some("InvalidRequest"));
    assert_eq!(err.message(), Some("Bucket is missing ObjectLockConfiguration"));
    let r = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(body())
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
    expect_error(r.send().await, 400, Some("InvalidRequest"));
    let r = s3.put_object().bucket(&bucket).key("k").body(body()).acl(ObjectCannedAcl::PublicRead);
    let err = expect_error(r.send().await, 400, Some("AccessControlListNotSupported"));
    assert_eq!(err.message(), Some("The bucket does not allow ACLs"));
    let r = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(body())
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"");
    expect_error(r.send().await, 400, Some("AccessControlListNotSupported"));
    let r = s3.put_object().bucket(&bucket).key("k").body(body()).website_redirect_location("/elsewhere");
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let r = s3.create_multipart_upload().bucket(&bucket).key("k").server_side_encryption(ServerSideEncryption::AwsKms);
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let r = s3.create_multipart_upload().bucket(&bucket).key("k").acl(ObjectCannedAcl::AuthenticatedRead);
    expect_error(r.send().await, 400, Some("AccessControlListNotSupported"));
    assert!(all_versions(&s3, &bucket).await.is_empty(), "a refused write stores nothing");
    let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "a refused CreateMultipartUpload starts no upload");

    // The one ACL a bucket whose owner owns every object accepts (AWS's default since 2023).
    let ok = s3.put_object().bucket(&bucket).key("k").body(body()).acl(ObjectCannedAcl::BucketOwnerFullControl);
    ok.send().await.expect("bucket-owner-full-control is accepted");
    let r = s3
        .copy_object()
        .bucket(&bucket)
        .key("copy")
        .copy_source(format!("{bucket}/k"))
        .server_side_encryption(ServerSideEncryption::AwsKmsDsse);
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let r = s3
        .copy_object()
        .bucket(&bucket)
        .key("copy")
        .copy_source(format!("{bucket}/k"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until);
    expect_error(r.send().await, 400, Some("InvalidRequest"));
    let versions = all_versions(&s3, &bucket).await;
    assert_eq!(versions.len(), 1, "only the accepted write stored a version: {versions:?}");
}

#[tokio::test]
async fn acl_object_lock_and_encryption_reads_answer_as_aws_does_without_them() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "reads").await;
    let vid = put(&s3, &bucket, "k", b"x").await.version_id().expect("version id").to_owned();

    let acl = s3.get_object_acl().bucket(&bucket).key("k").version_id(&vid).send().await.expect("object acl");
    let owner_id = acl.owner().and_then(Owner::id).expect("owner").to_owned();
    assert_eq!(acl.grants().len(), 1);
    let grant = &acl.grants()[0];
    assert_eq!(grant.permission(), Some(&Permission::FullControl));
    assert_eq!(grant.grantee().map(|g| g.r#type()), Some(&Type::CanonicalUser));
    assert_eq!(grant.grantee().and_then(|g| g.id()), Some(owner_id.as_str()));
    let bucket_acl = s3.get_bucket_acl().bucket(&bucket).send().await.expect("bucket acl");
    assert_eq!(bucket_acl.owner().and_then(Owner::id), Some(owner_id.as_str()));
    assert_eq!(bucket_acl.grants().len(), 1);
    expect_error(s3.get_object_acl().bucket(&bucket).key("missing").send().await, 404, Some("NoSuchKey"));

    let r = s3.put_object_acl().bucket(&bucket).key("k").acl(ObjectCannedAcl::PublicRead);
    expect_error(r.send().await, 400, Some("AccessControlListNotSupported"));
    let policy = AccessControlPolicy::builder().owner(Owner::builder().id(&owner_id).build()).build();
    let r = s3.put_bucket_acl().bucket(&bucket).access_control_policy(policy);
    expect_error(r.send().await, 400, Some("AccessControlListNotSupported"));

    let oc = s3.get_bucket_ownership_controls().bucket(&bucket).send().await.expect("ownership controls");
    let rules = oc.ownership_controls().map(|c| c.rules().to_vec()).unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].object_ownership(), &ObjectOwnership::BucketOwnerEnforced);

    let r = s3.get_object_lock_configuration().bucket(&bucket);
    expect_error(r.send().await, 404, Some("ObjectLockConfigurationNotFoundError"));
    let r = s3.get_object_retention().bucket(&bucket).key("k");
    let err = expect_error(r.send().await, 400, Some("InvalidRequest"));
    assert_eq!(err.message(), Some("Bucket is missing Object Lock Configuration"));
    let hold = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    let r = s3.put_object_legal_hold().bucket(&bucket).key("k").legal_hold(hold);
    expect_error(r.send().await, 400, Some("InvalidRequest"));
    let r = s3.get_bucket_encryption().bucket(&bucket);
    expect_error(r.send().await, 404, Some("ServerSideEncryptionConfigurationNotFoundError"));
    expect_error(s3.get_bucket_acl().bucket("no-such-bucket-here").send().await, 404, Some("NoSuchBucket"));

    // Nothing above changed the object.
    assert_eq!(get_body(&s3, &bucket, "k", Some(&vid)).await, b"x");
    assert_eq!(all_versions(&s3, &bucket).await.len(), 1);
}

#[tokio::test]
async fn a_missing_bucket_is_reported_before_an_unsupported_feature() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let r = s3.create_multipart_upload().bucket("no-such-bucket-here").key("k").acl(ObjectCannedAcl::PublicRead);
    expect_error(r.send().await, 404, Some("NoSuchBucket"));
    let r = s3
        .copy_object()
        .bucket("no-such-bucket-here")
        .key("k")
        .copy_source("also-missing/k")
        .server_side_encryption(ServerSideEncryption::Aes256);
    expect_error(r.send().await, 404, Some("NoSuchBucket"));
    let r = s3.put_object().bucket("no-such-bucket-here").key("k").body(ByteStream::from_static(b"x"));
    expect_error(
        r.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On).send().await,
        404,
        Some("NoSuchBucket"),
    );
}
