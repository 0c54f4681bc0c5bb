//! Ranged reads of objects made of several blob files.
//!
//! A read is a sequence of `spawn_blocking` jobs, each reading up to [`READ_JOB_BYTES`] with
//! plain sequential reads (into uninitialised capacity, no zeroing) on a file kept open
//! between jobs; the stream hands the result out in
//! chunks of [`READ_CHUNK_BYTES`] (zero-copy splits) and starts the next job as soon as the
//! previous one returns, so one job of read-ahead overlaps the consumer. A stream therefore
//! holds at most two jobs' worth of bytes, and a blocking thread only while it reads: a slow
//! client cannot pin a thread. Nothing happens until the stream is first polled.
//!
//! # Buffer reuse (measured)
//! Full-size job buffers come from a small process-wide pool ([`POOL_MAX_BUFFERS`]) and go
//! back to it when the last chunk made from them is dropped (after hyper has written it to the
//! socket). A fresh 1 MiB `Vec` per job is above glibc's mmap threshold or gets trimmed back
//! to the kernel, so every job page-faulted and zeroed 256 fresh pages: `perf` on 64 MiB GETs
//! showed `clear_page_erms` + page-fault handling at about 20% of server CPU. Reads shorter
//! than a job (small objects, the tail) still use an exact-size `Vec`.
//!
//! Not done: `posix_fadvise(SEQUENTIAL)`. The disk's `read_ahead_kb` here is already 8 MiB,
//! larger than what the advice would add, so it cannot help cold reads.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::{self, BoxStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use xregion_types::{BlobRef, BlobSegment};

use crate::error::with_context;
use crate::layout::{Layout, check_id};

/// Size of the chunks a read stream yields (the last one may be shorter).
pub const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Bytes one blocking job reads before handing them to the stream.
pub const READ_JOB_BYTES: usize = 4 * READ_CHUNK_BYTES;

/// Idle job buffers kept for reuse, at most (so at most this many MiB stay allocated when
/// reads stop). A buffer is allocated only when the pool is empty, so the pool never raises
/// peak memory above the most buffers in use at once; the cap only bounds what stays idle.
/// It should exceed what is in use at the usual concurrency (16 streams hold about 3 each:
/// the chunks hyper is writing, the next job's, and one in between), or buffers are freed and
/// allocated again all the time, and fresh pages are what this pool exists to avoid.
pub const POOL_MAX_BUFFERS: usize = 64;

/// Idle buffers of capacity [`READ_JOB_BYTES`].
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer of capacity [`READ_JOB_BYTES`], from the pool if it has one.
fn pooled_buffer() -> Vec<u8> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_else(|| Vec::with_capacity(READ_JOB_BYTES))
}

/// A full-size job buffer that goes back to the pool when the last `Bytes` made from it drops.
struct PooledBuf(Vec<u8>);

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut buf = mem::take(&mut self.0);
        if buf.capacity() != READ_JOB_BYTES {
            return;
        }
        buf.clear();
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL_MAX_BUFFERS {
            pool.push(buf);
        }
    }
}

/// The stream of bytes `[start, end)` of `blob`.
pub(crate) fn read_range(
    layout: Arc<Layout>,
    blob: &BlobRef,
    start: u64,
    end: u64,
) -> BoxStream<'static, io::Result<Bytes>> {
    let cursor = match Cursor::new(layout, blob, start, end) {
        Ok(cursor) => cursor,
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    if cursor.remaining == 0 {
        return stream::empty().boxed();
    }
    let state = ReadState { ready: VecDeque::new(), next: Next::Start(Box::new(cursor)), runtime: None };
    stream::unfold(state, ReadState::step).boxed()
}

/// Position of a read: which segment, where in it, how much is left. Owns the open file.
struct Cursor {
    layout: Arc<Layout>,
    segments: Vec<BlobSegment>,
    /// Segment being read.
    index: usize,
    /// Offset within that segment.
    offset: u64,
    /// Bytes still to read.
    remaining: u64,
    /// The open file of `segments[index]`, positioned at `offset`.
    file: Option<File>,
}

impl Cursor {
    /// Positions a cursor at `start`; checks the range against the blob's length.
    fn new(layout: Arc<Layout>, blob: &BlobRef, start: u64, end: u64) -> io::Result<Self> {
        let total = blob
            .segments
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.len))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "blob segment lengths overflow"))?;
        if start > end || end > total {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {start}..{end} is outside a blob of {total} bytes"),
            ));
        }
        let mut index = 0;
        let mut offset = start;
        while let Some(segment) = blob.segments.get(index) {
            if offset < segment.len {
                break;
            }
            offset -= segment.len;
            index += 1;
        }
        Ok(Self { layout, segments: blob.segments.clone(), index, offset, remaining: end - start, file: None })
    }

    /// Reads the next up-to-[`READ_JOB_BYTES`] bytes, across segment boundaries (blocking).
    fn read_job(&mut self) -> io::Result<Bytes> {
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(READ_JOB_BYTES);
        // `read_to_end` into spare capacity: no zeroing of the buffer first.
        let pooled = want == READ_JOB_BYTES;
        let mut buf = if pooled { pooled_buffer() } else { Vec::with_capacity(want) };
        while buf.len() < want {
            let Some(segment) = self.segments.get(self.index) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "read past the last blob segment"));
            };
            let left_in_segment = segment.len - self.offset;
            if left_in_segment == 0 {
                self.index += 1;
                self.offset = 0;
                self.file = None;
                continue;
            }
            let file = match self.file.as_mut() {
                Some(file) => file,
                None => self.file.insert(open_segment(&self.layout, segment, self.offset)?),
            };
            let n = left_in_segment.min((want - buf.len()) as u64);
            let got =
                file.take(n).read_to_end(&mut buf).map_err(|e| with_context(format!("read blob {}", segment.id), e))?;
            if got as u64 != n {
                return Err(with_context(
                    format!("read blob {}", segment.id),
                    io::Error::new(io::ErrorKind::InvalidData, "file is shorter than recorded"),
                ));
            }
            self.offset += n;
            self.remaining -= n;
        }
        if pooled { Ok(Bytes::from_owner(PooledBuf(buf))) } else { Ok(Bytes::from(buf)) }
    }
}

/// Opens a segment's file, checks its length and seeks to `offset`.
fn open_segment(layout: &Layout, segment: &BlobSegment, offset: u64) -> io::Result<File> {
    let id = check_id(&segment.id).map_err(io::Error::from)?;
    let path = layout.blob_path(id);
    let context = || format!("open blob {id} ({})", path.display());
    let mut file = File::open(&path).map_err(|e| with_context(context(), e))?;
    let len = file.metadata().map_err(|e| with_context(context(), e))?.len();
    if len != segment.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {id} has {len} bytes, metadata says {}", segment.len),
        ));
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(|e| with_context(context(), e))?;
    }
    Ok(file)
}

/// State of a read stream between polls.
struct ReadState {
    /// Chunks read and not yet yielded.
    ready: VecDeque<Bytes>,
    next: Next,
    runtime: Option<Handle>,
}

/// What comes after the ready chunks.
enum Next {
    /// Not started (no job yet).
    Start(Box<Cursor>),
    /// A job is reading.
    Running(JoinHandle<(Box<Cursor>, io::Result<Bytes>)>),
    /// Everything read, or an error was yielded.
    Done,
}

type JobOutput = (Box<Cursor>, io::Result<Bytes>);

impl ReadState {
    /// Yields the next chunk, starting or awaiting read jobs as needed.
    async fn step(mut self) -> Option<(io::Result<Bytes>, Self)> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some((Ok(chunk), self));
            }
            let job = match mem::replace(&mut self.next, Next::Done) {
                Next::Done => return None,
                Next::Running(job) => job,
                Next::Start(cursor) => match Handle::try_current() {
                    Ok(runtime) => self.spawn(runtime, cursor),
                    Err(e) => {
                        return Some((Err(io::Error::other(format!("blob read: no tokio runtime: {e}"))), self));
                    }
                },
            };
            let (cursor, result) = match job.await {
                Ok(output) => output,
                Err(e) => {
                    return Some((Err(io::Error::other(format!("blob read job: {e}"))), self));
                }
            };
            let mut bytes = match result {
                Ok(bytes) => bytes,
                Err(e) => return Some((Err(e), self)),
            };
            if cursor.remaining > 0
                && let Some(runtime) = self.runtime.clone()
            {
                // Read ahead while the consumer takes the chunks of this job.
                self.next = Next::Running(self.spawn(runtime, cursor));
            }
            while bytes.len() > READ_CHUNK_BYTES {
                self.ready.push_back(bytes.split_to(READ_CHUNK_BYTES));
            }
            if !bytes.is_empty() {
                self.ready.push_back(bytes);
            }
        }
    }

    fn spawn(&mut self, runtime: Handle, mut cursor: Box<Cursor>) -> JoinHandle<JobOutput> {
        let job = runtime.spawn_blocking(move || {
            let result = cursor.read_job();
            (cursor, result)
        });
        self.runtime = Some(runtime);
        job
    }
}
