//! Batch replication (BAT-1..BAT-4, BAT-10) end to end: `POST /_xregion/batch-replication/<bucket>`
//! replicates versions that existed before the configuration (ELI-1 leaves them out of live
//! replication), and re-drives FAILED versions once their cause is fixed, clearing their
//! failure records.

use aws_sdk_s3::types::BucketVersioningStatus;
use serde_json::Value;

use crate::common::*;
use crate::replication::{configure, eventually, status, wait_completed, wait_same_versions};

/// Runs a batch replication on `region` and returns its JSON summary.
async fn batch(region: &TestRegion, bucket: &str, statuses: Option<&str>) -> Value {
    let path = match statuses {
        Some(s) => format!("/_xregion/batch-replication/{bucket}?statuses={s}"),
        None => format!("/_xregion/batch-replication/{bucket}"),
    };
    let resp = region.signed("POST", &path, &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_slice(&resp.body).expect("summary is JSON")
}

/// The source region's recorded failures towards `dst`.
async fn failed_operations(region: &TestRegion, dst: &str) -> u64 {
    let resp = region.signed("GET", "/_xregion/replication", &[], b"").await;
    let report: Value = serde_json::from_slice(&resp.body).expect("report is JSON");
    let queues = report["queues"].as_array().cloned().unwrap_or_default();
    queues.iter().filter(|q| q["destination_bucket"] == dst).filter_map(|q| q["failed_operations"].as_u64()).sum()
}

#[tokio::test]
async fn bat1_existing_versions_and_delete_markers_are_replicated_on_demand() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_bucket(&sc, "batch-src").await;
    let dst = create_versioned_bucket(&dc, "batch-dst").await;
    // Written before any configuration: never replicated live (ELI-1). The first before
    // versioning too: the null version.
    put(&sc, &src, "pre", b"from before versioning").await;
    set_versioning(&sc, &src, BucketVersioningStatus::Enabled).await;
    let old1 = put(&sc, &src, "a", b"one").await.version_id.expect("vid");
    let old2 = put(&sc, &src, "a", b"two").await.version_id.expect("vid");
    put(&sc, &src, "gone", b"x").await;
    sc.delete_object().bucket(&src).key("gone").send().await.expect("delete marker");
    configure(&sc, &src, &dst, true).await;
    let live = put(&sc, &src, "live", b"live").await.version_id.expect("vid");
    wait_completed(&sc, &src, "live", &live).await;
    assert_eq!(status(&sc, &src, "a", &old1).await, None, "ELI-1: not replicated by live replication");

    // Without a configuration there is nothing to replicate to.
    let other = create_versioned_bucket(&sc, "batch-none").await;
    let resp = regions[0].signed("POST", &format!("/_xregion/batch-replication/{other}"), &[], b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (404, Some("ReplicationConfigurationNotFoundError")));
    let resp =
        regions[0].signed("POST", &format!("/_xregion/batch-replication/{src}?statuses=PENDING"), &[], b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidArgument")));
    assert_eq!(regions[0].anonymous("POST", &format!("/_xregion/batch-replication/{src}")).await.status, 403);

    // BAT-3 NONE: the five versions and markers written before; the live one is COMPLETED.
    let summary = batch(&regions[0], &src, Some("NONE")).await;
    assert_eq!((summary["versions_examined"].as_u64(), summary["versions_queued"].as_u64()), (Some(6), Some(5)));
    let versions = wait_same_versions(&sc, &src, &dc, &dst).await;
    assert_eq!(versions.len(), 6, "{versions:?}");
    wait_completed(&sc, &src, "pre", "null").await;
    assert_eq!(get_body(&dc, &dst, "pre", Some("null")).await, b"from before versioning");
    for id in [&old1, &old2] {
        wait_completed(&sc, &src, "a", id).await;
        assert_eq!(status(&dc, &dst, "a", id).await.as_deref(), Some("REPLICA"));
    }
    assert_eq!(get_body(&dc, &dst, "a", Some(&old1)).await, b"one");
    expect_error(dc.get_object().bucket(&dst).key("gone").send().await, 404, Some("NoSuchKey"));
    // Nothing is queued twice; COMPLETED versions go again only when asked for (back-fill).
    let summary = batch(&regions[0], &src, Some("NONE,FAILED")).await;
    assert_eq!(summary["versions_queued"].as_u64(), Some(0));
    let summary = batch(&regions[0], &src, None).await;
    assert_eq!(summary["versions_queued"].as_u64(), Some(6), "{summary}");
    eventually("the back-fill to finish", || async {
        let all = all_versions(&sc, &src).await;
        let mut done = true;
        for (key, id, _, marker) in &all {
            done &= *marker || status(&sc, &src, key, id).await.as_deref() == Some("COMPLETED");
        }
        done.then_some(())
    })
    .await;
    assert_eq!(all_versions(&dc, &dst).await, versions, "sent again, nothing doubled");
    // MET-2: the lag histogram holds what live replication sent (the one live version), not
    // the versions of before that batches sent; the worker counts them all as completed.
    let report: Value =
        serde_json::from_slice(&regions[0].signed("GET", "/_xregion/replication", &[], b"").await.body).expect("JSON");
    let d = report["destinations"].as_array().and_then(|d| d.iter().find(|d| d["bucket"] == dst.as_str()).cloned());
    let d = d.expect("the destination in the report");
    assert_eq!((d["lag"]["count"].as_u64(), d["completed"].as_u64()), (Some(1), Some(12)), "{d}");
}

/// BAT-1c: a version that FAILED because the destination was not versioned is sent again by a
/// batch once versioning is back on; its failure record is cleared, so the report no longer
/// counts it.
#[tokio::test]
async fn bat1c_failed_versions_are_retried_and_their_failures_cleared() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "redrive-src").await;
    let dst = create_versioned_bucket(&dc, "redrive-dst").await;
    configure(&sc, &src, &dst, false).await;
    set_versioning(&dc, &dst, BucketVersioningStatus::Suspended).await;
    let id = put(&sc, &src, "k", b"payload").await.version_id.expect("vid");
    eventually("the version to fail", || async {
        (status(&sc, &src, "k", &id).await.as_deref() == Some("FAILED")).then_some(())
    })
    .await;
    assert_eq!(failed_operations(&regions[0], &dst).await, 1);

    set_versioning(&dc, &dst, BucketVersioningStatus::Enabled).await;
    let summary = batch(&regions[0], &src, Some("FAILED")).await;
    assert_eq!((summary["versions_queued"].as_u64(), summary["failures_cleared"].as_u64()), (Some(1), Some(1)));
    wait_completed(&sc, &src, "k", &id).await;
    assert_eq!(get_body(&dc, &dst, "k", Some(&id)).await, b"payload");
    assert_eq!(failed_operations(&regions[0], &dst).await, 0);
}

/// BAT-1d, BAT-4: a chain A→B, then B→C. Live replication never passes A's versions on from B
/// (ELI-13); a batch asked for REPLICA does, with the same ids, and they stay replicas in B.
#[tokio::test]
async fn bat1d_replicas_are_passed_down_a_chain_on_request() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (ac, bc, cc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let a = create_versioned_bucket(&ac, "chain-a").await;
    let b = create_versioned_bucket(&bc, "chain-b").await;
    let c = create_versioned_bucket(&cc, "chain-c").await;
    configure(&ac, &a, &b, true).await;
    put(&ac, &a, "k", b"one").await;
    put(&ac, &a, "k", b"two").await;
    ac.delete_object().bucket(&a).key("k").send().await.expect("delete marker");
    let versions = wait_same_versions(&ac, &a, &bc, &b).await;
    configure(&bc, &b, &c, true).await;

    let summary = batch(&regions[1], &b, None).await;
    assert_eq!(summary["versions_queued"].as_u64(), Some(0), "replicas only when asked for: {summary}");
    let summary = batch(&regions[1], &b, Some("REPLICA")).await;
    assert_eq!(summary["versions_queued"].as_u64(), Some(3), "{summary}");
    assert_eq!(wait_same_versions(&bc, &b, &cc, &c).await, versions);
    for (key, id, _, marker) in &versions {
        if !marker {
            eventually("the replica to read REPLICA again", || async {
                (status(&bc, &b, key, id).await.as_deref() == Some("REPLICA")).then_some(())
            })
            .await;
            assert_eq!(status(&cc, &c, key, id).await.as_deref(), Some("REPLICA"));
        }
    }
    assert_eq!(all_versions(&ac, &a).await, versions, "nothing went back to A");
}
