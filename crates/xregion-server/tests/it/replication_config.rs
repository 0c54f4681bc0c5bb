//! Replication configuration API end to end (spec §2 CFG, §3 VAL, VER-4): boto3-shaped XML
//! over the wire, the SDK reading it back, validation errors as AWS reports them, and a
//! destination in another region.

use aws_sdk_s3::types::{BucketVersioningStatus, DeleteMarkerReplicationStatus, ReplicationRuleStatus};

use crate::common::*;

const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const ROLE: &str = "arn:aws:iam::123456789012:role/r";
const MALFORMED: &str = "The XML you provided was not well-formed or did not validate against our published schema";

/// A `ReplicationConfiguration` document with these rules, as boto3 serialises it.
fn document(rules: &str) -> String {
    format!(r#"<ReplicationConfiguration xmlns="{NS}"><Role>{ROLE}</Role>{rules}</ReplicationConfiguration>"#)
}

/// A valid V2 rule to `dst`.
fn v2_rule(id: &str, priority: i32, dst: &str) -> String {
    format!(
        "<Rule><ID>{id}</ID><Priority>{priority}</Priority><Status>Enabled</Status><Filter><Prefix></Prefix></Filter>\
         <DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>\
         <Destination><Bucket>arn:aws:s3:::{dst}</Bucket></Destination></Rule>"
    )
}

/// PutBucketReplication with a raw body (with `Content-MD5`, as boto3 sends it).
async fn put_replication(region: &TestRegion, bucket: &str, body: &str) -> RawResponse {
    let md5 = md5_b64(body.as_bytes());
    region.signed("PUT", &format!("/{bucket}?replication"), &[("content-md5", &md5)], body.as_bytes()).await
}

/// The `<Message>` of an error body, XML entities resolved.
fn message(raw: &RawResponse) -> Option<String> {
    xml_element(&raw.text(), "Message").map(|m| {
        m.replace("&apos;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    })
}

#[track_caller]
fn assert_error(raw: &RawResponse, status: u16, code: &str, message: &str) {
    assert_eq!((raw.status, raw.error_code().as_deref()), (status, Some(code)), "{}", raw.text());
    assert_eq!(self::message(raw).as_deref(), Some(message), "{}", raw.text());
}

/// CFG-1, CFG-2, CFG-7, CFG-11, CFG-12, CFG-13: the CFG-7 rule (And filter, every optional
/// element), an empty-filter rule without ID and priority 0, read back by the SDK.
#[tokio::test]
async fn cfg1_cfg11_cfg12_round_trip_v2_with_and_filter() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let src = create_versioned_bucket(&s3, "src").await;
    let dst = create_versioned_bucket(&s3, "dst").await;
    let dst2 = create_versioned_bucket(&s3, "dst2").await;
    let body = document(&format!(
        r#"<Rule><ID>r1</ID><Priority>2</Priority><Status>Enabled</Status>
    <Filter><And><Prefix>docs/</Prefix>
      <Tag><Key>k</Key><Value>v</Value></Tag><Tag><Key>k2</Key><Value>v2</Value></Tag></And></Filter>
    <DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>
    <SourceSelectionCriteria>
      <SseKmsEncryptedObjects><Status>Enabled</Status></SseKmsEncryptedObjects>
      <ReplicaModifications><Status>Enabled</Status></ReplicaModifications>
    </SourceSelectionCriteria>
    <Destination>
      <Bucket>arn:aws:s3:::{dst}</Bucket><Account>210987654321</Account>
      <StorageClass>STANDARD_IA</StorageClass>
      <AccessControlTranslation><Owner>Destination</Owner></AccessControlTranslation>
      <EncryptionConfiguration><ReplicaKmsKeyID>arn:aws:kms:us-west-2:210987654321:key/abc</ReplicaKmsKeyID></EncryptionConfiguration>
      <ReplicationTime><Status>Enabled</Status><Time><Minutes>15</Minutes></Time></ReplicationTime>
      <Metrics><Status>Enabled</Status><EventThreshold><Minutes>15</Minutes></EventThreshold></Metrics>
    </Destination>
  </Rule>
  <Rule><Priority>0</Priority><Status>Disabled</Status><Filter/>
    <DeleteMarkerReplication><Status>Enabled</Status></DeleteMarkerReplication>
    <Destination><Bucket>arn:aws:s3:::{dst2}</Bucket></Destination></Rule>"#
    ));
    let raw = put_replication(&region, &src, &body).await;
    assert_eq!(raw.status, 200, "{}", raw.text());

    let out = s3.get_bucket_replication().bucket(&src).send().await.expect("get replication");
    let cfg = out.replication_configuration().expect("configuration");
    assert_eq!(cfg.role(), ROLE);
    let rules = cfg.rules();
    assert_eq!(rules.len(), 2);

    let r1 = &rules[0];
    assert_eq!(r1.id(), Some("r1"));
    assert_eq!(r1.priority(), Some(2));
    assert_eq!(r1.status(), &ReplicationRuleStatus::Enabled);
    let and = r1.filter().and_then(|f| f.and()).expect("And filter");
    assert_eq!(and.prefix(), Some("docs/"));
    let tags: Vec<(&str, &str)> = and.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, vec![("k", "v"), ("k2", "v2")]);
    assert_eq!(r1.delete_marker_replication().and_then(|d| d.status()), Some(&DeleteMarkerReplicationStatus::Disabled));
    let ssc = r1.source_selection_criteria().expect("SourceSelectionCriteria");
    assert_eq!(ssc.sse_kms_encrypted_objects().map(|s| s.status().as_str()), Some("Enabled"));
    assert_eq!(ssc.replica_modifications().map(|s| s.status().as_str()), Some("Enabled"));
    let d = r1.destination().expect("destination");
    assert_eq!(d.bucket(), format!("arn:aws:s3:::{dst}"));
    assert_eq!(d.account(), Some("210987654321"));
    assert_eq!(d.storage_class().map(|s| s.as_str()), Some("STANDARD_IA"));
    assert_eq!(d.access_control_translation().map(|a| a.owner().as_str()), Some("Destination"));
    assert_eq!(
        d.encryption_configuration().and_then(|e| e.replica_kms_key_id()),
        Some("arn:aws:kms:us-west-2:210987654321:key/abc")
    );
    let rtc = d.replication_time().expect("ReplicationTime");
    assert_eq!((rtc.status().as_str(), rtc.time().and_then(|t| t.minutes())), ("Enabled", Some(15)));
    let metrics = d.metrics().expect("Metrics");
    assert_eq!(metrics.status().as_str(), "Enabled");
    assert_eq!(metrics.event_threshold().and_then(|t| t.minutes()), Some(15));

    // CFG-11/CFG-13: generated ID, Priority 0, empty filter, disabled rule all echoed.
    let r2 = &rules[1];
    assert!(r2.id().is_some_and(|id| !id.is_empty() && id.len() <= 255), "{r2:?}");
    assert_eq!(r2.priority(), Some(0));
    assert_eq!(r2.status(), &ReplicationRuleStatus::Disabled);
    let f = r2.filter().expect("empty Filter is returned");
    assert!(f.prefix().is_none() && f.tag().is_none() && f.and().is_none(), "{f:?}");
    assert_eq!(r2.delete_marker_replication().and_then(|d| d.status()), Some(&DeleteMarkerReplicationStatus::Enabled));
    // The generated ID is stable across reads (it is stored).
    let again = s3.get_bucket_replication().bucket(&src).send().await.expect("get replication");
    assert_eq!(again.replication_configuration().map(|c| c.rules()[1].id()), Some(r2.id()));
}

/// CFG-8/CFG-9 V1: a rule-level Prefix round-trips without Filter, Priority or DMR.
#[tokio::test]
async fn cfg8_v1_rule_round_trip() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let src = create_versioned_bucket(&s3, "src").await;
    let dst = create_versioned_bucket(&s3, "dst").await;
    let body = document(&format!(
        "<Rule><ID>legacy</ID><Prefix>logs/</Prefix><Status>Enabled</Status>\
         <Destination><Bucket>arn:aws:s3:::{dst}</Bucket><StorageClass>GLACIER</StorageClass></Destination></Rule>\
         <Rule><ID>all</ID><Prefix/><Status>Enabled</Status>\
         <Destination><Bucket>arn:aws:s3:::{dst}</Bucket></Destination></Rule>"
    ));
    let raw = put_replication(&region, &src, &body).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let out = s3.get_bucket_replication().bucket(&src).send().await.expect("get replication");
    let rules = out.replication_configuration().map(|c| c.rules().to_vec()).unwrap_or_default();
    assert_eq!(rules.len(), 2);
    #[allow(deprecated)]
    let prefixes: Vec<Option<&str>> = rules.iter().map(|r| r.prefix()).collect();
    assert_eq!(prefixes, vec![Some("logs/"), Some("")]);
    for r in &rules {
        assert!(r.filter().is_none() && r.priority().is_none() && r.delete_marker_replication().is_none(), "{r:?}");
    }
    assert_eq!(rules[0].destination().and_then(|d| d.storage_class()).map(|s| s.as_str()), Some("GLACIER"));
    let raw = region.signed("GET", &format!("/{src}?replication"), &[], b"").await;
    assert!(!raw.text().contains("<Filter"), "{}", raw.text());
}

/// CFG-2, CFG-3: GET without configuration is 404 with BucketName; DELETE is 204 and
/// idempotent; PUT replaces (PRI-6).
#[tokio::test]
async fn cfg2_cfg3_not_found_and_idempotent_delete() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let src = create_versioned_bucket(&s3, "src").await;
    let dst = create_versioned_bucket(&s3, "dst").await;

    let raw = region.signed("GET", &format!("/{src}?replication"), &[], b"").await;
    assert_error(&raw, 404, "ReplicationConfigurationNotFoundError", "The replication configuration was not found");
    assert_eq!(xml_element(&raw.text(), "BucketName").as_deref(), Some(src.as_str()), "{}", raw.text());
    let err = expect_error(
        s3.get_bucket_replication().bucket(&src).send().await,
        404,
        Some("ReplicationConfigurationNotFoundError"),
    );
    drop(err);

    let raw = region.signed("DELETE", &format!("/{src}?replication"), &[], b"").await;
    assert_eq!(raw.status, 204, "{}", raw.text());

    assert_eq!(put_replication(&region, &src, &document(&v2_rule("one", 1, &dst))).await.status, 200);
    assert_eq!(put_replication(&region, &src, &document(&v2_rule("two", 5, &dst))).await.status, 200);
    let out = s3.get_bucket_replication().bucket(&src).send().await.expect("get replication");
    let ids: Vec<Option<&str>> =
        out.replication_configuration().map(|c| c.rules().iter().map(|r| r.id()).collect()).unwrap_or_default();
    assert_eq!(ids, vec![Some("two")]);

    s3.delete_bucket_replication().bucket(&src).send().await.expect("delete replication");
    s3.delete_bucket_replication().bucket(&src).send().await.expect("delete replication again");
    expect_error(
        s3.get_bucket_replication().bucket(&src).send().await,
        404,
        Some("ReplicationConfigurationNotFoundError"),
    );

    // A bucket that does not exist.
    let raw = region.signed("GET", "/no-such-bucket-here?replication", &[], b"").await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (404, Some("NoSuchBucket")), "{}", raw.text());
}

/// VAL-*: errors over the wire with AWS's codes and messages; nothing is stored.
#[tokio::test]
async fn val_errors_over_the_wire() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let src = create_versioned_bucket(&s3, "src").await;
    let dst = create_versioned_bucket(&s3, "dst").await;
    let plain = create_bucket(&s3, "plain").await;
    let arn = format!("arn:aws:s3:::{dst}");
    let refer = "Please refer to S3 Developer Guide for more information.";

    // VAL-4: s3s rejects a document without `Rule` while parsing, before xregion sees it, and
    // the server's edge fills in a generic message; only the code is AWS's here.
    let raw = put_replication(&region, &src, &document("")).await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some("MalformedXML")), "{}", raw.text());

    let cases: Vec<(&str, String, &str, String)> = vec![
        // VAL-5.
        (
            "VAL-5",
            document(&format!(
                "<Rule><ID>a</ID><Priority>1</Priority><Status>Enabled</Status><Filter/>\
                 <Destination><Bucket>{arn}</Bucket></Destination></Rule>"
            )),
            "InvalidRequest",
            format!(
                "DeleteMarkerReplication must be specified for this version of Cross Region Replication \
                 configuration schema. {refer}"
            ),
        ),
        // VAL-6.
        (
            "VAL-6",
            document(&format!(
                "<Rule><ID>a</ID><Prefix>x</Prefix><Status>Enabled</Status>\
                 <DeleteMarkerReplication><Status>Enabled</Status></DeleteMarkerReplication>\
                 <Destination><Bucket>{arn}</Bucket></Destination></Rule>"
            )),
            "InvalidRequest",
            format!(
                "DeleteMarkerReplication cannot be used for this version of Cross Region Replication \
                 configuration schema. {refer}"
            ),
        ),
        // VAL-8a.
        (
            "VAL-8a",
            document(&format!(
                "<Rule><ID>a</ID><Status>Enabled</Status><Destination><Bucket>{arn}</Bucket></Destination></Rule>"
            )),
            "MalformedXML",
            MALFORMED.into(),
        ),
        // VAL-8b: unknown Status value.
        (
            "VAL-8b",
            document(&v2_rule("a", 1, &dst).replace("<Status>Enabled</Status>", "<Status>On</Status>")),
            "MalformedXML",
            MALFORMED.into(),
        ),
        // VAL-8b: two predicates in Filter without And.
        (
            "VAL-8b filter",
            document(&v2_rule("a", 1, &dst).replace(
                "<Filter><Prefix></Prefix></Filter>",
                "<Filter><Prefix>p</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>",
            )),
            "MalformedXML",
            MALFORMED.into(),
        ),
        // VAL-8b: rule-level Prefix and Filter together.
        (
            "VAL-8b prefix+filter",
            document(&v2_rule("a", 1, &dst).replace("<Filter>", "<Prefix>p</Prefix><Filter>")),
            "MalformedXML",
            MALFORMED.into(),
        ),
        // VAL-8.
        (
            "VAL-8",
            document(&format!(
                "<Rule><ID>a</ID><Prefix>a</Prefix><Status>Enabled</Status><Destination><Bucket>{arn}</Bucket></Destination></Rule>\
                 <Rule><ID>b</ID><Prefix>b</Prefix><Status>Enabled</Status><Destination><Bucket>arn:aws:s3:::{plain}</Bucket></Destination></Rule>"
            )),
            "InvalidRequest",
            "Number of distinct destination bucket ARNs cannot exceed 1".into(),
        ),
        // VAL-9.
        (
            "VAL-9",
            document(&format!(
                "<Rule><ID>a</ID><Priority>1</Priority><Status>Enabled</Status>\
                 <Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
                 <DeleteMarkerReplication><Status>Enabled</Status></DeleteMarkerReplication>\
                 <Destination><Bucket>{arn}</Bucket></Destination></Rule>"
            )),
            "InvalidRequest",
            format!("Delete marker replication is not supported if any Tag filter is specified. {refer}"),
        ),
        // VAL-10.
        (
            "VAL-10",
            document(&format!("{}{}", v2_rule("a", 3, &dst), v2_rule("b", 3, &dst))),
            "InvalidRequest",
            "Found duplicate priority 3.".into(),
        ),
        // VAL-15.
        (
            "VAL-15",
            document(&v2_rule("a", 1, &dst).replace(&arn, &dst)),
            "InvalidArgument",
            "Invalid bucket ARN".into(),
        ),
        // VAL-17.
        (
            "VAL-17",
            document(&v2_rule("a", 1, &dst).replace(
                "<Destination>",
                "<ExistingObjectReplication><Status>Enabled</Status></ExistingObjectReplication><Destination>",
            )),
            "MalformedXML",
            MALFORMED.into(),
        ),
        // VAL-3: the destination does not exist …
        (
            "VAL-3 missing",
            document(&v2_rule("a", 1, "no-such-destination")),
            "InvalidRequest",
            "Destination bucket must have versioning enabled.".into(),
        ),
        // … or is not versioned.
        (
            "VAL-3 unversioned",
            document(&v2_rule("a", 1, &plain)),
            "InvalidRequest",
            "Destination bucket must have versioning enabled.".into(),
        ),
    ];
    for (id, body, code, message) in cases {
        let raw = put_replication(&region, &src, &body).await;
        assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some(code)), "{id}: {}", raw.text());
        assert_eq!(self::message(&raw), Some(message), "{id}: {}", raw.text());
    }

    // VAL-1 (2), CFG-1: the body must carry Content-MD5 or an x-amz-checksum-* header.
    let body = document(&v2_rule("a", 1, &dst));
    let raw = region.signed("PUT", &format!("/{src}?replication"), &[], body.as_bytes()).await;
    assert_error(&raw, 400, "InvalidRequest", "Missing required header for this request: Content-MD5");
    let crc = {
        use base64::Engine as _;
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, body.as_bytes()) as u32;
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    };
    let raw =
        region.signed("PUT", &format!("/{src}?replication"), &[("x-amz-checksum-crc32", &crc)], body.as_bytes()).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    s3.delete_bucket_replication().bucket(&src).send().await.expect("delete replication");

    // VAL-16: the error names the argument.
    let body = document(&v2_rule("a", 1, &dst)).replace(ROLE, "not-a-role");
    let raw = put_replication(&region, &src, &body).await;
    assert_error(&raw, 400, "InvalidArgument", "Invalid Role specified in replication configuration");
    assert_eq!(xml_element(&raw.text(), "ArgumentName").as_deref(), Some("Role"), "{}", raw.text());

    // VAL-2: the source must be versioned (checked before the rules, VAL-1).
    let body = document(&v2_rule("a", 1, "no-such-destination"));
    let raw = put_replication(&region, &plain, &body).await;
    assert_error(
        &raw,
        400,
        "InvalidRequest",
        "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
    );

    // Nothing was stored by any of the failures.
    expect_error(
        s3.get_bucket_replication().bucket(&src).send().await,
        404,
        Some("ReplicationConfigurationNotFoundError"),
    );
}

/// VAL-3 across regions: the destination lives in another region, whose versioning is off
/// (refused) and then on (accepted).
#[tokio::test]
async fn val3_destination_in_another_region() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (east, west) = (&regions[0], &regions[1]);
    let src = create_versioned_bucket(&east.client(), "src").await;
    let dst = create_bucket(&west.client(), "dst").await;
    let body = document(&v2_rule("to-west", 1, &dst));

    let raw = put_replication(east, &src, &body).await;
    assert_error(&raw, 400, "InvalidRequest", "Destination bucket must have versioning enabled.");
    set_versioning(&west.client(), &dst, BucketVersioningStatus::Suspended).await;
    let raw = put_replication(east, &src, &body).await;
    assert_error(&raw, 400, "InvalidRequest", "Destination bucket must have versioning enabled.");

    set_versioning(&west.client(), &dst, BucketVersioningStatus::Enabled).await;
    let raw = put_replication(east, &src, &body).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let out = east.client().get_bucket_replication().bucket(&src).send().await.expect("get replication");
    let dest = out.replication_configuration().and_then(|c| c.rules().first()).and_then(|r| r.destination());
    assert_eq!(dest.map(|d| d.bucket().to_owned()), Some(format!("arn:aws:s3:::{dst}")));
}

/// VER-4: Suspended is refused while a replication configuration is present (409
/// InvalidBucketState), and accepted again after DeleteBucketReplication.
#[tokio::test]
async fn ver4_suspend_refused_while_replication_configured() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let src = create_versioned_bucket(&s3, "src").await;
    let dst = create_versioned_bucket(&s3, "dst").await;
    assert_eq!(put_replication(&region, &src, &document(&v2_rule("a", 1, &dst))).await.status, 200);

    let result = s3
        .put_bucket_versioning()
        .bucket(&src)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build(),
        )
        .send()
        .await;
    let err = expect_error(result, 409, Some("InvalidBucketState"));
    assert_eq!(
        err.message(),
        Some(
            "A replication configuration is present on this bucket, so you cannot change the versioning state. \
             To change the versioning state, first delete the replication configuration."
        )
    );
    let out = s3.get_bucket_versioning().bucket(&src).send().await.expect("get versioning");
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Enabled));
    // Enabled again is still a no-op 200.
    set_versioning(&s3, &src, BucketVersioningStatus::Enabled).await;

    s3.delete_bucket_replication().bucket(&src).send().await.expect("delete replication");
    set_versioning(&s3, &src, BucketVersioningStatus::Suspended).await;
}

/// CFG-1..3 with boto3 itself (`tests/python/replication_config_boto3.py`): its serialiser's
/// XML (And filter, empty filter, V1 rule) and its parser of our answers. Skipped, with a
/// message, when boto3 is not installed (required under `CI=true`).
#[test]
fn cfg1_cfg2_cfg3_boto3_round_trip() {
    if !crate::boto3::boto3_or_skip("boto3 replication test") {
        return;
    }
    let region = TestRegion::start("us-east-1", &[]);
    crate::boto3::run_boto3_script(
        &region,
        "replication_config_boto3.py",
        "boto3-repl",
        "boto3 replication config test passed",
    );
}
