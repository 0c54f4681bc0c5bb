//! Bucket lifecycle: the configuration's use cases (Put, Get, Delete), its validation, and
//! the runner that carries the rules out (`runner.rs`).
//!
//! What is supported: `Expiration` (`Days`, `Date`, `ExpiredObjectDeleteMarker`),
//! `NoncurrentVersionExpiration` (`NoncurrentDays`, `NewerNoncurrentVersions`) and
//! `AbortIncompleteMultipartUpload`, with filters on prefix, tags and object size. Storage
//! class transitions are refused by the protocol layer (xregion has one storage class).
//!
//! With replication (spec §1.7): a delete marker lifecycle creates is never replicated
//! (DEL-5, VER-21), and no action is taken on a version whose replication is still
//! `PENDING` (STS-9). Replicas keep their source's creation time, so a destination's own
//! lifecycle ages them from it (STS-12, CON-6).

mod runner;

use std::collections::BTreeSet;

use base64::Engine as _;
use xregion_meta::{WriteOp, WriteOutcome};
use xregion_types::InvalidInput;
use xregion_types::lifecycle::{Expiration, LifecycleConfig, LifecycleFilter, LifecycleRule, NoncurrentExpiration};

pub use runner::{LifecycleReport, LifecycleStats};

use crate::buckets::unexpected;
use crate::{CoreError, CoreResult, Region};

/// Stored form: one format byte, then postcard.
const FORMAT_V1: u8 = 1;
/// Rules a configuration may hold (S3's limit).
const MAX_RULES: usize = 1000;
/// Longest rule ID.
const MAX_ID: usize = 255;
/// Most `NewerNoncurrentVersions` S3 takes.
const MAX_NEWER_VERSIONS: i32 = 100;

/// A lifecycle configuration as the client sent it (the protocol layer's DTO, field by field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleDraft {
    /// `Rule` elements.
    pub rules: Vec<RuleDraft>,
}

/// One `Rule` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDraft {
    /// `ID`.
    pub id: Option<String>,
    /// `Status`.
    pub status: String,
    /// The rule's own `Prefix` (outside `Filter`).
    pub prefix: Option<String>,
    /// `Filter`.
    pub filter: Option<FilterDraft>,
    /// `Expiration`.
    pub expiration: Option<ExpirationDraft>,
    /// `NoncurrentVersionExpiration`.
    pub noncurrent: Option<NoncurrentDraft>,
    /// `AbortIncompleteMultipartUpload`, with its `DaysAfterInitiation`.
    pub abort_incomplete_upload: Option<Option<i32>>,
}

/// `Filter` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterDraft {
    /// `Prefix`.
    pub prefix: Option<String>,
    /// `Tag`.
    pub tag: Option<(String, String)>,
    /// `ObjectSizeGreaterThan`.
    pub size_greater_than: Option<i64>,
    /// `ObjectSizeLessThan`.
    pub size_less_than: Option<i64>,
    /// `And`.
    pub and: Option<AndDraft>,
}

/// `Filter.And` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AndDraft {
    /// `Prefix`.
    pub prefix: Option<String>,
    /// `Tag`s.
    pub tags: Vec<(String, String)>,
    /// `ObjectSizeGreaterThan`.
    pub size_greater_than: Option<i64>,
    /// `ObjectSizeLessThan`.
    pub size_less_than: Option<i64>,
}

/// `Expiration` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpirationDraft {
    /// `Days`.
    pub days: Option<i32>,
    /// `Date`, unix milliseconds.
    pub date_ms: Option<i64>,
    /// `ExpiredObjectDeleteMarker`.
    pub expired_object_delete_marker: Option<bool>,
}

/// `NoncurrentVersionExpiration` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoncurrentDraft {
    /// `NoncurrentDays`.
    pub days: Option<i32>,
    /// `NewerNoncurrentVersions`.
    pub newer_versions: Option<i32>,
}

fn malformed() -> CoreError {
    CoreError::Invalid(InvalidInput::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    ))
}

fn invalid_argument(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(InvalidInput::new("InvalidArgument", msg))
}

fn invalid_request(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(InvalidInput::new("InvalidRequest", msg))
}

/// A positive day count, or `InvalidArgument` with S3's message for `what`.
fn positive(days: Option<i32>, what: &str) -> CoreResult<u32> {
    match days {
        Some(d) if d > 0 => Ok(d.unsigned_abs()),
        _ => Err(invalid_argument(format!("{what} must be a positive integer"))),
    }
}

fn size(value: Option<i64>) -> CoreResult<Option<u64>> {
    value
        .map(|v| u64::try_from(v).map_err(|_| invalid_argument("ObjectSize filters must be non-negative integers")))
        .transpose()
}

fn check_tag(key: &str, value: &str) -> CoreResult<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(invalid_argument("The TagKey you have provided is invalid"));
    }
    if value.chars().count() > 256 {
        return Err(invalid_argument("The TagValue you have provided is invalid"));
    }
    Ok(())
}

fn filter_from(rule: &RuleDraft) -> CoreResult<LifecycleFilter> {
    let Some(f) = &rule.filter else {
        // Before `Filter` existed a rule named its prefix itself; one of the two is required.
        return rule.prefix.clone().map(LifecycleFilter::RulePrefix).ok_or_else(malformed);
    };
    if rule.prefix.is_some() {
        return Err(malformed());
    }
    let given = [
        f.prefix.is_some(),
        f.tag.is_some(),
        f.size_greater_than.is_some(),
        f.size_less_than.is_some(),
        f.and.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(malformed());
    }
    if let Some((k, v)) = &f.tag {
        check_tag(k, v)?;
        return Ok(LifecycleFilter::Tag(k.clone(), v.clone()));
    }
    if let Some(n) = size(f.size_greater_than)? {
        return Ok(LifecycleFilter::SizeGreaterThan(n));
    }
    if let Some(n) = size(f.size_less_than)? {
        if n == 0 {
            return Err(invalid_argument("ObjectSizeLessThan must be a positive integer"));
        }
        return Ok(LifecycleFilter::SizeLessThan(n));
    }
    let Some(and) = &f.and else {
        return Ok(LifecycleFilter::Prefix(f.prefix.clone()));
    };
    let mut keys = BTreeSet::new();
    for (k, v) in &and.tags {
        check_tag(k, v)?;
        if !keys.insert(k.as_str()) {
            return Err(invalid_argument("Duplicate Tag Keys are not allowed."));
        }
    }
    let (greater, less) = (size(and.size_greater_than)?, size(and.size_less_than)?);
    if let (Some(g), Some(l)) = (greater, less)
        && g >= l
    {
        return Err(invalid_argument("ObjectSizeGreaterThan must be less than ObjectSizeLessThan in the And filter"));
    }
    Ok(LifecycleFilter::And {
        prefix: and.prefix.clone(),
        tags: and.tags.clone(),
        size_greater_than: greater,
        size_less_than: less,
    })
}

fn rule_from(draft: &RuleDraft) -> CoreResult<LifecycleRule> {
    let enabled = match draft.status.as_str() {
        "Enabled" => true,
        "Disabled" => false,
        _ => return Err(malformed()),
    };
    let id = draft.id.clone().unwrap_or_default();
    if id.chars().count() > MAX_ID {
        return Err(invalid_argument("ID length should not exceed allowed limit of 255"));
    }
    let filter = filter_from(draft)?;
    let expiration = match &draft.expiration {
        None => None,
        Some(e) => {
            let marker = e.expired_object_delete_marker == Some(true);
            match (e.days, e.date_ms, marker) {
                (None, None, false) if e.expired_object_delete_marker.is_some() => None,
                (None, None, false) | (Some(_), Some(_), _) => return Err(malformed()),
                (Some(_), None, true) | (None, Some(_), true) => {
                    return Err(invalid_request(
                        "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy",
                    ));
                }
                (Some(days), None, false) => {
                    Some(Expiration::Days(positive(Some(days), "'Days' for Expiration action")?))
                }
                (None, Some(date), false) => {
                    if date.rem_euclid(xregion_types::lifecycle::DAY_MS) != 0 {
                        return Err(invalid_argument("'Date' must be at midnight GMT"));
                    }
                    Some(Expiration::Date(date))
                }
                (None, None, true) => {
                    if filter.needs_object() {
                        return Err(invalid_request(
                            "ExpiredObjectDeleteMarker cannot be specified with a tag or object size filter",
                        ));
                    }
                    Some(Expiration::ExpiredObjectDeleteMarker)
                }
            }
        }
    };
    let noncurrent = match &draft.noncurrent {
        None => None,
        Some(n) => {
            let days = positive(n.days, "'NoncurrentDays' for NoncurrentVersionExpiration action")?;
            let newer_versions = match n.newer_versions {
                None => None,
                Some(v) if (1..=MAX_NEWER_VERSIONS).contains(&v) => Some(v.unsigned_abs()),
                Some(_) => {
                    return Err(invalid_argument(
                        "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer \
                         up to 100",
                    ));
                }
            };
            Some(NoncurrentExpiration { days, newer_versions })
        }
    };
    let abort_incomplete_upload_days = match draft.abort_incomplete_upload {
        None => None,
        Some(days) => {
            if filter.needs_object() {
                return Err(invalid_request(
                    "AbortIncompleteMultipartUpload cannot be specified with a tag or object size filter",
                ));
            }
            Some(positive(days, "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action")?)
        }
    };
    if expiration.is_none() && noncurrent.is_none() && abort_incomplete_upload_days.is_none() {
        return Err(invalid_request("At least one action needs to be specified in a rule"));
    }
    Ok(LifecycleRule { id, enabled, filter, expiration, noncurrent, abort_incomplete_upload_days })
}

/// Checks a configuration as S3 does and returns what to store (rules without an ID get a
/// generated one).
pub fn validate(draft: &LifecycleDraft) -> CoreResult<LifecycleConfig> {
    if draft.rules.is_empty() {
        return Err(malformed());
    }
    if draft.rules.len() > MAX_RULES {
        return Err(invalid_argument("Lifecycle configuration must not have more than 1000 rules"));
    }
    let mut rules = draft.rules.iter().map(rule_from).collect::<CoreResult<Vec<_>>>()?;
    let mut ids = BTreeSet::new();
    for rule in rules.iter().filter(|r| !r.id.is_empty()) {
        if !ids.insert(rule.id.clone()) {
            return Err(invalid_argument("Rule ID must be unique. Found same ID for more than one rule"));
        }
    }
    for rule in rules.iter_mut().filter(|r| r.id.is_empty()) {
        rule.id = loop {
            let id = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 36]>());
            if ids.insert(id.clone()) {
                break id;
            }
        };
    }
    Ok(LifecycleConfig { rules })
}

/// The stored bytes of a configuration.
pub fn encode(config: &LifecycleConfig) -> Vec<u8> {
    // Serialising plain owned data (strings, integers, vectors) into a Vec cannot fail.
    match postcard::to_extend(config, vec![FORMAT_V1]) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard encode of a lifecycle configuration: {e}"),
    }
}

/// A configuration from its stored bytes.
pub fn decode(bytes: &[u8]) -> CoreResult<LifecycleConfig> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest)
            .map_err(|e| CoreError::Internal(format!("stored lifecycle configuration is corrupt: {e}"))),
        Some((v, _)) => Err(CoreError::Internal(format!("stored lifecycle configuration has unknown format {v}"))),
        None => Err(CoreError::Internal("stored lifecycle configuration is empty".into())),
    }
}

impl Region {
    /// GetBucketLifecycleConfiguration: the stored configuration, or
    /// `NoSuchLifecycleConfiguration`.
    pub fn lifecycle_config(&self, bucket: &str) -> CoreResult<LifecycleConfig> {
        match self.bucket(bucket)?.lifecycle {
            Some(bytes) => decode(&bytes),
            None => Err(CoreError::NoSuchLifecycleConfiguration),
        }
    }

    /// PutBucketLifecycleConfiguration: validates and stores (replacing the previous one).
    pub async fn put_lifecycle(&self, bucket: &str, draft: &LifecycleDraft) -> CoreResult<LifecycleConfig> {
        self.bucket(bucket)?;
        let config = validate(draft)?;
        self.set_lifecycle(bucket, Some(encode(&config))).await?;
        self.lifecycle_wake().notify_one();
        Ok(config)
    }

    /// DeleteBucketLifecycle (idempotent).
    pub async fn delete_lifecycle(&self, bucket: &str) -> CoreResult<()> {
        self.set_lifecycle(bucket, None).await
    }

    async fn set_lifecycle(&self, bucket: &str, config: Option<Vec<u8>>) -> CoreResult<()> {
        match self.meta().write(WriteOp::SetLifecycle { name: bucket.to_owned(), config }).await? {
            WriteOutcome::Bucket(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests;
