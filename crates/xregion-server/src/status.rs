//! `xregion status`: what running regions owe and how their replication is doing, read from
//! each region's operator report (`GET /_xregion/replication`, `docs/replication.md`,
//! *Observing it*) and printed for a terminal, or as the report's JSON.
//!
//! The request is SigV4-signed like any S3 request, with the credentials the AWS CLI reads
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), so after `xregion dev`'s exports a bare
//! `xregion status` shows the first region.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use xregion_identity::Credential;
use xregion_identity::sigv4::sign_request;
use xregion_replication::Connector;

/// How long a region may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The report's path.
const REPORT_PATH: &str = "/_xregion/replication";
/// The failure listing's path.
const FAILURES_PATH: &str = "/_xregion/replication/failures";

/// `xregion status` arguments.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Endpoint of a region (repeatable: one report each).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:9000")]
    endpoints: Vec<String>,
    /// Region to sign for (the report names the region that answered).
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    region: String,
    /// Access key of a principal allowed the report (the deployment's root).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// Its secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Print each report as JSON, as the region sent it.
    #[arg(long)]
    json: bool,
    /// Also list the versions whose replication failed for good (the first 1000 per region),
    /// with the reason.
    #[arg(long)]
    failures: bool,
    /// Also report every region the given ones list as peers (at the endpoints they are
    /// configured with, which must be reachable from here).
    #[arg(long)]
    all: bool,
    /// More CAs (PEM) to trust for `https://` endpoints, besides the system's (as the AWS CLI's
    /// `--ca-bundle`).
    #[arg(long = "ca-bundle", env = "AWS_CA_BUNDLE")]
    ca_bundle: Option<String>,
}

/// Runs `xregion status`: prints the report of every endpoint; exits with status 1 if one could
/// not be read.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let credential = Credential { access_key: args.access_key.clone(), secret_key: args.secret_key.clone() };
    // An empty AWS_CA_BUNDLE means none, as for the AWS CLI.
    let ca_bundle = args.ca_bundle.as_deref().filter(|p| !p.is_empty()).map(std::path::Path::new);
    let tls = xregion_crypto::tls::ClientTls::new(ca_bundle).context("loading --ca-bundle")?;
    let client = Client::builder(TokioExecutor::new()).build(xregion_replication::connector(&tls, None));
    let mut failed = 0;
    let mut endpoints = args.endpoints.clone();
    let mut next = 0;
    while let Some(endpoint) = endpoints.get(next).cloned() {
        next += 1;
        let endpoint = &endpoint;
        match fetch(&client, endpoint, REPORT_PATH, &args.region, &credential).await {
            Ok(report) => {
                if args.all {
                    let peers = report["peers"].as_object().map(|p| p.values().filter_map(Value::as_str));
                    for peer in peers.into_iter().flatten() {
                        if !endpoints.iter().any(|known| same_endpoint(known, peer)) {
                            endpoints.push(peer.to_owned());
                        }
                    }
                }
                if args.json {
                    emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
                } else {
                    emit(&render(endpoint, &report));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{endpoint}: {e:#}");
                continue;
            }
        }
        if args.failures {
            match fetch(&client, endpoint, FAILURES_PATH, &args.region, &credential).await {
                Ok(list) if args.json => emit(&format!("{}\n", serde_json::to_string_pretty(&list)?)),
                Ok(list) => emit(&render_failures(&list)),
                Err(e) => {
                    failed += 1;
                    eprintln!("{endpoint}: failures: {e:#}");
                }
            }
        }
    }
    if failed > 0 {
        // Each error is printed above; exit 1 without a second message (or a backtrace).
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(1);
    }
    Ok(())
}

/// Writes `text` to stdout. A reader that went away (`xregion status | head`) ends the command
/// quietly, as it ends other Unix tools, instead of the panic `print!` would raise.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("writing the report: {e}");
        std::process::exit(1);
    }
}

/// Whether two endpoints are the same (a trailing slash aside).
fn same_endpoint(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Reads the JSON document at `path` of the region at `endpoint`.
async fn fetch(
    client: &Client<Connector, Full<Bytes>>,
    endpoint: &str,
    path: &str,
    region: &str,
    credential: &Credential,
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", endpoint.trim_end_matches('/'));
    let mut req = http::Request::builder()
        .method("GET")
        .uri(&url)
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("bad endpoint {endpoint}"))?;
    let host = req.uri().authority().map(|a| a.to_string()).context("the endpoint has no host")?;
    req.headers_mut().insert(http::header::HOST, http::HeaderValue::from_str(&host)?);
    sign_request(&mut req, credential, region).map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| anyhow::anyhow!("no answer in {} s", TIMEOUT.as_secs()))?
        .map_err(|e| anyhow::anyhow!("unreachable: {}", xregion_replication::DisplayErr(&e)))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.context("reading the answer")?.to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let code = between(&text, "<Code>", "</Code>").unwrap_or_default();
        let message = between(&text, "<Message>", "</Message>").unwrap_or_default();
        anyhow::bail!("answered {status} {code}: {message}");
    }
    serde_json::from_slice(&body).context("the answer is not a replication report")
}

/// The text between the first `start` and the next `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    Some(&text[from..from + text[from..].find(end)?])
}

/// The report for a terminal: the region's backlog, each queue, each destination the worker
/// sent to since start, unfinished jobs, and the disk.
fn render(endpoint: &str, r: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({endpoint})", text(&r["region"]));
    let queues = r["queues"].as_array().map(Vec::as_slice).unwrap_or_default();
    let pending_bytes: u64 = queues.iter().map(|q| num(&q["pending_bytes"])).sum();
    let failed: u64 = queues.iter().map(|q| num(&q["failed_operations"])).sum();
    let over: u64 = queues.iter().map(|q| num(&q["operations_over_threshold"])).sum();
    let oldest = queues.iter().filter_map(|q| q["oldest_pending_age_seconds"].as_f64()).fold(None, max_of);
    let _ = writeln!(
        out,
        "  backlog: {} operations, {}; oldest waiting {}; {} waiting over 15 min; {} failed",
        num(&r["pending_operations"]),
        bytes(pending_bytes),
        oldest.map_or_else(|| "-".to_owned(), seconds),
        over,
        failed
    );
    for q in queues {
        let mut line = format!(
            "  {} -> {} (rule {}): {} pending, {}",
            text(&q["source_bucket"]),
            text(&q["destination_bucket"]),
            text(&q["rule_id"]),
            num(&q["pending_operations"]),
            bytes(num(&q["pending_bytes"]))
        );
        if num(&q["batch_operations"]) > 0 {
            let _ = write!(line, " ({} queued by batch replication)", num(&q["batch_operations"]));
        }
        if let Some(age) = q["oldest_pending_age_seconds"].as_f64() {
            let _ = write!(line, ", oldest {}", seconds(age));
        }
        if num(&q["failed_operations"]) > 0 {
            let _ =
                write!(line, ", {} failed (last: {})", num(&q["failed_operations"]), text(&q["last_failure_reason"]));
        }
        let _ = writeln!(out, "{line}");
    }
    for d in r["destinations"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let state = if d["paused"] == true {
            format!("unreachable ({})", text(&d["last_error"]))
        } else {
            "reachable".to_owned()
        };
        let lag = &d["lag"];
        let bucket = text(&d["bucket"]);
        let place = match r["targets"][bucket.as_str()].as_str() {
            Some(endpoint) => format!("{bucket} (S3 service at {endpoint})"),
            None => bucket,
        };
        let _ = writeln!(
            out,
            "  to {place}: {state}; since start {} replicated, {} failed, {} retries; lag mean {}, max {}, p99 {}",
            num(&d["completed"]),
            num(&d["failed"]),
            num(&d["retries"]),
            lag["mean_ms"].as_f64().map_or_else(|| "-".to_owned(), millis),
            lag["max_ms"].as_f64().map_or_else(|| "-".to_owned(), millis),
            p99(lag).unwrap_or_else(|| "-".to_owned())
        );
    }
    let life = &r["lifecycle"];
    let totals = &life["totals"];
    let acted = ["expired", "noncurrent_removed", "markers_removed", "uploads_aborted"]
        .iter()
        .map(|k| num(&totals[*k]))
        .sum::<u64>();
    let waiting = num(&life["last_pass"]["waiting_for_replication"]);
    if acted + waiting > 0 || life["last_error"].is_string() {
        let mut line = format!(
            "  lifecycle since start: {} expired, {} noncurrent removed, {} delete markers removed, {} uploads aborted",
            num(&totals["expired"]),
            num(&totals["noncurrent_removed"]),
            num(&totals["markers_removed"]),
            num(&totals["uploads_aborted"])
        );
        if waiting > 0 {
            let _ = write!(line, "; {waiting} waiting for replication");
        }
        if life["last_error"].is_string() {
            let _ = write!(line, "; last pass failed: {}", text(&life["last_error"]));
        }
        let _ = writeln!(out, "{line}");
    }
    for job in r["jobs"]["unfinished"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let _ = writeln!(
            out,
            "  job {} on {}: {}, {} of {} tasks done ({} failed)",
            text(&job["id"]),
            text(&job["bucket"]),
            text(&job["status"]),
            num(&job["succeeded_tasks"]) + num(&job["failed_tasks"]),
            num(&job["total_tasks"]),
            num(&job["failed_tasks"])
        );
    }
    let disk = &r["disk"];
    if disk.is_object() {
        let _ = writeln!(
            out,
            "  disk: {} free of {} (object writes stop at {} free)",
            bytes(num(&disk["available_bytes"])),
            bytes(num(&disk["total_bytes"])),
            bytes(num(&disk["reserve_bytes"]))
        );
    }
    if let Some(not_after) = r["tls"]["certificate_not_after_ms"].as_i64() {
        let names: Vec<&str> =
            r["tls"]["certificate_names"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let when = u64::try_from(not_after)
            .map(|ms| httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_millis(ms)))
            .unwrap_or_default();
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        let left = not_after.saturating_sub(r["generated_ms"].as_i64().unwrap_or_default());
        let days = match left {
            ..0 => format!("expired {} days ago", (-left) / DAY_MS),
            _ => format!("{} days left", left / DAY_MS),
        };
        let _ = writeln!(out, "  tls: certificate for {} expires {when} ({days})", names.join(", "));
    }
    if let Some(shared) = r["stamp_tag"]["shared_with"].as_array().filter(|s| !s.is_empty()) {
        let names: Vec<&str> = shared.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "  warning: version stamp tag shared with {} (see stamp_tag)", names.join(", "));
    }
    out
}

/// The failure listing for a terminal: one line per failed version, oldest first.
fn render_failures(list: &Value) -> String {
    let mut out = String::new();
    for f in list["failures"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let _ = writeln!(
            out,
            "  FAILED {}/{} {} ({}) -> {} (rule {}): {}",
            text(&f["bucket"]),
            text(&f["key"]),
            text(&f["version_id"]),
            text(&f["operation"]),
            text(&f["destination_bucket"]),
            text(&f["rule_id"]),
            text(&f["reason"])
        );
    }
    if !list["next_after"].is_null() {
        let _ = writeln!(out, "  (more failures: GET {FAILURES_PATH}?after={})", list["next_after"]);
    }
    out
}

/// The bound under which 99 % of the lag histogram's counts fall (`≤ 50 ms`), if any count.
fn p99(lag: &Value) -> Option<String> {
    let buckets = lag["histogram"].as_array()?;
    let total: u64 = buckets.iter().map(|b| num(&b["count"])).sum();
    if total == 0 {
        return None;
    }
    let mut seen = 0;
    for b in buckets {
        seen += num(&b["count"]);
        if seen * 100 >= total * 99 {
            return Some(match b["le_ms"].as_f64() {
                Some(ms) => format!("<= {}", millis(ms)),
                None => "> 15 min".to_owned(),
            });
        }
    }
    None
}

fn max_of(acc: Option<f64>, x: f64) -> Option<f64> {
    Some(acc.map_or(x, |a| a.max(x)))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `512 B`, `4.0 KiB`, `1.5 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `7.7 ms`, `1.2 s`, `3 min 20 s`.
fn millis(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.1} ms") } else { seconds(ms / 1000.0) }
}

fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{} h {} min", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(millis(7.72), "7.7 ms");
        assert_eq!(millis(1500.0), "1.5 s");
        assert_eq!(seconds(200.0), "3 min 20 s");
        assert_eq!(seconds(7300.0), "2 h 1 min");
        assert_eq!(between("<Error><Code>AccessDenied</Code>", "<Code>", "</Code>"), Some("AccessDenied"));
    }

    #[test]
    fn renders_failures() {
        let list = serde_json::json!({
            "failures": [{"seq": 4, "bucket": "prod", "key": "a b", "version_id": "v1", "operation": "object",
                          "destination_bucket": "backup", "rule_id": "all", "reason": "DstBucketUnversioned",
                          "failed_ms": 1}],
            "next_after": 4
        });
        assert_eq!(
            render_failures(&list),
            "  FAILED prod/a b v1 (object) -> backup (rule all): DstBucketUnversioned\n  \
             (more failures: GET /_xregion/replication/failures?after=4)\n"
        );
    }

    /// A report as a region sends it (trimmed) reads as one summary line per thing.
    #[test]
    fn renders_a_report() {
        let report = serde_json::json!({
            "region": "us-east-1",
            "pending_operations": 3,
            "queues": [{
                "source_bucket": "prod", "destination_bucket": "backup", "rule_id": "all",
                "pending_operations": 3, "pending_bytes": 5030, "batch_operations": 1,
                "oldest_pending_age_seconds": 1000.0,
                "operations_over_threshold": 2, "failed_operations": 1, "last_failure_reason": "DstBucketUnversioned"
            }],
            "destinations": [{
                "bucket": "backup", "paused": true, "last_error": "connection refused",
                "completed": 100, "failed": 1, "retries": 7,
                "lag": {"mean_ms": 7.7, "max_ms": 29, "histogram": [
                    {"le_ms": 10, "count": 98}, {"le_ms": 50, "count": 2}, {"le_ms": null, "count": 0}
                ]}
            }],
            "jobs": {"unfinished": [{"id": "j1", "bucket": "prod", "status": "Active",
                                     "total_tasks": 10, "succeeded_tasks": 4, "failed_tasks": 1}]},
            "disk": {"available_bytes": 2u64 << 30, "total_bytes": 10u64 << 30, "reserve_bytes": 1u64 << 30},
            "stamp_tag": {"tag": 1, "shared_with": ["eu-west-1"]}
        });
        let mut external = report.clone();
        external["targets"] = serde_json::json!({"backup": "https://s3.example.com"});
        let line = render("http://127.0.0.1:9000", &external).lines().nth(3).unwrap_or_default().to_owned();
        assert!(line.starts_with("  to backup (S3 service at https://s3.example.com): unreachable"), "{line}");
        let text = render("http://127.0.0.1:9000", &report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "us-east-1 (http://127.0.0.1:9000)");
        assert_eq!(
            lines[1],
            "  backlog: 3 operations, 4.9 KiB; oldest waiting 16 min 40 s; 2 waiting over 15 min; 1 failed"
        );
        assert_eq!(
            lines[2],
            "  prod -> backup (rule all): 3 pending, 4.9 KiB (1 queued by batch replication), oldest 16 min 40 s, \
             1 failed (last: DstBucketUnversioned)"
        );
        assert_eq!(
            lines[3],
            "  to backup: unreachable (connection refused); since start 100 replicated, 1 failed, 7 retries; \
             lag mean 7.7 ms, max 29.0 ms, p99 <= 50.0 ms"
        );
        assert_eq!(lines[4], "  job j1 on prod: Active, 5 of 10 tasks done (1 failed)");
        let mut lifecycle = report.clone();
        lifecycle["lifecycle"] = serde_json::json!({
            "passes": 3, "totals": {"expired": 1, "noncurrent_removed": 4, "markers_removed": 0, "uploads_aborted": 2},
            "last_pass": {"waiting_for_replication": 5}, "last_error": null
        });
        let text = render("http://127.0.0.1:9000", &lifecycle);
        assert!(
            text.contains(
                "  lifecycle since start: 1 expired, 4 noncurrent removed, 0 delete markers removed, 2 uploads aborted; \
                 5 waiting for replication\n"
            ),
            "{text}"
        );
        assert_eq!(lines[5], "  disk: 2.0 GiB free of 10.0 GiB (object writes stop at 1.0 GiB free)");
        assert_eq!(lines[6], "  warning: version stamp tag shared with eu-west-1 (see stamp_tag)");
        // A region serving HTTPS: its certificate's end, counted from the report's time.
        let mut tls = report.clone();
        tls["generated_ms"] = serde_json::json!(1_796_000_000_000i64);
        tls["tls"] = serde_json::json!({
            "certificate_not_after_ms": 1_798_761_600_000i64, "certificate_names": ["s3.example.com", "10.0.0.1"]
        });
        let text = render("https://s3.example.com", &tls);
        assert!(
            text.contains(
                "  tls: certificate for s3.example.com, 10.0.0.1 expires Fri, 01 Jan 2027 00:00:00 GMT (31 days left)\n"
            ),
            "{text}"
        );
        tls["generated_ms"] = serde_json::json!(1_799_000_000_000i64);
        let text = render("https://s3.example.com", &tls);
        assert!(text.contains("(expired 2 days ago)"), "{text}");
    }
}
