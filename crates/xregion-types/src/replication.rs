//! Replication configuration (spec §2, CFG-*) as a domain model, and the replication task
//! that the write path commits into the outbox together with each version (IMPL-1).
//!
//! The model is what `PutBucketReplication` validated and what `GetBucketReplication`
//! returns; it is stored (postcard, with a format byte) in `BucketRecord::replication`.

use serde::{Deserialize, Serialize};

/// A bucket's replication configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationConfig {
    /// IAM role ARN (`Role`).
    pub role: String,
    /// Rules in document order.
    pub rules: Vec<Rule>,
}

/// Rule schema version (CFG-8): a rule with `Filter` is V2, with a rule-level `Prefix` V1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleSchema {
    /// Legacy rule-level `Prefix`.
    V1,
    /// `Filter` present.
    V2,
}

/// One replication rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `ID` (generated when absent).
    pub id: String,
    /// `Priority` (V2); `None` in V1.
    pub priority: Option<i32>,
    /// `Status`: Enabled.
    pub enabled: bool,
    /// V1 or V2.
    pub schema: RuleSchema,
    /// What the rule selects (V1: prefix only).
    pub filter: Filter,
    /// `Destination`.
    pub destination: Destination,
    /// `DeleteMarkerReplication/Status = Enabled` (V2); `None` when the element was absent.
    pub delete_marker_replication: Option<bool>,
    /// `SourceSelectionCriteria/SseKmsEncryptedObjects/Status`, if given.
    pub sse_kms_encrypted_objects: Option<bool>,
    /// `SourceSelectionCriteria/ReplicaModifications/Status`, if given.
    pub replica_modifications: Option<bool>,
    /// `ExistingObjectReplication/Status`, if given.
    pub existing_object_replication: Option<bool>,
}

/// A rule's filter (ELI-4). All present predicates must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Key prefix (`None` or empty: any key).
    pub prefix: Option<String>,
    /// Tags the version must carry (key, value), all of them.
    pub tags: Vec<(String, String)>,
    /// How the filter was written, to echo it back (CFG-11).
    pub shape: FilterShape,
}

/// The XML form a filter was given in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterShape {
    /// `<Filter/>` (or V1 rule prefix).
    #[default]
    Empty,
    /// `<Filter><Prefix>`.
    Prefix,
    /// `<Filter><Tag>`.
    Tag,
    /// `<Filter><And>`.
    And,
}

impl Filter {
    /// True if a version with this key and these tags is selected (ELI-4, ELI-5).
    pub fn matches(&self, key: &str, tags: &[(String, String)]) -> bool {
        let prefix_ok = self.prefix.as_deref().is_none_or(|p| key.starts_with(p));
        prefix_ok && self.tags.iter().all(|t| tags.contains(t))
    }

    /// True if the filter uses tags (such rules never replicate delete markers, DEL-3/4).
    pub fn has_tags(&self) -> bool {
        !self.tags.is_empty()
    }
}

/// A rule's destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// `Bucket` as given: `arn:aws:s3:::name`.
    pub bucket_arn: String,
    /// The bucket name parsed from the ARN.
    pub bucket: String,
    /// `Account`.
    pub account: Option<String>,
    /// `StorageClass` override (STS-14).
    pub storage_class: Option<String>,
    /// `AccessControlTranslation/Owner = Destination`.
    pub owner_override: bool,
    /// `EncryptionConfiguration/ReplicaKmsKeyID`.
    pub replica_kms_key_id: Option<String>,
    /// `ReplicationTime` (status enabled, minutes), echoed back.
    pub replication_time: Option<(bool, i32)>,
    /// `Metrics` (status enabled, event threshold minutes), echoed back.
    pub metrics: Option<(bool, Option<i32>)>,
}

/// What a replication task carries to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// A new object version (data + metadata + tags).
    Object,
    /// A delete marker (DEL-2/DEL-3).
    DeleteMarker,
    /// A metadata change (tag set) on an already-replicated version (ELI-12).
    Tags,
}

/// One unit of replication work: version `version` of `key` in the source bucket must
/// reach `destination_bucket`. Committed in the same transaction as the version (IMPL-1);
/// the metadata store attaches the version id, which is generated inside that transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationTask {
    /// What to send.
    pub kind: TaskKind,
    /// The rule that won for this destination (PRI-1).
    pub rule_id: String,
    /// Destination bucket name.
    pub destination_bucket: String,
    /// Storage class override for the replica.
    pub storage_class: Option<String>,
    /// Queued by batch replication (a job, or `/_xregion/batch-replication`) for a version
    /// that already existed, not by the write that made it: outside live replication's
    /// latency and Replication Time Control figures (MET-2, RTC-2).
    pub batch: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_semantics() {
        let f = Filter { prefix: Some("docs/".into()), tags: vec![("k".into(), "v".into())], shape: FilterShape::And };
        assert!(f.matches("docs/a", &[("k".into(), "v".into()), ("x".into(), "y".into())]));
        assert!(!f.matches("docs/a", &[("k".into(), "w".into())]));
        assert!(!f.matches("img/a", &[("k".into(), "v".into())]));
        assert!(Filter::default().matches("anything", &[]));
    }
}
