//! MD5, the ETag of a simple upload, computed for many uploads at once.
//!
//! # Why not one MD5 per upload
//! MD5 is serial within one stream (each 64-byte block needs the previous block's state), so
//! a single stream costs about 1.3 ms/MiB of CPU here (md-5 0.11: 1.64 ms/MiB), and a large
//! PUT spent more than half its server CPU on it. Independent streams, though, fit side by
//! side in SIMD lanes: `md5-many` hashes 16 streams in the AVX-512 lanes (8 with AVX2) for an
//! aggregate 0.16 ms/MiB here (measured with 16 streams of 64 KiB slices; 0.22 with 8, and
//! no gain below 4). Concurrent uploads are exactly such streams.
//!
//! # How uploads are combined
//! Each upload that wants an MD5 opens an [`Md5Stream`] and pushes its batches into it; the
//! push returns at once unless [`STREAM_QUEUE`] batches of that stream are already waiting
//! (back-pressure, awaited asynchronously). A few hasher threads, shared by the process (one
//! per core, at most [`MAX_THREADS`]), run rounds: a round takes the oldest batch of every stream that has one
//! and is not in another round (up to [`MAX_STREAMS`]) and feeds them to
//! `Md5Many::update_many` side by side, [`SLICE_BYTES`] per stream per call, so uneven
//! chunkings still fill the lanes. A round starts only when someone waits (a push that
//! finds the queue full, or `finish`) or 16 streams are ready; until then batches accumulate,
//! so rounds are as wide as the number of busy uploads. A few uploads (where SIMD lanes
//! gain nothing) are spread over the threads, so they still use every core, as when each
//! upload hashed on its own thread.
//!
//! An earlier version let the waiting callers take turns at combining (flat combining), each
//! waiting for its own batch: the uploads then moved in lock-step and most rounds held one or
//! two streams (1.9 ms/MiB aggregate with 16 threads, worse than no combining). Queueing
//! without waiting is what keeps the rounds full.
//!
//! The threads only hash bytes in memory and never wait for anything but work, so every
//! push and finish is eventually served. [`Md5`] is the plain single-stream hash, for small
//! bodies. md5-many is a young crate (an alpha, pinned exactly in the workspace); the tests
//! below compare it with md-5 on random inputs and chunkings, alone and combined.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use md5_many::{Md5Many, Md5State};

/// Streams hashed together in one round at most (48 lanes is md5-many's widest schedule:
/// three interleaved AVX-512 batches).
pub const MAX_STREAMS: usize = 48;
/// Bytes of each stream per `update_many` call: slices stay in cache and uneven chunkings
/// still fill the lanes.
pub const SLICE_BYTES: usize = 64 * 1024;
/// Batches of one stream queued (including the one being hashed) before a push waits.
pub const STREAM_QUEUE: usize = 1;
/// Ready streams that start a round even though nobody waits yet (AVX-512 lanes).
const FULL_ROUND: usize = 16;
/// Hasher threads at most (fewer on machines with fewer cores).
pub const MAX_THREADS: usize = 4;

/// A running MD5 of one stream, computed by the caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct Md5 {
    state: Md5State,
}

impl Md5 {
    /// An empty MD5.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
    }

    /// The digest of everything appended so far.
    pub fn finalize(&self) -> [u8; 16] {
        self.state.finalize()
    }
}

/// MD5 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 16] {
    md5_many::md5(bytes)
}

/// An MD5 computed by the shared hasher thread, combined with other uploads' (see the module
/// docs). Dropping it unfinished discards its queued batches.
#[derive(Debug)]
pub struct Md5Stream {
    id: u64,
}

impl Md5Stream {
    /// Opens an empty stream.
    pub fn new() -> Self {
        let mut state = HASHER.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.streams.insert(id, Stream::default());
        Self { id }
    }

    /// Queues a batch; waits (asynchronously, holding no thread) while [`STREAM_QUEUE`] batches
    /// of this stream are queued.
    pub async fn push(&self, batch: Arc<[Bytes]>) {
        if batch.iter().all(Bytes::is_empty) {
            return;
        }
        let mut batch = Some(batch);
        self.wait_until((), |stream| {
            if stream.queue.len() < STREAM_QUEUE {
                stream.queue.extend(batch.take());
                stream.pushing = false;
                return Some(());
            }
            stream.pushing = true;
            None
        })
        .await;
    }

    /// The digest of every pushed batch, once they are all hashed (waits asynchronously).
    pub async fn finish(self) -> [u8; 16] {
        self.wait_until(Md5State::new().finalize(), |stream| {
            if stream.queue.is_empty() && !stream.in_round {
                return Some(stream.md5.finalize());
            }
            stream.finishing = true;
            None
        })
        .await
    }

    /// Runs `step` on this stream under the lock until it returns a value, waking the hasher
    /// threads after each miss and waiting for the next round. `gone` is returned if the
    /// stream is not there (never happens: only `Drop` removes it).
    async fn wait_until<T>(&self, gone: T, mut step: impl FnMut(&mut Stream) -> Option<T>) -> T {
        let hasher = &*HASHER;
        loop {
            let notified = ASYNC_PROGRESS.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a round that ends after it still wakes us.
            notified.as_mut().enable();
            {
                let mut state = hasher.lock();
                let Some(stream) = state.streams.get_mut(&self.id) else { return gone };
                if let Some(value) = step(stream) {
                    hasher.work.notify_one();
                    return value;
                }
                hasher.work.notify_one();
                if hasher.inline {
                    drop(hasher.round(state, &Md5Many::new()));
                    continue;
                }
            }
            notified.await;
        }
    }
}

impl Default for Md5Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        HASHER.lock().streams.remove(&self.id);
    }
}

/// Wakes pushers and finishers after every round.
static ASYNC_PROGRESS: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// The process-wide hasher: uploads of every region in this process share it.
static HASHER: LazyLock<Hasher> = LazyLock::new(Hasher::start);

struct Hasher {
    shared: Mutex<Shared>,
    /// Signalled when a batch is queued.
    work: Condvar,
    /// No hasher thread could be started: callers hash their own batches.
    inline: bool,
}

#[derive(Default)]
struct Shared {
    next_id: u64,
    streams: BTreeMap<u64, Stream>,
    /// Where the next round starts looking, so more than `MAX_STREAMS` busy streams take turns.
    next_start: u64,
    /// Hasher threads waiting for work.
    idle: usize,
}

#[derive(Default)]
struct Stream {
    /// The MD5 of every batch hashed so far.
    md5: Md5State,
    /// Batches to hash, oldest first; the front one stays here while a round hashes it.
    queue: VecDeque<Arc<[Bytes]>>,
    /// A round is hashing the front batch.
    in_round: bool,
    /// `finish` waits for this stream.
    finishing: bool,
    /// A `push` waits for room in this stream's queue.
    pushing: bool,
}

impl Stream {
    /// A round may take this stream.
    fn ready(&self) -> bool {
        !self.in_round && !self.queue.is_empty()
    }

    /// Someone waits for this stream: its uploader (a push waits for room) or `finish`.
    fn urgent(&self) -> bool {
        self.ready() && (self.pushing || self.finishing)
    }
}

impl Shared {
    /// Whether to hash now. Batches are left to accumulate until someone waits for one of
    /// them or a full set of lanes is ready: hashing each batch as soon as it arrives made
    /// rounds of one or two streams (at single-stream cost) whenever the hasher kept up.
    fn worth_a_round(&self) -> bool {
        let mut ready = 0;
        for stream in self.streams.values() {
            if stream.urgent() {
                return true;
            }
            ready += usize::from(stream.ready());
        }
        ready >= FULL_ROUND
    }
}

impl Hasher {
    fn start() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, MAX_THREADS);
        let mut started = 0;
        for i in 0..threads {
            match std::thread::Builder::new().name(format!("xregion-md5-{i}")).spawn(|| HASHER.run()) {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start an MD5 thread"),
            }
        }
        if started == 0 {
            tracing::error!("no MD5 thread; uploads hash their own bytes");
        }
        Self { shared: Mutex::new(Shared::default()), work: Condvar::new(), inline: started == 0 }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hasher thread: rounds while there is work, sleeps otherwise.
    fn run(&self) {
        let engine = Md5Many::new();
        let mut state = self.lock();
        loop {
            if state.worth_a_round() {
                state = self.round(state, &engine);
            } else {
                state.idle += 1;
                state = self.work.wait(state).unwrap_or_else(PoisonError::into_inner);
                state.idle -= 1;
            }
        }
    }

    /// Hashes the front batch of up to `MAX_STREAMS` streams together (unlocked), stores the
    /// new states, and wakes everyone waiting for progress.
    fn round<'a>(&'a self, mut state: MutexGuard<'a, Shared>, engine: &Md5Many) -> MutexGuard<'a, Shared> {
        let start = state.next_start;
        let mut jobs: Vec<(u64, Md5State, Arc<[Bytes]>)> = Vec::new();
        let idle = state.idle;
        let streams = &mut state.streams;
        let mut ready: Vec<u64> = (streams.range(start..).chain(streams.range(..start)))
            .filter(|(_, stream)| stream.ready())
            .take(MAX_STREAMS)
            .map(|(&id, _)| id)
            .collect();
        // Too few streams for the SIMD lanes to gain anything (see `group_sizes`): share them
        // with the idle threads, so a few uploads still use every core.
        if ready.len() <= 3 && idle > 0 {
            ready.truncate(ready.len().div_ceil(idle + 1));
            self.work.notify_one();
        }
        for id in ready {
            if let Some(stream) = streams.get_mut(&id)
                && let Some(batch) = stream.queue.front()
            {
                stream.in_round = true;
                jobs.push((id, stream.md5, Arc::clone(batch)));
            }
        }
        state.next_start = jobs.last().map_or(0, |(id, _, _)| id + 1);
        drop(state);
        let states = hash_together(engine, &jobs);
        let mut state = self.lock();
        for ((id, _, _), md5) in jobs.iter().zip(states) {
            // A stream dropped meanwhile is simply gone.
            if let Some(stream) = state.streams.get_mut(id) {
                stream.md5 = md5;
                stream.in_round = false;
                stream.queue.pop_front();
            }
        }
        ASYNC_PROGRESS.notify_waiters();
        state
    }
}

/// Appends each job's batch to its state, jobs side by side in groups (see [`group_sizes`]);
/// returns the new states.
fn hash_together(engine: &Md5Many, jobs: &[(u64, Md5State, Arc<[Bytes]>)]) -> Vec<Md5State> {
    let combined = catch_unwind(AssertUnwindSafe(|| {
        let mut states = Vec::with_capacity(jobs.len());
        let mut rest = jobs;
        for size in group_sizes(jobs.len()) {
            let (group, after) = rest.split_at(size.min(rest.len()));
            states.extend(hash_group(engine, group));
            rest = after;
        }
        states
    }));
    // A panic in the SIMD code must not lose the uploads' hashes: hash them one by one.
    combined.unwrap_or_else(|_| {
        tracing::error!("combined MD5 round panicked; hashing its batches one by one");
        jobs.iter().map(|(_, md5, batch)| hash_alone(*md5, batch)).collect()
    })
}

/// How to split `n` streams into `update_many` calls. md5-many is fast for exactly 8 or 16
/// streams (0.22 / 0.17 ms/MiB each here), fair for 9-15 (~0.5) and 4 (0.93), but 4-6 ms/MiB
/// for 5-7 streams, much slower than alone (1.35). Measured with 64 KiB slices, see
/// `throughput::group_sizes_measured`.
fn group_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while n >= 16 {
        sizes.push(16);
        n -= 16;
    }
    match n {
        9..=15 => sizes.push(n),
        8 => sizes.push(8),
        4..=7 => {
            sizes.push(4);
            sizes.extend(std::iter::repeat_n(1, n - 4));
        }
        _ => sizes.extend(std::iter::repeat_n(1, n)),
    }
    sizes
}

/// One `update_many` group: the jobs' batches side by side, [`SLICE_BYTES`] at a time.
fn hash_group(engine: &Md5Many, jobs: &[(u64, Md5State, Arc<[Bytes]>)]) -> Vec<Md5State> {
    if let [(_, md5, batch)] = jobs {
        return vec![hash_alone(*md5, batch)];
    }
    let mut states: Vec<Md5State> = jobs.iter().map(|(_, md5, _)| *md5).collect();
    let mut cursors = vec![Cursor::default(); jobs.len()];
    let mut inputs: Vec<&[u8]> = Vec::with_capacity(jobs.len());
    loop {
        inputs.clear();
        inputs.extend(jobs.iter().zip(cursors.iter_mut()).map(|((_, _, batch), cursor)| cursor.next(batch)));
        if inputs.iter().all(|input| input.is_empty()) {
            return states;
        }
        engine.update_many(&mut states, &inputs);
    }
}

/// One stream's batch, hashed alone.
fn hash_alone(mut md5: Md5State, batch: &[Bytes]) -> Md5State {
    batch.iter().for_each(|chunk| md5.update(chunk));
    md5
}

/// Position in a batch: chunk index and offset in that chunk.
#[derive(Clone, Copy, Default)]
struct Cursor {
    chunk: usize,
    offset: usize,
}

impl Cursor {
    /// The next slice of at most `SLICE_BYTES`, or an empty slice at the end.
    fn next<'a>(&mut self, batch: &'a [Bytes]) -> &'a [u8] {
        while let Some(chunk) = batch.get(self.chunk) {
            let rest = chunk.get(self.offset..).unwrap_or_default();
            if rest.is_empty() {
                self.chunk += 1;
                self.offset = 0;
                continue;
            }
            let slice = rest.get(..SLICE_BYTES.min(rest.len())).unwrap_or(rest);
            self.offset += slice.len();
            return slice;
        }
        &[]
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use md5_reference::Digest as _;
    use proptest::prelude::*;

    use super::*;

    fn reference(bytes: &[u8]) -> [u8; 16] {
        md5_reference::Md5::digest(bytes).into()
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        (0..len as u64).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) as u8).collect()
    }

    fn chunked(bytes: &[u8], sizes: &[usize]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut rest = bytes;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at((*size).max(1).min(rest.len()));
            out.push(Bytes::copy_from_slice(head));
            rest = tail;
        }
        out
    }

    #[test]
    fn digest_matches_md5_known_answers() {
        assert_eq!(hex::encode(digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex::encode(digest(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        let md5 = Md5Stream::new();
        block_on(md5.push(Arc::from([Bytes::from(vec![b'a'; 1_000_000])])));
        assert_eq!(hex::encode(block_on(md5.finish())), "7707d6ae4e027c70eea2a935c2296f21");
        assert_eq!(hex::encode(block_on(Md5Stream::new().finish())), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn threads_combined_match_md5() {
        // Many threads at once, so rounds really combine jobs of uneven sizes and chunkings.
        let inputs: Arc<Vec<(Vec<u8>, Vec<usize>)>> = Arc::new(
            (0..24).map(|i| (data(300_000 + i * 7_919, i as u64), vec![1 + i * 4_001, 65_536, 100_000 + i])).collect(),
        );
        let handles: Vec<_> = (0..inputs.len())
            .map(|i| {
                let inputs = Arc::clone(&inputs);
                std::thread::spawn(move || {
                    let (bytes, sizes) = &inputs[i];
                    let md5 = Md5Stream::new();
                    for batch in chunked(bytes, sizes).chunks(3) {
                        block_on(md5.push(Arc::from(batch)));
                    }
                    // A stream dropped with batches queued must not disturb the others.
                    let abandoned = Md5Stream::new();
                    block_on(abandoned.push(Arc::from([Bytes::from(vec![1u8; 200_000])])));
                    drop(abandoned);
                    (block_on(md5.finish()), reference(bytes))
                })
            })
            .collect();
        for handle in handles {
            let (got, want) = handle.join().expect("hash thread");
            assert_eq!(got, want);
        }
    }

    #[test]
    fn group_sizes_cover_every_stream_and_avoid_slow_counts() {
        for n in 0..100 {
            let sizes = group_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|&size| !(5..=7).contains(&size) && size <= 16), "{n}: {sizes:?}");
        }
    }

    proptest! {
        #[test]
        fn batches_match_md5(len in 0usize..400_000, sizes in prop::collection::vec(1usize..200_000, 1..5), per_batch in 1usize..4, seed: u64) {
            let bytes = data(len, seed);
            let chunks = chunked(&bytes, &sizes);
            let md5 = Md5Stream::new();
            for batch in chunks.chunks(per_batch) {
                block_on(md5.push(Arc::from(batch)));
            }
            prop_assert_eq!(block_on(md5.finish()), reference(&bytes));
            let mut direct = Md5::new();
            chunks.iter().for_each(|chunk| direct.update(chunk));
            prop_assert_eq!(direct.finalize(), reference(&bytes));
        }

        #[test]
        fn cursor_yields_every_byte_in_order(sizes in prop::collection::vec(0usize..200_000, 0..6)) {
            let batch: Vec<Bytes> = sizes.iter().map(|&n| Bytes::from(data(n, n as u64))).collect();
            let mut cursor = Cursor::default();
            let mut joined = Vec::new();
            loop {
                let slice = cursor.next(&batch);
                if slice.is_empty() {
                    break;
                }
                prop_assert!(slice.len() <= SLICE_BYTES);
                joined.extend_from_slice(slice);
            }
            prop_assert_eq!(joined, batch.concat());
        }
    }
}

#[cfg(test)]
mod throughput {
    use futures::executor::block_on;

    use super::*;

    /// `update_many` cost per stream count (run by hand, `--release --ignored`): the figures
    /// behind `group_sizes`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn group_sizes_measured() {
        let engine = Md5Many::new();
        let data = vec![7u8; 1 << 20];
        for n in 1..=20 {
            let mut states = vec![Md5State::new(); n];
            let inputs: Vec<&[u8]> = vec![&data[..SLICE_BYTES]; n];
            let started = std::time::Instant::now();
            (0..256).for_each(|_| engine.update_many(&mut states, &inputs));
            let per_mib = started.elapsed().as_secs_f64() * 1e3 / (16.0 * n as f64);
            eprintln!("{n} streams in one call: {per_mib:.3} ms per MiB each");
        }
    }

    /// Aggregate MD5 cost with 1..16 concurrent streams (run by hand, `--release --ignored`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn streams_side_by_side() {
        let data = Bytes::from(vec![7u8; 1 << 20]);
        for threads in [1usize, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24] {
            let started = std::time::Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let data = data.clone();
                    std::thread::spawn(move || {
                        let md5 = Md5Stream::new();
                        (0..64).for_each(|_| block_on(md5.push(Arc::from([data.clone()]))));
                        block_on(md5.finish())
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| drop(h.join()));
            let per_mib = started.elapsed().as_secs_f64() * 1e3 / (64.0 * threads as f64);
            eprintln!("{threads} streams: {per_mib:.3} ms of wall time per MiB");
        }
    }
}
