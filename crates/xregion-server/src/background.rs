//! The replication worker's own runtime: a small tokio runtime whose threads run at background
//! priority, beside the runtime that serves S3 requests.
//!
//! # Why
//! Tokio has no task priorities. On the request runtime, a PUT's task waited in the same run
//! queues as the worker's batch jobs, their signing and their HTTP connections; under load the
//! replication of earlier PUTs delayed the next ones. On threads of its own, the worker is
//! scheduled by the kernel against the request threads, and with a positive nice value it
//! takes the CPU the requests leave: ingest comes first, replication catches up in the gaps
//! (its backlog is on disk, so falling behind for a while loses nothing, and the lag is
//! reported). `--replication-nice 0` gives it the requests' priority; the worker's metadata
//! writes still go through the region's one writer thread, at normal priority.
//!
//! # Contract
//! * [`BackgroundRuntime::start`] builds the runtime; every thread it starts (workers and the
//!   blocking pool) lowers its own priority to `nice` first. Linux only: elsewhere the threads
//!   keep the process's priority. A thread that cannot lower it says so in the log and runs on.
//! * Tasks spawned inside [`BackgroundRuntime::enter`] run there, and so do the connection
//!   tasks of the HTTP clients they create.
//! * Dropping it stops the runtime without waiting for its tasks (stop the worker first: its
//!   shutdown awaits its own task). Safe to drop from async code.

use tokio::runtime::{EnterGuard, Runtime};

/// Thread name of the background runtime's threads (15 bytes at most: Linux keeps that many).
pub(crate) const THREAD_NAME: &str = "xregion-repl";

/// A running background runtime.
pub(crate) struct BackgroundRuntime {
    runtime: Option<Runtime>,
}

impl BackgroundRuntime {
    /// Starts `threads` worker threads at priority `nice` (0 = unchanged, up to 19).
    pub(crate) fn start(threads: usize, nice: i32) -> anyhow::Result<BackgroundRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(THREAD_NAME)
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(BackgroundRuntime { runtime: Some(runtime) })
    }

    /// Makes tasks spawned while the guard lives run on this runtime.
    pub(crate) fn enter(&self) -> Option<EnterGuard<'_>> {
        self.runtime.as_ref().map(Runtime::enter)
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value (Linux: per thread).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(nice, error = %e, "cannot lower the replication thread's priority; it runs at normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}
