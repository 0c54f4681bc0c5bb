//! Authentication (secret lookup) and authorization (the identity hook) for s3s.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use xregion_identity::{Authorizer, Decision, Identity, Resource};

/// Looks up secrets for SigV4 verification.
pub(crate) struct Auth {
    identity: Identity,
}

impl Auth {
    pub(crate) fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.identity.secret_for(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}

/// Asks the authorizer about every request, with the action named as in IAM (`s3:<Op>`).
pub(crate) struct Access {
    identity: Identity,
    authorizer: Arc<dyn Authorizer>,
}

impl Access {
    pub(crate) fn new(identity: Identity, authorizer: Arc<dyn Authorizer>) -> Self {
        Self { identity, authorizer }
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let principal = cx.credentials().and_then(|c| self.identity.principal(&c.access_key)).cloned();
        let resource = match cx.s3_path() {
            S3Path::Root => Resource::Service,
            S3Path::Bucket { bucket } => Resource::Bucket(bucket.to_string()),
            S3Path::Object { bucket, key } => Resource::Object(bucket.to_string(), key.to_string()),
        };
        let action = format!("s3:{}", cx.s3_op().name());
        match self.authorizer.authorize(principal.as_ref(), &action, &resource) {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(s3_error!(AccessDenied, "Access Denied: {}", why)),
        }
    }
}
