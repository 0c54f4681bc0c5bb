//! SSE-C (keys the client sends with each request) end to end: what the API says, which key
//! opens what, what is on disk, multipart uploads and copies, and their replication (ELI-7).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectAttributes};
use base64::Engine as _;
use md5::Digest as _;

use crate::common::*;
use crate::encryption::{body_with, on_disk};
use crate::replication::{configure, eventually};

/// A customer key as the three header values: algorithm, base64 key, base64 MD5 of the key.
#[derive(Clone)]
pub(crate) struct Key {
    key: String,
    md5: String,
}

/// The three SSE-C headers on a request builder of the SDK.
pub(crate) trait WithKey: Sized {
    fn with_key(self, k: &Key) -> Self;

    fn with_key_opt(self, k: Option<&Key>) -> Self {
        match k {
            Some(k) => self.with_key(k),
            None => self,
        }
    }
}

macro_rules! with_key {
    ($($builder:path),*) => {$(
        impl WithKey for $builder {
            fn with_key(self, k: &Key) -> Self {
                self.sse_customer_algorithm("AES256").sse_customer_key(&k.key).sse_customer_key_md5(&k.md5)
            }
        }
    )*};
}
with_key!(
    aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
    aws_sdk_s3::operation::head_object::builders::HeadObjectFluentBuilder,
    aws_sdk_s3::operation::get_object_attributes::builders::GetObjectAttributesFluentBuilder,
    aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
    aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder,
    aws_sdk_s3::operation::upload_part_copy::builders::UploadPartCopyFluentBuilder,
    aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder
);

/// The copy source's three SSE-C headers (`x-amz-copy-source-…`) on a copy request builder.
trait WithSourceKey: Sized {
    fn with_source_key_opt(self, k: Option<&Key>) -> Self;
}

macro_rules! with_source_key {
    ($($builder:path),*) => {$(
        impl WithSourceKey for $builder {
            fn with_source_key_opt(self, k: Option<&Key>) -> Self {
                match k {
                    Some(k) => self
                        .copy_source_sse_customer_algorithm("AES256")
                        .copy_source_sse_customer_key(&k.key)
                        .copy_source_sse_customer_key_md5(&k.md5),
                    None => self,
                }
            }
        }
    )*};
}
with_source_key!(
    aws_sdk_s3::operation::upload_part_copy::builders::UploadPartCopyFluentBuilder,
    aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder
);

pub(crate) fn key(byte: u8) -> Key {
    let raw = [byte; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    Key { key: b64.encode(raw), md5: b64.encode(md5::Md5::digest(raw)) }
}

async fn put(client: &Client, bucket: &str, name: &str, body: &[u8], k: &Key) -> String {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(name)
        .body(ByteStream::from(body.to_vec()))
        .with_key(k)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {name}: {:?}", DebugSdkError(&e)));
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"), "{name}");
    assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()), "{name}");
    assert_eq!(out.server_side_encryption(), None, "SSE-C is not SSE-S3");
    out.version_id().expect("version id").to_owned()
}

async fn get(client: &Client, bucket: &str, name: &str, range: Option<&str>, k: &Key) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(name)
        .set_range(range.map(str::to_owned))
        .with_key(k)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {name}: {:?}", DebugSdkError(&e)));
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

/// Completes an upload (SSE-C needs no key for that).
async fn complete(
    client: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {key}: {:?}", DebugSdkError(&e)))
}

/// Small (inline) and large (blob) SSE-C objects open only with their key: without one a
/// read is `400`, with another `403`, and a key sent for an object stored without one is `400`
/// too (as on S3). Nothing of them is on disk in plaintext, also after a restart.
#[tokio::test]
async fn sse_c_objects_open_only_with_their_key() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssec").await;
    let (right, wrong) = (key(1), key(2));
    let small = body_with("ssec-small-secret-marker-0123456", 3_000);
    let large = body_with("ssec-large-secret-marker-0123456", 300_000);
    put(&s3, &bucket, "small", &small, &right).await;
    put(&s3, &bucket, "large", &large, &right).await;
    s3.put_object().bucket(&bucket).key("plain").body(ByteStream::from_static(b"plain")).send().await.expect("plain");

    for _ in 0..2 {
        let s3 = region.client();
        assert_eq!(get(&s3, &bucket, "small", None, &right).await, small);
        assert_eq!(get(&s3, &bucket, "large", None, &right).await, large);
        assert_eq!(get(&s3, &bucket, "large", Some("bytes=65000-140000"), &right).await, large[65000..140001]);
        let head =
            s3.head_object().bucket(&bucket).key("large").with_key(&right).send().await.expect("head with the key");
        assert_eq!(head.content_length(), Some(large.len() as i64));
        assert_eq!(head.sse_customer_key_md5(), Some(right.md5.as_str()));

        let no_key = s3.get_object().bucket(&bucket).key("small").send().await;
        let err = expect_error(no_key, 400, Some("InvalidRequest"));
        assert!(format!("{:?}", DebugSdkError(&err)).contains("correct parameters must be provided"), "{err:?}");
        expect_error(s3.head_object().bucket(&bucket).key("large").send().await, 400, None);
        let other = s3.get_object().bucket(&bucket).key("large").with_key(&wrong).send().await;
        expect_error(other, 403, Some("AccessDenied"));
        let not_applicable = s3.get_object().bucket(&bucket).key("plain").with_key(&right).send().await;
        expect_error(not_applicable, 400, Some("InvalidRequest"));
        let attributes = |k: Option<&Key>| {
            s3.get_object_attributes()
                .bucket(&bucket)
                .key("large")
                .object_attributes(ObjectAttributes::ObjectSize)
                .with_key_opt(k)
                .send()
        };
        expect_error(attributes(None).await, 400, Some("InvalidRequest"));
        assert_eq!(attributes(Some(&right)).await.expect("attributes with the key").object_size(), Some(300_000));

        for marker in ["ssec-small-secret-marker-0123456", "ssec-large-secret-marker-0123456"] {
            assert!(!on_disk(region.data_dir(), marker), "{marker} is on disk in plaintext");
        }
        region.restart();
    }
}

/// S3's checks of the three headers, each a `400` that stores nothing.
#[tokio::test]
async fn bad_sse_c_headers_are_refused_and_store_nothing() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssec-bad").await;
    let (k, other) = (key(3), key(4));
    let short = base64::engine::general_purpose::STANDARD.encode([3u8; 16]);
    let short_md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest([3u8; 16]));
    let cases: [(&str, &str, &str, &str); 4] = [
        ("AES256", &k.key, &other.md5, "InvalidArgument"),
        ("AES256", &short, &short_md5, "InvalidArgument"),
        ("AES128", &k.key, &k.md5, "InvalidEncryptionAlgorithmError"),
        ("AES256", "***", &k.md5, "InvalidArgument"),
    ];
    for (algorithm, key, md5, code) in cases {
        let r = s3
            .put_object()
            .bucket(&bucket)
            .key("bad")
            .body(ByteStream::from_static(b"x"))
            .sse_customer_algorithm(algorithm)
            .sse_customer_key(key)
            .sse_customer_key_md5(md5)
            .send()
            .await;
        expect_error(r, 400, Some(code));
    }
    let both = s3
        .put_object()
        .bucket(&bucket)
        .key("bad")
        .body(ByteStream::from_static(b"x"))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .with_key(&k)
        .send()
        .await;
    expect_error(both, 400, Some("InvalidArgument"));
    assert!(all_versions(&s3, &bucket).await.is_empty(), "refused writes store nothing");
}

/// A multipart upload keeps its customer key: every part needs it (`400` without, `403` with
/// another), completion does not; UploadPartCopy and CopyObject read an SSE-C source with the
/// `x-amz-copy-source-…` key and write as their own headers say (a copy onto itself with a
/// new key changes the key).
#[tokio::test]
async fn multipart_uploads_and_copies_carry_their_keys() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssec-mpu").await;
    let (k, other) = (key(5), key(6));
    let first = body_with("ssec-part-one-secret-marker-0123", 5 * 1024 * 1024);
    let last = body_with("ssec-part-two-secret-marker-0123", 70_000);
    let upload =
        s3.create_multipart_upload().bucket(&bucket).key("mpu").with_key(&k).send().await.expect("create upload");
    assert_eq!(upload.sse_customer_key_md5(), Some(k.md5.as_str()));
    let id = upload.upload_id().expect("upload id").to_owned();
    let part = |n: i32, body: &[u8], key: Option<&Key>| {
        s3.upload_part()
            .bucket(&bucket)
            .key("mpu")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.to_vec()))
            .with_key_opt(key)
            .send()
    };
    // (Small bodies: an answer before a large body is read can reach the client as a broken
    // connection instead.)
    expect_error(part(1, b"x", None).await, 400, Some("InvalidRequest"));
    expect_error(part(1, b"x", Some(&other)).await, 403, Some("AccessDenied"));
    let p1 = part(1, &first, Some(&k)).await.expect("part 1");
    assert_eq!(p1.sse_customer_key_md5(), Some(k.md5.as_str()));
    put(&s3, &bucket, "src", &last, &k).await;
    let copy_part = |key: Option<&Key>| {
        s3.upload_part_copy()
            .bucket(&bucket)
            .key("mpu")
            .upload_id(&id)
            .part_number(2)
            .copy_source(format!("{bucket}/src"))
            .with_key(&k)
            .with_source_key_opt(key)
            .send()
    };
    expect_error(copy_part(None).await, 400, Some("InvalidRequest"));
    let p2 = copy_part(Some(&k)).await.expect("part 2 copied from an SSE-C source");
    let parts = vec![
        CompletedPart::builder().part_number(1).e_tag(p1.e_tag().expect("etag")).build(),
        CompletedPart::builder()
            .part_number(2)
            .e_tag(p2.copy_part_result().and_then(|r| r.e_tag()).expect("etag"))
            .build(),
    ];
    complete(&s3, &bucket, "mpu", &id, parts).await;
    let whole: Vec<u8> = first.iter().chain(&last).copied().collect();
    assert_eq!(get(&s3, &bucket, "mpu", None, &k).await, whole);
    let boundary = first.len();
    let r = format!("bytes={}-{}", boundary - 100, boundary + 100);
    assert_eq!(get(&s3, &bucket, "mpu", Some(&r), &k).await, whole[boundary - 100..boundary + 101]);

    // CopyObject: SSE-C → plain, then the source onto itself under another key.
    let copy = |target: &str, source_key: Option<&Key>, new_key: Option<&Key>| {
        s3.copy_object()
            .bucket(&bucket)
            .key(target)
            .copy_source(format!("{bucket}/src"))
            .with_source_key_opt(source_key)
            .with_key_opt(new_key)
            .send()
    };
    expect_error(copy("plain", None, None).await, 400, Some("InvalidRequest"));
    expect_error(copy("plain", Some(&other), None).await, 403, Some("AccessDenied"));
    copy("plain", Some(&k), None).await.expect("copy out of SSE-C");
    assert_eq!(get_body(&s3, &bucket, "plain", None).await, last);
    let rekeyed = copy("src", Some(&k), Some(&other)).await.expect("copy onto itself under a new key");
    assert_eq!(rekeyed.sse_customer_key_md5(), Some(other.md5.as_str()));
    assert_eq!(get(&s3, &bucket, "src", None, &other).await, last);
    for marker in ["ssec-part-one-secret-marker-0123", "ssec-part-two-secret-marker-0123"] {
        let copies_in_plain = marker.starts_with("ssec-part-two");
        assert_eq!(on_disk(region.data_dir(), marker), copies_in_plain, "{marker}: only the plain copy shows it");
    }
}

/// The replication status and ETag of an SSE-C version (HEAD needs its key).
pub(crate) async fn head_status(
    client: &Client,
    bucket: &str,
    name: &str,
    version: &str,
    k: &Key,
) -> (Option<String>, String) {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(name)
        .version_id(version)
        .with_key(k)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {name}: {:?}", DebugSdkError(&e)));
    (head.replication_status().map(|s| s.as_str().to_owned()), head.e_tag().unwrap_or_default().to_owned())
}

/// ELI-7: SSE-C versions replicate (small, large, multipart, empty, a tag change, a delete
/// marker). The source cannot open them, so their sealed pieces travel as stored and the
/// destination keeps them so: the replica has the same version id and ETag, is `REPLICA`,
/// opens with the same client key (whole and by range across a part boundary) and with no
/// other, and its region holds none of the plaintext.
#[tokio::test]
async fn sse_c_versions_replicate_sealed() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "ssec-repl-src").await;
    let dst = create_versioned_bucket(&dc, "ssec-repl-dst").await;
    configure(&sc, &src, &dst, true).await;
    let (k, other) = (key(7), key(9));
    let small = body_with("ssec-repl-small-marker-012345678", 3_000);
    let large = body_with("ssec-repl-large-marker-012345678", 300_000);
    let mut versions = vec![
        ("small", put(&sc, &src, "small", &small, &k).await, small.clone()),
        ("large", put(&sc, &src, "large", &large, &k).await, large.clone()),
        ("empty", put(&sc, &src, "empty", b"", &k).await, Vec::new()),
    ];
    let first = body_with("ssec-repl-part-one-marker-012345", 5 * 1024 * 1024);
    let last = body_with("ssec-repl-part-two-marker-012345", 70_000);
    let upload = sc.create_multipart_upload().bucket(&src).key("mpu").with_key(&k).send().await.expect("create");
    let id = upload.upload_id().expect("upload id").to_owned();
    let mut parts = Vec::new();
    for (n, body) in [(1, &first), (2, &last)] {
        let part = sc
            .upload_part()
            .bucket(&src)
            .key("mpu")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .with_key(&k)
            .send()
            .await
            .expect("part");
        parts.push(CompletedPart::builder().part_number(n).e_tag(part.e_tag().expect("etag")).build());
    }
    let done = complete(&sc, &src, "mpu", &id, parts).await;
    let whole: Vec<u8> = first.iter().chain(&last).copied().collect();
    versions.push(("mpu", done.version_id().expect("version").to_owned(), whole.clone()));

    for (name, version, body) in &versions {
        let source_etag = eventually(&format!("{name} COMPLETED"), || async {
            let (status, etag) = head_status(&sc, &src, name, version, &k).await;
            assert_ne!(status.as_deref(), Some("FAILED"), "{name}");
            (status.as_deref() == Some("COMPLETED")).then_some(etag)
        })
        .await;
        let (status, etag) = head_status(&dc, &dst, name, version, &k).await;
        assert_eq!((status.as_deref(), etag.as_str()), (Some("REPLICA"), source_etag.as_str()), "{name}");
        let got = dc.get_object().bucket(&dst).key(*name).version_id(version).with_key(&k).send().await;
        let got = got.unwrap_or_else(|e| panic!("get replica {name}: {:?}", DebugSdkError(&e)));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().to_vec(), *body, "{name}");
    }
    let boundary = first.len();
    let r = format!("bytes={}-{}", boundary - 100, boundary + 100);
    assert_eq!(get(&dc, &dst, "mpu", Some(&r), &k).await, whole[boundary - 100..boundary + 101]);
    let other_key = dc.get_object().bucket(&dst).key("large").with_key(&other).send().await;
    expect_error(other_key, 403, Some("AccessDenied"));
    expect_error(dc.get_object().bucket(&dst).key("small").send().await, 400, Some("InvalidRequest"));

    // A tag change and a delete marker follow, as for any version.
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("kept").value("yes").build().expect("tag"))
        .build()
        .expect("tagging");
    sc.put_object_tagging().bucket(&src).key("large").tagging(tagging).send().await.expect("tag");
    sc.delete_object().bucket(&src).key("small").send().await.expect("delete");
    eventually("the tag and the marker replicated", || async {
        let tags = dc.get_object_tagging().bucket(&dst).key("large").send().await.ok()?;
        let marker = dc.get_object().bucket(&dst).key("small").with_key(&k).send().await.is_err();
        (tags.tag_set().len() == 1 && marker).then_some(())
    })
    .await;
    for marker in [
        "ssec-repl-small-marker-012345678",
        "ssec-repl-large-marker-012345678",
        "ssec-repl-part-one-marker-012345",
        "ssec-repl-part-two-marker-012345",
    ] {
        for region in &regions {
            assert!(!on_disk(region.data_dir(), marker), "{marker} is on disk in plaintext");
        }
    }
}

/// A copy reads an SSE-C source in another region's bucket with the `x-amz-copy-source-…` key,
/// which goes along with the read (the regions' connection is loopback here): the copy is
/// made; without the key it is `400`, with another `403`, as for a local source.
#[tokio::test]
async fn an_sse_c_source_in_another_region_is_copied_with_its_key() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (here, there) = (regions[0].client(), regions[1].client());
    let local = create_versioned_bucket(&here, "ssec-copy-here").await;
    let remote = create_versioned_bucket(&there, "ssec-copy-there").await;
    let (k, other) = (key(12), key(13));
    let body = body_with("ssec-remote-copy-marker-01234567", 300_000);
    put(&there, &remote, "src", &body, &k).await;
    let copy = |source_key: Option<&Key>| {
        here.copy_object()
            .bucket(&local)
            .key("copy")
            .copy_source(format!("{remote}/src"))
            .with_source_key_opt(source_key)
            .with_key(&other)
            .send()
    };
    expect_error(copy(None).await, 400, Some("InvalidRequest"));
    expect_error(copy(Some(&other)).await, 403, Some("AccessDenied"));
    let done = copy(Some(&k)).await.unwrap_or_else(|e| panic!("copy: {:?}", DebugSdkError(&e)));
    assert_eq!(done.sse_customer_key_md5(), Some(other.md5.as_str()));
    assert_eq!(get(&here, &local, "copy", None, &other).await, body);
}

/// A master key rotation leaves SSE-C versions and uploads as they are (their data keys are
/// wrapped by the customer's key, which the region does not have): the re-wrap pass goes
/// past them, retires the old master key, and they still open with their keys.
#[tokio::test]
async fn a_master_key_rotation_passes_over_sse_c_data() {
    let mut region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ssec-rotate").await;
    let k = key(8);
    let body = body_with("ssec-rotate-secret-marker-012345", 100_000);
    put(&s3, &bucket, "object", &body, &k).await;
    let upload =
        s3.create_multipart_upload().bucket(&bucket).key("upload").with_key(&k).send().await.expect("create upload");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xregion"))
        .args(["keys", "rotate", "--data"])
        .arg(region.data_dir())
        .env_remove("XREGION_CONFIG")
        .env_remove("XREGION_SSE_MASTER_KEY_FILE")
        .output()
        .expect("run xregion keys rotate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    region.restart();
    let retired = region.data_dir().join("keys/sse-master.retired");
    eventually("key 1 retired after the re-wrap", || async { retired.try_exists().expect("stat").then_some(()) }).await;
    let s3 = region.client();
    assert_eq!(get(&s3, &bucket, "object", None, &k).await, body);
    let part = s3
        .upload_part()
        .bucket(&bucket)
        .key("upload")
        .upload_id(upload.upload_id().expect("upload id"))
        .part_number(1)
        .body(ByteStream::from_static(b"after the rotation"))
        .with_key(&k)
        .send()
        .await;
    part.expect("the upload still takes parts under its customer key");
}

/// A sealed replica of an SSE-C version of 10 000 parts names every piece in its request head
/// (about 550 KiB with the part sizes): a region reads a head that large (hyper's default
/// refuses one over about 400 KiB with `431`, which would leave the task PENDING for ever).
#[tokio::test]
async fn a_request_head_as_large_as_a_sealed_replica_of_ten_thousand_parts_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let region = TestRegion::start("us-east-1", &[]);
    let addr = region.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let pieces = "0123456789abcdef0123456789abcdef:5242880,".repeat(14_000);
    assert!(pieces.len() > 550_000);
    let request = format!(
        "GET /no-such-bucket/k HTTP/1.1\r\nHost: {addr}\r\nx-xregion-sealed-pieces: {pieces}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    assert!(!status.contains("431") && answer.contains("<Error>"), "{status}");
}
