//! The handoff of freshly committed replication tasks from the writer to their one consumer
//! (the replication worker), in memory.
//!
//! # Why
//! The worker used to learn about new tasks only by reading the outbox from its cursor after
//! each wake-up, then reading each object task's version to size it: at full speed that was a
//! read transaction, a range scan and a version lookup per task, about a tenth of the source's
//! request-thread time. The writer has both at hand when it commits them.
//!
//! # Contract
//! * The outbox on disk stays the truth. The handoff is a shortcut that may drop tasks, never
//!   invent them: every task it hands over was committed (it is sent after the commit), in
//!   commit order, which is sequence order.
//! * A task is handed over only while somebody is subscribed ([`FreshHub::subscribe`]); tasks
//!   committed before that are on disk, where the subscriber's first scan finds them.
//! * When the bounded channel is full, the writer drops the task and raises a flag
//!   ([`FreshTasks::take_lost`]); the subscriber then reads the outbox from its cursor. A
//!   subscriber that meets a sequence gap does the same, so a task lost in any other way costs
//!   a scan, not the task.
//! * The writer never blocks on the subscriber.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use xregion_types::VersionRecord;

use crate::queue::OutboxEntry;

/// A replication task just committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshTask {
    /// The outbox row, as stored.
    pub entry: OutboxEntry,
    /// The version the write created, as committed, when the write stored an object version
    /// (`PutVersion`, `CompleteUpload`); `None` for a delete marker or a tag change.
    pub version: Option<VersionRecord>,
}

/// The writer's side, shared with [`crate::MetaStore`].
#[derive(Debug, Default)]
pub(crate) struct FreshHub {
    /// Set while a subscriber exists: the writer collects tasks only then.
    subscribed: AtomicBool,
    tx: Mutex<Option<SyncSender<FreshTask>>>,
    /// Raised when a committed task could not be handed over.
    lost: Arc<AtomicBool>,
}

impl FreshHub {
    /// True if the writer should collect the tasks it commits.
    pub(crate) fn wanted(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// A new subscription with room for `capacity` tasks; it replaces any earlier one.
    pub(crate) fn subscribe(&self, capacity: usize) -> FreshTasks {
        let (tx, rx) = sync_channel(capacity.max(1));
        *self.tx.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        self.lost.store(false, Ordering::Release);
        self.subscribed.store(true, Ordering::Release);
        FreshTasks { rx, lost: Arc::clone(&self.lost) }
    }

    /// Hands over the tasks of a committed group, in order. Never blocks.
    pub(crate) fn send(&self, tasks: Vec<FreshTask>) {
        if tasks.is_empty() {
            return;
        }
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = tx.as_ref() else { return };
        for task in tasks {
            match sender.try_send(task) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    // The rest of the group is dropped too: the subscriber scans from its
                    // cursor, which finds them all, in order.
                    self.lost.store(true, Ordering::Release);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    *tx = None;
                    self.subscribed.store(false, Ordering::Release);
                    return;
                }
            }
        }
    }
}

/// The subscriber's side ([`crate::MetaStore::subscribe_fresh`]).
#[derive(Debug)]
pub struct FreshTasks {
    rx: Receiver<FreshTask>,
    lost: Arc<AtomicBool>,
}

impl FreshTasks {
    /// The next task handed over (sequence order), if one waits.
    pub fn try_next(&self) -> Option<FreshTask> {
        self.rx.try_recv().ok()
    }

    /// True, once, if tasks were committed that could not be handed over since the last call:
    /// read the outbox from where you are.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Ordering::AcqRel)
    }
}
