//! `xregion-bench rewrap`: how long the re-wrap pass after `xregion keys rotate` takes
//! (`docs/design/encryption-at-rest.md`, *Key rotation*), against writing the same objects.
//!
//! 1. Starts `xregion serve` with a fresh data directory and a bucket with default encryption
//!    (SSE-S3), and PUTs `--objects` small objects with `--concurrency` workers: the baseline,
//!    in versions per second.
//! 2. Stops it, runs `xregion keys rotate --data DIR`, starts it again, and times until the
//!    older key is marked retired (`keys/sse-master.retired`), which the region writes when
//!    its background pass has re-wrapped every stored data key: versions per second again.
//!
//! The report gives both rates, re-wrap ÷ PUT, and the pass's time per million versions.
//! Nothing is asserted: a pass is one small compare-and-set metadata write per version, and
//! the figure tells operators how long a rotation's old key stays needed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;

use crate::client::S3Client;
use crate::server::{self, Server};

const REGION: &str = "us-east-1";
const BUCKET: &str = "rewrap";
/// Bytes per object: small (stored inline), so the PUTs measure metadata writes, as the pass does.
const OBJECT_BYTES: u64 = 1024;

#[derive(Parser, Debug)]
#[command(
    name = "xregion-bench rewrap",
    about = "The SSE re-wrap pass after a key rotation, against PUTs of the same objects"
)]
pub struct RewrapArgs {
    /// Encrypted objects to write, then to re-wrap.
    #[arg(long, default_value_t = 100_000)]
    objects: u64,
    /// Concurrent PUT workers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    server: server::ServerArgs,
    /// Where to write `<date>.md` (default: `bench/results` in the workspace).
    #[arg(long)]
    out_dir: Option<std::path::PathBuf>,
    /// Do not write a results file.
    #[arg(long)]
    no_write: bool,
}

/// Runs the benchmark and prints (and writes) its report.
pub fn run(args: RewrapArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.objects >= 1 && args.concurrency >= 1, "--objects and --concurrency must be at least 1");
    let bin = args.server.binary()?;
    let parent = args.server.parent_dir()?;
    let work = tempfile::Builder::new().prefix("xregion-bench-rewrap-").tempdir_in(&parent)?;
    let data = work.path().join("data");
    let log = work.path().join("server.log");
    let access_key = "XREGIONBENCHACCESSKEY";
    let secret_key = hex::encode(rand::random::<[u8; 20]>());
    let started = std::time::SystemTime::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    let server = Server::start(&bin, &data, &log, REGION, access_key, &secret_key)?;
    let client = Arc::new(S3Client::new(&server.endpoint, REGION, access_key, &secret_key)?);
    let put = runtime.block_on(write_objects(client, args.objects, args.concurrency))?;
    server.stop()?;

    let rotated = std::process::Command::new(&bin)
        .args(["keys", "rotate", "--data"])
        .arg(&data)
        .env_remove("XREGION_CONFIG")
        .env_remove("XREGION_SSE_MASTER_KEY_FILE")
        .output()
        .context("running xregion keys rotate")?;
    anyhow::ensure!(
        rotated.status.success(),
        "xregion keys rotate failed: {}",
        String::from_utf8_lossy(&rotated.stderr)
    );

    let launched = Instant::now();
    let server = Server::start(&bin, &data, &log, REGION, access_key, &secret_key)?;
    let listening = launched.elapsed();
    let retired = runtime.block_on(wait_for(&data.join("keys/sse-master.retired"), launched, &server))?;
    server.stop()?;
    let pass = retired.saturating_sub(listening);

    let n = args.objects as f64;
    let put_rate = n / put.as_secs_f64();
    let pass_rate = n / pass.as_secs_f64().max(1e-6);
    let text = format!(
        "# xregion-bench rewrap, {}\n\n\
         `{}`; {} objects of {} B in one bucket with default encryption (SSE-S3), {} PUT workers.\n\n\
         | | time | versions/s |\n|---|---|---|\n\
         | PUT (baseline) | {:.2} s | {:.0} |\n\
         | re-wrap pass (listening → key retired) | {:.2} s | {:.0} |\n\n\
         re-wrap ÷ PUT: {:.2}; region start (launch → listening): {:.2} s; \
         a million versions: about {:.1} min of re-wrap.\n",
        crate::report::utc_stamp(started),
        bin.display(),
        args.objects,
        OBJECT_BYTES,
        args.concurrency,
        put.as_secs_f64(),
        put_rate,
        pass.as_secs_f64(),
        pass_rate,
        pass_rate / put_rate,
        listening.as_secs_f64(),
        1e6 / pass_rate / 60.0,
    );
    println!("{text}");
    if !args.no_write {
        let out_dir = args.out_dir.clone().unwrap_or_else(|| server::workspace_root().join("bench").join("results"));
        let path = crate::report::write(&out_dir, &text, started)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// PUTs `count` objects with `concurrency` workers into a new bucket with default encryption;
/// how long the PUTs took.
async fn write_objects(client: Arc<S3Client>, count: u64, concurrency: usize) -> anyhow::Result<Duration> {
    client.create_bucket(BUCKET).await.context("creating the bucket")?;
    let rule = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
                <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>\
                </ServerSideEncryptionConfiguration>";
    client.put_document(&format!("/{BUCKET}?encryption"), rule).await.context("default encryption")?;
    let chunk = Bytes::from(vec![0x5a; OBJECT_BYTES as usize]);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, chunk) = (Arc::clone(&client), Arc::clone(&next), chunk.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, anyhow::Error>(());
                    }
                    client.put(BUCKET, &format!("k{i:09}"), &chunk, OBJECT_BYTES).await?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("PUT worker")??;
    }
    Ok(start.elapsed())
}

/// Waits (up to an hour) for `path` to exist: the time from `launched` until it does, polled
/// every 10 ms.
async fn wait_for(path: &Path, launched: Instant, server: &Server) -> anyhow::Result<Duration> {
    loop {
        if path.try_exists().with_context(|| format!("checking {}", path.display()))? {
            return Ok(launched.elapsed());
        }
        if launched.elapsed() > Duration::from_secs(3600) {
            bail!("{} did not appear within an hour; log:\n{}", path.display(), server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
