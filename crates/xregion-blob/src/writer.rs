//! Streaming, durable blob writes.
//!
//! # Design (measured; see `bench_64mib_put_vs_raw_write_fsync` in `tests.rs`)
//! Incoming chunks are gathered into batches of about [`WRITE_BATCH_BYTES`] without copying
//! (only chunks shorter than [`COALESCE_BELOW_BYTES`] are copied together, so tiny chunks
//! cannot turn into millions of tiny writes). Each batch goes to two [`Lane`]s that run side
//! by side on the same `Bytes`: one computes the additional checksum, the other writes to the
//! temp file and, every [`WRITEBACK_BYTES`], starts an `fdatasync` on another blocking thread
//! without waiting for it. The same batch is queued for MD5 to the shared MD5 threads, which
//! hash many uploads' batches together in SIMD lanes (see [`crate::md5`]); that queue is
//! waited on asynchronously, so an upload never holds a blocking thread while MD5 catches up
//! (when it did, the pool grew threads, and their malloc arenas cost 50-90 MiB of RSS in the
//! 64 MiB benchmark). So the disk works while hashing goes on, and the final fsync only has a
//! short tail left. (Waiting for that `fdatasync` in the write lane stalled the pipeline:
//! 8 MiB of fsync takes longer than 1 MiB of MD5.)
//!
//! A lane is a `spawn_blocking` job that drains a short queue and exits when it is empty;
//! a full queue makes `write` wait (back-pressure: a few batches per writer in memory).
//! Why not one blocking task per writer fed by a channel: it holds a blocking-pool thread for
//! the whole upload, also while a slow client trickles bytes, so a few hundred slow uploads
//! would exhaust the pool that metadata commits and reads share. Why not one job per batch
//! (an earlier version): every batch then costs two cross-thread wake-ups through the async
//! task, which measurably idled the hashing thread. A lane costs a hand-off only when it
//! runs dry. No job ever waits for another queued job, so a saturated pool cannot deadlock.
//!
//! A blob that fits in one batch is hashed, written and committed by a single job.
//!
//! # Cleanup
//! The temp file is owned by a guard ([`TempFile`]) inside the write lane's state: whoever
//! drops that state last (the writer, the lane's job, a failed batch) removes the file, so an
//! aborted, dropped, failed or cancelled writer leaves nothing behind, even while a job runs.

use std::fs::{self, File};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use xregion_crypto::{CHUNK_BYTES, DataKey, Sealer};
use xregion_types::{BlobSegment, ChecksumAlgorithm};

use crate::checksum::Hasher;
use crate::direct::{self, DIRECT_ALIGN, Stage};
use crate::error::io_error;
use crate::lane::{Lane, failed_earlier};
use crate::layout::{Layout, sync_dir};
use crate::md5::Md5Stream;
use crate::recent::{Entry, RECENT_ENTRY_MAX_BYTES};
use crate::{BlobError, BlobInfo};

/// Bytes gathered before they are handed to the blocking jobs that hash and write them.
pub const WRITE_BATCH_BYTES: usize = 1024 * 1024;
/// Chunks shorter than this are copied into a shared buffer instead of being queued one by one.
pub const COALESCE_BELOW_BYTES: usize = 8 * 1024;
/// Written bytes after which the write job calls `fdatasync`, overlapping disk writes with
/// hashing instead of leaving the whole file to the final fsync.
pub const WRITEBACK_BYTES: u64 = 8 * 1024 * 1024;

/// A blob being written. Finish it with [`BlobWriter::finish`]. [`BlobWriter::abort`] or
/// dropping the writer removes the temp file (on drop, shortly after, from a blocking task).
///
/// After any error the writer is failed: later calls return an error and the temp file is gone.
#[derive(Debug)]
pub struct BlobWriter {
    runtime: Handle,
    layout: Arc<Layout>,
    id: String,
    /// Chunks waiting to become the next batch.
    pending: Vec<Bytes>,
    /// Total length of `pending` and `small`.
    pending_len: usize,
    /// Small chunks copied together; becomes one entry of `pending`.
    small: BytesMut,
    /// The checksum, fed batch by batch.
    hashes: Lane<Hashes>,
    /// MD5, queued batch by batch to the shared MD5 threads; `None` when the caller verifies
    /// the bytes another way (see `BlobStore::writer_with`).
    md5: Option<Md5Stream>,
    /// The temp file, fed the same batches.
    file: Lane<FileState>,
    /// A batch went to the lanes (otherwise `finish` does everything in one job).
    submitted: bool,
    /// An error happened or a call was cancelled half-way: the lanes may disagree.
    failed: bool,
    /// Every batch so far, to keep the finished blob's bytes in memory
    /// ([`BlobWriter::keep_for_reading`]); dropped once they pass [`RECENT_ENTRY_MAX_BYTES`].
    kept: Option<Kept>,
    /// The file holds the bytes sealed (written with a data key).
    sealed: bool,
}

/// The batches of a blob to be kept in [`crate::recent`] once it is finished.
#[derive(Debug, Default)]
struct Kept {
    batches: Vec<Arc<[Bytes]>>,
    len: usize,
}

impl Kept {
    /// The bytes of all batches, copied into one buffer of their exact size: a chunk handed
    /// to `write` may be a slice of a larger buffer (hyper's read buffer), which a kept
    /// reference would hold whole, outside the cache's count.
    fn into_bytes(self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        self.batches.iter().flat_map(|batch| batch.iter()).for_each(|c| out.extend_from_slice(c));
        out.freeze()
    }
}

/// The running additional checksum of the bytes so far (MD5 goes to the shared MD5 threads,
/// see [`crate::md5`]).
struct Hashes {
    checksum: Option<Hasher>,
}

/// The finished additional checksum.
type Digest = Option<(ChecksumAlgorithm, Vec<u8>)>;

impl Hashes {
    /// Feeds a batch to the checksum (blocking: CPU-bound).
    fn update(&mut self, batch: &[Bytes]) {
        if let Some(h) = self.checksum.as_mut() {
            batch.iter().for_each(|chunk| h.update(chunk));
        }
    }

    fn finish(self) -> Digest {
        self.checksum.map(|h| (h.algorithm(), h.finalize()))
    }
}

impl Hashes {
    /// [`Hashes::update`] as lane work.
    #[allow(clippy::unnecessary_wraps)] // the lane's work signature is fallible
    fn update_lane(&mut self, batch: &[Bytes]) -> Result<(), BlobError> {
        self.update(batch);
        Ok(())
    }
}

impl std::fmt::Debug for Hashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashes").field("checksum", &self.checksum).finish_non_exhaustive()
    }
}

/// The temp file, how much is written, and the write-back state.
#[derive(Debug)]
struct FileState {
    temp: TempFile,
    /// Bytes written to the file (sealed bytes for an encrypted blob).
    len: u64,
    /// Plaintext bytes taken so far, for an encrypted blob (the blob's length).
    plain_len: Option<u64>,
    /// Seals the bytes before they are written, for an encrypted blob (SSE, see
    /// `xregion_crypto`): the file holds chunks of ciphertext and tags.
    sealer: Option<Sealer>,
    /// The sealed bytes of the batch being written (reused).
    sealed: Vec<u8>,
    /// Bytes written since the last background `fdatasync` started.
    unsynced: u64,
    /// The running background `fdatasync`, if any: it reports on this channel.
    writeback: Option<Arc<Writeback>>,
    runtime: Handle,
    /// Bytes of a direct file not written yet (see [`crate::direct`]); they start at file
    /// offset `len - stage.len`.
    stage: Option<Stage>,
}

impl FileState {
    /// Writes a batch (blocking), sealed first for an encrypted blob. Every
    /// [`WRITEBACK_BYTES`], starts an `fdatasync` on another blocking thread, so the disk
    /// works while writing and hashing go on.
    fn append(&mut self, batch: &[Bytes]) -> Result<(), BlobError> {
        let Some(mut sealer) = self.sealer.take() else {
            for chunk in batch {
                self.write_slice(chunk)?;
            }
            return self.start_writeback();
        };
        // Sealed a chunk at a time into one small buffer per writer, written as it fills: a
        // fresh batch-sized buffer per batch made the 64 MiB encrypted PUTs' RSS 57 MiB higher
        // than the plain ones' at 16 uploads, one batch-sized buffer per writer still 27 MiB.
        let mut sealed = mem::take(&mut self.sealed);
        sealed.clear();
        let mut result = Ok(());
        'batch: for chunk in batch {
            for piece in chunk.chunks(CHUNK_BYTES) {
                if let Err(e) = sealer.push(piece, &mut sealed) {
                    result = Err(seal_error(e));
                    break 'batch;
                }
                if sealed.len() >= CHUNK_BYTES {
                    result = self.write_slice(&sealed);
                    sealed.clear();
                    if result.is_err() {
                        break 'batch;
                    }
                }
            }
            *self.plain_len.get_or_insert(0) += chunk.len() as u64;
        }
        if result.is_ok() && !sealed.is_empty() {
            result = self.write_slice(&sealed);
        }
        self.sealed = sealed;
        self.sealer = Some(sealer);
        result?;
        self.start_writeback()
    }

    /// Seals the last chunk of an encrypted blob and writes it (blocking).
    fn finish_sealing(&mut self) -> Result<(), BlobError> {
        let Some(sealer) = self.sealer.take() else { return Ok(()) };
        let mut sealed = mem::take(&mut self.sealed);
        sealed.clear();
        sealer.finish(&mut sealed).map_err(seal_error)?;
        self.write_slice(&sealed)
    }

    /// The length of the blob written so far (plaintext for an encrypted blob).
    fn blob_len(&self) -> u64 {
        self.plain_len.unwrap_or(self.len)
    }

    /// Writes bytes as they are to the file (blocking).
    fn write_slice(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let (path, file, direct) = self.temp.file()?;
        if !direct {
            file.write_all_at(chunk, self.len).map_err(|e| io_error(format!("write {}", path.display()), e))?;
            self.len += chunk.len() as u64;
            self.unsynced += chunk.len() as u64;
            return Ok(());
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            let stage = self.stage.get_or_insert_with(Stage::take);
            let n = stage.push(rest);
            rest = &rest[n..];
            self.len += n as u64;
            self.unsynced += n as u64;
            if stage.is_full() {
                self.write_stage()?;
            }
        }
        Ok(())
    }

    /// Starts a background `fdatasync` once [`WRITEBACK_BYTES`] are unsynced and none runs.
    fn start_writeback(&mut self) -> Result<(), BlobError> {
        if self.unsynced >= WRITEBACK_BYTES && self.writeback_done(false)? {
            let (path, file, _) = self.temp.file()?;
            let file = file.try_clone().map_err(|e| io_error(format!("fdatasync {}", path.display()), e))?;
            let slot = Arc::new(Writeback::default());
            let job_slot = Arc::clone(&slot);
            drop(self.runtime.spawn_blocking(move || job_slot.run(&file)));
            self.writeback = Some(slot);
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Writes what is staged: its aligned part directly, the last partial block (if any)
    /// through the page cache, which also ends direct writing for this file. Falls back to
    /// the page cache for good if the file system refuses a direct write.
    fn write_stage(&mut self) -> Result<(), BlobError> {
        let Some(mut stage) = self.stage.take() else { return Ok(()) };
        let data = stage.data();
        let offset = self.len - data.len() as u64;
        let aligned = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
        let (path, file, _) = self.temp.file()?;
        let context = || format!("write {}", path.display());
        let mut done = 0;
        if aligned > 0 && direct::write_direct(file, &data[..aligned], offset).map_err(|e| io_error(context(), e))? {
            done = aligned;
        }
        let buffered = done < data.len();
        if buffered {
            direct::stop_direct(file).map_err(|e| io_error(context(), e))?;
            file.write_all_at(&data[done..], offset + done as u64).map_err(|e| io_error(context(), e))?;
            self.temp.direct = false;
        }
        stage.clear();
        if self.temp.direct {
            self.stage = Some(stage);
        }
        Ok(())
    }

    /// Whether no background `fdatasync` is pending; with `wait`, makes it so. Fails if one
    /// reported an error, which must fail the write: Linux reports a write-back error once.
    ///
    /// Waiting never waits for a job that has not started (that one is cancelled, and the
    /// caller's own fsync covers its bytes), so blocked threads cannot starve the pool.
    fn writeback_done(&mut self, wait: bool) -> Result<bool, BlobError> {
        let Some(slot) = &self.writeback else {
            return Ok(true);
        };
        let mut state = slot.lock();
        let result = loop {
            match &*state {
                WritebackState::Queued if wait => break Ok(()),
                WritebackState::Running if wait => {
                    state = slot.done.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                WritebackState::Queued | WritebackState::Running => return Ok(false),
                WritebackState::Done(_) | WritebackState::Cancelled => {
                    match mem::replace(&mut *state, WritebackState::Cancelled) {
                        WritebackState::Done(result) => break result,
                        _ => break Ok(()),
                    }
                }
            }
        };
        // A queued job that starts later sees this and does nothing.
        *state = WritebackState::Cancelled;
        drop(state);
        self.writeback = None;
        result.map(|()| true).map_err(|e| io_error(format!("fdatasync {}", self.temp.path.display()), e))
    }

    /// Waits for write-back, then fsyncs the file (blocking), then lets its pages go.
    fn sync(&mut self) -> Result<(), BlobError> {
        self.finish_sealing()?;
        self.write_stage()?;
        self.writeback_done(true)?;
        let (path, file, _) = self.temp.file()?;
        file.sync_all().map_err(|e| io_error(format!("fsync {}", path.display()), e))?;
        drop_cached_pages(file);
        Ok(())
    }
}

/// Drops the file's clean pages from the page cache (`POSIX_FADV_DONTNEED`), once they are on
/// disk. A blob is rarely read right after it is written (replicas, backups), and writes into
/// recycled pages are much cheaper than writes that grow the page cache: on the benchmark
/// machine, `perf` put 39 % of all CPU time in the kernel's copy into new page-cache pages
/// during 1 MiB replication, and `dd` writes ran at 1.5 GB/s into freed pages but 0.4 GB/s
/// into new ones. MinIO drops written data the same way. Advice only: errors are ignored.
#[cfg(target_os = "linux")]
fn drop_cached_pages(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn drop_cached_pages(_file: &File) {}

/// A background `fdatasync` and its outcome, shared by the job and the writer.
#[derive(Debug, Default)]
struct Writeback {
    state: Mutex<WritebackState>,
    done: Condvar,
}

#[derive(Debug, Default)]
enum WritebackState {
    /// Spawned, not started.
    #[default]
    Queued,
    /// `fdatasync` is running.
    Running,
    /// Finished with this result (not yet taken).
    Done(io::Result<()>),
    /// The writer no longer wants it (taken, or cancelled before it started).
    Cancelled,
}

impl Writeback {
    fn lock(&self) -> MutexGuard<'_, WritebackState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job: `fdatasync` unless cancelled before starting (blocking).
    fn run(&self, file: &File) {
        {
            let mut state = self.lock();
            if !matches!(*state, WritebackState::Queued) {
                return;
            }
            *state = WritebackState::Running;
        }
        let result = file.sync_data();
        if result.is_ok() {
            drop_cached_pages(file);
        }
        *self.lock() = WritebackState::Done(result);
        self.done.notify_all();
    }
}

impl BlobWriter {
    pub(crate) fn new(
        layout: Arc<Layout>,
        checksum: Option<ChecksumAlgorithm>,
        md5: bool,
        key: Option<&DataKey>,
    ) -> Result<Self, BlobError> {
        let runtime = Handle::try_current()
            .map_err(|e| io_error("start blob write", io::Error::other(format!("no tokio runtime: {e}"))))?;
        let id = crate::layout::new_id();
        let sealer = match key {
            Some(key) => Some(Sealer::new(key.segment(id.as_bytes()).map_err(seal_error)?)),
            None => None,
        };
        let plain_len = sealer.as_ref().map(|_| 0);
        let hashes = Hashes { checksum: checksum.map(Hasher::new) };
        let temp = TempFile::new(layout.temp_path(&id));
        let file = FileState {
            temp,
            len: 0,
            plain_len,
            sealer,
            sealed: Vec::new(),
            unsynced: 0,
            writeback: None,
            runtime: runtime.clone(),
            stage: None,
        };
        Ok(Self {
            hashes: Lane::new(runtime.clone(), hashes, Hashes::update_lane),
            md5: md5.then(Md5Stream::new),
            file: Lane::new(runtime.clone(), file, FileState::append),
            runtime,
            layout,
            id,
            pending: Vec::new(),
            pending_len: 0,
            small: BytesMut::new(),
            submitted: false,
            failed: false,
            kept: None,
            sealed: key.is_some(),
        })
    }

    /// Asks for the blob's bytes to stay in memory once it is finished, for a read expected
    /// soon: a version that a replication source will send (see [`crate::recent`]). Copies
    /// the bytes once at the end; a blob over [`RECENT_ENTRY_MAX_BYTES`] is not kept. Has no
    /// effect once bytes were handed to the lanes (call it before writing).
    pub fn keep_for_reading(&mut self) {
        if !self.submitted && self.kept.is_none() {
            self.kept = Some(Kept::default());
        }
    }

    /// The id the blob will have once finished.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends a chunk. Returns once the chunk is queued; waits while earlier batches are
    /// still being hashed and written (back-pressure). Errors of earlier batches surface here.
    /// Dropping this future before it completes fails the writer (the chunk may be lost).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.failed {
            return Err(failed_earlier());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.pending_len += chunk.len();
        if chunk.len() < COALESCE_BELOW_BYTES {
            self.small.extend_from_slice(&chunk);
        } else {
            self.flush_small();
            self.pending.push(chunk);
        }
        if self.pending_len >= WRITE_BATCH_BYTES {
            let batch = self.take_batch();
            // Until both lanes have the batch, a cancellation leaves the writer failed.
            self.failed = true;
            self.file.push(Arc::clone(&batch)).await?;
            if let Some(md5) = &self.md5 {
                md5.push(Arc::clone(&batch)).await;
            }
            self.hashes.push(batch).await?;
            self.failed = false;
            self.submitted = true;
        }
        Ok(())
    }

    /// Writes what is left, fsyncs the file, renames it into place and fsyncs the directory;
    /// returns only then, so the blob is durable on return.
    ///
    /// If this future is dropped before it completes, a blob that got committed anyway is
    /// deleted again in the background, so a cancelled finish leaves no orphan.
    pub async fn finish(mut self) -> Result<BlobInfo, BlobError> {
        if self.failed {
            return Err(failed_earlier());
        }
        self.failed = true;
        let batch = self.take_batch();
        let layout = Arc::clone(&self.layout);
        let id = mem::take(&mut self.id);
        // The MD5 threads hash the last batch while the commit job writes and fsyncs it.
        if let Some(md5) = &self.md5 {
            md5.push(Arc::clone(&batch)).await;
        }
        // A blob that fits in one batch takes one job; otherwise the hash lane takes the last
        // batch while the commit job writes it once the file lane has drained.
        let mut inline_hashes = None;
        if self.submitted {
            if !batch.is_empty() {
                self.hashes.push(Arc::clone(&batch)).await?;
            }
        } else {
            inline_hashes = Some(self.hashes.take().await?);
        }
        let file = self.file.take().await?;
        let kept = self.kept.take();
        let commit_job = self.runtime.spawn_blocking(move || {
            let checksum = inline_hashes.map(|mut h| {
                h.update(&batch);
                h.finish()
            });
            let segment = commit(file, &batch, &layout, id)?;
            Ok((segment, checksum, kept.map(Kept::into_bytes)))
        });
        // From here on, a cancelled or failed finish removes a committed blob.
        let mut guard =
            CommitGuard { job: Some(commit_job), runtime: self.runtime.clone(), layout: Arc::clone(&self.layout) };
        let lane_checksum = if self.submitted { Some(self.hashes.take().await?.finish()) } else { None };
        let md5 = match self.md5.take() {
            Some(md5) => Some(md5.finish().await),
            None => None,
        };
        let (segment, inline_checksum, kept) = guard.wait().await?;
        let Some(checksum) = lane_checksum.or(inline_checksum) else {
            guard.remove_committed(&segment);
            return Err(failed_earlier());
        };
        if let Some(bytes) = kept.filter(|b| b.len() as u64 == segment.len) {
            self.layout.recent.insert(&segment.id, Entry { bytes, sealed: self.sealed });
        }
        Ok(BlobInfo { segment, md5, checksum })
    }

    /// Abandons the write; the temp file is removed before this returns.
    pub async fn abort(self) {
        let (_, file) = futures::join!(self.hashes.cancel(), self.file.cancel());
        if let Some(file) = file {
            let temp = file.temp;
            if let Err(e) = self.runtime.spawn_blocking(move || temp.discard()).await {
                tracing::warn!(error = %e, "removing an aborted blob write failed");
            }
        }
    }

    /// Moves the small-chunk buffer into `pending`.
    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.pending.push(self.small.split().freeze());
        }
    }

    /// Everything gathered so far, as one batch.
    fn take_batch(&mut self) -> Arc<[Bytes]> {
        self.flush_small();
        let len = mem::take(&mut self.pending_len);
        let batch: Arc<[Bytes]> = mem::take(&mut self.pending).into();
        if let Some(kept) = &mut self.kept {
            kept.len += len;
            kept.batches.push(Arc::clone(&batch));
            if kept.len > RECENT_ENTRY_MAX_BYTES {
                self.kept = None;
            }
        }
        batch
    }
}

/// A sealing failure as a blob error.
fn seal_error(e: xregion_crypto::CryptoError) -> BlobError {
    BlobError::Io(io::Error::from(e))
}

/// Writes the last batch and makes the blob durable and visible (blocking): fsync the file,
/// create the fan-out directory if needed, rename, fsync the directory.
fn commit(file: FileState, batch: &[Bytes], layout: &Layout, id: String) -> Result<BlobSegment, BlobError> {
    let mut file = file;
    if let Err(e) = file.append(batch) {
        file.temp.discard();
        return Err(e);
    }
    let synced = file.sync();
    let len = file.blob_len();
    let FileState { mut temp, .. } = file;
    if let Err(e) = synced.and_then(|()| layout.ensure_fanout_dir(&id)) {
        temp.discard();
        return Err(e);
    }
    let final_path = layout.blob_path(&id);
    if let Err(e) = fs::rename(&temp.path, &final_path) {
        let context = format!("rename {} to {}", temp.path.display(), final_path.display());
        temp.discard();
        return Err(io_error(context, e));
    }
    temp.disarm();
    if let Err(e) = sync_dir(&layout.fanout_dir(&id)) {
        // Not known to be durable: the caller must not reference it, so do not leave it.
        remove_quietly(&final_path);
        return Err(e);
    }
    Ok(BlobSegment { id, len })
}

/// The committed blob, its checksum when the commit job computed it, and the bytes to keep
/// (see [`BlobWriter::keep_for_reading`]).
type CommitOutput = Result<(BlobSegment, Option<Digest>, Option<Bytes>), BlobError>;

/// Deletes a committed blob whose `finish` future was dropped (or failed) before it could
/// report it, so a cancelled finish leaves no orphan.
struct CommitGuard {
    job: Option<JoinHandle<CommitOutput>>,
    runtime: Handle,
    layout: Arc<Layout>,
}

impl CommitGuard {
    /// Waits for the commit job; afterwards the guard no longer owns the blob.
    async fn wait(&mut self) -> CommitOutput {
        let Some(job) = self.job.as_mut() else {
            return Err(failed_earlier());
        };
        let output = job.await;
        self.job = None;
        output.map_err(join_error)?
    }

    /// Removes a blob that was committed but cannot be reported.
    fn remove_committed(&self, segment: &BlobSegment) {
        let path = self.layout.blob_path(&segment.id);
        drop(self.runtime.spawn_blocking(move || remove_quietly(&path)));
    }
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else { return };
        let layout = Arc::clone(&self.layout);
        let runtime = self.runtime.clone();
        self.runtime.spawn(async move {
            if let Ok(Ok((segment, ..))) = job.await {
                tracing::debug!(blob = %segment.id, "removing the blob of a cancelled finish");
                let path = layout.blob_path(&segment.id);
                let _ = runtime.spawn_blocking(move || remove_quietly(&path)).await;
            }
        });
    }
}

/// The temp file of a write. Removed when dropped unless disarmed (after the rename).
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    /// The file is open with `O_DIRECT` (see [`crate::direct`]).
    direct: bool,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self { path, file: None, direct: false, armed: true }
    }

    /// The path, the open file and whether it is direct; the file is created on first use.
    fn file(&mut self) -> Result<(&Path, &mut File, bool), BlobError> {
        if self.file.is_none() {
            let (file, direct) =
                direct::create_new(&self.path).map_err(|e| io_error(format!("create {}", self.path.display()), e))?;
            self.file = Some(file);
            self.direct = direct;
        }
        match self.file.as_mut() {
            Some(file) => Ok((&self.path, file, self.direct)),
            None => Err(BlobError::Corrupt("temp file vanished".into())),
        }
    }

    /// Closes and removes the file now (blocking).
    fn discard(mut self) {
        self.armed = false;
        if self.file.take().is_some() {
            remove_quietly(&self.path);
        }
    }

    /// The file was renamed into place: nothing to remove.
    fn disarm(&mut self) {
        self.armed = false;
        self.file = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed || self.file.take().is_none() {
            return;
        }
        let path = mem::take(&mut self.path);
        match Handle::try_current() {
            // Unlinking a large file can take a while: not on an async worker thread.
            Ok(runtime) => drop(runtime.spawn_blocking(move || remove_quietly(&path))),
            Err(_) => remove_quietly(&path),
        }
    }
}

/// Removes a file, logging failures other than "already gone".
pub(crate) fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove blob file"),
    }
}

/// A blocking job that panicked or was cancelled.
pub(crate) fn join_error(e: tokio::task::JoinError) -> BlobError {
    io_error("blob job", io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_state(dir: &Path, runtime: &tokio::runtime::Runtime) -> FileState {
        let temp = TempFile::new(dir.join("t.tmp"));
        FileState {
            temp,
            len: 0,
            plain_len: None,
            sealer: None,
            sealed: Vec::new(),
            unsynced: 0,
            writeback: None,
            runtime: runtime.handle().clone(),
            stage: None,
        }
    }

    /// Sizes around the alignment and the stage size, in odd chunks: the file holds exactly
    /// the bytes, written directly where the file system allows (`crate::direct`).
    #[test]
    fn direct_writes_keep_every_byte_and_the_exact_length() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let probe = direct::create_new(&dir.path().join("probe")).unwrap().1;
        let (a, s) = (DIRECT_ALIGN, direct::STAGE_BYTES);
        for (i, len) in [0, 1, a - 1, a, a + 1, s - 1, s, s + 1, 2 * s + a, 3 * s + 5000].into_iter().enumerate() {
            let bytes: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            let mut state = file_state(dir.path(), &runtime);
            state.temp.path = dir.path().join(format!("f{i}"));
            let batch: Vec<Bytes> = bytes.chunks(70_001).map(Bytes::copy_from_slice).collect();
            state.append(&batch).unwrap();
            assert_eq!(state.temp.direct, probe && len > 0, "len {len}");
            state.sync().unwrap();
            assert_eq!(std::fs::read(&state.temp.path).unwrap(), bytes, "len {len}");
        }
    }

    /// The fallback path: a file that stops being direct half-way (as after `EINVAL` from the
    /// file system) continues through the page cache at the right offsets.
    #[test]
    fn a_file_that_stops_being_direct_keeps_every_byte() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3 * direct::STAGE_BYTES + 777).map(|j| (j * 7 + 3) as u8).collect();
        let (first, rest) = bytes.split_at(direct::STAGE_BYTES + direct::STAGE_BYTES / 2 + 5);
        let mut state = file_state(dir.path(), &runtime);
        state.append(&[Bytes::copy_from_slice(first)]).unwrap();
        // Half a stage is staged, not written; the switch writes it through the page cache.
        let (_, file, _) = state.temp.file().unwrap();
        direct::stop_direct(file).unwrap();
        state.temp.direct = false;
        state.write_stage().unwrap();
        state.append(&[Bytes::copy_from_slice(rest)]).unwrap();
        state.sync().unwrap();
        assert_eq!(std::fs::read(&state.temp.path).unwrap(), bytes);
    }

    #[test]
    fn waiting_cancels_a_writeback_that_has_not_started() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut state = file_state(dir.path(), &runtime);
        state.append(&[Bytes::from_static(b"abc")]).unwrap();
        let slot = Arc::new(Writeback::default());
        state.writeback = Some(Arc::clone(&slot));
        assert!(!state.writeback_done(false).unwrap(), "queued counts as pending");
        assert!(state.writeback_done(true).unwrap(), "waiting does not wait for a queued job");
        assert!(state.writeback.is_none());
        // The job starting late does nothing.
        let file = state.temp.file().unwrap().1.try_clone().unwrap();
        slot.run(&file);
        assert!(matches!(*slot.lock(), WritebackState::Cancelled));
        state.sync().unwrap();
    }

    #[test]
    fn a_writeback_error_fails_the_write() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut state = file_state(dir.path(), &runtime);
        let slot = Arc::new(Writeback::default());
        *slot.lock() = WritebackState::Done(Err(io::Error::other("EIO")));
        state.writeback = Some(slot);
        let err = state.writeback_done(false).unwrap_err();
        assert!(err.to_string().contains("EIO"), "{err}");
        assert!(state.writeback_done(true).unwrap(), "reported once, then cleared");
    }

    #[test]
    fn a_running_writeback_is_waited_for() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut state = file_state(dir.path(), &runtime);
        let data = Bytes::from(vec![7u8; WRITEBACK_BYTES as usize]);
        state.append(&[data]).unwrap();
        assert!(state.writeback.is_some(), "a background fdatasync was started");
        assert!(state.writeback_done(true).unwrap());
        assert!(state.writeback.is_none());
        assert_eq!(state.unsynced, 0);
        assert_eq!(state.len, WRITEBACK_BYTES);
    }
}
