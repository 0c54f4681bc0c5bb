//! Batch replication jobs (BAT-2..BAT-7): their records and task rows.
//!
//! The store only keeps them; `xregion_core::jobs` decides what they mean. A job's record and
//! the task rows that go with a step of its progress (a manifest page, a page of outcomes)
//! are written in one transaction, so after a crash the record's positions (`scan_after`,
//! `queued_upto`, `settled_upto`) and counts always describe exactly the rows on disk.

use redb::ReadableTable as _;
use xregion_types::job::{JobRecord, JobTask};

use crate::codec::{decode, encode};
use crate::error::MetaError;
use crate::journal::{self, TableId};
use crate::ops::WriteOutcome;
use crate::schema::META_NEXT_JOB_SEQ;
use crate::writer::WTables;

/// The `job_tasks` key of a job's task.
pub(crate) fn task_key(job_seq: u64, task: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&job_seq.to_be_bytes());
    key[8..].copy_from_slice(&task.to_be_bytes());
    key
}

/// `CreateJob`: stores the job under a new sequence number.
pub(crate) fn create(t: &mut WTables<'_>, mut record: JobRecord) -> Result<WriteOutcome, MetaError> {
    record.seq = t.take_counter(META_NEXT_JOB_SEQ, 1)?;
    put(t, &record)?;
    Ok(WriteOutcome::Job(record))
}

/// `UpdateJob`: replaces the record of a known job and stores its task rows.
pub(crate) fn update(
    t: &mut WTables<'_>,
    record: &JobRecord,
    tasks: &[(u64, JobTask)],
) -> Result<WriteOutcome, MetaError> {
    if t.jobs.get(record.seq)?.is_none() {
        return Err(MetaError::Corrupt(format!("job {} ({}) is not stored", record.id, record.seq)));
    }
    put(t, record)?;
    for (number, task) in tasks {
        t.mark_dirty();
        let bytes = encode(task)?;
        let key = task_key(record.seq, *number);
        journal::insert(&mut t.job_tasks, &mut t.redo, TableId::JobTasks, &key.as_slice(), &bytes.as_slice())?;
    }
    Ok(WriteOutcome::Done)
}

fn put(t: &mut WTables<'_>, record: &JobRecord) -> Result<(), MetaError> {
    t.mark_dirty();
    let bytes = encode(record)?;
    journal::insert(&mut t.jobs, &mut t.redo, TableId::Jobs, &record.seq, &bytes.as_slice())
}

/// `ForgetJob`: removes up to `limit` task rows of the job, and its record once none is
/// left. Outcome: `Forgot(true)` when the job is gone.
pub(crate) fn forget(t: &mut WTables<'_>, job_seq: u64, limit: usize) -> Result<WriteOutcome, MetaError> {
    let keys: Vec<[u8; 16]> = {
        let (start, end) = (task_key(job_seq, 0), task_key(job_seq, u64::MAX));
        let mut keys = Vec::new();
        for item in t.job_tasks.range(start.as_slice()..=end.as_slice())?.take(limit) {
            let (key, _) = item?;
            let key = <[u8; 16]>::try_from(key.value())
                .map_err(|_| MetaError::Corrupt("job task key of the wrong length".into()))?;
            keys.push(key);
        }
        keys
    };
    for key in &keys {
        t.mark_dirty();
        journal::remove(&mut t.job_tasks, &mut t.redo, TableId::JobTasks, &key.as_slice())?;
    }
    if keys.len() < limit {
        t.mark_dirty();
        journal::remove(&mut t.jobs, &mut t.redo, TableId::Jobs, &job_seq)?;
        return Ok(WriteOutcome::Forgot(true));
    }
    Ok(WriteOutcome::Forgot(false))
}

/// Task rows of job `job_seq` numbered `from` and up, at most `limit`, in order.
pub(crate) fn tasks(
    table: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    job_seq: u64,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, JobTask)>, MetaError> {
    let start = task_key(job_seq, from);
    let end = task_key(job_seq, u64::MAX);
    let mut out = Vec::new();
    for item in table.range(start.as_slice()..=end.as_slice())?.take(limit) {
        let (key, value) = item?;
        let number = key
            .value()
            .get(8..16)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| MetaError::Corrupt("job task key of the wrong length".into()))?;
        out.push((number, decode(value.value())?));
    }
    Ok(out)
}

/// Every stored job, oldest first.
pub(crate) fn all(table: &impl redb::ReadableTable<u64, &'static [u8]>) -> Result<Vec<JobRecord>, MetaError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (_, value) = item?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}
