//! Blob files written with `O_DIRECT`, through an aligned staging buffer.
//!
//! # Why
//! A blob is written once and rarely read soon after (replicas, backups; a replication
//! source reads it once). Written through the page cache, every byte is first copied into
//! newly allocated page-cache pages, written back, and the pages are then dropped
//! ([`crate::writer`] advises `DONTNEED` after the fsync). On the benchmark machine that copy
//! is the most expensive part of a large PUT: `dd` of 2 GiB with 1 MiB blocks and a final
//! fsync spent 2.3-2.9 s of system CPU buffered and 0.3-0.8 s with `oflag=direct`, and in the
//! 1 MiB replication benchmark the source's `write(2)` calls cost 1.3 ms per PUT. A replicated
//! object is written twice on one machine (source and destination), so this cost counts twice
//! against replication. With `O_DIRECT` the bytes go from one reused buffer to the device;
//! MinIO writes objects the same way.
//!
//! # How
//! Chunks are copied into a [`Stage`] of [`STAGE_BYTES`] (aligned to [`DIRECT_ALIGN`], taken
//! from a small pool so its memory stays hot) and written with one positioned write each
//! time it fills. At the end, the aligned part of what is left is written directly and the
//! last partial block (< [`DIRECT_ALIGN`] bytes) through the page cache, after clearing
//! `O_DIRECT` on the descriptor: so the file has its exact length without a truncate (which
//! would read the last block back). Durability is unchanged: the caller fsyncs before the
//! rename, as for a buffered file.
//!
//! # Fallback
//! A file system that refuses `O_DIRECT` (at open, or with `EINVAL` on the first write)
//! gets the buffered path for that file, so tmpfs and other systems keep working. Only Linux
//! opens files this way.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Alignment of direct writes: buffer address, file offset and length. 4 KiB covers the
/// logical block size of the devices we run on (512 B or 4 KiB).
pub const DIRECT_ALIGN: usize = 4096;
/// Size of one direct write (and of a staging buffer).
pub const STAGE_BYTES: usize = 1024 * 1024;

static STAGES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An aligned buffer of [`STAGE_BYTES`], from a process-wide pool shared by writes (staging)
/// and reads (job buffers), returned to it on drop. Safe code: the `Vec` is over-allocated
/// by one alignment and used from its first aligned address.
pub(crate) struct Stage {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
}

impl Stage {
    /// A buffer from the pool, or a new one.
    pub(crate) fn take() -> Self {
        let pooled = STAGES.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let buf = pooled.unwrap_or_else(|| vec![0u8; STAGE_BYTES + DIRECT_ALIGN]);
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        Self { buf, start, filled: 0 }
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(STAGE_BYTES - self.filled);
        let at = self.start + self.filled;
        self.buf[at..at + n].copy_from_slice(&bytes[..n]);
        self.filled += n;
        n
    }

    pub(crate) fn is_full(&self) -> bool {
        self.filled == STAGE_BYTES
    }

    /// The bytes staged so far.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.filled]
    }

    pub(crate) fn clear(&mut self) {
        self.filled = 0;
    }

    /// The whole aligned region, for reading into.
    pub(crate) fn region(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + STAGE_BYTES]
    }

    /// Marks the first `len` bytes of the region as the data.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.filled = len.min(STAGE_BYTES);
    }
}

impl AsRef<[u8]> for Stage {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let mut stages = STAGES.lock().unwrap_or_else(PoisonError::into_inner);
        if stages.len() < crate::POOL_MAX_BUFFERS {
            stages.push(mem::take(&mut self.buf));
        }
    }
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage").field("filled", &self.filled).finish_non_exhaustive()
    }
}

/// Opens a new file for writing, with `O_DIRECT` where the platform and file system allow.
/// Returns the file and whether it is direct.
pub(crate) fn create_new(path: &Path) -> io::Result<(File, bool)> {
    open(File::options().write(true).create_new(true), path)
}

/// Opens an existing file for reading, like [`create_new`].
pub(crate) fn open_read(path: &Path) -> io::Result<(File, bool)> {
    open(File::options().read(true), path)
}

/// Opens with `options` plus `O_DIRECT`; if the file system refuses that (`EINVAL`), with
/// `options` alone.
fn open(options: &mut OpenOptions, path: &Path) -> io::Result<(File, bool)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let direct = rustix::fs::OFlags::DIRECT.bits();
        match options.clone().custom_flags(direct as i32).open(path) {
            Ok(file) => return Ok((file, true)),
            Err(e) if e.raw_os_error() == Some(EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((options.open(path)?, false))
}

/// Clears `O_DIRECT` on an open file: later writes go through the page cache.
pub(crate) fn stop_direct(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let flags = rustix::fs::fcntl_getfl(file)?;
        rustix::fs::fcntl_setfl(file, flags - rustix::fs::OFlags::DIRECT)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// Writes `bytes` at `offset` on a direct file (`bytes` aligned in address, length and
/// offset). `Ok(false)`: the file system refused the direct write (`EINVAL`); the caller
/// writes the same bytes at the same offset through the page cache, which also covers a
/// refusal after a short write.
pub(crate) fn write_direct(file: &File, bytes: &[u8], offset: u64) -> io::Result<bool> {
    match file.write_all_at(bytes, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `EINVAL`: how Linux refuses `O_DIRECT` (at open, or for an I/O it cannot do directly).
#[cfg(target_os = "linux")]
pub(crate) const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();
/// `EINVAL` (no direct I/O off Linux: never matched in practice).
#[cfg(not(target_os = "linux"))]
pub(crate) const EINVAL: i32 = 22;

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the file system of `dir` takes `O_DIRECT` (tmpfs may not).
    fn supports_direct(dir: &Path) -> bool {
        create_new(&dir.join("probe")).unwrap().1
    }

    /// A misaligned direct write is refused with `EINVAL`, reported as `Ok(false)` (the
    /// writer then falls back to the page cache); an aligned one is written.
    #[test]
    fn misaligned_direct_writes_are_refused_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        if !cfg!(target_os = "linux") || !supports_direct(dir.path()) {
            return;
        }
        let (file, direct) = create_new(&dir.path().join("f")).unwrap();
        assert!(direct);
        let mut stage = Stage::take();
        stage.push(&[7; 2 * DIRECT_ALIGN]);
        assert!(!write_direct(&file, &stage.data()[1..=DIRECT_ALIGN], 0).unwrap());
        assert!(write_direct(&file, &stage.data()[..DIRECT_ALIGN], 0).unwrap());
        stop_direct(&file).unwrap();
        file.write_all_at(&[8; 3], DIRECT_ALIGN as u64).unwrap();
        let bytes = std::fs::read(dir.path().join("f")).unwrap();
        assert_eq!(bytes.len(), DIRECT_ALIGN + 3);
        assert!(bytes[..DIRECT_ALIGN].iter().all(|&b| b == 7) && bytes[DIRECT_ALIGN..] == [8, 8, 8]);
    }

    #[test]
    fn stages_are_aligned_and_fill_up() {
        let mut stage = Stage::take();
        assert!(stage.data().as_ptr().addr().is_multiple_of(DIRECT_ALIGN));
        assert_eq!(stage.push(&[1; 10]), 10);
        assert_eq!(stage.push(&vec![2; STAGE_BYTES]), STAGE_BYTES - 10);
        assert!(stage.is_full());
        assert_eq!(&stage.data()[8..12], &[1, 1, 2, 2]);
        stage.clear();
        assert!(stage.data().is_empty());
    }
}
