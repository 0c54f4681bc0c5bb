//! Conditional request headers (RFC 9110 §13 as S3 applies them).

use crate::{CoreError, CoreResult};

/// An entity-tag condition: `*` or a list of ETags (quotes stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`: any existing object.
    Any,
    /// One of these ETags.
    List(Vec<String>),
}

impl EtagMatch {
    fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(l) => l.iter().any(|e| e.trim_matches('"') == etag),
        }
    }
}

/// Preconditions of a GET/HEAD/CopyObject source, times in unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadConditions {
    /// If-Match.
    pub if_match: Option<EtagMatch>,
    /// If-None-Match.
    pub if_none_match: Option<EtagMatch>,
    /// If-Modified-Since (unix seconds).
    pub if_modified_since: Option<i64>,
    /// If-Unmodified-Since (unix seconds).
    pub if_unmodified_since: Option<i64>,
}

impl ReadConditions {
    /// Checks the conditions against an object's ETag and Last-Modified (unix ms).
    /// If-Match beats If-Unmodified-Since, If-None-Match beats If-Modified-Since (S3 rules).
    pub fn check(&self, etag: &str, last_modified_ms: i64) -> CoreResult<()> {
        let modified_s = last_modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(m) if !m.matches(etag) => return Err(CoreError::PreconditionFailed),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_unmodified_since
                    && modified_s > t
                {
                    return Err(CoreError::PreconditionFailed);
                }
            }
        }
        match &self.if_none_match {
            Some(m) if m.matches(etag) => return Err(CoreError::NotModified),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_modified_since
                    && modified_s <= t
                {
                    return Err(CoreError::NotModified);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let c = ReadConditions {
            if_match: Some(EtagMatch::List(vec!["\"abc\"".into()])),
            if_unmodified_since: Some(0),
            ..Default::default()
        };
        assert!(c.check("abc", 10_000).is_ok());
        assert!(matches!(c.check("def", 10_000), Err(CoreError::PreconditionFailed)));
        let c = ReadConditions { if_none_match: Some(EtagMatch::Any), ..Default::default() };
        assert!(matches!(c.check("abc", 0), Err(CoreError::NotModified)));
        let c = ReadConditions { if_modified_since: Some(10), ..Default::default() };
        assert!(matches!(c.check("abc", 10_999), Err(CoreError::NotModified)));
        assert!(c.check("abc", 11_000).is_ok());
    }
}
