//! Use cases of xregion: the only crate that coordinates metadata (`xregion-meta`) and bytes
//! (`xregion-blob`). It speaks plain Rust (no HTTP, no s3s DTOs): the protocol layer turns a
//! request into one call here and the result back into a response.
//!
//! Durability contract (design invariant 1): a write first makes its blob durable
//! (`BlobWriter::finish` fsyncs), then commits the metadata in one group-committed, fsynced
//! redb transaction, and only then returns. A small body (at most [`objects::INLINE_MAX`]) has
//! no blob: its bytes are written inline in that same transaction. Blobs freed by a commit are
//! deleted after it; inline bytes are freed inside it.
#![warn(missing_docs)]

pub mod batch_replication;
pub mod buckets;
pub mod conditions;
pub mod copy;
pub mod encryption;
mod error;
pub mod failures;
pub mod jobs;
pub mod lifecycle;
pub mod multipart;
pub mod objects;
pub mod orphans;
pub mod replica;
pub mod replica_batch;
pub mod replication_rules;
pub mod sealed;
mod space;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use xregion_blob::BlobStore;
use xregion_meta::MetaStore;
use xregion_types::VersioningState;

pub use encryption::{AES256, SealKey, check_sse_algorithm, customer_key};
pub use error::{CoreError, CoreResult};
pub use space::{DiskStatus, RegionOptions, default_reserve};
pub use xregion_blob::BlobInfo;
pub use xregion_crypto::CustomerKey;
pub use xregion_meta as meta;

/// Finds which region of the deployment owns a bucket, by asking the other regions, and reads
/// from them what a request here needs (a copy source).
/// Implemented by the server (over HTTP, with the S3 API); tests may use a fixed map.
pub trait PeerDirectory: Send + Sync + 'static {
    /// The region that owns `bucket` among the peers, or `None` if no peer has it.
    fn locate_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>>;

    /// The versioning state of `bucket` in the peer region that owns it, or `None` if no peer
    /// has it (VAL-3 for a destination in another region).
    fn bucket_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>>;

    /// Whether `bucket` is a bucket of another S3 service that this region replicates to (an
    /// external target, `docs/design/external-targets.md`): the deployment may not create a
    /// bucket of that name, so a name in a replication rule means one place. The default
    /// has none.
    fn is_external_target(&self, bucket: &str) -> bool {
        let _ = bucket;
        false
    }

    /// The buckets the peers own (ListBuckets lists the whole deployment, as S3 lists every
    /// region). A peer that cannot be asked is left out (and logged); the default has none.
    fn list_buckets(&self) -> BoxFuture<'_, Vec<buckets::ListedBucket>> {
        Box::pin(async { Vec::new() })
    }

    /// Reads a version of an object from `region`, the peer that owns its bucket: a copy
    /// source in another region ([`copy`]). Errors are the source's (`NoSuchKey`,
    /// `NoSuchVersion`, a delete marker, `InvalidRange`) or `Unavailable`. The default has no
    /// peers to read from.
    fn read_object<'a>(
        &'a self,
        region: &'a str,
        read: copy::RemoteRead<'a>,
    ) -> BoxFuture<'a, CoreResult<copy::RemoteObject>> {
        let _ = read;
        Box::pin(async move { Err(CoreError::Unavailable(format!("region {region} cannot be read from here"))) })
    }
}

/// A deployment with no peers: every bucket is local.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPeers;

impl PeerDirectory for NoPeers {
    fn locate_bucket<'a>(&'a self, _bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    fn bucket_versioning<'a>(&'a self, _bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>> {
        Box::pin(async { Ok(None) })
    }
}

/// One region: its name, metadata store, blob store and view of its peers.
#[derive(Clone)]
pub struct Region {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    data_dir: PathBuf,
    meta: MetaStore,
    blobs: BlobStore,
    peers: Arc<dyn PeerDirectory>,
    options: RegionOptions,
    /// The master keys of encryption at rest (`encryption.rs`).
    keyring: xregion_crypto::Keyring,
    /// Woken after every commit that queued replication tasks (the replication worker waits
    /// on it; a stored permit means a wake-up is never lost).
    replication_wake: Arc<tokio::sync::Notify>,
    /// Woken when a lifecycle configuration is put (the lifecycle runner waits on it).
    lifecycle_wake: tokio::sync::Notify,
    /// What the lifecycle runner did since start.
    lifecycle_stats: std::sync::Mutex<lifecycle::LifecycleStats>,
    /// Batch replication jobs: their lock and the runner's wake-up (`jobs/mod.rs`).
    jobs: jobs::JobsState,
}

impl Region {
    /// Opens (creating if needed) the region's data directory: `meta.redb` and `blobs/`.
    pub fn open(name: &str, data_dir: &Path, peers: Arc<dyn PeerDirectory>) -> CoreResult<Self> {
        Self::open_with(name, data_dir, peers, RegionOptions::default())
    }

    /// [`Region::open`] with options other than the defaults.
    pub fn open_with(
        name: &str,
        data_dir: &Path,
        peers: Arc<dyn PeerDirectory>,
        options: RegionOptions,
    ) -> CoreResult<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| CoreError::Internal(format!("create data dir {}: {e}", data_dir.display())))?;
        let meta = MetaStore::open_tagged(&data_dir.join("meta.redb"), options.stamp_tag)?;
        let blobs = BlobStore::open(&data_dir.join("blobs"))?;
        let keyring = encryption::load_keyring(data_dir, options.sse_master_key_file.as_deref())?;
        let replication_wake = Arc::new(tokio::sync::Notify::new());
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                data_dir: data_dir.to_owned(),
                meta,
                blobs,
                peers,
                options,
                keyring,
                replication_wake,
                lifecycle_wake: tokio::sync::Notify::new(),
                lifecycle_stats: std::sync::Mutex::default(),
                jobs: jobs::JobsState::default(),
            }),
        })
    }

    /// The batch replication jobs' lock and wake-up.
    pub(crate) fn jobs_state(&self) -> &jobs::JobsState {
        &self.inner.jobs
    }

    /// The region name, e.g. `us-east-1`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The metadata store (for reads the protocol layer does directly, e.g. listings).
    pub fn meta(&self) -> &MetaStore {
        &self.inner.meta
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// What the lifecycle runner did since the region started.
    pub fn lifecycle_stats(&self) -> lifecycle::LifecycleStats {
        self.lifecycle_stats_mut().clone()
    }

    pub(crate) fn lifecycle_stats_mut(&self) -> std::sync::MutexGuard<'_, lifecycle::LifecycleStats> {
        self.inner.lifecycle_stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the lifecycle runner (`lifecycle::runner`).
    pub(crate) fn lifecycle_wake(&self) -> &tokio::sync::Notify {
        &self.inner.lifecycle_wake
    }

    /// The options the region was opened with.
    pub fn options(&self) -> &RegionOptions {
        &self.inner.options
    }

    pub(crate) fn peers(&self) -> &dyn PeerDirectory {
        self.inner.peers.as_ref()
    }

    /// Notified after each commit that queued replication tasks (IMPL-1).
    pub fn replication_wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.replication_wake)
    }

    /// Deletes blobs a commit freed. Failures only leak space, so they are logged, not returned.
    pub(crate) async fn free_blobs(&self, freed: &[xregion_types::BlobSegment]) {
        for seg in freed {
            if let Err(e) = self.inner.blobs.delete(seg).await {
                tracing::warn!(blob = %seg.id, error = %e, "could not delete freed blob");
            }
        }
    }

    /// After a write that wrote `files` for itself failed with `error`: deletes them, unless
    /// the write may have happened anyway (its outcome is unknown). Then a version may
    /// reference them, now or after the next open replays the metadata journal, so they stay;
    /// the orphan collection at the next start deletes them if nothing does.
    pub(crate) async fn abandon_blobs(&self, error: &CoreError, files: &[xregion_types::BlobSegment]) {
        if error.outcome_unknown() {
            if !files.is_empty() {
                tracing::warn!(files = files.len(), error = %error, "kept the blob files of a write whose outcome is unknown");
            }
            return;
        }
        self.free_blobs(files).await;
    }
}
