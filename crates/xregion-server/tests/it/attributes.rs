//! GetObjectAttributes: ETag (unquoted, as S3 sends it here), checksum, size, storage class and
//! a multipart object's part count, for the current or a named version; delete markers and
//! missing keys answer as HEAD does (VER-12, VER-13); any region answers for every bucket.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectAttributes};

use crate::common::*;

const ALL: [ObjectAttributes; 5] = [
    ObjectAttributes::Etag,
    ObjectAttributes::Checksum,
    ObjectAttributes::ObjectParts,
    ObjectAttributes::ObjectSize,
    ObjectAttributes::StorageClass,
];

#[tokio::test]
async fn get_object_attributes_of_versions_and_multipart_objects() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (s3, eu) = (regions[0].client(), regions[1].client());
    let bucket = create_versioned_bucket(&s3, "attrs").await;
    let v1 = put(&s3, &bucket, "k", b"hello").await.version_id.expect("v1");
    put(&s3, &bucket, "k", b"hello, world").await;

    let attrs = |version: Option<&str>, which: &[ObjectAttributes]| {
        s3.get_object_attributes()
            .bucket(&bucket)
            .key("k")
            .set_version_id(version.map(str::to_owned))
            .set_object_attributes(Some(which.to_vec()))
            .send()
    };
    let out = attrs(Some(&v1), &ALL).await.expect("attributes of v1");
    assert_eq!(out.e_tag(), Some(md5_hex(b"hello").as_str()), "unquoted, as on S3");
    assert_eq!(out.object_size(), Some(5));
    assert_eq!(out.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert!(out.last_modified().is_some());
    // The SDK sends a CRC32 with every upload.
    let checksum = out.checksum().expect("the upload's checksum");
    assert!(checksum.checksum_crc32().is_some(), "{checksum:?}");
    assert_eq!(checksum.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"));
    assert!(out.object_parts().is_none(), "a single-part object has no parts");
    let out = attrs(None, &[ObjectAttributes::ObjectSize]).await.expect("only the size");
    assert_eq!((out.object_size(), out.e_tag(), out.checksum()), (Some(12), None, None));

    // A multipart object: its part count, and its composite checksum.
    let upload = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (n, body) in [(1, vec![b'a'; 5 * 1024 * 1024]), (2, b"tail".to_vec())] {
        let part = s3
            .upload_part()
            .bucket(&bucket)
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("part");
        let done = CompletedPart::builder().part_number(n).e_tag(part.e_tag().expect("etag"));
        parts.push(done.set_checksum_crc32(part.checksum_crc32().map(str::to_owned)).build());
    }
    let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let done = s3.complete_multipart_upload().bucket(&bucket).key("mp").upload_id(id).multipart_upload(completed);
    let done = done.send().await.expect("complete");
    let out = s3
        .get_object_attributes()
        .bucket(&bucket)
        .key("mp")
        .set_object_attributes(Some(ALL.to_vec()))
        .send()
        .await
        .expect("attributes of a multipart object");
    assert_eq!(out.e_tag(), done.e_tag().map(unquote));
    assert_eq!(out.object_parts().and_then(|p| p.total_parts_count()), Some(2));
    assert_eq!(out.object_size(), Some(5 * 1024 * 1024 + 4));
    // The composite checksum: the digest HEAD shows with its part count, without it here.
    let head = s3.head_object().bucket(&bucket).key("mp").checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled);
    let head = head.send().await.expect("head");
    let composite = head.checksum_crc32().expect("composite checksum");
    let digest = composite.strip_suffix("-2").expect("HEAD shows the part count");
    assert_eq!(out.checksum().and_then(|c| c.checksum_crc32()), Some(digest), "{:?}", out.checksum());
    assert_eq!(out.checksum().and_then(|c| c.checksum_type()).map(|t| t.as_str()), Some("COMPOSITE"));

    // Through the other region (a forwarded read): the same answer.
    let far = eu.get_object_attributes().bucket(&bucket).key("mp").set_object_attributes(Some(ALL.to_vec()));
    let far = far.send().await.expect("attributes through eu-west-1");
    assert_eq!((far.e_tag(), far.object_parts()), (out.e_tag(), out.object_parts()));

    // Missing keys, delete markers, unknown attributes.
    let res = s3.get_object_attributes().bucket(&bucket).key("nope").object_attributes(ObjectAttributes::Etag);
    expect_error(res.send().await, 404, Some("NoSuchKey"));
    let marker = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete").version_id.expect("dm");
    let err = expect_error(attrs(None, &[ObjectAttributes::Etag]).await, 404, Some("NoSuchKey"));
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    expect_error(attrs(Some(&marker), &[ObjectAttributes::Etag]).await, 405, Some("MethodNotAllowed"));
    let bad = ObjectAttributes::from("Color");
    expect_error(attrs(Some(&v1), &[bad]).await, 400, Some("InvalidArgument"));
}

/// Uploads `bodies` as parts 1, 2, … of upload `id`, each with its CRC32C; the parts for
/// CompleteMultipartUpload, each with the CRC32C the server answered.
async fn upload_crc32c_parts(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: &str,
    bodies: &[Vec<u8>],
) -> Vec<CompletedPart> {
    let mut parts = Vec::new();
    for (n, body) in (1..).zip(bodies) {
        let part = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("part");
        let crc = part.checksum_crc32_c().expect("part checksum");
        parts.push(
            CompletedPart::builder().part_number(n).e_tag(part.e_tag().expect("etag")).checksum_crc32_c(crc).build(),
        );
    }
    parts
}

/// The parts of an object uploaded with an additional checksum are kept after completion, as
/// S3 keeps them: GetObjectAttributes lists them (size and checksum, paged by `MaxParts` and
/// `PartNumberMarker`), and GET/HEAD with `partNumber` and checksum mode give that part's
/// checksum. A replica answers the same.
#[tokio::test]
async fn part_checksums_are_kept_listed_and_replicated() {
    let (_regions, sc, dc, src, dst) = crate::replication::pair("parts", false).await;
    let upload = sc
        .create_multipart_upload()
        .bucket(&src)
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .send()
        .await
        .expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let bodies = [vec![b'a'; 5 * 1024 * 1024], vec![b'b'; 5 * 1024 * 1024], b"tail".to_vec()];
    let parts = upload_crc32c_parts(&sc, &src, "mp", id, &bodies).await;
    let sent: Vec<(i32, i64, String)> = (1..)
        .zip(&parts)
        .zip(&bodies)
        .map(|((n, p), body)| (n, body.len() as i64, p.checksum_crc32_c().expect("part checksum").to_owned()))
        .collect();
    let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let done = sc.complete_multipart_upload().bucket(&src).key("mp").upload_id(id).multipart_upload(completed);
    let version = done.send().await.expect("complete").version_id().expect("version").to_owned();
    crate::replication::wait_completed(&sc, &src, "mp", &version).await;

    for (client, bucket) in [(&sc, &src), (&dc, &dst)] {
        let page = |max: i32, marker: Option<i32>| {
            client
                .get_object_attributes()
                .bucket(bucket.as_str())
                .key("mp")
                .object_attributes(ObjectAttributes::ObjectParts)
                .max_parts(max)
                .set_part_number_marker(marker.map(|m| m.to_string()))
                .send()
        };
        let first = page(2, None).await.expect("first page");
        let first = first.object_parts().expect("parts");
        assert_eq!((first.total_parts_count(), first.is_truncated()), (Some(3), Some(true)), "{bucket}");
        let next = first.next_part_number_marker().expect("next marker");
        let second = page(2, next.parse().ok()).await.expect("second page");
        let second = second.object_parts().expect("parts");
        assert_eq!(second.is_truncated(), Some(false));
        let listed: Vec<(i32, i64, String)> = first
            .parts()
            .iter()
            .chain(second.parts())
            .map(|p| {
                let crc = p.checksum_crc32_c().expect("part checksum").to_owned();
                (p.part_number().expect("number"), p.size().expect("size"), crc)
            })
            .collect();
        assert_eq!(listed, sent, "{bucket}");
        let get = client
            .get_object()
            .bucket(bucket.as_str())
            .key("mp")
            .part_number(2)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .expect("get part 2");
        assert_eq!(get.checksum_crc32_c(), Some(sent[1].2.as_str()), "{bucket}");
        assert_eq!(get.parts_count(), Some(3));
        assert_eq!(get.body.collect().await.expect("body").into_bytes().to_vec(), bodies[1]);
    }
}

/// `ChecksumType: FULL_OBJECT` (CRC algorithms only): the completed object's checksum is the
/// CRC of all its bytes, made from the parts' CRCs, equal to a single PUT's of the same bytes;
/// a whole-object CRC the client gives at completion is checked; the replica has the same.
#[tokio::test]
async fn full_object_multipart_checksums_are_the_whole_objects_crc() {
    use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
    let (_regions, sc, dc, src, dst) = crate::replication::pair("full", false).await;
    let bodies = [vec![b'p'; 5 * 1024 * 1024], b"and the rest".to_vec()];
    let whole: Vec<u8> = bodies.concat();
    // The reference: the server's CRC32C of the same bytes in one PUT.
    let single = sc
        .put_object()
        .bucket(&src)
        .key("single")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(whole.clone()))
        .send()
        .await
        .expect("single put");
    let reference = single.checksum_crc32_c().expect("single CRC32C").to_owned();

    let create = |alg: Option<ChecksumAlgorithm>| {
        sc.create_multipart_upload()
            .bucket(&src)
            .key("full")
            .set_checksum_algorithm(alg)
            .checksum_type(ChecksumType::FullObject)
            .send()
    };
    expect_error(create(Some(ChecksumAlgorithm::Sha256)).await, 400, Some("InvalidRequest"));
    expect_error(create(None).await, 400, Some("InvalidRequest"));
    let upload = create(Some(ChecksumAlgorithm::Crc32C)).await.expect("create upload");
    assert_eq!(upload.checksum_type(), Some(&ChecksumType::FullObject));
    let id = upload.upload_id().expect("upload id");
    let parts = upload_crc32c_parts(&sc, &src, "full", id, &bodies).await;
    let complete = |crc: &str| {
        sc.complete_multipart_upload()
            .bucket(&src)
            .key("full")
            .upload_id(id)
            .checksum_crc32_c(crc)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build())
            .send()
    };
    expect_error(complete("AAAAAA==").await, 400, Some("BadDigest"));
    let done = complete(&reference).await.expect("complete");
    assert_eq!(done.checksum_crc32_c(), Some(reference.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    let version = done.version_id().expect("version").to_owned();
    crate::replication::wait_completed(&sc, &src, "full", &version).await;
    for (client, bucket) in [(&sc, &src), (&dc, &dst)] {
        let head = client.head_object().bucket(bucket.as_str()).key("full").checksum_mode(ChecksumMode::Enabled);
        let head = head.send().await.expect("head");
        assert_eq!(head.checksum_crc32_c(), Some(reference.as_str()), "{bucket}");
        assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject), "{bucket}");
    }
}
