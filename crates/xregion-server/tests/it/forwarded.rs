//! Requests for a bucket in another region, sent to any region: reads, object requests and
//! uploads are answered with the owner's answer (`peers/forward.rs`), so that clients with one
//! `--endpoint-url` can reach every bucket of the deployment and `aws s3 cp`/`sync` can copy
//! between buckets of two regions. Bucket configuration keeps S3's `301 PermanentRedirect`
//! (tests/it/buckets.rs).

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;

#[tokio::test]
async fn reads_of_a_bucket_in_another_region_get_the_owners_answer() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    let there = create_versioned_bucket(&eu, "read-there").await;
    let key = "dir/a b+é.txt";
    let v1 = eu
        .put_object()
        .bucket(&there)
        .key(key)
        .body(ByteStream::from_static(b"0123456789"))
        .content_type("text/plain")
        .metadata("m", "1")
        .tagging("t=1")
        .send()
        .await
        .expect("put v1")
        .version_id
        .expect("v1");
    put(&eu, &there, key, b"second").await;

    // GetObject with a range and a version, HeadObject, conditional reads.
    let out = us.get_object().bucket(&there).key(key).version_id(&v1).range("bytes=2-4").send().await;
    let out = out.expect("ranged GET of an old version through the other region");
    assert_eq!(out.content_range(), Some("bytes 2-4/10"));
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), b"234");
    let head = us.head_object().bucket(&there).key(key).send().await.expect("HEAD through the other region");
    assert_eq!(head.content_length(), Some(6));
    let etag = head.e_tag().expect("etag").to_owned();
    let res = us.get_object().bucket(&there).key(key).if_none_match(&etag).send().await;
    expect_error(res, 304, None);
    let head = us.head_object().bucket(&there).key(key).version_id(&v1).send().await.expect("HEAD v1");
    assert_eq!(head.metadata().and_then(|m| m.get("m")).map(String::as_str), Some("1"));
    assert_eq!(head.content_type(), Some("text/plain"));

    // Listings and tags.
    let listed = us.list_objects_v2().bucket(&there).prefix("dir/").send().await.expect("list");
    assert_eq!(listed.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec![key]);
    assert_eq!(all_versions(&us, &there).await, all_versions(&eu, &there).await);
    let tags = us.get_object_tagging().bucket(&there).key(key).version_id(&v1).send().await.expect("tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("t", "1")]);
    let versioning = us.get_bucket_versioning().bucket(&there).send().await.expect("versioning");
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));

    // The owner's errors, as they are.
    expect_error(us.get_object().bucket(&there).key("missing").send().await, 404, Some("NoSuchKey"));
    expect_error(us.head_object().bucket(&there).key("missing").send().await, 404, None);

    // A presigned URL made for the region the client talks to, and a virtual-hosted request.
    let config = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).expect("presigning config");
    let presigned = us.get_object().bucket(&there).key(key).presigned(config).await.expect("presign");
    let resp = http_client(None).get(presigned.uri()).send().await.expect("presigned GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"second");
    let raw = regions[0].signed_virtual_host(&there, "GET", "/dir/a%20b%2B%C3%A9.txt", b"").await;
    assert_eq!((raw.status, raw.body.as_ref()), (200, b"second".as_slice()), "{}", raw.text());

    // With the owner down, the bucket is not said to be missing: retry later.
    let mut regions = regions;
    regions[1].kill();
    expect_error(us.get_object().bucket(&there).key(key).send().await, 503, Some("ServiceUnavailable"));
    let res = us.put_object().bucket(&there).key("w").body(ByteStream::from_static(b"x")).send().await;
    expect_error(res, 503, Some("ServiceUnavailable"));
    expect_error(us.head_bucket().bucket(&there).send().await, 503, None);
    regions[1].restart();
    assert_eq!(get_body(&us, &there, key, None).await, b"second");
}

/// Object writes without an upload body, sent to the region that does not have the bucket:
/// copies into it (also multipart, by UploadPartCopy), tags, deletes one by one and in bulk.
/// Bucket configuration keeps its redirect.
#[tokio::test]
async fn object_writes_without_an_upload_reach_the_owner() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    let here = create_bucket(&us, "fw-here").await;
    let there = create_versioned_bucket(&eu, "fw-there").await;
    let big: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 249) as u8).collect();
    put(&us, &here, "big", &big).await;
    put(&us, &here, "small", b"small").await;

    // CopyObject into the other region's bucket, through this region.
    let out = us.copy_object().bucket(&there).key("copied").copy_source(format!("{here}/small")).send().await;
    let out = out.expect("copy into a bucket of the other region");
    assert!(out.version_id().is_some(), "the owner's versioned answer");
    assert_eq!(get_body(&eu, &there, "copied", None).await, b"small");

    // A multipart copy: create, copy the parts by range, complete (a small XML body).
    let upload = us.create_multipart_upload().bucket(&there).key("mp").send().await.expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let split = 5 * 1024 * 1024;
    let mut parts = Vec::new();
    for (n, range) in [(1, format!("bytes=0-{}", split - 1)), (2, format!("bytes={split}-{}", big.len() - 1))] {
        let part = us
            .upload_part_copy()
            .bucket(&there)
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .copy_source(format!("{here}/big"))
            .copy_source_range(range)
            .send()
            .await
            .expect("part copy");
        let etag = part.copy_part_result().and_then(|r| r.e_tag()).expect("part etag").to_owned();
        parts.push(aws_sdk_s3::types::CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let res = us.complete_multipart_upload().bucket(&there).key("mp").upload_id(id).multipart_upload(done).send().await;
    res.expect("complete through the other region");
    assert!(get_body(&eu, &there, "mp", None).await == big, "the multipart copy differs");

    // Tags, and deletes.
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("t").value("v").build().expect("tag"))
        .build()
        .expect("tagging");
    us.put_object_tagging().bucket(&there).key("copied").tagging(tagging).send().await.expect("tag");
    let tags = eu.get_object_tagging().bucket(&there).key("copied").send().await.expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    let deleted = us.delete_object().bucket(&there).key("copied").send().await.expect("delete");
    assert_eq!(deleted.delete_marker(), Some(true));
    let ids = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("mp").build().expect("id"))
        .build()
        .expect("delete list");
    let out = us.delete_objects().bucket(&there).delete(ids).send().await.expect("DeleteObjects");
    assert_eq!(out.deleted().len(), 1, "{out:?}");
    expect_error(eu.head_object().bucket(&there).key("mp").send().await, 404, None);

    // Bucket configuration keeps its redirect.
    let res = us
        .put_bucket_versioning()
        .bucket(&there)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await;
    expect_error(res, 301, Some("PermanentRedirect"));
    expect_error(us.delete_bucket().bucket(&there).send().await, 301, Some("PermanentRedirect"));
}

/// Uploads for a bucket of another region, sent to any region, are stored by the owner as
/// if sent there: the same bytes, metadata, tags, checksums and version ids; streamed bodies
/// (`aws-chunked` with a trailing checksum, signed chunk by chunk for the region they were
/// sent to) as well as whole ones; multipart uploads from start to end; the owner's errors
/// (a wrong Content-MD5) as they are.
#[tokio::test]
async fn uploads_to_a_bucket_in_another_region_reach_the_owner() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    let there = create_versioned_bucket(&eu, "up-there").await;

    // A whole body, with metadata, tags and a header checksum.
    let put = us
        .put_object()
        .bucket(&there)
        .key("dir/a b.txt")
        .body(ByteStream::from_static(b"hello across"))
        .content_type("text/plain")
        .metadata("colour", "blue")
        .tagging("t=v")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("PutObject through the other region");
    let version = put.version_id().expect("the owner's version id").to_owned();
    let head = eu.head_object().bucket(&there).key("dir/a b.txt").version_id(&version).send().await.expect("head");
    assert_eq!(head.e_tag(), put.e_tag());
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));
    let tags = eu.get_object_tagging().bucket(&there).key("dir/a b.txt").send().await.expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    assert_eq!(get_body(&eu, &there, "dir/a b.txt", Some(&version)).await, b"hello across");

    // A streamed body: aws-chunked, with the checksum as a trailer.
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8 ^ (i >> 11) as u8).collect();
    let path = dir.path().join("payload.bin");
    std::fs::write(&path, &data).expect("write payload");
    for algorithm in [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Crc32C] {
        let key = format!("streamed-{}", algorithm.as_str());
        let body = ByteStream::from_path(&path).await.expect("file body");
        let put = us.put_object().bucket(&there).key(&key).body(body).checksum_algorithm(algorithm.clone());
        put.send().await.unwrap_or_else(|e| panic!("{key}: {:?}", DebugSdkError(&e)));
        let got = eu.get_object().bucket(&there).key(&key).checksum_mode(ChecksumMode::Enabled).send().await;
        let got = got.expect("get on the owner");
        let want = crate::checksums::expected_checksum(&algorithm, &data);
        let stored = match algorithm {
            ChecksumAlgorithm::Sha256 => got.checksum_sha256(),
            _ => got.checksum_crc32_c(),
        };
        assert_eq!(stored, Some(want.as_str()), "{key}: the owner computed the trailer's algorithm");
        assert_eq!(got.content_encoding(), None, "{key}: aws-chunked is framing, not stored");
        assert!(got.body.collect().await.expect("body").into_bytes().as_ref() == data.as_slice(), "{key}");
    }

    // An empty object.
    us.put_object().bucket(&there).key("empty").body(ByteStream::from_static(b"")).send().await.expect("empty");
    assert_eq!(get_body(&eu, &there, "empty", None).await, b"");

    // The owner's answer to a body that does not match its Content-MD5; nothing stored.
    let res = us.put_object().bucket(&there).key("bad").body(ByteStream::from_static(b"x")).content_md5(md5_b64(b"y"));
    expect_error(res.send().await, 400, Some("BadDigest"));
    expect_error(eu.head_object().bucket(&there).key("bad").send().await, 404, None);

    // A multipart upload from start to end through the other region, parts streamed.
    let created = us
        .create_multipart_upload()
        .bucket(&there)
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let id = created.upload_id().expect("upload id");
    let first: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 239) as u8).collect();
    let part_path = dir.path().join("part1.bin");
    std::fs::write(&part_path, &first).expect("write part");
    let mut parts = Vec::new();
    for (n, body) in
        [(1, ByteStream::from_path(&part_path).await.expect("part body")), (2, ByteStream::from(data.clone()))]
    {
        let part = us
            .upload_part()
            .bucket(&there)
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(body)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {:?}", DebugSdkError(&e)));
        let built = CompletedPart::builder().part_number(n).e_tag(part.e_tag().expect("etag"));
        parts.push(built.checksum_crc32(part.checksum_crc32().expect("part checksum")).build());
    }
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let res = us.complete_multipart_upload().bucket(&there).key("mp").upload_id(id).multipart_upload(done).send().await;
    let completed = res.expect("complete");
    assert!(completed.e_tag().is_some_and(|e| e.ends_with("-2\"")), "{completed:?}");
    let whole: Vec<u8> = first.iter().chain(data.iter()).copied().collect();
    assert!(get_body(&eu, &there, "mp", None).await == whole, "the multipart upload differs");

    // The operator sees what crossed to the other region: at least every upload's bytes
    // (the bad Content-MD5 one's too: it was sent on, and refused there).
    let forwarded_to_eu = |r: &serde_json::Value| {
        r["forwarded"].as_array().and_then(|a| a.iter().find(|f| f["region"] == "eu-west-1")).cloned()
    };
    let uploaded = (12 + 2 * data.len() + 1 + first.len() + data.len()) as u64;
    let r = crate::observability::report(&regions[0]).await;
    let eu_counts = forwarded_to_eu(&r).expect("eu-west-1 in the report");
    assert!(eu_counts["upload_bytes"].as_u64().is_some_and(|b| b >= uploaded), "{eu_counts} < {uploaded}");
    assert!(eu_counts["writes"].as_u64().is_some_and(|n| n >= 8), "{eu_counts}");
    assert_eq!(eu_counts["unavailable"], 0);

    // Uploads never reach a region that is down; the client is told to retry.
    let mut regions = regions;
    regions[1].kill();
    let res = us.put_object().bucket(&there).key("w").body(ByteStream::from_static(b"x")).send().await;
    expect_error(res, 503, Some("ServiceUnavailable"));
}

/// boto3's uploads (a checksummed put_object, upload_file's threaded multipart upload, a
/// presigned PUT) into a bucket of another region through one endpoint
/// (`tests/python/forwarded_uploads_boto3.py`).
#[test]
fn boto3_uploads_reach_a_bucket_in_another_region() {
    if !crate::boto3::boto3_or_skip("the forwarded boto3 uploads test") {
        return;
    }
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let there = runtime.block_on(create_versioned_bucket(&regions[1].client(), "boto3-there"));
    let owner = regions[1].endpoint();
    let env = [("XREGION_OWNER_ENDPOINT", owner.as_str()), ("XREGION_OWNER_REGION", regions[1].name())];
    let marker = "forwarded boto3 uploads passed";
    crate::boto3::run_boto3(&regions[0], "forwarded_uploads_boto3.py", &there, marker, &env);
}

/// A trailing checksum arrives after the last byte, too late for the forwarded request's
/// headers: the forwarding region checks it before it lets the last chunk go, so a wrong one
/// is `BadDigest` and the owner stores nothing, as if the upload had been sent there.
#[tokio::test]
async fn a_forwarded_upload_with_a_wrong_trailer_stores_nothing() {
    use aws_sigv4::http_request::SignableBody;
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let eu = regions[1].client();
    let there = create_versioned_bucket(&eu, "trailer-there").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let right = crate::checksums::expected_checksum(&aws_sdk_s3::types::ChecksumAlgorithm::Crc32, &data);
    for (key, claim, status) in [("wrong", "AAAAAA==", 400), ("right", right.as_str(), 200)] {
        // aws-chunked, unsigned chunks with a trailer, as SDKs send a streamed upload.
        let mut body = Vec::new();
        for chunk in data.chunks(64 * 1024) {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{claim}\r\n\r\n").as_bytes());
        let url = format!("{}/{there}/{key}", regions[0].endpoint());
        let decoded = data.len().to_string();
        let headers = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let payload = SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into());
        let signature = signature_headers_for(&Signer::root("us-east-1"), "PUT", &url, &headers, payload);
        let mut req = http_client(None).put(&url).body(body);
        for (name, value) in headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).chain(signature) {
            req = req.header(name, value);
        }
        let raw = RawResponse::read(req.send().await.expect("send")).await;
        assert_eq!(raw.status, status, "{key}: {}", raw.text());
        if status == 400 {
            assert_eq!(raw.error_code().as_deref(), Some("BadDigest"), "{}", raw.text());
            expect_error(eu.head_object().bucket(&there).key(key).send().await, 404, None);
        } else {
            assert_eq!(raw.header("x-amz-checksum-crc32"), Some(right.as_str()), "the owner's answer");
            assert!(get_body(&eu, &there, key, None).await == data, "{key}: the stored body differs");
        }
    }
}

/// Restoring from the backup region with the AWS CLI, through the endpoint of the region
/// restored to: `aws s3 sync` and `aws s3 cp` from a bucket of the other region (they list
/// and HEAD the source there, then copy across regions); then syncing back into, uploading
/// local files to, and removing from, the other region's bucket through that same endpoint.
#[test]
fn aws_cli_copies_from_a_bucket_in_another_region() {
    if !aws_cli_available("the cross-region AWS CLI test") {
        return;
    }
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = dir.path().join("tree");
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i| (i * 13 % 251) as u8).collect();
    for (name, bytes) in [("a.txt", b"alpha".to_vec()), ("sub/b c.txt", b"beta".to_vec()), ("big.bin", big.clone())] {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    let (us, eu) = (regions[0].endpoint(), regions[1].endpoint());
    let script = format!(
        r#"
        aws --endpoint-url {eu} --region eu-west-1 s3 mb s3://backup-eu
        aws --endpoint-url {eu} --region eu-west-1 s3 sync tree s3://backup-eu/
        aws --endpoint-url {us} s3 mb s3://restored-us
        aws --endpoint-url {us} s3 sync s3://backup-eu s3://restored-us
        aws --endpoint-url {us} s3 cp s3://backup-eu/big.bin s3://restored-us/copy/big.bin
        aws --endpoint-url {us} s3 sync s3://restored-us restored
        aws --endpoint-url {us} s3 cp s3://backup-eu/sub/ one --recursive
        aws --endpoint-url {us} s3 sync s3://restored-us s3://backup-eu/again/
        aws --endpoint-url {us} s3 cp tree/big.bin s3://backup-eu/up/big.bin
        aws --endpoint-url {us} s3 sync tree s3://backup-eu/up-sync/
        aws --endpoint-url {us} s3 rm s3://backup-eu/sub/ --recursive
        aws --endpoint-url {eu} --region eu-west-1 s3 sync s3://backup-eu again-local
        "#
    );
    run_aws_cli(&script, dir.path(), "us-east-1");
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("restored/a.txt"), b"alpha");
    assert_eq!(read("restored/sub/b c.txt"), b"beta");
    assert!(read("restored/big.bin") == big, "big.bin differs after the cross-region sync");
    assert!(read("restored/copy/big.bin") == big, "big.bin differs after the cross-region cp");
    assert_eq!(read("one/b c.txt"), b"beta");
    // And back the other way, through the same endpoint: copies into, and deletes in, the
    // other region's bucket.
    assert!(read("again-local/again/big.bin") == big, "big.bin differs after the sync back");
    assert_eq!(read("again-local/again/sub/b c.txt"), b"beta");
    assert!(!dir.path().join("again-local/sub").exists(), "sub/ was removed through the other region");
    // Uploads from local files into the other region's bucket, through the same endpoint
    // (big.bin as a multipart upload).
    assert!(read("again-local/up/big.bin") == big, "big.bin differs after the upload through the other region");
    assert!(read("again-local/up-sync/big.bin") == big, "big.bin differs after the sync through the other region");
    assert_eq!(read("again-local/up-sync/sub/b c.txt"), b"beta");
}
