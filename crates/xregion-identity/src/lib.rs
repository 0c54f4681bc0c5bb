//! Identity of xregion: who a request comes from (credentials → principal) and whether that
//! principal may perform an action on a resource (the authorization hook).
//!
//! Today a deployment has one root credential (from config or `XREGION_ACCESS_KEY` /
//! `XREGION_SECRET_KEY`) that may do everything, and anonymous requests are denied. Users,
//! roles and policies arrive later behind the same [`Authorizer`] trait: the protocol layer
//! asks `authorize(principal, action, resource)` for every request and never decides itself.
#![warn(missing_docs)]

pub mod sigv4;

use std::collections::HashMap;
use std::sync::Arc;

/// An access key pair.
#[derive(Clone)]
pub struct Credential {
    /// Access key id (public).
    pub access_key: String,
    /// Secret access key (never logged).
    pub secret_key: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// What kind of principal a credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The deployment's root account: may do everything, including writing replicas.
    Root,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key the request was signed with.
    pub access_key: String,
    /// Kind of principal.
    pub kind: PrincipalKind,
}

/// The resource an action applies to, in S3 ARN terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The service itself (ListBuckets).
    Service,
    /// `arn:aws:s3:::bucket`.
    Bucket(String),
    /// `arn:aws:s3:::bucket/key`.
    Object(String, String),
}

/// Outcome of an authorization check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The action may proceed.
    Allow,
    /// The action is denied; the message explains why (lowercase, no secrets).
    Deny(String),
}

/// Decides whether a principal may perform an S3 action (e.g. `s3:PutObject`) on a resource.
/// `principal` is `None` for anonymous requests.
pub trait Authorizer: Send + Sync + 'static {
    /// Evaluates one request.
    fn authorize(&self, principal: Option<&Principal>, action: &str, resource: &Resource) -> Decision;
}

/// The authorizer used until policies exist: root may do everything, anonymous nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct RootOnly;

impl Authorizer for RootOnly {
    fn authorize(&self, principal: Option<&Principal>, _action: &str, _resource: &Resource) -> Decision {
        match principal {
            Some(p) if p.kind == PrincipalKind::Root => Decision::Allow,
            Some(_) => Decision::Deny("access denied".into()),
            None => Decision::Deny("anonymous access is not allowed".into()),
        }
    }
}

/// The credential directory of a region: access key → (secret, principal).
#[derive(Clone, Default)]
pub struct Identity {
    keys: Arc<HashMap<String, (String, Principal)>>,
}

impl Identity {
    /// A directory holding only the root credential.
    pub fn with_root(root: Credential) -> Self {
        let principal = Principal { access_key: root.access_key.clone(), kind: PrincipalKind::Root };
        let mut keys = HashMap::new();
        keys.insert(root.access_key, (root.secret_key, principal));
        Self { keys: Arc::new(keys) }
    }

    /// The secret for an access key, if the key is known.
    pub fn secret_for(&self, access_key: &str) -> Option<&str> {
        self.keys.get(access_key).map(|(s, _)| s.as_str())
    }

    /// The principal behind an access key.
    pub fn principal(&self, access_key: &str) -> Option<&Principal> {
        self.keys.get(access_key).map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_only() {
        let id = Identity::with_root(Credential { access_key: "AK".into(), secret_key: "SK".into() });
        assert_eq!(id.secret_for("AK"), Some("SK"));
        assert_eq!(id.secret_for("nope"), None);
        let p = id.principal("AK").cloned();
        assert_eq!(RootOnly.authorize(p.as_ref(), "s3:GetObject", &Resource::Service), Decision::Allow);
        assert!(matches!(RootOnly.authorize(None, "s3:GetObject", &Resource::Service), Decision::Deny(_)));
        assert!(!format!("{:?}", Credential { access_key: "AK".into(), secret_key: "SK".into() }).contains("SK"));
    }
}
