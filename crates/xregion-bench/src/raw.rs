//! The raw-disk ceiling: the same sizes, concurrency and durations as the server phases, but
//! plain files: create, write, `fsync` (one per file), close; then read them back.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::stats::Measured;

/// Runs `op(worker, iteration)` on `concurrency` OS threads until `duration` has passed;
/// operations in flight at the deadline finish and count. `op` returns payload bytes moved, or
/// `None` when that worker has no more work.
fn run_threads<F>(concurrency: usize, duration: Duration, op: F) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> anyhow::Result<Option<u64>> + Sync,
{
    let start = Instant::now();
    let deadline = start + duration;
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|w| {
                let op = &op;
                s.spawn(move || -> anyhow::Result<(Vec<Duration>, u64, u64)> {
                    let (mut lat, mut bytes, mut i) = (Vec::new(), 0u64, 0u64);
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        let Some(n) = op(w, i)? else { break };
                        lat.push(t0.elapsed());
                        bytes += n;
                        i += 1;
                    }
                    Ok((lat, bytes, i))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("raw worker panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(Measured::from_workers(start.elapsed().as_secs_f64(), results))
}

/// Path of the file written by `worker` at iteration `i`.
fn file_path(dir: &Path, worker: usize, i: u64) -> PathBuf {
    dir.join(format!("{worker}-{i}"))
}

/// Creates files of `size` bytes (written from `pattern`, repeated) and fsyncs each one, at
/// most `max_per_worker` per worker; with `drop_pages`, then drops each file's pages from the
/// page cache (`POSIX_FADV_DONTNEED`), close to the server, which writes its blob files with
/// `O_DIRECT` (no pages to drop). Returns the
/// measurement and the paths written.
pub fn write_fsync(
    dir: &Path,
    size: u64,
    pattern: &[u8],
    concurrency: usize,
    duration: Duration,
    max_per_worker: u64,
    drop_pages: bool,
) -> anyhow::Result<(Measured, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let m = run_threads(concurrency, duration, |w, i| {
        if i >= max_per_worker {
            return Ok(None);
        }
        let path = file_path(dir, w, i);
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(pattern.len() as u64) as usize;
            f.write_all(&pattern[..n]).with_context(|| format!("writing {}", path.display()))?;
            left -= n as u64;
        }
        f.sync_all().with_context(|| format!("fsync {}", path.display()))?;
        if drop_pages {
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
                .with_context(|| format!("fadvise {}", path.display()))?;
        }
        Ok(Some(size))
    })?;
    let paths = m
        .per_worker
        .iter()
        .enumerate()
        .flat_map(|(w, &n)| (0..n).map(move |i| (w, i)))
        .map(|(w, i)| file_path(dir, w, i))
        .collect();
    Ok((m, paths))
}

/// Reads `files` back whole (1 MiB reads) on `concurrency` threads until `duration` has
/// passed: cycling through them (`one_pass` false), or reading each file at most once.
pub fn read_back(
    files: &[PathBuf],
    concurrency: usize,
    duration: Duration,
    one_pass: bool,
) -> anyhow::Result<Measured> {
    anyhow::ensure!(!files.is_empty(), "nothing was written to read back");
    let buffers: Vec<std::sync::Mutex<Vec<u8>>> =
        (0..concurrency).map(|_| std::sync::Mutex::new(vec![0u8; 1 << 20])).collect();
    run_threads(concurrency, duration, |w, i| {
        let index = w + i as usize * concurrency;
        if one_pass && index >= files.len() {
            return Ok(None);
        }
        let path = &files[index % files.len()];
        let mut buf = buffers[w].lock().map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?;
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok(Some(total))
    })
}

/// Evicts the files' pages from the page cache (`posix_fadvise(DONTNEED)` via
/// `dd iflag=nocache count=0`; the files were fsynced, so their pages are clean), so the next
/// read comes from the device. Returns how many files were evicted.
pub fn evict_from_page_cache(files: &[PathBuf]) -> anyhow::Result<usize> {
    for f in files {
        let status = std::process::Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .stdin(std::process::Stdio::null())
            .status()
            .context("running dd to evict files from the page cache")?;
        anyhow::ensure!(status.success(), "dd iflag=nocache {} failed ({status})", f.display());
    }
    Ok(files.len())
}

/// Regular files under `dir` (recursively) modified at or after `since`.
pub fn files_modified_since(dir: &Path, since: SystemTime) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            let meta = entry.metadata().with_context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && meta.modified().is_ok_and(|m| m >= since) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
