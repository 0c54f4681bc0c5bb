//! Objects: PUT/GET/HEAD with metadata and standard headers, ranges, conditional reads,
//! response-* overrides, CopyObject, DeleteObject(s), tagging, limits, odd keys, and
//! durability across SIGKILL.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier, Tag, Tagging, TaggingDirective};

use crate::common::*;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn object_put_get_head_with_metadata_and_standard_headers() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "objects").await;
    let expires = DateTime::from_secs(4_102_444_800); // 2100-01-01
    let put_out = s3
        .put_object()
        .bucket(&bucket)
        .key("docs/readme.txt")
        .body(ByteStream::from_static(ALPHABET))
        .content_type("text/plain; charset=utf-8")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"readme.txt\"")
        .content_language("en-GB")
        .cache_control("max-age=60")
        .expires(expires)
        .metadata("color", "blue")
        .metadata("Mixed-Case", "Value With Spaces")
        .send()
        .await
        .expect("put");
    let etag = put_out.e_tag().expect("etag").to_owned();
    assert_eq!(unquote(&etag), md5_hex(ALPHABET), "single-part ETag is the hex MD5");
    assert_eq!(put_out.version_id(), None, "VER-7: no version id on an unversioned bucket");

    let get = s3.get_object().bucket(&bucket).key("docs/readme.txt").send().await.expect("get");
    assert_eq!(get.e_tag(), Some(etag.as_str()));
    assert_eq!(get.content_length(), Some(26));
    assert_eq!(get.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(get.content_encoding(), Some("identity"));
    assert_eq!(get.content_disposition(), Some("attachment; filename=\"readme.txt\""));
    assert_eq!(get.content_language(), Some("en-GB"));
    assert_eq!(get.cache_control(), Some("max-age=60"));
    assert_eq!(get.expires_string(), Some("Fri, 01 Jan 2100 00:00:00 GMT"));
    assert_eq!(get.accept_ranges(), Some("bytes"));
    assert!(get.last_modified().is_some());
    let meta = get.metadata().expect("metadata");
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("mixed-case").map(String::as_str), Some("Value With Spaces"));
    assert_eq!(meta.len(), 2);
    assert_eq!(get.version_id(), None);
    assert_eq!(get.body.collect().await.unwrap().into_bytes().as_ref(), ALPHABET);

    let head = s3.head_object().bucket(&bucket).key("docs/readme.txt").send().await.expect("head");
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_length(), Some(26));
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.metadata().and_then(|m| m.get("color")).map(String::as_str), Some("blue"));
    assert_eq!(head.version_id(), None);

    // An empty object.
    let empty = put(&s3, &bucket, "empty", b"").await;
    assert_eq!(empty.e_tag().map(unquote), Some(md5_hex(b"").as_str()));
    assert_eq!(get_body(&s3, &bucket, "empty", None).await, Vec::<u8>::new());

    // Overwrite replaces content and metadata.
    put(&s3, &bucket, "docs/readme.txt", b"second").await;
    let head = s3.head_object().bucket(&bucket).key("docs/readme.txt").send().await.expect("head");
    assert_eq!(head.content_length(), Some(6));
    assert!(head.metadata().is_none_or(|m| m.is_empty()), "{:?}", head.metadata());

    // Missing key / bucket.
    let err = expect_error(s3.get_object().bucket(&bucket).key("missing").send().await, 404, Some("NoSuchKey"));
    assert!(header_of(&err, "x-amz-delete-marker").is_none());
    expect_error(s3.head_object().bucket(&bucket).key("missing").send().await, 404, None);
    expect_error(s3.get_object().bucket("no-such-bucket-xr").key("k").send().await, 404, Some("NoSuchBucket"));
    let res = s3.put_object().bucket("no-such-bucket-xr").key("k").body(ByteStream::from_static(b"x")).send().await;
    expect_error(res, 404, Some("NoSuchBucket"));
}

/// An object uploaded without a Content-Type is served with S3's default, `binary/octet-stream`,
/// whether it came by PutObject or by a multipart upload, and a copy keeps it.
#[tokio::test]
async fn objects_without_content_type_get_s3s_default() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "ctype").await;
    // A raw PUT: the SDK would send a Content-Type of its own.
    let put = region.signed("PUT", &format!("/{bucket}/plain"), &[], b"no type").await;
    assert_eq!(put.status, 200);
    let upload = s3.create_multipart_upload().bucket(&bucket).key("multi").send().await.expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let part = s3
        .upload_part()
        .bucket(&bucket)
        .key("multi")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .expect("part");
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("etag")).build())
        .build();
    s3.complete_multipart_upload()
        .bucket(&bucket)
        .key("multi")
        .upload_id(id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    s3.copy_object().bucket(&bucket).key("copy").copy_source(format!("{bucket}/plain")).send().await.expect("copy");
    for key in ["plain", "multi", "copy"] {
        let head = s3.head_object().bucket(&bucket).key(key).send().await.expect("head");
        assert_eq!(head.content_type(), Some("binary/octet-stream"), "{key}");
        let get = s3.get_object().bucket(&bucket).key(key).send().await.expect("get");
        assert_eq!(get.content_type(), Some("binary/octet-stream"), "{key}");
    }
}

/// An empty upload with `Expect: 100-continue` (what the AWS CLI and boto3 send for an empty
/// file) is answered with `Connection: close`, and the connection is closed: hyper sends no
/// `100 Continue` for an empty body, and botocore then misreads every later response on that
/// connection, each one stalling for its read timeout (see `expects_continue_without_body` in
/// `app.rs`). A body that is sent gets its `100 Continue` and keeps the connection.
#[tokio::test]
async fn empty_upload_expecting_continue_closes_the_connection() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let region = TestRegion::start("us-east-1", &[]);
    let bucket = create_bucket(&region.client(), "expect").await;
    let head = |key: &str, body: &[u8]| {
        let url = format!("{}/{bucket}/{key}", region.endpoint());
        let length = body.len().to_string();
        let own = [("expect", "100-continue"), ("content-length", length.as_str())];
        let signed = signature_headers(&Signer::root("us-east-1"), "PUT", &url, &own, body);
        let mut text = format!("PUT /{bucket}/{key} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n", region.port());
        for (name, value) in own.iter().map(|(n, v)| (n.to_string(), v.to_string())).chain(signed) {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text + "\r\n"
    };
    let guard = std::time::Duration::from_secs(20);
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", region.port()));

    let mut empty = connect().await.expect("connect");
    empty.write_all(head("empty", b"").as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(guard, empty.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after answering")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200 ok\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    let mut full = connect().await.expect("connect");
    full.write_all(head("full", b"bytes").as_bytes()).await.expect("send head");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(guard, full.read(&mut buf)).await.expect("an interim answer").expect("read");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).to_lowercase(), "http/1.1 100 continue\r\n\r\n");
    full.write_all(b"bytes").await.expect("send body");
    let n = tokio::time::timeout(guard, full.read(&mut buf)).await.expect("the final answer").expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(answer.starts_with("http/1.1 200 ok\r\n") && !answer.contains("connection: close"), "{answer}");

    let s3 = region.client();
    assert_eq!(get_body(&s3, &bucket, "empty", None).await, b"");
    assert_eq!(get_body(&s3, &bucket, "full", None).await, b"bytes");
}

#[tokio::test]
async fn object_ranges() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "ranges").await;
    put(&s3, &bucket, "abc", ALPHABET).await;
    let cases: [(&str, &[u8], &str); 5] = [
        ("bytes=0-4", b"abcde", "bytes 0-4/26"),
        ("bytes=10-12", b"klm", "bytes 10-12/26"),
        ("bytes=20-", b"uvwxyz", "bytes 20-25/26"),
        ("bytes=-3", b"xyz", "bytes 23-25/26"),
        ("bytes=24-1000", b"yz", "bytes 24-25/26"),
    ];
    for (range, body, content_range) in cases {
        let out = s3.get_object().bucket(&bucket).key("abc").range(range).send().await.expect(range);
        assert_eq!(out.content_range(), Some(content_range), "{range}");
        assert_eq!(out.content_length(), Some(body.len() as i64), "{range}");
        assert_eq!(out.body.collect().await.unwrap().into_bytes().as_ref(), body, "{range}");
        let head = s3.head_object().bucket(&bucket).key("abc").range(range).send().await.expect(range);
        assert_eq!(head.content_length(), Some(body.len() as i64), "HEAD {range}");
    }
    let res = s3.get_object().bucket(&bucket).key("abc").range("bytes=26-30").send().await;
    expect_error(res, 416, Some("InvalidRange"));
    // A whole-object GET is 200 with no Content-Range.
    let out = s3.get_object().bucket(&bucket).key("abc").send().await.expect("get");
    assert_eq!(out.content_range(), None);
}

#[tokio::test]
async fn object_conditional_get_and_head() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "conditional").await;
    let etag = put(&s3, &bucket, "k", b"payload").await.e_tag.expect("etag");
    let head = s3.head_object().bucket(&bucket).key("k").send().await.expect("head");
    let last_modified = head.last_modified().expect("last modified").secs();
    let past = DateTime::from_secs(last_modified - 3600);
    let future = DateTime::from_secs(last_modified + 3600);

    let get = || s3.get_object().bucket(&bucket).key("k");
    get().if_match(&etag).send().await.expect("If-Match with the ETag");
    get().if_match(unquote(&etag)).send().await.expect("If-Match without quotes");
    get().if_none_match("\"0123456789abcdef0123456789abcdef\"").send().await.expect("If-None-Match other");
    get().if_modified_since(past).send().await.expect("modified since the past");
    get().if_unmodified_since(future).send().await.expect("unmodified since the future");

    expect_error(get().if_match("\"0123456789abcdef0123456789abcdef\"").send().await, 412, Some("PreconditionFailed"));
    expect_error(get().if_unmodified_since(past).send().await, 412, Some("PreconditionFailed"));
    expect_error(get().if_none_match(&etag).send().await, 304, None);
    expect_error(get().if_none_match("*").send().await, 304, None);
    expect_error(get().if_modified_since(future).send().await, 304, None);
    // If-Match wins over If-Unmodified-Since; If-None-Match wins over If-Modified-Since.
    get().if_match(&etag).if_unmodified_since(past).send().await.expect("If-Match beats If-Unmodified-Since");
    expect_error(get().if_none_match(&etag).if_modified_since(past).send().await, 304, None);

    let head = || s3.head_object().bucket(&bucket).key("k");
    head().if_match(&etag).send().await.expect("HEAD If-Match");
    expect_error(head().if_match("\"ffffffffffffffffffffffffffffffff\"").send().await, 412, None);
    expect_error(head().if_none_match(&etag).send().await, 304, None);
    expect_error(head().if_modified_since(future).send().await, 304, None);
}

#[tokio::test]
async fn object_response_header_overrides() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "overrides").await;
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .content_type("text/plain")
        .cache_control("no-cache")
        .send()
        .await
        .expect("put");
    let out = s3
        .get_object()
        .bucket(&bucket)
        .key("k")
        .response_content_type("application/x-custom")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_content_language("fr")
        .response_content_encoding("identity")
        .response_cache_control("max-age=5")
        .response_expires(DateTime::from_secs(4_102_444_800))
        .send()
        .await
        .expect("get with overrides");
    assert_eq!(out.content_type(), Some("application/x-custom"));
    assert_eq!(out.content_disposition(), Some("attachment; filename=\"x.bin\""));
    assert_eq!(out.content_language(), Some("fr"));
    assert_eq!(out.content_encoding(), Some("identity"));
    assert_eq!(out.cache_control(), Some("max-age=5"));
    assert_eq!(out.expires_string(), Some("Fri, 01 Jan 2100 00:00:00 GMT"));
    // Overrides apply to that response only.
    let out = s3.get_object().bucket(&bucket).key("k").send().await.expect("get");
    assert_eq!(out.content_type(), Some("text/plain"));
    assert_eq!(out.cache_control(), Some("no-cache"));
}

#[tokio::test]
async fn copy_object_directives_versions_and_copy_to_self() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "copy").await;
    let other = create_bucket(&s3, "copy-dst").await;
    let v1 = s3
        .put_object()
        .bucket(&bucket)
        .key("src key+é")
        .body(ByteStream::from_static(b"version one"))
        .content_type("text/one")
        .metadata("n", "1")
        .tagging("t=1")
        .send()
        .await
        .expect("put v1")
        .version_id
        .expect("v1 id");
    let v2 = s3
        .put_object()
        .bucket(&bucket)
        .key("src key+é")
        .body(ByteStream::from_static(b"version two"))
        .content_type("text/two")
        .metadata("n", "2")
        .send()
        .await
        .expect("put v2")
        .version_id
        .expect("v2 id");
    let src = format!("{bucket}/{}", urlencoding::encode("src key+é"));

    // COPY (the default) keeps the source's metadata and tags; copies the current version.
    let out = s3.copy_object().bucket(&other).key("copied").copy_source(&src).send().await.expect("copy");
    let result = out.copy_object_result().expect("copy result");
    assert_eq!(result.e_tag().map(unquote), Some(md5_hex(b"version two").as_str()));
    assert_eq!(out.copy_source_version_id(), Some(v2.as_str()));
    assert_eq!(out.version_id(), None, "destination is unversioned");
    let head = s3.head_object().bucket(&other).key("copied").send().await.expect("head copy");
    assert_eq!(head.content_type(), Some("text/two"));
    assert_eq!(head.metadata().and_then(|m| m.get("n")).map(String::as_str), Some("2"));
    assert_eq!(get_body(&s3, &other, "copied", None).await, b"version two");

    // From a specific version, with its tags.
    let out = s3
        .copy_object()
        .bucket(&other)
        .key("from-v1")
        .copy_source(format!("{src}?versionId={v1}"))
        .metadata_directive(MetadataDirective::Copy)
        .send()
        .await
        .expect("copy v1");
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()));
    assert_eq!(get_body(&s3, &other, "from-v1", None).await, b"version one");
    let head = s3.head_object().bucket(&other).key("from-v1").send().await.expect("head");
    assert_eq!(head.content_type(), Some("text/one"));
    let tags = s3.get_object_tagging().bucket(&other).key("from-v1").send().await.expect("tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("t", "1")]);

    // REPLACE takes metadata (and, with the tagging directive, tags) from the request.
    s3.copy_object()
        .bucket(&other)
        .key("replaced")
        .copy_source(&src)
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/new")
        .metadata("fresh", "yes")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=tag")
        .send()
        .await
        .expect("copy replace");
    let head = s3.head_object().bucket(&other).key("replaced").send().await.expect("head");
    assert_eq!(head.content_type(), Some("application/new"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("fresh").map(String::as_str), Some("yes"));
    assert!(!meta.contains_key("n"), "{meta:?}");
    let tags = s3.get_object_tagging().bucket(&other).key("replaced").send().await.expect("tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("new", "tag")]);

    // Copy onto itself without any change is refused and creates nothing.
    let res = s3.copy_object().bucket(&bucket).key("src key+é").copy_source(&src).send().await;
    expect_error(res, 400, Some("InvalidRequest"));
    assert_eq!(all_versions(&s3, &bucket).await.len(), 2);
    // With REPLACE it is allowed and (VER-10) creates a new version.
    let out = s3
        .copy_object()
        .bucket(&bucket)
        .key("src key+é")
        .copy_source(&src)
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/three")
        .send()
        .await
        .expect("copy to self with REPLACE");
    let v3 = out.version_id().expect("VER-7: versioned copy returns a version id").to_owned();
    assert!(v3 != v1 && v3 != v2);
    let versions = all_versions(&s3, &bucket).await;
    assert_eq!(versions.len(), 3);
    assert_eq!((versions[0].1.as_str(), versions[0].2), (v3.as_str(), true));

    // Copying an older version onto its own key restores it as a new current version.
    let out = s3
        .copy_object()
        .bucket(&bucket)
        .key("src key+é")
        .copy_source(format!("{src}?versionId={v1}"))
        .send()
        .await
        .expect("restore v1 by copy");
    let v4 = out.version_id().expect("new version").to_owned();
    assert_eq!(get_body(&s3, &bucket, "src key+é", None).await, b"version one");
    assert_eq!(all_versions(&s3, &bucket).await.first().map(|e| e.1.clone()), Some(v4));

    // Missing source.
    let res = s3.copy_object().bucket(&other).key("x").copy_source(format!("{bucket}/nope")).send().await;
    expect_error(res, 404, Some("NoSuchKey"));
}

#[tokio::test]
async fn delete_object_and_delete_objects_quiet_and_verbose() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "deletes").await;
    for k in ["a", "b", "c", "d", "e"] {
        put(&s3, &bucket, k, k.as_bytes()).await;
    }
    // VER-15 unversioned: permanent, 204 without version headers, also for a missing key.
    let out = s3.delete_object().bucket(&bucket).key("a").send().await.expect("delete a");
    assert_eq!((out.delete_marker(), out.version_id()), (None, None));
    let out = s3.delete_object().bucket(&bucket).key("never-existed").send().await.expect("delete missing");
    assert_eq!((out.delete_marker(), out.version_id()), (None, None));
    expect_error(s3.head_object().bucket(&bucket).key("a").send().await, 404, None);

    let ids = |keys: &[&str]| {
        Delete::builder()
            .set_objects(Some(keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect()))
    };
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(ids(&["b", "c", "missing"]).build().unwrap())
        .send()
        .await
        .expect("verbose delete");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, vec!["b", "c", "missing"]);
    assert!(out.deleted().iter().all(|d| d.delete_marker().is_none() && d.version_id().is_none()));
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(ids(&["d", "e"]).quiet(true).build().unwrap())
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty(), "quiet mode reports only errors: {:?}", out.deleted());
    assert!(out.errors().is_empty());

    let listed = s3.list_objects_v2().bucket(&bucket).send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}

#[tokio::test]
async fn object_tagging_and_x_amz_tagging_on_put() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "otags").await;
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .tagging("project=x%20region&empty=&sp%C3%A9cial=caf%C3%A9")
        .send()
        .await
        .expect("put with tagging");
    let tags = s3.get_object_tagging().bucket(&bucket).key("k").send().await.expect("get tags");
    let mut pairs: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort_unstable();
    assert_eq!(pairs, vec![("empty", ""), ("project", "x region"), ("spécial", "café")]);
    let get = s3.get_object().bucket(&bucket).key("k").send().await.expect("get");
    assert_eq!(get.tag_count(), Some(3));

    let tagging = Tagging::builder().tag_set(Tag::builder().key("a").value("1").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket(&bucket).key("k").tagging(tagging).send().await.expect("put tags");
    let tags = s3.get_object_tagging().bucket(&bucket).key("k").send().await.expect("get tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("a", "1")]);

    s3.delete_object_tagging().bucket(&bucket).key("k").send().await.expect("delete tags");
    let tags = s3.get_object_tagging().bucket(&bucket).key("k").send().await.expect("get tags");
    assert!(tags.tag_set().is_empty());
    let get = s3.get_object().bucket(&bucket).key("k").send().await.expect("get");
    assert_eq!(get.tag_count(), None);

    // More than 10 tags is refused.
    let many = (0..11).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
    let res =
        s3.put_object().bucket(&bucket).key("many").body(ByteStream::from_static(b"x")).tagging(many).send().await;
    expect_error(res, 400, None);
    expect_error(s3.head_object().bucket(&bucket).key("many").send().await, 404, None);
    expect_error(s3.get_object_tagging().bucket(&bucket).key("missing").send().await, 404, Some("NoSuchKey"));
}

#[tokio::test]
async fn object_limits_metadata_too_large_and_key_length() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "limits").await;

    // 2 KB of user metadata is the limit (names + values).
    let fits = "v".repeat(2048 - 4);
    s3.put_object()
        .bucket(&bucket)
        .key("fits")
        .body(ByteStream::from_static(b"x"))
        .metadata("name", fits)
        .send()
        .await
        .expect("2 KB of metadata");
    let big = "v".repeat(2100);
    let res = s3
        .put_object()
        .bucket(&bucket)
        .key("big")
        .body(ByteStream::from_static(b"x"))
        .metadata("big", big)
        .send()
        .await;
    expect_error(res, 400, Some("MetadataTooLarge"));
    expect_error(s3.head_object().bucket(&bucket).key("big").send().await, 404, None);

    let key_1024 = format!("{}é", "k".repeat(1022));
    assert_eq!(key_1024.len(), 1024);
    put(&s3, &bucket, &key_1024, b"long key").await;
    assert_eq!(get_body(&s3, &bucket, &key_1024, None).await, b"long key");
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("kkk").send().await.expect("list");
    assert_eq!(listed.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec![key_1024.as_str()]);

    let key_1025 = "k".repeat(1025);
    let res = s3.put_object().bucket(&bucket).key(&key_1025).body(ByteStream::from_static(b"x")).send().await;
    expect_error(res, 400, Some("KeyTooLongError"));
}

#[tokio::test]
async fn keys_with_unicode_spaces_percent_plus_and_newlines_round_trip() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "oddkeys").await;
    let keys = KEYS_THAT_NEED_ESCAPING;
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body {i}");
        put(&s3, &bucket, key, body.as_bytes()).await;
        assert_eq!(get_body(&s3, &bucket, key, None).await, body.as_bytes(), "{key:?}");
        let head = s3.head_object().bucket(&bucket).key(*key).send().await.unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
        assert_eq!(head.content_length(), Some(body.len() as i64), "{key:?}");
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_unstable();

    let listed = s3.list_objects_v2().bucket(&bucket).send().await.expect("list");
    let got: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, expected);

    // encoding-type=url: the same keys, URL-encoded.
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("list url");
    let got: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(|k| urlencoding::decode(k).expect("url-decodable").into_owned())
        .collect();
    assert_eq!(got, expected);
    let listed = s3.list_object_versions().bucket(&bucket).send().await.expect("versions");
    let mut got: Vec<&str> = listed.versions().iter().filter_map(|v| v.key()).collect();
    got.sort_unstable();
    assert_eq!(got, expected);

    // Copy with an encoded copy source, then delete everything by name.
    let src = format!("{bucket}/{}", urlencoding::encode("line\nbreak"));
    s3.copy_object().bucket(&bucket).key("copy of line\nbreak").copy_source(src).send().await.expect("copy");
    assert_eq!(get_body(&s3, &bucket, "copy of line\nbreak", None).await, b"body 4");
    for key in keys.iter().copied().chain(["copy of line\nbreak"]) {
        s3.delete_object().bucket(&bucket).key(key).send().await.unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
    }
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}

/// Design invariant 1: an acknowledged write survives a crash (SIGKILL), versions keep
/// their ids and order, and new versions after the restart sort as newest (VER-8).
#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_restart() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "durable").await;
    let v1 = put(&s3, &bucket, "k", b"one").await.version_id.expect("v1");
    let v2 = put(&s3, &bucket, "k", b"two").await.version_id.expect("v2");
    put(&s3, &bucket, "gone", b"x").await;
    let dm = s3.delete_object().bucket(&bucket).key("gone").send().await.expect("delete").version_id.expect("dm");
    let before = all_versions(&s3, &bucket).await;

    region.kill();
    expect_error_transport(s3.head_bucket().bucket(&bucket).send().await);
    region.restart();

    let s3 = region.client();
    assert_eq!(all_versions(&s3, &bucket).await, before);
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"two");
    assert_eq!(get_body(&s3, &bucket, "k", Some(&v1)).await, b"one");
    let err = expect_error(s3.get_object().bucket(&bucket).key("gone").send().await, 404, Some("NoSuchKey"));
    assert_eq!(header_of(&err, "x-amz-version-id"), Some(dm.as_str()));
    let v3 = put(&s3, &bucket, "k", b"three").await.version_id.expect("v3");
    let after = all_versions(&s3, &bucket).await;
    let k_versions: Vec<&str> = after.iter().filter(|e| e.0 == "k").map(|e| e.1.as_str()).collect();
    assert_eq!(k_versions, vec![v3.as_str(), v2.as_str(), v1.as_str()]);
    let versioning = s3.get_bucket_versioning().bucket(&bucket).send().await.expect("versioning");
    assert_eq!(versioning.status(), Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled));
}

/// A request to a killed server fails without an HTTP response.
fn expect_error_transport<T: std::fmt::Debug, E: std::fmt::Debug>(
    res: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) {
    match res {
        Ok(v) => panic!("server answered after SIGKILL: {v:?}"),
        Err(e) => assert!(e.raw_response().is_none(), "got an HTTP answer from a killed server: {e:?}"),
    }
}
