//! Buckets: create/list/head/location/delete, naming and location errors, VER-18, tagging,
//! and the deployment-wide namespace across two regions.

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, Tag, Tagging};

use crate::common::*;

#[tokio::test]
async fn bucket_create_list_head_location_delete() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let a = bucket_name("alpha");
    let b = bucket_name("beta");
    for name in [&a, &b] {
        let out = s3.create_bucket().bucket(name).send().await.expect("create");
        assert_eq!(out.location(), Some(format!("/{name}").as_str()));
    }

    let listed = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.contains(&a.as_str()) && names.contains(&b.as_str()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "ListBuckets is sorted by name");
    assert!(listed.buckets().iter().all(|b| b.creation_date().is_some()));

    let head = s3.head_bucket().bucket(&a).send().await.expect("head bucket");
    assert_eq!(head.bucket_region(), Some("us-east-1"));

    // AWS reports us-east-1 as an empty LocationConstraint.
    let loc = s3.get_bucket_location().bucket(&a).send().await.expect("location");
    assert!(
        loc.location_constraint().is_none_or(|c| c.as_str().is_empty()),
        "us-east-1 is the empty constraint, got {:?}",
        loc.location_constraint()
    );

    s3.delete_bucket().bucket(&a).send().await.expect("delete bucket");
    let err = expect_error(s3.head_bucket().bucket(&a).send().await, 404, None);
    assert!(header_of(&err, "x-amz-request-id").is_some());
    expect_error(s3.delete_bucket().bucket(&a).send().await, 404, Some("NoSuchBucket"));
    expect_error(s3.get_bucket_location().bucket(&a).send().await, 404, Some("NoSuchBucket"));
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .expect("list")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert!(!names.contains(&a) && names.contains(&b));
}

#[tokio::test]
async fn bucket_create_errors() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let name = create_bucket(&s3, "dup").await;
    expect_error(s3.create_bucket().bucket(&name).send().await, 409, Some("BucketAlreadyOwnedByYou"));

    let wrong = bucket_name("wrong-region");
    let res = s3
        .create_bucket()
        .bucket(&wrong)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build(),
        )
        .send()
        .await;
    expect_error(res, 400, Some("IllegalLocationConstraintException"));
    expect_error(s3.head_bucket().bucket(&wrong).send().await, 404, None);

    for bad in ["Upper-Case", "under_score", "ab", "-leading", "trailing-", "a..b", "192.168.1.1"] {
        expect_error(s3.create_bucket().bucket(bad).send().await, 400, Some("InvalidBucketName"));
    }
    let long = "a".repeat(64);
    expect_error(s3.create_bucket().bucket(&long).send().await, 400, Some("InvalidBucketName"));
}

/// VER-18: DeleteBucket refuses while any version or delete marker remains.
#[tokio::test]
async fn ver18_bucket_not_empty_while_a_version_or_delete_marker_remains() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver18").await;
    let v1 = put(&s3, &bucket, "k", b"data").await.version_id.expect("version id");
    let dm = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete").version_id.expect("dm id");

    let err = expect_error(s3.delete_bucket().bucket(&bucket).send().await, 409, Some("BucketNotEmpty"));
    assert!(err.message().unwrap_or_default().contains("You must delete all versions"), "{:?}", err.message());

    // Only the delete marker is left: still not empty.
    s3.delete_object().bucket(&bucket).key("k").version_id(&v1).send().await.expect("delete version");
    expect_error(s3.delete_bucket().bucket(&bucket).send().await, 409, Some("BucketNotEmpty"));

    s3.delete_object().bucket(&bucket).key("k").version_id(&dm).send().await.expect("delete marker");
    assert!(all_versions(&s3, &bucket).await.is_empty());
    s3.delete_bucket().bucket(&bucket).send().await.expect("empty bucket deletes");

    // An unversioned bucket with one object is not empty either.
    let plain = create_bucket(&s3, "ver18-plain").await;
    put(&s3, &plain, "x", b"1").await;
    expect_error(s3.delete_bucket().bucket(&plain).send().await, 409, Some("BucketNotEmpty"));
    s3.delete_object().bucket(&plain).key("x").send().await.expect("delete");
    s3.delete_bucket().bucket(&plain).send().await.expect("delete empty");
}

#[tokio::test]
async fn bucket_tagging_put_get_delete() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "tags").await;
    expect_error(s3.get_bucket_tagging().bucket(&bucket).send().await, 404, Some("NoSuchTagSet"));

    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("storage").build().unwrap())
        .tag_set(Tag::builder().key("cost center").value("42 / é").build().unwrap())
        .build()
        .unwrap();
    s3.put_bucket_tagging().bucket(&bucket).tagging(tagging).send().await.expect("put tags");
    let got = s3.get_bucket_tagging().bucket(&bucket).send().await.expect("get tags");
    let mut pairs: Vec<(&str, &str)> = got.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort_unstable();
    assert_eq!(pairs, vec![("cost center", "42 / é"), ("team", "storage")]);

    // Replacing is whole-set.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("only").value("one").build().unwrap()).build().unwrap();
    s3.put_bucket_tagging().bucket(&bucket).tagging(tagging).send().await.expect("replace tags");
    let got = s3.get_bucket_tagging().bucket(&bucket).send().await.expect("get tags");
    assert_eq!(got.tag_set().len(), 1);
    assert_eq!(got.tag_set()[0].key(), "only");

    s3.delete_bucket_tagging().bucket(&bucket).send().await.expect("delete tags");
    expect_error(s3.get_bucket_tagging().bucket(&bucket).send().await, 404, Some("NoSuchTagSet"));

    // Duplicate keys are rejected and change nothing.
    let dup = Tagging::builder()
        .tag_set(Tag::builder().key("k").value("1").build().unwrap())
        .tag_set(Tag::builder().key("k").value("2").build().unwrap())
        .build()
        .unwrap();
    expect_error(s3.put_bucket_tagging().bucket(&bucket).tagging(dup).send().await, 400, Some("InvalidTag"));
    expect_error(s3.get_bucket_tagging().bucket(&bucket).send().await, 404, Some("NoSuchTagSet"));

    expect_error(s3.get_bucket_tagging().bucket("no-such-bucket-xr").send().await, 404, Some("NoSuchBucket"));
}

/// Two regions of one deployment: bucket names are unique across them, HeadBucket on any
/// region answers with the owner's `x-amz-bucket-region`, GetBucketLocation names the owner.
#[tokio::test]
async fn two_regions_share_one_bucket_namespace() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (&regions[0], &regions[1]);
    let (s3_us, s3_eu) = (us.client(), eu.client());

    let us_bucket = create_bucket(&s3_us, "owned-by-us").await;
    let eu_bucket = bucket_name("owned-by-eu");
    s3_eu
        .create_bucket()
        .bucket(&eu_bucket)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build(),
        )
        .send()
        .await
        .expect("create in eu-west-1 with its own constraint");

    // The name is taken deployment-wide.
    expect_error(s3_eu.create_bucket().bucket(&us_bucket).send().await, 409, Some("BucketAlreadyExists"));
    expect_error(s3_us.create_bucket().bucket(&eu_bucket).send().await, 409, Some("BucketAlreadyExists"));
    // ...and the owner still answers that it is yours.
    expect_error(s3_us.create_bucket().bucket(&us_bucket).send().await, 409, Some("BucketAlreadyOwnedByYou"));

    // ListBuckets from either region lists the whole deployment, each bucket with its region.
    for s3 in [&s3_us, &s3_eu] {
        let listed = s3.list_buckets().send().await.expect("list buckets");
        let regions: Vec<(&str, Option<&str>)> =
            listed.buckets().iter().map(|b| (b.name().unwrap_or_default(), b.bucket_region())).collect();
        assert!(regions.contains(&(us_bucket.as_str(), Some("us-east-1"))), "{regions:?}");
        assert!(regions.contains(&(eu_bucket.as_str(), Some("eu-west-1"))), "{regions:?}");
    }
    // ...paged with max-buckets and continuation tokens, filtered by region and prefix.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3_eu
            .list_buckets()
            .max_buckets(1)
            .set_continuation_token(token.take())
            .send()
            .await
            .expect("list a page of buckets");
        assert!(page.buckets().len() <= 1);
        paged.extend(page.buckets().iter().filter_map(|b| b.name().map(str::to_owned)));
        match page.continuation_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let all: Vec<String> = s3_eu
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(paged, all);
    let in_eu = s3_us.list_buckets().bucket_region("eu-west-1").send().await.expect("list eu-west-1 buckets");
    assert!(in_eu.buckets().iter().all(|b| b.bucket_region() == Some("eu-west-1")), "{in_eu:?}");
    assert!(in_eu.buckets().iter().any(|b| b.name() == Some(eu_bucket.as_str())), "{in_eu:?}");
    let by_prefix = s3_us.list_buckets().prefix(&us_bucket).send().await.expect("list by prefix");
    assert_eq!(by_prefix.prefix(), Some(us_bucket.as_str()));
    assert!(by_prefix.buckets().iter().all(|b| b.name().is_some_and(|n| n.starts_with(us_bucket.as_str()))));
    expect_error(s3_us.list_buckets().max_buckets(0).send().await, 400, Some("InvalidArgument"));

    // HeadBucket on any region: the owner's 200 with its region (forwarded: S3 answers
    // `301` at the wrong regional endpoint, which a client with one endpoint cannot follow).
    let head = s3_eu.head_bucket().bucket(&us_bucket).send().await.expect("head through eu");
    assert_eq!(head.bucket_region(), Some("us-east-1"));
    let head = s3_us.head_bucket().bucket(&eu_bucket).send().await.expect("head through us");
    assert_eq!(head.bucket_region(), Some("eu-west-1"));
    let head = s3_eu.head_bucket().bucket(&eu_bucket).send().await.expect("head on owner");
    assert_eq!(head.bucket_region(), Some("eu-west-1"));

    // GetBucketLocation from either region names the owner.
    for s3 in [&s3_us, &s3_eu] {
        let loc = s3.get_bucket_location().bucket(&eu_bucket).send().await.expect("location of eu bucket");
        assert_eq!(loc.location_constraint(), Some(&BucketLocationConstraint::EuWest1));
        let loc = s3.get_bucket_location().bucket(&us_bucket).send().await.expect("location of us bucket");
        assert!(loc.location_constraint().is_none_or(|c| c.as_str().is_empty()), "{loc:?}");
    }

    // A bucket's configuration on the wrong region: 301 PermanentRedirect naming the owner's
    // region and endpoint, as S3 answers at the wrong regional endpoint; nothing is written.
    let suspended = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
        .build();
    let res = s3_us.put_bucket_versioning().bucket(&eu_bucket).versioning_configuration(suspended).send().await;
    let err = expect_error(res, 301, Some("PermanentRedirect"));
    assert_eq!(header_of(&err, "x-amz-bucket-region"), Some("eu-west-1"));
    expect_error(s3_eu.delete_bucket().bucket(&us_bucket).send().await, 301, Some("PermanentRedirect"));
    // Reads are answered with the owner's answer (forwarded: tests/it/forwarded.rs).
    let listed = s3_us.list_objects_v2().bucket(&eu_bucket).send().await.expect("list through the wrong region");
    assert_eq!(listed.key_count(), Some(0));
    let raw = us.signed("GET", &format!("/{eu_bucket}/k"), &[], b"").await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (404, Some("NoSuchKey")));
    let versioning = b"<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
    let raw = us.signed("PUT", &format!("/{eu_bucket}?versioning"), &[], versioning).await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (301, Some("PermanentRedirect")));
    let body = String::from_utf8_lossy(&raw.body);
    let endpoint = eu.endpoint().trim_start_matches("http://").to_owned();
    assert!(body.contains(&format!("<Endpoint>{endpoint}</Endpoint>")), "{body}");
    assert!(body.contains(&format!("<Bucket>{eu_bucket}</Bucket>")) && body.contains("<RequestId>"), "{body}");
    let listed = s3_eu.list_objects_v2().bucket(&eu_bucket).send().await.expect("list on the owner");
    assert_eq!(listed.key_count(), Some(0));

    // A name nobody has is NoSuchBucket in both.
    let nobody = bucket_name("nobody");
    expect_error(s3_us.head_bucket().bucket(&nobody).send().await, 404, None);
    expect_error(s3_eu.get_bucket_location().bucket(&nobody).send().await, 404, Some("NoSuchBucket"));
    expect_error(s3_eu.get_object().bucket(&nobody).key("k").send().await, 404, Some("NoSuchBucket"));

    // Once the owner deletes it, the name is free in the other region.
    s3_us.delete_bucket().bucket(&us_bucket).send().await.expect("delete in us");
    s3_eu.create_bucket().bucket(&us_bucket).send().await.expect("name free again, created in eu");
    let head = s3_eu.head_bucket().bucket(&us_bucket).send().await.expect("head");
    assert_eq!(head.bucket_region(), Some("eu-west-1"));
}

/// The buckets a region holds itself (ListBuckets with `x-xregion-local-only`, as peers ask).
async fn local_bucket_names(region: &TestRegion) -> Vec<String> {
    let resp = region.signed("GET", "/", &[("x-xregion-local-only", "1")], b"").await;
    assert_eq!(resp.status, 200);
    let xml = String::from_utf8_lossy(&resp.body).into_owned();
    xml.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_owned).collect()
}

/// Bucket names are unique across the deployment even when two regions create the same new
/// name at the same moment: at most one creation succeeds, and exactly the region that
/// answered 200 holds the bucket. A region that gave way answered `OperationAborted` (try
/// again) or `BucketAlreadyExists`.
#[tokio::test]
async fn concurrent_creation_of_one_name_in_two_regions_leaves_one_bucket() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (us, eu) = (regions[0].client(), regions[1].client());
    for round in 0..12 {
        let name = bucket_name(&format!("race{round}"));
        let (a, b) = tokio::join!(us.create_bucket().bucket(&name).send(), eu.create_bucket().bucket(&name).send());
        let holders = [
            local_bucket_names(&regions[0]).await.contains(&name),
            local_bucket_names(&regions[1]).await.contains(&name),
        ];
        assert_eq!([a.is_ok(), b.is_ok()], holders, "round {round}: {a:?} / {b:?}");
        assert!(holders.iter().filter(|h| **h).count() <= 1, "round {round}: both regions hold {name}");
        for failed in [a.err(), b.err()].into_iter().flatten() {
            let code = failed.as_service_error().and_then(|e| e.meta().code()).map(str::to_owned);
            assert!(
                matches!(code.as_deref(), Some("OperationAborted" | "BucketAlreadyExists")),
                "round {round}: {code:?}"
            );
        }
    }
}
