//! A lane: serial blocking work on one piece of state, fed with batches from async code.
//!
//! The async side pushes batches into a short queue ([`LANE_DEPTH`]); a `spawn_blocking` job
//! drains it and exits as soon as it is empty. So a fast producer keeps one thread busy with
//! no hand-off per batch, a slow producer holds no thread between batches, and a full queue
//! makes the producer wait (back-pressure). The state lives in the lane between jobs; the
//! first error stops the lane and drops the state (whose own `Drop` cleans up).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::BlobError;
use crate::error::io_error;

/// Batches a lane queues before a push waits.
pub(crate) const LANE_DEPTH: usize = 1;

/// What a lane does with each batch (blocking).
pub(crate) type Work<S> = fn(&mut S, &[Bytes]) -> Result<(), BlobError>;

/// One lane. Dropping it cancels queued batches; the state is dropped once no job holds it.
pub(crate) struct Lane<S: Send + 'static> {
    shared: Arc<Shared<S>>,
    runtime: Handle,
}

struct Shared<S> {
    inner: Mutex<Inner<S>>,
    /// Wakes the async side: a batch was taken, the lane went idle or failed.
    progress: Notify,
    work: Work<S>,
}

struct Inner<S> {
    /// The state, unless a job is working on it or the lane failed.
    state: Option<S>,
    queue: VecDeque<Arc<[Bytes]>>,
    /// A drain job is spawned and has not finished.
    running: bool,
    /// The first error, until the async side takes it.
    error: Option<BlobError>,
    /// An error happened (reported or not); the lane does nothing more.
    failed: bool,
    /// The owner went away or aborted: drop queued batches.
    cancelled: bool,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> Inner<S> {
    /// The lane's error, once; afterwards a generic "failed earlier".
    fn check(&mut self) -> Result<(), BlobError> {
        if !self.failed {
            return Ok(());
        }
        Err(self.error.take().unwrap_or_else(failed_earlier))
    }

    fn fail(&mut self, error: BlobError) {
        self.failed = true;
        self.error.get_or_insert(error);
        self.queue.clear();
    }
}

impl<S: Send + 'static> Lane<S> {
    pub(crate) fn new(runtime: Handle, state: S, work: Work<S>) -> Self {
        let inner = Inner {
            state: Some(state),
            queue: VecDeque::new(),
            running: false,
            error: None,
            failed: false,
            cancelled: false,
        };
        let shared = Arc::new(Shared { inner: Mutex::new(inner), progress: Notify::new(), work });
        Self { shared, runtime }
    }

    /// Queues a batch, waiting while the queue is full. Fails if an earlier batch failed.
    pub(crate) async fn push(&self, batch: Arc<[Bytes]>) -> Result<(), BlobError> {
        loop {
            {
                let mut inner = self.shared.lock();
                inner.check()?;
                if inner.queue.len() < LANE_DEPTH {
                    inner.queue.push_back(batch);
                    if !inner.running {
                        inner.running = true;
                        drop(inner);
                        self.spawn_drain();
                    }
                    return Ok(());
                }
            }
            self.shared.progress.notified().await;
        }
    }

    /// Waits until every queued batch is done, then takes the state.
    pub(crate) async fn take(&self) -> Result<S, BlobError> {
        loop {
            {
                let mut inner = self.shared.lock();
                inner.check()?;
                if !inner.running && inner.queue.is_empty() {
                    return inner.state.take().ok_or_else(failed_earlier);
                }
            }
            self.shared.progress.notified().await;
        }
    }

    /// Drops queued batches, waits for the batch in progress, and takes the state if the lane
    /// has one (not after a failure).
    pub(crate) async fn cancel(&self) -> Option<S> {
        loop {
            {
                let mut inner = self.shared.lock();
                inner.cancelled = true;
                inner.queue.clear();
                if !inner.running {
                    return inner.state.take();
                }
            }
            self.shared.progress.notified().await;
        }
    }

    fn spawn_drain(&self) {
        // The guard marks the lane idle and failed if the job panics or never runs.
        let job = DrainJob { shared: Arc::clone(&self.shared), finished: false };
        drop(self.runtime.spawn_blocking(move || job.run()));
    }
}

impl<S: Send + 'static> Drop for Lane<S> {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.cancelled = true;
        inner.queue.clear();
    }
}

impl<S: Send + 'static> std::fmt::Debug for Lane<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Lane")
            .field("queued", &inner.queue.len())
            .field("running", &inner.running)
            .field("failed", &inner.failed)
            .finish_non_exhaustive()
    }
}

/// A drain job: processes batches until the queue is empty (blocking). It marks the lane idle
/// in the same critical section in which it sees the queue empty, so a concurrent push either
/// lands before (and is processed) or sees the lane idle (and spawns a new job).
struct DrainJob<S> {
    shared: Arc<Shared<S>>,
    /// Set on every normal exit; if still false on drop, the job panicked or never ran.
    finished: bool,
}

impl<S> DrainJob<S> {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            let (batch, mut state) = {
                let mut inner = shared.lock();
                let next = if inner.cancelled || inner.failed {
                    inner.queue.clear();
                    None
                } else {
                    inner.queue.pop_front()
                };
                let Some(batch) = next else {
                    return self.finish(inner);
                };
                let Some(state) = inner.state.take() else {
                    inner.fail(failed_earlier());
                    return self.finish(inner);
                };
                (batch, state)
            };
            shared.progress.notify_one(); // room in the queue
            let result = (shared.work)(&mut state, &batch);
            let mut inner = shared.lock();
            match result {
                Ok(()) => inner.state = Some(state),
                Err(e) => {
                    inner.fail(e);
                    self.finish(inner);
                    drop(state); // its Drop cleans up, outside the lock
                    return;
                }
            }
        }
    }

    /// Marks the lane idle (under the caller's lock) and wakes the async side.
    fn finish(&mut self, mut inner: MutexGuard<'_, Inner<S>>) {
        inner.running = false;
        drop(inner);
        self.finished = true;
        self.shared.progress.notify_one();
    }
}

impl<S> Drop for DrainJob<S> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let reason = if std::thread::panicking() { "panicked" } else { "did not run (runtime shutting down)" };
        let shared = Arc::clone(&self.shared);
        let mut inner = shared.lock();
        inner.fail(io_error("blob job", io::Error::other(reason)));
        self.finish(inner);
    }
}

/// The error of a lane or writer that already failed.
pub(crate) fn failed_earlier() -> BlobError {
    io_error("blob write", io::Error::other("writer failed earlier or was cancelled"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sum(state: &mut u64, batch: &[Bytes]) -> Result<(), BlobError> {
        for chunk in batch {
            if chunk.as_ref() == b"fail" {
                return Err(BlobError::Corrupt("asked to fail".into()));
            }
            if chunk.as_ref() == b"panic" {
                panic!("asked to panic");
            }
            *state += chunk.len() as u64;
        }
        Ok(())
    }

    fn batch(data: &'static [u8]) -> Arc<[Bytes]> {
        Arc::from(vec![Bytes::from_static(data)])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_in_order_and_hands_back_the_state() {
        let lane = Lane::new(Handle::current(), 0u64, sum);
        for _ in 0..100 {
            lane.push(batch(b"abc")).await.unwrap();
        }
        assert_eq!(lane.take().await.unwrap(), 300);
        assert!(lane.take().await.is_err(), "the state was taken");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_is_reported_once_then_the_lane_stays_failed() {
        let lane = Lane::new(Handle::current(), 0u64, sum);
        lane.push(batch(b"fail")).await.unwrap();
        let mut errors = Vec::new();
        for _ in 0..3 {
            if let Err(e) = lane.push(batch(b"x")).await {
                errors.push(e);
            }
        }
        if let Err(e) = lane.take().await {
            errors.push(e);
        }
        assert!(matches!(errors.first(), Some(BlobError::Corrupt(_))), "{errors:?}");
        assert!(errors.iter().skip(1).all(|e| matches!(e, BlobError::Io(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_fails_the_lane_instead_of_hanging() {
        let lane = Lane::new(Handle::current(), 0u64, sum);
        lane.push(batch(b"panic")).await.unwrap();
        assert!(lane.take().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_and_drop_release_the_state() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn nothing(_: &mut Counted, _: &[Bytes]) -> Result<(), BlobError> {
            Ok(())
        }
        let lane = Lane::new(Handle::current(), Counted, nothing);
        lane.push(batch(b"a")).await.unwrap();
        assert!(lane.cancel().await.is_some());
        let lane = Lane::new(Handle::current(), Counted, nothing);
        lane.push(batch(b"a")).await.unwrap();
        drop(lane);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while DROPS.load(Ordering::SeqCst) < 2 {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
    }
}
