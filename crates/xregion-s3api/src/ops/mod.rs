//! One file per area; each function is DTO → core call → DTO.

pub(crate) mod attributes;
pub(crate) mod bucket;
pub(crate) mod encryption;
pub(crate) mod lifecycle;
pub(crate) mod list;
pub(crate) mod multipart;
pub(crate) mod object;
pub(crate) mod replica;
pub(crate) mod replica_batch;
pub(crate) mod replication;
pub(crate) mod unsupported;

use s3s::dto::Owner;
use xregion_types::VersioningState;

/// The single account of a deployment until identities arrive.
pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("xregion".to_owned()),
        id: Some("8f2e4c1ab7d9e3f60c5a4b2d1e9f8a7c6b5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f".to_owned()),
    }
}

/// VER-7: GET/HEAD carry `x-amz-version-id` unless the bucket was never versioned.
pub(crate) fn read_version_header(state: VersioningState, id: &xregion_types::VersionId) -> Option<String> {
    (state != VersioningState::Unversioned).then(|| id.as_str().to_owned())
}

/// VER-7: PUT/COPY/Complete carry `x-amz-version-id` only while versioning is Enabled.
pub(crate) fn write_version_header(state: VersioningState, id: &xregion_types::VersionId) -> Option<String> {
    (state == VersioningState::Enabled).then(|| id.as_str().to_owned())
}
