//! Multipart uploads: create/upload/complete and the multipart ETag, ListParts,
//! ListMultipartUploads, Abort, completion errors, UploadPartCopy with a range, and GET
//! with partNumber.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::common::*;

const MIB: usize = 1024 * 1024;
const PART: usize = 5 * MIB;

/// Deterministic, non-repeating-looking bytes.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// S3's multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::Digest as _;
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&md5::Md5::digest(p));
    }
    format!("{}-{}", md5_hex(&all), parts.len())
}

async fn upload_part(s3: &Client, bucket: &str, key: &str, upload_id: &str, n: i32, body: &[u8]) -> String {
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n}: {:?}", DebugSdkError(&e)))
        .e_tag
        .expect("part etag")
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts.iter().map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build()).collect(),
        ))
        .build()
}

#[tokio::test]
async fn multipart_complete_etag_list_parts_list_uploads_and_part_number_reads() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "mpu").await;
    let key = "big/object.bin";
    let created = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .content_type("application/x-big")
        .metadata("origin", "multipart")
        .send()
        .await
        .expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_owned();
    assert_eq!((created.bucket(), created.key()), (Some(bucket.as_str()), Some(key)));

    let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await.expect("list uploads");
    let listed: Vec<(&str, &str)> =
        uploads.uploads().iter().map(|u| (u.key().unwrap_or_default(), u.upload_id().unwrap_or_default())).collect();
    assert_eq!(listed, vec![(key, upload_id.as_str())]);

    let (p1, p2, p3) = (data(PART, 1), data(PART, 2), data(1234, 3));
    let e1 = upload_part(&s3, &bucket, key, &upload_id, 1, &p1).await;
    assert_eq!(unquote(&e1), md5_hex(&p1), "a part's ETag is its MD5");
    // Part 3 first with other bytes, then again: the later upload replaces it.
    upload_part(&s3, &bucket, key, &upload_id, 3, b"to be replaced").await;
    let e3 = upload_part(&s3, &bucket, key, &upload_id, 3, &p3).await;
    let e2 = upload_part(&s3, &bucket, key, &upload_id, 2, &p2).await;

    let parts = s3.list_parts().bucket(&bucket).key(key).upload_id(&upload_id).send().await.expect("list parts");
    let got: Vec<(i32, i64, &str)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or_default(), p.size().unwrap_or_default(), p.e_tag().unwrap_or_default()))
        .collect();
    assert_eq!(got, vec![(1, PART as i64, e1.as_str()), (2, PART as i64, e2.as_str()), (3, 1234, e3.as_str())]);
    assert_eq!(parts.is_truncated(), Some(false));
    let page = s3.list_parts().bucket(&bucket).key(key).upload_id(&upload_id).max_parts(2).send().await.expect("page");
    assert_eq!(page.parts().len(), 2);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let page = s3
        .list_parts()
        .bucket(&bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number_marker("2")
        .send()
        .await
        .expect("page 2");
    assert_eq!(page.parts().iter().filter_map(|p| p.part_number()).collect::<Vec<_>>(), vec![3]);

    // Nothing is visible before completion.
    expect_error(s3.head_object().bucket(&bucket).key(key).send().await, 404, None);

    let done = s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .expect("complete");
    let expected_etag = multipart_etag(&[&p1, &p2, &p3]);
    assert_eq!(done.e_tag().map(unquote), Some(expected_etag.as_str()));
    let version = done.version_id().expect("VER-7: Complete on Enabled returns a version id").to_owned();

    let head = s3.head_object().bucket(&bucket).key(key).send().await.expect("head");
    assert_eq!(head.e_tag().map(unquote), Some(expected_etag.as_str()));
    assert_eq!(head.content_length(), Some((2 * PART + 1234) as i64));
    assert_eq!(head.content_type(), Some("application/x-big"));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("multipart"));
    assert_eq!(head.version_id(), Some(version.as_str()));

    let whole = get_body(&s3, &bucket, key, None).await;
    assert!(
        whole.len() == 2 * PART + 1234
            && whole[..PART] == p1[..]
            && whole[PART..2 * PART] == p2[..]
            && whole[2 * PART..] == p3[..]
    );

    // GET/HEAD with partNumber return that part.
    for (n, body) in [(2, &p2), (3, &p3)] {
        let out = s3.get_object().bucket(&bucket).key(key).part_number(n).send().await.expect("get part");
        assert_eq!(out.parts_count(), Some(3));
        assert_eq!(out.content_length(), Some(body.len() as i64));
        let got = out.body.collect().await.unwrap().into_bytes();
        assert!(got.as_ref() == body.as_slice(), "part {n} content");
    }
    let head = s3.head_object().bucket(&bucket).key(key).part_number(1).send().await.expect("head part");
    assert_eq!((head.parts_count(), head.content_length()), (Some(3), Some(PART as i64)));
    expect_error(s3.get_object().bucket(&bucket).key(key).part_number(4).send().await, 416, None);

    // The upload is gone.
    let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    let res = s3.list_parts().bucket(&bucket).key(key).upload_id(&upload_id).send().await;
    expect_error(res, 404, Some("NoSuchUpload"));
    assert_eq!(all_versions(&s3, &bucket).await.len(), 1);
}

#[tokio::test]
async fn multipart_abort_and_completion_errors() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "mpu-errors").await;
    let create = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.create_multipart_upload().bucket(&bucket).key(key).send().await.expect("create").upload_id.expect("id")
        }
    };

    // Abort: the upload and its parts are gone.
    let id = create("aborted").await;
    upload_part(&s3, &bucket, "aborted", &id, 1, b"part").await;
    s3.abort_multipart_upload().bucket(&bucket).key("aborted").upload_id(&id).send().await.expect("abort");
    expect_error(s3.list_parts().bucket(&bucket).key("aborted").upload_id(&id).send().await, 404, Some("NoSuchUpload"));
    let res = s3
        .upload_part()
        .bucket(&bucket)
        .key("aborted")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    expect_error(res, 404, Some("NoSuchUpload"));
    let res = s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("aborted")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, "\"x\"")]))
        .send()
        .await;
    expect_error(res, 404, Some("NoSuchUpload"));
    let res = s3.abort_multipart_upload().bucket(&bucket).key("aborted").upload_id(&id).send().await;
    expect_error(res, 404, Some("NoSuchUpload"));
    // An upload id is bound to its key.
    let other = create("bound").await;
    let res = s3.list_parts().bucket(&bucket).key("not-bound").upload_id(&other).send().await;
    expect_error(res, 404, Some("NoSuchUpload"));

    // EntityTooSmall: a part other than the last is under 5 MiB.
    let id = create("small").await;
    let e1 = upload_part(&s3, &bucket, "small", &id, 1, b"tiny one").await;
    let e2 = upload_part(&s3, &bucket, "small", &id, 2, b"tiny two").await;
    let complete = |key: &'static str, id: String, parts: Vec<(i32, String)>| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            let parts: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            s3.complete_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .upload_id(id)
                .multipart_upload(completed(&parts))
                .send()
                .await
        }
    };
    let res = complete("small", id.clone(), vec![(1, e1.clone()), (2, e2.clone())]).await;
    expect_error(res, 400, Some("EntityTooSmall"));
    // InvalidPartOrder.
    let res = complete("small", id.clone(), vec![(2, e2.clone()), (1, e1.clone())]).await;
    expect_error(res, 400, Some("InvalidPartOrder"));
    // InvalidPart: wrong ETag, or a part never uploaded.
    let res = complete("small", id.clone(), vec![(1, "\"0123456789abcdef0123456789abcdef\"".into())]).await;
    expect_error(res, 400, Some("InvalidPart"));
    let res = complete("small", id.clone(), vec![(1, e1.clone()), (9, e2.clone())]).await;
    expect_error(res, 400, Some("InvalidPart"));
    // None of the failures made anything visible, and the upload is still there.
    expect_error(s3.head_object().bucket(&bucket).key("small").send().await, 404, None);
    // A single small part is a valid (last) part.
    let done = complete("small", id.clone(), vec![(2, e2.clone())]).await.expect("complete with one part");
    assert_eq!(done.e_tag().map(unquote), Some(multipart_etag(&[b"tiny two"]).as_str()));
    assert_eq!(done.version_id(), None, "VER-7: unversioned bucket");
    assert_eq!(get_body(&s3, &bucket, "small", None).await, b"tiny two");

    // Part numbers outside 1..=10000 are refused.
    let id = create("numbers").await;
    for n in [0, 10_001] {
        let res = s3
            .upload_part()
            .bucket(&bucket)
            .key("numbers")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        expect_error(res, 400, Some("InvalidArgument"));
    }
}

#[tokio::test]
async fn multipart_upload_part_copy_with_a_range() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "mpu-copy").await;
    let source = data(PART + 3 * 1024, 7);
    put(&s3, &bucket, "source", &source).await;

    let id = s3.create_multipart_upload().bucket(&bucket).key("assembled").send().await.unwrap().upload_id.unwrap();
    let copy = |n: i32, range: String| {
        s3.upload_part_copy()
            .bucket(&bucket)
            .key("assembled")
            .upload_id(&id)
            .part_number(n)
            .copy_source(format!("{bucket}/source"))
            .copy_source_range(range)
    };
    // Part 1 is uploaded, part 2 is a 5 MiB range from the middle of the source, part 3 (the
    // last, so it may be small) is the 100 bytes after the first 5 MiB.
    let head = data(PART, 8);
    let e1 = upload_part(&s3, &bucket, "assembled", &id, 1, &head).await;
    let c2 = copy(2, format!("bytes=1000-{}", 1000 + PART - 1)).send().await.expect("copy part 2");
    let e2 = c2.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_owned();
    assert_eq!(unquote(&e2), md5_hex(&source[1000..1000 + PART]));
    let c3 = copy(3, format!("bytes={}-{}", PART, PART + 99)).send().await.expect("copy part 3");
    let e3 = c3.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_owned();

    // A range past the end of the source is refused.
    let res = copy(4, format!("bytes=0-{}", source.len())).send().await;
    assert!(res.is_err(), "range past the end accepted");

    let done = s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .expect("complete");
    let (part2, part3) = (&source[1000..1000 + PART], &source[PART..PART + 100]);
    assert_eq!(done.e_tag().map(unquote), Some(multipart_etag(&[&head, part2, part3]).as_str()));
    let got = get_body(&s3, &bucket, "assembled", None).await;
    let expected = [head.as_slice(), part2, part3].concat();
    assert!(got == expected, "assembled object content ({} vs {} bytes)", got.len(), expected.len());
    let out = s3.get_object().bucket(&bucket).key("assembled").part_number(3).send().await.expect("part 3");
    assert_eq!(out.body.collect().await.unwrap().into_bytes().as_ref(), part3);
}
