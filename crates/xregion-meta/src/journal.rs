//! The redo journal: what makes a group durable between redb checkpoints.
//!
//! # Why
//! A redb commit with `Durability::Immediate` writes every B-tree page the group dirtied, in
//! place of the old ones (copy on write), and fsyncs. Small writes dirty pages all over the
//! tree: the 4 KiB PUT benchmark wrote 36.8 KB to the file and made 9 write calls per PUT, and
//! the single writer thread spent its time in `pwrite` and `fdatasync`. So the writer commits
//! most groups with `Durability::None` (visible to readers at once, not yet durable) and makes
//! them durable by appending the group's *effects* to this journal and fsyncing it: one
//! sequential write of a few KB per group. Every [`CHECKPOINT_GROUPS`] groups (or
//! [`CHECKPOINT_EVERY`]) a group commits with `Durability::Immediate` instead, which makes
//! everything before it durable in redb, and the journal starts over.
//!
//! # Contract
//! * A group is acknowledged only after its journal record is fsynced (or its own durable
//!   commit returned), and its redb commit is made only after the record is on disk, so readers
//!   never see an effect that a crash could take back.
//! * A record holds the group's redo: every `insert` and `remove` the group made, in order,
//!   with the raw key and value bytes. Replaying a suffix of records over any state that already
//!   contains a prefix of them yields the state after the last record (each entry sets or
//!   deletes one key), so replaying twice is harmless.
//! * Records carry the journal *epoch*, stored in the `meta` table. A checkpoint stores the next
//!   epoch in the same durable commit, so records of earlier epochs (already in redb) are
//!   ignored even if the journal could not be truncated. A torn last record fails its checksum
//!   and ends the replay: it was never acknowledged.
//! * On open, [`recover`] applies the valid records of the current epoch in one transaction,
//!   commits it durably with the next epoch, and truncates the journal.
//! * If a group's redb commit fails after its record was written, the record is cut off again;
//!   if even that fails the writer refuses every later group (a later record would otherwise
//!   build on effects redb does not have).
//!
//! Record layout (integers little-endian): `len u32 ‖ crc32c u32 ‖ epoch u64 ‖ payload`, where
//! `len` counts epoch and payload and the CRC covers them; the payload is a sequence of
//! `table u8 ‖ key_len u32 ‖ key ‖ has_value u8 ‖ [value_len u32 ‖ value]`.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, Durability, Key, ReadableTable, Table, Value};

use crate::error::MetaError;
use crate::schema::META_JOURNAL_EPOCH;
use crate::writer::WTables;

/// Groups between durable redb commits at most.
pub(crate) const CHECKPOINT_GROUPS: u32 = 512;
/// Time between durable redb commits at most (while writes keep coming).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Journal size that forces a checkpoint at the next group.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// Header bytes before a record's epoch: length and CRC.
const HEADER: usize = 8;
/// The journal file grows by zero-filled steps of this size and never shrinks; records
/// overwrite it in place from the start. An append that does not grow the file needs no
/// inode update, so its `fdatasync` writes the record's blocks only (growing the file with
/// every record cost about as much again, in the kernel, per group). Records of earlier
/// epochs left behind are ignored.
pub(crate) const GROW_BYTES: u64 = 4 * 1024 * 1024;

/// Which table a redo entry is for (stable numbers: they are on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TableId {
    Meta = 1,
    Buckets = 2,
    BucketIds = 3,
    Heads = 4,
    Versions = 5,
    Nulls = 6,
    Uploads = 7,
    UploadIndex = 8,
    Parts = 9,
    Outbox = 10,
    OutboxIndex = 11,
    Failures = 12,
    InlineData = 13,
    Jobs = 14,
    JobTasks = 15,
}

/// One effect of a group: `key` set to `value`, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redo {
    pub(crate) table: u8,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Inserts into a table and records the effect.
pub(crate) fn insert<'k, 'v, K: Key + 'static, V: Value + 'static>(
    table: &mut Table<'_, K, V>,
    redo: &mut Vec<Redo>,
    id: TableId,
    key: &K::SelfType<'k>,
    value: &V::SelfType<'v>,
) -> Result<(), MetaError> {
    redo.push(Redo {
        table: id as u8,
        key: K::as_bytes(key).as_ref().to_vec(),
        value: Some(V::as_bytes(value).as_ref().to_vec()),
    });
    table.insert(key, value)?;
    Ok(())
}

/// Removes from a table and records the effect.
pub(crate) fn remove<'k, K: Key + 'static, V: Value + 'static>(
    table: &mut Table<'_, K, V>,
    redo: &mut Vec<Redo>,
    id: TableId,
    key: &K::SelfType<'k>,
) -> Result<(), MetaError> {
    redo.push(Redo { table: id as u8, key: K::as_bytes(key).as_ref().to_vec(), value: None });
    table.remove(key)?;
    Ok(())
}

/// Encodes one record.
pub(crate) fn encode_record(epoch: u64, redo: &[Redo]) -> Vec<u8> {
    // Sized up front: a group of small objects is tens of KiB, and growing the buffer by
    // doubling was a twentieth of a replica destination's writer thread (realloc and copy).
    let size = HEADER
        + 8
        + redo.iter().map(|e| 1 + 4 + e.key.len() + 1 + e.value.as_ref().map_or(0, |v| 4 + v.len())).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.resize(HEADER, 0);
    out.extend_from_slice(&epoch.to_le_bytes());
    for entry in redo {
        out.push(entry.table);
        put_bytes(&mut out, &entry.key);
        match &entry.value {
            Some(value) => {
                out.push(1);
                put_bytes(&mut out, value);
            }
            None => out.push(0),
        }
    }
    let body_len = u32::try_from(out.len() - HEADER).unwrap_or(u32::MAX);
    let crc = crc32c(&out[HEADER..]);
    out[..4].copy_from_slice(&body_len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), size, "encode_record's size formula");
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// The groups of `epoch` at the start of `bytes`, up to the first torn, corrupt or foreign
/// record. Never panics, whatever the bytes.
pub(crate) fn decode_records(mut bytes: &[u8], epoch: u64) -> Vec<Vec<Redo>> {
    let mut groups = Vec::new();
    while let Some((body, rest)) = next_record(bytes) {
        match decode_body(body) {
            Some((record_epoch, redo)) if record_epoch == epoch => groups.push(redo),
            _ => break,
        }
        bytes = rest;
    }
    groups
}

/// Splits off one record whose checksum holds: `(epoch ‖ payload, rest)`.
fn next_record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    (len >= 8 && crc32c(body) == crc).then(|| (body, &bytes[HEADER + len..]))
}

fn decode_body(body: &[u8]) -> Option<(u64, Vec<Redo>)> {
    let epoch = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let mut rest = &body[8..];
    let mut redo = Vec::new();
    while let Some((&table, after)) = rest.split_first() {
        let (key, after) = take_bytes(after)?;
        let (&has_value, after) = after.split_first()?;
        let (value, after) = match has_value {
            0 => (None, after),
            1 => {
                let (value, after) = take_bytes(after)?;
                (Some(value.to_vec()), after)
            }
            _ => return None,
        };
        redo.push(Redo { table, key: key.to_vec(), value });
        rest = after;
    }
    Some((epoch, redo))
}

fn take_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let value = bytes.get(4..4usize.checked_add(len)?)?;
    Some((value, &bytes[4 + len..]))
}

/// Applies redo entries to the open tables (replay).
fn apply(t: &mut WTables<'_>, redo: &[Redo]) -> Result<(), MetaError> {
    for entry in redo {
        let key = entry.key.as_slice();
        let value = entry.value.as_deref();
        let applied = catch_unwind(AssertUnwindSafe(|| match entry.table {
            x if x == TableId::Meta as u8 => set(&mut t.meta, key, value),
            x if x == TableId::Buckets as u8 => set(&mut t.buckets, key, value),
            x if x == TableId::BucketIds as u8 => set(&mut t.bucket_ids, key, value),
            x if x == TableId::Heads as u8 => set(&mut t.heads, key, value),
            x if x == TableId::Versions as u8 => set(&mut t.versions, key, value),
            x if x == TableId::Nulls as u8 => set(&mut t.nulls, key, value),
            x if x == TableId::Uploads as u8 => set(&mut t.uploads, key, value),
            x if x == TableId::UploadIndex as u8 => set(&mut t.upload_index, key, value),
            x if x == TableId::Parts as u8 => set(&mut t.parts, key, value),
            x if x == TableId::Outbox as u8 => set(&mut t.outbox, key, value),
            x if x == TableId::OutboxIndex as u8 => set(&mut t.outbox_index, key, value),
            x if x == TableId::Failures as u8 => set(&mut t.failures, key, value),
            x if x == TableId::InlineData as u8 => set(&mut t.inline_data, key, value),
            x if x == TableId::Jobs as u8 => set(&mut t.jobs, key, value),
            x if x == TableId::JobTasks as u8 => set(&mut t.job_tasks, key, value),
            other => Err(MetaError::Corrupt(format!("journal names unknown table {other}"))),
        }));
        // redb's `from_bytes` panics on bytes of the wrong shape (a checksummed record of ours
        // never has them).
        applied.map_err(|_| MetaError::Corrupt("journal entry does not fit its table".into()))??;
    }
    Ok(())
}

fn set<K: Key + 'static, V: Value + 'static>(
    table: &mut Table<'_, K, V>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), MetaError> {
    let key = K::from_bytes(key);
    match value {
        Some(value) => {
            table.insert(&key, V::from_bytes(value))?;
        }
        None => {
            table.remove(&key)?;
        }
    }
    Ok(())
}

/// The open journal file and when the next checkpoint is due.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes of valid records in the file (the next record goes here).
    len: u64,
    /// Size of the file (zero-filled beyond the records).
    capacity: u64,
    /// Epoch of the records being written (the one stored in `meta`).
    pub(crate) epoch: u64,
    groups: u32,
    since: Instant,
    /// A failed commit could not be cut off the journal: no more writes.
    pub(crate) broken: bool,
}

impl Journal {
    /// Bytes of valid records in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// True if the next group should commit durably (a checkpoint).
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.groups >= CHECKPOINT_GROUPS || self.since.elapsed() >= CHECKPOINT_EVERY || self.len >= CHECKPOINT_BYTES
    }

    /// Appends a group's record and fsyncs it. Returns the length before, for [`Journal::cut`].
    pub(crate) fn append(&mut self, redo: &[Redo]) -> Result<u64, MetaError> {
        let before = self.len;
        let record = encode_record(self.epoch, redo);
        let end = before + record.len() as u64;
        let written = (|| {
            if end > self.capacity {
                let grown = end.div_ceil(GROW_BYTES) * GROW_BYTES;
                zero_fill(&mut self.file, self.capacity, grown)?;
                self.capacity = grown;
            }
            self.file.seek(SeekFrom::Start(before))?;
            self.file.write_all(&record)?;
            self.file.sync_data()
        })();
        match written {
            Ok(()) => {
                self.len = before + record.len() as u64;
                self.groups += 1;
                Ok(before)
            }
            Err(e) => {
                // The tail may hold part of the record: cut it (a torn record ends any replay
                // anyway, but a later record must not follow one that is not in redb).
                self.cut(before);
                Err(MetaError::storage(format!("cannot write {}: {e}", self.path.display()), Some(&e)))
            }
        }
    }

    /// Cuts the journal back to `len` after a failed commit (zeroes the header there, which
    /// ends any replay); if that fails, the journal is broken and no group may be
    /// acknowledged any more.
    pub(crate) fn cut(&mut self, len: u64) {
        let cut = self
            .file
            .seek(SeekFrom::Start(len))
            .and_then(|_| self.file.write_all(&[0u8; HEADER]))
            .and_then(|()| self.file.sync_data());
        match cut {
            Ok(()) => self.len = len,
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "cannot cut the metadata journal; refusing writes");
                self.broken = true;
            }
        }
    }

    /// After a durable commit that stored `epoch`: starts the journal over. The old records
    /// stay in the file until overwritten; their epoch is older, so no replay applies them.
    pub(crate) fn restart(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.len = 0;
        self.groups = 0;
        self.since = Instant::now();
    }
}

/// Writes zeros over `from..to` (the record written next makes them durable with it).
fn zero_fill(file: &mut File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1024 * 1024];
    file.seek(SeekFrom::Start(from))?;
    let mut left = to.saturating_sub(from);
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The journal next to the database file `db_path`.
pub(crate) fn path_for(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".journal");
    db_path.with_file_name(name)
}

/// Opens the journal at `path`, replays its records of the current epoch into `db` in one
/// durable transaction that also advances the epoch (which retires every record in the file). Returns the journal
/// ready for appends and the number of groups replayed.
pub(crate) fn recover(db: &Database, path: &Path) -> Result<(Journal, usize), MetaError> {
    let io = |e: std::io::Error| MetaError::Storage(format!("metadata journal {}: {e}", path.display()));
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate).map_err(|e| MetaError::Storage(e.to_string()))?;
    let (epoch, replayed) = {
        let mut t = WTables::open(&txn, 0)?;
        let epoch = t.meta.get(META_JOURNAL_EPOCH)?.map(|g| g.value()).unwrap_or(0);
        let groups = decode_records(&bytes, epoch);
        for redo in &groups {
            apply(&mut t, redo)?;
        }
        t.meta.insert(META_JOURNAL_EPOCH, epoch + 1)?;
        (epoch + 1, groups.len())
    };
    txn.commit()?;
    let capacity = bytes.len() as u64;
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        // The journal may have just been created: make its name durable.
        dir.sync_all().map_err(io)?;
    }
    if replayed > 0 {
        tracing::info!(groups = replayed, path = %path.display(), "replayed the metadata journal");
    }
    let journal = Journal {
        path: path.to_owned(),
        file,
        len: 0,
        capacity,
        epoch,
        groups: 0,
        since: Instant::now(),
        broken: false,
    };
    Ok((journal, replayed))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn redo_strategy() -> impl Strategy<Value = Vec<Redo>> {
        prop::collection::vec(
            (
                1u8..14,
                prop::collection::vec(any::<u8>(), 0..40),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            )
                .prop_map(|(table, key, value)| Redo { table, key, value }),
            0..20,
        )
    }

    proptest! {
        /// Records round-trip; a torn tail, a flipped byte or another epoch ends the replay
        /// at the last good record.
        #[test]
        fn records_round_trip_and_stop_at_damage(groups in prop::collection::vec(redo_strategy(), 1..6), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for redo in &groups {
                bytes.extend(encode_record(7, redo));
                ends.push(bytes.len());
            }
            prop_assert_eq!(decode_records(&bytes, 7), groups.clone());
            prop_assert!(decode_records(&bytes, 8).is_empty());
            // Torn: only whole records before the cut survive.
            let at = cut.index(bytes.len());
            let whole = ends.iter().filter(|&&end| end <= at).count();
            prop_assert_eq!(decode_records(&bytes[..at], 7), groups[..whole].to_vec());
            // A flipped byte: the records before the damaged one survive.
            let at = flip.index(bytes.len());
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5A;
            let intact = ends.iter().filter(|&&end| end <= at).count();
            prop_assert_eq!(decode_records(&damaged, 7), groups[..intact].to_vec());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), epoch: u64) {
            let _ = decode_records(&bytes, epoch);
        }
    }
}
