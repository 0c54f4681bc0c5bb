//! Orphan blob collection: deleting blob files that no metadata references.
//!
//! A blob is written and fsynced before the metadata commit that references it, and deleted
//! (without fsync) after the commit that stops referencing it. So a crash can leave a finished
//! blob file that nothing references: the write's commit never happened, or the file's
//! deletion was lost. A write whose commit failed with an unknown outcome also leaves its
//! file here to decide ([`Region::abandon_blobs`]): whether the commit happened is known only
//! once the next open has replayed the metadata journal. Such a file is never visible
//! through S3; it only takes space. The server lists the blob files right after opening a
//! region ([`Region::orphan_candidates`]), before it serves anything, and deletes the
//! unreferenced ones in the background ([`Region::collect_orphan_blobs`]).
//!
//! # Why it cannot delete a blob that is, or will be, referenced
//! Every candidate was written by an earlier process: the list is taken before this region
//! started any blob write, and refused otherwise (no clock is involved). A commit of this
//! process only ever references a blob written by this process for it, or a part blob that a
//! `parts` row already references (completing a multipart upload moves the reference from the
//! part to the version in one transaction); no blob is shared between versions (a copy writes
//! a new blob). So a candidate that is unreferenced in the metadata snapshot, read after the
//! list was taken, stays unreferenced forever.

use xregion_types::BlobSegment;

use crate::{CoreError, CoreResult, Region};

/// Blob files that existed before the region wrote anything (from [`Region::orphan_candidates`]).
#[derive(Debug)]
pub struct OrphanCandidates(Vec<BlobSegment>);

/// What one collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Blob files listed at open.
    pub candidates: usize,
    /// Of those, files no metadata referenced, deleted.
    pub deleted: usize,
    /// Their bytes.
    pub deleted_bytes: u64,
}

impl Region {
    /// Lists the region's blob files; call it right after [`Region::open`], before anything
    /// writes (blocking: walks the blob directory). Fails once a blob write has started.
    pub fn orphan_candidates(&self) -> CoreResult<OrphanCandidates> {
        Ok(OrphanCandidates(self.blobs().list_before_first_write()?))
    }

    /// Deletes the candidates that no version, part or upload references. Blocking (scans the
    /// metadata): run it on a blocking thread; requests may be served meanwhile (see the module
    /// docs).
    pub fn collect_orphan_blobs(&self, candidates: OrphanCandidates) -> CoreResult<OrphanReport> {
        let referenced = self.meta().referenced_blobs()?;
        let mut report = OrphanReport { candidates: candidates.0.len(), ..OrphanReport::default() };
        for blob in candidates.0.iter().filter(|b| !referenced.contains(&b.id)) {
            self.blobs()
                .delete_blocking(blob)
                .map_err(|e| CoreError::Internal(format!("deleting orphan blob {}: {e}", blob.id)))?;
            report.deleted += 1;
            report.deleted_bytes += blob.len;
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                bytes = report.deleted_bytes,
                "deleted blob files no metadata referenced (left by a crash)"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::StreamExt as _;

    use super::*;
    use crate::NoPeers;
    use crate::objects::{INLINE_MAX, ObjectMeta, PutRequest};

    fn body(bytes: Vec<u8>) -> crate::objects::Body<'static> {
        futures::stream::iter([Ok(Bytes::from(bytes))]).boxed()
    }

    async fn put(region: &Region, key: &str, bytes: Vec<u8>) {
        let len = bytes.len() as u64;
        let stored = region.write_body(body(bytes), None, Some(len)).await.unwrap();
        let req = PutRequest {
            bucket: "bkt".into(),
            key: key.into(),
            meta: ObjectMeta::default(),
            content_md5: None,
            checksum: None,
            precondition: None,
        };
        region.commit_put(req, stored).await.unwrap();
    }

    /// A finished blob that no commit references (a crash between the blob's fsync and its
    /// commit) is deleted; blobs of versions and of multipart parts are kept, and so is a blob
    /// written after the list was taken (a write in progress). Once a write has started, no
    /// list is given.
    #[tokio::test]
    async fn deletes_only_unreferenced_blobs_listed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; INLINE_MAX + 1];
        let orphan = {
            let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
            region.create_bucket("bkt", None).await.unwrap();
            put(&region, "kept", big.clone()).await;
            let upload = region.create_upload("bkt", "mp", ObjectMeta::default(), None, None, None).await.unwrap();
            let mut writer = region.blobs().writer(None).unwrap();
            writer.write(Bytes::from(big.clone())).await.unwrap();
            region.commit_part(&upload, 1, writer.finish().await.unwrap(), None).await.unwrap();
            assert!(region.orphan_candidates().is_err(), "writes have started");
            // The orphan: written and fsynced, never committed (the process "dies" here).
            let mut writer = region.blobs().writer(None).unwrap();
            writer.write(Bytes::from(big.clone())).await.unwrap();
            writer.finish().await.unwrap().segment
        };

        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        let candidates = region.orphan_candidates().unwrap();
        let mut writer = region.blobs().writer(None).unwrap();
        writer.write(Bytes::from(big.clone())).await.unwrap();
        let in_progress = writer.finish().await.unwrap().segment;

        let report = region.collect_orphan_blobs(candidates).unwrap();
        assert_eq!(report, OrphanReport { candidates: 3, deleted: 1, deleted_bytes: big.len() as u64 });
        // The committed object still reads back whole.
        let (_, record) = region.get_object("bkt", "kept", None).unwrap();
        let data = record.object().unwrap().clone();
        let mut read = Vec::new();
        let mut stream = region.read_object(&data, 0, data.size);
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, big);
        drop(region);

        // After another restart the blob that was in progress, never committed, is an orphan
        // of an earlier process in turn; the rest stays.
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        let candidates = region.orphan_candidates().unwrap();
        let ids: Vec<&str> = candidates.0.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(&orphan.id.as_str()) && ids.contains(&in_progress.id.as_str()));
        let report = region.collect_orphan_blobs(candidates).unwrap();
        assert_eq!(report, OrphanReport { candidates: 3, deleted: 1, deleted_bytes: big.len() as u64 });
        assert_eq!(region.orphan_candidates().unwrap().0.len(), 2);
    }

    async fn read_current(region: &Region, key: &str) -> Vec<u8> {
        let (_, record) = region.get_object("bkt", key, None).unwrap();
        let data = record.object().unwrap().clone();
        let mut read = Vec::new();
        let mut stream = region.read_object(&data, 0, data.size);
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        read
    }

    /// A write whose metadata outcome is unknown (here it did commit, as when a durable
    /// commit's last sync fails after its header reached the disk) keeps the blob file it
    /// wrote: a PUT, a replica and a part alike. Each reads back whole, and the orphan
    /// collection after a restart keeps every one of them. Deleting the file on such an error
    /// would leave a version whose bytes are gone.
    #[tokio::test]
    async fn blobs_of_writes_whose_outcome_is_unknown_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![3u8; INLINE_MAX + 1];
        let len = big.len() as u64;
        {
            let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
            region.create_bucket("bkt", None).await.unwrap();
            region.set_versioning("bkt", xregion_types::VersioningState::Enabled).await.unwrap();

            let stored = region.write_body(body(big.clone()), None, Some(len)).await.unwrap();
            let req = PutRequest {
                bucket: "bkt".into(),
                key: "put".into(),
                meta: ObjectMeta::default(),
                content_md5: None,
                checksum: None,
                precondition: None,
            };
            region.meta().inject_outcome_unknown();
            let e = region.commit_put(req, stored).await.unwrap_err();
            assert!(e.outcome_unknown(), "{e:?}");

            let clock = xregion_types::VersionClock::new();
            let replica = crate::replica::ReplicaPut {
                bucket: "bkt".into(),
                key: "replica".into(),
                meta: ObjectMeta::default(),
                version_id: xregion_types::VersionId::generate(clock.next(), [1; 12]),
                last_modified_ms: 1,
                stamp: None,
                etag: hex::encode(xregion_blob::md5::digest(&big)),
                part_sizes: Vec::new(),
                part_checksums: Vec::new(),
                checksum: None,
                transfer_crc32c: None,
                encrypted: false,
                sealed: None,
            };
            region.meta().inject_outcome_unknown();
            let e = region.put_replica(replica, body(big.clone()), Some(len)).await.unwrap_err();
            assert!(e.outcome_unknown(), "{e:?}");

            let upload = region.create_upload("bkt", "mp", ObjectMeta::default(), None, None, None).await.unwrap();
            let mut writer = region.blobs().writer(None).unwrap();
            writer.write(Bytes::from(big.clone())).await.unwrap();
            let part = writer.finish().await.unwrap();
            let etag = part.etag().unwrap();
            region.meta().inject_outcome_unknown();
            let e = region.commit_part(&upload, 1, part, None).await.unwrap_err();
            assert!(e.outcome_unknown(), "{e:?}");
            region.complete_upload("bkt", "mp", &upload.upload_id, &[(1, etag)], None).await.unwrap();

            for key in ["put", "replica", "mp"] {
                assert_eq!(read_current(&region, key).await, big, "{key}");
            }
        }
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        let candidates = region.orphan_candidates().unwrap();
        let report = region.collect_orphan_blobs(candidates).unwrap();
        assert_eq!(report, OrphanReport { candidates: 3, deleted: 0, deleted_bytes: 0 });
        for key in ["put", "replica", "mp"] {
            assert_eq!(read_current(&region, key).await, big, "{key} after the orphan collection");
        }
    }
}
