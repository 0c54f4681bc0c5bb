//! Bucket replication configuration: Put/Get/DeleteBucketReplication (CFG-1..3). The XML
//! document becomes a `ConfigDraft` as sent (no judgement here: `xregion-core` validates,
//! VAL-*), and the stored model becomes the document GET echoes (CFG-11, CFG-12).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use xregion_core::replication_rules::{
    self, AndDraft, ConfigDraft, DestinationDraft, FilterDraft, MetricsDraft, ReplicationTimeDraft, RuleDraft, TagDraft,
};
use xregion_core::{CoreError, Region};
use xregion_types::InvalidInput;
use xregion_types::replication::{self as model, FilterShape, RuleSchema};

use crate::error::IntoS3;

pub(crate) async fn put_bucket_replication(
    r: &Region,
    req: S3Request<PutBucketReplicationInput>,
) -> S3Result<S3Response<PutBucketReplicationOutput>> {
    // VAL-1: (1) the bucket exists, (2) the body carries a checksum header (CFG-1), then the
    // document itself.
    r.bucket(&req.input.bucket).s3()?;
    require_body_checksum(&req.headers)?;
    // VAL-14: the document's size (s3s has parsed it already, under its own larger limit).
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    replication_rules::check_document_size(length).s3()?;
    let draft = draft_from(&req.input.replication_configuration);
    r.put_replication(&req.input.bucket, &draft).await.s3()?;
    Ok(S3Response::new(PutBucketReplicationOutput {}))
}

pub(crate) async fn get_bucket_replication(
    r: &Region,
    req: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    // CFG-2: 404 ReplicationConfigurationNotFoundError when nothing is configured.
    let config =
        r.replication_config(&req.input.bucket).s3()?.ok_or(CoreError::ReplicationConfigurationNotFound).s3()?;
    Ok(S3Response::new(GetBucketReplicationOutput { replication_configuration: Some(config_to(&config)) }))
}

pub(crate) async fn delete_bucket_replication(
    r: &Region,
    req: S3Request<DeleteBucketReplicationInput>,
) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
    // CFG-3: 204, also when nothing was configured.
    r.set_replication(&req.input.bucket, None).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketReplicationOutput {}, http::StatusCode::NO_CONTENT))
}

/// CFG-1: a bucket configuration's body must come with `Content-MD5` or an
/// `x-amz-checksum-*` value (lifecycle configurations too), else `InvalidRequest`.
pub(crate) fn require_body_checksum(headers: &http::HeaderMap) -> S3Result<()> {
    if has_body_checksum(headers) {
        return Ok(());
    }
    Err(CoreError::Invalid(InvalidInput::new(
        "InvalidRequest",
        "Missing required header for this request: Content-MD5",
    )))
    .s3()
}

/// `Content-MD5` or an `x-amz-checksum-*` value (as a header or announced trailer).
fn has_body_checksum(headers: &http::HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.keys().any(|k| k.as_str().starts_with("x-amz-checksum-") && k.as_str() != "x-amz-checksum-type")
        || headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("x-amz-checksum-"))
}

// ----- DTO → draft ---------------------------------------------------------------------

fn draft_from(c: &ReplicationConfiguration) -> ConfigDraft {
    ConfigDraft { role: Some(c.role.clone()), rules: c.rules.iter().map(rule_from).collect() }
}

fn tag_from(t: &Tag) -> TagDraft {
    TagDraft { key: t.key.clone(), value: t.value.clone() }
}

fn rule_from(r: &ReplicationRule) -> RuleDraft {
    let ssc = r.source_selection_criteria.as_ref();
    RuleDraft {
        id: r.id.clone(),
        priority: r.priority,
        prefix: r.prefix.clone(),
        filter: r.filter.as_ref().map(|f| FilterDraft {
            prefix: f.prefix.clone(),
            tag: f.tag.as_ref().map(tag_from),
            and: f
                .and
                .as_ref()
                .map(|a| AndDraft { prefix: a.prefix.clone(), tags: a.tags.iter().flatten().map(tag_from).collect() }),
        }),
        status: Some(r.status.as_str().to_owned()),
        sse_kms_encrypted_objects: ssc
            .and_then(|s| s.sse_kms_encrypted_objects.as_ref())
            .map(|s| s.status.as_str().to_owned()),
        replica_modifications: ssc.and_then(|s| s.replica_modifications.as_ref()).map(|s| s.status.as_str().to_owned()),
        existing_object_replication: r.existing_object_replication.as_ref().map(|e| e.status.as_str().to_owned()),
        destination: Some(destination_from(&r.destination)),
        delete_marker_replication: r
            .delete_marker_replication
            .as_ref()
            .map(|d| d.status.as_ref().map(|s| s.as_str().to_owned())),
    }
}

fn destination_from(d: &Destination) -> DestinationDraft {
    DestinationDraft {
        bucket: Some(d.bucket.clone()),
        account: d.account.clone(),
        storage_class: d.storage_class.as_ref().map(|s| s.as_str().to_owned()),
        access_control_owner: d.access_control_translation.as_ref().map(|a| a.owner.as_str().to_owned()),
        encryption_configuration: d.encryption_configuration.as_ref().map(|e| e.replica_kms_key_id.clone()),
        replication_time: d
            .replication_time
            .as_ref()
            .map(|t| ReplicationTimeDraft { status: Some(t.status.as_str().to_owned()), minutes: t.time.minutes }),
        metrics: d.metrics.as_ref().map(|m| MetricsDraft {
            status: Some(m.status.as_str().to_owned()),
            event_threshold: m.event_threshold.as_ref().map(|t| t.minutes),
        }),
    }
}

// ----- model → DTO (CFG-11, CFG-12) ----------------------------------------------------

/// `Enabled` / `Disabled` as any of the s3s status types.
fn status<T: From<String>>(enabled: bool) -> T {
    T::from(if enabled { "Enabled" } else { "Disabled" }.to_owned())
}

fn config_to(c: &model::ReplicationConfig) -> ReplicationConfiguration {
    ReplicationConfiguration { role: c.role.clone(), rules: c.rules.iter().map(rule_to).collect() }
}

fn rule_to(r: &model::Rule) -> ReplicationRule {
    let v2 = r.schema == RuleSchema::V2;
    let ssc =
        (r.sse_kms_encrypted_objects.is_some() || r.replica_modifications.is_some()).then(|| SourceSelectionCriteria {
            sse_kms_encrypted_objects: r
                .sse_kms_encrypted_objects
                .map(|e| SseKmsEncryptedObjects { status: status(e) }),
            replica_modifications: r.replica_modifications.map(|e| ReplicaModifications { status: status(e) }),
        });
    ReplicationRule {
        id: Some(r.id.clone()),
        priority: if v2 { r.priority } else { None },
        prefix: if v2 { None } else { Some(r.filter.prefix.clone().unwrap_or_default()) },
        filter: v2.then(|| filter_to(&r.filter)),
        status: status(r.enabled),
        source_selection_criteria: ssc,
        existing_object_replication: r
            .existing_object_replication
            .map(|e| ExistingObjectReplication { status: status(e) }),
        destination: destination_to(&r.destination),
        // CFG-12: always present for V2 rules.
        delete_marker_replication: v2
            .then(|| DeleteMarkerReplication { status: Some(status(r.delete_marker_replication.unwrap_or(false))) }),
    }
}

fn filter_to(f: &model::Filter) -> ReplicationRuleFilter {
    let tag = |(k, v): &(String, String)| Tag { key: Some(k.clone()), value: Some(v.clone()) };
    let mut out = ReplicationRuleFilter { and: None, prefix: None, tag: None };
    match f.shape {
        FilterShape::Empty => {}
        FilterShape::Prefix => out.prefix = Some(f.prefix.clone().unwrap_or_default()),
        FilterShape::Tag => out.tag = f.tags.first().map(tag),
        FilterShape::And => {
            out.and = Some(ReplicationRuleAndOperator {
                prefix: f.prefix.clone(),
                tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(tag).collect()),
            });
        }
    }
    out
}

fn destination_to(d: &model::Destination) -> Destination {
    let minutes = |m: i32| ReplicationTimeValue { minutes: Some(m) };
    Destination {
        bucket: d.bucket_arn.clone(),
        account: d.account.clone(),
        storage_class: d.storage_class.clone().map(StorageClass::from),
        access_control_translation: d
            .owner_override
            .then(|| AccessControlTranslation { owner: OwnerOverride::from_static(OwnerOverride::DESTINATION) }),
        encryption_configuration: d
            .replica_kms_key_id
            .clone()
            .map(|k| EncryptionConfiguration { replica_kms_key_id: Some(k) }),
        replication_time: d
            .replication_time
            .map(|(enabled, m)| ReplicationTime { status: status(enabled), time: minutes(m) }),
        metrics: d
            .metrics
            .map(|(enabled, threshold)| Metrics { status: status(enabled), event_threshold: threshold.map(minutes) }),
    }
}
