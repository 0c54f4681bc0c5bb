//! `xregion`: a self-hosted, S3-compatible object store with S3-style versioning and
//! cross-region replication.
//!
//! * `xregion serve --config region.toml` runs one region.
//! * `xregion dev` runs several regions in one process on loopback, for development.
//! * `xregion status` prints what running regions owe and how their replication is doing.
//! * `xregion keys rotate` adds a region's next SSE master key.

mod app;
mod config;
mod dev;
mod keys;
mod peers;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::PartialConfig;

#[derive(Parser)]
#[command(name = "xregion", version, about = "S3-compatible object store with versioning and cross-region replication")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one region.
    Serve(Box<ServeArgs>),
    /// Run several regions in one process on 127.0.0.1 (development).
    Dev(dev::DevArgs),
    /// Print the replication backlog, failures, lag and jobs of running regions.
    Status(status::StatusArgs),
    /// Manage a region's SSE master keys (encryption at rest).
    Keys(keys::KeysArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "XREGION_CONFIG")]
    config: Option<PathBuf>,
    /// Region name (overrides the file).
    #[arg(long, env = "XREGION_REGION")]
    region: Option<String>,
    /// Listen address, e.g. 127.0.0.1:9000.
    #[arg(long, env = "XREGION_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory.
    #[arg(long = "data", env = "XREGION_DATA")]
    data_dir: Option<PathBuf>,
    /// Root access key.
    #[arg(long, env = "XREGION_ACCESS_KEY")]
    access_key: Option<String>,
    /// Root secret key.
    #[arg(long, env = "XREGION_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Base domain for virtual-hosted-style requests (repeatable).
    #[arg(long = "domain", env = "XREGION_DOMAINS", value_delimiter = ',')]
    domains: Vec<String>,
    /// Another region: REGION=URL (repeatable).
    #[arg(long = "peer", env = "XREGION_PEERS", value_delimiter = ',', value_parser = config::parse_peer)]
    peers: Vec<(String, String)>,
    /// Bearer token admitting GET /_xregion/metrics and /_xregion/replication without SigV4.
    #[arg(long, env = "XREGION_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Free bytes to keep on the data directory's filesystem (default: 5 % of it, 64 MiB to 1 GiB).
    #[arg(long, env = "XREGION_MIN_FREE_BYTES")]
    min_free_bytes: Option<u64>,
    /// Version stamp tag, 0 to 15 (default: the region's position among the sorted names of
    /// itself and its peers); see docs/replication.md.
    #[arg(long, env = "XREGION_STAMP_TAG")]
    stamp_tag: Option<u8>,
    /// Master key file of encryption at rest (SSE-S3), 64 hex digits; it must exist (default:
    /// <data-dir>/keys/sse-master.key, created on first start). Keep a copy of it.
    #[arg(long, env = "XREGION_SSE_MASTER_KEY_FILE")]
    sse_master_key_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key-file.
    #[arg(long, env = "XREGION_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, env = "XREGION_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// More CAs (PEM) to trust, besides the system's, when calling peers and S3 services over https.
    #[arg(long, env = "XREGION_TLS_CA_FILE")]
    tls_ca_file: Option<PathBuf>,
    /// Length of a lifecycle "day" in seconds, to test lifecycle rules without waiting days.
    #[arg(long, env = "XREGION_LIFECYCLE_DAY_SECONDS", hide = true)]
    lifecycle_day_seconds: Option<f64>,
}

/// The log filter without `XREGION_LOG`. `s3s::service` logs every 5xx answer at `ERROR`,
/// also `501 NotImplemented` for a client asking for SSE-KMS or a lifecycle transition (a
/// client's choice, at most `DEBUG` by our rules); xregion logs its own server faults
/// (`xregion-s3api/src/error.rs`, the edge), so that logger is off by default.
const DEFAULT_LOG_FILTER: &str = "info,s3s=warn,s3s::service=off";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XREGION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Keys(args) => keys::run(args),
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => PartialConfig::from_file(p)?,
        None => PartialConfig::default(),
    };
    let flags = PartialConfig {
        region: args.region,
        listen: args.listen,
        data_dir: args.data_dir,
        access_key: args.access_key,
        secret_key: args.secret_key,
        domains: (!args.domains.is_empty()).then_some(args.domains),
        peers: (!args.peers.is_empty()).then(|| args.peers.into_iter().collect()),
        metrics_token: args.metrics_token,
        min_free_bytes: args.min_free_bytes,
        stamp_tag: args.stamp_tag,
        sse_master_key_file: args.sse_master_key_file,
        tls_cert_file: args.tls_cert_file,
        tls_key_file: args.tls_key_file,
        tls_ca_file: args.tls_ca_file,
        targets: None,
        lifecycle_day_ms: args.lifecycle_day_seconds.map(|s| (s * 1000.0).round() as i64),
    };
    let cfg = file.overlay(flags).finish()?;
    let running = app::start_region(&cfg).await?;
    // Tests and scripts read this line to learn the bound port (when listen port is 0).
    println!("xregion: region {} listening on {}", running.name, running.url());
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
