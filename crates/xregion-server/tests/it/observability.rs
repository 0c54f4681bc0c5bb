//! Design invariant 6 end to end: the replication backlog, its bytes and age, failures and lag
//! are visible at `GET /_xregion/replication` (JSON) and `GET /_xregion/metrics` (Prometheus),
//! signed like any S3 request.

use serde_json::Value;

use crate::common::*;
use crate::replication::{eventually, pair, status, wait_completed};

/// The JSON report of a region.
pub(crate) async fn report(region: &TestRegion) -> Value {
    let resp = region.signed("GET", "/_xregion/replication", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let content_type = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"));
    serde_json::from_slice(&resp.body).expect("report is JSON")
}

/// Invariant 6, STS-5: with the destination down, the source reports exactly what it owes
/// (operations, bytes, oldest age) and that the destination is unreachable; once it is back,
/// the backlog drains to zero and every version shows up in the completed count and the lag
/// histogram. Anonymous callers are refused; virtual-hosted paths stay object keys.
#[tokio::test]
async fn inv6_backlog_bytes_age_and_lag_are_reported() {
    let (mut regions, sc, _dc, src, dst) = pair("obs", true).await;
    regions[1].kill();
    let mut ids = Vec::new();
    for (key, size) in [("a", 10usize), ("b", 20), ("c", 5000)] {
        ids.push((key, put(&sc, &src, key, &vec![b'x'; size]).await.version_id().expect("vid").to_owned()));
    }
    sc.delete_object().bucket(&src).key("a").send().await.expect("delete marker");

    let r = report(&regions[0]).await;
    assert_eq!(r["region"], "us-east-1");
    assert_eq!(r["pending_operations"], 4);
    let q = &r["queues"][0];
    assert_eq!((q["source_bucket"].as_str(), q["destination_bucket"].as_str()), (Some(&*src), Some(&*dst)));
    assert_eq!((q["rule_id"].as_str(), q["pending_operations"].as_u64()), (Some("everything"), Some(4)));
    assert_eq!(q["pending_bytes"], 5030, "the delete marker has no bytes");
    assert_eq!(q["operations_over_threshold"], 0, "RTC-4: nothing has waited 15 minutes");
    assert!(q["oldest_pending_age_seconds"].as_f64().is_some_and(|age| age >= 0.0), "{q}");
    // The worker has tried and found the destination unreachable.
    eventually("the destination reported unreachable", || async {
        let r = report(&regions[0]).await;
        let d = r["destinations"].as_array()?.iter().find(|d| d["bucket"] == dst.as_str())?.clone();
        (d["paused"] == true && d["last_error"].is_string() && d["retries"].as_u64() > Some(0)).then_some(())
    })
    .await;

    let metrics = regions[0].signed("GET", "/_xregion/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    let labels =
        format!("region=\"us-east-1\",source_bucket=\"{src}\",destination_bucket=\"{dst}\",rule_id=\"everything\"");
    assert!(text.contains(&format!("xregion_replication_pending_operations{{{labels}}} 4")), "{text}");
    assert!(text.contains(&format!("xregion_replication_pending_bytes{{{labels}}} 5030")), "{text}");

    // Only a principal allowed the report gets it (anonymous: 403 AccessDenied).
    let anonymous = regions[0].anonymous("GET", "/_xregion/metrics").await;
    assert_eq!(anonymous.status, 403);
    assert!(String::from_utf8_lossy(&anonymous.body).contains("<Code>AccessDenied</Code>"));
    // Virtual-hosted style, the same path is a key in the bucket (which does not exist).
    let key = regions[0].signed_virtual_host(&src, "GET", "/_xregion/metrics", b"").await;
    assert_eq!(key.status, 404);
    assert!(String::from_utf8_lossy(&key.body).contains("<Code>NoSuchKey</Code>"));

    regions[1].restart();
    for (key, vid) in &ids {
        wait_completed(&sc, &src, key, vid).await;
    }
    let r = eventually("the backlog drained", || async {
        let r = report(&regions[0]).await;
        (r["pending_operations"] == 0).then_some(r)
    })
    .await;
    assert_eq!(r["queues"].as_array().map(Vec::len), Some(0), "no queue left: {r}");
    let d = r["destinations"].as_array().and_then(|d| d.iter().find(|d| d["bucket"] == dst.as_str())).expect("dest");
    assert_eq!(d["completed"], 4);
    assert_eq!(d["lag"]["count"], 4, "three versions and a delete marker");
    assert_eq!(d["paused"], false);
}

/// A configured bearer token admits scrapers that cannot sign SigV4 (Prometheus) to the same
/// reports; a wrong token is refused, and SigV4 keeps working.
#[tokio::test]
async fn inv6_metrics_token_admits_scrapers() {
    let region = TestRegion::start_with("us-east-1", &[], &["--metrics-token", "scrape-me"]);
    let url = format!("{}/_xregion/metrics", region.endpoint());
    let get = |token: &'static str| {
        let url = url.clone();
        async move {
            let resp = http_client(None).get(url).bearer_auth(token).send().await.expect("request");
            RawResponse::read(resp).await
        }
    };
    let ok = get("scrape-me").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&ok.body).contains("# TYPE xregion_replication_pending_operations gauge"));
    let wrong = get("scrape-you").await;
    assert_eq!((wrong.status, wrong.error_code().as_deref()), (403, Some("AccessDenied")));
    assert_eq!(report(&region).await["pending_operations"], 0, "SigV4 still works");
}

/// CON-3, `docs/replication.md`: regions that list each other's names get distinct version
/// stamp tags, and the report says which tag a region has. Where one region lists a name the
/// other does not, both can end with the same tag; the first peer exchange reveals it, in the
/// report and the metrics, until the operator sets the tag (`--stamp-tag`).
#[tokio::test]
async fn con3_regions_report_stamp_tags_shared_with_a_peer() {
    // Both list each other only: tags 0 (eu-west-1) and 1 (us-east-1).
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let c = regions[0].client();
    c.list_buckets().send().await.expect("list buckets asks the peer");
    let (r0, r1) = (report(&regions[0]).await, report(&regions[1]).await);
    assert_eq!((&r0["stamp_tag"]["tag"], &r1["stamp_tag"]["tag"]), (&1.into(), &0.into()));
    assert_eq!(r0["stamp_tag"]["shared_with"], serde_json::json!([]));

    // eu-west-1 also lists ap-south-1, which sorts first: it takes tag 1, like us-east-1.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let extra = [("eu-west-1", ("ap-south-1", nowhere.as_str()))];
    let regions = TestRegion::start_many_with_extra_peers(&["us-east-1", "eu-west-1"], &extra);
    regions[0].client().list_buckets().send().await.expect("list buckets asks the peer");
    let r0 = report(&regions[0]).await;
    assert_eq!(r0["stamp_tag"]["tag"], 1);
    assert_eq!(r0["stamp_tag"]["shared_with"], serde_json::json!(["eu-west-1"]));
    let metrics = regions[0].signed("GET", "/_xregion/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("xregion_stamp_tag_shared_with_peers{region=\"us-east-1\"} 1"), "{text}");

    // The operator gives eu-west-1 its own tag: us-east-1 sees at the next exchange that it no
    // longer shares its tag.
    let mut regions = regions;
    regions[1].set_extra_args(&["--stamp-tag", "7"]);
    regions[1].restart();
    assert_eq!(report(&regions[1]).await["stamp_tag"]["tag"], 7);
    regions[0].client().list_buckets().send().await.expect("list buckets asks the peer");
    assert_eq!(report(&regions[0]).await["stamp_tag"]["shared_with"], serde_json::json!([]));
}

/// A tag set by the operator (`--stamp-tag`) is the one every version stamp of the region
/// carries (modulo 16).
#[tokio::test]
async fn con3_an_operator_set_stamp_tag_marks_every_version() {
    let region = TestRegion::start_with("us-east-1", &[], &["--stamp-tag", "9"]);
    assert_eq!(report(&region).await["stamp_tag"]["tag"], 9);
    let c = region.client();
    let bucket = create_versioned_bucket(&c, "tagged").await;
    for _ in 0..20 {
        let vid = put(&c, &bucket, "k", b"x").await.version_id().expect("version id").to_owned();
        let stamp = xregion_types::VersionId::parse(&vid).expect("version id").stamp().expect("a stamp");
        assert_eq!(stamp % xregion_types::STAMP_TAGS, 9, "{vid}");
    }
}

/// Runs `xregion status` with `args` and the root credentials in the environment, as after
/// `xregion dev`'s exports; its exit status, stdout and stderr.
fn xregion_status(args: &[&str], secret_key: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xregion"))
        .arg("status")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run xregion status");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Invariant 6 from a terminal: `xregion status` prints each region's backlog per queue and
/// rule, and a destination the worker cannot reach; a region it cannot read is an error
/// (exit status 1) naming the region's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv6_xregion_status_prints_backlog_and_unreachable_destinations() {
    let (mut regions, sc, _dc, src, dst) = pair("status", true).await;
    regions[1].kill();
    for key in ["a", "b"] {
        put(&sc, &src, key, &[b'x'; 2048]).await;
    }
    let endpoint = regions[0].endpoint();
    let (ok, out, err) = eventually("xregion status shows the destination unreachable", || {
        let endpoint = endpoint.clone();
        async move {
            let run = tokio::task::spawn_blocking(move || xregion_status(&["--endpoint", &endpoint], SECRET_KEY));
            let (ok, out, err) = run.await.expect("status");
            out.contains("unreachable").then_some((ok, out, err))
        }
    })
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.starts_with(&format!("us-east-1 ({endpoint})\n")), "{out}");
    assert!(out.contains("  backlog: 2 operations, 4.0 KiB;"), "{out}");
    assert!(out.contains(&format!("  {src} -> {dst} (rule everything): 2 pending, 4.0 KiB")), "{out}");
    assert!(out.contains(&format!("  to {dst}: unreachable (")), "{out}");

    // A reader that stops early (`| head`) ends the command quietly: 60 JSON reports are more
    // than a pipe holds, so the writes after `head` exits fail with EPIPE.
    let command = format!(
        "set -o pipefail; {} status --json{} | head -c 100 > /dev/null",
        env!("CARGO_BIN_EXE_xregion"),
        format!(" --endpoint {endpoint}").repeat(60)
    );
    let piped = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-c", &command])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .expect("run xregion status | head")
    })
    .await
    .expect("status | head");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", piped.status);

    let (ok, out, err) =
        tokio::task::spawn_blocking(move || xregion_status(&["--endpoint", &endpoint], "wrong")).await.expect("status");
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("answered 403 Forbidden SignatureDoesNotMatch"), "{err}");
}

/// STS-5, IAM-8, invariant 6: the versions that failed for good are listed one by one, with
/// the destination, the rule, the reason and when, oldest first, by source bucket and in
/// pages; only a principal allowed the report gets them.
#[tokio::test]
async fn sts5_permanent_failures_are_listed_with_their_reason() {
    let (regions, sc, dc, src, dst) = pair("fails", true).await;
    set_versioning(&dc, &dst, aws_sdk_s3::types::BucketVersioningStatus::Suspended).await;
    let mut written = Vec::new();
    for key in ["a", "b c"] {
        let vid = put(&sc, &src, key, b"x").await.version_id.expect("vid");
        eventually(&format!("{key} FAILED"), || async {
            (status(&sc, &src, key, &vid).await.as_deref() == Some("FAILED")).then_some(())
        })
        .await;
        written.push((key, vid));
    }
    let list = |query: &str| {
        let path = format!("/_xregion/replication/failures{query}");
        let region = &regions[0];
        async move {
            let resp = region.signed("GET", &path, &[], b"").await;
            (resp.status, serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null), resp.error_code())
        }
    };
    let (code, all, _) = list("").await;
    assert_eq!(code, 200, "{all}");
    let rows = all["failures"].as_array().expect("failures");
    assert_eq!(rows.len(), 2, "{all}");
    for (row, (key, vid)) in rows.iter().zip(&written) {
        assert_eq!(row["bucket"], src.as_str());
        assert_eq!(row["key"], *key);
        assert_eq!(row["version_id"], vid.as_str());
        assert_eq!(row["destination_bucket"], dst.as_str());
        assert_eq!(row["rule_id"], "everything");
        assert_eq!(row["operation"], "object");
        assert_eq!(row["reason"], "DstBucketUnversioned");
        assert!(row["failed_ms"].as_i64().is_some_and(|t| t > 0), "{row}");
    }
    assert_eq!(all["next_after"], Value::Null);

    // In pages of one; by bucket.
    let (_, first, _) = list("?max-items=1").await;
    assert_eq!(first["failures"][0]["key"], "a");
    let after = first["next_after"].as_u64().expect("a next page");
    let (_, second, _) = list(&format!("?max-items=1&after={after}")).await;
    assert_eq!(second["failures"][0]["key"], "b c", "{second}");
    let other = create_versioned_bucket(&sc, "fails-other").await;
    let (_, none, _) = list(&format!("?bucket={other}")).await;
    assert_eq!(none["failures"], serde_json::json!([]), "{none}");
    let (_, mine, _) = list(&format!("?bucket={src}")).await;
    assert_eq!(mine["failures"].as_array().map(Vec::len), Some(2));
    assert_eq!(list("?bucket=no-such-bucket-here").await.2.as_deref(), Some("NoSuchBucket"));
    assert_eq!(list("?max-items=0").await.0, 400);
    assert_eq!(regions[0].anonymous("GET", "/_xregion/replication/failures").await.status, 403);

    // The same from a terminal.
    let endpoint = regions[0].endpoint();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || xregion_status(&["--endpoint", &endpoint, "--failures"], SECRET_KEY))
            .await
            .expect("status");
    assert!(ok, "{out}{err}");
    for (key, vid) in &written {
        let line = format!("  FAILED {src}/{key} {vid} (object) -> {dst} (rule everything): DstBucketUnversioned\n");
        assert!(out.contains(&line), "{line} in {out}");
    }
}
