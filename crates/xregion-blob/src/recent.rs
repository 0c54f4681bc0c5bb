//! The bytes of blobs just written, kept in memory for the read that usually follows soon:
//! a replication source sends a new version to its destination within milliseconds of the
//! PUT that wrote it.
//!
//! # Why (measured)
//! Blob files are written with `O_DIRECT` (see [`crate::direct`]), so a blob just written is
//! not in the page cache and the replication source read it back from the device. With both
//! regions on one disk, that read competes with both regions' writes and fsyncs: two sets of
//! 16 writers of 1 MiB files (temp file, fsync, rename, directory fsync) made about 550 pairs
//! of files per second on the benchmark machine, and 350 when each second file was preceded
//! by an `O_DIRECT` read of a file the first set had just written (`bench/results/
//! 2026-12-08-session24-recent-blobs.md`). Copying the bytes once while they are written is
//! far cheaper than reading them again.
//!
//! # Contract
//! * Only writers that ask for it ([`crate::BlobWriter::keep_for_reading`]) put bytes here,
//!   and only once their blob is durable and renamed into place, so an entry always holds a
//!   finished blob's bytes. An entry is the blob's plaintext, also for a blob written
//!   encrypted: reads with a data key get it as they would get the opened chunks, and an
//!   entry records whether its blob is sealed, so a read of a sealed file's raw bytes never
//!   gets plaintext.
//! * At most [`RECENT_MAX_BYTES`] in all, and blobs up to [`RECENT_ENTRY_MAX_BYTES`] each; the
//!   oldest entries go first, and none stays longer than [`RECENT_MAX_AGE`] once the next
//!   write or [`crate::BlobStore::expire_recent`] comes (the replication worker calls it on
//!   every wake-up, at least every few seconds, so an idle region gives the memory back). A
//!   blob that is deleted leaves at once. Ids are never reused, so an entry can only ever be
//!   its blob's bytes.
//! * A miss costs nothing but the file read that would have happened anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Bytes kept in all, at most. At the benchmark's full speed (about 300 replicated 1 MiB PUTs
/// a second) a replica is read within 100 ms of its PUT, so this covers the usual distance
/// between the writer and the replication source with room to spare; a source further behind
/// (a destination down, a backlog) reads from the files as before.
pub const RECENT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Largest blob kept. Small and medium objects are the ones whose reads cost most per byte
/// (one device request and its latency per object); larger blobs are read at the device's
/// sequential speed, and keeping them would hold many MiB per writer while it streams.
pub const RECENT_ENTRY_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Longest an entry is kept. A replication source reads a new version within milliseconds
/// unless its destination is slow or down, and then the entry would only hold memory.
pub const RECENT_MAX_AGE: Duration = Duration::from_secs(10);

/// Recently written blobs by id, oldest first out.
#[derive(Debug, Default)]
pub(crate) struct RecentBlobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Ids in insertion order, with the time of insertion; may name entries removed since
    /// (skipped on eviction).
    order: VecDeque<(String, Instant)>,
    /// Sum of the lengths of the entries in `by_id`.
    bytes: usize,
}

/// A kept blob.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The blob's bytes (its plaintext when it is sealed).
    pub(crate) bytes: Bytes,
    /// The file holds the bytes sealed (written with a data key).
    pub(crate) sealed: bool,
}

impl RecentBlobs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent whatever a panicking holder did: every method leaves it
        // valid before it could panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `bytes` as the content of blob `id`, evicting the oldest entries to make room.
    /// Blobs over [`RECENT_ENTRY_MAX_BYTES`] are not kept.
    pub(crate) fn insert(&self, id: &str, entry: Entry) {
        let len = entry.bytes.len();
        if len > RECENT_ENTRY_MAX_BYTES {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.evict(|inner, at| inner.bytes + len > RECENT_MAX_BYTES || now.duration_since(at) >= RECENT_MAX_AGE);
        inner.bytes += len;
        if let Some(old) = inner.by_id.insert(id.to_owned(), entry) {
            inner.bytes -= old.bytes.len();
        } else {
            inner.order.push_back((id.to_owned(), now));
        }
        // Removals leave their ids in `order`; drop them once they dominate, so the queue
        // stays proportional to the entries.
        if inner.order.len() > 2 * inner.by_id.len() + 64 {
            let Inner { by_id, order, .. } = &mut *inner;
            order.retain(|(id, _)| by_id.contains_key(id));
        }
    }

    /// Drops the entries older than [`RECENT_MAX_AGE`] at `now`.
    pub(crate) fn expire(&self, now: Instant) {
        self.lock().evict(|_, at| now.duration_since(at) >= RECENT_MAX_AGE);
    }

    /// Blob `id`, if kept (a cheap clone).
    pub(crate) fn get(&self, id: &str) -> Option<Entry> {
        self.lock().by_id.get(id).cloned()
    }

    /// Forgets blob `id` (deleted, or written but not reported).
    pub(crate) fn remove(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.by_id.remove(id) {
            inner.bytes -= old.bytes.len();
        }
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Bytes kept now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Inner {
    /// Drops entries from the oldest on while `evict(self, inserted at)` says so for the
    /// oldest live one (ids of removed entries on the way are dropped too).
    fn evict(&mut self, evict: impl Fn(&Self, Instant) -> bool) {
        while let Some((id, at)) = self.order.front() {
            if self.by_id.contains_key(id) && !evict(self, *at) {
                break;
            }
            let Some((id, _)) = self.order.pop_front() else { break };
            if let Some(old) = self.by_id.remove(&id) {
                self.bytes -= old.bytes.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize, fill: u8) -> Entry {
        Entry { bytes: Bytes::from(vec![fill; len]), sealed: false }
    }

    fn first_byte(recent: &RecentBlobs, id: &str) -> Option<u8> {
        recent.get(id).map(|e| e.bytes[0])
    }

    #[test]
    fn keeps_gets_and_forgets() {
        let recent = RecentBlobs::default();
        recent.insert("a", blob(10, 1));
        assert_eq!(recent.get("a").map(|e| e.bytes).as_deref(), Some(&[1u8; 10][..]));
        assert!(recent.get("b").is_none());
        recent.remove("a");
        assert!(recent.get("a").is_none());
        assert_eq!(recent.bytes(), 0);
    }

    #[test]
    fn evicts_the_oldest_first_and_stays_under_the_cap() {
        let recent = RecentBlobs::default();
        let size = RECENT_ENTRY_MAX_BYTES;
        let fits = RECENT_MAX_BYTES / size;
        for i in 0..fits + 2 {
            recent.insert(&format!("{i}"), blob(size, i as u8));
            assert!(recent.bytes() <= RECENT_MAX_BYTES);
        }
        assert!(recent.get("0").is_none() && recent.get("1").is_none());
        assert!(recent.get("2").is_some());
        assert_eq!(first_byte(&recent, &format!("{}", fits + 1)), Some((fits + 1) as u8));
        assert_eq!(recent.bytes(), fits * size);
    }

    #[test]
    fn big_blobs_are_not_kept() {
        let recent = RecentBlobs::default();
        recent.insert("big", blob(RECENT_ENTRY_MAX_BYTES + 1, 0));
        assert!(recent.get("big").is_none());
        assert_eq!(recent.bytes(), 0);
    }

    #[test]
    fn removed_ids_do_not_pile_up_in_the_queue() {
        let recent = RecentBlobs::default();
        for i in 0..10_000 {
            let id = format!("{i}");
            recent.insert(&id, blob(1, 0));
            recent.remove(&id);
        }
        let inner = recent.lock();
        assert!(inner.order.len() <= 2 * inner.by_id.len() + 65, "{}", inner.order.len());
        assert_eq!(inner.bytes, 0);
    }

    #[test]
    fn old_entries_expire() {
        let recent = RecentBlobs::default();
        recent.insert("a", blob(10, 1));
        recent.insert("b", blob(10, 2));
        recent.expire(Instant::now());
        assert_eq!(recent.len(), 2);
        recent.expire(Instant::now() + RECENT_MAX_AGE);
        assert_eq!((recent.len(), recent.bytes()), (0, 0));
    }
}
