//! Additional checksums: every algorithm through the SDK (streaming bodies go as aws-chunked
//! with a trailer, in-memory bodies as a header), returned by GET/HEAD with ChecksumMode;
//! wrong checksums and wrong Content-MD5 are BadDigest and leave nothing behind.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The value S3 shows for `data` under `algorithm` (base64 of the big-endian digest).
pub(crate) fn expected_checksum(algorithm: &ChecksumAlgorithm, data: &[u8]) -> String {
    use crc_fast::CrcAlgorithm;
    use sha2::Digest as _;
    match algorithm {
        ChecksumAlgorithm::Crc32 => b64(&(crc_fast::checksum(CrcAlgorithm::Crc32IsoHdlc, data) as u32).to_be_bytes()),
        ChecksumAlgorithm::Crc32C => b64(&(crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32).to_be_bytes()),
        ChecksumAlgorithm::Crc64Nvme => b64(&crc_fast::checksum(CrcAlgorithm::Crc64Nvme, data).to_be_bytes()),
        ChecksumAlgorithm::Sha1 => b64(&sha1::Sha1::digest(data)),
        ChecksumAlgorithm::Sha256 => b64(&sha2::Sha256::digest(data)),
        other => panic!("unexpected algorithm {other:?}"),
    }
}

/// The checksum field of an output for one algorithm.
macro_rules! checksum_field {
    ($out:expr, $alg:expr) => {
        match $alg {
            ChecksumAlgorithm::Crc32 => $out.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $out.checksum_crc32_c(),
            ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64_nvme(),
            ChecksumAlgorithm::Sha1 => $out.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => $out.checksum_sha256(),
            _ => None,
        }
    };
}

const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32C,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

#[tokio::test]
async fn checksums_every_algorithm_streaming_trailer_and_header() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "checksums").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Large enough for several aws-chunked chunks.
    let data: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8 ^ (i >> 11) as u8).collect();
    let path = dir.path().join("payload.bin");
    std::fs::write(&path, &data).expect("write payload");

    for algorithm in ALGORITHMS {
        let want = expected_checksum(&algorithm, &data);
        for streaming in [true, false] {
            let key = format!("{}-{}", algorithm.as_str(), if streaming { "stream" } else { "bytes" });
            let body = if streaming {
                // A file body is streamed: the SDK sends aws-chunked with the checksum as a trailer.
                ByteStream::from_path(&path).await.expect("file body")
            } else {
                ByteStream::from(data.clone())
            };
            // The content-encoding of a streamed body is covered by its own test below.
            let encoding = (!streaming).then(|| "gzip".to_owned());
            let put = s3
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body)
                .checksum_algorithm(algorithm.clone())
                .set_content_encoding(encoding.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {:?}", DebugSdkError(&e)));
            assert_eq!(checksum_field!(put, algorithm.clone()), Some(want.as_str()), "PUT {key}");
            assert_eq!(put.e_tag().map(unquote), Some(md5_hex(&data).as_str()), "{key}");

            let get = s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {:?}", DebugSdkError(&e)));
            assert_eq!(checksum_field!(get, algorithm.clone()), Some(want.as_str()), "GET {key}");
            assert_eq!(get.content_length(), Some(data.len() as i64), "{key}");
            // aws-chunked is transport framing, never the object's content-encoding.
            assert_eq!(get.content_encoding(), encoding.as_deref(), "{key}");
            let body = get.body.collect().await.expect("body").into_bytes();
            assert!(body.as_ref() == data.as_slice(), "{key}: body differs");

            let head = s3
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap_or_else(|e| panic!("head {key}: {:?}", DebugSdkError(&e)));
            assert_eq!(checksum_field!(head, algorithm.clone()), Some(want.as_str()), "HEAD {key}");
            assert_eq!(head.content_length(), Some(data.len() as i64), "{key}");
        }
    }

    // Listing names the algorithm.
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("SHA256-").send().await.expect("list");
    assert!(
        listed.contents().iter().all(|o| o.checksum_algorithm() == [ChecksumAlgorithm::Sha256]),
        "{:?}",
        listed.contents()
    );
}

/// A streamed upload (aws-chunked) keeps the object's own Content-Encoding. The SDK sends
/// `Content-Encoding: gzip` and `Content-Encoding: aws-chunked` as two header lines.
#[tokio::test]
async fn checksums_streamed_upload_keeps_its_content_encoding() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "encoding").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("payload.gz");
    std::fs::write(&path, vec![7u8; 100 * 1024]).expect("write payload");
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_path(&path).await.expect("file body"))
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .content_encoding("gzip")
        .send()
        .await
        .unwrap_or_else(|e| panic!("put: {:?}", DebugSdkError(&e)));
    let head = s3.head_object().bucket(&bucket).key("k").send().await.expect("head");
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(head.content_length(), Some(100 * 1024));
}

#[tokio::test]
async fn checksums_wrong_values_are_bad_digest_and_leave_nothing_behind() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "baddigest").await;
    put(&s3, &bucket, "k", b"original").await;

    // A wrong x-amz-checksum-crc32 header (raw request: exactly what is sent).
    let body = b"new content";
    let wrong_crc = b64(&0xDEAD_BEEFu32.to_be_bytes());
    assert_ne!(wrong_crc, expected_checksum(&ChecksumAlgorithm::Crc32, body));
    for (header, value) in [
        ("x-amz-checksum-crc32", wrong_crc.as_str()),
        ("x-amz-checksum-sha256", &b64(&[7u8; 32])),
        ("content-md5", &md5_b64(b"something else")),
    ] {
        let raw = region.signed("PUT", &format!("/{bucket}/k"), &[(header, value)], body).await;
        assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some("BadDigest")), "{header}: {}", raw.text());
        let raw = region.signed("PUT", &format!("/{bucket}/fresh"), &[(header, value)], body).await;
        assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some("BadDigest")), "{header}: {}", raw.text());
    }
    // The right value is accepted (so the failures above were about the value).
    let right = expected_checksum(&ChecksumAlgorithm::Crc32, body);
    let raw = region.signed("PUT", &format!("/{bucket}/ok"), &[("x-amz-checksum-crc32", &right)], body).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.header("x-amz-checksum-crc32"), Some(right.as_str()));

    // Content-MD5 through the SDK.
    let res = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"new content"))
        .content_md5(md5_b64(b"not the content"))
        .send()
        .await;
    expect_error(res, 400, Some("BadDigest"));
    s3.put_object()
        .bucket(&bucket)
        .key("md5-ok")
        .body(ByteStream::from_static(b"new content"))
        .content_md5(md5_b64(b"new content"))
        .send()
        .await
        .expect("right Content-MD5");
    // A Content-MD5 that is not an MD5 at all.
    let res = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .content_md5("bm90LW1kNQ==")
        .send()
        .await;
    expect_error(res, 400, Some("InvalidDigest"));

    // Nothing new is visible: same content, one version of k, no "fresh".
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"original");
    expect_error(s3.head_object().bucket(&bucket).key("fresh").send().await, 404, None);
    let versions = all_versions(&s3, &bucket).await;
    let keys: Vec<&str> = versions.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(keys, vec!["k", "md5-ok", "ok"]);
}

/// A multipart upload created with an algorithm: each part carries its checksum, the object
/// gets the COMPOSITE checksum (checksum of the part checksums, `-N`).
#[tokio::test]
async fn checksums_multipart_composite() {
    use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
    use sha2::Digest as _;

    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "composite").await;
    let created = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create");
    assert_eq!(created.checksum_algorithm(), Some(&ChecksumAlgorithm::Sha256));
    let id = created.upload_id().expect("id").to_owned();
    let parts: [Vec<u8>; 2] = [vec![1u8; 5 * 1024 * 1024], b"last part".to_vec()];
    let mut completed = Vec::new();
    let mut digests = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(&bucket)
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {:?}", DebugSdkError(&e)));
        let want = expected_checksum(&ChecksumAlgorithm::Sha256, body);
        assert_eq!(out.checksum_sha256(), Some(want.as_str()), "part {n}");
        digests.extend_from_slice(&sha2::Sha256::digest(body));
        completed.push(
            CompletedPart::builder().part_number(n).e_tag(out.e_tag().expect("etag")).checksum_sha256(want).build(),
        );
    }
    let listed = s3.list_parts().bucket(&bucket).key("k").upload_id(&id).send().await.expect("list parts");
    assert!(listed.parts().iter().all(|p| p.checksum_sha256().is_some()), "{:?}", listed.parts());

    let done = s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("k")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete: {:?}", DebugSdkError(&e)));
    let composite = format!("{}-2", b64(&sha2::Sha256::digest(&digests)));
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    let head =
        s3.head_object().bucket(&bucket).key("k").checksum_mode(ChecksumMode::Enabled).send().await.expect("head");
    assert_eq!(head.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    let get = s3.get_object().bucket(&bucket).key("k").checksum_mode(ChecksumMode::Enabled).send().await.expect("get");
    assert_eq!(get.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(get.body.collect().await.expect("body").into_bytes().len(), 5 * 1024 * 1024 + 9);

    // A part with a wrong checksum value is BadDigest and is not recorded.
    let id = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("bad")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let res = s3
        .upload_part()
        .bucket(&bucket)
        .key("bad")
        .upload_id(&id)
        .part_number(1)
        .checksum_sha256(b64(&[9u8; 32]))
        .body(ByteStream::from_static(b"some bytes"))
        .send()
        .await;
    expect_error(res, 400, Some("BadDigest"));
    // A part checksummed with another algorithm than the upload's is refused (AWS:
    // "Checksum Type mismatch occurred"); accepting it would corrupt the composite checksum.
    let res = s3
        .upload_part()
        .bucket(&bucket)
        .key("bad")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"some bytes"))
        .send()
        .await;
    expect_error(res, 400, Some("InvalidRequest"));
    let listed = s3.list_parts().bucket(&bucket).key("bad").upload_id(&id).send().await.expect("list parts");
    assert!(listed.parts().is_empty(), "{:?}", listed.parts());
}

/// S3's default data integrity protection: an object uploaded without any checksum gets a
/// full-object CRC64NVME, returned by the PUT and by GET/HEAD in checksum mode.
#[tokio::test]
async fn upload_without_checksum_gets_the_default_crc64nvme() {
    let region = TestRegion::start("us-east-1", &[]);
    let client = region.client();
    let bucket = create_bucket(&client, "default-crc").await;
    let data = b"no checksum was sent with these bytes".repeat(3000); // a blob file, not inline
    let want = expected_checksum(&ChecksumAlgorithm::Crc64Nvme, &data);
    // A raw PUT: current SDKs would add a checksum of their own.
    let put = region.signed("PUT", &format!("/{bucket}/k"), &[], &data).await;
    assert_eq!(put.status, 200);
    let header = |r: &RawResponse, name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header(&put, "x-amz-checksum-crc64nvme"), Some(want.clone()));
    let head = region.signed("HEAD", &format!("/{bucket}/k"), &[("x-amz-checksum-mode", "ENABLED")], b"").await;
    assert_eq!(header(&head, "x-amz-checksum-crc64nvme"), Some(want));
    assert_eq!(header(&head, "x-amz-checksum-type").as_deref(), Some("FULL_OBJECT"));
}
