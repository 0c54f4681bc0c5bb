//! Authentication and the error envelope: presigned URLs, wrong secret, unknown key,
//! anonymous requests, request ids on every error, malformed XML bodies, and
//! virtual-hosted-style addressing.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::BucketVersioningStatus;

use crate::common::*;

#[tokio::test]
async fn presigned_get_and_put_urls() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "presign").await;
    let http = http_client(None);
    let config = || PresigningConfig::expires_in(Duration::from_secs(300)).expect("presigning config");

    // PUT through a presigned URL.
    let presigned = s3.put_object().bucket(&bucket).key("via url/é").presigned(config()).await.expect("presign put");
    let mut req = http.put(presigned.uri()).body(b"uploaded with a URL".to_vec());
    for (name, value) in presigned.headers() {
        req = req.header(name, value);
    }
    let resp = RawResponse::read(req.send().await.expect("put")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get_body(&s3, &bucket, "via url/é", None).await, b"uploaded with a URL");

    // GET through a presigned URL.
    let presigned = s3.get_object().bucket(&bucket).key("via url/é").presigned(config()).await.expect("presign get");
    let resp = RawResponse::read(http.get(presigned.uri()).send().await.expect("get")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body.as_ref(), b"uploaded with a URL");

    // A tampered signature is refused.
    let uri = presigned.uri().to_owned();
    let at = uri.find("X-Amz-Signature=").expect("signature param") + "X-Amz-Signature=".len();
    let mut tampered = uri.clone();
    let flipped = if &uri[at..=at] == "0" { "1" } else { "0" };
    tampered.replace_range(at..=at, flipped);
    let resp = RawResponse::read(http.get(&tampered).send().await.expect("get")).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (403, Some("SignatureDoesNotMatch")), "{}", resp.text());
    // A presigned URL for another key does not open this one.
    let other = uri.replace("via%20url", "via%20other");
    let resp = RawResponse::read(http.get(&other).send().await.expect("get")).await;
    assert_eq!(resp.status, 403, "{}", resp.text());

    // An expired URL is refused.
    let expired = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("config");
    let presigned = s3.get_object().bucket(&bucket).key("via url/é").presigned(expired).await.expect("presign");
    let resp = RawResponse::read(http.get(presigned.uri()).send().await.expect("get")).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (403, Some("AccessDenied")), "{}", resp.text());
}

#[tokio::test]
async fn wrong_secret_and_unknown_access_key_are_refused() {
    let region = TestRegion::start("us-east-1", &[]);
    let bucket = create_bucket(&region.client(), "auth").await;

    let wrong_secret = region.client_with(ACCESS_KEY, "not-the-secret");
    expect_error(wrong_secret.list_buckets().send().await, 403, Some("SignatureDoesNotMatch"));
    let res = wrong_secret.put_object().bucket(&bucket).key("k").body(b"x".to_vec().into()).send().await;
    expect_error(res, 403, Some("SignatureDoesNotMatch"));

    let unknown = region.client_with("AKIDUNKNOWN", SECRET_KEY);
    expect_error(unknown.list_buckets().send().await, 403, Some("InvalidAccessKeyId"));
    expect_error(unknown.get_object().bucket(&bucket).key("k").send().await, 403, Some("InvalidAccessKeyId"));

    // Nothing was written.
    let listed = region.client().list_objects_v2().bucket(&bucket).send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn anonymous_requests_are_access_denied() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "anon").await;
    put(&s3, &bucket, "k", b"secret").await;

    for (method, path) in [
        ("GET", format!("/{bucket}/k")),
        ("GET", format!("/{bucket}")),
        ("GET", "/".to_owned()),
        ("PUT", format!("/{bucket}/new")),
        ("DELETE", format!("/{bucket}/k")),
    ] {
        let resp = region.anonymous(method, &path).await;
        assert_eq!(
            (resp.status, resp.error_code().as_deref()),
            (403, Some("AccessDenied")),
            "{method} {path}: {}",
            resp.text()
        );
        assert!(resp.header("x-amz-request-id").is_some(), "{method} {path}");
    }
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"secret");
    expect_error(s3.head_object().bucket(&bucket).key("new").send().await, 404, None);
}

/// Every error carries `x-amz-request-id`, and every error body is S3 error XML with a
/// `<Code>`, a `<Message>` and a `<RequestId>` equal to the header.
#[tokio::test]
async fn every_error_is_s3_error_xml_with_a_request_id() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "errors").await;
    put(&s3, &bucket, "k", b"x").await;
    let dm = s3.delete_object().bucket(&bucket).key("gone").send().await.unwrap().version_id.unwrap();

    // (method, path, body, status, code). s3s answers an invalid bucket name in the path
    // itself, with no <Message> (see the report); every other error has one.
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        ("GET", "/no-such-bucket-xr/k".into(), vec![], 404, "NoSuchBucket"),
        ("GET", format!("/{bucket}/missing"), vec![], 404, "NoSuchKey"),
        ("GET", format!("/{bucket}/gone"), vec![], 404, "NoSuchKey"),
        ("GET", format!("/{bucket}/gone?versionId={dm}"), vec![], 405, "MethodNotAllowed"),
        ("GET", format!("/{bucket}/k?versionId=bogus"), vec![], 400, "InvalidArgument"),
        ("PUT", format!("/{bucket}"), vec![], 409, "BucketAlreadyOwnedByYou"),
        ("DELETE", format!("/{bucket}"), vec![], 409, "BucketNotEmpty"),
        ("PUT", "/Bad_Bucket".into(), vec![], 400, "InvalidBucketName"),
        ("GET", format!("/{bucket}?tagging"), vec![], 404, "NoSuchTagSet"),
        ("GET", format!("/{bucket}?versions&version-id-marker={dm}"), vec![], 400, "InvalidArgument"),
        ("GET", format!("/{bucket}/k?uploadId=nope"), vec![], 404, "NoSuchUpload"),
    ];
    for (method, path, body, status, code) in cases {
        let resp = region.signed(method, &path, &[], &body).await;
        let text = resp.text();
        assert_eq!((resp.status, resp.error_code().as_deref()), (status, Some(code)), "{method} {path}: {text}");
        let header = resp.header("x-amz-request-id").unwrap_or_else(|| panic!("{method} {path}: no x-amz-request-id"));
        assert!(text.starts_with("<?xml"), "{method} {path}: {text}");
        assert!(text.contains("<Error>") && text.contains("</Error>"), "{method} {path}: {text}");
        if code != "InvalidBucketName" {
            assert!(xml_element(&text, "Message").is_some_and(|m| !m.is_empty()), "{method} {path}: {text}");
        }
        assert_eq!(xml_element(&text, "RequestId").as_deref(), Some(header), "{method} {path}: {text}");
        assert!(resp.header("content-type").is_some_and(|c| c.contains("xml")), "{method} {path}");
    }
    // Errors without a body (HEAD) still carry the header.
    let resp = region.signed("HEAD", &format!("/{bucket}/missing"), &[], b"").await;
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty());
    assert!(resp.header("x-amz-request-id").is_some());
    // Successful responses carry one too.
    let resp = region.signed("GET", &format!("/{bucket}/k"), &[], b"").await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("x-amz-request-id").is_some());
}

#[tokio::test]
async fn malformed_xml_bodies_are_rejected_and_change_nothing() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "malformed").await;
    put(&s3, &bucket, "keep", b"x").await;

    for body in [
        "<VersioningConfiguration><Status>Enabled",
        "not xml at all",
        "<VersioningConfiguration><Status>Enabled</Status></Versioning>",
    ] {
        let md5 = md5_b64(body.as_bytes());
        let resp =
            region.signed("PUT", &format!("/{bucket}?versioning"), &[("content-md5", &md5)], body.as_bytes()).await;
        assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("MalformedXML")), "{body}: {}", resp.text());
    }
    let out = s3.get_bucket_versioning().bucket(&bucket).send().await.expect("versioning");
    assert_eq!(out.status(), None, "versioning unchanged");

    for body in ["<Delete><Object><Key>keep</Key></Object>", "<Delete><Object><Key>keep</Key></Objekt></Delete>", "{}"]
    {
        let md5 = md5_b64(body.as_bytes());
        let resp = region.signed("POST", &format!("/{bucket}?delete"), &[("content-md5", &md5)], body.as_bytes()).await;
        assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("MalformedXML")), "{body}: {}", resp.text());
    }
    assert_eq!(get_body(&s3, &bucket, "keep", None).await, b"x");

    // The same endpoints work with well-formed bodies.
    set_versioning(&s3, &bucket, BucketVersioningStatus::Enabled).await;
    let body = "<Delete><Object><Key>keep</Key></Object></Delete>";
    let md5 = md5_b64(body.as_bytes());
    let resp = region.signed("POST", &format!("/{bucket}?delete"), &[("content-md5", &md5)], body.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    expect_error(s3.get_object().bucket(&bucket).key("keep").send().await, 404, Some("NoSuchKey"));
}

#[tokio::test]
async fn virtual_hosted_style_requests() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "vhost").await;

    let resp = region.signed_virtual_host(&bucket, "PUT", "/dir/virtual%20key", b"virtual body").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The object is the same one path style sees.
    assert_eq!(get_body(&s3, &bucket, "dir/virtual key", None).await, b"virtual body");

    let resp = region.signed_virtual_host(&bucket, "GET", "/dir/virtual%20key", b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body.as_ref(), b"virtual body");

    let resp = region.signed_virtual_host(&bucket, "GET", "/?list-type=2", b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(xml_element(&resp.text(), "Name").as_deref(), Some(bucket.as_str()));
    assert_eq!(xml_element(&resp.text(), "Key").as_deref(), Some("dir/virtual key"));

    let resp = region.signed_virtual_host(&bucket, "HEAD", "/", b"").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-bucket-region"), Some("us-east-1"));

    let resp = region.signed_virtual_host("no-such-bucket-xr", "GET", "/k", b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (404, Some("NoSuchBucket")), "{}", resp.text());
}

/// A request signed more than 15 minutes away from the server's clock is refused with 403
/// RequestTimeTooSkewed, whichever direction the clock is off; within the window it works.
#[tokio::test]
async fn clock_skew_beyond_fifteen_minutes_is_request_time_too_skewed() {
    let region = TestRegion::start("us-east-1", &[]);
    let client = http_client(None);
    let url = format!("{}/", region.endpoint());
    let send = |time: SystemTime| {
        let (client, url) = (&client, &url);
        async move { signed_request_at(client, "us-east-1", "GET", url, &[], b"", ACCESS_KEY, SECRET_KEY, time).await }
    };
    for skew in [Duration::from_secs(20 * 60), Duration::from_secs(60 * 60)] {
        for time in [SystemTime::now() - skew, SystemTime::now() + skew] {
            let resp = send(time).await;
            assert_eq!(
                (resp.status, resp.error_code().as_deref()),
                (403, Some("RequestTimeTooSkewed")),
                "{}",
                resp.text()
            );
        }
    }
    let resp = send(SystemTime::now() - Duration::from_secs(5 * 60)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}
