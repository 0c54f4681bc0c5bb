//! The destination side of the replica protocol (`docs/replication.md`): PutObject,
//! DeleteObject and PutObjectTagging carrying `x-xregion-replica: 1` write replica state
//! (source version id, last-modified, ETag, status REPLICA; IMPL-2). Only a principal allowed
//! `s3:ReplicateObject` / `s3:ReplicateDelete` / `s3:ReplicateTags` may (design invariant 5).

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
use xregion_core::replica::{ReplicaPut, parse_checksum_header};
use xregion_core::sealed::SealedVersion;
use xregion_identity::{Authorizer, Decision, Identity, Resource};
use xregion_types::VersionId;

use super::object::{body_of, declared_len};
use crate::convert::{self, etag, parse_tagging_header, tags_from};
use crate::error::IntoS3;

/// Marks a request as a replica write.
pub const REPLICA_HEADER: &str = "x-xregion-replica";
/// The source version id (STS-11).
pub const SOURCE_VERSION_ID: &str = "x-xregion-source-version-id";
/// The source Last-Modified in unix milliseconds (STS-12).
pub const SOURCE_LAST_MODIFIED: &str = "x-xregion-source-last-modified";
/// The source version's creation stamp, sent with the `null` version only (its id carries
/// none).
pub const SOURCE_STAMP: &str = "x-xregion-source-stamp";
/// The source ETag (STS-13).
pub const SOURCE_ETAG: &str = "x-xregion-source-etag";
/// Comma-separated part sizes of a multipart source.
pub const PART_SIZES: &str = "x-xregion-part-sizes";
/// Comma-separated base64 checksums of a multipart source's parts (one per part size).
pub const PART_CHECKSUMS: &str = "x-xregion-part-checksums";
/// The source checksum: `ALGORITHM:base64:FULL_OBJECT|COMPOSITE`.
pub const SOURCE_CHECKSUM: &str = "x-xregion-source-checksum";
/// CRC32C (base64) of the bytes the source sends; checked instead of recomputing the MD5.
pub const TRANSFER_CRC32C: &str = "x-xregion-transfer-crc32c";
/// The data key of an SSE-C source version, wrapped by the client's key (hex): the body is
/// then the version's sealed pieces, stored as they are (`xregion_core::sealed`).
pub const SEALED_KEY: &str = "x-xregion-sealed-key";
/// The sealed pieces of an SSE-C source version: `label:len,…` (plaintext lengths).
pub const SEALED_PIECES: &str = "x-xregion-sealed-pieces";
/// When the tag set sent with a replicated tag change was set, unix milliseconds (TWO-8).
pub const TAGS_CHANGED: &str = "x-xregion-tags-changed-ms";
/// The bucket a replicated tag change comes from (TWO-6: never sent back there).
pub const SOURCE_BUCKET: &str = "x-xregion-source-bucket";

/// True if the request asks to write replica state.
pub(crate) fn is_replica(headers: &HeaderMap) -> bool {
    headers.contains_key(REPLICA_HEADER)
}

/// Who may write replicas: the identity directory and the authorization hook.
#[derive(Clone)]
pub(crate) struct ReplicaAuth {
    identity: Identity,
    authorizer: Arc<dyn Authorizer>,
}

impl ReplicaAuth {
    pub(crate) fn new(identity: Identity, authorizer: Arc<dyn Authorizer>) -> Self {
        Self { identity, authorizer }
    }

    /// Design invariant 5: replica writes need `action` (s3:Replicate*) on the object.
    pub(crate) fn check<T>(&self, req: &S3Request<T>, action: &str, bucket: &str, key: &str) -> S3Result<()> {
        let principal = req.credentials.as_ref().and_then(|c| self.identity.principal(&c.access_key)).cloned();
        let resource = Resource::Object(bucket.to_owned(), key.to_owned());
        match self.authorizer.authorize(principal.as_ref(), action, &resource) {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(s3_error!(AccessDenied, "Access Denied: {}", why)),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> S3Result<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "replica request without a valid {} header", name))
}

/// A required header holding unix milliseconds.
fn millis(headers: &HeaderMap, name: &str) -> S3Result<i64> {
    header(headers, name)?.parse::<i64>().map_err(|_| s3_error!(InvalidArgument, "invalid {}", name))
}

/// The source version id, Last-Modified and (for the `null` version) creation stamp.
fn source_version(headers: &HeaderMap) -> S3Result<(VersionId, i64, Option<u64>)> {
    let version_id = VersionId::parse(header(headers, SOURCE_VERSION_ID)?).s3()?;
    let stamp = match headers.contains_key(SOURCE_STAMP) {
        true => Some(
            header(headers, SOURCE_STAMP)?
                .parse::<u64>()
                .map_err(|_| s3_error!(InvalidArgument, "invalid {}", SOURCE_STAMP))?,
        ),
        false => None,
    };
    Ok((version_id, millis(headers, SOURCE_LAST_MODIFIED)?, stamp))
}

pub(crate) async fn put_object(
    r: &Region,
    auth: &ReplicaAuth,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    auth.check(&req, "s3:ReplicateObject", &req.input.bucket, &req.input.key)?;
    let S3Request { input, headers, .. } = req;
    let (version_id, last_modified_ms, stamp) = source_version(&headers)?;
    let mut meta = convert::object_meta_of!(input);
    if let Some(t) = &input.tagging {
        meta.tags = parse_tagging_header(t)?;
    }
    let part_sizes = match headers.get(PART_SIZES).and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty()) {
        Some(s) => s
            .split(',')
            .map(|p| p.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| s3_error!(InvalidArgument, "invalid {}", PART_SIZES))?,
        None => Vec::new(),
    };
    let part_checksums: Vec<String> = match headers.get(PART_CHECKSUMS).and_then(|v| v.to_str().ok()) {
        Some(s) => s.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect(),
        None => Vec::new(),
    };
    let checksum = match headers.get(SOURCE_CHECKSUM).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(parse_checksum_header(v).s3()?),
        None => None,
    };
    // ELI-7: a replica of an encrypted source is encrypted too; nothing but AES256 is sent.
    let encrypted = match input.server_side_encryption.as_ref().map(|s| s.as_str()) {
        Some(algorithm) => {
            xregion_core::check_sse_algorithm(algorithm).s3()?;
            true
        }
        None => false,
    };
    // ELI-7: an SSE-C source travels sealed; the replica is SSE-C under the same client key.
    let sealed = match headers.get(SEALED_KEY) {
        Some(key) => {
            let key = key.to_str().map_err(|_| s3_error!(InvalidArgument, "invalid {}", SEALED_KEY))?;
            let pieces = headers.get(SEALED_PIECES).and_then(|v| v.to_str().ok()).unwrap_or_default();
            Some(SealedVersion::parse(key, pieces).s3()?)
        }
        None => None,
    };
    let put = ReplicaPut {
        bucket: input.bucket,
        key: input.key,
        meta,
        version_id,
        last_modified_ms,
        stamp,
        etag: header(&headers, SOURCE_ETAG)?.trim_matches('"').to_owned(),
        part_sizes,
        part_checksums,
        checksum,
        transfer_crc32c: headers.get(TRANSFER_CRC32C).and_then(|v| v.to_str().ok()).map(str::to_owned),
        encrypted,
        sealed,
    };
    let len = declared_len(&headers, input.content_length);
    let res = r.put_replica(put, body_of(input.body), len).await.s3()?;
    let data = res.record.object().cloned().unwrap_or_default();
    let out = PutObjectOutput {
        e_tag: Some(etag(&data.etag)),
        version_id: Some(res.record.version_id.as_str().to_owned()),
        server_side_encryption: crate::convert::sse_of(&data),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

pub(crate) async fn delete_object(
    r: &Region,
    auth: &ReplicaAuth,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    auth.check(&req, "s3:ReplicateDelete", &req.input.bucket, &req.input.key)?;
    // DEL-1: a delete naming a version is never replicated, so a replica delete never has one.
    if req.input.version_id.is_some() {
        return Err(s3_error!(InvalidRequest, "a replicated delete marker never names a versionId"));
    }
    let (version_id, last_modified_ms, stamp) = source_version(&req.headers)?;
    let input = req.input;
    let record = r.delete_marker_replica(&input.bucket, &input.key, version_id, last_modified_ms, stamp).await.s3()?;
    let out = DeleteObjectOutput {
        delete_marker: Some(true),
        version_id: Some(record.version_id.as_str().to_owned()),
        ..Default::default()
    };
    Ok(S3Response::with_status(out, StatusCode::NO_CONTENT))
}

pub(crate) async fn put_object_tagging(
    r: &Region,
    auth: &ReplicaAuth,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    auth.check(&req, "s3:ReplicateTags", &req.input.bucket, &req.input.key)?;
    let S3Request { input, headers, .. } = req;
    let Some(version) = input.version_id.as_deref() else {
        return Err(s3_error!(InvalidRequest, "replicated tags must name the version"));
    };
    let version_id = VersionId::parse(version).s3()?;
    let tags = tags_from(&input.tagging.tag_set);
    let changed_ms = headers.contains_key(TAGS_CHANGED).then(|| millis(&headers, TAGS_CHANGED)).transpose()?;
    let from = headers.get(SOURCE_BUCKET).and_then(|v| v.to_str().ok());
    let vid = r.set_replica_tags(&input.bucket, &input.key, version_id, tags, changed_ms, from).await.s3()?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id: Some(vid.as_str().to_owned()) }))
}

#[cfg(test)]
mod tests {
    use s3s::auth::{Credentials, SecretKey};
    use xregion_identity::{Credential, Principal, RootOnly};

    use super::*;

    /// Allows everything except the replication actions.
    struct NoReplication;

    impl Authorizer for NoReplication {
        fn authorize(&self, _principal: Option<&Principal>, action: &str, _resource: &Resource) -> Decision {
            match action.starts_with("s3:Replicate") {
                true => Decision::Deny("replication is not allowed to this principal".into()),
                false => Decision::Allow,
            }
        }
    }

    fn request(access_key: Option<&str>) -> S3Request<()> {
        S3Request {
            input: (),
            method: http::Method::PUT,
            uri: http::Uri::from_static("/b/k"),
            headers: HeaderMap::new(),
            extensions: http::Extensions::new(),
            credentials: access_key
                .map(|a| Credentials { access_key: a.to_owned(), secret_key: SecretKey::from("secret") }),
            region: None,
            service: None,
            trailing_headers: None,
        }
    }

    /// Design invariant 5: replica state is written only by a principal the authorizer allows
    /// the `s3:Replicate*` action on the object; the same hook serves single and batch writes.
    #[test]
    fn inv5_replica_writes_ask_the_authorizer_for_the_replicate_action() {
        let identity = Identity::with_root(Credential { access_key: "AK".into(), secret_key: "secret".into() });
        let denying = ReplicaAuth::new(identity.clone(), Arc::new(NoReplication));
        for action in ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"] {
            let err = denying.check(&request(Some("AK")), action, "b", "k").expect_err(action);
            assert_eq!(err.code(), &s3s::S3ErrorCode::AccessDenied);
        }
        let root = ReplicaAuth::new(identity, Arc::new(RootOnly));
        assert!(root.check(&request(Some("AK")), "s3:ReplicateObject", "b", "k").is_ok());
        let err = root.check(&request(None), "s3:ReplicateObject", "b", "k").expect_err("anonymous");
        assert_eq!(err.code(), &s3s::S3ErrorCode::AccessDenied);
    }
}
