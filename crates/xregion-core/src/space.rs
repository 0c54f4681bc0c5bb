//! The disk-space reserve. A body write (PutObject, CopyObject, UploadPart, a replica) is
//! refused with [`CoreError::StorageFull`] while the region's filesystem has less free space
//! than the reserve plus the body's declared length. What is left is for metadata: deletes
//! (the way to free space), finished replication tasks, delete markers.
//!
//! Why before the disk is full rather than when a write fails: a redb commit that fails for
//! lack of space leaves the database refusing every later write ("Previous I/O error
//! occurred") until the process reopens it, so a full disk would stop deletes and replication
//! bookkeeping too. A write that still meets a full disk (another process filled it) gets the
//! same `StorageFull` answer from the I/O error it met.

use crate::{CoreError, CoreResult, Region};

/// How a region is run (beyond its name, data directory and peers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionOptions {
    /// Free space to keep on the data directory's filesystem; `None`: [`default_reserve`].
    pub min_free_bytes: Option<u64>,
    /// The region's stamp tag among the regions of its deployment
    /// ([`xregion_types::stamp_tag`]): version ids generated here never equal another
    /// region's, which replication needs (CON-3).
    pub stamp_tag: u8,
    /// The length of a lifecycle "day" in milliseconds; `None`: a real day
    /// ([`xregion_types::lifecycle::DAY_MS`]). Shorter only to test lifecycle rules.
    pub lifecycle_day_ms: Option<i64>,
    /// The master key file of encryption at rest (SSE-S3), which must exist; `None`:
    /// `<data dir>/keys/sse-master.key`, created on first open. Keep a copy: without it the
    /// region's encrypted objects cannot be read.
    pub sse_master_key_file: Option<std::path::PathBuf>,
}

/// The default reserve: a twentieth of the filesystem, at least 64 MiB and at most 1 GiB.
/// The floor is what the metadata store may need between two checkpoints: redb writes every
/// commit's pages to fresh space and reuses freed pages only after a durable commit, so a burst
/// of small writes (or deletes) takes tens of MB before any is given back. Measured: with a
/// 1 MiB reserve on a 20 MiB filesystem, 3 KB PUTs filled the last MiB between two checks.
pub fn default_reserve(filesystem_bytes: u64) -> u64 {
    (filesystem_bytes / 20).clamp(64 << 20, 1 << 30)
}

/// The data directory's filesystem and the reserve kept on it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskStatus {
    /// Free space an unprivileged process may use.
    pub available_bytes: u64,
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Free space body writes leave untouched (`RegionOptions::min_free_bytes`).
    pub reserve_bytes: u64,
}

impl Region {
    /// The filesystem's space and the reserve (one `statvfs` call).
    pub fn disk_status(&self) -> CoreResult<DiskStatus> {
        let space = self.blobs().disk_space()?;
        Ok(DiskStatus {
            available_bytes: space.available,
            total_bytes: space.total,
            reserve_bytes: self.options().min_free_bytes.unwrap_or_else(|| default_reserve(space.total)),
        })
    }

    /// Refuses a body write of `incoming` bytes (0 when not announced) that would leave less
    /// than the reserve free.
    pub(crate) fn ensure_space(&self, incoming: u64) -> CoreResult<()> {
        let disk = self.disk_status()?;
        let (available, reserve) = (disk.available_bytes, disk.reserve_bytes);
        if available < reserve.saturating_add(incoming) {
            return Err(CoreError::StorageFull(format!(
                "the region's disk is full: {available} bytes free, {reserve} kept in reserve, {incoming} asked for"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::NoPeers;
    use crate::objects::BodyError;

    fn body(bytes: &'static [u8]) -> crate::objects::Body<'static> {
        use futures::StreamExt as _;
        futures::stream::iter([Ok::<_, BodyError>(bytes::Bytes::from_static(bytes))]).boxed()
    }

    #[test]
    fn the_default_reserve_is_a_twentieth_between_64_mib_and_1_gib() {
        assert_eq!(default_reserve(1 << 40), 1 << 30);
        assert_eq!(default_reserve(10 << 30), 512 << 20);
        assert_eq!(default_reserve(20 << 20), 64 << 20);
    }

    #[tokio::test]
    async fn body_writes_below_the_reserve_are_refused_and_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let options = RegionOptions { min_free_bytes: Some(u64::MAX / 2), ..RegionOptions::default() };
        let region = Region::open_with("test-1", dir.path(), Arc::new(NoPeers), options).unwrap();
        let err = region.write_body(body(b"data"), None, Some(4)).await.unwrap_err();
        assert!(matches!(err, CoreError::StorageFull(_)), "{err:?}");
        let err = region.write_blob(body(b"data"), None, None, None).await.unwrap_err();
        assert!(matches!(err, CoreError::StorageFull(_)), "{err:?}");
        assert!(region.blobs().list_before_first_write().unwrap().is_empty());

        let roomy = Region::open_with("test-2", &dir.path().join("2"), Arc::new(NoPeers), RegionOptions::default());
        roomy.unwrap().write_body(body(b"data"), None, Some(4)).await.expect("room for 4 bytes");
    }
}
