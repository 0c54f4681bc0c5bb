//! `xregion-bench`: measures one xregion region against the raw disk it sits on, in one run.
//!
//! 1. Raw ceiling: write+fsync and read back plain files of 4 KiB, 1 MiB and 64 MiB in a
//!    directory next to the server's data directory, with the same concurrency.
//! 2. Starts `xregion serve` (release binary of this workspace) with a fresh data directory.
//! 3. PUT then GET objects of the same sizes with a lean SigV4 client.
//! 4. Samples the server's RSS and CPU, prints a table and the target ratios, and writes
//!    `bench/results/<date>.md`.
//!
//! Run by hand: `cargo run --release -p xregion-bench -- [--quick]`. See `bench/README.md`.
//!
//! `cargo run --release -p xregion-bench -- replication [--quick]` measures replication between
//! two regions instead (see `replication.rs`); `… -- rewrap [--objects N]` the SSE re-wrap pass
//! after a key rotation (`rewrap.rs`).

mod client;
mod probe;
mod raw;
mod replication;
mod report;
mod rewrap;
mod server;
mod stats;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use md5::Digest as _;
use rand::Rng as _;

use crate::client::S3Client;
use crate::probe::{Probe, RssSampler};
use crate::stats::{Measured, Phase};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const REGION: &str = "us-east-1";
const BUCKET: &str = "bench";
/// The bucket of `--sse`: default encryption SSE-S3.
const BUCKET_SSE: &str = "bench-sse";

#[derive(Parser, Debug)]
#[command(
    name = "xregion-bench",
    about = "xregion PUT/GET throughput and latency vs. raw disk, measured in the same run"
)]
struct Args {
    /// About one minute in total instead of about four (shorter phases).
    #[arg(long)]
    quick: bool,
    /// Concurrent workers for every phase (the 4 KiB raw fsync baseline also runs at 1).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per 4 KiB phase (default 15, --quick 4).
    #[arg(long)]
    secs_4k: Option<f64>,
    /// Seconds per 1 MiB phase (default 10, --quick 3).
    #[arg(long)]
    secs_1m: Option<f64>,
    /// Seconds per 64 MiB phase (default 15, --quick 6); operations in flight at the end finish.
    #[arg(long)]
    secs_64m: Option<f64>,
    /// Only these object sizes (comma-separated, of 4k, 1m, 64m), raw and server phases
    /// alike: to study one size. Checks needing a missing size are left out of the report.
    #[arg(long, value_delimiter = ',', default_values_t = [SizeArg::K4, SizeArg::M1, SizeArg::M64])]
    sizes: Vec<SizeArg>,
    #[command(flatten)]
    server: server::ServerArgs,
    /// Where to write `<date>.md` (default: `bench/results` in the workspace).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Do not write a results file.
    #[arg(long)]
    no_write: bool,
    /// Disk budget per write phase, GiB: workers stop starting writes once the phase has
    /// written this much (a fast disk can otherwise fill tens of GiB in the 64 MiB phases).
    #[arg(long, default_value_t = 16.0)]
    max_gib_per_phase: f64,
    /// Keep the temporary directory (server data and the raw 4 KiB files; larger raw files are
    /// deleted as the run goes).
    #[arg(long)]
    keep: bool,
    /// Also PUT and GET every size into a bucket with default encryption (SSE-S3), right
    /// after the plain bucket's phases, and report encrypted ÷ plain.
    #[arg(long)]
    sse: bool,
}

/// An object size the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SizeArg {
    #[value(name = "4k")]
    K4,
    #[value(name = "1m")]
    M1,
    #[value(name = "64m")]
    M64,
}

impl std::fmt::Display for SizeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SizeArg::K4 => "4k",
            SizeArg::M1 => "1m",
            SizeArg::M64 => "64m",
        })
    }
}

/// Phase durations.
#[derive(Debug, Clone, Copy)]
struct Durations {
    small: Duration,
    medium: Duration,
    large: Duration,
}

impl Args {
    fn durations(&self) -> Durations {
        let (s, m, l) = if self.quick { (4.0, 3.0, 6.0) } else { (15.0, 10.0, 15.0) };
        let d = |x: Option<f64>, def: f64| Duration::from_secs_f64(x.unwrap_or(def).max(0.1));
        Durations { small: d(self.secs_4k, s), medium: d(self.secs_1m, m), large: d(self.secs_64m, l) }
    }
}

impl Args {
    /// How many objects/files of `size` one of `concurrency` workers may write in one phase.
    fn max_writes_per_worker(&self, size: u64, concurrency: usize) -> u64 {
        let budget = (self.max_gib_per_phase.max(0.0) * (1u64 << 30) as f64) as u64;
        (budget / size.max(1) / concurrency.max(1) as u64).max(1)
    }
}

/// The object/file sizes, each with its phase duration.
fn sizes(d: Durations, only: &[SizeArg]) -> Vec<(u64, Duration)> {
    [(SizeArg::K4, 4 * KIB, d.small), (SizeArg::M1, MIB, d.medium), (SizeArg::M64, 64 * MIB, d.large)]
        .into_iter()
        .filter(|(arg, _, _)| only.contains(arg))
        .map(|(_, size, dur)| (size, dur))
        .collect()
}

fn main() -> anyhow::Result<()> {
    // `xregion-bench replication [...]`: the two-region replication benchmark.
    if std::env::args_os().nth(1).is_some_and(|a| a == "replication") {
        let rest = std::env::args_os().enumerate().filter(|(i, _)| *i != 1).map(|(_, a)| a);
        return replication::run(replication::ReplArgs::parse_from(rest));
    }
    // `xregion-bench rewrap [...]`: the SSE re-wrap pass after a key rotation.
    if std::env::args_os().nth(1).is_some_and(|a| a == "rewrap") {
        let rest = std::env::args_os().enumerate().filter(|(i, _)| *i != 1).map(|(_, a)| a);
        return rewrap::run(rewrap::RewrapArgs::parse_from(rest));
    }
    let args = Args::parse();
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let durations = args.durations();
    let profile = server::own_profile().unwrap_or_default();
    if profile != "release" {
        eprintln!("xregion-bench: WARNING: this is a `{profile}` build; only --release numbers mean anything");
    }
    let server_bin = args.server.binary()?;

    let parent = args.server.parent_dir()?;
    let work = tempfile::Builder::new()
        .prefix("xregion-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    if let Some(free) = probe::free_bytes(work.path()) {
        let needed = 2.0 * args.max_gib_per_phase * (1u64 << 30) as f64;
        if (free as f64) < needed {
            eprintln!(
                "xregion-bench: WARNING: {:.1} GiB free in {}; a run can write up to ~{:.0} GiB (see --max-gib-per-phase)",
                free as f64 / (1u64 << 30) as f64,
                parent.display(),
                needed / (1u64 << 30) as f64
            );
        }
    }
    let raw_dir = work.path().join("raw");
    let data_dir = work.path().join("server-data");

    let mut pattern = vec![0u8; MIB as usize];
    rand::rng().fill(&mut pattern[..]);
    let pattern = Bytes::from(pattern);

    let started = std::time::SystemTime::now();
    let ticks = probe::clock_ticks();
    let idle_load = probe::host_busy_cores(Duration::from_secs(1), ticks);
    let env = report::Environment::collect(&server_bin, work.path(), &args, durations, idle_load);
    println!("{}", env.header_text());
    if idle_load.is_some_and(|l| l > 0.25) {
        eprintln!(
            "xregion-bench: WARNING: other processes already use {:.2} cores; expect noisy numbers",
            idle_load.unwrap_or_default()
        );
    }

    // 1. Raw ceiling.
    let mut phases = Vec::new();
    let no_server = Probe { ticks, server_pid: None, rss: None };
    raw_phases(&raw_dir, &args, durations, &pattern, &no_server, &mut phases)?;

    // 2. The server.
    let access_key = "XREGIONBENCHACCESSKEY";
    let secret_key = hex::encode(rand::random::<[u8; 20]>());
    let log = work.path().join("server.log");
    let server = server::Server::start(&server_bin, &data_dir, &log, REGION, access_key, &secret_key)?;
    let pid = server.pid();
    let idle_rss = probe::status_kib_field(pid, "VmRSS:");
    let rss = RssSampler::start(pid);
    let probe = Probe { ticks, server_pid: Some(pid), rss: Some(&rss) };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?;
    let target = Target {
        endpoint: &server.endpoint,
        access_key,
        secret_key: &secret_key,
        data_dir: &data_dir,
        raw_dir: &raw_dir,
    };
    let outcome = runtime.block_on(server_phases(&target, &args, durations, &pattern, &probe, &mut phases));
    let hwm = probe::status_kib_field(pid, "VmHWM:");
    let rss_max = rss.overall_max();
    drop(rss);
    if let Err(e) = outcome {
        let tail = server.log_tail();
        drop(server);
        return Err(e.context(format!("server log tail:\n{tail}")));
    }
    server.stop()?;
    drop(runtime);

    // 3. Report.
    let checks = report::checks(&phases, args.concurrency, rss_max.max(hwm.unwrap_or(0)));
    let memory = report::Memory { idle_rss, rss_max, hwm };
    let text = report::render(&env, &phases, &checks, &memory, started.elapsed().unwrap_or_default());
    println!("{text}");
    if !args.no_write {
        let out_dir = args.out_dir.clone().unwrap_or_else(|| server::workspace_root().join("bench").join("results"));
        let path = report::write(&out_dir, &text, started)?;
        println!("wrote {}", path.display());
    }
    if args.keep {
        let kept = work.keep();
        println!("kept {}", kept.display());
    } else {
        work.close().context("removing the temporary directory")?;
    }
    Ok(())
}

/// Write+fsync and read back plain files of every size; files of 1 MiB and more are deleted
/// after their size, small files with the temporary directory at the end.
fn raw_phases(
    raw_dir: &Path,
    args: &Args,
    durations: Durations,
    pattern: &Bytes,
    probe: &Probe<'_>,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<()> {
    let c = args.concurrency;
    for (size, dur) in sizes(durations, &args.sizes) {
        let dir = raw_dir.join(stats::fmt_size(size).replace(' ', ""));
        let concs: &[usize] = if size == 4 * KIB && c != 1 { &[1, c] } else { &[c] };
        let mut written = Vec::new();
        for &wc in concs {
            let snap = probe.begin();
            let max = args.max_writes_per_worker(size, wc);
            let (m, paths) = raw::write_fsync(&dir, size, pattern, wc, dur, max, false)?;
            written.extend(paths);
            record(phases, probe, &snap, phase::RAW_WRITE, size, wc, m);
        }
        let snap = probe.begin();
        let m = raw::read_back(&written, c, dur, false)?;
        record(phases, probe, &snap, phase::RAW_READ_CACHED, size, c, m);
        if size == 64 * MIB {
            raw::evict_from_page_cache(&written)?;
            let snap = probe.begin();
            let m = raw::read_back(&written, c, dur, true)?;
            record(phases, probe, &snap, phase::RAW_READ_COLD, size, c, m);
            // The server drops a blob's pages once it is on disk; so does this ceiling.
            let snap = probe.begin();
            let (m, _) =
                raw::write_fsync(&dir.join("drop"), size, pattern, c, dur, args.max_writes_per_worker(size, c), true)?;
            record(phases, probe, &snap, phase::RAW_WRITE_DROP, size, c, m);
        }
        // Large files go now (disk space). The ~10^5 small files stay until the run ends: on ext4
        // without a journal, inodes freed in the last minutes are skipped by the inode allocator
        // (`recently_deleted`), which would slow the server's own file creation that follows.
        if size >= MIB {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Phase labels (the report finds rows by them).
pub mod phase {
    /// Create, write, fsync, close a file.
    pub const RAW_WRITE: &str = "raw write+fsync";
    /// [`RAW_WRITE`] again, just before the server's phase of the same size.
    pub const RAW_WRITE_AGAIN: &str = "raw write+fsync, again";
    /// Create, write, fsync, drop the file's pages from the page cache, close.
    pub const RAW_WRITE_DROP: &str = "raw write+fsync+drop";
    /// Read files just written (page cache).
    pub const RAW_READ_CACHED: &str = "raw read, cached";
    /// Read files after evicting them from the page cache (device).
    pub const RAW_READ_COLD: &str = "raw read, cold";
    /// PutObject.
    pub const PUT: &str = "PUT";
    /// GetObject of objects just written (page cache).
    pub const GET_CACHED: &str = "GET, cached";
    /// GetObject after evicting the server's files from the page cache.
    pub const GET_COLD: &str = "GET, cold";
    /// PutObject into a bucket with default encryption (SSE-S3, `--sse`).
    pub const PUT_SSE: &str = "PUT, encrypted";
    /// GetObject of encrypted objects just written (`--sse`).
    pub const GET_SSE: &str = "GET, encrypted";
}

/// Turns a finished measurement into a table row and prints it right away.
fn record(
    phases: &mut Vec<Phase>,
    probe: &Probe<'_>,
    snap: &probe::Snapshot,
    name: &'static str,
    size: u64,
    concurrency: usize,
    m: Measured,
) {
    let usage = probe.end(snap);
    let p = Phase { name, size, concurrency, m, usage };
    eprintln!("  {}", report::progress_line(&p));
    phases.push(p);
}

/// Runs `op(worker, iteration)` on `concurrency` tasks until `duration` has passed;
/// operations in flight at the deadline finish and count. `op` returns payload bytes moved, or
/// `None` when that worker has no more work.
async fn run_tasks<F, Fut>(concurrency: usize, duration: Duration, op: F) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Option<u64>>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut bytes, mut i) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let Some(n) = op(w, i).await? else { break };
                    lat.push(t0.elapsed());
                    bytes += n;
                    i += 1;
                }
                anyhow::Ok((lat, bytes, i))
            })
        })
        .collect();
    let mut results = Vec::with_capacity(concurrency);
    for h in handles {
        results.push(h.await.context("load worker panicked")??);
    }
    Ok(Measured::from_workers(start.elapsed().as_secs_f64(), results))
}

/// Object key written by `worker` at iteration `i` of a PUT phase.
fn key_of(size: u64, concurrency: usize, worker: usize, i: u64) -> String {
    format!("{}/c{concurrency}/{worker}/{i}", stats::fmt_size(size).replace(' ', ""))
}

/// PUT one object, GET it back, and check the ETag and the bytes (outside any timing).
async fn verify(client: &S3Client, size: u64, pattern: &Bytes) -> anyhow::Result<()> {
    let key = format!("verify/{size}");
    let etag = client.put(BUCKET, &key, pattern, size).await?;
    let mut expected = md5::Md5::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(pattern.len() as u64) as usize;
        expected.update(&pattern[..n]);
        left -= n as u64;
    }
    let expected = hex::encode(expected.finalize());
    if etag != expected {
        bail!("PUT {key}: ETag {etag:?}, expected MD5 {expected}");
    }
    let mut got = md5::Md5::new();
    let n = client.get_with(BUCKET, &key, |d| got.update(d)).await?;
    let got = hex::encode(got.finalize());
    if n != size || got != expected {
        bail!("GET {key}: {n} bytes with MD5 {got}, expected {size} bytes with MD5 {expected}");
    }
    Ok(())
}

/// The server under test.
struct Target<'a> {
    endpoint: &'a str,
    access_key: &'a str,
    secret_key: &'a str,
    data_dir: &'a Path,
    /// Where the raw phases write their files.
    raw_dir: &'a Path,
}

/// PUT then GET every size; for 64 MiB also GET after evicting the server's files from the
/// page cache.
async fn server_phases(
    target: &Target<'_>,
    args: &Args,
    durations: Durations,
    pattern: &Bytes,
    probe: &Probe<'_>,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<()> {
    let client = Arc::new(S3Client::new(target.endpoint, REGION, target.access_key, target.secret_key)?);
    client.create_bucket(BUCKET).await.context("creating the benchmark bucket")?;
    if args.sse {
        client.create_bucket(BUCKET_SSE).await.context("creating the encrypted benchmark bucket")?;
        let rule = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
                    <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>\
                    </ServerSideEncryptionConfiguration>";
        client.put_document(&format!("/{BUCKET_SSE}?encryption"), rule).await.context("default encryption")?;
    }
    let c = args.concurrency;
    for (size, dur) in sizes(durations, &args.sizes) {
        verify(&client, size, pattern)
            .await
            .with_context(|| format!("checking a {} round trip", stats::fmt_size(size)))?;

        if size == 4 * KIB {
            // The fsync rate of this disk drifts over minutes: measure the one-fsync-per-file
            // baseline again right before the server's phase (the server is idle), so the
            // 4 KiB ratio uses a baseline from both sides of the raw phases (see report.rs).
            let (dir, pattern) = (target.raw_dir.join("4KiB-again"), pattern.clone());
            let max = args.max_writes_per_worker(size, 1);
            let snap = probe.begin();
            let (m, _) =
                tokio::task::spawn_blocking(move || raw::write_fsync(&dir, size, &pattern, 1, dur, max, false))
                    .await
                    .context("raw phase panicked")??;
            record(phases, probe, &snap, phase::RAW_WRITE_AGAIN, size, 1, m);
        }
        let put_started = std::time::SystemTime::now();
        let snap = probe.begin();
        let (m, keys) = put_phase(&client, BUCKET, pattern, size, c, dur, args.max_writes_per_worker(size, c)).await?;
        record(phases, probe, &snap, phase::PUT, size, c, m);

        let snap = probe.begin();
        let m = get_phase(&client, BUCKET, &keys, size, c, dur, false).await?;
        record(phases, probe, &snap, phase::GET_CACHED, size, c, m);

        if args.sse {
            let max = args.max_writes_per_worker(size, c);
            let snap = probe.begin();
            let (m, sealed) = put_phase(&client, BUCKET_SSE, pattern, size, c, dur, max).await?;
            record(phases, probe, &snap, phase::PUT_SSE, size, c, m);
            let snap = probe.begin();
            let m = get_phase(&client, BUCKET_SSE, &sealed, size, c, dur, false).await?;
            record(phases, probe, &snap, phase::GET_SSE, size, c, m);
        }

        if size == 64 * MIB {
            // Everything the server wrote since this size's PUTs began: its blobs and metadata.
            let files = raw::files_modified_since(target.data_dir, put_started - Duration::from_secs(1))?;
            raw::evict_from_page_cache(&files)?;
            let snap = probe.begin();
            let m = get_phase(&client, BUCKET, &keys, size, c, dur, true).await?;
            record(phases, probe, &snap, phase::GET_COLD, size, c, m);
        }

        if size == 4 * KIB && c != 1 {
            // Unloaded latency: one request at a time (no queueing behind other workers).
            let dur1 = dur.div_f64(3.0);
            let snap = probe.begin();
            let max = args.max_writes_per_worker(size, 1);
            let (m, _) = put_phase(&client, BUCKET, pattern, size, 1, dur1, max).await?;
            record(phases, probe, &snap, phase::PUT, size, 1, m);
            let snap = probe.begin();
            let m = get_phase(&client, BUCKET, &keys, size, 1, dur1, false).await?;
            record(phases, probe, &snap, phase::GET_CACHED, size, 1, m);
        }
    }
    Ok(())
}

/// PUTs objects of `size` on `concurrency` tasks for `duration` (at most `max_per_worker` each);
/// returns the measurement and the keys written.
async fn put_phase(
    client: &Arc<S3Client>,
    bucket: &'static str,
    pattern: &Bytes,
    size: u64,
    concurrency: usize,
    duration: Duration,
    max_per_worker: u64,
) -> anyhow::Result<(Measured, Arc<Vec<String>>)> {
    let (cl, pat) = (client.clone(), pattern.clone());
    let m = run_tasks(concurrency, duration, move |w, i| {
        let (cl, pat) = (cl.clone(), pat.clone());
        async move {
            if i >= max_per_worker {
                return Ok(None);
            }
            cl.put(bucket, &key_of(size, concurrency, w, i), &pat, size).await?;
            Ok(Some(size))
        }
    })
    .await?;
    let keys: Vec<String> = m
        .per_worker
        .iter()
        .enumerate()
        .flat_map(|(w, &n)| (0..n).map(move |i| key_of(size, concurrency, w, i)))
        .collect();
    anyhow::ensure!(!keys.is_empty(), "no {} object was written", stats::fmt_size(size));
    Ok((m, Arc::new(keys)))
}

/// GETs `keys` on `concurrency` tasks for `duration`, cycling, or reading each key at most once.
async fn get_phase(
    client: &Arc<S3Client>,
    bucket: &'static str,
    keys: &Arc<Vec<String>>,
    size: u64,
    concurrency: usize,
    duration: Duration,
    one_pass: bool,
) -> anyhow::Result<Measured> {
    let (cl, keys) = (client.clone(), keys.clone());
    run_tasks(concurrency, duration, move |w, i| {
        let (cl, keys) = (cl.clone(), keys.clone());
        async move {
            let index = w + i as usize * concurrency;
            if one_pass && index >= keys.len() {
                return Ok(None);
            }
            let key = &keys[index % keys.len()];
            let n = cl.get(bucket, key).await?;
            if n != size {
                bail!("GET {key}: {n} bytes, expected {size}");
            }
            Ok(Some(n))
        }
    })
    .await
}
