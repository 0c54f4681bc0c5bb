//! Bucket use cases: create (deployment-wide unique names), locate, delete, versioning, tags.

use std::collections::BTreeSet;

use xregion_meta::{MetaError, WriteOp, WriteOutcome};
use xregion_types::replication::ReplicationConfig;
use xregion_types::{BucketName, BucketRecord, VersioningState, now_ms};

use crate::replication_rules::{self, ConfigDraft};
use crate::{CoreError, CoreResult, Region};

/// Where a bucket lives, as seen from this region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketLocation {
    /// In this region.
    Local(BucketRecord),
    /// In another region of the deployment.
    Remote(String),
}

/// One entry of the deployment-wide ListBuckets (also what a peer lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBucket {
    /// Bucket name.
    pub name: String,
    /// The region that owns it.
    pub region: String,
    /// Creation time, unix milliseconds.
    pub created_ms: i64,
}

impl Region {
    /// CreateBucket. `location` is the LocationConstraint; absent means this region.
    /// A name taken in another region, or by an external replication target, is
    /// `BucketAlreadyExists`; here, `BucketAlreadyOwnedByYou`
    /// (there is one account per deployment until identities arrive).
    pub async fn create_bucket(&self, name: &str, location: Option<&str>) -> CoreResult<BucketRecord> {
        let name = BucketName::parse(name)?;
        if let Some(loc) = location.filter(|l| !l.is_empty())
            && loc != self.name()
        {
            return Err(CoreError::IllegalLocationConstraint { requested: loc.to_owned() });
        }
        if self.meta().get_bucket(name.as_str())?.is_some() {
            return Err(CoreError::BucketAlreadyOwnedByYou);
        }
        if self.peers().is_external_target(name.as_str()) {
            return Err(CoreError::BucketAlreadyExists);
        }
        if self.peers().locate_bucket(name.as_str()).await?.is_some() {
            return Err(CoreError::BucketAlreadyExists);
        }
        let rec = match self.meta().write(WriteOp::CreateBucket { name, created_ms: now_ms() }).await {
            Ok(WriteOutcome::Bucket(rec)) => rec,
            Ok(other) => return Err(unexpected(&other)),
            Err(MetaError::BucketAlreadyExists(_)) => return Err(CoreError::BucketAlreadyOwnedByYou),
            Err(e) => return Err(e.into()),
        };
        self.settle_creation_race(rec).await
    }

    /// Two regions creating the same new name at the same moment both pass the lookup above.
    /// After creating, each looks again. A region that sees no rival keeps the name: any rival
    /// committed after that look, so the rival will see it. A region that sees a rival cannot
    /// know whether the rival saw it too, so it gives way: it deletes its new, empty bucket and
    /// answers S3's `409 OperationAborted` ("try again"); the retry finds the rival's bucket
    /// (`BucketAlreadyExists`), or, if both gave way, creates it. Names never end up in two
    /// regions (while the peers can be reached, as the lookup above requires).
    async fn settle_creation_race(&self, rec: BucketRecord) -> CoreResult<BucketRecord> {
        let name = rec.name.as_str();
        let Some(rival) = self.peers().list_buckets().await.into_iter().find(|b| b.name == name) else {
            return Ok(rec);
        };
        match self.delete_bucket(name).await {
            Ok(()) => Err(CoreError::OperationAborted),
            Err(e) => {
                // Someone wrote into it already: keep it rather than lose data.
                tracing::warn!(bucket = name, rival = %rival.region, error = %e, "bucket created in two regions at once");
                Ok(rec)
            }
        }
    }

    /// The local bucket record, or `NoSuchBucket`.
    pub fn bucket(&self, name: &str) -> CoreResult<BucketRecord> {
        self.meta().get_bucket(name)?.ok_or(CoreError::NoSuchBucket)
    }

    /// Where a bucket lives: here, in a peer region, or nowhere (`NoSuchBucket`).
    pub async fn locate_bucket(&self, name: &str) -> CoreResult<BucketLocation> {
        if let Some(rec) = self.meta().get_bucket(name)? {
            return Ok(BucketLocation::Local(rec));
        }
        match self.peers().locate_bucket(name).await? {
            Some(region) => Ok(BucketLocation::Remote(region)),
            None => Err(CoreError::NoSuchBucket),
        }
    }

    /// All local buckets, sorted by name.
    pub fn list_buckets(&self) -> CoreResult<Vec<BucketRecord>> {
        Ok(self.meta().list_buckets()?)
    }

    /// ListBuckets: this region's buckets and the peers', by name, each with its region. S3
    /// lists every bucket of the account whatever the endpoint; so do we, leaving out only the
    /// buckets of a peer that cannot be reached right now.
    pub async fn list_all_buckets(&self) -> CoreResult<Vec<ListedBucket>> {
        let mut all: Vec<ListedBucket> = self
            .list_buckets()?
            .into_iter()
            .map(|b| ListedBucket {
                name: b.name.as_str().to_owned(),
                region: self.name().to_owned(),
                created_ms: b.created_ms,
            })
            .collect();
        let local: BTreeSet<String> = all.iter().map(|b| b.name.clone()).collect();
        all.extend(self.peers().list_buckets().await.into_iter().filter(|b| !local.contains(&b.name)));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|a, b| a.name == b.name);
        Ok(all)
    }

    /// DeleteBucket: only when no version or delete marker remains (VER-18).
    pub async fn delete_bucket(&self, name: &str) -> CoreResult<()> {
        let out = self.meta().write(WriteOp::DeleteBucket { name: name.to_owned() }).await?;
        if let WriteOutcome::Freed(freed) = out {
            self.free_blobs(&freed).await;
        }
        Ok(())
    }

    /// PutBucketVersioning (VER-2, VER-4).
    pub async fn set_versioning(&self, name: &str, state: VersioningState) -> CoreResult<()> {
        if state == VersioningState::Unversioned {
            return Err(CoreError::InvalidArgument("versioning cannot return to unversioned".into()));
        }
        self.meta().write(WriteOp::SetVersioning { name: name.to_owned(), state }).await?;
        Ok(())
    }

    /// PutBucketTagging / DeleteBucketTagging (empty `tags`).
    pub async fn set_bucket_tags(&self, name: &str, tags: Vec<(String, String)>) -> CoreResult<()> {
        crate::objects::validate_tags(&tags, 50)?;
        self.meta().write(WriteOp::SetBucketTags { name: name.to_owned(), tags }).await?;
        Ok(())
    }
}

pub(crate) fn unexpected(out: &WriteOutcome) -> CoreError {
    CoreError::Internal(format!("unexpected write outcome: {out:?}"))
}

impl Region {
    /// GetBucketReplication: the bucket's replication configuration, if any (CFG-2).
    pub fn replication_config(&self, bucket: &str) -> CoreResult<Option<ReplicationConfig>> {
        match self.bucket(bucket)?.replication {
            Some(bytes) => replication_rules::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// PutBucketReplication: validates the document in the spec's order (VAL-1: schema, source
    /// versioning VAL-2, rules, then destinations VAL-3) and stores it, replacing any previous
    /// configuration (CFG-1, PRI-6). Returns what was stored (with generated IDs, CFG-13).
    pub async fn put_replication(&self, bucket: &str, draft: &ConfigDraft) -> CoreResult<ReplicationConfig> {
        let record = self.bucket(bucket)?;
        let config = replication_rules::validate(draft, bucket, record.versioning)?;
        self.set_replication(bucket, Some(config.clone())).await?;
        Ok(config)
    }

    /// Stores (`Some`) or removes (`None`, idempotent, CFG-3) the replication configuration.
    /// `config` must come from [`replication_rules::validate`]. Setting one needs the source
    /// bucket's versioning Enabled (VAL-2, re-checked by `meta` inside the transaction so it
    /// cannot race a suspend, VER-4) and every destination bucket, here or in a peer region, to
    /// exist with versioning Enabled (VAL-3; disabled rules included, VAL-1).
    pub async fn set_replication(&self, bucket: &str, config: Option<ReplicationConfig>) -> CoreResult<()> {
        let record = self.bucket(bucket)?;
        let stored = match config {
            None => None,
            Some(config) => {
                if record.versioning != VersioningState::Enabled {
                    return Err(replication_rules::invalid_request(replication_rules::MSG_SOURCE_VERSIONING));
                }
                let mut checked = BTreeSet::new();
                for rule in &config.rules {
                    let dest = rule.destination.bucket.as_str();
                    if !checked.insert(dest) {
                        continue;
                    }
                    let state = match self.meta().get_bucket(dest)? {
                        Some(rec) => Some(rec.versioning),
                        None => self.peers().bucket_versioning(dest).await?,
                    };
                    if state != Some(VersioningState::Enabled) {
                        return Err(replication_rules::invalid_request(replication_rules::MSG_DESTINATION_VERSIONING));
                    }
                }
                Some(replication_rules::encode(&config))
            }
        };
        self.meta().write(WriteOp::SetReplication { name: bucket.to_owned(), config: stored }).await?;
        Ok(())
    }
}
