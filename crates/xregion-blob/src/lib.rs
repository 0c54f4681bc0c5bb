//! Object bytes of xregion on local disk: durable streaming writes, hashing, ranged reads.
//!
//! # What this crate owns
//! The blob directory of one region (`<region data dir>/blobs`) and nothing else. A blob is an
//! immutable file named by a random 128-bit id ([`BlobSegment::id`]); an object is a
//! [`BlobRef`], a list of segments read back to back (one for a simple upload, one per part
//! for a multipart upload). Object keys never become paths.
//!
//! # What it never does
//! It never touches metadata: it does not know buckets, keys or versions, and it does not
//! decide when a blob is garbage. The caller records [`BlobInfo::segment`] in its metadata
//! commit and calls [`BlobStore::delete`] after the commit that stopped referencing a blob.
//!
//! # Durability contract
//! * [`BlobWriter::finish`] returns only after the bytes are fsynced, the temp file is renamed
//!   to its final name and the directory holding it is fsynced. A blob id returned by `finish`
//!   survives a crash; commit metadata that references it only after `finish` returns.
//! * A crash at any earlier point leaves no visible blob: unfinished writes live in
//!   `blobs/tmp/`, which [`BlobStore::open`] empties.
//! * Deletes are not fsynced: after a crash a deleted blob may reappear as an unreferenced file.
//!   It is never visible through metadata; it only costs space until the region's orphan
//!   collection deletes it: [`BlobStore::list_before_first_write`] lists, right after open,
//!   blobs that only an earlier process can have written, and the caller, who knows the
//!   metadata, deletes those nothing references.
//!
//! # Threads and memory
//! All file work runs in `spawn_blocking` jobs working on about 1 MiB at a time (writes:
//! batches of [`WRITE_BATCH_BYTES`]; reads: [`READ_JOB_BYTES`], yielded as
//! [`READ_CHUNK_BYTES`] chunks; full-size read buffers are reused through a pool of at most
//! [`POOL_MAX_BUFFERS`]), never one tokio::fs call per chunk. A writer or reader holds
//! a blocking thread only while it has bytes to process, so slow clients cannot exhaust the
//! blocking pool, and only a few MiB are buffered per stream (back-pressure). Writes checksum
//! and write each batch on two threads side by side, queue it for MD5 to the shared MD5
//! threads ([`md5`]), and start an `fdatasync` every [`WRITEBACK_BYTES`] in the background, so
//! the disk works while hashing goes on.
//!
//! # Page cache
//! Blob files are written with `O_DIRECT` on Linux where the file system allows it (see
//! `direct.rs`): a blob is written once and rarely read soon after, and copying it into new
//! page-cache pages was the largest cost of a large PUT on the benchmark machine. The one read
//! that does come soon (a replication source sending a new version) is served from memory: a
//! writer asked to ([`BlobWriter::keep_for_reading`]) keeps the bytes of a blob up to a few
//! MiB for a few seconds, in a bounded cache (`recent.rs`).
//!
//! # Hashing
//! A write computes MD5 (the ETag, hashed side by side with other uploads' MD5s in SIMD lanes,
//! see [`md5`]) and the requested additional checksum over the bytes in memory, alongside
//! writing them; nothing is read back from disk. [`checksum`] has the same hashes for use without files, plus the
//! multipart compositions; [`multipart_etag`] makes a multipart ETag.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::TryStreamExt as _;
//! use xregion_blob::BlobStore;
//! use xregion_types::{BlobRef, ChecksumAlgorithm};
//!
//! let dir = tempfile::tempdir()?;
//! let store = BlobStore::open(&dir.path().join("blobs"))?;
//! let mut writer = store.writer(Some(ChecksumAlgorithm::Crc32c))?;
//! writer.write(bytes::Bytes::from_static(b"hello world")).await?;
//! let info = writer.finish().await?;
//! assert_eq!(info.etag().as_deref(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
//!
//! let blob = BlobRef { segments: vec![info.segment] };
//! let chunks: Vec<bytes::Bytes> = store.read(&blob, 6, 11).try_collect().await?;
//! assert_eq!(chunks.concat(), b"world");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod checksum;
mod direct;
mod error;
mod lane;
mod layout;
pub mod md5;
mod reader;
mod recent;
mod writer;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use xregion_crypto::DataKey;
use xregion_types::{BlobRef, BlobSegment, ChecksumAlgorithm};

pub use direct::STAGE_BYTES;
pub use error::BlobError;
pub use reader::{POOL_MAX_BUFFERS, READ_CHUNK_BYTES, READ_JOB_BYTES};
pub use recent::{RECENT_ENTRY_MAX_BYTES, RECENT_MAX_AGE, RECENT_MAX_BYTES};
pub use writer::{BlobWriter, COALESCE_BELOW_BYTES, WRITE_BATCH_BYTES, WRITEBACK_BYTES};

use crate::error::io_error;
use crate::layout::{Layout, check_id};

/// The blob files of one region. Cheap to clone (shared state behind an `Arc`).
#[derive(Debug, Clone)]
pub struct BlobStore {
    layout: Arc<Layout>,
    /// A writer was created since open (see [`BlobStore::list_before_first_write`]).
    writes_started: Arc<AtomicBool>,
}

/// Space on a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Free space an unprivileged process may use.
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

impl BlobStore {
    /// Opens the blob directory `dir` (`<region data dir>/blobs`), creating it if needed, and
    /// removes temp files left by a crash, so partial uploads leave nothing visible.
    ///
    /// Blocking (a few directory operations and fsyncs): call it at startup. One process
    /// must own `dir`: opening it sweeps the temp files of writes in progress.
    pub fn open(dir: &Path) -> Result<BlobStore, BlobError> {
        Ok(Self { layout: Arc::new(Layout::open(dir)?), writes_started: Arc::new(AtomicBool::new(false)) })
    }

    /// The blob directory.
    pub fn dir(&self) -> &Path {
        self.layout.root()
    }

    /// Space on the filesystem that holds the blob directory (`statvfs`): what an unprivileged
    /// writer may still use, and the size of the filesystem. A cheap system call.
    pub fn disk_space(&self) -> Result<DiskSpace, BlobError> {
        let st = rustix::fs::statvfs(self.dir())
            .map_err(|e| io_error(format!("statvfs {}", self.dir().display()), e.into()))?;
        Ok(DiskSpace {
            available: st.f_bavail.saturating_mul(st.f_frsize),
            total: st.f_blocks.saturating_mul(st.f_frsize),
        })
    }

    /// Starts a streaming write of a new blob. MD5 (for the ETag) and the requested additional
    /// checksum are computed while writing.
    ///
    /// Does no I/O itself (the temp file is created by the first write or `finish`). Fails only
    /// when called outside a tokio runtime.
    pub fn writer(&self, checksum: Option<ChecksumAlgorithm>) -> Result<BlobWriter, BlobError> {
        self.writer_with(checksum, true, None)
    }

    /// The general form of [`BlobStore::writer`]: with or without MD5 (without it for bytes
    /// that `checksum` verifies instead, such as replicas whose ETag is known: MD5 is the
    /// largest CPU cost of a large write), and encrypted with `key` (SSE) or not. An encrypted
    /// blob's file holds the bytes sealed in chunks (`xregion_crypto`), under a key derived
    /// from `key` and the blob's id; MD5, the checksum and the blob's length are those of the
    /// plaintext. Read it back with [`BlobStore::read_sealed`] and the same key.
    pub fn writer_with(
        &self,
        checksum: Option<ChecksumAlgorithm>,
        md5: bool,
        key: Option<&DataKey>,
    ) -> Result<BlobWriter, BlobError> {
        self.writes_started.store(true, Ordering::SeqCst);
        BlobWriter::new(Arc::clone(&self.layout), checksum, md5, key)
    }

    /// Streams bytes `[start, end)` of the object made of `blob.segments` read back to back,
    /// in chunks of [`READ_CHUNK_BYTES`] (the last may be shorter), never buffering the object.
    ///
    /// Errors arrive as stream items: `InvalidInput` for a range outside the object,
    /// `NotFound` for a missing blob file, `InvalidData` for a bad id or a file whose length
    /// differs from its segment's. The stream ends after the first error. Must be polled inside
    /// a tokio runtime; it does nothing until first polled.
    pub fn read(&self, blob: &BlobRef, start: u64, end: u64) -> BoxStream<'static, io::Result<Bytes>> {
        reader::read_range(Arc::clone(&self.layout), blob, start, end, None)
    }

    /// [`BlobStore::read`] of an object whose blobs were written encrypted with `key`
    /// ([`BlobStore::writer_with`]): only the chunks holding the range are read and opened.
    /// A chunk that does not authenticate (altered or truncated file) ends the stream with an
    /// `InvalidData` error. Each segment's piece key is derived with its id, or with
    /// `labels[i]` when there is one (the segments of a replica of an SSE-C version hold bytes
    /// sealed by the source under its own blobs' ids).
    pub fn read_sealed(
        &self,
        blob: &BlobRef,
        start: u64,
        end: u64,
        key: Arc<DataKey>,
        labels: &[String],
    ) -> BoxStream<'static, io::Result<Bytes>> {
        reader::read_range(Arc::clone(&self.layout), blob, start, end, Some((key, labels.to_vec())))
    }

    /// Forgets the bytes of blobs written more than [`RECENT_MAX_AGE`] ago that
    /// [`BlobWriter::keep_for_reading`] kept in memory. Cheap (a lock and a look at the oldest
    /// entries): call it now and then, so that memory goes back when writes stop.
    pub fn expire_recent(&self) {
        self.layout.recent.expire(std::time::Instant::now());
    }

    /// Deletes a blob file; a missing file is not an error. Call it after the metadata commit
    /// that stopped referencing the blob. Runs on the blocking pool.
    pub async fn delete(&self, segment: &BlobSegment) -> Result<(), BlobError> {
        let store = self.clone();
        let segment = segment.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || store.delete_blocking(&segment)).await.map_err(writer::join_error)?
            }
            Err(_) => store.delete_blocking(&segment),
        }
    }

    /// Blocking form of [`BlobStore::delete`], for blocking threads and startup code.
    pub fn delete_blocking(&self, segment: &BlobSegment) -> Result<(), BlobError> {
        let id = check_id(&segment.id)?;
        self.layout.recent.remove(id);
        let path = self.layout.blob_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format!("delete {}", path.display()), e)),
        }
    }

    /// Every finished blob, listed before this store started any write (blocking: walks the
    /// blob directory). Every blob in the list was written by an earlier process, so a caller
    /// that knows the metadata can delete those nothing references, even while new writes go
    /// on (see the crate docs). Fails once a writer was created since open, or if one was
    /// created while listing.
    pub fn list_before_first_write(&self) -> Result<Vec<BlobSegment>, BlobError> {
        let too_late = || {
            io_error(
                "list blobs",
                io::Error::other("blob writes have started; the list is only taken right after open"),
            )
        };
        if self.writes_started.load(Ordering::SeqCst) {
            return Err(too_late());
        }
        let listed = self.layout.list_all()?;
        if self.writes_started.load(Ordering::SeqCst) {
            return Err(too_late());
        }
        Ok(listed.into_iter().map(|(id, len)| BlobSegment { id, len }).collect())
    }

    /// Checks that a blob exists with its recorded length, without reading it (a blob
    /// written encrypted is longer on disk: `xregion_crypto::sealed_len` of its length):
    /// [`BlobError::NotFound`] if the file is missing, [`BlobError::Corrupt`] for a bad id or
    /// a different length. Runs on the blocking pool.
    pub async fn verify(&self, segment: &BlobSegment) -> Result<(), BlobError> {
        let store = self.clone();
        let segment = segment.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || store.verify_blocking(&segment)).await.map_err(writer::join_error)?
            }
            Err(_) => store.verify_blocking(&segment),
        }
    }

    /// Blocking form of [`BlobStore::verify`].
    pub fn verify_blocking(&self, segment: &BlobSegment) -> Result<(), BlobError> {
        let id = check_id(&segment.id)?;
        let path = self.layout.blob_path(id);
        let len = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(format!("blob {id} ({})", path.display())));
            }
            Err(e) => return Err(io_error(format!("stat {}", path.display()), e)),
        };
        if len != segment.len {
            return Err(BlobError::Corrupt(format!("blob {id} has {len} bytes, metadata says {}", segment.len)));
        }
        Ok(())
    }
}

/// What a finished write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Id and length of the new blob.
    pub segment: BlobSegment,
    /// MD5 of the bytes (the ETag of a simple upload); `None` from
    /// [`BlobStore::writer_with`] without MD5.
    pub md5: Option<[u8; 16]>,
    /// The requested additional checksum: algorithm and raw big-endian digest.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
}

impl BlobInfo {
    /// The ETag of a simple upload: lowercase hex MD5, without quotes (if MD5 was computed).
    pub fn etag(&self) -> Option<String> {
        self.md5.map(hex::encode)
    }

    /// The additional checksum as S3 headers carry it (base64), if one was requested.
    pub fn checksum_base64(&self) -> Option<String> {
        self.checksum.as_ref().map(|(_, digest)| checksum::to_base64(digest))
    }
}

/// ETag of a multipart object, without quotes: hex MD5 of the concatenated raw part MD5s,
/// `-`, number of parts.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = md5::Md5::new();
    for part in part_md5s {
        md5.update(part);
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_md5s.len())
}

#[cfg(test)]
mod tests;
