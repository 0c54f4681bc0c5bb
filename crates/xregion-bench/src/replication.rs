//! `xregion-bench replication [--quick]`: replication lag and cost between two regions.
//!
//! Two `xregion serve` processes (us-east-1 → eu-west-1, peers of each other), versioned
//! buckets, one whole-bucket rule. Phases:
//!
//! 1. Steady rate: 1 MiB at 20 obj/s and 4 KiB at 100 obj/s. Lag of every object = PUT
//!    acknowledged → `HEAD ?versionId` on the destination answers 200 (polled every 1 ms for
//!    the first 50 ms, then less often).
//! 2. Full speed (concurrency 16, 4 KiB and 1 MiB): source PUT throughput into a replicated
//!    bucket ÷ the same into a bucket without replication, in alternated runs (`--rounds`,
//!    default 2: without, with, without, with, without; each replicated run is compared with
//!    the runs on either side of it); lag p99 (sampled on one object in `--lag-sample`,
//!    default 32, and on every worker's last object); replication throughput ÷ ingest
//!    throughput, each over its own windows (first → last PUT acknowledged; first → last
//!    replica readable), so ≥ 1.0 means replication kept pace.
//! 3. Backlog drain: destination stopped, N 4 KiB objects written, destination started; time
//!    until every version is readable there, and the source's highest RSS meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use rand::Rng as _;

use crate::client::S3Client;
use crate::probe::{self, CpuMark, CpuSpent, RssSampler};
use crate::server::{self, Server};
use crate::stats::{self, Measured, fmt_dur};

/// `HEAD` requests made by the lag pollers so far (they load the destination and the machine).
static LAG_POLLS: AtomicU64 = AtomicU64::new(0);
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const SRC_REGION: &str = "us-east-1";
const DST_REGION: &str = "eu-west-1";
const SRC: &str = "repl-src";
const DST: &str = "repl-dst";
const PLAIN: &str = "plain-src";
/// Longest one replica may take before the run is declared broken.
const LAG_LIMIT: Duration = Duration::from_secs(120);

/// Arguments of the `replication` mode.
#[derive(Parser, Debug)]
#[command(name = "xregion-bench replication", about = "xregion cross-region replication lag and cost")]
pub struct ReplArgs {
    /// Short phases (about one minute in total) and a 10k backlog.
    #[arg(long)]
    quick: bool,
    /// Objects in the backlog drain phase (default 100000, --quick 10000).
    #[arg(long)]
    backlog: Option<u64>,
    /// Seconds per steady-rate phase (default 15, --quick 5).
    #[arg(long)]
    steady_secs: Option<f64>,
    /// Seconds per full-speed phase (default 10, --quick 3).
    #[arg(long)]
    full_secs: Option<f64>,
    /// Workers in the full-speed and backlog phases.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Full-speed phases: replicated runs, each between two runs without replication
    /// (`--full-secs` each: W R W R W for 2). The ratio compares each with its neighbours and
    /// averages them, so more rounds give a steadier figure on a machine whose speed swings.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=10))]
    rounds: u64,
    /// Full-speed phases: one object in N (and each worker's last) gets a lag poller. The
    /// pollers' HEAD requests load the destination and the machine, which the run without
    /// replication does not carry: at 1 in 8 they were about a fifth of the replicated
    /// phase's CPU (see bench/README.md). 1 in 32 still gives over a thousand samples.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    lag_sample: u64,
    /// Only these phases (comma-separated): to compare two builds on one target in less time.
    /// Targets of phases left out are not checked.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Phase::ALL)]
    phases: Vec<Phase>,
    /// The destination is another S3 service: a second deployment that is not a peer, named
    /// in the source's `[[targets]]`. Its copies have version ids of their own, so a version
    /// counts as replicated once the source reads it `COMPLETED` (the target acknowledged it
    /// and the source recorded that: a little later than readable there).
    #[arg(long)]
    external: bool,
    /// Both deployments serve HTTPS (a CA and a certificate made for the run): replicas, peer
    /// lookups and the benchmark's own requests travel over TLS.
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    server: server::ServerArgs,
    /// Keep the temporary directory.
    #[arg(long)]
    keep: bool,
}

/// The measured phases of a run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// Steady-rate lag, 1 MiB and 4 KiB.
    Steady,
    /// Full speed, 4 KiB: with ÷ without replication, lag, keeping up.
    #[value(name = "full-4k")]
    Full4k,
    /// Full speed, 1 MiB.
    #[value(name = "full-1m")]
    Full1m,
    /// Backlog drain with the destination down, and the source's memory.
    Backlog,
    /// Existing versions replicated by an S3 Control batch replication job, against the same
    /// queued by `/_xregion/batch-replication` (not run unless asked for: `--phases jobs`).
    Jobs,
}

impl Phase {
    const ALL: [Phase; 4] = [Phase::Steady, Phase::Full4k, Phase::Full1m, Phase::Backlog];
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

/// Both regions and a client for each.
struct Pair {
    bin: PathBuf,
    work: PathBuf,
    access_key: String,
    secret_key: String,
    dst_port: u16,
    src_endpoint: String,
    src: Option<Server>,
    dst: Option<Server>,
    sc: Arc<S3Client>,
    dc: Arc<S3Client>,
    /// More `serve` arguments of the source and of the destination (peers, or a target).
    src_args: Vec<String>,
    dst_args: Vec<String>,
    seen: Seen,
}

/// How the run sees that a version was replicated: readable on the destination under the
/// source's version id (a peer region), or `COMPLETED` on the source (`--external`).
#[derive(Clone)]
struct Seen {
    sc: Arc<S3Client>,
    dc: Arc<S3Client>,
    external: bool,
}

impl Seen {
    async fn replicated(&self, key: &str, version: &str) -> anyhow::Result<bool> {
        if self.external {
            Ok(self.sc.replication_status(SRC, key, version).await?.as_deref() == Some("COMPLETED"))
        } else {
            self.dc.head_version(DST, key, version).await
        }
    }
}

impl Pair {
    /// Stops the source (SIGTERM) and starts it again on the same port and data.
    #[expect(clippy::disallowed_methods, reason = "the harness is synchronous: no runtime thread waits here")]
    fn restart_src(&mut self) -> anyhow::Result<()> {
        if let Some(old) = self.src.take() {
            old.stop()?;
        }
        let listen = self.src_endpoint.trim_start_matches("http://").trim_start_matches("https://").to_owned();
        let mut last = None;
        for _ in 0..50 {
            match Server::start_with(
                &self.bin,
                &self.work.join("src-data"),
                &self.work.join("src.log"),
                SRC_REGION,
                &self.access_key,
                &self.secret_key,
                &listen,
                &self.src_args,
            ) {
                Ok(s) => {
                    self.src = Some(s);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("source did not restart")))
    }

    #[expect(clippy::disallowed_methods, reason = "the harness is synchronous: no runtime thread waits here")]
    fn start_dst(&mut self) -> anyhow::Result<()> {
        let listen = format!("127.0.0.1:{}", self.dst_port);
        let mut last = None;
        // The port was ours a moment ago; allow the OS a little time to release it.
        for _ in 0..50 {
            match Server::start_with(
                &self.bin,
                &self.work.join("dst-data"),
                &self.work.join("dst.log"),
                DST_REGION,
                &self.access_key,
                &self.secret_key,
                &listen,
                &self.dst_args,
            ) {
                Ok(s) => {
                    self.dst = Some(s);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("destination did not start")))
    }
}

/// A CA and a certificate for 127.0.0.1 in `work`: the `serve` flags that serve it and trust
/// the CA, and the CA's file for the benchmark's clients.
fn tls_files(work: &Path) -> anyhow::Result<(Vec<String>, Option<PathBuf>)> {
    let ca = xregion_crypto::tls::generate::Ca::new("xregion-bench CA")?;
    let leaf = ca.leaf(&["127.0.0.1", "localhost"])?;
    let files = [("ca.pem", &ca.pem().cert), ("cert.pem", &leaf.cert), ("key.pem", &leaf.key)];
    for (name, text) in files {
        #[expect(clippy::disallowed_methods, reason = "scratch files of the run, read at the servers' start")]
        std::fs::write(work.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    let path = |name: &str| work.join(name).to_string_lossy().into_owned();
    let flags =
        ["--tls-cert-file", &path("cert.pem"), "--tls-key-file", &path("key.pem"), "--tls-ca-file", &path("ca.pem")];
    Ok((flags.iter().map(|s| (*s).to_owned()).collect(), Some(work.join("ca.pem"))))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Entry point of `xregion-bench replication`.
pub fn run(args: ReplArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    if server::own_profile().as_deref() != Some("release") {
        eprintln!("xregion-bench: WARNING: not a release build; only --release numbers mean anything");
    }
    let bin = args.server.binary()?;
    let parent = args.server.parent_dir()?;
    let work = tempfile::Builder::new().prefix("xregion-bench-repl-").tempdir_in(&parent).context("temp dir")?;

    let access_key = "XREGIONBENCHACCESSKEY".to_owned();
    let secret_key = hex::encode(rand::random::<[u8; 20]>());
    let (src_port, dst_port) = (free_port()?, free_port()?);
    let (tls_args, ca_file) = if args.tls { tls_files(work.path())? } else { (Vec::new(), None) };
    let scheme = if args.tls { "https" } else { "http" };
    let src_endpoint = format!("{scheme}://127.0.0.1:{src_port}");
    let dst_endpoint = format!("{scheme}://127.0.0.1:{dst_port}");
    let (mut src_args, mut dst_args) = if args.external {
        // The destination deployment's bucket, reached with the plain S3 API.
        let config = work.path().join("src.toml");
        let text = format!(
            "[[targets]]\nbucket = \"{DST}\"\nendpoint = \"{dst_endpoint}\"\nregion = \"{DST_REGION}\"\n\
             access_key = \"{access_key}\"\nsecret_key = \"{secret_key}\"\npath_style = true\n"
        );
        #[expect(clippy::disallowed_methods, reason = "a scratch file of the run, read once at the source's start")]
        std::fs::write(&config, text).context("writing the source's configuration")?;
        (vec!["--config".to_owned(), config.to_string_lossy().into_owned()], Vec::new())
    } else {
        let peer = |region: &str, endpoint: &str| vec!["--peer".to_owned(), format!("{region}={endpoint}")];
        (peer(DST_REGION, &dst_endpoint), peer(SRC_REGION, &src_endpoint))
    };
    src_args.extend(tls_args.iter().cloned());
    dst_args.extend(tls_args);
    let src = Server::start_with(
        &bin,
        &work.path().join("src-data"),
        &work.path().join("src.log"),
        SRC_REGION,
        &access_key,
        &secret_key,
        &format!("127.0.0.1:{src_port}"),
        &src_args,
    )?;
    let ca = ca_file.as_deref();
    let sc = Arc::new(S3Client::trusting(&src_endpoint, SRC_REGION, &access_key, &secret_key, ca)?);
    let dc = Arc::new(S3Client::trusting(&dst_endpoint, DST_REGION, &access_key, &secret_key, ca)?);
    let seen = Seen { sc: sc.clone(), dc: dc.clone(), external: args.external };
    let mut pair = Pair {
        bin,
        work: work.path().to_path_buf(),
        access_key,
        secret_key,
        dst_port,
        src_endpoint,
        src: Some(src),
        dst: None,
        sc,
        dc,
        src_args,
        dst_args,
        seen,
    };
    pair.start_dst()?;

    let ticks = probe::clock_ticks();
    let idle_load = probe::host_busy_cores(Duration::from_secs(1), ticks);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("xregion-bench replication: {cores} cores, {:.2} busy before the run", idle_load.unwrap_or_default());
    if idle_load.is_some_and(|l| l > 0.25) {
        eprintln!("xregion-bench: WARNING: other processes already use cores; expect noisy numbers");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let started = Instant::now();
    let outcome = runtime.block_on(phases(&mut pair, &args));
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let tail = |p: &Path| {
                let t = std::fs::read_to_string(p).unwrap_or_default();
                let l: Vec<&str> = t.lines().collect();
                l[l.len().saturating_sub(20)..].join("\n")
            };
            let logs = format!(
                "source log:\n{}\ndestination log:\n{}",
                tail(&pair.work.join("src.log")),
                tail(&pair.work.join("dst.log"))
            );
            return Err(e.context(logs));
        }
    };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{}", report.render(started.elapsed()));
    println!(
        "host: {cores} cores; busy cores before the run {:.2}; load average at the end {}",
        idle_load.unwrap_or_default(),
        loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    drop(runtime);
    if let Some(d) = pair.dst.take() {
        d.stop()?;
    }
    if let Some(s) = pair.src.take() {
        s.stop()?;
    }
    if args.keep {
        println!("kept {}", work.keep().display());
    }
    Ok(())
}

/// One measured lag phase.
struct LagRow {
    name: String,
    objects: usize,
    ingest_ops: f64,
    lag: Measured,
    keeps_up: f64,
    /// Full speed only: PUT ops/s without replication (the mean, over the replicated runs, of
    /// the unreplicated runs before and after each).
    baseline_ops: Option<f64>,
    /// Full speed only: each replicated run's PUT/s ÷ the mean of its two neighbours'.
    rounds: Vec<f64>,
    /// Full speed only: CPU spent and PUTs made without replication (every unreplicated run)
    /// and with it (while the load ran, its lag pollers included).
    cpu: Option<[(CpuSpent, f64); 2]>,
    /// Full speed only: the lag pollers' `HEAD` requests.
    lag_polls: Option<u64>,
    /// Full speed only: what the metadata writers of [source, destination] did without
    /// replication and with it (summed over the runs).
    writers: Option<[[WriterSample; 2]; 2]>,
}

/// The `xregion_metadata_writer_*` counters of one region (`GET /_xregion/metrics`), or the
/// difference of two readings.
#[derive(Debug, Clone, Copy, Default)]
struct WriterSample {
    groups: f64,
    busy_s: f64,
    journal_syncs: f64,
    journal_s: f64,
    checkpoints: f64,
    checkpoint_s: f64,
}

impl WriterSample {
    async fn read(c: &S3Client) -> anyhow::Result<WriterSample> {
        let text = c.get_document("/_xregion/metrics").await?;
        let mut w = WriterSample::default();
        for line in String::from_utf8_lossy(&text).lines() {
            let Some(rest) = line.strip_prefix("xregion_metadata_writer_") else { continue };
            let (Some((name, _)), Some(value)) = (rest.split_once('{'), rest.rsplit(' ').next()) else { continue };
            let value: f64 = value.parse().unwrap_or(0.0);
            match name {
                "groups_total" => w.groups = value,
                "busy_seconds_total" => w.busy_s = value,
                "journal_syncs_total" => w.journal_syncs = value,
                "journal_seconds_total" => w.journal_s = value,
                "checkpoints_total" => w.checkpoints = value,
                "checkpoint_seconds_total" => w.checkpoint_s = value,
                _ => {}
            }
        }
        Ok(w)
    }

    /// The counters of two intervals together.
    fn plus(self, other: WriterSample) -> WriterSample {
        WriterSample {
            groups: self.groups + other.groups,
            busy_s: self.busy_s + other.busy_s,
            journal_syncs: self.journal_syncs + other.journal_syncs,
            journal_s: self.journal_s + other.journal_s,
            checkpoints: self.checkpoints + other.checkpoints,
            checkpoint_s: self.checkpoint_s + other.checkpoint_s,
        }
    }

    fn since(self, before: WriterSample) -> WriterSample {
        WriterSample {
            groups: self.groups - before.groups,
            busy_s: self.busy_s - before.busy_s,
            journal_syncs: self.journal_syncs - before.journal_syncs,
            journal_s: self.journal_s - before.journal_s,
            checkpoints: self.checkpoints - before.checkpoints,
            checkpoint_s: self.checkpoint_s - before.checkpoint_s,
        }
    }

    /// Both regions' counters.
    async fn both(sc: &S3Client, dc: &S3Client) -> anyhow::Result<[WriterSample; 2]> {
        Ok([WriterSample::read(sc).await?, WriterSample::read(dc).await?])
    }

    /// Both regions' counters since `before`.
    fn both_since(now: [WriterSample; 2], before: [WriterSample; 2]) -> [WriterSample; 2] {
        [now[0].since(before[0]), now[1].since(before[1])]
    }
}

struct Backlog {
    objects: u64,
    write_secs: f64,
    drain_secs: f64,
    rss_max: u64,
    /// Highest source RSS while the backlog was written, and while it drained.
    rss_write: u64,
    rss_drain: u64,
    /// `GET /_xregion/replication` with the whole backlog pending: time, and the operations
    /// it reported pending.
    report_secs: f64,
    reported_pending: Option<u64>,
    /// CPU seconds of both servers while the backlog drained (the sweep's `HEAD`s included).
    drain_cpu: f64,
}

struct Report {
    quick: bool,
    /// The destination was another S3 service (`--external`).
    external: bool,
    /// Both deployments served HTTPS (`--tls`).
    tls: bool,
    /// Cores of the machine.
    cores: f64,
    /// Full speed: one object in this many got a lag poller.
    lag_sample: u64,
    /// Full speed: replicated runs per phase.
    rounds: u64,
    rows: Vec<LagRow>,
    /// `None` when the phase was left out (`--phases`).
    backlog: Option<Backlog>,
    /// The phases run.
    phases: Vec<Phase>,
    /// `None` when the phase was left out.
    jobs: Option<JobsResult>,
}

/// Existing versions replicated on request, two ways.
struct JobsResult {
    objects: u64,
    /// `/_xregion/batch-replication`: request to every replica readable.
    batch_secs: f64,
    /// A batch replication job: `CreateJob` to every replica readable, and to `Complete`
    /// (with its completion report written).
    job_replicated_secs: f64,
    job_complete_secs: f64,
    /// Highest source RSS during the job (source restarted before it).
    rss_max: u64,
}

async fn phases(pair: &mut Pair, args: &ReplArgs) -> anyhow::Result<Report> {
    let (sc, dc, seen) = (pair.sc.clone(), pair.dc.clone(), pair.seen.clone());
    for (client, bucket) in [(&sc, SRC), (&sc, PLAIN), (&dc, DST)] {
        client.create_bucket(bucket).await.with_context(|| format!("creating {bucket}"))?;
        let doc = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";
        client.put_document(&format!("/{bucket}?versioning"), doc).await?;
    }
    let rule = format!(
        "<ReplicationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Role>arn:aws:iam::123456789012:role/bench</Role><Rule><ID>all</ID><Priority>1</Priority>\
         <Status>Enabled</Status><Filter><Prefix></Prefix></Filter>\
         <DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>\
         <Destination><Bucket>arn:aws:s3:::{DST}</Bucket></Destination></Rule></ReplicationConfiguration>"
    );
    sc.put_document(&format!("/{SRC}?replication"), &rule).await.context("configuring replication")?;

    let mut pattern = vec![0u8; MIB as usize];
    rand::rng().fill(&mut pattern[..]);
    let pattern = Bytes::from(pattern);
    // A first replica end to end (connection set-up, bucket lookup) outside any timing.
    let vid = sc.put_version(SRC, "warmup", &pattern, 4 * KIB).await?;
    wait_replica(&seen, "warmup", &vid, Instant::now()).await?;

    let steady = Duration::from_secs_f64(args.steady_secs.unwrap_or(if args.quick { 5.0 } else { 15.0 }).max(0.5));
    let full = Duration::from_secs_f64(args.full_secs.unwrap_or(if args.quick { 3.0 } else { 10.0 }).max(0.5));
    let mut rows = Vec::new();
    let steady_sizes: &[(u64, u32)] =
        if args.phases.contains(&Phase::Steady) { &[(MIB, 20u32), (4 * KIB, 100)] } else { &[] };
    for &(size, rate) in steady_sizes {
        let row = steady_phase(&sc, &seen, &pattern, size, rate, steady).await?;
        eprintln!(
            "  {}: lag p50 {} p99 {}",
            row.name,
            fmt_dur(row.lag.percentile(0.5)),
            fmt_dur(row.lag.percentile(0.99))
        );
        rows.push(row);
    }
    for (size, phase) in [(4 * KIB, Phase::Full4k), (MIB, Phase::Full1m)] {
        if !args.phases.contains(&phase) {
            continue;
        }
        let pids: Vec<u32> = [&pair.src, &pair.dst].into_iter().flatten().map(Server::pid).collect();
        let row = full_speed_phase(
            &sc,
            (&seen, args.lag_sample),
            &pids,
            &pattern,
            size,
            args.concurrency,
            full,
            args.rounds as usize,
        )
        .await?;
        eprintln!(
            "  {}: {:.0} PUT/s ({:.0} without replication), lag p99 {}",
            row.name,
            row.ingest_ops,
            row.baseline_ops.unwrap_or_default(),
            fmt_dur(row.lag.percentile(0.99))
        );
        rows.push(row);
    }
    let n = args.backlog.unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let backlog = if args.phases.contains(&Phase::Backlog) {
        Some(backlog_phase(pair, &pattern, n, args.concurrency).await?)
    } else {
        None
    };
    let jobs = if args.phases.contains(&Phase::Jobs) {
        Some(jobs_phase(pair, &pattern, n, args.concurrency).await?)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Ok(Report {
        jobs,
        quick: args.quick,
        external: args.external,
        tls: args.tls,
        cores,
        lag_sample: args.lag_sample,
        rounds: args.rounds,
        rows,
        backlog,
        phases: args.phases.clone(),
    })
}

/// Polls the destination until the version is readable; returns the time since `acked`.
/// The pause between polls is 1/20 of the time waited so far, between 1 ms and 100 ms (a 5 %
/// resolution that keeps thousands of waiting pollers from flooding the destination).
async fn wait_replica(seen: &Seen, key: &str, version: &str, acked: Instant) -> anyhow::Result<Duration> {
    loop {
        LAG_POLLS.fetch_add(1, Ordering::Relaxed);
        if seen.replicated(key, version).await? {
            return Ok(acked.elapsed());
        }
        let waited = acked.elapsed();
        if waited > LAG_LIMIT {
            bail!("{key} {version} not replicated after {LAG_LIMIT:?}");
        }
        tokio::time::sleep((waited / 20).clamp(Duration::from_millis(1), Duration::from_millis(100))).await;
    }
}

/// PUT at a fixed rate (open loop), every object's lag measured.
async fn steady_phase(
    sc: &Arc<S3Client>,
    seen: &Seen,
    pattern: &Bytes,
    size: u64,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<LagRow> {
    let count = ((duration.as_secs_f64() * f64::from(rate)).round() as usize).max(2);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(count);
    let label = stats::fmt_size(size).replace(' ', "");
    for i in 0..count {
        tick.tick().await;
        let (sc, seen, pattern) = (sc.clone(), seen.clone(), pattern.clone());
        let key = format!("steady/{label}/{i}");
        tasks.push(tokio::spawn(async move {
            let vid = sc.put_version(SRC, &key, &pattern, size).await?;
            let acked = Instant::now();
            let lag = wait_replica(&seen, &key, &vid, acked).await?;
            anyhow::Ok((acked, acked + lag))
        }));
    }
    let mut events = Vec::with_capacity(count);
    for t in tasks {
        events.push(t.await.context("lag task panicked")??);
    }
    let ingest_window = span(events.iter().map(|e| e.0));
    Ok(LagRow {
        name: format!("steady {} @ {rate}/s", stats::fmt_size(size)),
        objects: count,
        ingest_ops: (count - 1) as f64 / ingest_window.as_secs_f64(),
        keeps_up: ingest_window.as_secs_f64() / span(events.iter().map(|e| e.1)).as_secs_f64(),
        lag: lags(&events),
        baseline_ops: None,
        rounds: Vec::new(),
        cpu: None,
        lag_polls: None,
        writers: None,
    })
}

fn lags(events: &[(Instant, Instant)]) -> Measured {
    let lat = events.iter().map(|(a, r)| r.duration_since(*a)).collect();
    Measured::from_workers(0.0, vec![(lat, 0, events.len() as u64)])
}

/// First to last of some instants.
fn span(times: impl Iterator<Item = Instant>) -> Duration {
    let (mut lo, mut hi) = (None::<Instant>, None::<Instant>);
    for t in times {
        lo = Some(lo.map_or(t, |l| l.min(t)));
        hi = Some(hi.map_or(t, |h| h.max(t)));
    }
    match (lo, hi) {
        (Some(l), Some(h)) if h > l => h - l,
        _ => Duration::from_nanos(1),
    }
}

/// `concurrency` workers PUT for `duration` into `bucket`; returns every (key, version, ack
/// time), and the PUT measurement. With `lag` = (destination, n), one object in n and every
/// worker's last object get a poller on the destination.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
async fn ingest(
    sc: &Arc<S3Client>,
    lag: Option<(&Seen, u64)>,
    bucket: &'static str,
    prefix: &str,
    pattern: &Bytes,
    size: u64,
    concurrency: usize,
    duration: Duration,
    max_per_worker: u64,
) -> anyhow::Result<(Measured, Vec<(String, String, Instant)>, Vec<(Instant, Instant)>)> {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (sc, pattern, prefix) = (sc.clone(), pattern.clone(), prefix.to_owned());
            let lag = lag.map(|(seen, n)| (seen.clone(), n));
            tokio::spawn(async move {
                let (mut written, mut lat, mut pollers) = (Vec::new(), Vec::new(), Vec::new());
                let mut i = 0u64;
                while Instant::now() < deadline && i < max_per_worker {
                    let key = format!("{prefix}/{w}/{i}");
                    let t0 = Instant::now();
                    let vid = sc.put_version(bucket, &key, &pattern, size).await?;
                    let acked = Instant::now();
                    lat.push(acked - t0);
                    let last = acked >= deadline || i + 1 == max_per_worker;
                    if let Some((seen, every)) = &lag
                        && (i.is_multiple_of(*every) || last)
                    {
                        let (seen, key, vid) = (seen.clone(), key.clone(), vid.clone());
                        pollers.push(tokio::spawn(async move {
                            let lag = wait_replica(&seen, &key, &vid, acked).await?;
                            anyhow::Ok((acked, acked + lag))
                        }));
                    }
                    written.push((key, vid, acked));
                    i += 1;
                }
                anyhow::Ok((written, lat, pollers))
            })
        })
        .collect();
    let (mut all, mut per_worker, mut handles) = (Vec::new(), Vec::new(), Vec::new());
    for w in workers {
        let (written, lat, pollers) = w.await.context("ingest worker panicked")??;
        per_worker.push((lat, written.len() as u64 * size, written.len() as u64));
        all.extend(written);
        handles.extend(pollers);
    }
    let secs = all.iter().map(|w| w.2).max().map_or(0.0, |t| (t - start).as_secs_f64());
    let m = Measured::from_workers(secs, per_worker);
    let mut events = Vec::with_capacity(handles.len());
    for h in handles {
        events.push(h.await.context("lag poller panicked")??);
    }
    Ok((m, all, events))
}

/// Waits until every written version is readable on the destination (8 sweepers, each in
/// write order); returns when the last one was seen.
async fn sweep(seen: &Seen, written: Arc<Vec<(String, String)>>) -> anyhow::Result<Instant> {
    const SWEEPERS: usize = 8;
    let tasks: Vec<_> = (0..SWEEPERS)
        .map(|s| {
            let (seen, written) = (seen.clone(), written.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut i = s;
                while i < written.len() {
                    let (key, vid) = &written[i];
                    if seen.replicated(key, vid).await? {
                        i += SWEEPERS;
                        continue;
                    }
                    if started.elapsed() > Duration::from_secs(1800) {
                        bail!("{key} {vid} not replicated after 30 minutes");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                anyhow::Ok(Instant::now())
            })
        })
        .collect();
    let mut last = Instant::now();
    for t in tasks {
        last = last.max(t.await.context("sweeper panicked")??);
    }
    Ok(last)
}

/// Full-speed PUTs without and with replication, alternated: `rounds` replicated runs, each
/// between two unreplicated ones (W R W for one round, W R W R W for two), every run
/// `duration` long; after each replicated run the sweep waits until every replica arrived, so
/// the next unreplicated run starts with the destination idle. `lag` = the destination's
/// client and the lag sampling interval (see [`ingest`]).
///
/// The ratio compares each replicated run with the mean of its two neighbours, so a drift of
/// the machine's speed (or the store's growth) over the phase counts neither for nor against
/// replication; more rounds average more of the machine's second-to-second swings (a single
/// round's ratio moved by ±5 points between consecutive runs on this kind of machine).
#[allow(clippy::too_many_arguments)]
async fn full_speed_phase(
    sc: &Arc<S3Client>,
    lag: (&Seen, u64),
    server_pids: &[u32],
    pattern: &Bytes,
    size: u64,
    concurrency: usize,
    duration: Duration,
    rounds: usize,
) -> anyhow::Result<LagRow> {
    let (seen, dc) = (lag.0, &lag.0.dc);
    let label = stats::fmt_size(size).replace(' ', "");
    // At most 4 GiB per run.
    let max = ((4 * 1024 * MIB) / size / concurrency as u64).max(1);
    let prefix = format!("full/{label}");
    let ticks = probe::clock_ticks();
    let rounds = rounds.max(1);
    // Sums over the unreplicated runs [0] and the replicated ones [1].
    let mut cpu = [CpuSpent::default(); 2];
    let mut puts = [0u64; 2];
    let mut writers = [[WriterSample::default(); 2]; 2];
    // PUT/s of each unreplicated run, and of each replicated one with its ops and seconds.
    let mut plain_rates = Vec::with_capacity(rounds + 1);
    let mut repl = Vec::with_capacity(rounds);
    let (mut objects, mut all_events) = (0usize, Vec::new());
    let (mut ingest_secs, mut replication_secs) = (0.0, 0.0);
    let mut lag_polls = 0;
    for round in 0..=rounds {
        let before = WriterSample::both(sc, dc).await?;
        let mark = CpuMark::now(server_pids);
        let (base, _, _) =
            ingest(sc, None, PLAIN, &format!("{prefix}-w{round}"), pattern, size, concurrency, duration, max).await?;
        cpu[0].add(&mark.spent(ticks));
        puts[0] += base.ops;
        plain_rates.push(base.ops_per_sec());
        let after = WriterSample::both(sc, dc).await?;
        let plain = WriterSample::both_since(after, before);
        eprintln!("    without replication, run {}: {}", round + 1, run_line(&base, &plain[0]));
        writers[0] = [writers[0][0].plus(plain[0]), writers[0][1].plus(plain[1])];
        if round == rounds {
            break;
        }
        let mark = CpuMark::now(server_pids);
        let polls_before = LAG_POLLS.load(Ordering::Relaxed);
        let (m, written, events) =
            ingest(sc, Some(lag), SRC, &format!("{prefix}-r{round}"), pattern, size, concurrency, duration, max)
                .await?;
        cpu[1].add(&mark.spent(ticks));
        puts[1] += written.len() as u64;
        let replicated = WriterSample::both_since(WriterSample::both(sc, dc).await?, after);
        writers[1] = [writers[1][0].plus(replicated[0]), writers[1][1].plus(replicated[1])];
        eprintln!(
            "    with replication, run {}: {}; destination writer busy {:.0} %",
            round + 1,
            run_line(&m, &replicated[0]),
            replicated[1].busy_s * 100.0 / m.secs.max(1e-9)
        );
        lag_polls += LAG_POLLS.load(Ordering::Relaxed) - polls_before;
        repl.push((m.ops_per_sec(), m.ops, m.secs));
        // Every version must arrive; the sweep's end bounds the last replica if a sample
        // missed it.
        let ids: Vec<(String, String)> = written.iter().map(|w| (w.0.clone(), w.1.clone())).collect();
        let swept = sweep(seen, Arc::new(ids)).await?;
        let first_ack = written.iter().map(|w| w.2).min().unwrap_or_else(Instant::now);
        let last_ack = written.iter().map(|w| w.2).max().unwrap_or_else(Instant::now);
        let last_replica = events.iter().map(|e| e.1).max().unwrap_or(swept);
        let first_replica = events.iter().map(|e| e.1).min().unwrap_or(swept);
        ingest_secs += (last_ack - first_ack).as_secs_f64();
        replication_secs += last_replica.saturating_duration_since(first_replica).as_secs_f64();
        objects += written.len();
        all_events.extend(events);
    }
    let Rounds { baseline, ingest_ops, per_round } = Rounds::of(&plain_rates, &repl);
    let fmt_rates = |rates: &[f64]| rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "  {}: PUT/s without replication {}; with {}",
        stats::fmt_size(size),
        fmt_rates(&plain_rates),
        fmt_rates(&repl.iter().map(|r| r.0).collect::<Vec<_>>())
    );
    let keeps_up = if replication_secs > 0.0 { ingest_secs / replication_secs } else { 0.0 };
    all_events.sort_by_key(|e| e.1 - e.0);
    Ok(LagRow {
        name: format!("full speed {} c{concurrency}", stats::fmt_size(size)),
        objects,
        ingest_ops,
        lag: lags(&all_events),
        keeps_up,
        baseline_ops: Some(baseline),
        rounds: per_round,
        cpu: Some([(cpu[0], puts[0] as f64), (cpu[1], puts[1] as f64)]),
        lag_polls: Some(lag_polls),
        writers: Some(writers),
    })
}

/// The full-speed figures of alternated runs.
#[derive(Debug, PartialEq)]
struct Rounds {
    /// PUT/s without replication: over the replicated runs, the mean of each one's two
    /// neighbours' rates.
    baseline: f64,
    /// PUT/s with replication: every replicated run's PUTs ÷ their seconds.
    ingest_ops: f64,
    /// Each replicated run's rate ÷ the mean of its neighbours'.
    per_round: Vec<f64>,
}

impl Rounds {
    /// `plain`: PUT/s of the unreplicated runs in order (one more than `repl`); `repl`: each
    /// replicated run's (PUT/s, PUTs, seconds), run `i` having `plain[i]` before it and
    /// `plain[i + 1]` after it.
    fn of(plain: &[f64], repl: &[(f64, u64, f64)]) -> Rounds {
        let neighbours: Vec<f64> = plain.windows(2).map(|w| (w[0] + w[1]) / 2.0).take(repl.len()).collect();
        let baseline = neighbours.iter().sum::<f64>() / neighbours.len().max(1) as f64;
        let ops = repl.iter().map(|r| r.1).sum::<u64>() as f64;
        let ingest_ops = ops / repl.iter().map(|r| r.2).sum::<f64>().max(1e-9);
        let per_round = repl.iter().zip(&neighbours).map(|(r, n)| r.0 / n.max(1e-9)).collect();
        Rounds { baseline, ingest_ops, per_round }
    }
}

/// One full-speed run for the progress output: PUT/s and what the source's metadata writer
/// did (a run much slower than its neighbours shows here whether the writer waited for the
/// disk: journal fsyncs and checkpoints take longer when the disk slows down).
fn run_line(m: &Measured, w: &WriterSample) -> String {
    let secs = m.secs.max(1e-9);
    format!(
        "{:.0} PUT/s; source writer busy {:.0} %, {:.2} groups/PUT, journal {:.0} µs, \
         checkpoints {:.0} ms/s",
        m.ops_per_sec(),
        w.busy_s * 100.0 / secs,
        w.groups / (m.ops as f64).max(1.0),
        w.journal_s * 1e6 / w.journal_syncs.max(1.0),
        w.checkpoint_s * 1e3 / secs
    )
}

/// Destination stopped, `n` objects written, destination started: time to drain.
async fn backlog_phase(pair: &mut Pair, pattern: &Bytes, n: u64, concurrency: usize) -> anyhow::Result<Backlog> {
    let sc = pair.sc.clone();
    // A fresh source process: its memory is the backlog's, not what earlier phases left.
    pair.restart_src()?;
    let pid = pair.src.as_ref().map(Server::pid).context("no source")?;
    let rss = RssSampler::start(pid);
    if let Some(d) = pair.dst.take() {
        d.stop()?;
    }
    let per_worker = n.div_ceil(concurrency as u64);
    let t0 = Instant::now();
    let (_, written, _) =
        ingest(&sc, None, SRC, "backlog", pattern, 4 * KIB, concurrency, Duration::from_secs(86_400), per_worker)
            .await?;
    let write_secs = t0.elapsed().as_secs_f64();
    let rss_write = rss.take_phase_max();
    eprintln!("  backlog: {} objects written in {write_secs:.1} s; starting the destination", written.len());
    // The operator report scans the whole outbox (design invariant 6): what does that cost?
    let t_report = Instant::now();
    let report = sc.get_document("/_xregion/replication").await?;
    let report_secs = t_report.elapsed().as_secs_f64();
    let reported_pending = pending_operations(&String::from_utf8_lossy(&report));
    let mut ids: Vec<(String, String, Instant)> = written;
    ids.sort_by_key(|w| w.2);
    let ids: Vec<(String, String)> = ids.into_iter().map(|w| (w.0, w.1)).collect();
    let objects = ids.len() as u64;
    pair.start_dst()?;
    let t1 = Instant::now();
    let pids: Vec<u32> = [&pair.src, &pair.dst].into_iter().flatten().map(Server::pid).collect();
    let mark = CpuMark::now(&pids);
    let done = sweep(&pair.seen, Arc::new(ids)).await?;
    let drain_cpu = mark.spent(probe::clock_ticks()).procs;
    let drain_secs = (done - t1).as_secs_f64();
    let rss_drain = rss.take_phase_max();
    let rss_max = rss.overall_max();
    drop(rss);
    eprintln!("  backlog: drained in {drain_secs:.1} s, source RSS max {} MiB", rss_max >> 20);
    Ok(Backlog {
        objects,
        write_secs,
        drain_secs,
        rss_max,
        rss_write,
        rss_drain,
        report_secs,
        reported_pending,
        drain_cpu,
    })
}

/// Buckets of the jobs phase: versions written before their replication configuration.
const JOB_SRC: &str = "job-src";
const BATCH_SRC: &str = "batch-src";

/// `n` 4 KiB versions in each of two buckets without replication; then both get the same
/// configuration (to [`DST`]) and their versions are replicated on request: one bucket's
/// through `/_xregion/batch-replication` (the baseline), the other's by a batch replication
/// job (S3 Control `CreateJob`, generated manifest, completion report). Times until every
/// replica is readable on the destination, and until the job is `Complete`.
async fn jobs_phase(pair: &mut Pair, pattern: &Bytes, n: u64, concurrency: usize) -> anyhow::Result<JobsResult> {
    const ACCOUNT: &str = "123456789012";
    pair.restart_src()?;
    if pair.dst.is_none() {
        pair.start_dst()?;
    }
    let sc = pair.sc.clone();
    let versioning = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";
    let per_worker = n.div_ceil(concurrency as u64);
    let mut written = Vec::new();
    for bucket in [BATCH_SRC, JOB_SRC] {
        sc.create_bucket(bucket).await.with_context(|| format!("creating {bucket}"))?;
        sc.put_document(&format!("/{bucket}?versioning"), versioning).await?;
        let far = Duration::from_secs(86_400);
        let (_, w, _) = ingest(&sc, None, bucket, bucket, pattern, 4 * KIB, concurrency, far, per_worker).await?;
        let rule = format!(
            "<ReplicationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Role>arn:aws:iam::{ACCOUNT}:role/bench</Role><Rule><ID>all</ID><Priority>1</Priority>\
             <Status>Enabled</Status><Filter><Prefix></Prefix></Filter>\
             <DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>\
             <Destination><Bucket>arn:aws:s3:::{DST}</Bucket></Destination></Rule></ReplicationConfiguration>"
        );
        sc.put_document(&format!("/{bucket}?replication"), &rule).await.context("configuring replication")?;
        written.push(Arc::new(w.into_iter().map(|(k, v, _)| (k, v)).collect::<Vec<_>>()));
    }
    let objects = written[0].len() as u64;
    eprintln!("  jobs: {objects} versions in each of {BATCH_SRC} and {JOB_SRC}");

    let t0 = Instant::now();
    sc.post_document(&format!("/_xregion/batch-replication/{BATCH_SRC}?statuses=NONE"), "", &[]).await?;
    let batch_secs = (sweep(&pair.seen, written[0].clone()).await? - t0).as_secs_f64();
    eprintln!("  jobs: /_xregion/batch-replication replicated them in {batch_secs:.1} s");

    let pid = pair.src.as_ref().map(Server::pid).context("no source")?;
    let rss = RssSampler::start(pid);
    let create = format!(
        "<CreateJobRequest xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\">\
         <ConfirmationRequired>false</ConfirmationRequired><Operation><S3ReplicateObject/></Operation>\
         <Report><Bucket>arn:aws:s3:::{JOB_SRC}</Bucket><Format>Report_CSV_20180820</Format><Enabled>true</Enabled>\
         <Prefix>reports</Prefix><ReportScope>AllTasks</ReportScope></Report>\
         <ClientRequestToken>bench</ClientRequestToken><Priority>1</Priority>\
         <RoleArn>arn:aws:iam::{ACCOUNT}:role/bench</RoleArn><ManifestGenerator><S3JobManifestGenerator>\
         <SourceBucket>arn:aws:s3:::{JOB_SRC}</SourceBucket><EnableManifestOutput>false</EnableManifestOutput>\
         <Filter><ObjectReplicationStatuses><member>NONE</member></ObjectReplicationStatuses></Filter>\
         </S3JobManifestGenerator></ManifestGenerator></CreateJobRequest>"
    );
    let account = [("x-amz-account-id", ACCOUNT)];
    let t0 = Instant::now();
    let created = sc.post_document("/v20180820/jobs", &create, &account).await?;
    let created = String::from_utf8_lossy(&created).into_owned();
    let id = element(&created, "JobId").with_context(|| format!("CreateJob answered {created}"))?;
    let job_replicated_secs = (sweep(&pair.seen, written[1].clone()).await? - t0).as_secs_f64();
    let job_complete_secs = loop {
        let described = sc.get_document_with(&format!("/v20180820/jobs/{id}"), &account).await?;
        let described = String::from_utf8_lossy(&described).into_owned();
        match element(&described, "Status").as_deref() {
            Some("Complete") => break t0.elapsed().as_secs_f64(),
            Some("Failed" | "Cancelled") => bail!("the job ended {described}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let rss_max = rss.overall_max();
    drop(rss);
    eprintln!("  jobs: the job replicated them in {job_replicated_secs:.1} s, Complete after {job_complete_secs:.1} s");
    Ok(JobsResult { objects, batch_secs, job_replicated_secs, job_complete_secs, rss_max })
}

/// The text of the first `<name>` element of a small XML document.
fn element(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    Some(rest.split_once(&format!("</{name}>"))?.0.to_owned())
}

/// The top-level `"pending_operations": N` of the replication report.
fn pending_operations(json: &str) -> Option<u64> {
    let (_, rest) = json.split_once("\"pending_operations\":")?;
    rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Report {
    fn render(&self, took: Duration) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mode = if self.quick { "quick" } else { "full" };
        let to = if self.external { ", to another S3 service" } else { "" };
        let over = if self.tls { ", over HTTPS" } else { "" };
        let _ =
            writeln!(out, "\n## xregion replication benchmark ({mode} run{to}{over}, {:.0} s)\n", took.as_secs_f64());
        if Phase::ALL.iter().any(|p| !self.phases.contains(p)) {
            let run: Vec<String> = self.phases.iter().map(Phase::to_string).collect();
            let _ = writeln!(
                out,
                "Only the phases {} (`--phases`): the others' targets are not checked.\n",
                run.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "| phase | objects | PUT/s | PUT/s w/o repl. | lag p50 | lag p99 | lag max | repl. ÷ ingest |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.2} |",
                r.name,
                r.objects,
                r.ingest_ops,
                r.baseline_ops.map_or("-".to_owned(), |b| format!("{b:.0}")),
                fmt_dur(r.lag.percentile(0.5)),
                fmt_dur(r.lag.percentile(0.99)),
                fmt_dur(r.lag.percentile(1.0)),
                r.keeps_up
            );
        }
        let _ = writeln!(
            out,
            "\nCPU per PUT at full speed, without → with replication (µs: both servers, the load generator \
             with its lag pollers, the whole machine; and the machine's idle share), and the lag pollers' \
             `HEAD` requests per replicated PUT:\n"
        );
        let _ = writeln!(out, "| phase | servers | load generator | machine | machine idle | lag polls per PUT |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let Some([(b, bn), (w, wn)]) = &r.cpu else { continue };
            let per = |secs: f64, n: f64| secs * 1e6 / n.max(1.0);
            let idle = |c: &CpuSpent| 1.0 - c.host / (c.wall * self.cores).max(1e-9);
            let _ = writeln!(
                out,
                "| {} | {:.0} → {:.0} | {:.0} → {:.0} | {:.0} → {:.0} | {:.0} % → {:.0} % | {:.2} |",
                r.name,
                per(b.procs, *bn),
                per(w.procs, *wn),
                per(b.bench, *bn),
                per(w.bench, *wn),
                per(b.host, *bn),
                per(w.host, *wn),
                idle(b) * 100.0,
                idle(w) * 100.0,
                r.lag_polls.unwrap_or(0) as f64 / wn.max(1.0)
            );
        }
        let _ = writeln!(
            out,
            "\nMetadata writers at full speed, without → with replication (from `/_xregion/metrics`): groups \
             (transactions) per PUT, mean journal write + fsync, checkpoint time per second, and the share of \
             the time the writer thread was busy; for the source, then the destination:\n"
        );
        let _ = writeln!(
            out,
            "| phase | src groups/PUT | src journal µs | src checkpoints ms/s | src busy | dst groups/PUT | dst journal µs | dst checkpoints ms/s | dst busy |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let (Some(w), Some([(b, bn), (c, cn)])) = (&r.writers, &r.cpu) else { continue };
            let cell = |f: &dyn Fn(&WriterSample, f64, f64) -> f64, region: usize, digits: usize| {
                let before = f(&w[0][region], *bn, b.wall);
                let after = f(&w[1][region], *cn, c.wall);
                format!("{before:.digits$} → {after:.digits$}")
            };
            let groups = |s: &WriterSample, puts: f64, _: f64| s.groups / puts.max(1.0);
            let journal = |s: &WriterSample, _: f64, _: f64| s.journal_s * 1e6 / s.journal_syncs.max(1.0);
            let checkpoints = |s: &WriterSample, _: f64, wall: f64| s.checkpoint_s * 1e3 / wall.max(1e-9);
            let busy = |s: &WriterSample, _: f64, wall: f64| s.busy_s * 100.0 / wall.max(1e-9);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} % | {} | {} | {} | {} % |",
                r.name,
                cell(&groups, 0, 2),
                cell(&journal, 0, 0),
                cell(&checkpoints, 0, 0),
                cell(&busy, 0, 0),
                cell(&groups, 1, 2),
                cell(&journal, 1, 0),
                cell(&checkpoints, 1, 0),
                cell(&busy, 1, 0),
            );
        }
        if let Some(b) = &self.backlog {
            let _ = writeln!(
                out,
                "\nbacklog: {} × 4 KiB written in {:.1} s with the destination down; drained in {:.1} s \
                 ({:.0} obj/s, {:.0} µs of server CPU per object); source RSS max {:.0} MiB while writing, \
                 {:.0} MiB while draining (source restarted before the phase)\n",
                b.objects,
                b.write_secs,
                b.drain_secs,
                b.objects as f64 / b.drain_secs.max(1e-9),
                b.drain_cpu * 1e6 / (b.objects as f64).max(1.0),
                b.rss_write as f64 / stats::MIB,
                b.rss_drain as f64 / stats::MIB
            );
            let _ = writeln!(
                out,
                "replication report (`GET /_xregion/replication`) with the backlog pending: {} in {}, \
                 {} operations reported pending\n",
                b.objects,
                fmt_dur(Some(Duration::from_secs_f64(b.report_secs))),
                b.reported_pending.map_or("?".to_owned(), |n| n.to_string())
            );
        } else {
            let _ = writeln!(out);
        }
        if let Some(j) = &self.jobs {
            let _ = writeln!(
                out,
                "jobs: {} existing 4 KiB versions replicated on request: `/_xregion/batch-replication` {:.1} s \
                 ({:.0} obj/s); a batch replication job {:.1} s to the last replica ({:.0} obj/s, {:.2} × the \
                 baseline's time), Complete with its report after {:.1} s; source RSS max {:.0} MiB during the job\n",
                j.objects,
                j.batch_secs,
                j.objects as f64 / j.batch_secs.max(1e-9),
                j.job_replicated_secs,
                j.objects as f64 / j.job_replicated_secs.max(1e-9),
                j.job_replicated_secs / j.batch_secs.max(1e-9),
                j.job_complete_secs,
                j.rss_max as f64 / stats::MIB
            );
        }
        let _ = writeln!(out, "| target | measured | result |");
        let _ = writeln!(out, "|---|---|---|");
        let mut check = |target: String, measured: String, ok: bool| {
            let _ = writeln!(out, "| {target} | {measured} | {} |", if ok { "PASS" } else { "MISS" });
        };
        for r in &self.rows {
            let p99 = r.lag.percentile(0.99).unwrap_or(Duration::MAX);
            let (limit, what) =
                if r.baseline_ops.is_some() { (250, "full-speed lag p99") } else { (30, "steady lag p99") };
            check(format!("{what} < {limit} ms ({})", r.name), fmt_dur(Some(p99)), p99 < Duration::from_millis(limit));
            check(
                format!("keeps up: repl. ÷ ingest ≥ 1.0 ({})", r.name),
                format!("{:.2}", r.keeps_up),
                r.keeps_up >= 0.995,
            );
            if let Some(base) = r.baseline_ops {
                let ratio = r.ingest_ops / base.max(1e-9);
                let each: Vec<String> = r.rounds.iter().map(|x| format!("{:.0} %", x * 100.0)).collect();
                let measured = if each.len() > 1 {
                    format!("{:.0} % (runs: {})", ratio * 100.0, each.join(", "))
                } else {
                    format!("{:.0} %", ratio * 100.0)
                };
                check(format!("PUT/s with replication ≥ 50 % of without ({})", r.name), measured, ratio >= 0.5);
            }
        }
        if let Some(b) = &self.backlog {
            check(
                "backlog drain source RSS < 300 MiB".to_owned(),
                format!("{:.0} MiB", b.rss_max as f64 / stats::MIB),
                b.rss_max < 300 * MIB,
            );
        }
        let _ = writeln!(
            out,
            "\nLag: PUT acknowledged → {} (polled every max(1 ms, \
             5 % of the time waited), at most every 100 ms; full speed samples 1 object in {} and each worker's \
             last). Repl. ÷ ingest: ingest window (first → last PUT acknowledged) ÷ replication window (first → \
             last replica readable); ≥ 1.0 (to two decimals) means replication kept pace. Full speed \
             alternates runs without and with replication ({} with, each between two without, every run as \
             long); PUT/s w/o repl. is the mean over the replicated runs of their two neighbours' rates, and \
             \"runs\" gives each replicated run's own ratio.",
            match self.external {
                true => "`HEAD ?versionId` on the source reads `COMPLETED` (the destination is another S3 service)",
                false => "`HEAD ?versionId` 200 on the destination",
            },
            self.lag_sample,
            self.rounds
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replicated_run_is_compared_with_both_neighbours() {
        // Without replication the machine slows from 10 000 to 6 000 PUT/s over the phase;
        // with replication it does half as many PUTs as its neighbours: every figure is 50 %.
        let r = Rounds::of(&[10_000.0, 8_000.0, 6_000.0], &[(4_500.0, 45_000, 10.0), (3_500.0, 35_000, 10.0)]);
        assert_eq!(r.baseline, 8_000.0);
        assert_eq!(r.ingest_ops, 4_000.0);
        assert_eq!(r.per_round, vec![0.5, 0.5]);
        // One round is the W-R-W method: the mean of the runs before and after.
        let r = Rounds::of(&[9_000.0, 7_000.0], &[(4_000.0, 40_000, 10.0)]);
        assert_eq!((r.baseline, r.ingest_ops, r.per_round), (8_000.0, 4_000.0, vec![0.5]));
        // Runs of different lengths weigh by their PUTs.
        let r = Rounds::of(&[8_000.0, 8_000.0, 8_000.0], &[(4_000.0, 40_000, 10.0), (2_000.0, 10_000, 5.0)]);
        assert_eq!(r.ingest_ops, 50_000.0 / 15.0);
    }
}
