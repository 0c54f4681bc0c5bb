//! The `s3s::S3` implementation: routes each operation to its function in `ops`, and names
//! the resource (bucket, key, version) in error bodies as S3 does (`error::ErrorContext`).
//! Generated shape: one delegating method per supported operation.

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use xregion_core::Region;

use crate::error::ErrorContext;
use crate::ops;

/// The S3 API of one region.
#[derive(Clone)]
pub(crate) struct Api {
    region: Region,
    /// Who may write replica state (`x-xregion-replica` requests).
    replicas: ops::replica::ReplicaAuth,
}

impl Api {
    pub(crate) fn new(region: Region, replicas: ops::replica::ReplicaAuth) -> Self {
        Self { region, replicas }
    }
}

#[async_trait::async_trait]
impl S3 for Api {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let cx = ErrorContext { method: req.method.clone(), bucket: None, key: None, version_id: None };
        ops::bucket::list_buckets(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::create_bucket(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::head_bucket(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::get_bucket_location(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::delete_bucket(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::put_bucket_versioning(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::get_bucket_versioning(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::put_bucket_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::get_bucket_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::bucket::delete_bucket_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_replication(
        &self,
        req: S3Request<PutBucketReplicationInput>,
    ) -> S3Result<S3Response<PutBucketReplicationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::replication::put_bucket_replication(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::replication::get_bucket_replication(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_bucket_replication(
        &self,
        req: S3Request<DeleteBucketReplicationInput>,
    ) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::replication::delete_bucket_replication(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::lifecycle::put_bucket_lifecycle_configuration(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::lifecycle::get_bucket_lifecycle_configuration(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::lifecycle::delete_bucket_lifecycle(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        if ops::replica::is_replica(&req.headers) {
            return ops::replica::put_object(&self.region, &self.replicas, req).await.map_err(|e| cx.annotate(e));
        }
        ops::object::put_object(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::object::get_object(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::attributes::get_object_attributes(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::object::head_object(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::object::copy_object(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        if ops::replica::is_replica(&req.headers) {
            return ops::replica::delete_object(&self.region, &self.replicas, req).await.map_err(|e| cx.annotate(e));
        }
        ops::object::delete_object(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::object::delete_objects(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        if ops::replica::is_replica(&req.headers) {
            return ops::replica::put_object_tagging(&self.region, &self.replicas, req)
                .await
                .map_err(|e| cx.annotate(e));
        }
        ops::object::put_object_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::object::get_object_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::object::delete_object_tagging(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::list::list_objects(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::list::list_objects_v2(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::list::list_object_versions(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::create_multipart_upload(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::upload_part(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::upload_part_copy(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::complete_multipart_upload(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::abort_multipart_upload(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: None,
        };
        ops::multipart::list_parts(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::multipart::list_multipart_uploads(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::unsupported::get_bucket_acl(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::unsupported::put_bucket_acl(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::get_object_acl(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::put_object_acl(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::unsupported::get_bucket_ownership_controls(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::unsupported::get_object_lock_configuration(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::encryption::get_bucket_encryption(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::encryption::put_bucket_encryption(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let cx = ErrorContext::bucket(&req.method, &req.input.bucket);
        ops::encryption::delete_bucket_encryption(&self.region, req).await.map_err(|e| cx.annotate(e))
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::object_lock_missing(&self.region, &req.input.bucket).map_err(|e| cx.annotate(e))
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::object_lock_missing(&self.region, &req.input.bucket).map_err(|e| cx.annotate(e))
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::object_lock_missing(&self.region, &req.input.bucket).map_err(|e| cx.annotate(e))
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let cx = ErrorContext {
            method: req.method.clone(),
            bucket: Some(req.input.bucket.clone()),
            key: Some(req.input.key.clone()),
            version_id: req.input.version_id.clone(),
        };
        ops::unsupported::object_lock_missing(&self.region, &req.input.bucket).map_err(|e| cx.annotate(e))
    }
}
