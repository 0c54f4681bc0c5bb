//! A bucket's lifecycle configuration (S3's `PutBucketLifecycleConfiguration`) as validated
//! and stored, and the arithmetic of when its actions are due. Validation lives in
//! `xregion-core` (`lifecycle/`), which also carries the actions out.

use serde::{Deserialize, Serialize};

/// One day, in milliseconds: the unit of every lifecycle period.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The rules of one bucket, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// At most 1000.
    pub rules: Vec<LifecycleRule>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// `ID` (generated when absent, as S3 does), at most 255 characters, unique.
    pub id: String,
    /// `Status`: `Enabled` (else `Disabled`: kept, not applied).
    pub enabled: bool,
    /// Which objects the rule applies to.
    pub filter: LifecycleFilter,
    /// `Expiration`: of current versions, or of expired delete markers.
    pub expiration: Option<Expiration>,
    /// `NoncurrentVersionExpiration`.
    pub noncurrent: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload.DaysAfterInitiation`.
    pub abort_incomplete_upload_days: Option<u32>,
}

/// The rule's filter, in the form it was given (GET echoes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleFilter {
    /// The rule's own `Prefix` element (the form before `Filter` existed).
    RulePrefix(String),
    /// `<Filter/>` (every object) or `<Filter><Prefix>…</Prefix></Filter>`.
    Prefix(Option<String>),
    /// `<Filter><Tag>…</Tag></Filter>`.
    Tag(String, String),
    /// `<Filter><ObjectSizeGreaterThan>…</ObjectSizeGreaterThan></Filter>`.
    SizeGreaterThan(u64),
    /// `<Filter><ObjectSizeLessThan>…</ObjectSizeLessThan></Filter>`.
    SizeLessThan(u64),
    /// `<Filter><And>…</And></Filter>`: all of them.
    And {
        /// `Prefix`.
        prefix: Option<String>,
        /// `Tag`s.
        tags: Vec<(String, String)>,
        /// `ObjectSizeGreaterThan` (bytes).
        size_greater_than: Option<u64>,
        /// `ObjectSizeLessThan` (bytes).
        size_less_than: Option<u64>,
    },
}

impl LifecycleFilter {
    /// The key prefix the filter asks for (empty: any key).
    pub fn prefix(&self) -> &str {
        match self {
            Self::RulePrefix(p) => p,
            Self::Prefix(p) | Self::And { prefix: p, .. } => p.as_deref().unwrap_or(""),
            _ => "",
        }
    }

    /// Whether the filter looks at anything but the key (tags or size): such a rule never
    /// applies to delete markers, which have neither.
    pub fn needs_object(&self) -> bool {
        match self {
            Self::Tag(..) | Self::SizeGreaterThan(_) | Self::SizeLessThan(_) => true,
            Self::And { tags, size_greater_than, size_less_than, .. } => {
                !tags.is_empty() || size_greater_than.is_some() || size_less_than.is_some()
            }
            Self::RulePrefix(_) | Self::Prefix(_) => false,
        }
    }

    /// Whether an object version (its key, size and tags) matches.
    pub fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        let has = |k: &str, v: &str| tags.iter().any(|(tk, tv)| tk == k && tv == v);
        key.starts_with(self.prefix())
            && match self {
                Self::Tag(k, v) => has(k, v),
                Self::SizeGreaterThan(n) => size > *n,
                Self::SizeLessThan(n) => size < *n,
                Self::And { tags: wanted, size_greater_than, size_less_than, .. } => {
                    wanted.iter().all(|(k, v)| has(k, v))
                        && size_greater_than.is_none_or(|n| size > n)
                        && size_less_than.is_none_or(|n| size < n)
                }
                Self::RulePrefix(_) | Self::Prefix(_) => true,
            }
    }

    /// Whether a delete marker with this key matches (prefix-only filters).
    pub fn matches_marker(&self, key: &str) -> bool {
        !self.needs_object() && key.starts_with(self.prefix())
    }
}

/// `Expiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// `Days`: current versions this many days after their creation.
    Days(u32),
    /// `Date` (unix milliseconds, midnight UTC): current versions from then on.
    Date(i64),
    /// `ExpiredObjectDeleteMarker: true`: a delete marker left without object versions.
    ExpiredObjectDeleteMarker,
}

/// `NoncurrentVersionExpiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// `NoncurrentDays`: days after the version became noncurrent.
    pub days: u32,
    /// `NewerNoncurrentVersions`: this many newer noncurrent versions are kept whatever
    /// their age.
    pub newer_versions: Option<u32>,
}

/// When an action `days` days after `start_ms` is due: S3 adds the days and rounds up to the
/// next midnight UTC. `day_ms` is a day's length ([`DAY_MS`]; shorter in tests), and
/// midnights are its multiples since the epoch.
pub fn due_ms(start_ms: i64, days: u32, day_ms: i64) -> i64 {
    let day_ms = day_ms.max(1);
    let at = start_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    at.div_euclid(day_ms).saturating_add(i64::from(at.rem_euclid(day_ms) != 0)).saturating_mul(day_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn due_rounds_up_to_midnight() {
        // Created 2026-01-01T10:00Z, 1 day: due 2026-01-03T00:00Z.
        let created = 1_767_261_600_000;
        assert_eq!(due_ms(created, 1, DAY_MS), 1_767_398_400_000);
        // Exactly at midnight stays there.
        assert_eq!(due_ms(1_767_225_600_000, 1, DAY_MS), 1_767_312_000_000);
        // A short test day.
        assert_eq!(due_ms(2_500, 2, 1_000), 5_000);
    }

    #[test]
    fn filters_match_as_s3_says() {
        let t = tags(&[("class", "tmp"), ("team", "a")]);
        assert!(LifecycleFilter::Prefix(None).matches("any", 0, &[]));
        assert!(LifecycleFilter::RulePrefix("logs/".into()).matches("logs/x", 0, &[]));
        assert!(!LifecycleFilter::Prefix(Some("logs/".into())).matches("data/x", 0, &[]));
        assert!(LifecycleFilter::Tag("class".into(), "tmp".into()).matches("k", 0, &t));
        assert!(!LifecycleFilter::Tag("class".into(), "keep".into()).matches("k", 0, &t));
        assert!(LifecycleFilter::SizeGreaterThan(10).matches("k", 11, &[]));
        assert!(!LifecycleFilter::SizeGreaterThan(10).matches("k", 10, &[]));
        assert!(LifecycleFilter::SizeLessThan(10).matches("k", 9, &[]));
        let and = LifecycleFilter::And {
            prefix: Some("logs/".into()),
            tags: tags(&[("class", "tmp"), ("team", "a")]),
            size_greater_than: Some(1),
            size_less_than: None,
        };
        assert!(and.matches("logs/1", 5, &t));
        assert!(!and.matches("logs/1", 5, &t[..1]));
        assert!(!and.matches("logs/1", 1, &t));
        assert!(and.needs_object() && !and.matches_marker("logs/1"));
        assert!(LifecycleFilter::Prefix(Some("logs/".into())).matches_marker("logs/1"));
    }
}
