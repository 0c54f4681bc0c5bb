//! Replication to a bucket of another S3 service (`[[targets]]`, docs/replication.md,
//! *Backing up to another S3 service*). The other service here is a second xregion
//! deployment that is not a peer: the source reaches it with the plain S3 API only, so the
//! copies are the target's own versions, carrying the source version id as metadata.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption, Tag, Tagging};

use crate::common::*;
use crate::replication::{DEADLINE, configure, eventually, wait_completed};

/// The target's metadata entry naming the source version.
const SOURCE_VERSION: &str = "xregion-source-version-id";

/// A `[[targets]]` configuration file for `bucket` at `endpoint`.
fn write_target_config(dir: &Path, bucket: &str, endpoint: &str, access_key: &str, secret_key: &str) -> String {
    let path = dir.join("region.toml");
    let text = format!(
        "[[targets]]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"eu-central-1\"\n\
         access_key = \"{access_key}\"\nsecret_key = \"{secret_key}\"\npath_style = true\n"
    );
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

/// A backup deployment (one region, no peers) with a versioned bucket, and a source region
/// configured with that bucket as an external target.
struct Setup {
    backup: TestRegion,
    source: TestRegion,
    bc: Client,
    sc: Client,
    target: String,
    _config: tempfile::TempDir,
}

async fn setup(stem: &str) -> Setup {
    let backup = TestRegion::start("eu-central-1", &[]);
    let bc = backup.client();
    let target = create_versioned_bucket(&bc, &format!("{stem}-backup")).await;
    let config = tempfile::tempdir().expect("temp dir");
    let path = write_target_config(config.path(), &target, &backup.endpoint(), ACCESS_KEY, SECRET_KEY);
    let source = TestRegion::start_with("us-east-1", &[], &["--config", &path]);
    let sc = source.client();
    Setup { backup, source, bc, sc, target, _config: config }
}

/// The target's versions of `key`, newest first: (version id, source version id, ETag);
/// delete markers have no source version id and no ETag.
async fn target_versions(bc: &Client, bucket: &str, key: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let listed = bc.list_object_versions().bucket(bucket).prefix(key).send().await.expect("list versions");
    let mut all = Vec::new();
    for v in listed.versions().iter().filter(|v| v.key() == Some(key)) {
        let id = v.version_id().expect("version id").to_owned();
        let head = bc.head_object().bucket(bucket).key(key).version_id(&id).send().await.expect("head copy");
        let source = head.metadata().and_then(|m| m.get(SOURCE_VERSION)).cloned();
        all.push((id, source, v.e_tag().map(|e| unquote(e).to_owned())));
    }
    for m in listed.delete_markers().iter().filter(|m| m.key() == Some(key)) {
        all.push((m.version_id().expect("marker id").to_owned(), None, None));
    }
    all
}

/// A configuration with one whole-bucket rule to `dst`.
fn to(dst: &str) -> aws_sdk_s3::types::ReplicationConfiguration {
    let rule = crate::replication::whole_bucket_rule("r", 1, dst, false).build().expect("rule");
    aws_sdk_s3::types::ReplicationConfiguration::builder()
        .role("arn:aws:iam::123456789012:role/replication")
        .rules(rule)
        .build()
        .expect("config")
}

/// The message of an error answer.
fn message<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    err.message().unwrap_or_default().to_owned()
}

async fn tags_of(client: &Client, bucket: &str, key: &str, version: &str) -> Vec<(String, String)> {
    let out = client.get_object_tagging().bucket(bucket).key(key).version_id(version).send().await.expect("tags");
    let mut tags: Vec<(String, String)> =
        out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    tags.sort();
    tags
}

/// Versions, metadata, tags, a multipart ETag, a delete marker and a tag change reach a bucket
/// of another S3 service; the source reads COMPLETED; the target's name cannot be taken by a
/// bucket of the deployment.
#[tokio::test]
async fn versions_markers_and_tag_changes_reach_another_s3_service() {
    let s = setup("ext").await;
    round_trip(&s.source, &s.bc, &s.target).await;
}

/// The same against moto's S3 server, an implementation that is not xregion's.
#[tokio::test]
async fn versions_markers_and_tag_changes_reach_moto() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let mc = sdk_client(&moto.endpoint, "eu-central-1", "moto-access", "moto-secret");
    let target = bucket_name("ext-moto");
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
        .build();
    mc.create_bucket().bucket(&target).create_bucket_configuration(location).send().await.expect("create on moto");
    set_versioning(&mc, &target, BucketVersioningStatus::Enabled).await;
    let config = tempfile::tempdir().expect("temp dir");
    let path = write_target_config(config.path(), &target, &moto.endpoint, "moto-access", "moto-secret");
    let source = TestRegion::start_with("us-east-1", &[], &["--config", &path]);
    round_trip(&source, &mc, &target).await;
}

/// moto's S3 server (`python3 -m moto.server`) on a free loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    /// Starts it, or returns `None` (after saying why) when moto is not installed; under
    /// `CI=true`, where `.ci/run` installs it, its absence fails the test.
    fn start_or_skip() -> Option<Self> {
        let available = std::process::Command::new("python3")
            .args(["-c", "import moto.server, flask"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            let msg = "needs python3 with moto's server (pip install 'moto[server]')";
            assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{msg}, and CI=true requires it");
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn moto");
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives `source` (configured with `target` as an external target) and checks the copies
/// with `bc`, a client of the target's service.
async fn round_trip(source: &TestRegion, bc: &Client, target: &str) {
    let sc = &source.client();
    // A name in a rule means one place.
    let taken = sc.create_bucket().bucket(target).send().await;
    expect_error(taken, 409, Some("BucketAlreadyExists"));
    let src = create_versioned_bucket(sc, "ext-src").await;
    // Written before the configuration: left to batch replication (ELI-1).
    let old = put(sc, &src, "old/k", b"before the rule").await.version_id.expect("version id");
    configure(sc, &src, target, true).await;
    let newer = put(sc, &src, "old/k", b"after the rule").await.version_id.expect("version id");

    let first = sc
        .put_object()
        .bucket(&src)
        .key("docs/a.txt")
        .body(ByteStream::from_static(b"first"))
        .content_type("text/plain")
        .cache_control("max-age=60")
        .metadata("colour", "blue")
        .tagging("team=storage")
        .send()
        .await
        .expect("put first");
    let second = put(sc, &src, "docs/a.txt", b"second").await;
    let big_head = vec![b'x'; 5 * 1024 * 1024];
    let big = multipart_put(sc, &src, "big", (&big_head, b"tail"), None).await;
    let gone = put(sc, &src, "gone", b"soon deleted").await;
    let marker = sc.delete_object().bucket(&src).key("gone").send().await.expect("delete");
    let ids = |v: Option<&str>| v.expect("version id").to_owned();
    let (first_id, second_id, big_id, gone_id) =
        (ids(first.version_id()), ids(second.version_id()), ids(big.version_id()), ids(gone.version_id()));
    for (key, id) in [("docs/a.txt", &first_id), ("docs/a.txt", &second_id), ("big", &big_id), ("gone", &gone_id)] {
        wait_completed(sc, &src, key, id).await;
    }
    // A tag change on an older version reaches its copy, which is not the current one.
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("backup").build().expect("tag"))
        .build()
        .expect("tagging");
    sc.put_object_tagging()
        .bucket(&src)
        .key("docs/a.txt")
        .version_id(&first_id)
        .tagging(tagging)
        .send()
        .await
        .expect("retag");

    // One copy per source version, newest first, with the source's ETags.
    let copies = target_versions(bc, target, "docs/a.txt").await;
    let sources: Vec<Option<&str>> = copies.iter().map(|c| c.1.as_deref()).collect();
    assert_eq!(sources, [Some(second_id.as_str()), Some(first_id.as_str())]);
    assert_eq!(copies[0].2.as_deref(), Some(md5_hex(b"second").as_str()));
    assert_eq!(copies[1].2.as_deref(), Some(md5_hex(b"first").as_str()));
    let first_copy = &copies[1].0;
    assert_ne!(first_copy, &first_id, "the target names its own versions");
    let head = bc.head_object().bucket(target).key("docs/a.txt").version_id(first_copy).send().await.expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(metadata.get("xregion-source-region").map(String::as_str), Some("us-east-1"));
    assert!(metadata.contains_key("xregion-source-last-modified"), "{metadata:?}");
    assert_eq!(get_body(bc, target, "docs/a.txt", Some(first_copy)).await, b"first");
    eventually("the tag change on the copy", || async {
        let tags = tags_of(bc, target, "docs/a.txt", first_copy).await;
        (tags == [("team".to_owned(), "backup".to_owned())]).then_some(())
    })
    .await;
    // STS-7: tag changes leave the status as it was.
    wait_completed(sc, &src, "docs/a.txt", &first_id).await;

    // The multipart version keeps its ETag and bytes.
    let big_copies = target_versions(bc, target, "big").await;
    assert_eq!(big_copies.len(), 1, "{big_copies:?}");
    assert_eq!(big_copies[0].1.as_deref(), Some(big_id.as_str()));
    assert_eq!(big_copies[0].2.as_deref(), big.e_tag().map(unquote));
    let mut whole = big_head.clone();
    whole.extend_from_slice(b"tail");
    assert_eq!(get_body(bc, target, "big", None).await, whole);

    // ELI-7: a version encrypted at rest is written encrypted (AES256) on the target too.
    let sealed = sc
        .put_object()
        .bucket(&src)
        .key("sealed")
        .body(ByteStream::from_static(b"encrypted at rest"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("put encrypted");
    wait_completed(sc, &src, "sealed", sealed.version_id().expect("version id")).await;
    let head = bc.head_object().bucket(target).key("sealed").send().await.expect("head encrypted copy");
    assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(head.e_tag(), sealed.e_tag());
    assert_eq!(get_body(bc, target, "sealed", None).await, b"encrypted at rest");

    // The delete marker became the target's own marker above the copy.
    assert!(marker.delete_marker().unwrap_or_default());
    let gone_copies = eventually("the delete marker on the target", || async {
        let v = target_versions(bc, target, "gone").await;
        (v.len() == 2).then_some(v)
    })
    .await;
    assert!(gone_copies.iter().any(|c| c.1.as_deref() == Some(gone_id.as_str())), "{gone_copies:?}");
    let current = bc.head_object().bucket(target).key("gone").send().await;
    expect_error(current, 404, None);

    // Batch replication back-fills the version from before the rule, under the newer copy,
    // and sends nothing twice, however often it runs (statuses NONE, then COMPLETED).
    wait_completed(sc, &src, "old/k", &newer).await;
    for statuses in ["NONE", "COMPLETED"] {
        let path = format!("/_xregion/batch-replication/{src}?statuses={statuses}");
        let resp = source.signed("POST", &path, &[], b"").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        drained(source).await;
    }
    wait_completed(sc, &src, "old/k", &old).await;
    let history = target_versions(bc, target, "old/k").await;
    let held: Vec<Option<&str>> = history.iter().map(|c| c.1.as_deref()).collect();
    // Newest first: the newer version put back on top, the back-filled one, the first copy.
    assert_eq!(held, [Some(newer.as_str()), Some(old.as_str()), Some(newer.as_str())], "{history:?}");
    assert_eq!(get_body(bc, target, "old/k", None).await, b"after the rule");
    let again = target_versions(bc, target, "docs/a.txt").await;
    assert_eq!(
        again.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
        copies.iter().map(|c| c.1.clone()).collect::<Vec<_>>()
    );
    assert_eq!(target_versions(bc, target, "big").await.len(), 1);
    assert_eq!(target_versions(bc, target, "gone").await.len(), 2);
    // The report names the target as another service's bucket.
    let resp = source.signed("GET", "/_xregion/replication", &[], b"").await;
    let report: serde_json::Value = serde_json::from_slice(&resp.body).expect("report is JSON");
    assert!(report["targets"][target].as_str().is_some_and(|e| e.starts_with("http://127.0.0.1:")), "{report}");
}

/// Waits until the region's outbox is empty.
async fn drained(region: &TestRegion) {
    eventually("the outbox to drain", || async {
        let resp = region.signed("GET", "/_xregion/replication", &[], b"").await;
        let report: serde_json::Value = serde_json::from_slice(&resp.body).expect("report is JSON");
        (report["pending_operations"].as_u64() == Some(0)).then_some(())
    })
    .await;
}

/// VAL-3 against another S3 service: its bucket must exist with versioning Enabled, asked
/// with the target's own credentials; a target that cannot be reached is a 503.
#[tokio::test]
async fn val3_external_destination_is_checked_with_its_credentials() {
    let backup = TestRegion::start("eu-central-1", &[]);
    let bc = backup.client();
    let unversioned = create_bucket(&bc, "ext-plain").await;
    let versioned = create_versioned_bucket(&bc, "ext-good").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Four targets: unversioned, a bad secret, missing on the service, and a service down.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let entries = [
        (unversioned.as_str(), backup.endpoint(), SECRET_KEY),
        (versioned.as_str(), backup.endpoint(), "not-the-secret"),
        ("ext-missing-on-target", backup.endpoint(), SECRET_KEY),
        ("ext-down", dead, SECRET_KEY),
    ];
    let mut text = String::new();
    for (bucket, endpoint, secret) in &entries {
        text.push_str(&format!(
            "[[targets]]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\naccess_key = \"{ACCESS_KEY}\"\n\
             secret_key = \"{secret}\"\npath_style = true\n"
        ));
    }
    let path = dir.path().join("region.toml");
    std::fs::write(&path, text).expect("write config");
    let source = TestRegion::start_with("us-east-1", &[], &["--config", &path.to_string_lossy()]);
    let sc = source.client();
    let src = create_versioned_bucket(&sc, "ext-val3").await;
    let attempt = |dst: &str| sc.put_bucket_replication().bucket(&src).replication_configuration(to(dst)).send();
    let err = expect_error(attempt(&unversioned).await, 400, Some("InvalidRequest"));
    assert_eq!(message(&err), "Destination bucket must have versioning enabled.");
    let err = expect_error(attempt(&versioned).await, 400, Some("InvalidRequest"));
    assert!(message(&err).contains("refused"), "{}", message(&err));
    let err = expect_error(attempt("ext-missing-on-target").await, 400, Some("InvalidRequest"));
    assert!(message(&err).contains("does not exist"), "{}", message(&err));
    expect_error(attempt("ext-down").await, 503, None);
    // Nothing was stored by the refusals.
    let stored = sc.get_bucket_replication().bucket(&src).send().await;
    expect_error(stored, 404, Some("ReplicationConfigurationNotFoundError"));
    // Once the bucket is versioned, the same configuration is accepted.
    set_versioning(&bc, &unversioned, BucketVersioningStatus::Enabled).await;
    attempt(&unversioned).await.expect("accepted once versioned");
}

/// `unversioned = true`: a bucket without versioning (as on a service that has none) is
/// accepted as a destination and keeps the source's newest state: the newest version of each
/// key with its tags, no key whose newest version is a delete marker. Back-fill sends only
/// the keys' current versions (an older one would replace the newer), and again sends nothing.
/// Its HEAD-based check: a missing bucket is still refused.
#[tokio::test]
async fn an_unversioned_target_keeps_the_newest_version_of_each_key() {
    let backup = TestRegion::start("eu-central-1", &[]);
    let bc = backup.client();
    let target = create_bucket(&bc, "ext-unversioned").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::new();
    for bucket in [target.as_str(), "ext-unversioned-missing"] {
        text.push_str(&format!(
            "[[targets]]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\naccess_key = \"{ACCESS_KEY}\"\n\
             secret_key = \"{SECRET_KEY}\"\npath_style = true\nunversioned = true\n",
            backup.endpoint()
        ));
    }
    let path = dir.path().join("region.toml");
    std::fs::write(&path, text).expect("write config");
    let source = TestRegion::start_with("us-east-1", &[], &["--config", &path.to_string_lossy()]);
    let sc = source.client();
    let src = create_versioned_bucket(&sc, "ext-unv-src").await;
    let missing = sc.put_bucket_replication().bucket(&src).replication_configuration(to("ext-unversioned-missing"));
    let err = expect_error(missing.send().await, 400, Some("InvalidRequest"));
    assert!(message(&err).contains("does not exist"), "{}", message(&err));

    // Before the rule (ELI-1, left to back-fill): two versions of one key, a key deleted since.
    let old_first = put(&sc, &src, "old", b"old one").await.version_id.expect("vid");
    let old_second = put(&sc, &src, "old", b"old two").await.version_id.expect("vid");
    put(&sc, &src, "dead", b"deleted before the rule").await;
    sc.delete_object().bucket(&src).key("dead").send().await.expect("delete");
    configure(&sc, &src, &target, true).await;

    let live_first = put(&sc, &src, "live", b"live one").await.version_id.expect("vid");
    let live_second = put(&sc, &src, "live", b"live two").await.version_id.expect("vid");
    let gone = put(&sc, &src, "gone", b"soon deleted").await.version_id.expect("vid");
    sc.delete_object().bucket(&src).key("gone").send().await.expect("delete");
    for (key, id) in [("live", &live_first), ("live", &live_second), ("gone", &gone)] {
        wait_completed(&sc, &src, key, id).await;
    }
    // The marker's own task (a marker has no status to read).
    drained(&source).await;
    assert_eq!(get_body(&bc, &target, "live", None).await, b"live two");
    let head = bc.head_object().bucket(&target).key("live").send().await.expect("head live");
    assert_eq!(head.metadata().and_then(|m| m.get(SOURCE_VERSION)), Some(&live_second));
    expect_error(bc.head_object().bucket(&target).key("gone").send().await, 404, None);

    // Tag changes: the version the key holds gets them; an older one completes without effect.
    let retag = |version: &str, value: &str| {
        let tag = Tag::builder().key("team").value(value).build().expect("tag");
        let tagging = Tagging::builder().tag_set(tag).build().expect("tagging");
        sc.put_object_tagging().bucket(&src).key("live").version_id(version).tagging(tagging).send()
    };
    retag(&live_first, "old-version").await.expect("retag older");
    retag(&live_second, "backup").await.expect("retag newest");
    drained(&source).await;
    let tags = bc.get_object_tagging().bucket(&target).key("live").send().await.expect("target tags");
    let tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [("team", "backup")]);
    let failures = source.signed("GET", "/_xregion/replication/failures", &[], b"").await.text();
    assert!(!failures.contains("live"), "a tag change of a version the target no longer holds failed: {failures}");

    // Back-fill, twice: only the current version of `old` is sent; `dead` stays absent.
    for statuses in ["NONE", "COMPLETED"] {
        let resp =
            source.signed("POST", &format!("/_xregion/batch-replication/{src}?statuses={statuses}"), &[], b"").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        drained(&source).await;
    }
    wait_completed(&sc, &src, "old", &old_first).await;
    wait_completed(&sc, &src, "old", &old_second).await;
    assert_eq!(get_body(&bc, &target, "old", None).await, b"old two");
    let head = bc.head_object().bucket(&target).key("old").send().await.expect("head old");
    assert_eq!(head.metadata().and_then(|m| m.get(SOURCE_VERSION)), Some(&old_second));
    expect_error(bc.head_object().bucket(&target).key("dead").send().await, 404, None);
    assert_eq!(get_body(&bc, &target, "live", None).await, b"live two");
    let listed = bc.list_objects_v2().bucket(&target).send().await.expect("list target");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["live", "old"]);
}

/// Faults: the target down (versions stay PENDING, then arrive), and the source SIGKILLed
/// with a backlog; afterwards the target holds every acknowledged version exactly once.
#[tokio::test]
async fn target_outage_and_source_crash_lose_nothing_and_send_once() {
    let mut s = setup("ext-fault").await;
    let src = create_versioned_bucket(&s.sc, "ext-fault-src").await;
    configure(&s.sc, &src, &s.target, true).await;
    s.backup.kill();
    let mut written = Vec::new();
    for i in 0..40 {
        let key = format!("k{}", i % 7);
        let out = put(&s.sc, &src, &key, format!("body {i}").as_bytes()).await;
        written.push((key, out.version_id().expect("version id").to_owned()));
    }
    let (key, id) = &written[0];
    let pending = crate::replication::status(&s.sc, &src, key, id).await;
    assert_eq!(pending.as_deref(), Some("PENDING"));
    // The source crashes with the whole backlog queued, and the target comes back.
    s.source.restart();
    s.backup.restart();
    s.sc = s.source.client();
    for i in 40..60 {
        let key = format!("k{}", i % 7);
        let out = put(&s.sc, &src, &key, format!("body {i}").as_bytes()).await;
        written.push((key, out.version_id().expect("version id").to_owned()));
    }
    // Kill the source again while the backlog drains.
    s.source.restart();
    s.sc = s.source.client();
    for (key, id) in &written {
        wait_completed(&s.sc, &src, key, id).await;
    }
    let bc = s.backup.client();
    let mut on_target = Vec::new();
    for i in 0..7 {
        let key = format!("k{i}");
        for (_, source, _) in target_versions(&bc, &s.target, &key).await {
            on_target.push((key.clone(), source.expect("a copy, not a marker")));
        }
    }
    on_target.sort();
    let mut want = written.clone();
    want.sort();
    assert_eq!(on_target, want, "every acknowledged version once (deadline {DEADLINE:?})");
}

/// A target's name that a peer region also has as a bucket is ambiguous: refused at
/// PutBucketReplication, naming both.
#[tokio::test]
async fn a_target_named_like_a_peers_bucket_is_refused() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let peer_bucket = create_versioned_bucket(&regions[1].client(), "ext-twice").await;
    let config = tempfile::tempdir().expect("temp dir");
    let endpoint = regions[1].endpoint();
    let path = write_target_config(config.path(), &peer_bucket, &endpoint, ACCESS_KEY, SECRET_KEY);
    regions[0].set_extra_args(&["--config", &path]);
    regions[0].restart();
    let sc = regions[0].client();
    let src = create_versioned_bucket(&sc, "ext-twice-src").await;
    let refused = sc.put_bucket_replication().bucket(&src).replication_configuration(to(&peer_bucket)).send().await;
    let err = expect_error(refused, 400, Some("InvalidRequest"));
    assert!(
        message(&err).contains("both an external target of this region and a bucket of region eu-west-1"),
        "{}",
        message(&err)
    );
}

/// An SSE-C version cannot reach another S3 service (only its client's key opens it, and such
/// a service takes plaintext): its task fails at once (`FAILED`), and the versions after it
/// still go.
#[tokio::test]
async fn sse_c_versions_fail_towards_another_s3_service() {
    use crate::sse_c::{WithKey as _, head_status, key};
    let s = setup("ext-ssec").await;
    let src = create_versioned_bucket(&s.sc, "ext-ssec-src").await;
    s.sc.put_bucket_replication().bucket(&src).replication_configuration(to(&s.target)).send().await.expect("config");
    let k = key(11);
    let put = s.sc.put_object().bucket(&src).key("secret").body(ByteStream::from_static(b"secret")).with_key(&k);
    let secret = put.send().await.expect("SSE-C put").version_id().expect("version").to_owned();
    let plain = s.sc.put_object().bucket(&src).key("plain").body(ByteStream::from_static(b"plain")).send().await;
    let plain = plain.expect("plain put").version_id().expect("version").to_owned();
    crate::replication::wait_completed(&s.sc, &src, "plain", &plain).await;
    crate::replication::eventually("the SSE-C version FAILED", || async {
        let (status, _) = head_status(&s.sc, &src, "secret", &secret, &k).await;
        (status.as_deref() == Some("FAILED")).then_some(())
    })
    .await;
    assert!(target_versions(&s.bc, &s.target, "secret").await.is_empty());
    assert_eq!(target_versions(&s.bc, &s.target, "plain").await.len(), 1);
}

/// A multipart version uploaded with an additional checksum reaches another S3 service with
/// its parts' checksums: each part is checked by the target, which keeps the same composite
/// checksum and lists the same parts.
#[tokio::test]
async fn part_checksums_reach_another_s3_service() {
    use aws_sdk_s3::types::{
        ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
    };
    let s = setup("ext-parts").await;
    let src = create_versioned_bucket(&s.sc, "ext-parts-src").await;
    s.sc.put_bucket_replication().bucket(&src).replication_configuration(to(&s.target)).send().await.expect("config");
    let upload = s.sc.create_multipart_upload().bucket(&src).key("mp").checksum_algorithm(ChecksumAlgorithm::Sha256);
    let upload = upload.send().await.expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (n, body) in [(1, vec![b'x'; 5 * 1024 * 1024]), (2, b"end".to_vec())] {
        let part =
            s.sc.upload_part()
                .bucket(&src)
                .key("mp")
                .upload_id(id)
                .part_number(n)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("part");
        let sha = part.checksum_sha256().expect("part checksum").to_owned();
        parts.push(
            CompletedPart::builder().part_number(n).e_tag(part.e_tag().expect("etag")).checksum_sha256(sha).build(),
        );
    }
    let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let done = s.sc.complete_multipart_upload().bucket(&src).key("mp").upload_id(id).multipart_upload(completed);
    let version = done.send().await.expect("complete").version_id().expect("version").to_owned();
    crate::replication::wait_completed(&s.sc, &src, "mp", &version).await;

    let listed = |client: &Client, bucket: &str| {
        let request = client
            .get_object_attributes()
            .bucket(bucket)
            .key("mp")
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum);
        async move {
            let out = request.send().await.expect("attributes");
            let parts = out.object_parts().map(|p| p.parts().to_vec()).unwrap_or_default();
            let parts: Vec<_> =
                parts.iter().map(|p| (p.part_number(), p.checksum_sha256().map(str::to_owned))).collect();
            (parts, out.checksum().and_then(|c| c.checksum_sha256()).map(str::to_owned))
        }
    };
    let source = listed(&s.sc, &src).await;
    assert_eq!(source.0.len(), 2, "{source:?}");
    assert_eq!(listed(&s.bc, &s.target).await, source);
    let head = s.bc.head_object().bucket(&s.target).key("mp").checksum_mode(ChecksumMode::Enabled).send().await;
    assert!(head.expect("head").checksum_sha256().is_some_and(|c| c.ends_with("-2")));
}
