//! Live replication end to end (spec §4–§6, §12): two regions, versioned buckets, a
//! whole-bucket rule configured with PutBucketReplication; the source's worker pushes every
//! version to the destination region over HTTP. Assertions poll with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus, Tag, Tagging,
};

use crate::common::*;

/// Longest a replication may take in these tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `probe` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A whole-bucket V2 rule `src` → `dst` (empty filter), delete-marker replication on or off.
pub(crate) async fn configure(client: &Client, src: &str, dst: &str, delete_markers: bool) {
    put_rules(client, src, vec![whole_bucket_rule("everything", 1, dst, delete_markers).build().expect("rule")]).await;
}

/// The builder of a whole-bucket V2 rule `id` to `dst` (empty filter), delete-marker
/// replication on or off; callers may add to it.
pub(crate) fn whole_bucket_rule(
    id: &str,
    priority: i32,
    dst: &str,
    delete_markers: bool,
) -> aws_sdk_s3::types::builders::ReplicationRuleBuilder {
    let dmr =
        if delete_markers { DeleteMarkerReplicationStatus::Enabled } else { DeleteMarkerReplicationStatus::Disabled };
    ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("").build())
        .delete_marker_replication(DeleteMarkerReplication::builder().status(dmr).build())
        .destination(Destination::builder().bucket(format!("arn:aws:s3:::{dst}")).build().expect("destination"))
}

/// PutBucketReplication with these rules (replaces the configuration, PRI-6).
pub(crate) async fn put_rules(client: &Client, src: &str, rules: Vec<ReplicationRule>) {
    let config = ReplicationConfiguration::builder()
        .role("arn:aws:iam::123456789012:role/replication")
        .set_rules(Some(rules))
        .build()
        .expect("config");
    client
        .put_bucket_replication()
        .bucket(src)
        .replication_configuration(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put bucket replication: {:?}", DebugSdkError(&e)));
}

/// Two regions, `src` in the first and `dst` in the second, both versioned, replication on.
pub(crate) async fn pair(stem: &str, delete_markers: bool) -> (Vec<TestRegion>, Client, Client, String, String) {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, &format!("{stem}-src")).await;
    let dst = create_versioned_bucket(&dc, &format!("{stem}-dst")).await;
    configure(&sc, &src, &dst, delete_markers).await;
    (regions, sc, dc, src, dst)
}

/// `x-amz-replication-status` of a version (HEAD).
pub(crate) async fn status(client: &Client, bucket: &str, key: &str, version: &str) -> Option<String> {
    let out = client.head_object().bucket(bucket).key(key).version_id(version).send().await.ok()?;
    out.replication_status().map(|s| s.as_str().to_owned())
}

/// Waits until the source version is COMPLETED.
pub(crate) async fn wait_completed(client: &Client, bucket: &str, key: &str, version: &str) {
    eventually(&format!("{key} {version} COMPLETED"), || async {
        let s = status(client, bucket, key, version).await;
        assert_ne!(s.as_deref(), Some("FAILED"), "{key} {version} failed");
        (s.as_deref() == Some("COMPLETED")).then_some(())
    })
    .await;
}

/// Waits until the destination has exactly the source's versions and delete markers.
pub(crate) async fn wait_same_versions(
    sc: &Client,
    src: &str,
    dc: &Client,
    dst: &str,
) -> Vec<(String, String, bool, bool)> {
    let want = all_versions(sc, src).await;
    eventually("destination versions equal to the source's", || async {
        let got = all_versions(dc, dst).await;
        (got == want).then_some(got)
    })
    .await
}

/// STS-1/4/11/12/13, ELI-10: a PUT is PENDING, then COMPLETED on the source; the replica has
/// the same version id, bytes, ETag, Last-Modified, metadata and tags, and reads REPLICA.
#[tokio::test]
async fn sts11_sts13_put_reaches_the_destination_with_the_same_identity() {
    let (_regions, sc, dc, src, dst) = pair("ident", false).await;
    let body = b"replicate me".to_vec();
    let put = sc
        .put_object()
        .bucket(&src)
        .key("docs/a.txt")
        .body(ByteStream::from(body.clone()))
        .content_type("text/plain")
        .cache_control("max-age=60")
        .metadata("colour", "blue")
        .tagging("team=storage&tier=gold")
        .send()
        .await
        .expect("put");
    let vid = put.version_id().expect("version id").to_owned();
    // STS-1: the status is visible right after the PUT (IMPL-1).
    let first = status(&sc, &src, "docs/a.txt", &vid).await;
    assert!(matches!(first.as_deref(), Some("PENDING" | "COMPLETED")), "{first:?}");
    wait_completed(&sc, &src, "docs/a.txt", &vid).await;

    let s = sc.head_object().bucket(&src).key("docs/a.txt").version_id(&vid).send().await.expect("head src");
    let d = dc.head_object().bucket(&dst).key("docs/a.txt").version_id(&vid).send().await.expect("head replica");
    assert_eq!(d.version_id(), Some(vid.as_str()));
    assert_eq!(d.replication_status().map(|s| s.as_str()), Some("REPLICA"));
    assert_eq!(d.e_tag(), s.e_tag());
    assert_eq!(unquote(d.e_tag().unwrap_or_default()), md5_hex(&body));
    assert_eq!(d.last_modified(), s.last_modified());
    assert_eq!(d.content_type(), Some("text/plain"));
    assert_eq!(d.cache_control(), Some("max-age=60"));
    assert_eq!(d.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));
    assert_eq!(get_body(&dc, &dst, "docs/a.txt", Some(&vid)).await, body);
    let tags = dc.get_object_tagging().bucket(&dst).key("docs/a.txt").version_id(&vid).send().await.expect("tags");
    let mut tags: Vec<(String, String)> =
        tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    tags.sort();
    assert_eq!(tags, [("team".to_owned(), "storage".to_owned()), ("tier".to_owned(), "gold".to_owned())]);
    // The replica is current on the destination too, and ELI-13: it is never sent back.
    let current = dc.head_object().bucket(&dst).key("docs/a.txt").send().await.expect("head current");
    assert_eq!(current.version_id(), Some(vid.as_str()));
}

/// STS-13: a multipart object keeps its multipart ETag and bytes.
#[tokio::test]
async fn sts13_multipart_etag_is_preserved() {
    let (_regions, sc, dc, src, dst) = pair("mpu", false).await;
    let part1 = vec![b'a'; 5 * 1024 * 1024];
    let part2 = b"tail".to_vec();
    let done = multipart_put(&sc, &src, "big", (&part1, &part2), None).await;
    let vid = done.version_id().expect("version id").to_owned();
    wait_completed(&sc, &src, "big", &vid).await;
    let d = dc.head_object().bucket(&dst).key("big").version_id(&vid).send().await.expect("head replica");
    assert_eq!(d.e_tag(), done.e_tag());
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert_eq!(get_body(&dc, &dst, "big", Some(&vid)).await, whole);
}

/// CON-3, STS-15: three quick versions of one key arrive, in order; the destination's stack
/// equals the source's and its current version is the newest.
#[tokio::test]
async fn con3_quick_versions_arrive_in_order() {
    let (_regions, sc, dc, src, dst) = pair("order", false).await;
    let mut ids = Vec::new();
    for body in [&b"one"[..], b"two", b"three"] {
        ids.push(put(&sc, &src, "k", body).await.version_id().expect("vid").to_owned());
    }
    let versions = wait_same_versions(&sc, &src, &dc, &dst).await;
    let listed: Vec<&str> = versions.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(get_body(&dc, &dst, "k", None).await, b"three");
}

/// DEL-3, DEL-6: with delete-marker replication enabled, a DELETE's marker is replicated with
/// its id. DEL-1: a DELETE with versionId is never replicated.
#[tokio::test]
async fn del1_del3_delete_markers_replicate_versioned_deletes_do_not() {
    let (_regions, sc, dc, src, dst) = pair("dmr", true).await;
    let v1 = put(&sc, &src, "k", b"1").await.version_id().expect("vid").to_owned();
    let v2 = put(&sc, &src, "k", b"2").await.version_id().expect("vid").to_owned();
    let marker = sc.delete_object().bucket(&src).key("k").send().await.expect("delete");
    let marker_id = marker.version_id().expect("marker id").to_owned();
    wait_same_versions(&sc, &src, &dc, &dst).await;
    let err = dc.get_object().bucket(&dst).key("k").send().await;
    let err = expect_error(err, 404, Some("NoSuchKey"));
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header_of(&err, "x-amz-version-id"), Some(marker_id.as_str()));
    // DEL-1: removing a version (or the marker) by id in the source leaves the destination as is.
    wait_completed(&sc, &src, "k", &v2).await;
    sc.delete_object().bucket(&src).key("k").version_id(&v1).send().await.expect("delete v1");
    sc.delete_object().bucket(&src).key("k").version_id(&marker_id).send().await.expect("delete marker");
    // A later write proves the worker is past those deletes.
    let v3 = put(&sc, &src, "k", b"3").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "k", &v3).await;
    let dest: Vec<String> = all_versions(&dc, &dst).await.into_iter().map(|v| v.1).collect();
    assert_eq!(dest, [v3, marker_id, v2, v1]);
}

/// DEL-3 (default off): without delete-marker replication the marker stays in the source.
#[tokio::test]
async fn del3_delete_markers_stay_without_dmr() {
    let (_regions, sc, dc, src, dst) = pair("nodmr", false).await;
    let v1 = put(&sc, &src, "k", b"1").await.version_id().expect("vid").to_owned();
    sc.delete_object().bucket(&src).key("k").send().await.expect("delete");
    let v2 = put(&sc, &src, "other", b"2").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "k", &v1).await;
    wait_completed(&sc, &src, "other", &v2).await;
    let dest = all_versions(&dc, &dst).await;
    assert!(dest.iter().all(|v| !v.3), "no delete marker expected: {dest:?}");
    assert_eq!(get_body(&dc, &dst, "k", None).await, b"1");
}

/// ELI-12, STS-8: a tag change on a replicated version reaches its replica.
#[tokio::test]
async fn eli12_tag_changes_are_replicated() {
    let (_regions, sc, dc, src, dst) = pair("tags", false).await;
    let vid = put(&sc, &src, "k", b"x").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "k", &vid).await;
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("state").value("final").build().expect("tag"))
        .build()
        .expect("tagging");
    sc.put_object_tagging().bucket(&src).key("k").tagging(tagging).send().await.expect("tag source");
    eventually("replica tags", || async {
        let out = dc.get_object_tagging().bucket(&dst).key("k").version_id(&vid).send().await.ok()?;
        let tags: Vec<(String, String)> =
            out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
        (tags == [("state".to_owned(), "final".to_owned())]).then_some(())
    })
    .await;
    wait_completed(&sc, &src, "k", &vid).await;
    // Tagging a replica stays local (TWO-3): nothing flows back, the replica stays REPLICA.
    assert_eq!(status(&dc, &dst, "k", &vid).await.as_deref(), Some("REPLICA"));
}

/// ELI-10, STS-11: keys that need escaping (unicode, spaces, `%`, `+`, `?`, `#`, control
/// characters, slashes, the 1024-byte limit) reach the destination under the same key, by
/// both paths a replica takes: small bodies in a batch (the key inside the batch body), a large
/// one as its own streamed PUT (the key in the URL), and tag changes and delete markers too.
#[tokio::test]
async fn eli10_keys_that_need_escaping_replicate_by_every_path() {
    let (_regions, sc, dc, src, dst) = pair("oddkeys", true).await;
    let long = format!("{}é", "k".repeat(1022));
    let keys: Vec<&str> = KEYS_THAT_NEED_ESCAPING.into_iter().chain([long.as_str()]).collect();
    let big = vec![b'z'; 200 * 1024]; // above the batch limit (64 KiB): a streamed replica
    let mut versions = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let body = if i % 3 == 0 { big.clone() } else { format!("body {i}").into_bytes() };
        let vid = put(&sc, &src, key, &body).await.version_id().expect("vid").to_owned();
        versions.push((*key, vid, body));
    }
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("k ey+é").value("v/al=ue&").build().expect("tag"))
        .build()
        .expect("tagging");
    for (key, vid, _) in &versions {
        wait_completed(&sc, &src, key, vid).await;
        sc.put_object_tagging()
            .bucket(&src)
            .key(*key)
            .version_id(vid)
            .tagging(tagging.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("tag {key:?}: {:?}", DebugSdkError(&e)));
    }
    for (key, _, _) in versions.iter().step_by(2) {
        sc.delete_object().bucket(&src).key(*key).send().await.unwrap_or_else(|e| panic!("delete {key:?}: {e:?}"));
    }
    wait_same_versions(&sc, &src, &dc, &dst).await;
    for (key, vid, body) in &versions {
        assert_eq!(get_body(&dc, &dst, key, Some(vid)).await, *body, "{key:?}");
        eventually(&format!("tags of {key:?}"), || async {
            let out = dc.get_object_tagging().bucket(&dst).key(*key).version_id(vid).send().await.ok()?;
            let tags: Vec<(String, String)> =
                out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
            (tags == [("k ey+é".to_owned(), "v/al=ue&".to_owned())]).then_some(())
        })
        .await;
    }
}

/// ELI-10, STS-13: what a version's checksum says travels with it, as the destination reports
/// it in checksum mode: full-object checksums of several algorithms by both replica paths, a
/// multipart object's composite checksum, an empty object, and a console-style folder marker.
#[tokio::test]
async fn sts13_checksums_empty_objects_and_folder_markers_replicate() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

    let (_regions, sc, dc, src, dst) = pair("sums", false).await;
    let mut versions = Vec::new();
    let large = vec![b'c'; 300 * 1024];
    for (key, body, algorithm) in [
        ("small-sha256", b"small".to_vec(), Some(ChecksumAlgorithm::Sha256)),
        ("large-crc32c", large.clone(), Some(ChecksumAlgorithm::Crc32C)),
        ("small-sha1", b"sha one".to_vec(), Some(ChecksumAlgorithm::Sha1)),
        ("large-crc32", large.clone(), Some(ChecksumAlgorithm::Crc32)),
        ("empty", Vec::new(), None),
    ] {
        let out = sc
            .put_object()
            .bucket(&src)
            .key(key)
            .set_checksum_algorithm(algorithm)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {:?}", DebugSdkError(&e)));
        versions.push((key.to_owned(), out.version_id().expect("vid").to_owned()));
    }
    let folder = sc
        .put_object()
        .bucket(&src)
        .key("photos/")
        .content_type("application/x-directory")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .expect("folder marker");
    versions.push(("photos/".to_owned(), folder.version_id().expect("vid").to_owned()));
    let create = sc
        .create_multipart_upload()
        .bucket(&src)
        .key("multipart-sha256")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create upload");
    let upload_id = create.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (n, body) in [(1, vec![b'p'; 5 * 1024 * 1024]), (2, b"tail".to_vec())] {
        let out = sc
            .upload_part()
            .bucket(&src)
            .key("multipart-sha256")
            .upload_id(upload_id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {:?}", DebugSdkError(&e)));
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_sha256(out.checksum_sha256().expect("part checksum"))
                .build(),
        );
    }
    let done = sc
        .complete_multipart_upload()
        .bucket(&src)
        .key("multipart-sha256")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete: {:?}", DebugSdkError(&e)));
    versions.push(("multipart-sha256".to_owned(), done.version_id().expect("vid").to_owned()));

    for (key, vid) in &versions {
        wait_completed(&sc, &src, key, vid).await;
        let head = |c: &Client| {
            c.head_object().bucket(if std::ptr::eq(c, &sc) { &src } else { &dst }).key(key).version_id(vid)
        };
        let s = head(&sc).checksum_mode(ChecksumMode::Enabled).send().await.expect("head source");
        let d = head(&dc).checksum_mode(ChecksumMode::Enabled).send().await.expect("head replica");
        let sums = |h: &aws_sdk_s3::operation::head_object::HeadObjectOutput| {
            [
                h.checksum_crc32().map(str::to_owned),
                h.checksum_crc32_c().map(str::to_owned),
                h.checksum_crc64_nvme().map(str::to_owned),
                h.checksum_sha1().map(str::to_owned),
                h.checksum_sha256().map(str::to_owned),
                h.checksum_type().map(|t| t.as_str().to_owned()),
            ]
        };
        assert!(sums(&s).iter().take(5).any(Option::is_some), "{key}: the source has a checksum");
        assert_eq!(sums(&d), sums(&s), "{key}");
        assert_eq!(d.e_tag(), s.e_tag(), "{key}");
        assert_eq!(d.content_length(), s.content_length(), "{key}");
        assert_eq!(d.content_type(), s.content_type(), "{key}");
        assert_eq!(d.replication_status().map(|s| s.as_str()), Some("REPLICA"), "{key}");
    }
    assert_eq!(get_body(&dc, &dst, "empty", None).await, b"");
    assert_eq!(get_body(&dc, &dst, "large-crc32c", None).await, large);
}

/// STS-5, invariant 3: a stopped destination leaves versions PENDING (the source still takes
/// writes); after it restarts, they all complete and nothing is lost.
#[tokio::test]
async fn sts5_destination_down_then_back_pending_then_completed() {
    let (mut regions, sc, _dc, src, dst) = pair("down", false).await;
    regions[1].kill();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(put(&sc, &src, &format!("k{i}"), b"while down").await.version_id().expect("vid").to_owned());
    }
    for (i, vid) in ids.iter().enumerate() {
        assert_eq!(status(&sc, &src, &format!("k{i}"), vid).await.as_deref(), Some("PENDING"));
    }
    regions[1].restart();
    for (i, vid) in ids.iter().enumerate() {
        wait_completed(&sc, &src, &format!("k{i}"), vid).await;
    }
    let dc = regions[1].client();
    wait_same_versions(&sc, &src, &dc, &dst).await;
}

/// Design invariant 3 (the source never waits for a destination), STS-5: with the destination
/// frozen (SIGSTOP: its port still accepts connections, nothing answers), source PUTs are
/// acknowledged as usual and stay PENDING; after SIGCONT every version arrives.
#[tokio::test]
async fn sts5_a_frozen_destination_delays_replication_but_not_writes() {
    let (regions, sc, dc, src, dst) = pair("frozen", false).await;
    regions[1].signal("STOP");
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = vec![b'f'; if i % 2 == 0 { 5000 } else { 300_000 }];
        ids.push(put(&sc, &src, &format!("k{i}"), &body).await.version_id().expect("vid").to_owned());
    }
    for (i, vid) in ids.iter().enumerate() {
        assert_eq!(status(&sc, &src, &format!("k{i}"), vid).await.as_deref(), Some("PENDING"));
    }
    regions[1].signal("CONT");
    for (i, vid) in ids.iter().enumerate() {
        wait_completed(&sc, &src, &format!("k{i}"), vid).await;
    }
    wait_same_versions(&sc, &src, &dc, &dst).await;
}

/// Invariant 2, IMPL-1, CON-3: the source is SIGKILLed with a backlog; after a restart every
/// acknowledged version reaches the destination exactly once (the version lists are equal).
#[tokio::test]
async fn impl1_source_killed_mid_backlog_loses_nothing() {
    let (mut regions, sc, _, src, dst) = pair("crash", false).await;
    let mut acked = Vec::new();
    for i in 0..40 {
        let key = format!("k{}", i % 7);
        acked.push(put(&sc, &src, &key, format!("body {i}").as_bytes()).await.version_id().expect("vid").to_owned());
        if i == 20 {
            // From here on the backlog can only grow: the destination is gone.
            regions[1].kill();
        }
    }
    regions[0].kill();
    regions[0].restart();
    regions[1].restart();
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let versions = wait_same_versions(&sc, &src, &dc, &dst).await;
    assert_eq!(versions.len(), acked.len());
    let mut listed: Vec<String> = versions.into_iter().map(|v| v.1).collect();
    listed.sort();
    acked.sort();
    assert_eq!(listed, acked);
}

/// ELI-21, CON-7, IAM-8: a destination whose versioning was suspended after the configuration
/// makes replication FAILED (`DstBucketUnversioned`), not stuck PENDING.
#[tokio::test]
async fn con7_unversioned_destination_fails_the_version() {
    let (_regions, sc, dc, src, dst) = pair("unver", false).await;
    set_versioning(&dc, &dst, aws_sdk_s3::types::BucketVersioningStatus::Suspended).await;
    let vid = put(&sc, &src, "k", b"x").await.version_id().expect("vid").to_owned();
    eventually("FAILED", || async { (status(&sc, &src, "k", &vid).await.as_deref() == Some("FAILED")).then_some(()) })
        .await;
    expect_error(dc.head_object().bucket(&dst).key("k").send().await, 404, None);
}

/// CON-7, destination resolution: a destination bucket deleted in its region and created again
/// in another is found there, by the batch path and the streamed path alike, although the
/// source had its old region cached; only a bucket no region has fails the version.
#[tokio::test]
async fn con7_a_destination_bucket_that_moved_region_is_found_again() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (sc, bc, cc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let src = create_versioned_bucket(&sc, "moved-src").await;
    let dst = create_versioned_bucket(&bc, "moved-dst").await;
    configure(&sc, &src, &dst, false).await;
    let first = put(&sc, &src, "before", b"x").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "before", &first).await;

    // Move the bucket: empty it and delete it in eu-west-1, create it in ap-south-1.
    bc.delete_object().bucket(&dst).key("before").version_id(&first).send().await.expect("delete replica");
    bc.delete_bucket().bucket(&dst).send().await.expect("delete destination");
    cc.create_bucket().bucket(&dst).send().await.expect("create destination again");
    set_versioning(&cc, &dst, aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    let large = vec![b'l'; 100 * 1024];
    let small_vid = put(&sc, &src, "small", b"after").await.version_id().expect("vid").to_owned();
    let large_vid = put(&sc, &src, "large", &large).await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "small", &small_vid).await;
    wait_completed(&sc, &src, "large", &large_vid).await;
    assert_eq!(get_body(&cc, &dst, "small", Some(&small_vid)).await, b"after");
    assert_eq!(get_body(&cc, &dst, "large", Some(&large_vid)).await, large);

    // Gone from every region: the version fails with DstBucketNotFound.
    for (key, vid) in [("small", &small_vid), ("large", &large_vid)] {
        cc.delete_object().bucket(&dst).key(key).version_id(vid).send().await.expect("delete replica");
    }
    cc.delete_bucket().bucket(&dst).send().await.expect("delete destination");
    let gone = put(&sc, &src, "gone", b"nowhere").await.version_id().expect("vid").to_owned();
    eventually("FAILED", || async {
        (status(&sc, &src, "gone", &gone).await.as_deref() == Some("FAILED")).then_some(())
    })
    .await;
}

/// The replica protocol on the wire (docs/replication.md): idempotent by version id, ordered
/// by the source's creation stamp (STS-15), verifying the ETag, refused on an unversioned
/// bucket; without the header a client cannot choose a version id (design invariant 5).
#[tokio::test]
async fn sts15_replica_protocol_is_idempotent_ordered_and_verified() {
    let regions = TestRegion::start_many(&["us-east-1"]);
    let r = &regions[0];
    let c = r.client();
    // Two real version ids (older, newer) from a scratch bucket.
    let scratch = create_versioned_bucket(&c, "scratch").await;
    let old = put(&c, &scratch, "k", b"old").await.version_id().expect("vid").to_owned();
    let new = put(&c, &scratch, "k", b"new").await.version_id().expect("vid").to_owned();
    let dst = create_versioned_bucket(&c, "wire").await;
    let send = |version: String, body: &'static [u8], etag: String| {
        let path = format!("/{dst}/k");
        async move {
            let headers = [
                ("x-xregion-replica", "1"),
                ("x-xregion-source-version-id", version.as_str()),
                ("x-xregion-source-last-modified", "1700000000123"),
                ("x-xregion-source-etag", etag.as_str()),
                ("content-type", "text/plain"),
            ];
            r.signed("PUT", &path, &headers, body).await
        }
    };
    // The newer version first, then the older one: the newer stays current.
    assert_eq!(send(new.clone(), b"new", md5_hex(b"new")).await.status, 200);
    assert_eq!(send(old.clone(), b"old", md5_hex(b"old")).await.status, 200);
    // A replay is a no-op.
    assert_eq!(send(new.clone(), b"new", md5_hex(b"new")).await.status, 200);
    let versions = all_versions(&c, &dst).await;
    let ids: Vec<(&str, bool)> = versions.iter().map(|v| (v.1.as_str(), v.2)).collect();
    assert_eq!(ids, [(new.as_str(), true), (old.as_str(), false)]);
    assert_eq!(get_body(&c, &dst, "k", None).await, b"new");
    let head = c.head_object().bucket(&dst).key("k").version_id(&old).send().await.expect("head");
    assert_eq!(head.replication_status().map(|s| s.as_str()), Some("REPLICA"));
    assert_eq!(head.last_modified().and_then(|t| t.to_millis().ok()), Some(1_700_000_000_000));
    // Bytes that do not match the source ETag are refused (and retried by the source).
    let scratch2 = put(&c, &scratch, "k2", b"x").await.version_id().expect("vid").to_owned();
    let bad = send(scratch2, b"tampered", md5_hex(b"original")).await;
    assert_eq!((bad.status, bad.error_code().as_deref()), (400, Some("BadDigest")));
    // An unversioned destination refuses replicas (the source records DstBucketUnversioned).
    let plain = create_bucket(&c, "plain").await;
    let path = format!("/{plain}/k");
    let headers = [
        ("x-xregion-replica", "1"),
        ("x-xregion-source-version-id", new.as_str()),
        ("x-xregion-source-last-modified", "1"),
        ("x-xregion-source-etag", "e"),
    ];
    let refused = r.signed("PUT", &path, &headers, b"").await;
    assert_eq!((refused.status, refused.error_code().as_deref()), (409, Some("InvalidBucketState")));
}

/// TWO-8 on the wire: a replicated tag change (`PUT ?tagging` with the replica headers) is
/// applied only if its `x-xregion-tags-changed-ms` is later than the stored tag set's time; an
/// older one is acknowledged and changes nothing; a malformed time is refused.
#[tokio::test]
async fn two8_replicated_tag_changes_keep_the_newer_tag_set() {
    let regions = TestRegion::start_many(&["us-east-1"]);
    let r = &regions[0];
    let c = r.client();
    let scratch = create_versioned_bucket(&c, "scratch").await;
    let vid = put(&c, &scratch, "k", b"x").await.version_id().expect("vid").to_owned();
    let dst = create_versioned_bucket(&c, "lww").await;
    let created = [
        ("x-xregion-replica", "1"),
        ("x-xregion-source-version-id", vid.as_str()),
        ("x-xregion-source-last-modified", "1700000000000"),
        ("x-xregion-source-etag", &md5_hex(b"x")),
    ];
    assert_eq!(r.signed("PUT", &format!("/{dst}/k"), &created, b"x").await.status, 200);
    let tag = |value: &'static str, changed: &'static str| {
        let path = format!("/{dst}/k?tagging&versionId={vid}");
        let vid = vid.clone();
        async move {
            let headers = [
                ("x-xregion-replica", "1"),
                ("x-xregion-source-version-id", vid.as_str()),
                ("x-xregion-source-last-modified", "1700000000000"),
                ("x-xregion-tags-changed-ms", changed),
            ];
            let body = format!("<Tagging><TagSet><Tag><Key>v</Key><Value>{value}</Value></Tag></TagSet></Tagging>");
            r.signed("PUT", &path, &headers, body.as_bytes()).await
        }
    };
    let tags = || async {
        let out = c.get_object_tagging().bucket(&dst).key("k").version_id(&vid).send().await.expect("tags");
        out.tag_set().iter().map(|t| t.value().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(tag("newer", "1700000002000").await.status, 200);
    assert_eq!(tags().await, ["newer"]);
    // Made earlier at its origin (it crossed the newer change): acknowledged, no effect.
    assert_eq!(tag("older", "1700000001000").await.status, 200);
    assert_eq!(tags().await, ["newer"]);
    let bad = tag("bad", "soon").await;
    assert_eq!((bad.status, bad.error_code().as_deref()), (400, Some("InvalidArgument")));
    assert_eq!(tags().await, ["newer"]);
}

/// Invariant 3: a third region being down (one the source would ask first when looking up the
/// destination bucket) does not stop replication to a region that is up.
#[tokio::test]
async fn inv3_an_unrelated_region_down_does_not_block_replication() {
    let mut regions = TestRegion::start_many(&["us-east-1", "ap-south-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[2].client());
    let src = create_versioned_bucket(&sc, "third-src").await;
    let dst = create_versioned_bucket(&dc, "third-dst").await;
    configure(&sc, &src, &dst, false).await;
    regions[1].kill();
    let vid = put(&sc, &src, "k", b"x").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "k", &vid).await;
    assert_eq!(get_body(&dc, &dst, "k", Some(&vid)).await, b"x");
}

/// IMPL-2 over the batch endpoint (`POST /_xregion/replicate/<bucket>`): every entry is applied
/// like its single-object replica write and answered on its own line: a good version, a
/// replay (no-op), bytes that do not match the ETag (`BadDigest`, nothing stored), a delete
/// marker with the source id. A framing error refuses the whole batch; anonymous callers are
/// refused (design invariant 5).
#[tokio::test]
async fn impl2_batch_entries_are_applied_and_answered_one_by_one() {
    use bytes::Bytes;
    use xregion_core::objects::ObjectMeta;
    use xregion_core::replica_batch::{BatchEntry, BatchObject, EntryResult, decode_results, encode};

    let regions = TestRegion::start_many(&["us-east-1"]);
    let r = &regions[0];
    let c = r.client();
    let scratch = create_versioned_bucket(&c, "scratch").await;
    let id = |out: aws_sdk_s3::operation::put_object::PutObjectOutput| out.version_id().expect("vid").to_owned();
    let (v1, v2) = (id(put(&c, &scratch, "a", b"1").await), id(put(&c, &scratch, "b", b"2").await));
    let marker = c.delete_object().bucket(&scratch).key("a").send().await.expect("marker");
    let marker = marker.version_id().expect("marker id").to_owned();
    let dst = create_versioned_bucket(&c, "batch").await;
    let object = |key: &str, version: &str, etag: String| BatchEntry {
        key: key.into(),
        version_id: version.into(),
        last_modified_ms: 1_700_000_000_000,
        object: Some(BatchObject {
            etag,
            meta: ObjectMeta {
                content_type: Some("text/plain".into()),
                tags: vec![("t".into(), "v".into())],
                ..ObjectMeta::default()
            },
            ..BatchObject::default()
        }),
    };
    let batch = encode(&[
        (object("a", &v1, md5_hex(b"1")), Bytes::from_static(b"1")),
        (object("a", &v1, md5_hex(b"1")), Bytes::from_static(b"1")),
        (object("b", &v2, md5_hex(b"original")), Bytes::from_static(b"tampered")),
        (
            BatchEntry {
                key: "a".into(),
                version_id: marker.clone(),
                last_modified_ms: 1_700_000_000_001,
                object: None,
            },
            Bytes::new(),
        ),
    ]);
    let path = format!("/_xregion/replicate/{dst}");
    let resp = r.signed("POST", &path, &[], &batch).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let results = decode_results(&String::from_utf8_lossy(&resp.body)).expect("result lines");
    assert_eq!(results.len(), 4);
    assert_eq!(&results[..2], &[EntryResult::Ok, EntryResult::Ok]);
    assert!(matches!(&results[2], EntryResult::Err { status: 400, code, .. } if code == "BadDigest"), "{results:?}");
    assert_eq!(results[3], EntryResult::Ok);

    let versions = all_versions(&c, &dst).await;
    let listed: Vec<(&str, &str, bool)> = versions.iter().map(|v| (v.0.as_str(), v.1.as_str(), v.3)).collect();
    assert_eq!(listed, [("a", marker.as_str(), true), ("a", v1.as_str(), false)], "b was refused");
    let head = c.head_object().bucket(&dst).key("a").version_id(&v1).send().await.expect("head replica");
    assert_eq!(head.replication_status().map(|s| s.as_str()), Some("REPLICA"));
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.e_tag(), Some(format!("\"{}\"", md5_hex(b"1")).as_str()));

    // ELI-21: a destination that is not versioned, or missing, fails every entry alike.
    let plain = create_bucket(&c, "plain").await;
    for (bucket, status, wanted) in [(plain.as_str(), 409, "InvalidBucketState"), ("nosuch", 404, "NoSuchBucket")] {
        let batch = encode(&[
            (object("a", &v1, md5_hex(b"1")), Bytes::from_static(b"1")),
            (
                BatchEntry { key: "a".into(), version_id: marker.clone(), last_modified_ms: 1, object: None },
                Bytes::new(),
            ),
        ]);
        let resp = r.signed("POST", &format!("/_xregion/replicate/{bucket}"), &[], &batch).await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let results = decode_results(&String::from_utf8_lossy(&resp.body)).expect("result lines");
        assert_eq!(results.len(), 2);
        for result in &results {
            assert!(
                matches!(result, EntryResult::Err { status: s, code, .. } if *s == status && code == wanted),
                "{bucket}: {results:?}"
            );
        }
    }
    assert!(all_versions(&c, &plain).await.is_empty());

    let garbage = r.signed("POST", &path, &[], b"XRB1\x00\x00\x00\x09oops").await;
    assert_eq!((garbage.status, garbage.error_code().as_deref()), (400, Some("InvalidRequest")));
    let anonymous = r.anonymous("POST", &path).await;
    assert_eq!((anonymous.status, anonymous.error_code().as_deref()), (403, Some("AccessDenied")));
}

/// Invariant 2, STS-5, TWO-8's convergence under chaos: while a client writes (objects of 100
/// bytes to 1.5 MB), changes tags and deletes, the destination and then the source are SIGKILLed
/// and restarted again and again. Afterwards the destination holds exactly the source's
/// versions and delete markers, every acknowledged PUT among them, every source version reads
/// COMPLETED and every replica has its source's tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_repeated_kills_of_either_region_lose_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (mut regions, sc, _dc, src, dst) = pair("chaos", true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sc, src, stop) = (sc.clone(), src.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if i > 700 {
                    // Enough for one page of versions; wait for the chaos to end.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                let key = format!("k{}", rand::random::<u32>() % 12);
                let roll = rand::random::<u32>() % 100;
                if roll < 8 {
                    let _ = sc.delete_object().bucket(&src).key(&key).send().await;
                } else if roll < 18 {
                    let tags = Tagging::builder()
                        .tag_set(Tag::builder().key("round").value(i.to_string()).build().expect("tag"))
                        .build()
                        .expect("tagging");
                    let _ = sc.put_object_tagging().bucket(&src).key(&key).tagging(tags).send().await;
                } else {
                    let size = [100usize, 4096, 70_000, 1_500_000][(roll % 4) as usize];
                    let body = ByteStream::from(vec![(i % 251) as u8; size]);
                    if let Ok(out) = sc.put_object().bucket(&src).key(&key).body(body).send().await {
                        acked.push((key, out.version_id().expect("vid").to_owned()));
                    }
                }
            }
            acked
        })
    };
    for round in 0..8 {
        let victim = usize::from(round >= 4); // the destination four times, then the source
        regions = kill_and_restart(regions, victim, 300, 900).await;
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer");
    assert!(acked.len() > 20, "the writer got through: {} PUTs", acked.len());

    let (sc, dc) = (regions[0].client(), regions[1].client());
    let versions = wait_same_versions(&sc, &src, &dc, &dst).await;
    eprintln!("chaos: {} acknowledged PUTs, {} versions and markers on both sides", acked.len(), versions.len());
    let listed: std::collections::HashSet<(String, String)> =
        versions.iter().map(|(k, v, _, _)| (k.clone(), v.clone())).collect();
    for (key, vid) in &acked {
        assert!(listed.contains(&(key.clone(), vid.clone())), "acknowledged {key} {vid} is missing");
    }
    for (key, vid, _, marker) in &versions {
        if *marker {
            continue;
        }
        wait_completed(&sc, &src, key, vid).await;
        let tags = |c: &Client, b: &str| {
            let (c, b, key, vid) = (c.clone(), b.to_owned(), key.clone(), vid.clone());
            async move {
                let out = c.get_object_tagging().bucket(b).key(key).version_id(vid).send().await.expect("tags");
                out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect::<Vec<_>>()
            }
        };
        let want = tags(&sc, &src).await;
        eventually(&format!("tags of {key} {vid}"), || {
            let (dc, dst, want) = (dc.clone(), dst.clone(), want.clone());
            let fetch = tags(&dc, &dst);
            async move {
                let _ = (&dc, &dst);
                (fetch.await == want).then_some(())
            }
        })
        .await;
    }
}
