//! The README's "Replication" walkthrough, run as written with the AWS CLI against two regions
//! of the harness (only the endpoints `127.0.0.1:9000` / `:9001` of `xregion dev` are replaced
//! by the harness regions'). Then checked with the SDK: the replica has the source's version id,
//! REPLICA status and tags, and the delete marker reached the destination with its id (DEL-3).
//!
//! Needs `aws` on the PATH: `.ci/run` installs it (CI=true makes its absence a failure);
//! elsewhere the test is skipped with a message.

use std::process::Command;

use crate::common::*;

fn aws_available() -> bool {
    Command::new("aws").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The first ```sh block of the README's `## Replication` section.
fn readme_walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let section = readme.split("\n## Replication\n").nth(1).expect("README has a `## Replication` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let block = section.split("```sh\n").nth(1).expect("a ```sh block in `## Replication`");
    block.split("\n```").next().expect("closed code block").to_owned()
}

#[test]
fn readme_replication_walkthrough_runs_with_the_aws_cli() {
    if !aws_available() {
        let msg = "the README replication walkthrough test needs the AWS CLI (`pip install awscli`)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}: not available, and CI=true requires it");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let script = readme_walkthrough()
        .replace("http://127.0.0.1:9000", &regions[0].endpoint())
        .replace("http://127.0.0.1:9001", &regions[1].endpoint());
    assert!(script.contains("put-bucket-replication"), "unexpected walkthrough:\n{script}");
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        // As after the three `export` lines `xregion dev` prints.
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", regions[0].name())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "walkthrough failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("\"ReplicationStatus\": \"REPLICA\""), "the replica's head-object: {stdout}");
    assert!(stdout.contains("\"Value\": \"pets\""), "the replica's tags: {stdout}");
    // The curl lines: the JSON report and the Prometheus counters of the source region.
    assert!(stdout.contains("\"pending_operations\""), "the replication report: {stdout}");
    let completed =
        "xregion_replication_tasks_completed_total{region=\"us-east-1\",destination_bucket=\"photos-backup\"}";
    assert!(stdout.contains(completed), "the metrics: {stdout}");
    assert!(stdout.contains("\"DeleteMarkers\""), "the replicated delete marker: {stdout}");

    // The same facts through the SDK.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (sc, dc) = (regions[0].client(), regions[1].client());
        let src = all_versions(&sc, "photos").await;
        let dst = all_versions(&dc, "photos-backup").await;
        assert_eq!(src.len(), 2, "the version and the delete marker: {src:?}");
        assert_eq!(dst, src, "same versions and delete marker, same ids, in both regions");
        let version = &src.iter().find(|v| !v.3).expect("the object version").1;
        let head = dc.head_object().bucket("photos-backup").key("cat.jpg").version_id(version).send().await;
        let head = head.expect("head replica");
        assert_eq!(head.replication_status().map(|s| s.as_str()), Some("REPLICA"));
        assert_eq!(head.content_type(), Some("image/jpeg"));
    });
}
