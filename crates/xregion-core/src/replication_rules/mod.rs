//! The replication rule engine: validation of `PutBucketReplication` (spec §3, VAL-*), which
//! tasks a new version gets (PRI-1, ELI-4/5/13, DEL-2..4), and the stored form of a bucket's
//! replication configuration.
//!
//! The protocol layer turns the XML document into a [`ConfigDraft`] without judging it (every
//! element optional, enums as the strings sent); [`validate`] applies the spec's checks in
//! the spec's order (VAL-1) and returns the domain model.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use xregion_types::replication::{
    Destination, Filter, FilterShape, ReplicationConfig, ReplicationTask, Rule, RuleSchema, TaskKind,
};
use xregion_types::{BucketName, InvalidInput, VersioningState};

use crate::CoreError;

/// Format version of the stored configuration (first byte of `BucketRecord::replication`).
const FORMAT_V1: u8 = 1;

// ---------------------------------------------------------------------------------------
// Planning (PRI-1)
// ---------------------------------------------------------------------------------------

/// PRI-1 / ELI-4/5/8/13 / DEL-2..4: the tasks a new version must get, one per destination.
/// `is_replica`: the version was written by replication. It is never re-replicated (ELI-13);
/// only a tag change made on it is planned, under the enabled rules with ReplicaModifications
/// Enabled (TWO-4; priorities then decide among those rules).
///
/// Tasks come in the order in which their destination first appears in the rules.
/// ELI-8 (SSE-KMS objects need `SseKmsEncryptedObjects`) has no effect yet: the store has no
/// SSE-KMS objects.
pub fn plan(
    config: &ReplicationConfig,
    key: &str,
    tags: &[(String, String)],
    kind: TaskKind,
    is_replica: bool,
) -> Vec<ReplicationTask> {
    // ELI-13 / TWO-2: a replica is never replicated again by live replication. TWO-4: a tag
    // change made on a replica goes out only under rules with ReplicaModifications Enabled.
    if is_replica && kind != TaskKind::Tags {
        return Vec::new();
    }
    // CFG-9: one V1 rule makes the whole configuration V1.
    let v1 = is_v1(config);
    // PRI-1 steps 1-3: enabled rules whose filter selects the version.
    let candidates =
        config.rules.iter().filter(|r| r.enabled && (!is_replica || r.replica_modifications == Some(true)));
    let selected = candidates.filter(|rule| match kind {
        // DEL-4: a delete marker has no tags; tag-filtered rules never select it.
        TaskKind::DeleteMarker => !rule.filter.has_tags() && rule.filter.matches(key, &[]),
        // ELI-4/ELI-5 (Tags: same selection as the object, the caller knows a replica exists).
        TaskKind::Object | TaskKind::Tags => rule.filter.matches(key, tags),
    });
    winners(v1, selected)
        .into_iter()
        .filter(|rule| match kind {
            // DEL-2: V1 replicates user delete markers for matching rules. DEL-3/DEL-4: V2 only
            // when the winning rule enables DeleteMarkerReplication.
            TaskKind::DeleteMarker => v1 || rule.delete_marker_replication == Some(true),
            TaskKind::Object | TaskKind::Tags => true,
        })
        .map(|rule| task(rule, kind))
        .collect()
}

/// ELI-12 with ELI-5: the tasks a tag change of a replicated version gets, one per
/// destination in `targets` (where the version was planned to when it was written, in that
/// order), each under the rule that now wins for it (PRI-1) among the enabled rules whose
/// prefix selects the key. The tags are not judged again: eligibility was decided when the
/// version was written (ELI-5), and the change belongs on the replica that exists, also when
/// the new tags no longer match the rule's tag filter. A destination that no enabled rule
/// sends this key to any more gets nothing.
pub fn plan_change(config: &ReplicationConfig, key: &str, targets: &[String]) -> Vec<ReplicationTask> {
    let sends_key = |r: &&Rule| r.enabled && r.filter.prefix.as_deref().is_none_or(|p| key.starts_with(p));
    let winners = winners(is_v1(config), config.rules.iter().filter(sends_key));
    let mut tasks: Vec<ReplicationTask> = Vec::new();
    for target in targets {
        if tasks.iter().any(|t| &t.destination_bucket == target) {
            continue;
        }
        if let Some(rule) = winners.iter().find(|r| &r.destination.bucket == target) {
            tasks.push(task(rule, TaskKind::Tags));
        }
    }
    tasks
}

/// PRI-1 steps 3-5: of the `selected` rules, the one that wins for each destination, in order
/// of the destination's first appearance: the highest priority (V2; ties, impossible after
/// VAL-10, keep the first), or the first in document order (V1, PRI-4).
fn winners<'a>(v1: bool, selected: impl Iterator<Item = &'a Rule>) -> Vec<&'a Rule> {
    let mut order: Vec<&str> = Vec::new();
    let mut winners: BTreeMap<&str, &Rule> = BTreeMap::new();
    for rule in selected {
        let dest = rule.destination.bucket.as_str();
        match winners.get(dest) {
            None => {
                order.push(dest);
                winners.insert(dest, rule);
            }
            Some(current) if !v1 && rule.priority > current.priority => {
                winners.insert(dest, rule);
            }
            Some(_) => {}
        }
    }
    // PRI-1 step 5: one task per destination.
    order.into_iter().filter_map(|dest| winners.get(dest).copied()).collect()
}

/// The task a winning rule gives.
fn task(rule: &Rule, kind: TaskKind) -> ReplicationTask {
    ReplicationTask {
        kind,
        rule_id: rule.id.clone(),
        destination_bucket: rule.destination.bucket.clone(),
        storage_class: rule.destination.storage_class.clone(),
        batch: false,
    }
}

/// CFG-9: a configuration in which any rule is V1 is V1 as a whole.
pub fn is_v1(config: &ReplicationConfig) -> bool {
    config.rules.iter().any(|r| r.schema == RuleSchema::V1)
}

// ---------------------------------------------------------------------------------------
// Stored form
// ---------------------------------------------------------------------------------------

/// Encode/decode the stored form (postcard with a leading format-version byte) for
/// `BucketRecord::replication`.
pub fn encode(config: &ReplicationConfig) -> Vec<u8> {
    let out = vec![FORMAT_V1];
    // Serialising plain owned data (strings, integers, vectors) into a Vec cannot fail.
    match postcard::to_extend(config, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard encode of a replication configuration: {e}"),
    }
}

/// Decodes the stored form written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<ReplicationConfig, CoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest)
            .map_err(|e| CoreError::Internal(format!("stored replication configuration is corrupt: {e}"))),
        Some((v, _)) => Err(CoreError::Internal(format!("stored replication configuration has unknown format {v}"))),
        None => Err(CoreError::Internal("stored replication configuration is empty".into())),
    }
}

// ---------------------------------------------------------------------------------------
// Validation (§3)
// ---------------------------------------------------------------------------------------

/// `PutBucketReplication` input as it was sent: every element optional, enum values as the
/// strings sent. Built by the protocol layer without judging it; [`validate`] judges it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDraft {
    /// `Role`.
    pub role: Option<String>,
    /// `Rule` elements in document order.
    pub rules: Vec<RuleDraft>,
}

/// One `Rule` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDraft {
    /// `ID`.
    pub id: Option<String>,
    /// `Priority`.
    pub priority: Option<i32>,
    /// Rule-level `Prefix` (V1).
    pub prefix: Option<String>,
    /// `Filter` (V2).
    pub filter: Option<FilterDraft>,
    /// `Status`.
    pub status: Option<String>,
    /// `SourceSelectionCriteria/SseKmsEncryptedObjects/Status`, when the element is present.
    pub sse_kms_encrypted_objects: Option<String>,
    /// `SourceSelectionCriteria/ReplicaModifications/Status`, when the element is present.
    pub replica_modifications: Option<String>,
    /// `ExistingObjectReplication/Status`, when the element is present.
    pub existing_object_replication: Option<String>,
    /// `Destination`.
    pub destination: Option<DestinationDraft>,
    /// `DeleteMarkerReplication`: `Some(status)` when the element is present (its `Status` is
    /// optional in the schema).
    pub delete_marker_replication: Option<Option<String>>,
}

/// A `Filter` as sent: at most one child is legal (VAL-8b).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterDraft {
    /// `Filter/Prefix`.
    pub prefix: Option<String>,
    /// `Filter/Tag`.
    pub tag: Option<TagDraft>,
    /// `Filter/And`.
    pub and: Option<AndDraft>,
}

/// `Filter/And` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AndDraft {
    /// `And/Prefix`.
    pub prefix: Option<String>,
    /// `And/Tag` elements.
    pub tags: Vec<TagDraft>,
}

/// A `Tag` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagDraft {
    /// `Key`.
    pub key: Option<String>,
    /// `Value`.
    pub value: Option<String>,
}

/// A `Destination` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationDraft {
    /// `Bucket` (an ARN).
    pub bucket: Option<String>,
    /// `Account`.
    pub account: Option<String>,
    /// `StorageClass`.
    pub storage_class: Option<String>,
    /// `AccessControlTranslation/Owner`, when the element is present.
    pub access_control_owner: Option<String>,
    /// `EncryptionConfiguration`: `Some(ReplicaKmsKeyID)` when the element is present.
    pub encryption_configuration: Option<Option<String>>,
    /// `ReplicationTime`.
    pub replication_time: Option<ReplicationTimeDraft>,
    /// `Metrics`.
    pub metrics: Option<MetricsDraft>,
}

/// `ReplicationTime` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationTimeDraft {
    /// `Status`.
    pub status: Option<String>,
    /// `Time/Minutes`.
    pub minutes: Option<i32>,
}

/// `Metrics` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsDraft {
    /// `Status`.
    pub status: Option<String>,
    /// `EventThreshold`: `Some(Minutes)` when the element is present.
    pub event_threshold: Option<Option<i32>>,
}

/// Most rules a configuration may hold (CFG-4, VAL-14).
pub const MAX_RULES: usize = 1000;
/// Largest configuration document, in bytes (CFG-4, VAL-14).
pub const MAX_DOCUMENT_BYTES: u64 = 2 * 1024 * 1024;
/// Longest rule `ID` (VAL-12).
pub const MAX_ID_LEN: usize = 255;
/// Longest prefix (VAL-13).
pub const MAX_PREFIX_LEN: usize = 1024;

/// The only `Minutes` value RTC and metrics accept (VAL-19).
const RTC_MINUTES: i32 = 15;

/// Message of every schema violation (VAL-4, VAL-8a, VAL-8b, VAL-14, VAL-17).
pub const MALFORMED_XML: &str =
    "The XML you provided was not well-formed or did not validate against our published schema";
/// VAL-2.
pub const MSG_SOURCE_VERSIONING: &str =
    "Versioning must be 'Enabled' on the bucket to apply a replication configuration";
/// VAL-3.
pub const MSG_DESTINATION_VERSIONING: &str = "Destination bucket must have versioning enabled.";
/// VAL-16 (the protocol layer adds `ArgumentName` Role to the error body).
pub const MSG_INVALID_ROLE: &str = "Invalid Role specified in replication configuration";

const REFER: &str = "Please refer to S3 Developer Guide for more information.";

fn malformed() -> CoreError {
    CoreError::Invalid(InvalidInput::new("MalformedXML", MALFORMED_XML))
}

pub(crate) fn invalid_request(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(InvalidInput::new("InvalidRequest", msg))
}

fn invalid_argument(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(InvalidInput::new("InvalidArgument", msg))
}

/// VAL-5/VAL-7a: "… must be specified for this version …".
fn must_be_specified(element: &str) -> CoreError {
    invalid_request(format!(
        "{element} must be specified for this version of Cross Region Replication configuration schema. {REFER}"
    ))
}

/// VAL-6/VAL-7/VAL-24, CFG-9: "… cannot be used for this version …".
fn cannot_be_used(element: &str) -> CoreError {
    invalid_request(format!(
        "{element} cannot be used for this version of Cross Region Replication configuration schema. {REFER}"
    ))
}

/// Storage classes a destination accepts (CFG-4).
const STORAGE_CLASSES: [&str; 9] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "OUTPOSTS",
];
/// Storage classes of the API enum that replication does not accept (CFG-4).
const STORAGE_CLASSES_REFUSED: [&str; 4] = ["SNOW", "EXPRESS_ONEZONE", "FSX_ONTAP", "FSX_OPENZFS"];

/// `Enabled`/`Disabled` → bool; anything else is a schema violation (VAL-8b).
fn status(s: Option<&str>) -> Result<bool, CoreError> {
    match s {
        Some("Enabled") => Ok(true),
        Some("Disabled") => Ok(false),
        _ => Err(malformed()),
    }
}

/// VAL-14: a configuration document larger than 2 MB is refused like the other schema limits.
pub fn check_document_size(len: u64) -> Result<(), CoreError> {
    if len > MAX_DOCUMENT_BYTES { Err(malformed()) } else { Ok(()) }
}

/// Validates a `PutBucketReplication` document for `source_bucket` (whose versioning state is
/// `source_versioning`) and returns the model to store, with generated IDs (CFG-13).
///
/// Order of checks (VAL-1): the schema (`MalformedXML`) for the whole document, then source
/// versioning (VAL-2), then per-rule checks in document order. Disabled rules are validated
/// like enabled ones. Destination existence and versioning (VAL-3) need other buckets and are
/// checked afterwards by [`crate::Region::set_replication`].
pub fn validate(
    draft: &ConfigDraft,
    source_bucket: &str,
    source_versioning: VersioningState,
) -> Result<ReplicationConfig, CoreError> {
    check_schema(draft)?;
    // VAL-2.
    if source_versioning != VersioningState::Enabled {
        return Err(invalid_request(MSG_SOURCE_VERSIONING));
    }
    // VAL-16.
    let role = draft.role.as_deref().unwrap_or_default();
    if !is_role_arn(role) {
        return Err(invalid_argument(MSG_INVALID_ROLE));
    }
    // CFG-8/CFG-9: a rule without `Filter` is V1, and one V1 rule makes the document V1.
    let v1 = draft.rules.iter().any(|r| r.filter.is_none());
    let mut ids = BTreeSet::new();
    let mut priorities = BTreeSet::new();
    let mut destinations = BTreeSet::new();
    let mut rules = Vec::with_capacity(draft.rules.len());
    for rd in &draft.rules {
        let rule = check_rule(rd, v1, source_bucket)?;
        // VAL-11.
        if let Some(id) = rd.id.as_deref().filter(|id| !id.is_empty())
            && !ids.insert(id)
        {
            return Err(invalid_argument("Rule Id must be unique"));
        }
        // VAL-10.
        if let Some(p) = rule.priority
            && !priorities.insert(p)
        {
            return Err(invalid_request(format!("Found duplicate priority {p}.")));
        }
        // VAL-8.
        destinations.insert(rule.destination.bucket_arn.clone());
        if v1 && destinations.len() > 1 {
            return Err(invalid_request("Number of distinct destination bucket ARNs cannot exceed 1"));
        }
        rules.push(rule);
    }
    // CFG-13: a generated, unique ID for rules that had none.
    for i in 0..rules.len() {
        if rules[i].id.is_empty() {
            rules[i].id = loop {
                let id = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 36]>());
                if !rules.iter().any(|r| r.id == id) {
                    break id;
                }
            };
        }
    }
    Ok(ReplicationConfig { role: role.to_owned(), rules })
}

/// VAL-4, VAL-8a, VAL-8b, VAL-14, VAL-17: what the published schema forbids, reported as
/// `MalformedXML` before any other check.
fn check_schema(draft: &ConfigDraft) -> Result<(), CoreError> {
    if draft.role.is_none() || draft.rules.is_empty() || draft.rules.len() > MAX_RULES {
        return Err(malformed());
    }
    for r in &draft.rules {
        status(r.status.as_deref())?;
        // VAL-17: ExistingObjectReplication needs an allow-list we do not have.
        if r.existing_object_replication.is_some() {
            return Err(malformed());
        }
        match (&r.prefix, &r.filter) {
            // VAL-8a / VAL-8b.
            (None, None) | (Some(_), Some(_)) => return Err(malformed()),
            (None, Some(f)) => {
                let children = [f.prefix.is_some(), f.tag.is_some(), f.and.is_some()];
                if children.iter().filter(|c| **c).count() > 1 {
                    return Err(malformed());
                }
                let tags = f.tag.iter().chain(f.and.iter().flat_map(|a| a.tags.iter()));
                if tags.into_iter().any(|t| t.key.is_none() || t.value.is_none()) {
                    return Err(malformed());
                }
            }
            (Some(_), None) => {}
        }
        if let Some(Some(s)) = &r.delete_marker_replication {
            status(Some(s))?;
        }
        if let Some(s) = &r.sse_kms_encrypted_objects {
            status(Some(s))?;
        }
        if let Some(s) = &r.replica_modifications {
            status(Some(s))?;
        }
        let Some(d) = &r.destination else { return Err(malformed()) };
        if d.bucket.is_none() {
            return Err(malformed());
        }
        if let Some(sc) = d.storage_class.as_deref()
            && !STORAGE_CLASSES.contains(&sc)
            && !STORAGE_CLASSES_REFUSED.contains(&sc)
        {
            return Err(malformed());
        }
        if d.access_control_owner.as_deref().is_some_and(|o| o != "Destination") {
            return Err(malformed());
        }
        if let Some(t) = &d.replication_time {
            status(t.status.as_deref())?;
        }
        if let Some(m) = &d.metrics {
            status(m.status.as_deref())?;
        }
    }
    Ok(())
}

/// The per-rule semantic checks, in a fixed order; `v1` is the document's schema (CFG-9).
fn check_rule(r: &RuleDraft, v1: bool, source_bucket: &str) -> Result<Rule, CoreError> {
    // VAL-12.
    let id = r.id.clone().unwrap_or_default();
    if id.chars().count() > MAX_ID_LEN {
        return Err(invalid_argument(format!("ID length should not exceed allowed limit of {MAX_ID_LEN}")));
    }
    // VAL-13.
    let prefixes = [
        r.prefix.as_deref(),
        r.filter.as_ref().and_then(|f| f.prefix.as_deref()),
        r.filter.as_ref().and_then(|f| f.and.as_ref()).and_then(|a| a.prefix.as_deref()),
    ];
    if prefixes.iter().flatten().any(|p| p.len() > MAX_PREFIX_LEN) {
        return Err(invalid_argument(format!("Prefix length should not exceed allowed limit of {MAX_PREFIX_LEN}")));
    }
    let dest = r.destination.as_ref().ok_or_else(malformed)?;
    if v1 {
        // VAL-6, VAL-7, VAL-24 (TWO-5), CFG-9 (RTC is V2).
        if r.delete_marker_replication.is_some() {
            return Err(cannot_be_used("DeleteMarkerReplication"));
        }
        if r.priority.is_some() {
            return Err(cannot_be_used("Priority"));
        }
        if r.replica_modifications.is_some() {
            return Err(cannot_be_used("ReplicaModifications"));
        }
        if dest.replication_time.is_some() {
            return Err(cannot_be_used("ReplicationTime"));
        }
    } else {
        // VAL-5, VAL-7a.
        if r.delete_marker_replication.is_none() {
            return Err(must_be_specified("DeleteMarkerReplication"));
        }
        if r.priority.is_none() {
            return Err(must_be_specified("Priority"));
        }
    }
    let filter = to_filter(r)?;
    let dmr = r.delete_marker_replication.as_ref().map(|s| s.as_deref() == Some("Enabled"));
    // VAL-9 (DEL-3).
    if dmr == Some(true) && filter.has_tags() {
        return Err(invalid_request(format!(
            "Delete marker replication is not supported if any Tag filter is specified. {REFER}"
        )));
    }
    let destination = check_destination(dest, source_bucket)?;
    let sse_kms = r.sse_kms_encrypted_objects.as_deref().map(|s| s == "Enabled");
    // VAL-21.
    if sse_kms == Some(true) && destination.replica_kms_key_id.is_none() {
        return Err(invalid_request("ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects tag is present."));
    }
    // VAL-22.
    if dest.encryption_configuration.is_some() && sse_kms.is_none() {
        return Err(invalid_request("SseKmsEncryptedObjects must be specified if EncryptionConfiguration is present."));
    }
    Ok(Rule {
        id,
        priority: if v1 { None } else { r.priority },
        enabled: status(r.status.as_deref())?,
        schema: if r.filter.is_some() { RuleSchema::V2 } else { RuleSchema::V1 },
        filter,
        destination,
        delete_marker_replication: dmr,
        sse_kms_encrypted_objects: sse_kms,
        replica_modifications: r.replica_modifications.as_deref().map(|s| s == "Enabled"),
        existing_object_replication: None,
    })
}

/// The rule's filter (ELI-4); VAL-25 for duplicated tag keys.
fn to_filter(r: &RuleDraft) -> Result<Filter, CoreError> {
    let tag = |t: &TagDraft| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default());
    let Some(f) = &r.filter else {
        // V1: the rule-level prefix.
        return Ok(Filter { prefix: r.prefix.clone(), tags: Vec::new(), shape: FilterShape::Empty });
    };
    if let Some(and) = &f.and {
        let tags: Vec<(String, String)> = and.tags.iter().map(tag).collect();
        let keys: BTreeSet<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        if keys.len() != tags.len() {
            return Err(invalid_request("Duplicate Tag Keys are not allowed."));
        }
        return Ok(Filter { prefix: and.prefix.clone(), tags, shape: FilterShape::And });
    }
    if let Some(t) = &f.tag {
        return Ok(Filter { prefix: None, tags: vec![tag(t)], shape: FilterShape::Tag });
    }
    if let Some(p) = &f.prefix {
        return Ok(Filter { prefix: Some(p.clone()), tags: Vec::new(), shape: FilterShape::Prefix });
    }
    Ok(Filter::default())
}

/// The destination's own checks: VAL-15, VAL-15a, storage class, VAL-23, VAL-18..20.
fn check_destination(d: &DestinationDraft, source_bucket: &str) -> Result<Destination, CoreError> {
    let arn = d.bucket.clone().unwrap_or_default();
    // VAL-15.
    let bucket = parse_bucket_arn(&arn).ok_or_else(|| invalid_argument("Invalid bucket ARN"))?;
    // VAL-15a.
    if bucket == source_bucket {
        return Err(invalid_request("Destination bucket cannot be the same as the source bucket."));
    }
    // CFG-4: in the API enum, but not a replication storage class [I].
    if let Some(sc) = d.storage_class.as_deref()
        && STORAGE_CLASSES_REFUSED.contains(&sc)
    {
        return Err(CoreError::Invalid(InvalidInput::new(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
        )));
    }
    // VAL-23.
    if d.access_control_owner.is_some() && d.account.is_none() {
        return Err(invalid_request("Account must be specified if the Owner in AccessControlTranslation has a value"));
    }
    let rtc = match &d.replication_time {
        Some(t) => Some((status(t.status.as_deref())?, t.minutes)),
        None => None,
    };
    let metrics = match &d.metrics {
        Some(m) => Some((status(m.status.as_deref())?, m.event_threshold)),
        None => None,
    };
    // VAL-18.
    if rtc.is_some() && metrics.is_none() {
        return Err(invalid_request(
            "Replication destination must contain both ReplicationTime and Metrics or neither.",
        ));
    }
    // VAL-19 (time).
    if let Some((_, minutes)) = rtc
        && minutes != Some(RTC_MINUTES)
    {
        return Err(invalid_argument("Invalid time minute value"));
    }
    // VAL-20.
    if let Some((_, threshold)) = metrics {
        let rtc_enabled = rtc.is_some_and(|(enabled, _)| enabled);
        if rtc_enabled && threshold.is_none() {
            return Err(invalid_argument("ReplicationMetrics must contain an event threshold"));
        }
        if !rtc_enabled && threshold.is_some() {
            return Err(invalid_argument(
                "Metrics cannot contain an event threshold when ReplicationTime is not specified or Disabled",
            ));
        }
        // VAL-19 (event threshold).
        if let Some(minutes) = threshold
            && minutes != Some(RTC_MINUTES)
        {
            return Err(invalid_argument("Invalid event threshold minute value"));
        }
    }
    Ok(Destination {
        bucket_arn: arn,
        bucket,
        account: d.account.clone(),
        storage_class: d.storage_class.clone(),
        owner_override: d.access_control_owner.is_some(),
        replica_kms_key_id: d.encryption_configuration.clone().flatten(),
        replication_time: rtc.map(|(enabled, minutes)| (enabled, minutes.unwrap_or(RTC_MINUTES))),
        metrics: metrics.map(|(enabled, threshold)| (enabled, threshold.flatten())),
    })
}

/// An ARN partition: `aws`, `aws-cn`, `aws-us-gov`, …
fn is_partition(p: &str) -> bool {
    p.starts_with("aws") && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// VAL-15: `arn:<partition>:s3:::<bucket>` → the bucket name.
pub fn parse_bucket_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "s3", "", "", name] if is_partition(partition) => {
            BucketName::parse(name).ok().map(|n| n.as_str().to_owned())
        }
        _ => None,
    }
}

/// VAL-16: `arn:<partition>:iam::<12-digit account>:role/<path/>name`.
pub fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            is_partition(partition)
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
