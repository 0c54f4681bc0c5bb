//! `xregion dev`: several regions in one process, region i on port+i, all on 127.0.0.1,
//! talking to each other over HTTP (or HTTPS with `--tls`) exactly as separate processes do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use xregion_crypto::write_durably;

use crate::app;
use crate::config::{RegionConfig, TlsFiles, default_domains};

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
    /// Serve HTTPS, with a certificate for localhost and 127.0.0.1 signed by a CA made for this
    /// deployment (DIR/tls/ca.pem, generated once; point AWS_CA_BUNDLE at it).
    #[arg(long, env = "XREGION_DEV_TLS")]
    tls: bool,
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
    let tls = if args.tls { Some(dev_certificates(&args.data)?) } else { None };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoints = BTreeMap::new();
    let mut addrs = Vec::new();
    for (i, name) in args.regions.iter().enumerate() {
        let port = args.port.checked_add(u16::try_from(i)?).context("port out of range")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        endpoints.insert(name.clone(), format!("{scheme}://{addr}"));
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
            tls: tls.as_ref().map(|t| t.server.clone()),
            tls_ca_file: tls.as_ref().map(|t| t.ca_file.clone()),
        };
        running.push(app::start_region(&cfg).await?);
    }
    print_banner(&args.data, &addrs, &access_key, &secret_key, tls.as_ref().map(|t| t.ca_file.as_path()));
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
    write_durably(&path, format!("{access}\n{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((access, secret))
}

/// The TLS files of a dev deployment.
struct DevTls {
    /// The deployment's CA certificate: what clients trust.
    ca_file: PathBuf,
    /// The certificate every region serves.
    server: TlsFiles,
}

/// DIR/tls/{ca.pem, server.pem, server-key.pem}: made once (the CA's key is not kept: a
/// deployment needs one certificate, and clients keep trusting the same CA across restarts).
fn dev_certificates(data: &Path) -> anyhow::Result<DevTls> {
    let dir = data.join("tls");
    // Absolute, for the AWS_CA_BUNDLE line of the banner.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let tls = DevTls {
        ca_file: dir.join("ca.pem"),
        server: TlsFiles { cert_file: dir.join("server.pem"), key_file: dir.join("server-key.pem") },
    };
    let mut complete = true;
    for path in [&tls.ca_file, &tls.server.cert_file, &tls.server.key_file] {
        complete &= path.try_exists().with_context(|| format!("reading {}", path.display()))?;
    }
    if complete {
        return Ok(tls);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = xregion_crypto::tls::generate::Ca::new("xregion dev CA")?;
    let leaf = ca.leaf(&["localhost", "*.localhost", "127.0.0.1", "::1"])?;
    // The key first and the CA last: a deployment is complete only once ca.pem exists.
    write_durably(&tls.server.key_file, leaf.key.as_bytes())
        .with_context(|| format!("writing {}", tls.server.key_file.display()))?;
    write_durably(&tls.server.cert_file, leaf.cert.as_bytes())
        .with_context(|| format!("writing {}", tls.server.cert_file.display()))?;
    write_durably(&tls.ca_file, ca.pem().cert.as_bytes())
        .with_context(|| format!("writing {}", tls.ca_file.display()))?;
    Ok(tls)
}

fn print_banner(data: &Path, addrs: &[(String, SocketAddr)], ak: &str, sk: &str, ca_file: Option<&Path>) {
    let scheme = if ca_file.is_some() { "https" } else { "http" };
    let mut out = String::new();
    out.push_str("xregion dev is running\n\n");
    for (name, addr) in addrs {
        out.push_str(&format!("  region {name:<12} {scheme}://{addr}   data: {}\n", data.join(name).display()));
    }
    let (first, first_addr) = &addrs[0];
    out.push_str(&format!(
        "\nCredentials (root of this deployment):\n  export AWS_ACCESS_KEY_ID={ak}\n  export AWS_SECRET_ACCESS_KEY={sk}\n  export AWS_DEFAULT_REGION={first}\n"
    ));
    if let Some(ca) = ca_file {
        out.push_str(&format!("  export AWS_CA_BUNDLE={}   # the CA of this deployment's certificate\n", ca.display()));
    }
    let ep = format!("{scheme}://{first_addr}");
    out.push_str(&format!(
        "\nTry it (AWS CLI):\n  aws --endpoint-url {ep} s3 mb s3://my-bucket\n  aws --endpoint-url {ep} s3api put-bucket-versioning --bucket my-bucket --versioning-configuration Status=Enabled\n  echo hello > hello.txt && aws --endpoint-url {ep} s3 cp hello.txt s3://my-bucket/hello.txt\n  aws --endpoint-url {ep} s3api list-object-versions --bucket my-bucket\n"
    ));
    if let Some((second, second_addr)) = addrs.get(1) {
        out.push_str(&format!(
            "  aws --endpoint-url {scheme}://{second_addr} --region {second} s3api get-bucket-location --bucket my-bucket\n"
        ));
    }
    let binary = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "xregion".into());
    let endpoints: Vec<String> = addrs.iter().map(|(_, a)| format!("--endpoint {scheme}://{a}")).collect();
    let cacert = if ca_file.is_some() { "--cacert \"$AWS_CA_BUNDLE\" " } else { "" };
    out.push_str(&format!(
        "\nReplication backlog, failures and lag of every region:\n  {binary} status {}\nThe same as JSON (/_xregion/metrics for Prometheus):\n  curl -sS {cacert}-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 'aws:amz:{first}:s3' --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" {ep}/_xregion/replication\n",
        endpoints.join(" ")
    ));
    out.push_str(&format!(
        "\nBatch replication jobs (S3 Control; any 12-digit account id; the name <account>.localhost must resolve to 127.0.0.1, see README):\n  aws --endpoint-url {scheme}://localhost:{} s3control list-jobs --account-id 123456789012\n",
        first_addr.port()
    ));
    out.push_str("\nPress Ctrl-C to stop.\n");
    println!("{out}");
}
