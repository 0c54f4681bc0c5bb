//! Encryption at rest (SSE-S3, `x-amz-server-side-encryption: AES256`) end to end: what the
//! API says, what is on disk, bucket default encryption, and replication (ELI-7, ELI-9).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use crate::common::*;
use crate::replication::{pair, wait_completed};

/// A body whose every 64 bytes hold `marker`, so that any stored run of plaintext is found.
pub(crate) fn body_with(marker: &str, len: usize) -> Vec<u8> {
    assert_eq!(marker.len(), 32);
    marker.as_bytes().iter().copied().cycle().take(len).collect()
}

/// Whether any file under `dir` holds `marker` (object bodies, blobs, metadata, journal).
pub(crate) fn on_disk(dir: &std::path::Path, marker: &str) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).expect("read dir").map(|e| e.expect("entry").path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
        {
            return true;
        }
    }
    false
}

async fn put_sse(client: &Client, bucket: &str, key: &str, body: &[u8]) -> (String, String) {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {:?}", DebugSdkError(&e)));
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{key}");
    (out.version_id().expect("version id").to_owned(), out.e_tag().expect("etag").to_owned())
}

async fn sse_of(client: &Client, bucket: &str, key: &str, version: &str) -> Option<ServerSideEncryption> {
    let head = client.head_object().bucket(bucket).key(key).version_id(version).send().await.expect("head");
    head.server_side_encryption().cloned()
}

async fn range(client: &Client, bucket: &str, key: &str, range: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).range(range).send().await.expect("ranged get");
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

/// Small (inline) and large (blob) objects and a multipart upload written with `AES256` read
/// back whole and by range, say `AES256` on every answer, keep their plain MD5 ETag, and
/// leave no plaintext on disk, also after a restart; a plain object next to them does.
#[tokio::test]
async fn sse_s3_objects_are_encrypted_on_disk_and_read_back() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "sse").await;
    let small = body_with("small-secret-marker-0123456789ab", 3_000);
    let large = body_with("large-secret-marker-0123456789ab", 300_000);
    let plain = body_with("plain-visible-marker-0123456789a", 3_000);
    let (small_v, small_etag) = put_sse(&s3, &bucket, "small", &small).await;
    let (large_v, large_etag) = put_sse(&s3, &bucket, "large", &large).await;
    assert_eq!(unquote(&small_etag), md5_hex(&small), "the ETag is the plaintext's MD5");
    assert_eq!(unquote(&large_etag), md5_hex(&large));
    let plain_out = put(&s3, &bucket, "plain", &plain).await;
    assert_eq!(plain_out.server_side_encryption(), None);

    // Multipart: 5 MiB and a tail, sealed part by part with the upload's key.
    let part1 = body_with("multi-secret-marker-0123456789ab", 5 * 1024 * 1024);
    let part2 = body_with("multi-secret-marker-0123456789ab", 70_000);
    let done = multipart_put(&s3, &bucket, "multi", (&part1, &part2), Some(ServerSideEncryption::Aes256)).await;
    let multi_v = done.version_id().expect("version id").to_owned();
    let mut multi = part1.clone();
    multi.extend_from_slice(&part2);

    for _ in 0..2 {
        // A new client each time: the old one's connections died with the restart.
        let s3 = region.client();
        assert_eq!(get_body(&s3, &bucket, "small", Some(&small_v)).await, small);
        assert_eq!(get_body(&s3, &bucket, "large", Some(&large_v)).await, large);
        assert_eq!(get_body(&s3, &bucket, "multi", Some(&multi_v)).await, multi);
        for (key, version) in [("small", &small_v), ("large", &large_v), ("multi", &multi_v)] {
            assert_eq!(sse_of(&s3, &bucket, key, version).await, Some(ServerSideEncryption::Aes256), "{key}");
        }
        // Ranges inside one chunk, across chunk boundaries (64 KiB) and across the parts.
        assert_eq!(range(&s3, &bucket, "small", "bytes=10-99").await, small[10..100]);
        assert_eq!(range(&s3, &bucket, "large", "bytes=65000-140000").await, large[65000..140001]);
        let boundary = part1.len();
        let r = format!("bytes={}-{}", boundary - 100, boundary + 100);
        assert_eq!(range(&s3, &bucket, "multi", &r).await, multi[boundary - 100..boundary + 101]);

        for marker in ["small-secret-marker", "large-secret-marker", "multi-secret-marker"] {
            assert!(!on_disk(region.data_dir(), marker), "{marker} is on disk in plaintext");
        }
        assert!(on_disk(region.data_dir(), "plain-visible-marker"), "the unencrypted object is (the scan works)");
        // The key file survives a restart, and with it every encrypted object.
        region.restart();
    }
}

/// CopyObject encrypts as its own request or the target bucket says, whatever the source is;
/// KMS is refused (customer keys: `sse_c.rs`).
#[tokio::test]
async fn copies_follow_their_own_request_and_kms_is_refused() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssecopy").await;
    let data = body_with("copied-secret-marker-0123456789a", 100_000);
    put_sse(&s3, &bucket, "src", &data).await;
    let plain = s3.copy_object().bucket(&bucket).key("plain").copy_source(format!("{bucket}/src")).send().await;
    let plain = plain.expect("copy without encryption");
    assert_eq!(plain.server_side_encryption(), None);
    let sealed = s3
        .copy_object()
        .bucket(&bucket)
        .key("sealed")
        .copy_source(format!("{bucket}/plain"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("copy with AES256");
    assert_eq!(sealed.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(sealed.copy_object_result().and_then(|r| r.e_tag()), plain.copy_object_result().and_then(|r| r.e_tag()));
    assert_eq!(get_body(&s3, &bucket, "sealed", None).await, data);
    assert_eq!(get_body(&s3, &bucket, "plain", None).await, data);

    let r = s3
        .put_object()
        .bucket(&bucket)
        .key("kms")
        .body(ByteStream::from_static(b"x"))
        .server_side_encryption(ServerSideEncryption::AwsKms);
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let keys: Vec<String> = all_versions(&s3, &bucket).await.into_iter().map(|v| v.0).collect();
    assert!(!keys.iter().any(|k| k == "kms"), "refused writes store nothing: {keys:?}");
}

/// `xregion keys rotate`: after the region's restart, new objects are encrypted under the new
/// key, the older objects' data keys (inline, blob, an upload begun before) are re-wrapped
/// under it in the background and the old key is marked retired; the region then starts
/// without the old key file and reads everything, and refuses to start without the new one.
#[tokio::test]
async fn a_rotated_master_key_encrypts_new_objects_and_old_ones_still_open() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let client = region.client();
    let bucket = create_versioned_bucket(&client, "sse-rotate").await;
    let small = body_with("ROTATE-SMALL-MARKER-ABCDEFGHIJKL", 1000);
    let large = body_with("ROTATE-LARGE-MARKER-ABCDEFGHIJKL", 300_000);
    let (small_id, _) = put_sse(&client, &bucket, "small", &small).await;
    let (large_id, _) = put_sse(&client, &bucket, "large", &large).await;
    let upload = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key("upload")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let part = body_with("ROTATE-PART-MARKER-ABCDEFGHIJKLM", 5 * 1024 * 1024);
    let first = client
        .upload_part()
        .bucket(&bucket)
        .key("upload")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part 1");

    let rotate = |region: &TestRegion| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xregion"))
            .args(["keys", "rotate", "--data"])
            .arg(region.data_dir())
            .env_remove("XREGION_CONFIG")
            .env_remove("XREGION_SSE_MASTER_KEY_FILE")
            .output()
            .expect("run xregion keys rotate")
    };
    let out = rotate(&region);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let key_two = region.data_dir().join("keys/sse-master-2.key");
    assert!(said.contains(&format!("SSE master key 2 created at {}", key_two.display())), "{said}");
    region.restart();
    let client = region.client();
    let retired = region.data_dir().join("keys/sse-master.retired");
    crate::replication::eventually("key 1 retired after the re-wrap", || async {
        retired.try_exists().expect("stat").then_some(())
    })
    .await;

    // Before the rotation: still readable, whole and by range.
    assert_eq!(get_body(&client, &bucket, "small", Some(&small_id)).await, small);
    assert_eq!(get_body(&client, &bucket, "large", Some(&large_id)).await, large);
    assert_eq!(range(&client, &bucket, "large", "bytes=70000-70009").await, &large[70000..70010]);
    // After it: a new object, and the upload begun before completes with its own key.
    let newer = body_with("ROTATE-NEWER-MARKER-ABCDEFGHIJKL", 200_000);
    let (newer_id, _) = put_sse(&client, &bucket, "newer", &newer).await;
    let second = client
        .upload_part()
        .bucket(&bucket)
        .key("upload")
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from_static(b"tail"))
        .send()
        .await
        .expect("part 2");
    let parts = [(1, first.e_tag().unwrap_or_default()), (2, second.e_tag().unwrap_or_default())];
    let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| aws_sdk_s3::types::CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build();
    client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("upload")
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .expect("complete upload");
    let mut whole = part;
    whole.extend_from_slice(b"tail");
    assert_eq!(get_body(&client, &bucket, "upload", None).await, whole);
    assert_eq!(get_body(&client, &bucket, "newer", Some(&newer_id)).await, newer);
    assert!(!on_disk(region.data_dir(), "ROTATE-NEWER-MARKER-ABCDEFGHIJKL"), "the new object is encrypted");

    // The new key is the region's now: without it, the region does not start.
    region.kill();
    let saved = std::fs::read(&key_two).expect("read key 2");
    std::fs::remove_file(&key_two).expect("remove key 2");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xregion"))
        .args(["serve", "--region", "us-east-1", "--listen", "127.0.0.1:0", "--data"])
        .arg(region.data_dir())
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .env_remove("XREGION_SSE_MASTER_KEY_FILE")
        .output()
        .expect("run xregion serve");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("has encrypted with key 2"), "{said}");
    std::fs::write(&key_two, saved).expect("restore key 2");
    // The retired key is not needed: everything reads without its file.
    std::fs::remove_file(region.data_dir().join("keys/sse-master.key")).expect("remove key 1");
    region.restart();
    let client = region.client();
    assert_eq!(get_body(&client, &bucket, "newer", Some(&newer_id)).await, newer);
    assert_eq!(get_body(&client, &bucket, "small", Some(&small_id)).await, small);
    assert_eq!(get_body(&client, &bucket, "large", Some(&large_id)).await, large);
    assert_eq!(get_body(&client, &bucket, "upload", None).await, whole);
    // And the next rotation still finds its place.
    let out = rotate(&region);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SSE master key 3 created"), "{out:?}");
}

fn aes256_rule(bucket_key: Option<bool>) -> ServerSideEncryptionConfiguration {
    let default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build();
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default.expect("default"))
        .set_bucket_key_enabled(bucket_key)
        .build();
    ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("configuration")
}

/// Put/Get/DeleteBucketEncryption: the rule is echoed, objects written without a header are
/// encrypted while it is there, and KMS rules are refused.
#[tokio::test]
async fn bucket_default_encryption_applies_to_writes_without_a_header() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssedefault").await;
    let r = s3.get_bucket_encryption().bucket(&bucket);
    expect_error(r.send().await, 404, Some("ServerSideEncryptionConfigurationNotFoundError"));

    s3.put_bucket_encryption()
        .bucket(&bucket)
        .server_side_encryption_configuration(aes256_rule(Some(true)))
        .send()
        .await
        .expect("put bucket encryption");
    let got = s3.get_bucket_encryption().bucket(&bucket).send().await.expect("get bucket encryption");
    let rules = got.server_side_encryption_configuration().map(|c| c.rules().to_vec()).unwrap_or_default();
    assert_eq!(rules.len(), 1);
    let by_default = rules[0].apply_server_side_encryption_by_default().expect("default");
    assert_eq!(by_default.sse_algorithm(), &ServerSideEncryption::Aes256);
    assert_eq!(rules[0].bucket_key_enabled(), Some(true));

    let data = body_with("default-secret-marker-0123456789", 2_000);
    let out = put(&s3, &bucket, "by-default", &data).await;
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get_body(&s3, &bucket, "by-default", None).await, data);
    assert!(!on_disk(region.data_dir(), "default-secret-marker"));

    let kms = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::AwsKms)
                        .build()
                        .expect("kms default"),
                )
                .build(),
        )
        .build()
        .expect("kms configuration");
    let r = s3.put_bucket_encryption().bucket(&bucket).server_side_encryption_configuration(kms);
    expect_error(r.send().await, 501, Some("NotImplemented"));
    let aes_with_key = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .kms_master_key_id("arn:aws:kms:us-east-1:1:key/x")
                        .build()
                        .expect("default"),
                )
                .build(),
        )
        .build()
        .expect("configuration");
    let r = s3.put_bucket_encryption().bucket(&bucket).server_side_encryption_configuration(aes_with_key);
    expect_error(r.send().await, 400, Some("InvalidArgument"));

    let deleted = s3.delete_bucket_encryption().bucket(&bucket).send().await;
    deleted.expect("delete bucket encryption");
    let r = s3.get_bucket_encryption().bucket(&bucket);
    expect_error(r.send().await, 404, Some("ServerSideEncryptionConfigurationNotFoundError"));
    let out = put(&s3, &bucket, "plain", b"after").await;
    assert_eq!(out.server_side_encryption(), None);
}

/// ELI-7: a replica of an encrypted version is encrypted too, with the destination region's
/// own key (small versions travel in batches, large ones one by one), same ETag and bytes.
/// ELI-9: a plain version lands encrypted in a destination bucket whose default says so.
#[tokio::test]
async fn eli7_eli9_replicas_are_encrypted_by_the_destination() {
    let (regions, sc, dc, src, dst) = pair("ssecrr", false).await;
    let small = body_with("replica-small-marker-0123456789a", 4_000);
    let large = body_with("replica-large-marker-0123456789a", 200_000);
    let (small_v, small_etag) = put_sse(&sc, &src, "small", &small).await;
    let (large_v, large_etag) = put_sse(&sc, &src, "large", &large).await;
    let plain_v = put(&sc, &src, "plain", b"plain bytes").await.version_id().expect("version id").to_owned();
    for (key, version) in [("small", &small_v), ("large", &large_v), ("plain", &plain_v)] {
        wait_completed(&sc, &src, key, version).await;
    }
    for (key, version, etag, data) in
        [("small", &small_v, &small_etag, &small), ("large", &large_v, &large_etag, &large)]
    {
        let head = dc.head_object().bucket(&dst).key(key).version_id(version).send().await.expect("head replica");
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{key}");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "{key}");
        assert_eq!(&get_body(&dc, &dst, key, Some(version)).await, data, "{key}");
    }
    assert_eq!(sse_of(&dc, &dst, "plain", &plain_v).await, None);
    for marker in ["replica-small-marker", "replica-large-marker"] {
        assert!(!on_disk(regions[1].data_dir(), marker), "{marker} on the destination's disk");
    }
    let key_of = |r: &TestRegion| std::fs::read(r.data_dir().join("keys/sse-master.key")).expect("key file");
    assert_ne!(key_of(&regions[0]), key_of(&regions[1]), "each region has its own master key");

    dc.put_bucket_encryption()
        .bucket(&dst)
        .server_side_encryption_configuration(aes256_rule(None))
        .send()
        .await
        .expect("destination default encryption");
    let v = put(&sc, &src, "later", b"plain at the source").await.version_id().expect("version id").to_owned();
    wait_completed(&sc, &src, "later", &v).await;
    assert_eq!(sse_of(&sc, &src, "later", &v).await, None);
    assert_eq!(sse_of(&dc, &dst, "later", &v).await, Some(ServerSideEncryption::Aes256));
    assert_eq!(get_body(&dc, &dst, "later", Some(&v)).await, b"plain at the source");
}

/// The same through boto3 (managed multipart transfer, botocore's own body checksum).
#[test]
fn sse_s3_through_boto3() {
    if !crate::boto3::boto3_or_skip("the boto3 encryption test") {
        return;
    }
    let region = TestRegion::start("us-east-1", &[]);
    crate::boto3::run_boto3_script(&region, "encryption_boto3.py", "sse-boto3", "boto3 encryption test passed");
}
