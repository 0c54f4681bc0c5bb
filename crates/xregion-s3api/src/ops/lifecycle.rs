//! Bucket lifecycle configuration (Put/Get/DeleteBucketLifecycleConfiguration): the DTOs
//! to and from `xregion_core::lifecycle`'s draft and stored shapes. Validation and the rules'
//! effects are in the core.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::lifecycle::{AndDraft, ExpirationDraft, FilterDraft, LifecycleDraft, NoncurrentDraft, RuleDraft};
use xregion_core::{CoreError, Region};
use xregion_types::InvalidInput;
use xregion_types::lifecycle::{Expiration, LifecycleConfig, LifecycleFilter};

use crate::convert::{tags_from, tags_to, ts, unix_ms};
use crate::error::IntoS3;
use crate::ops::replication::require_body_checksum;

pub(crate) async fn put_bucket_lifecycle_configuration(
    r: &Region,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    require_body_checksum(&req.headers)?;
    let Some(config) = &req.input.lifecycle_configuration else {
        return Err(CoreError::Invalid(InvalidInput::new(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )))
        .s3();
    };
    // One storage class: there is nothing to transition to. Refused rather than ignored.
    let transitions = config.rules.iter().any(|rule| {
        rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
            || rule.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    });
    if transitions {
        return Err(s3_error!(
            NotImplemented,
            "xregion has one storage class, so lifecycle transitions are not supported (expirations are)"
        ));
    }
    r.put_lifecycle(&req.input.bucket, &draft_from(config)).await.s3()?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

pub(crate) async fn get_bucket_lifecycle_configuration(
    r: &Region,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let config = r.lifecycle_config(&req.input.bucket).s3()?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules_to(&config)),
        ..GetBucketLifecycleConfigurationOutput::default()
    }))
}

pub(crate) async fn delete_bucket_lifecycle(
    r: &Region,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    r.delete_lifecycle(&req.input.bucket).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketLifecycleOutput {}, http::StatusCode::NO_CONTENT))
}

// ----- DTO → draft ---------------------------------------------------------------------

fn draft_from(c: &BucketLifecycleConfiguration) -> LifecycleDraft {
    LifecycleDraft { rules: c.rules.iter().map(rule_from).collect() }
}

fn rule_from(r: &LifecycleRule) -> RuleDraft {
    RuleDraft {
        id: r.id.clone(),
        status: r.status.as_str().to_owned(),
        prefix: r.prefix.clone(),
        filter: r.filter.as_ref().map(|f| FilterDraft {
            prefix: f.prefix.clone(),
            tag: f.tag.as_ref().map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default())),
            size_greater_than: f.object_size_greater_than,
            size_less_than: f.object_size_less_than,
            and: f.and.as_ref().map(|a| AndDraft {
                prefix: a.prefix.clone(),
                tags: a.tags.as_deref().map(tags_from).unwrap_or_default(),
                size_greater_than: a.object_size_greater_than,
                size_less_than: a.object_size_less_than,
            }),
        }),
        expiration: r.expiration.as_ref().map(|e| ExpirationDraft {
            days: e.days,
            date_ms: e.date.as_ref().map(unix_ms),
            expired_object_delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent: r
            .noncurrent_version_expiration
            .as_ref()
            .map(|n| NoncurrentDraft { days: n.noncurrent_days, newer_versions: n.newer_noncurrent_versions }),
        abort_incomplete_upload: r.abort_incomplete_multipart_upload.as_ref().map(|a| a.days_after_initiation),
    }
}

// ----- stored → DTO --------------------------------------------------------------------

fn days(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag { key: Some(k.to_owned()), value: Some(v.to_owned()) }
}

fn rules_to(c: &LifecycleConfig) -> Vec<LifecycleRule> {
    c.rules
        .iter()
        .map(|r| {
            let size = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
            let (prefix, filter) = match &r.filter {
                LifecycleFilter::RulePrefix(p) => (Some(p.clone()), None),
                LifecycleFilter::Prefix(p) => {
                    (None, Some(LifecycleRuleFilter { prefix: p.clone(), ..Default::default() }))
                }
                LifecycleFilter::Tag(k, v) => {
                    (None, Some(LifecycleRuleFilter { tag: Some(tag(k, v)), ..Default::default() }))
                }
                LifecycleFilter::SizeGreaterThan(n) => {
                    (None, Some(LifecycleRuleFilter { object_size_greater_than: size(Some(*n)), ..Default::default() }))
                }
                LifecycleFilter::SizeLessThan(n) => {
                    (None, Some(LifecycleRuleFilter { object_size_less_than: size(Some(*n)), ..Default::default() }))
                }
                LifecycleFilter::And { prefix, tags, size_greater_than, size_less_than } => {
                    let and = LifecycleRuleAndOperator {
                        prefix: prefix.clone(),
                        tags: (!tags.is_empty()).then(|| tags_to(tags)),
                        object_size_greater_than: size(*size_greater_than),
                        object_size_less_than: size(*size_less_than),
                    };
                    (None, Some(LifecycleRuleFilter { and: Some(and), ..Default::default() }))
                }
            };
            let expiration = r.expiration.as_ref().map(|e| match e {
                Expiration::Days(n) => LifecycleExpiration { days: Some(days(*n)), ..Default::default() },
                Expiration::Date(ms) => LifecycleExpiration { date: Some(ts(*ms)), ..Default::default() },
                Expiration::ExpiredObjectDeleteMarker => {
                    LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }
                }
            });
            LifecycleRule {
                id: Some(r.id.clone()),
                status: ExpirationStatus::from(if r.enabled { "Enabled" } else { "Disabled" }.to_owned()),
                prefix,
                filter,
                expiration,
                noncurrent_version_expiration: r.noncurrent.as_ref().map(|n| NoncurrentVersionExpiration {
                    noncurrent_days: Some(days(n.days)),
                    newer_noncurrent_versions: n.newer_versions.map(days),
                }),
                abort_incomplete_multipart_upload: r
                    .abort_incomplete_upload_days
                    .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(days(d)) }),
                noncurrent_version_transitions: None,
                transitions: None,
            }
        })
        .collect()
}
