//! `xregion dev`: several regions in one process, region i on port+i, all on 127.0.0.1,
//! talking to each other over HTTP exactly as separate processes do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::app;
use crate::config::{RegionConfig, default_domains};

/// Flags of `xregion dev`.
#[derive(clap::Args)]
pub struct DevArgs {
    /// Data directory; region R keeps its data in DIR/R.
    #[arg(long = "data", env = "XREGION_DATA", default_value = "./xregion-data")]
    data: PathBuf,
    /// Regions to run, comma-separated.
    #[arg(long, env = "XREGION_REGIONS", value_delimiter = ',', default_value = "us-east-1,eu-west-1")]
    regions: Vec<String>,
    /// Port of the first region; region i listens on port+i.
    #[arg(long, env = "XREGION_PORT", default_value_t = 9000)]
    port: u16,
    /// Root access key (default: generated once and kept in DIR/dev-credentials).
    #[arg(long, env = "XREGION_ACCESS_KEY")]
    access_key: Option<String>,
    /// Root secret key (default: generated once and kept in DIR/dev-credentials).
    #[arg(long, env = "XREGION_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

/// Runs the dev deployment until SIGINT/SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.regions.is_empty() {
        anyhow::bail!("--regions must name at least one region");
    }
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    let (access_key, secret_key) = match (args.access_key, args.secret_key) {
        (Some(a), Some(s)) => (a, s),
        _ => dev_credentials(&args.data)?,
    };
    let mut endpoints = BTreeMap::new();
    let mut addrs = Vec::new();
    for (i, name) in args.regions.iter().enumerate() {
        let port = args.port.checked_add(u16::try_from(i)?).context("port out of range")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        endpoints.insert(name.clone(), format!("http://{addr}"));
        addrs.push((name.clone(), addr));
    }
    let mut running = Vec::new();
    for (name, addr) in &addrs {
        let cfg = RegionConfig {
            region: name.clone(),
            listen: *addr,
            data_dir: args.data.join(name),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
            domains: default_domains(),
            peers: endpoints.iter().filter(|(r, _)| *r != name).map(|(r, e)| (r.clone(), e.clone())).collect(),
            metrics_token: None,
            min_free_bytes: None,
            stamp_tag: None,
            targets: Vec::new(),
            lifecycle_day_ms: None,
            sse_master_key_file: None,
        };
        running.push(app::start_region(&cfg).await?);
    }
    print_banner(&args.data, &addrs, &access_key, &secret_key);
    crate::wait_for_signal().await;
    eprintln!("xregion dev: shutting down");
    for r in running {
        r.shutdown().await;
    }
    Ok(())
}

/// Reads DIR/dev-credentials, or creates it with fresh random keys.
fn dev_credentials(dir: &Path) -> anyhow::Result<(String, String)> {
    let path = dir.join("dev-credentials");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut lines = text.lines();
        if let (Some(a), Some(s)) = (lines.next(), lines.next()) {
            return Ok((a.trim().to_owned(), s.trim().to_owned()));
        }
    }
    let access = format!("XR{}", hex::encode_upper(rand::random::<[u8; 9]>()));
    let secret = hex::encode(rand::random::<[u8; 20]>());
    write_atomically(dir, &path, format!("{access}\n{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((access, secret))
}

/// Writes `path` (in `dir`) whole or not at all, durably: a temporary file, fsynced, renamed
/// over it, then the directory fsynced. A crash cannot leave half a secret to be read back.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn print_banner(data: &Path, addrs: &[(String, SocketAddr)], ak: &str, sk: &str) {
    let mut out = String::new();
    out.push_str("xregion dev is running\n\n");
    for (name, addr) in addrs {
        out.push_str(&format!("  region {name:<12} http://{addr}   data: {}\n", data.join(name).display()));
    }
    let (first, first_addr) = &addrs[0];
    out.push_str(&format!(
        "\nCredentials (root of this deployment):\n  export AWS_ACCESS_KEY_ID={ak}\n  export AWS_SECRET_ACCESS_KEY={sk}\n  export AWS_DEFAULT_REGION={first}\n\nTry it (AWS CLI):\n  aws --endpoint-url http://{first_addr} s3 mb s3://my-bucket\n  aws --endpoint-url http://{first_addr} s3api put-bucket-versioning --bucket my-bucket --versioning-configuration Status=Enabled\n  echo hello > hello.txt && aws --endpoint-url http://{first_addr} s3 cp hello.txt s3://my-bucket/hello.txt\n  aws --endpoint-url http://{first_addr} s3api list-object-versions --bucket my-bucket\n"
    ));
    if let Some((second, second_addr)) = addrs.get(1) {
        out.push_str(&format!(
            "  aws --endpoint-url http://{second_addr} --region {second} s3api get-bucket-location --bucket my-bucket\n"
        ));
    }
    let binary = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "xregion".into());
    let endpoints: Vec<String> = addrs.iter().map(|(_, a)| format!("--endpoint http://{a}")).collect();
    out.push_str(&format!(
        "\nReplication backlog, failures and lag of every region:\n  {binary} status {}\nThe same as JSON (/_xregion/metrics for Prometheus):\n  curl -sS -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 'aws:amz:{first}:s3' --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" http://{first_addr}/_xregion/replication\n",
        endpoints.join(" ")
    ));
    out.push_str(&format!(
        "\nBatch replication jobs (S3 Control; any 12-digit account id; the name <account>.localhost must resolve to 127.0.0.1, see README):\n  aws --endpoint-url http://localhost:{} s3control list-jobs --account-id 123456789012\n",
        first_addr.port()
    ));
    out.push_str("\nPress Ctrl-C to stop.\n");
    println!("{out}");
}
