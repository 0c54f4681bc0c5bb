//! The one place where use-case errors become S3 errors (status, AWS code, message, headers).

use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::{S3Error, S3ErrorCode};
use xregion_core::CoreError;
use xregion_core::replication_rules::MSG_INVALID_ROLE;

/// Converts a core error into the S3 error AWS would return.
pub fn to_s3(e: CoreError) -> S3Error {
    use S3ErrorCode as C;
    let with = |code: S3ErrorCode, msg: String| S3Error::with_message(code, msg);
    match e {
        CoreError::Invalid(inv) => {
            let code = S3ErrorCode::from_bytes(inv.code.as_bytes()).unwrap_or(C::InvalidArgument);
            let mut err = with(code, inv.message);
            err.set_status_code(StatusCode::BAD_REQUEST);
            err
        }
        CoreError::NoSuchBucket => with(C::NoSuchBucket, "The specified bucket does not exist".into()),
        CoreError::BucketAlreadyExists => with(
            C::BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.".into(),
        ),
        CoreError::BucketAlreadyOwnedByYou => with(
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.".into(),
        ),
        CoreError::BucketNotEmpty => with(
            C::BucketNotEmpty,
            "The bucket you tried to delete is not empty. You must delete all versions in the bucket.".into(),
        ),
        CoreError::OperationAborted => with(
            C::OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource. Try again.".into(),
        ),
        CoreError::IllegalLocationConstraint { requested } => with(
            C::IllegalLocationConstraintException,
            format!("The {requested} location constraint is incompatible for the region specific endpoint this request was sent to."),
        ),
        CoreError::NoSuchKey { delete_marker } => {
            let mut err = with(C::NoSuchKey, "The specified key does not exist.".into());
            if let Some(vid) = delete_marker {
                // VER-12: the 404 carries the delete marker's headers.
                let mut h = error_headers();
                h.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
                if let Ok(v) = HeaderValue::from_str(vid.as_str()) {
                    h.insert("x-amz-version-id", v);
                }
                err.set_headers(h);
            }
            err
        }
        CoreError::NoSuchVersion => with(C::NoSuchVersion, "The specified version does not exist.".into()),
        CoreError::DeleteMarkerNotAllowed { version_id, last_modified_ms } => {
            // VER-13/VER-14: 405 with the delete marker's headers.
            let mut err =
                with(C::MethodNotAllowed, "The specified method is not allowed against this resource.".into());
            err.set_status_code(StatusCode::METHOD_NOT_ALLOWED);
            let mut h = error_headers();
            h.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
            h.insert("allow", HeaderValue::from_static("DELETE"));
            if let Ok(v) = HeaderValue::from_str(version_id.as_str()) {
                h.insert("x-amz-version-id", v);
            }
            if last_modified_ms > 0
                && let Ok(v) = HeaderValue::from_str(&crate::convert::http_date(last_modified_ms))
            {
                h.insert("last-modified", v);
            }
            err.set_headers(h);
            err
        }
        CoreError::NoSuchUpload => with(
            C::NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.".into(),
        ),
        CoreError::InvalidPart(m) => with(C::InvalidPart, m),
        CoreError::InvalidPartOrder => with(
            C::InvalidPartOrder,
            "The list of parts was not in ascending order. Parts must be ordered by part number.".into(),
        ),
        CoreError::EntityTooSmall => {
            with(C::EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.".into())
        }
        CoreError::BadDigest(m) => with(C::BadDigest, m),
        CoreError::PreconditionFailed => {
            with(C::PreconditionFailed, "At least one of the pre-conditions you specified did not hold".into())
        }
        CoreError::NotModified => {
            let mut err = S3Error::new(C::NotModified);
            err.set_status_code(StatusCode::NOT_MODIFIED);
            err
        }
        CoreError::InvalidRange => with(C::InvalidRange, "The requested range is not satisfiable".into()),
        CoreError::InvalidBucketState(m) => with(C::InvalidBucketState, m),
        CoreError::InvalidArgument(m) => with(C::InvalidArgument, m),
        CoreError::NoSuchJob(id) => {
            let mut err = with(C::Custom("NotFoundException".into()), format!("The job {id} does not exist."));
            err.set_status_code(StatusCode::NOT_FOUND);
            err
        }
        CoreError::Idempotency(m) => {
            let mut err = with(C::Custom("IdempotencyException".into()), m);
            err.set_status_code(StatusCode::CONFLICT);
            err
        }
        CoreError::TooManyTags(m) => {
            let mut err = with(C::Custom("TooManyTagsException".into()), m);
            err.set_status_code(StatusCode::BAD_REQUEST);
            err
        }
        CoreError::JobStatus(m) => {
            let mut err = with(C::Custom("JobStatusException".into()), m);
            err.set_status_code(StatusCode::CONFLICT);
            err
        }
        CoreError::NoSuchLifecycleConfiguration => {
            let mut err = with(C::NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist".into());
            err.set_status_code(StatusCode::NOT_FOUND);
            err
        }
        CoreError::NoSuchEncryptionConfiguration => {
            let mut err = with(
                C::ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found".into(),
            );
            // s3s's table says 400; AWS answers 404 (clients such as Terraform expect it).
            err.set_status_code(StatusCode::NOT_FOUND);
            err
        }
        CoreError::AccessDenied(m) => with(C::AccessDenied, m),
        CoreError::NotImplemented(m) => with(C::NotImplemented, m),
        CoreError::ReplicationConfigurationNotFound => {
            let mut err =
                with(C::ReplicationConfigurationNotFoundError, "The replication configuration was not found".into());
            err.set_status_code(StatusCode::NOT_FOUND);
            err
        }
        CoreError::IncompleteBody(m) => with(C::IncompleteBody, m),
        CoreError::Body(src) => match src.downcast::<S3Error>() {
            Ok(s3) => *s3,
            Err(other) => with(C::IncompleteBody, format!("error reading the request body: {other}")),
        },
        CoreError::Unavailable(m) => {
            let mut err = with(C::ServiceUnavailable, format!("Please reduce your request rate or retry: {m}"));
            err.set_status_code(StatusCode::SERVICE_UNAVAILABLE);
            err
        }
        CoreError::StorageFull(m) => {
            // No S3 code exists for this (AWS never fills up). 507 Insufficient Storage is the
            // HTTP status for it, and SDKs do not retry it, so the caller hears at once.
            let mut err = with(
                C::Custom("InsufficientStorage".into()),
                format!("{m}. Nothing was stored: free space (delete object versions) or add storage, then retry."),
            );
            err.set_status_code(StatusCode::INSUFFICIENT_STORAGE);
            err
        }
        CoreError::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            with(C::InternalError, "We encountered an internal error. Please try again.".into())
        }
        CoreError::OutcomeUnknown(m) => {
            // S3's answer when a write may or may not have happened: 500, and the client
            // retries (a retried PUT makes one more version, as on S3; replicas are idempotent).
            tracing::error!(error = %m, "write failed; it may or may not have taken effect");
            with(C::InternalError, "We encountered an internal error. Please try again.".into())
        }
        other => {
            tracing::error!(error = %other, "unmapped error");
            with(C::InternalError, "We encountered an internal error. Please try again.".into())
        }
    }
}

/// A header map for an error that carries its own headers. s3s replaces the response's
/// headers with the error's, so the XML body's `Content-Type` must be in it too.
fn error_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    h
}

/// Shorthand for `map_err(to_s3)`.
pub(crate) trait IntoS3<T> {
    fn s3(self) -> Result<T, S3Error>;
}

impl<T, E: Into<CoreError>> IntoS3<T> for Result<T, E> {
    fn s3(self) -> Result<T, S3Error> {
        self.map_err(|e| to_s3(e.into()))
    }
}

/// Private response header carrying extra elements for the error XML body
/// (`Name=value&…`, URL-encoded). s3s's `S3Error` can only hold code, message and headers, so
/// the server's edge layer moves these into the body (next to `RequestId`) and drops the header.
pub const ERROR_FIELDS_HEADER: &str = "x-xregion-error-fields";

/// Adds elements (`<Key>`, `<BucketName>`, …) to an error's XML body.
pub fn with_fields(mut err: S3Error, fields: &[(&str, &str)]) -> S3Error {
    if fields.is_empty() {
        return err;
    }
    let mut headers = err.headers().cloned().unwrap_or_else(error_headers);
    let mut value = headers.get(ERROR_FIELDS_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    for (name, v) in fields {
        if !value.is_empty() {
            value.push('&');
        }
        value.push_str(&format!("{name}={}", urlencoding::encode(v)));
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(ERROR_FIELDS_HEADER, v);
        err.set_headers(headers);
    }
    err
}

/// What a request addressed, to name it in error bodies as S3 does (VER-3, VER-12, VER-13).
pub(crate) struct ErrorContext {
    pub method: http::Method,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub version_id: Option<String>,
}

impl ErrorContext {
    /// The context of a bucket-level request.
    pub(crate) fn bucket(method: &http::Method, bucket: &str) -> Self {
        Self { method: method.clone(), bucket: Some(bucket.to_owned()), key: None, version_id: None }
    }

    pub(crate) fn annotate(&self, err: S3Error) -> S3Error {
        let key = self.key.as_deref().unwrap_or_default();
        match err.code() {
            S3ErrorCode::NoSuchBucket => match &self.bucket {
                Some(b) => with_fields(err, &[("BucketName", b)]),
                None => err,
            },
            // CFG-2, and the same for lifecycle.
            S3ErrorCode::ReplicationConfigurationNotFoundError
            | S3ErrorCode::NoSuchLifecycleConfiguration
            | S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError => match &self.bucket {
                Some(b) => with_fields(err, &[("BucketName", b)]),
                None => err,
            },
            // VAL-16.
            S3ErrorCode::InvalidArgument if err.message() == Some(MSG_INVALID_ROLE) => {
                with_fields(err, &[("ArgumentName", "Role")])
            }
            S3ErrorCode::NoSuchKey if self.key.is_some() => with_fields(err, &[("Key", key)]),
            S3ErrorCode::NoSuchVersion if self.key.is_some() => {
                with_fields(err, &[("Key", key), ("VersionId", self.version_id.as_deref().unwrap_or_default())])
            }
            S3ErrorCode::MethodNotAllowed => {
                with_fields(err, &[("Method", self.method.as_str()), ("ResourceType", "DeleteMarker")])
            }
            S3ErrorCode::InvalidArgument if err.message() == Some(INVALID_VERSION_ID) => {
                let value = self.version_id.clone().unwrap_or_default();
                with_fields(err, &[("ArgumentName", "versionId"), ("ArgumentValue", &value)])
            }
            _ => err,
        }
    }
}

/// The message of an invalid `versionId` (VER-13, VER-16).
pub(crate) const INVALID_VERSION_ID: &str = "Invalid version id specified";
