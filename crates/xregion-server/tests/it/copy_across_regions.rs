//! CopyObject and UploadPartCopy from a bucket in another region of the deployment: the copy
//! reads the source from the region that owns it, as S3 copies across regions ("restore from
//! the backup region"), with the source's bytes, metadata, tags and version as a local copy
//! would have them, and the source's errors as they are.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, TaggingDirective};

use crate::common::*;

/// A source key that needs escaping on the wire.
const KEY: &str = "backups/2026 Q4/ledger+é.csv";

fn source(bucket: &str, key: &str, version: Option<&str>) -> String {
    let path = format!("{bucket}/{}", urlencoding::encode(key));
    match version {
        Some(v) => format!("{path}?versionId={v}"),
        None => path,
    }
}

#[tokio::test]
async fn copy_object_reads_a_version_from_another_region() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    let here = create_versioned_bucket(&us, "copy-here").await;
    let there = create_versioned_bucket(&eu, "copy-there").await;
    let v1 = eu
        .put_object()
        .bucket(&there)
        .key(KEY)
        .body(ByteStream::from_static(b"version one"))
        .content_type("text/csv")
        .cache_control("max-age=60")
        .content_disposition("attachment")
        .metadata("owner", "ledger team")
        .tagging("tier=gold&year=2026")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("put v1")
        .version_id
        .expect("v1 id");
    put(&eu, &there, KEY, b"version two").await;

    // An older version, by id: bytes, ETag, metadata, tags and checksum algorithm come along.
    let out = us
        .copy_object()
        .bucket(&here)
        .key("restored")
        .copy_source(source(&there, KEY, Some(&v1)))
        .send()
        .await
        .expect("copy v1 across regions");
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()));
    let result = out.copy_object_result().expect("copy result");
    assert_eq!(result.e_tag().map(unquote), Some(md5_hex(b"version one").as_str()));
    assert!(result.checksum_sha256().is_some(), "the source's checksum algorithm is kept: {result:?}");
    let new_version = out.version_id().expect("destination is versioned").to_owned();
    let head = us
        .head_object()
        .bucket(&here)
        .key("restored")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.version_id(), Some(new_version.as_str()));
    assert_eq!(head.content_type(), Some("text/csv"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.content_disposition(), Some("attachment"));
    assert_eq!(head.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("ledger team"));
    assert_eq!(head.checksum_sha256(), result.checksum_sha256());
    let tags = us.get_object_tagging().bucket(&here).key("restored").send().await.expect("tags of copy");
    let mut tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    tags.sort_unstable();
    assert_eq!(tags, vec![("tier", "gold"), ("year", "2026")]);
    assert_eq!(get_body(&us, &here, "restored", None).await, b"version one");

    // The current version, without an id; tags replaced by the request's.
    let out = us
        .copy_object()
        .bucket(&here)
        .key("latest")
        .copy_source(source(&there, KEY, None))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("restored=yes")
        .send()
        .await
        .expect("copy current across regions");
    assert_ne!(out.copy_source_version_id(), Some(v1.as_str()));
    assert_eq!(get_body(&us, &here, "latest", None).await, b"version two");
    let tags = us.get_object_tagging().bucket(&here).key("latest").send().await.expect("tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("restored", "yes")]);

    // Source preconditions are judged on the version read.
    let res = us
        .copy_object()
        .bucket(&here)
        .key("never")
        .copy_source(source(&there, KEY, Some(&v1)))
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await;
    expect_error(res, 412, Some("PreconditionFailed"));
    let res = us
        .copy_object()
        .bucket(&here)
        .key("never")
        .copy_source(source(&there, KEY, Some(&v1)))
        .copy_source_if_none_match(format!("\"{}\"", md5_hex(b"version one")))
        .send()
        .await;
    expect_error(res, 412, Some("PreconditionFailed"));

    // The source's own errors, as they are.
    let copy = |src: String| us.copy_object().bucket(&here).key("never").copy_source(src).send();
    expect_error(copy(source(&there, "missing", None)).await, 404, Some("NoSuchKey"));
    let other_key = put(&eu, &there, "other", b"x").await.version_id.expect("version of another key");
    expect_error(copy(source(&there, KEY, Some(&other_key))).await, 404, Some("NoSuchVersion"));
    expect_error(copy(source(&there, KEY, Some("not-a-version"))).await, 400, Some("InvalidArgument"));
    let marker = eu.delete_object().bucket(&there).key(KEY).send().await.expect("delete").version_id.expect("marker");
    expect_error(copy(source(&there, KEY, None)).await, 404, Some("NoSuchKey"));
    expect_error(copy(source(&there, KEY, Some(&marker))).await, 405, Some("MethodNotAllowed"));
    expect_error(copy(source("no-such-bucket-anywhere", "k", None)).await, 404, Some("NoSuchBucket"));
    expect_error(us.head_object().bucket(&here).key("never").send().await, 404, None);
}

/// UploadPartCopy from another region, by ranges, builds the same object; a range outside
/// the source is `InvalidRange`; an unversioned source works as well. With the source's region
/// down the copy is `503` (retry later), and works again once it is back.
#[tokio::test]
async fn upload_part_copy_reads_ranges_from_another_region() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    let here = create_bucket(&us, "parts-here").await;
    let there = create_bucket(&eu, "parts-there").await;
    let bytes: Vec<u8> = (0..6 * 1024 * 1024 + 123).map(|i| (i * 7 % 251) as u8).collect();
    put(&eu, &there, KEY, &bytes).await;
    let split = 5 * 1024 * 1024;

    let upload = us.create_multipart_upload().bucket(&here).key("joined").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let part = |n: i32, range: String| {
        us.upload_part_copy()
            .bucket(&here)
            .key("joined")
            .upload_id(&upload_id)
            .part_number(n)
            .copy_source(source(&there, KEY, None))
            .copy_source_range(range)
            .send()
    };
    let res = part(1, format!("bytes=0-{}", bytes.len())).await;
    expect_error(res, 416, Some("InvalidRange"));
    let p1 = part(1, format!("bytes=0-{}", split - 1)).await.expect("part 1");
    assert_eq!(p1.copy_source_version_id(), None, "the source bucket is unversioned");
    let p2 = part(2, format!("bytes={split}-{}", bytes.len() - 1)).await.expect("part 2");
    let etag = |p: &aws_sdk_s3::operation::upload_part_copy::UploadPartCopyOutput| {
        p.copy_part_result().and_then(|r| r.e_tag()).map(str::to_owned).expect("part etag")
    };
    assert_eq!(unquote(&etag(&p1)), md5_hex(&bytes[..split]));
    assert_eq!(unquote(&etag(&p2)), md5_hex(&bytes[split..]));
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(etag(&p1)).build())
        .parts(CompletedPart::builder().part_number(2).e_tag(etag(&p2)).build())
        .build();
    us.complete_multipart_upload()
        .bucket(&here)
        .key("joined")
        .upload_id(&upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    assert!(get_body(&us, &here, "joined", None).await == bytes, "the joined object differs from its source");

    // A whole-object copy of that multipart object gets the MD5 of its bytes as ETag.
    let out =
        us.copy_object().bucket(&here).key("single").copy_source(source(&here, "joined", None)).send().await.unwrap();
    assert_eq!(out.copy_object_result().and_then(|r| r.e_tag()).map(unquote), Some(md5_hex(&bytes).as_str()));
    let out = eu
        .copy_object()
        .bucket(&there)
        .key("back")
        .copy_source(source(&here, "joined", None))
        .send()
        .await
        .expect("copy a multipart object back across regions");
    assert_eq!(out.copy_object_result().and_then(|r| r.e_tag()).map(unquote), Some(md5_hex(&bytes).as_str()));
    assert!(get_body(&eu, &there, "back", None).await == bytes);

    regions[1].kill();
    let res = us.copy_object().bucket(&here).key("later").copy_source(source(&there, KEY, None)).send().await;
    expect_error(res, 503, Some("ServiceUnavailable"));
    regions[1].restart();
    us.copy_object()
        .bucket(&here)
        .key("later")
        .copy_source(source(&there, KEY, None))
        .send()
        .await
        .expect("copy once the source region is back");
    assert!(get_body(&us, &here, "later", None).await == bytes);
}
