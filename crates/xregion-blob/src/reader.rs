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
//! read rarely, most often exactly once: a replication source sends it right after it was
//! written, and that read is served from the bytes the writer kept in memory
//! ([`crate::recent`]) when it asked to; only when they are gone does the read go to the
//! file. A job reads whole aligned
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
use xregion_crypto::{CHUNK_BYTES, DataKey, SEALED_CHUNK_BYTES, SegmentCipher, chunk_count, sealed_len};
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

/// Sealed chunks one job of an encrypted blob reads at most: their aligned span must fit in
/// one pooled buffer whatever the alignment skip.
const SEALED_CHUNKS_PER_JOB: u64 = ((STAGE_BYTES - DIRECT_ALIGN) / SEALED_CHUNK_BYTES) as u64;
const _: () = assert!(SEALED_CHUNKS_PER_JOB >= 1);

/// The stream of bytes `[start, end)` of `blob`.
pub(crate) fn read_range(
    layout: Arc<Layout>,
    blob: &BlobRef,
    start: u64,
    end: u64,
    key: Option<(Arc<DataKey>, Vec<String>)>,
) -> BoxStream<'static, io::Result<Bytes>> {
    let cursor = match Cursor::new(layout, blob, start, end, key) {
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
    /// The bytes of `segments[index]` when they were still in memory (see [`crate::recent`]):
    /// read from there instead of the file (plaintext, also for a sealed blob).
    memory: Option<Bytes>,
    /// The object's data key, if its blobs are encrypted.
    key: Option<Arc<DataKey>>,
    /// The labels the segments were sealed under, when not their ids (see
    /// [`crate::BlobStore::read_sealed`]).
    labels: Vec<String>,
    /// The cipher of `segments[index]`, while its file is open (encrypted blobs only).
    cipher: Option<SegmentCipher>,
}

impl Cursor {
    /// Positions a cursor at `start`; checks the range against the blob's length.
    fn new(
        layout: Arc<Layout>,
        blob: &BlobRef,
        start: u64,
        end: u64,
        key: Option<(Arc<DataKey>, Vec<String>)>,
    ) -> io::Result<Self> {
        let (key, labels) = key.map_or((None, Vec::new()), |(key, labels)| (Some(key), labels));
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
        Ok(Self {
            layout,
            segments: blob.segments.clone(),
            index,
            offset,
            remaining: end - start,
            file: None,
            memory: None,
            key,
            labels,
            cipher: None,
        })
    }

    /// Reads the next up-to-[`READ_JOB_BYTES`] bytes of the current segment (blocking).
    fn read_job(&mut self) -> io::Result<Bytes> {
        let segment = loop {
            let Some(segment) = self.segments.get(self.index) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "read past the last blob segment"));
            };
            if self.offset < segment.len {
                break segment.clone();
            }
            self.index += 1;
            self.offset = 0;
            self.file = None;
            self.memory = None;
            self.cipher = None;
        };
        if self.file.is_none() && self.memory.is_none() {
            self.memory = self
                .layout
                .recent
                .get(&segment.id)
                .filter(|kept| kept.sealed == self.key.is_some() && kept.bytes.len() as u64 == segment.len)
                .map(|kept| kept.bytes);
        }
        if let Some(bytes) = &self.memory {
            let want = (segment.len - self.offset).min(self.remaining).min(READ_JOB_BYTES as u64);
            // Within the segment's length, which is the kept bytes' length.
            let out = bytes.slice(self.offset as usize..(self.offset + want) as usize);
            self.offset += want;
            self.remaining -= want;
            return Ok(out);
        }
        if self.file.is_none() {
            self.file = Some(open_segment(&self.layout, &segment, self.key.is_some())?);
            if let Some(key) = &self.key {
                let label = self.labels.get(self.index).map_or(segment.id.as_bytes(), |l| l.as_bytes());
                self.cipher = Some(key.segment(label).map_err(io::Error::from)?);
            }
        }
        if self.cipher.is_some() {
            return self.read_sealed_job(&segment);
        }
        // A job reads at most READ_JOB_BYTES including the alignment skip (so plain reads
        // stay aligned job after job).
        let skip = match &self.file {
            Some((_, true)) => self.offset % DIRECT_ALIGN as u64,
            _ => 0,
        };
        let want = (segment.len - self.offset).min(self.remaining).min(READ_JOB_BYTES as u64 - skip);
        let (buf, skip) = self.read_span(&segment, self.offset, want as usize)?;
        self.offset += want;
        self.remaining -= want;
        Ok(Bytes::from_owner(buf).slice(skip..))
    }

    /// [`Cursor::read_job`] of an encrypted segment: reads the sealed chunks holding the next
    /// bytes, opens them in the job's buffer and hands out the plaintext wanted.
    fn read_sealed_job(&mut self, segment: &BlobSegment) -> io::Result<Bytes> {
        let chunk = CHUNK_BYTES as u64;
        let first = self.offset / chunk;
        let total = chunk_count(segment.len);
        let wanted_end = (self.offset + self.remaining).min(segment.len);
        let last = wanted_end.div_ceil(chunk).min(first + SEALED_CHUNKS_PER_JOB);
        let file_start = first * SEALED_CHUNK_BYTES as u64;
        let file_end = (last * SEALED_CHUNK_BYTES as u64).min(sealed_len(segment.len));
        let (mut buf, skip) = self.read_span(segment, file_start, (file_end - file_start) as usize)?;
        let cipher = self.cipher.as_ref().ok_or_else(|| io::Error::other("encrypted segment without a cipher"))?;
        let opened = cipher
            .open_chunks(first, total, &mut buf.region()[skip..skip + (file_end - file_start) as usize])
            .map_err(|e| with_context(format!("read blob {}", segment.id), e.into()))?;
        let from = (self.offset - first * chunk) as usize;
        let want = ((opened - from) as u64).min(self.remaining);
        buf.set_len(skip + from + want as usize);
        self.offset += want;
        self.remaining -= want;
        Ok(Bytes::from_owner(buf).slice(skip + from..))
    }

    /// Reads `len` bytes of the open file from `start` into a pooled buffer (blocking); for a
    /// direct file it reads whole aligned blocks around them. Returns the buffer and where
    /// the bytes start in it.
    fn read_span(&mut self, segment: &BlobSegment, start: u64, len: usize) -> io::Result<(Stage, usize)> {
        let context = || format!("read blob {}", segment.id);
        let Some((file, direct)) = self.file.as_mut() else {
            return Err(io::Error::other("read of a blob segment that is not open"));
        };
        // A direct read starts at the block holding `start` and reads whole blocks; the
        // bytes wanted are `skip..skip + len` of what it reads.
        let skip = if *direct { (start % DIRECT_ALIGN as u64) as usize } else { 0 };
        let span = if *direct { (skip + len).next_multiple_of(DIRECT_ALIGN) } else { len };
        let mut buf = Stage::take();
        let from = start - skip as u64;
        let mut got = 0;
        while got < skip + len {
            match file.read_at(&mut buf.region()[got..span], from + got as u64) {
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
        if got < skip + len {
            return Err(with_context(
                context(),
                io::Error::new(io::ErrorKind::InvalidData, "file is shorter than recorded"),
            ));
        }
        buf.set_len(skip + len);
        Ok((buf, skip))
    }
}

/// Opens a segment's file (direct where possible) and checks its length (that of the sealed
/// bytes when `sealed`).
fn open_segment(layout: &Layout, segment: &BlobSegment, sealed: bool) -> io::Result<(File, bool)> {
    let id = check_id(&segment.id).map_err(io::Error::from)?;
    let path = layout.blob_path(id);
    let context = || format!("open blob {id} ({})", path.display());
    let (file, direct) = direct::open_read(&path).map_err(|e| with_context(context(), e))?;
    let len = file.metadata().map_err(|e| with_context(context(), e))?.len();
    let expected = if sealed { sealed_len(segment.len) } else { segment.len };
    if len != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {id} has {len} bytes, metadata says {expected}"),
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
