//! A full disk (`--min-free-bytes` above what the disk has, so every body write meets the
//! reserve): writes get `507 InsufficientStorage` and store nothing, metadata requests and
//! deletes still work, and a destination that is full keeps replication PENDING (retried, never
//! FAILED) until it has room again, then everything arrives (`crates/xregion-core/src/space.rs`).

use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;
use crate::replication::{pair, status, wait_completed, wait_same_versions};

/// More free space than any test machine has: every body write is below the reserve.
const FULL: &[&str] = &["--min-free-bytes", "1000000000000000000"];

#[tokio::test]
async fn body_writes_on_a_full_disk_are_refused_with_507_and_deletes_still_work() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "full").await;
    let vid = put(&s3, &bucket, "before", b"stored while there was room").await.version_id().expect("vid").to_owned();
    region.set_extra_args(FULL);
    region.restart();
    let s3 = region.client();

    let r = s3.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"no room")).send().await;
    let err = expect_error(r, 507, Some("InsufficientStorage"));
    assert!(err.message().is_some_and(|m| m.contains("disk is full")), "{:?}", err.message());
    let r = s3.copy_object().bucket(&bucket).key("copy").copy_source(format!("{bucket}/before")).send().await;
    expect_error(r, 507, Some("InsufficientStorage"));
    let upload = s3.create_multipart_upload().bucket(&bucket).key("mpu").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let r = s3
        .upload_part()
        .bucket(&bucket)
        .key("mpu")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await;
    expect_error(r, 507, Some("InsufficientStorage"));
    s3.abort_multipart_upload().bucket(&bucket).key("mpu").upload_id(upload_id).send().await.expect("abort");
    let versions = all_versions(&s3, &bucket).await;
    assert_eq!(versions.len(), 1, "nothing was stored: {versions:?}");

    // Reads, tags, delete markers and deletes by version need no body and still work.
    assert_eq!(get_body(&s3, &bucket, "before", Some(&vid)).await, b"stored while there was room");
    let marker = s3.delete_object().bucket(&bucket).key("before").send().await.expect("delete marker");
    let marker_id = marker.version_id().expect("marker id").to_owned();
    s3.delete_object().bucket(&bucket).key("before").version_id(&marker_id).send().await.expect("delete marker");
    s3.delete_object().bucket(&bucket).key("before").version_id(&vid).send().await.expect("delete version");
    assert!(all_versions(&s3, &bucket).await.is_empty());

    // With room again (the reserve back to its default), writes work.
    region.set_extra_args(&[]);
    region.restart();
    put(&region.client(), &bucket, "after", b"room again").await;
}

/// STS-5 with a full destination: the replica writes are refused with 507, which the source
/// treats as transient (the version stays PENDING, no failure is recorded); once the
/// destination has room, every version arrives.
#[tokio::test]
async fn a_full_destination_keeps_replication_pending_until_it_has_room() {
    let (mut regions, sc, _dc, src, dst) = pair("fulldst", false).await;
    regions[1].set_extra_args(FULL);
    regions[1].restart();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(put(&sc, &src, &format!("k{i}"), b"waits for room").await.version_id().expect("vid").to_owned());
    }
    // Give the worker time to try (and be refused) a few times.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for (i, vid) in ids.iter().enumerate() {
        assert_eq!(status(&sc, &src, &format!("k{i}"), vid).await.as_deref(), Some("PENDING"));
    }
    let dc = regions[1].client();
    assert!(all_versions(&dc, &dst).await.is_empty(), "a full destination stored nothing");

    regions[1].set_extra_args(&[]);
    regions[1].restart();
    for (i, vid) in ids.iter().enumerate() {
        wait_completed(&sc, &src, &format!("k{i}"), vid).await;
    }
    wait_same_versions(&sc, &src, &regions[1].client(), &dst).await;
}
