//! Writeback: a helper thread that keeps the redb file's dirty pages flowing to disk between
//! checkpoints, so that a checkpoint finds little left to write.
//!
//! # Why
//! Between checkpoints the writer commits with `Durability::None` (see `journal.rs`): redb
//! writes the pages of those commits into the OS page cache (when they leave its own write
//! buffer) and nobody asks the kernel to write them out, which with gigabytes of memory it
//! does only after about 30 seconds. So each checkpoint's `fdatasync` wrote every page of the
//! last second at once (30-40 MB, 40-100 ms at 4 KiB PUT full speed). The writer thread, and
//! with it every write of the region, waited for that; and the other regions on the same disk
//! saw their journal fsyncs queue behind it. With this thread syncing the file every
//! [`WRITEBACK_EVERY`] while writes come in, the full-speed replication lag p99 of the
//! two-region benchmark fell from 67-75 ms to 38-46 ms (four alternated runs each,
//! `bench/results/2026-12-06-session11-replication.md`).
//!
//! # Contract
//! * It only makes pages durable earlier; it never changes what is durable *as a commit*. redb
//!   writes a non-durable commit's pages to free locations and its durable header still names
//!   the last durable commit, so a page on disk early is harmless (the kernel may write any
//!   dirty page at any time anyway). Crash safety rests on the journal and the checkpoints.
//! * It syncs only when a group was committed since its last sync: an idle region costs no
//!   disk work.
//! * It holds its own read-only handle of the file. On Linux a write error is reported to
//!   every handle of the file, so a failed sync here does not hide the error from the
//!   checkpoint's own `fdatasync`. Errors are logged (once per run of errors) and counted, and
//!   never stop the thread: the checkpoint reports what matters.
//! * It stops when the store is dropped (its stop channel closes) and is joined before the
//!   database closes.
//!
//! Why a thread doing `fdatasync` rather than `sync_file_range(SYNC_FILE_RANGE_WRITE)`: the
//! latter would start the writes without waiting, but neither `std` nor `rustix` offers it and
//! the workspace forbids `unsafe`; a thread of our own that waits costs nothing to the writer.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::MetaError;
use crate::writer::Stats;

/// How often the file is synced while groups are committed.
pub(crate) const WRITEBACK_EVERY: Duration = Duration::from_millis(20);

/// The running thread: dropping the sender stops it.
pub(crate) struct Writeback {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Starts the thread for the redb file at `path`; `stats` tells it whether groups were
    /// committed and counts its syncs.
    pub(crate) fn start(path: &Path, stats: Arc<Stats>) -> Result<Writeback, MetaError> {
        let file = File::open(path)
            .map_err(|e| MetaError::Storage(format!("opening {} for writeback: {e}", path.display())))?;
        let (stop, stopped) = channel();
        let thread = std::thread::Builder::new()
            .name("xregion-meta-writeback".into())
            .spawn(move || run(&file, &stopped, &stats))
            .map_err(|e| MetaError::Storage(format!("cannot spawn metadata writeback: {e}")))?;
        Ok(Writeback { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops the thread and waits for it (at most one sync in progress).
    pub(crate) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("metadata writeback thread panicked");
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(file: &File, stopped: &Receiver<()>, stats: &Stats) {
    let mut synced_groups = stats.groups.load(Ordering::Relaxed);
    let mut failing = false;
    loop {
        match stopped.recv_timeout(WRITEBACK_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            // The store is closing (nothing is ever sent).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let groups = stats.groups.load(Ordering::Relaxed);
        if groups == synced_groups {
            continue;
        }
        synced_groups = groups;
        let started = Instant::now();
        match file.sync_data() {
            Ok(()) => {
                failing = false;
                stats.writeback_syncs.fetch_add(1, Ordering::Relaxed);
                stats.writeback_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats.writeback_errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(error = %e, "metadata writeback sync failed; the next checkpoint will report it");
                }
                failing = true;
            }
        }
    }
}
