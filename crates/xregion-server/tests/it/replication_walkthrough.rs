//! The README's "Replication" walkthrough, run as written with the AWS CLI against two regions
//! of the harness (only the endpoints `127.0.0.1:9000` / `:9001` of `xregion dev` are replaced
//! by the harness regions'). Then checked with the SDK: the replica has the source's version id,
//! REPLICA status and tags, and the delete marker reached the destination with its id (DEL-3).
//!
//! Needs `aws` on the PATH: `.ci/run` installs it (CI=true makes its absence a failure);
//! elsewhere the test is skipped with a message.

use crate::common::*;

/// The ```sh blocks of the README's `## Replication` section, in order: the walkthrough, the
/// restore from the backup region, a batch replication, and a batch replication job.
fn readme_walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let section = readme.split("\n## Replication\n").nth(1).expect("README has a `## Replication` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let blocks: Vec<&str> =
        section.split("```sh\n").skip(1).map(|block| block.split("\n```").next().expect("closed code block")).collect();
    assert_eq!(blocks.len(), 4, "the walkthrough, the restore, the batch replication and the job");
    blocks.join("\n")
}

#[test]
fn readme_replication_walkthrough_runs_with_the_aws_cli() {
    if !aws_cli_available("the README replication walkthrough test") {
        return;
    }
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let script = readme_walkthrough()
        .replace("http://127.0.0.1:9000", &regions[0].endpoint())
        .replace("http://127.0.0.1:9001", &regions[1].endpoint())
        // S3 Control (`<account>.localhost`, resolved by the harness, see `run_aws_cli`).
        .replace("http://localhost:9000", &format!("http://localhost:{}", regions[0].port()));
    assert!(script.contains("put-bucket-replication"), "unexpected walkthrough:\n{script}");
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = run_aws_cli(&script, dir.path(), regions[0].name());
    assert!(stdout.contains("\"ReplicationStatus\": \"REPLICA\""), "the replica's head-object: {stdout}");
    assert!(stdout.contains("\"Value\": \"pets\""), "the replica's tags: {stdout}");
    // The curl lines: the JSON report and the Prometheus counters of the source region.
    assert!(stdout.contains("\"pending_operations\""), "the replication report: {stdout}");
    let completed =
        "xregion_replication_tasks_completed_total{region=\"us-east-1\",destination_bucket=\"photos-backup\"}";
    assert!(stdout.contains(completed), "the metrics: {stdout}");
    assert!(stdout.contains("\"DeleteMarkers\""), "the replicated delete marker: {stdout}");
    // The restore: the old version copied back from the backup region, read on the source.
    assert!(stdout.contains("a picture of a cat\n"), "the restored cat: {stdout}");
    // The batch replication: every version of `photos` was replicated live already.
    assert!(stdout.contains("\"versions_queued\":0,\"failures_cleared\":0}\n"), "the batch replication: {stdout}");
    // The job: Complete, every task succeeded, one report row per COMPLETED version of
    // `photos`: the first version and the delete marker, and the restored version unless its
    // replication was still running when the job listed the bucket.
    assert!(stdout.contains("\"Complete\""), "the job's status: {stdout}");
    assert!(stdout.contains("\"NumberOfTasksFailed\": 0"), "the job's progress: {stdout}");
    let rows = stdout.lines().filter(|l| l.starts_with("photos,cat.jpg,") && l.ends_with(",succeeded,200,,Successful"));
    assert!((2..=3).contains(&rows.count()), "the completion report: {stdout}");

    // The same facts through the SDK.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (sc, dc) = (regions[0].client(), regions[1].client());
        let src = all_versions(&sc, "photos").await;
        assert_eq!(src.len(), 3, "the version, the delete marker and the restored version: {src:?}");
        assert!(src[0].2 && !src[0].3, "the restored version is current: {src:?}");
        // The restored version is a new version of the source, so it is replicated too.
        let dst = crate::replication::eventually("the restored version's replica", || async {
            let dst = all_versions(&dc, "photos-backup").await;
            (dst == src).then_some(dst)
        })
        .await;
        assert_eq!(dst, src, "same versions and delete marker, same ids, in both regions");
        let version = &src.iter().rev().find(|v| !v.3).expect("the first object version").1;
        let head = dc.head_object().bucket("photos-backup").key("cat.jpg").version_id(version).send().await;
        let head = head.expect("head replica");
        assert_eq!(head.replication_status().map(|s| s.as_str()), Some("REPLICA"));
        assert_eq!(head.content_type(), Some("image/jpeg"));
    });
}
