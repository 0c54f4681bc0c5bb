//! Orphan blob collection: deleting blob files that no metadata references.
//!
//! A blob is written and fsynced before the metadata commit that references it, and deleted
//! (without fsync) after the commit that stops referencing it. So a crash can leave a finished
//! blob file that nothing references: the write's commit never happened, or the file's
//! deletion was lost. Such a file is never visible through S3; it only takes space.
//! [`Region::collect_orphan_blobs`] finds and deletes them; the server runs it once in the
//! background after a region opens.
//!
//! # Why it cannot delete a blob that is, or will be, referenced
//! Only files modified before a cutoff are candidates, and the cutoff is when the region was
//! opened ([`Region::opened_at`]). Every blob this process writes is newer than that, so a
//! write in progress is never a candidate. A commit only ever references a blob written by
//! this process for it, or a part blob that a `parts` row already references (completing a
//! multipart upload moves the reference from the part to the version in one transaction);
//! no blob is shared between versions (a copy writes a new blob). So an old blob that is
//! unreferenced in the metadata snapshot, read after the candidates were listed, stays
//! unreferenced forever.

use std::time::SystemTime;

use crate::{CoreError, CoreResult, Region};

/// What one collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Blob files older than the cutoff.
    pub candidates: usize,
    /// Of those, files no metadata referenced, deleted.
    pub deleted: usize,
    /// Their bytes.
    pub deleted_bytes: u64,
}

impl Region {
    /// Deletes blob files last modified before `cutoff` that no version, part or upload
    /// references. Blocking (walks the blob directory and scans the metadata): run it on a
    /// blocking thread. Pass [`Region::opened_at`] or earlier; see the module docs for why that
    /// is safe while the region serves requests.
    pub fn collect_orphan_blobs(&self, cutoff: SystemTime) -> CoreResult<OrphanReport> {
        // Candidates first, references second (see the module docs).
        let candidates = self.blobs().list_older_than(cutoff)?;
        let referenced = self.meta().referenced_blobs()?;
        let mut report = OrphanReport { candidates: candidates.len(), ..OrphanReport::default() };
        for blob in candidates.iter().filter(|b| !referenced.contains(&b.id)) {
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
    use std::time::Duration;

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
    /// commit) is deleted; blobs of versions and of multipart parts are kept, and so is an
    /// unreferenced blob newer than the cutoff (a write in progress).
    #[tokio::test]
    async fn deletes_only_old_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::open("test-1", dir.path(), Arc::new(NoPeers)).unwrap();
        region.create_bucket("bkt", None).await.unwrap();
        let big = vec![7u8; INLINE_MAX + 1];
        put(&region, "kept", big.clone()).await;
        let upload = region.create_upload("bkt", "mp", ObjectMeta::default(), None).await.unwrap();
        let mut writer = region.blobs().writer(None).unwrap();
        writer.write(Bytes::from(big.clone())).await.unwrap();
        region.commit_part(&upload, 1, writer.finish().await.unwrap(), None).await.unwrap();
        // The orphan: written and fsynced, never committed.
        let mut writer = region.blobs().writer(None).unwrap();
        writer.write(Bytes::from(big.clone())).await.unwrap();
        let orphan = writer.finish().await.unwrap().segment;

        std::thread::sleep(Duration::from_millis(20));
        let cutoff = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        let mut writer = region.blobs().writer(None).unwrap();
        writer.write(Bytes::from(big.clone())).await.unwrap();
        let in_progress = writer.finish().await.unwrap().segment;

        let report = region.collect_orphan_blobs(cutoff).unwrap();
        assert_eq!(report, OrphanReport { candidates: 3, deleted: 1, deleted_bytes: big.len() as u64 });
        let listed: Vec<String> = region
            .blobs()
            .list_older_than(SystemTime::now() + Duration::from_secs(60))
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert!(!listed.contains(&orphan.id));
        assert!(listed.contains(&in_progress.id));
        assert_eq!(listed.len(), 3);
        // The committed object still reads back whole.
        let (_, record) = region.get_object("bkt", "kept", None).unwrap();
        let data = record.object().unwrap().clone();
        let mut read = Vec::new();
        let mut stream = region.read_object(&data, 0, data.size);
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, big);
        // A second pass finds nothing more to delete.
        assert_eq!(region.collect_orphan_blobs(cutoff).unwrap().deleted, 0);
    }
}
