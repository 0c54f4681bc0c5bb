//! Ranged reads of objects made of several blob files.
//!
//! A read is a sequence of `spawn_blocking` jobs, each reading up to [`READ_JOB_BYTES`] of one
//! blob file with positioned reads on a file kept open between jobs; the stream hands the
//! result out in chunks of [`READ_CHUNK_BYTES`] (zero-copy splits) and starts the next job as
//! soon as the previous one returns, so one job of read-ahead overlaps the consumer. A stream
//! therefore holds at most two jobs' worth of bytes, and a blocking thread only while it
//! reads: a slow client cannot pin a thread. Nothing happens until the stream is first polled.
//!
//! # Direct reads
//! Blob files are opened with `O_DIRECT` where the file system allows (Linux; see
//! `direct.rs`), like they are written: the device fills the job's buffer itself, with no
//! copy out of the page cache and no page-cache pages to allocate. A blob is written once and
//! read rarely, most often exactly once (a replication source sends it right after it was
//! written, which direct writes left out of the page cache anyway). A job reads whole aligned
//! blocks around the requested range and hands out the requested bytes as a slice. A file
//! system that refuses `O_DIRECT` gets plain reads into the same buffers.
//!
//! # Buffer reuse (measured)
//! Job buffers are aligned staging buffers from the process-wide pool in `direct.rs`
//! (at most [`POOL_MAX_BUFFERS`] idle) and go back to it when the last chunk made from them
//! is dropped (after hyper has written it to the socket). A fresh 1 MiB `Vec` per job is
//! above glibc's mmap threshold or gets trimmed back to the kernel, so every job
//! page-faulted and zeroed 256 fresh pages: `perf` on 64 MiB GETs showed `clear_page_erms` +
//! page-fault handling at about 20% of server CPU.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::mem;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::{self, BoxStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use xregion_types::{BlobRef, BlobSegment};

use crate::direct::{self, DIRECT_ALIGN, STAGE_BYTES, Stage};
use crate::error::with_context;
use crate::layout::{Layout, check_id};

/// Size of the chunks a read stream yields (the last one may be shorter).
pub const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Bytes one blocking job reads before handing them to the stream.
pub const READ_JOB_BYTES: usize = 4 * READ_CHUNK_BYTES;

/// Idle job buffers kept for reuse, at most (so at most this many MiB stay allocated when
/// reads and writes stop). A buffer is allocated only when the pool is empty, so the pool
/// never raises peak memory above the most buffers in use at once; the cap only bounds what
/// stays idle. It should exceed what is in use at the usual concurrency (16 streams hold
/// about 3 each: the chunks hyper is writing, the next job's, and one in between), or
/// buffers are freed and allocated again all the time, and fresh pages are what the pool
/// exists to avoid.
pub const POOL_MAX_BUFFERS: usize = 64;

// A job's aligned span must fit in one pooled buffer.
const _: () = assert!(READ_JOB_BYTES <= STAGE_BYTES);

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
    /// The open file of `segments[index]`, and whether it is read with `O_DIRECT`.
    file: Option<(File, bool)>,
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

    /// Reads the next up-to-[`READ_JOB_BYTES`] bytes of the current segment (blocking).
    fn read_job(&mut self) -> io::Result<Bytes> {
        let segment = loop {
            let Some(segment) = self.segments.get(self.index) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "read past the last blob segment"));
            };
            if self.offset < segment.len {
                break segment;
            }
            self.index += 1;
            self.offset = 0;
            self.file = None;
        };
        let context = || format!("read blob {}", segment.id);
        let (file, direct) = match self.file.as_mut() {
            Some(open) => open,
            None => self.file.insert(open_segment(&self.layout, segment)?),
        };
        // A direct read starts at the block holding `offset` and reads whole blocks; the
        // bytes wanted are `skip..skip + want` of what it reads.
        let skip = if *direct { (self.offset % DIRECT_ALIGN as u64) as usize } else { 0 };
        let want = (segment.len - self.offset).min(self.remaining).min((READ_JOB_BYTES - skip) as u64) as usize;
        let span = if *direct { (skip + want).next_multiple_of(DIRECT_ALIGN) } else { want };
        let mut buf = Stage::take();
        let start = self.offset - skip as u64;
        let mut got = 0;
        while got < skip + want {
            match file.read_at(&mut buf.region()[got..span], start + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused by the file system: the same read through the page cache.
                Err(e) if *direct && e.raw_os_error() == Some(direct::EINVAL) => {
                    direct::stop_direct(file).map_err(|e| with_context(context(), e))?;
                    *direct = false;
                }
                Err(e) => return Err(with_context(context(), e)),
            }
        }
        if got < skip + want {
            return Err(with_context(
                context(),
                io::Error::new(io::ErrorKind::InvalidData, "file is shorter than recorded"),
            ));
        }
        buf.set_len(skip + want);
        self.offset += want as u64;
        self.remaining -= want as u64;
        Ok(Bytes::from_owner(buf).slice(skip..))
    }
}

/// Opens a segment's file (direct where possible) and checks its length.
fn open_segment(layout: &Layout, segment: &BlobSegment) -> io::Result<(File, bool)> {
    let id = check_id(&segment.id).map_err(io::Error::from)?;
    let path = layout.blob_path(id);
    let context = || format!("open blob {id} ({})", path.display());
    let (file, direct) = direct::open_read(&path).map_err(|e| with_context(context(), e))?;
    let len = file.metadata().map_err(|e| with_context(context(), e))?.len();
    if len != segment.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {id} has {len} bytes, metadata says {}", segment.len),
        ));
    }
    Ok((file, direct))
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
