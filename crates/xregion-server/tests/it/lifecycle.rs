//! Bucket lifecycle end to end (spec §1.7: VER-21, DEL-5, STS-9), on regions whose lifecycle
//! "day" lasts one second (`--lifecycle-day-seconds 1`, a testing knob): the configuration
//! API as S3 answers it, then each action taking effect, and lifecycle's delete markers
//! staying out of replication.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, Transition, TransitionStorageClass,
};

use crate::common::*;
use crate::replication::{configure, eventually, wait_completed};

/// A rule `id` on keys under `prefix`.
fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

async fn put_rules(client: &Client, bucket: &str, rules: Vec<LifecycleRule>) {
    let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().expect("config");
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put lifecycle: {:?}", DebugSdkError(&e)));
}

fn region() -> TestRegion {
    TestRegion::start_with("us-east-1", &[], &["--lifecycle-day-seconds", "1"])
}

/// Put, Get, Delete as S3 answers them; a transition is refused (one storage class), and so
/// is a configuration S3 refuses.
#[tokio::test]
async fn lifecycle_configuration_api() {
    let r = region();
    let c = r.client();
    let bucket = create_versioned_bucket(&c, "lc-api").await;
    let missing = c.get_bucket_lifecycle_configuration().bucket(&bucket).send().await;
    expect_error(missing, 404, Some("NoSuchLifecycleConfiguration"));
    let noncurrent = NoncurrentVersionExpiration::builder().noncurrent_days(30).newer_noncurrent_versions(2).build();
    let rules = vec![
        rule("old-versions", "").noncurrent_version_expiration(noncurrent).build().expect("rule"),
        rule("tmp", "tmp/")
            .expiration(LifecycleExpiration::builder().days(7).build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
            )
            .build()
            .expect("rule"),
    ];
    put_rules(&c, &bucket, rules.clone()).await;
    let got = c.get_bucket_lifecycle_configuration().bucket(&bucket).send().await.expect("get");
    assert_eq!(got.rules(), rules.as_slice());

    let zero = rule("zero", "").expiration(LifecycleExpiration::builder().days(0).build()).build().expect("rule");
    let config = BucketLifecycleConfiguration::builder().rules(zero).build().expect("config");
    let refused = c.put_bucket_lifecycle_configuration().bucket(&bucket).lifecycle_configuration(config).send().await;
    let err = expect_error(refused, 400, Some("InvalidArgument"));
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::message(&err),
        Some("'Days' for Expiration action must be a positive integer")
    );
    let transition = Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build();
    let cold = rule("cold", "").transitions(transition).build().expect("rule");
    let config = BucketLifecycleConfiguration::builder().rules(cold).build().expect("config");
    let refused = c.put_bucket_lifecycle_configuration().bucket(&bucket).lifecycle_configuration(config).send().await;
    expect_error(refused, 501, Some("NotImplemented"));
    // Refusals changed nothing.
    let got = c.get_bucket_lifecycle_configuration().bucket(&bucket).send().await.expect("get");
    assert_eq!(got.rules(), rules.as_slice());

    let deleted = c.delete_bucket_lifecycle().bucket(&bucket).send().await;
    deleted.unwrap_or_else(|e| panic!("delete: {:?}", DebugSdkError(&e)));
    let missing = c.get_bucket_lifecycle_configuration().bucket(&bucket).send().await;
    expect_error(missing, 404, Some("NoSuchLifecycleConfiguration"));
    c.delete_bucket_lifecycle().bucket(&bucket).send().await.expect("delete again");
}

/// Each action, on one-second days: noncurrent versions beyond the newest kept one go,
/// current versions under `tmp/` get a delete marker, a delete marker left alone goes, and
/// an upload left incomplete is aborted.
#[tokio::test]
async fn lifecycle_actions_take_effect() {
    let r = region();
    let c = r.client();
    let bucket = create_versioned_bucket(&c, "lc-act").await;
    let v1 = put(&c, &bucket, "k", b"one").await.version_id.expect("vid");
    let v2 = put(&c, &bucket, "k", b"two").await.version_id.expect("vid");
    let v3 = put(&c, &bucket, "k", b"three").await.version_id.expect("vid");
    let tmp = put(&c, &bucket, "tmp/x", b"scratch").await.version_id.expect("vid");
    let gone = put(&c, &bucket, "gone/x", b"deleted").await.version_id.expect("vid");
    c.delete_object().bucket(&bucket).key("gone/x").send().await.expect("delete");
    let upload = c.create_multipart_upload().bucket(&bucket).key("up/x").send().await.expect("upload");
    let upload_id = upload.upload_id().expect("upload id").to_owned();

    let keep_one = NoncurrentVersionExpiration::builder().noncurrent_days(1).newer_noncurrent_versions(1).build();
    let marker = LifecycleExpiration::builder().expired_object_delete_marker(true).build();
    let abort = AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build();
    put_rules(
        &c,
        &bucket,
        vec![
            rule("noncurrent", "k").noncurrent_version_expiration(keep_one).build().expect("rule"),
            rule("tmp", "tmp/").expiration(LifecycleExpiration::builder().days(2).build()).build().expect("rule"),
            rule("markers", "gone/")
                .expiration(marker)
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .build()
                .expect("rule"),
            rule("uploads", "up/").abort_incomplete_multipart_upload(abort).build().expect("rule"),
        ],
    )
    .await;

    let versions_of = |key: &'static str| {
        let (c, bucket) = (c.clone(), bucket.clone());
        async move {
            all_versions(&c, &bucket).await.into_iter().filter(|v| v.0 == key).map(|v| (v.1, v.3)).collect::<Vec<_>>()
        }
    };
    // `k`: v1 goes (one newer noncurrent version, v2, is kept); v2 and v3 stay.
    eventually("v1 to be removed", || async {
        let ids: Vec<String> = versions_of("k").await.into_iter().map(|v| v.0).collect();
        (ids == [v3.clone(), v2.clone()]).then_some(())
    })
    .await;
    // `tmp/x`: a delete marker on top; the version itself is kept, noncurrent.
    eventually("tmp/x to expire", || async {
        let v = versions_of("tmp/x").await;
        (v.len() == 2 && v[0].1 && v[1].0 == tmp).then_some(())
    })
    .await;
    // `gone/x`: its version went as noncurrent, then the marker left alone.
    eventually("gone/x to disappear", || async { versions_of("gone/x").await.is_empty().then_some(()) }).await;
    let _ = gone;
    // The upload is aborted.
    eventually("the upload to be aborted", || async {
        let listed = c.list_multipart_uploads().bucket(&bucket).send().await.ok()?;
        listed.uploads().iter().all(|u| u.upload_id() != Some(upload_id.as_str())).then_some(())
    })
    .await;
    // The current version of `k` is untouched.
    assert_eq!(get_body(&c, &bucket, "k", None).await, b"three");
    assert!(versions_of("k").await.iter().all(|v| v.0 != v1));
    // The operator report counts what was done.
    let resp = r.signed("GET", "/_xregion/replication", &[], b"").await;
    let report: serde_json::Value = serde_json::from_slice(&resp.body).expect("report is JSON");
    let totals = &report["lifecycle"]["totals"];
    assert_eq!(
        (&totals["expired"], &totals["noncurrent_removed"], &totals["markers_removed"], &totals["uploads_aborted"]),
        (&serde_json::json!(1), &serde_json::json!(2), &serde_json::json!(1), &serde_json::json!(1)),
        "{report}"
    );
    let metrics = r.signed("GET", "/_xregion/metrics", &[], b"").await.text();
    assert!(
        metrics.contains("xregion_lifecycle_actions_total{region=\"us-east-1\",action=\"expired\"} 1"),
        "{metrics}"
    );
}

/// DEL-5: the delete marker lifecycle makes on the source is not replicated (delete marker
/// replication on), and versions it removes there stay on the destination (DEL-1). STS-9: a
/// version whose replication is pending is left alone until it is replicated.
#[tokio::test]
async fn lifecycle_changes_on_a_source_are_not_replicated_and_wait_for_replication() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    regions[0].set_extra_args(&["--lifecycle-day-seconds", "1"]);
    regions[0].restart();
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "lc-src").await;
    let dst = create_versioned_bucket(&dc, "lc-dst").await;
    configure(&sc, &src, &dst, true).await;
    let v1 = put(&sc, &src, "exp/a", b"old").await.version_id.expect("vid");
    let v2 = put(&sc, &src, "exp/a", b"new").await.version_id.expect("vid");
    wait_completed(&sc, &src, "exp/a", &v1).await;
    wait_completed(&sc, &src, "exp/a", &v2).await;
    // A version whose replica cannot be made yet.
    regions[1].kill();
    let pending = put(&sc, &src, "exp/p", b"waiting").await.version_id.expect("vid");

    let expire = LifecycleExpiration::builder().days(1).build();
    let noncurrent = NoncurrentVersionExpiration::builder().noncurrent_days(1).build();
    let rules =
        vec![rule("exp", "exp/").expiration(expire).noncurrent_version_expiration(noncurrent).build().expect("rule")];
    put_rules(&sc, &src, rules).await;

    let current_is_marker = |key: &'static str| {
        let (sc, src) = (sc.clone(), src.clone());
        async move { all_versions(&sc, &src).await.into_iter().find(|v| v.0 == key).is_some_and(|v| v.3) }
    };
    // On the source: a delete marker on top of exp/a, then its noncurrent versions go.
    eventually("exp/a to expire on the source", || async {
        let versions: Vec<_> = all_versions(&sc, &src).await.into_iter().filter(|v| v.0 == "exp/a").collect();
        (versions.len() == 1 && versions[0].3).then_some(())
    })
    .await;
    // STS-9: the pending version is older than a lifecycle day by now, and still current.
    assert!(!current_is_marker("exp/p").await, "a version pending replication was expired");
    assert_eq!(crate::replication::status(&sc, &src, "exp/p", &pending).await.as_deref(), Some("PENDING"));
    // Once it is replicated, it expires too.
    regions[1].restart();
    wait_completed(&sc, &src, "exp/p", &pending).await;
    eventually("exp/p to expire once replicated", || async { current_is_marker("exp/p").await.then_some(()) }).await;

    // The destination kept both versions of exp/a, without a marker (DEL-5, DEL-1), and has
    // exp/p as sent.
    let dc = regions[1].client();
    let at_destination: Vec<(String, String, bool)> =
        all_versions(&dc, &dst).await.into_iter().map(|v| (v.0, v.1, v.3)).collect();
    assert_eq!(
        at_destination,
        [
            ("exp/a".to_owned(), v2.clone(), false),
            ("exp/a".to_owned(), v1.clone(), false),
            ("exp/p".to_owned(), pending.clone(), false)
        ]
    );
}

/// The same through boto3 (botocore computes the body checksum itself).
#[test]
fn lifecycle_with_boto3() {
    if !crate::boto3::boto3_or_skip("boto3 lifecycle test") {
        return;
    }
    crate::boto3::run_boto3_script(&region(), "lifecycle_boto3.py", "lc-boto3", "boto3 lifecycle test passed");
}
