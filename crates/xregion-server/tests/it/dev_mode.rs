//! `xregion dev` end to end: three regions in ONE process (region i on port+i), talking to each
//! other over HTTP exactly as separate processes do. The banner, the deployment-wide bucket
//! namespace, replication from one region to the two others (PRI-1, STS-7), and a clean stop
//! on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ReplicationRule;

use crate::common::*;
use crate::replication::{put_rules, status, wait_completed, whole_bucket_rule};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];

/// A running `xregion dev`, killed when dropped.
struct Dev {
    child: Child,
    base: u16,
    banner: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port p with p+1 and p+2 free a moment ago.
fn three_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX - 3 && (1..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// Starts `xregion dev` and waits for its banner (printed once every region listens).
fn start_dev(data: &std::path::Path) -> Dev {
    start_dev_with(data, &[])
}

/// [`start_dev`] with more flags.
fn start_dev_with(data: &std::path::Path, flags: &[&str]) -> Dev {
    for _ in 0..5 {
        let base = three_free_ports();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xregion"));
        cmd.arg("dev")
            .arg("--data")
            .arg(data)
            .args(["--regions", &REGIONS.join(","), "--port", &base.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(flags);
        for (var, _) in std::env::vars() {
            if var.starts_with("XREGION_") && var != "XREGION_LOG" {
                cmd.env_remove(var);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn xregion dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("Press Ctrl-C to stop.")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(banner.clone());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(banner) => return Dev { child, base, banner },
            Err(_) => {
                // A port was taken meanwhile (the process exits): try other ports.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("xregion dev did not start");
}

fn rule(id: &str, priority: i32, dst: &str) -> ReplicationRule {
    whole_bucket_rule(id, priority, dst, true).build().expect("rule")
}

#[tokio::test]
async fn dev_three_regions_in_one_process_replicate_and_stop_cleanly() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut dev = start_dev(data.path());
    let endpoints: Vec<String> = (0..3).map(|i| format!("http://127.0.0.1:{}", dev.base + i)).collect();
    for (region, endpoint) in REGIONS.iter().zip(&endpoints) {
        assert!(
            dev.banner.contains(&format!("region {region}")) && dev.banner.contains(endpoint.as_str()),
            "{}",
            dev.banner
        );
    }
    assert!(dev.banner.contains(&format!("export AWS_ACCESS_KEY_ID={ACCESS_KEY}")), "{}", dev.banner);
    // The printed curl line reads the replication report as printed (with the exports above).
    let curl = dev.banner.lines().find(|l| l.trim_start().starts_with("curl ")).expect("a curl line in the banner");
    let out = Command::new("bash")
        .args(["-c", curl.trim()])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("run curl");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.contains("\"pending_operations\": 0"), "{curl}: {report}");
    // So does the printed `xregion status` line, for every region.
    let status_line =
        dev.banner.lines().find(|l| l.contains(" status --endpoint")).expect("an xregion status line in the banner");
    let out = Command::new("bash")
        .args(["-c", status_line.trim()])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", REGIONS[0])
        .output()
        .expect("run xregion status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status_line}: {text}{}", String::from_utf8_lossy(&out.stderr));
    for (region, endpoint) in REGIONS.iter().zip(&endpoints) {
        assert!(text.contains(&format!("{region} ({endpoint})\n  backlog: 0 operations")), "{status_line}: {text}");
    }
    // With --all, one endpoint is enough: the others are its peers.
    let first_only =
        format!("{} --endpoint {} --all", status_line.trim().split(" --endpoint").next().unwrap_or(""), endpoints[0]);
    let out = Command::new("bash")
        .args(["-c", &first_only])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("run xregion status --all");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{first_only}: {text}{}", String::from_utf8_lossy(&out.stderr));
    for (region, endpoint) in REGIONS.iter().zip(&endpoints) {
        assert_eq!(text.matches(&format!("{region} ({endpoint})\n")).count(), 1, "{first_only}: {text}");
    }
    let clients: Vec<_> =
        REGIONS.iter().zip(&endpoints).map(|(r, e)| sdk_client(e, r, ACCESS_KEY, SECRET_KEY)).collect();

    let buckets = [
        create_versioned_bucket(&clients[0], "dev-src").await,
        create_versioned_bucket(&clients[1], "dev-eu").await,
        create_versioned_bucket(&clients[2], "dev-ap").await,
    ];
    // One namespace: every region lists all three buckets, each with its region.
    let listed = clients[2].list_buckets().send().await.expect("list buckets");
    for (bucket, region) in buckets.iter().zip(REGIONS) {
        assert!(
            listed.buckets().iter().any(|b| b.name() == Some(bucket.as_str()) && b.bucket_region() == Some(region)),
            "{listed:?}"
        );
    }
    put_rules(&clients[0], &buckets[0], vec![rule("to-eu", 1, &buckets[1]), rule("to-ap", 2, &buckets[2])]).await;
    let vid = put(&clients[0], &buckets[0], "photo.jpg", b"one process, three regions").await;
    let vid = vid.version_id().expect("version id").to_owned();
    // STS-7: COMPLETED once both destinations have it; each replica keeps the id (STS-11).
    wait_completed(&clients[0], &buckets[0], "photo.jpg", &vid).await;
    for (client, bucket) in clients[1..].iter().zip(&buckets[1..]) {
        assert_eq!(get_body(client, bucket, "photo.jpg", Some(&vid)).await, b"one process, three regions");
        assert_eq!(status(client, bucket, "photo.jpg", &vid).await.as_deref(), Some("REPLICA"));
    }

    // SIGTERM: every region shuts down gracefully and the process exits 0.
    let pid = dev.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = dev.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "xregion dev did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "exit status {code}");
}

/// `xregion dev --tls`: HTTPS endpoints, a CA made once under DIR/tls and named by the
/// banner's `AWS_CA_BUNDLE` line, with which the banner's own commands work; the regions
/// trust each other through it (replication over HTTPS), and a restart keeps it.
#[tokio::test]
async fn dev_with_tls_serves_https_and_replicates_over_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let dev = start_dev_with(data.path(), &["--tls"]);
    let ca = std::path::absolute(data.path().join("tls/ca.pem")).expect("absolute");
    assert!(dev.banner.contains(&format!("export AWS_CA_BUNDLE={}", ca.display())), "{}", dev.banner);
    let endpoints: Vec<String> = (0..3).map(|i| format!("https://127.0.0.1:{}", dev.base + i)).collect();
    for endpoint in &endpoints {
        assert!(dev.banner.contains(endpoint.as_str()), "{}", dev.banner);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.path().join("tls/server-key.pem")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is its owner's only");
    }
    // The banner's curl and status lines, run as printed with its exports.
    for line in [
        dev.banner.lines().find(|l| l.trim_start().starts_with("curl ")).expect("curl line"),
        dev.banner.lines().find(|l| l.contains(" status --endpoint")).expect("status line"),
    ] {
        let out = Command::new("bash")
            .args(["-c", line.trim()])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", REGIONS[0])
            .env("AWS_CA_BUNDLE", &ca)
            .output()
            .expect("run a banner line");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{line}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("pending_operations") || text.contains("backlog: 0 operations"), "{line}: {text}");
    }
    let ca_pem = std::fs::read_to_string(&ca).expect("read CA");
    let clients: Vec<_> = REGIONS.iter().zip(&endpoints).map(|(r, e)| sdk_client_trusting(e, r, &ca_pem)).collect();
    let src = create_versioned_bucket(&clients[0], "dev-tls-src").await;
    let dst = create_versioned_bucket(&clients[1], "dev-tls-dst").await;
    put_rules(&clients[0], &src, vec![rule("to-eu", 1, &dst)]).await;
    let vid = put(&clients[0], &src, "k", b"dev over TLS").await.version_id().expect("version id").to_owned();
    wait_completed(&clients[0], &src, "k", &vid).await;
    assert_eq!(get_body(&clients[1], &dst, "k", Some(&vid)).await, b"dev over TLS");

    drop(dev);
    let again = start_dev_with(data.path(), &["--tls"]);
    assert_eq!(std::fs::read_to_string(&ca).expect("read CA"), ca_pem, "a restart keeps the deployment's CA");
    let client = sdk_client_trusting(&format!("https://127.0.0.1:{}", again.base), REGIONS[0], &ca_pem);
    assert_eq!(get_body(&client, &src, "k", Some(&vid)).await, b"dev over TLS");
}
