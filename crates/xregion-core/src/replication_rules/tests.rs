//! Unit tests: one per VAL row (named after the id), CFG/PRI/DEL/ELI behaviour of `plan`, and
//! property tests of rule matching and priority resolution against a brute-force model.

use proptest::prelude::*;

use super::*;

const SRC: &str = "src-bucket";
const ROLE: &str = "arn:aws:iam::123456789012:role/replication";

fn tag(k: &str, v: &str) -> TagDraft {
    TagDraft { key: Some(k.into()), value: Some(v.into()) }
}

fn dest(bucket: &str) -> DestinationDraft {
    DestinationDraft { bucket: Some(format!("arn:aws:s3:::{bucket}")), ..Default::default() }
}

/// A valid V2 rule: `<Filter/>`, priority, DMR Disabled, destination `dst`.
fn v2(id: &str, priority: i32) -> RuleDraft {
    RuleDraft {
        id: Some(id.into()),
        priority: Some(priority),
        filter: Some(FilterDraft::default()),
        status: Some("Enabled".into()),
        destination: Some(dest("dst")),
        delete_marker_replication: Some(Some("Disabled".into())),
        ..Default::default()
    }
}

/// A valid V1 rule: rule-level prefix, destination `dst`.
fn v1(id: &str, prefix: &str) -> RuleDraft {
    RuleDraft {
        id: Some(id.into()),
        prefix: Some(prefix.into()),
        status: Some("Enabled".into()),
        destination: Some(dest("dst")),
        ..Default::default()
    }
}

fn doc(rules: Vec<RuleDraft>) -> ConfigDraft {
    ConfigDraft { role: Some(ROLE.into()), rules }
}

fn check(d: &ConfigDraft) -> Result<ReplicationConfig, CoreError> {
    validate(d, SRC, VersioningState::Enabled)
}

/// Asserts the AWS code and message of a validation error.
#[track_caller]
fn assert_err(r: Result<ReplicationConfig, CoreError>, code: &str, message: &str) {
    match r {
        Err(CoreError::Invalid(inv)) => {
            assert_eq!(inv.code, code, "code; message was {:?}", inv.message);
            assert_eq!(inv.message, message);
        }
        other => panic!("expected {code}, got {other:?}"),
    }
}

#[track_caller]
fn assert_malformed(d: &ConfigDraft) {
    assert_err(check(d), "MalformedXML", MALFORMED_XML);
}

// ----- VAL rows ------------------------------------------------------------------------

#[test]
fn val_1_schema_before_versioning_before_rules() {
    // Schema errors come before VAL-2 …
    let mut bad = doc(vec![v2("a", 1)]);
    bad.rules[0].status = None;
    assert_err(validate(&bad, SRC, VersioningState::Suspended), "MalformedXML", MALFORMED_XML);
    // … VAL-2 before per-rule checks …
    let mut r = v2("a", 1);
    r.delete_marker_replication = None;
    assert_err(
        validate(&doc(vec![r.clone()]), SRC, VersioningState::Unversioned),
        "InvalidRequest",
        MSG_SOURCE_VERSIONING,
    );
    // … and a schema error in a later rule beats a semantic error in an earlier one.
    let mut later = v2("b", 2);
    later.destination = None;
    assert_malformed(&doc(vec![r, later]));
    // Disabled rules are validated like enabled ones.
    let mut disabled = v2("a", 1);
    disabled.status = Some("Disabled".into());
    disabled.delete_marker_replication = None;
    assert!(check(&doc(vec![disabled])).is_err());
}

#[test]
fn val_2_source_versioning_must_be_enabled() {
    for state in [VersioningState::Unversioned, VersioningState::Suspended] {
        assert_err(validate(&doc(vec![v2("a", 1)]), SRC, state), "InvalidRequest", MSG_SOURCE_VERSIONING);
    }
    assert!(validate(&doc(vec![v2("a", 1)]), SRC, VersioningState::Enabled).is_ok());
}

#[test]
fn val_3_message_is_the_aws_one() {
    // The destination checks themselves need a region (see the buckets tests); the message:
    assert_eq!(MSG_DESTINATION_VERSIONING, "Destination bucket must have versioning enabled.");
}

#[test]
fn val_4_no_rules_is_malformed() {
    assert_malformed(&doc(vec![]));
}

#[test]
fn val_5_v2_rule_needs_delete_marker_replication() {
    let mut r = v2("a", 1);
    r.delete_marker_replication = None;
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "DeleteMarkerReplication must be specified for this version of Cross Region Replication configuration \
         schema. Please refer to S3 Developer Guide for more information.",
    );
    // Element present without Status: accepted, stored as Disabled.
    let mut r = v2("a", 1);
    r.delete_marker_replication = Some(None);
    assert_eq!(check(&doc(vec![r])).map(|c| c.rules[0].delete_marker_replication).ok(), Some(Some(false)));
}

#[test]
fn val_6_v1_forbids_delete_marker_replication() {
    let mut r = v1("a", "");
    r.delete_marker_replication = Some(Some("Enabled".into()));
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "DeleteMarkerReplication cannot be used for this version of Cross Region Replication configuration \
         schema. Please refer to S3 Developer Guide for more information.",
    );
}

#[test]
fn val_7_v1_forbids_priority() {
    let mut r = v1("a", "");
    r.priority = Some(1);
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "Priority cannot be used for this version of Cross Region Replication configuration schema. \
         Please refer to S3 Developer Guide for more information.",
    );
}

#[test]
fn val_7a_v2_rule_needs_priority() {
    let mut r = v2("a", 1);
    r.priority = None;
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "Priority must be specified for this version of Cross Region Replication configuration schema. \
         Please refer to S3 Developer Guide for more information.",
    );
}

#[test]
fn val_8_v1_one_destination_only() {
    let mut b = v1("b", "b/");
    b.destination = Some(dest("other"));
    assert_err(
        check(&doc(vec![v1("a", "a/"), b])),
        "InvalidRequest",
        "Number of distinct destination bucket ARNs cannot exceed 1",
    );
    // Same destination twice is fine.
    assert!(check(&doc(vec![v1("a", "a/"), v1("b", "b/")])).is_ok());
}

#[test]
fn val_8a_v1_rule_without_prefix_or_filter_is_malformed() {
    let mut r = v1("a", "");
    r.prefix = None;
    assert_malformed(&doc(vec![r]));
}

#[test]
fn val_8b_schema_violations_are_malformed() {
    let cases: Vec<fn(&mut RuleDraft)> = vec![
        |r| r.prefix = Some("p".into()), // rule Prefix and Filter
        |r| r.filter = Some(FilterDraft { prefix: Some("p".into()), tag: Some(tag("k", "v")), and: None }),
        |r| r.filter = Some(FilterDraft { prefix: Some("p".into()), tag: None, and: Some(AndDraft::default()) }),
        |r| {
            r.filter =
                Some(FilterDraft { tag: Some(TagDraft { key: Some("k".into()), value: None }), ..Default::default() })
        },
        |r| r.status = Some("enabled".into()),
        |r| r.status = None,
        |r| r.destination = None,
        |r| r.destination = Some(DestinationDraft::default()),
        |r| r.destination = Some(DestinationDraft { storage_class: Some("CHEAP".into()), ..dest("dst") }),
        |r| r.destination = Some(DestinationDraft { access_control_owner: Some("Me".into()), ..dest("dst") }),
        |r| r.delete_marker_replication = Some(Some("On".into())),
        |r| r.sse_kms_encrypted_objects = Some("Yes".into()),
        |r| r.replica_modifications = Some("Yes".into()),
        |r| {
            r.destination = Some(DestinationDraft {
                replication_time: Some(ReplicationTimeDraft { status: Some("On".into()), minutes: Some(15) }),
                ..dest("dst")
            })
        },
        |r| {
            r.destination = Some(DestinationDraft {
                metrics: Some(MetricsDraft { status: None, event_threshold: None }),
                ..dest("dst")
            })
        },
    ];
    for (i, mutate) in cases.into_iter().enumerate() {
        let mut r = v2("a", 1);
        mutate(&mut r);
        let res = check(&doc(vec![r]));
        assert!(matches!(&res, Err(CoreError::Invalid(inv)) if inv.code == "MalformedXML"), "case {i}: {res:?}");
    }
    // Missing Role.
    assert_malformed(&ConfigDraft { role: None, rules: vec![v2("a", 1)] });
}

#[test]
fn val_9_delete_marker_replication_with_tag_filter() {
    let msg = "Delete marker replication is not supported if any Tag filter is specified. Please refer to S3 \
               Developer Guide for more information.";
    let mut r = v2("a", 1);
    r.filter = Some(FilterDraft { tag: Some(tag("k", "v")), ..Default::default() });
    r.delete_marker_replication = Some(Some("Enabled".into()));
    assert_err(check(&doc(vec![r.clone()])), "InvalidRequest", msg);
    r.filter = Some(FilterDraft {
        and: Some(AndDraft { prefix: Some("p/".into()), tags: vec![tag("k", "v")] }),
        ..Default::default()
    });
    assert_err(check(&doc(vec![r.clone()])), "InvalidRequest", msg);
    // Disabled is fine (CFG-7).
    r.delete_marker_replication = Some(Some("Disabled".into()));
    assert!(check(&doc(vec![r])).is_ok());
}

#[test]
fn val_10_duplicate_priority() {
    assert_err(check(&doc(vec![v2("a", 3), v2("b", 3)])), "InvalidRequest", "Found duplicate priority 3.");
}

#[test]
fn val_11_duplicate_id() {
    assert_err(check(&doc(vec![v2("a", 1), v2("a", 2)])), "InvalidArgument", "Rule Id must be unique");
}

#[test]
fn val_12_id_too_long() {
    let long = "x".repeat(256);
    assert_err(check(&doc(vec![v2(&long, 1)])), "InvalidArgument", "ID length should not exceed allowed limit of 255");
    assert!(check(&doc(vec![v2(&"x".repeat(255), 1)])).is_ok());
}

#[test]
fn val_13_prefix_too_long() {
    let msg = "Prefix length should not exceed allowed limit of 1024";
    let long = "p".repeat(1025);
    assert_err(check(&doc(vec![v1("a", &long)])), "InvalidArgument", msg);
    let mut r = v2("a", 1);
    r.filter = Some(FilterDraft { prefix: Some(long.clone()), ..Default::default() });
    assert_err(check(&doc(vec![r.clone()])), "InvalidArgument", msg);
    r.filter = Some(FilterDraft { and: Some(AndDraft { prefix: Some(long), tags: vec![] }), ..Default::default() });
    assert_err(check(&doc(vec![r])), "InvalidArgument", msg);
    assert!(check(&doc(vec![v1("a", &"p".repeat(1024))])).is_ok());
}

#[test]
fn val_14_more_than_1000_rules() {
    let rules: Vec<RuleDraft> = (0..1001).map(|i| v2(&format!("r{i}"), i)).collect();
    assert_malformed(&doc(rules));
    let rules: Vec<RuleDraft> = (0..1000).map(|i| v2(&format!("r{i}"), i)).collect();
    assert!(check(&doc(rules)).is_ok());
    // Document larger than 2 MB.
    assert!(check_document_size(MAX_DOCUMENT_BYTES).is_ok());
    assert!(matches!(
        check_document_size(MAX_DOCUMENT_BYTES + 1),
        Err(CoreError::Invalid(inv)) if inv.code == "MalformedXML"
    ));
}

#[test]
fn val_15_destination_must_be_a_bucket_arn() {
    for bad in [
        "dst",
        "arn:aws:s3:::",
        "arn:aws:s3:us-east-1::dst",
        "arn:aws:s3:::dst/key",
        "arn:aws:iam:::dst",
        "arn:aws:s3:::Bad_Name",
        "arn:aws:s3:::dst:extra",
    ] {
        let mut r = v2("a", 1);
        r.destination = Some(DestinationDraft { bucket: Some(bad.into()), ..Default::default() });
        assert_err(check(&doc(vec![r])), "InvalidArgument", "Invalid bucket ARN");
    }
    let ok = check(&doc(vec![v2("a", 1)])).ok().map(|c| c.rules[0].destination.clone());
    assert_eq!(ok.map(|d| (d.bucket, d.bucket_arn)), Some(("dst".to_owned(), "arn:aws:s3:::dst".to_owned())));
}

#[test]
fn val_15a_destination_is_the_source() {
    let mut r = v2("a", 1);
    r.destination = Some(dest(SRC));
    assert_err(check(&doc(vec![r])), "InvalidRequest", "Destination bucket cannot be the same as the source bucket.");
}

#[test]
fn val_16_role_must_be_an_iam_role_arn() {
    for bad in [
        "",
        "role",
        "arn:aws:iam::123:role/r",
        "arn:aws:iam::123456789012:user/r",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:s3:::123456789012:role/r",
    ] {
        let d = ConfigDraft { role: Some(bad.into()), rules: vec![v2("a", 1)] };
        assert_err(check(&d), "InvalidArgument", MSG_INVALID_ROLE);
    }
    let d = ConfigDraft { role: Some("arn:aws:iam::123456789012:role/path/r".into()), rules: vec![v2("a", 1)] };
    assert!(check(&d).is_ok());
}

#[test]
fn val_17_existing_object_replication_is_malformed() {
    let mut r = v2("a", 1);
    r.existing_object_replication = Some("Enabled".into());
    assert_malformed(&doc(vec![r]));
}

fn rtc(status: &str, minutes: Option<i32>) -> Option<ReplicationTimeDraft> {
    Some(ReplicationTimeDraft { status: Some(status.into()), minutes })
}

fn metrics(status: &str, threshold: Option<Option<i32>>) -> Option<MetricsDraft> {
    Some(MetricsDraft { status: Some(status.into()), event_threshold: threshold })
}

fn with_dest(d: DestinationDraft) -> ConfigDraft {
    let mut r = v2("a", 1);
    r.destination = Some(d);
    doc(vec![r])
}

#[test]
fn val_18_replication_time_needs_metrics() {
    assert_err(
        check(&with_dest(DestinationDraft { replication_time: rtc("Enabled", Some(15)), ..dest("dst") })),
        "InvalidRequest",
        "Replication destination must contain both ReplicationTime and Metrics or neither.",
    );
    // Metrics alone are fine.
    assert!(check(&with_dest(DestinationDraft { metrics: metrics("Enabled", None), ..dest("dst") })).is_ok());
}

#[test]
fn val_19_minutes_must_be_15() {
    assert_err(
        check(&with_dest(DestinationDraft {
            replication_time: rtc("Enabled", Some(10)),
            metrics: metrics("Enabled", Some(Some(15))),
            ..dest("dst")
        })),
        "InvalidArgument",
        "Invalid time minute value",
    );
    assert_err(
        check(&with_dest(DestinationDraft {
            replication_time: rtc("Enabled", Some(15)),
            metrics: metrics("Enabled", Some(Some(30))),
            ..dest("dst")
        })),
        "InvalidArgument",
        "Invalid event threshold minute value",
    );
    let ok = check(&with_dest(DestinationDraft {
        replication_time: rtc("Enabled", Some(15)),
        metrics: metrics("Enabled", Some(Some(15))),
        ..dest("dst")
    }));
    let d = ok.ok().map(|c| c.rules[0].destination.clone());
    assert_eq!(d.map(|d| (d.replication_time, d.metrics)), Some((Some((true, 15)), Some((true, Some(15))))));
}

#[test]
fn val_20_event_threshold_iff_rtc_enabled() {
    assert_err(
        check(&with_dest(DestinationDraft {
            replication_time: rtc("Enabled", Some(15)),
            metrics: metrics("Enabled", None),
            ..dest("dst")
        })),
        "InvalidArgument",
        "ReplicationMetrics must contain an event threshold",
    );
    let msg = "Metrics cannot contain an event threshold when ReplicationTime is not specified or Disabled";
    assert_err(
        check(&with_dest(DestinationDraft { metrics: metrics("Enabled", Some(Some(15))), ..dest("dst") })),
        "InvalidArgument",
        msg,
    );
    assert_err(
        check(&with_dest(DestinationDraft {
            replication_time: rtc("Disabled", Some(15)),
            metrics: metrics("Enabled", Some(Some(15))),
            ..dest("dst")
        })),
        "InvalidArgument",
        msg,
    );
}

#[test]
fn val_21_sse_kms_needs_replica_key() {
    let mut r = v2("a", 1);
    r.sse_kms_encrypted_objects = Some("Enabled".into());
    assert_err(
        check(&doc(vec![r.clone()])),
        "InvalidRequest",
        "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects tag is present.",
    );
    r.destination = Some(DestinationDraft {
        encryption_configuration: Some(Some("arn:aws:kms:us-west-2:210987654321:key/abc".into())),
        ..dest("dst")
    });
    assert!(check(&doc(vec![r])).is_ok());
}

#[test]
fn val_22_encryption_configuration_needs_sse_kms() {
    let mut r = v2("a", 1);
    r.destination = Some(DestinationDraft { encryption_configuration: Some(Some("k".into())), ..dest("dst") });
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "SseKmsEncryptedObjects must be specified if EncryptionConfiguration is present.",
    );
}

#[test]
fn val_23_owner_override_needs_account() {
    let mut r = v2("a", 1);
    r.destination = Some(DestinationDraft { access_control_owner: Some("Destination".into()), ..dest("dst") });
    assert_err(
        check(&doc(vec![r.clone()])),
        "InvalidRequest",
        "Account must be specified if the Owner in AccessControlTranslation has a value",
    );
    r.destination = Some(DestinationDraft {
        access_control_owner: Some("Destination".into()),
        account: Some("210987654321".into()),
        ..dest("dst")
    });
    assert_eq!(check(&doc(vec![r])).ok().map(|c| c.rules[0].destination.owner_override), Some(true));
}

#[test]
fn val_24_v1_forbids_replica_modifications() {
    let mut r = v1("a", "");
    r.replica_modifications = Some("Enabled".into());
    assert_err(
        check(&doc(vec![r])),
        "InvalidRequest",
        "ReplicaModifications cannot be used for this version of Cross Region Replication configuration \
         schema. Please refer to S3 Developer Guide for more information.",
    );
}

#[test]
fn val_25_duplicate_tag_keys_in_and() {
    let mut r = v2("a", 1);
    r.filter = Some(FilterDraft {
        and: Some(AndDraft { prefix: None, tags: vec![tag("k", "1"), tag("k", "2")] }),
        ..Default::default()
    });
    assert_err(check(&doc(vec![r])), "InvalidRequest", "Duplicate Tag Keys are not allowed.");
}

// VAL-26 (Object Lock token) does not apply: buckets cannot have Object Lock (CreateBucket
// refuses it), and the spec recommends not emulating the token anyway.

#[test]
fn val_27_role_and_kms_key_are_not_checked_for_existence() {
    let mut r = v2("a", 1);
    r.sse_kms_encrypted_objects = Some("Enabled".into());
    r.destination = Some(DestinationDraft {
        account: Some("000000000000".into()),
        encryption_configuration: Some(Some("arn:aws:kms:us-west-2:000000000000:key/does-not-exist".into())),
        ..dest("dst")
    });
    assert!(check(&doc(vec![r])).is_ok());
}

// ----- CFG -----------------------------------------------------------------------------

#[test]
fn cfg_9_mixed_v1_v2_fails_with_v1_errors() {
    // A V2 rule (with priority) next to a V1 rule: the document is V1, Priority is refused.
    let mut r2 = v2("b", 1);
    r2.delete_marker_replication = None;
    assert!(matches!(
        check(&doc(vec![v1("a", ""), r2])),
        Err(CoreError::Invalid(inv)) if inv.message.starts_with("Priority cannot be used")
    ));
    // RTC is V2 only.
    let mut r = v1("a", "");
    r.destination = Some(DestinationDraft {
        replication_time: rtc("Enabled", Some(15)),
        metrics: metrics("Enabled", Some(Some(15))),
        ..dest("dst")
    });
    assert!(matches!(
        check(&doc(vec![r])),
        Err(CoreError::Invalid(inv)) if inv.message.starts_with("ReplicationTime cannot be used")
    ));
}

#[test]
fn cfg_8_schema_and_model() {
    let c = check(&doc(vec![v1("a", "docs/")])).ok();
    let rule = c.as_ref().map(|c| c.rules[0].clone());
    assert_eq!(
        rule.as_ref().map(|r| (r.schema, r.priority, r.delete_marker_replication)),
        Some((RuleSchema::V1, None, None))
    );
    assert_eq!(rule.map(|r| r.filter.prefix), Some(Some("docs/".to_owned())));
    let c = check(&doc(vec![v2("a", 0)])).ok();
    assert_eq!(c.map(|c| (c.rules[0].schema, c.rules[0].priority)), Some((RuleSchema::V2, Some(0))));
}

#[test]
fn cfg_13_generated_ids_are_unique_and_short() {
    let mut a = v2("", 1);
    a.id = None;
    let mut b = v2("", 2);
    b.id = Some(String::new());
    let c = check(&doc(vec![a, b, v2("given", 3)])).ok();
    let ids: Vec<String> = c.map(|c| c.rules.iter().map(|r| r.id.clone()).collect()).unwrap_or_default();
    assert_eq!(ids.len(), 3);
    assert!(!ids[0].is_empty() && ids[0].len() <= 255 && ids[0] != ids[1]);
    assert_eq!(ids[2], "given");
}

#[test]
fn filter_shapes_are_kept() {
    let shapes = [
        (FilterDraft::default(), FilterShape::Empty),
        (FilterDraft { prefix: Some(String::new()), ..Default::default() }, FilterShape::Prefix),
        (FilterDraft { tag: Some(tag("k", "v")), ..Default::default() }, FilterShape::Tag),
        (
            FilterDraft {
                and: Some(AndDraft { prefix: Some("p".into()), tags: vec![tag("k", "v")] }),
                ..Default::default()
            },
            FilterShape::And,
        ),
    ];
    for (f, shape) in shapes {
        let mut r = v2("a", 1);
        r.filter = Some(f);
        assert_eq!(check(&doc(vec![r])).ok().map(|c| c.rules[0].filter.shape), Some(shape));
    }
}

#[test]
fn storage_class_outside_replication_set_is_refused() {
    let mut r = v2("a", 1);
    r.destination = Some(DestinationDraft { storage_class: Some("EXPRESS_ONEZONE".into()), ..dest("dst") });
    assert_err(check(&doc(vec![r.clone()])), "InvalidStorageClass", "The storage class you specified is not valid");
    r.destination = Some(DestinationDraft { storage_class: Some("GLACIER_IR".into()), ..dest("dst") });
    assert!(check(&doc(vec![r])).is_ok());
}

#[test]
fn encode_decode_round_trip() {
    let c = check(&doc(vec![v2("a", 1), v1("b", "x")]));
    // (mixed: fails) — use a valid one
    assert!(c.is_err());
    let Ok(c) = check(&doc(vec![v2("a", 1), v2("b", 2)])) else { panic!("valid") };
    let bytes = encode(&c);
    assert_eq!(bytes[0], FORMAT_V1);
    assert_eq!(decode(&bytes).ok(), Some(c));
    assert!(decode(&[]).is_err());
    assert!(decode(&[9, 1, 2]).is_err());
    assert!(decode(&[FORMAT_V1, 0xff]).is_err());
}

// ----- plan (PRI, DEL, ELI) -------------------------------------------------------------

fn rule(id: &str, priority: Option<i32>, prefix: Option<&str>, tags: &[(&str, &str)], dst: &str) -> Rule {
    Rule {
        id: id.into(),
        priority,
        enabled: true,
        schema: if priority.is_some() { RuleSchema::V2 } else { RuleSchema::V1 },
        filter: Filter {
            prefix: prefix.map(Into::into),
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            shape: FilterShape::And,
        },
        destination: Destination {
            bucket_arn: format!("arn:aws:s3:::{dst}"),
            bucket: dst.into(),
            account: None,
            storage_class: Some(format!("SC-{id}")),
            owner_override: false,
            replica_kms_key_id: None,
            replication_time: None,
            metrics: None,
        },
        delete_marker_replication: priority.map(|_| false),
        sse_kms_encrypted_objects: None,
        replica_modifications: None,
        existing_object_replication: None,
    }
}

fn config(rules: Vec<Rule>) -> ReplicationConfig {
    ReplicationConfig { role: ROLE.into(), rules }
}

fn winners(tasks: &[ReplicationTask]) -> Vec<(String, String)> {
    tasks.iter().map(|t| (t.destination_bucket.clone(), t.rule_id.clone())).collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn pri_3_highest_priority_wins_per_destination() {
    // Example 3: `star` (priority 1) and `starship` (priority 2), same destination.
    let c = config(vec![
        rule("star", Some(1), Some("star"), &[], "d"),
        rule("starship", Some(2), Some("starship"), &[], "d"),
    ]);
    let t = plan(&c, "starship-x", &[], TaskKind::Object, false);
    assert_eq!(winners(&t), vec![pair("d", "starship")]);
    assert_eq!(t[0].storage_class.as_deref(), Some("SC-starship"));
    assert_eq!(winners(&plan(&c, "start", &[], TaskKind::Object, false)), vec![pair("d", "star")]);
    assert!(plan(&c, "moon", &[], TaskKind::Object, false).is_empty());
}

#[test]
fn pri_1_every_destination_is_served() {
    let c = config(vec![rule("a", Some(9), None, &[], "d1"), rule("b", Some(1), None, &[], "d2")]);
    let t = plan(&c, "k", &[], TaskKind::Object, false);
    assert_eq!(winners(&t), vec![pair("d1", "a"), pair("d2", "b")]);
    assert!(t.iter().all(|t| t.kind == TaskKind::Object));
}

#[test]
fn pri_1_disabled_rules_do_not_compete() {
    let mut hi = rule("hi", Some(9), None, &[], "d");
    hi.enabled = false;
    let c = config(vec![hi, rule("lo", Some(1), None, &[], "d")]);
    assert_eq!(winners(&plan(&c, "k", &[], TaskKind::Object, false)), vec![pair("d", "lo")]);
}

#[test]
fn pri_4_v1_first_matching_rule_wins() {
    let c = config(vec![rule("a", None, Some(""), &[], "d"), rule("b", None, Some("x"), &[], "d")]);
    assert_eq!(winners(&plan(&c, "xy", &[], TaskKind::Object, false)), vec![pair("d", "a")]);
}

#[test]
fn eli_4_tags_must_all_match() {
    let c = config(vec![rule("a", Some(1), Some("docs/"), &[("k", "v"), ("k2", "v2")], "d")]);
    let tags = |t: &[(&str, &str)]| t.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
    assert_eq!(plan(&c, "docs/a", &tags(&[("k2", "v2"), ("k", "v"), ("x", "y")]), TaskKind::Object, false).len(), 1);
    assert!(plan(&c, "docs/a", &tags(&[("k", "v")]), TaskKind::Object, false).is_empty());
    assert!(plan(&c, "img/a", &tags(&[("k", "v"), ("k2", "v2")]), TaskKind::Object, false).is_empty());
}

#[test]
fn eli_13_replicas_are_never_replicated() {
    let c = config(vec![rule("a", Some(1), None, &[], "d")]);
    for kind in [TaskKind::Object, TaskKind::DeleteMarker, TaskKind::Tags] {
        assert!(plan(&c, "k", &[], kind, true).is_empty());
    }
}

#[test]
fn two_4_replica_modifications_send_tag_changes_on_replicas_back() {
    let mut back = rule("back", Some(1), Some("x/"), &[], "origin");
    back.replica_modifications = Some(true);
    let mut off = rule("off", Some(2), None, &[], "other");
    off.replica_modifications = Some(false);
    let c = config(vec![back, off, rule("plain", Some(3), None, &[], "third")]);
    // TWO-4: only a tag change, only under rules with ReplicaModifications Enabled.
    let t = plan(&c, "x/1", &[], TaskKind::Tags, true);
    assert_eq!(winners(&t), vec![pair("origin", "back")]);
    assert_eq!(t[0].kind, TaskKind::Tags);
    assert!(plan(&c, "y/1", &[], TaskKind::Tags, true).is_empty(), "the filter still applies");
    // ELI-13: the replica's data and delete markers are never sent on.
    assert!(plan(&c, "x/1", &[], TaskKind::Object, true).is_empty());
    assert!(plan(&c, "x/1", &[], TaskKind::DeleteMarker, true).is_empty());
    // An original's tag change goes to every destination, as before (ELI-12).
    assert_eq!(plan(&c, "x/1", &[], TaskKind::Tags, false).len(), 3);
}

#[test]
fn del_2_v1_replicates_user_delete_markers() {
    let c = config(vec![rule("a", None, Some("x/"), &[], "d")]);
    let t = plan(&c, "x/1", &[], TaskKind::DeleteMarker, false);
    assert_eq!(winners(&t), vec![pair("d", "a")]);
    assert_eq!(t[0].kind, TaskKind::DeleteMarker);
    assert!(plan(&c, "y/1", &[], TaskKind::DeleteMarker, false).is_empty());
}

#[test]
fn del_3_v2_delete_markers_need_dmr_enabled() {
    let mut on = rule("on", Some(1), Some("a"), &[], "d");
    on.delete_marker_replication = Some(true);
    let off = rule("off", Some(1), Some("b"), &[], "d2");
    let c = config(vec![on, off]);
    assert_eq!(winners(&plan(&c, "a1", &[], TaskKind::DeleteMarker, false)), vec![pair("d", "on")]);
    assert!(plan(&c, "b1", &[], TaskKind::DeleteMarker, false).is_empty());
}

#[test]
fn del_4_tag_rules_never_select_markers_and_winner_decides() {
    // A tag rule with higher priority does not take part for a delete marker.
    let mut tagged = rule("tagged", Some(9), None, &[("k", "v")], "d");
    tagged.delete_marker_replication = Some(false);
    let mut plain = rule("plain", Some(1), None, &[], "d");
    plain.delete_marker_replication = Some(true);
    let c = config(vec![tagged, plain]);
    assert_eq!(winners(&plan(&c, "k", &[], TaskKind::DeleteMarker, false)), vec![pair("d", "plain")]);
    // The winning rule has DMR disabled → no marker for that destination, even if a lower one has it.
    let mut hi = rule("hi", Some(9), None, &[], "d");
    hi.delete_marker_replication = Some(false);
    let mut lo = rule("lo", Some(1), None, &[], "d");
    lo.delete_marker_replication = Some(true);
    assert!(plan(&config(vec![hi, lo]), "k", &[], TaskKind::DeleteMarker, false).is_empty());
}

#[test]
fn tags_kind_selects_like_object() {
    let c = config(vec![rule("a", Some(1), None, &[("k", "v")], "d")]);
    let tags = vec![("k".to_owned(), "v".to_owned())];
    let t = plan(&c, "x", &tags, TaskKind::Tags, false);
    assert_eq!(winners(&t), vec![pair("d", "a")]);
    assert_eq!(t[0].kind, TaskKind::Tags);
}

/// ELI-12 with ELI-5: a tag change goes to the destinations the version was planned to, under
/// the rule that wins there now, whatever the new tags; not to a destination it was never
/// planned to, nor to one no enabled rule sends the key to any more.
#[test]
fn eli_12_tag_changes_follow_the_recorded_targets() {
    let mut off = rule("off", Some(5), None, &[], "gone");
    off.enabled = false;
    let c = config(vec![
        rule("tagged", Some(1), None, &[("team", "a")], "d1"),
        rule("docs-hi", Some(9), Some("docs/"), &[("x", "y")], "d2"),
        rule("docs-lo", Some(2), Some("docs/"), &[], "d2"),
        rule("never", Some(3), None, &[], "d3"),
        rule("img", Some(4), Some("img/"), &[], "d4"),
        off,
    ]);
    let targets: Vec<String> = ["d2", "d1", "d2", "gone", "d4"].iter().map(|t| (*t).to_owned()).collect();
    let t = plan_change(&c, "docs/a", &targets);
    // In the recorded order, once each; the tag filters are not judged again; d3 was never a
    // target; "gone" has only a disabled rule and d4 a rule for other keys.
    assert_eq!(winners(&t), vec![pair("d2", "docs-hi"), pair("d1", "tagged")]);
    assert!(t.iter().all(|t| t.kind == TaskKind::Tags));
    assert!(plan_change(&c, "docs/a", &[]).is_empty());
    // V1: the first rule in document order wins.
    let v1 = config(vec![rule("a", None, Some(""), &[], "d"), rule("b", None, Some("x"), &[], "d")]);
    assert_eq!(winners(&plan_change(&v1, "xy", &["d".to_owned()])), vec![pair("d", "a")]);
}

// ----- property tests against a brute-force model ---------------------------------------

/// Brute force PRI-1: for every destination, among all enabled rules that select the version,
/// the one with the highest priority (first in document order on ties); V1 by document order.
fn model(c: &ReplicationConfig, key: &str, tags: &[(String, String)], kind: TaskKind) -> Vec<(String, String)> {
    let v1 = c.rules.iter().any(|r| r.priority.is_none());
    let selects = |r: &Rule| {
        let prefix_ok = r.filter.prefix.as_ref().is_none_or(|p| key.as_bytes().starts_with(p.as_bytes()));
        let tags_ok = match kind {
            TaskKind::DeleteMarker => r.filter.tags.is_empty(),
            _ => r.filter.tags.iter().all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v)),
        };
        r.enabled && prefix_ok && tags_ok
    };
    let mut dests: Vec<&str> = Vec::new();
    for r in c.rules.iter().filter(|r| selects(r)) {
        if !dests.contains(&r.destination.bucket.as_str()) {
            dests.push(&r.destination.bucket);
        }
    }
    let mut out = Vec::new();
    for d in dests {
        let mut best: Option<&Rule> = None;
        for r in c.rules.iter().filter(|r| selects(r) && r.destination.bucket == d) {
            best = match best {
                None => Some(r),
                Some(b) if !v1 && r.priority > b.priority => Some(r),
                keep => keep,
            };
        }
        if let Some(b) = best {
            let dm_ok = v1 || b.delete_marker_replication == Some(true);
            if kind != TaskKind::DeleteMarker || dm_ok {
                out.push((d.to_owned(), b.id.clone()));
            }
        }
    }
    out
}

fn arb_rule(v1: bool) -> impl Strategy<Value = Rule> {
    (
        0i32..20,
        any::<bool>(),
        proptest::option::of(prop::sample::select(vec!["", "a", "ab", "abc", "b", "ba"])),
        proptest::collection::vec((prop::sample::select(vec!["k1", "k2"]), prop::sample::select(vec!["x", "y"])), 0..3),
        prop::sample::select(vec!["d1", "d2", "d3"]),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(move |(p, enabled, prefix, tags, dst, dmr)| {
            let mut tags: Vec<(String, String)> = tags.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            tags.sort();
            tags.dedup_by(|a, b| a.0 == b.0);
            let mut r = rule("", if v1 { None } else { Some(p) }, prefix, &[], dst);
            r.filter.tags = tags;
            r.enabled = enabled;
            r.delete_marker_replication = if v1 { None } else { dmr };
            r
        })
}

fn arb_config() -> impl Strategy<Value = ReplicationConfig> {
    any::<bool>().prop_flat_map(|v1| proptest::collection::vec(arb_rule(v1), 0..8)).prop_map(|mut rules| {
        for (i, r) in rules.iter_mut().enumerate() {
            r.id = format!("r{i}");
        }
        config(rules)
    })
}

fn arb_kind() -> impl Strategy<Value = TaskKind> {
    prop::sample::select(vec![TaskKind::Object, TaskKind::DeleteMarker, TaskKind::Tags])
}

proptest! {
    #[test]
    fn prop_plan_matches_brute_force(
        c in arb_config(),
        key in prop::sample::select(vec!["", "a", "ab", "abc", "abcd", "b", "bab", "c"]),
        tags in proptest::collection::vec((prop::sample::select(vec!["k1", "k2", "k3"]), prop::sample::select(vec!["x", "y"])), 0..3),
        kind in arb_kind(),
    ) {
        let tags: Vec<(String, String)> = tags.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let got = plan(&c, key, &tags, kind, false);
        prop_assert_eq!(winners(&got), model(&c, key, &tags, kind));
        // One task per destination, every task of the requested kind.
        let mut dests: Vec<&str> = got.iter().map(|t| t.destination_bucket.as_str()).collect();
        dests.sort_unstable();
        dests.dedup();
        prop_assert_eq!(dests.len(), got.len());
        prop_assert!(got.iter().all(|t| t.kind == kind));
        prop_assert!(plan(&c, key, &tags, kind, true).is_empty());
        // TWO-4: with ReplicaModifications on some V2 rules, a replica's tag change is planned
        // exactly as an original's would be under those rules alone.
        if !is_v1(&c) {
            let mut rm = c.clone();
            for (i, r) in rm.rules.iter_mut().enumerate() {
                r.replica_modifications = Some(i % 2 == 0);
            }
            let only = config(rm.rules.iter().filter(|r| r.replica_modifications == Some(true)).cloned().collect());
            let expected = match kind {
                TaskKind::Tags => plan(&only, key, &tags, kind, false),
                TaskKind::Object | TaskKind::DeleteMarker => Vec::new(),
            };
            prop_assert_eq!(plan(&rm, key, &tags, kind, true), expected);
        }
    }

    #[test]
    fn prop_filter_matches_brute_force(
        prefix in proptest::option::of("[ab]{0,3}"),
        want in proptest::collection::vec(("[kq]", "[xy]"), 0..3),
        key in "[ab]{0,4}",
        have in proptest::collection::vec(("[kq]", "[xy]"), 0..4),
    ) {
        let f = Filter { prefix: prefix.clone(), tags: want.clone(), shape: FilterShape::And };
        let expected = prefix.as_ref().is_none_or(|p| key.len() >= p.len() && key[..p.len()] == **p)
            && want.iter().all(|w| have.iter().any(|h| h == w));
        prop_assert_eq!(f.matches(&key, &have), expected);
    }

    #[test]
    fn prop_encode_decode_round_trip(c in arb_config()) {
        prop_assert_eq!(decode(&encode(&c)).ok(), Some(c));
    }
}

// ----- Region::put_replication / set_replication (VAL-2, VAL-3, VER-4, CFG-1..3) -----------

mod region {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use futures::future::BoxFuture;

    use super::*;
    use crate::{CoreResult, PeerDirectory, Region};

    /// Peers that know a fixed set of buckets and their versioning state.
    struct FixedPeers(BTreeMap<String, VersioningState>);

    impl PeerDirectory for FixedPeers {
        fn locate_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<String>>> {
            Box::pin(async move { Ok(self.0.contains_key(bucket).then(|| "peer-1".to_owned())) })
        }

        fn bucket_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, CoreResult<Option<VersioningState>>> {
            Box::pin(async move { Ok(self.0.get(bucket).copied()) })
        }
    }

    fn region(peers: &[(&str, VersioningState)]) -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().expect("tempdir");
        let peers = FixedPeers(peers.iter().map(|(b, s)| ((*b).to_owned(), *s)).collect());
        let region = Region::open("local-1", dir.path(), Arc::new(peers)).expect("open region");
        (dir, region)
    }

    async fn bucket(r: &Region, name: &str, state: VersioningState) {
        r.create_bucket(name, None).await.expect("create bucket");
        if state != VersioningState::Unversioned {
            r.set_versioning(name, state).await.expect("set versioning");
        }
    }

    fn to(dst: &str) -> ConfigDraft {
        let mut r = v2("a", 1);
        r.destination = Some(dest(dst));
        doc(vec![r])
    }

    #[track_caller]
    fn assert_val3(res: CoreResult<ReplicationConfig>) {
        assert_err(res, "InvalidRequest", MSG_DESTINATION_VERSIONING);
    }

    #[tokio::test]
    async fn val_3_local_destination_must_exist_with_versioning_enabled() {
        let (_dir, r) = region(&[]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        assert_val3(r.put_replication(SRC, &to("dst")).await);
        bucket(&r, "dst", VersioningState::Unversioned).await;
        assert_val3(r.put_replication(SRC, &to("dst")).await);
        r.set_versioning("dst", VersioningState::Suspended).await.expect("suspend");
        assert_val3(r.put_replication(SRC, &to("dst")).await);
        assert!(r.replication_config(SRC).expect("read").is_none());
        r.set_versioning("dst", VersioningState::Enabled).await.expect("enable");
        let stored = r.put_replication(SRC, &to("dst")).await.expect("put");
        assert_eq!(r.replication_config(SRC).expect("read"), Some(stored));
    }

    /// A new version's file in a bucket with replication stays in memory for the replication
    /// source's read (shown by removing the file behind the store's back: the read still
    /// answers); one in a bucket without replication is read from its file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::disallowed_methods, reason = "test: removes blob files to see where reads come from")]
    async fn replicated_buckets_keep_new_files_in_memory() {
        use futures::{StreamExt as _, TryStreamExt as _};

        let (_dir, r) = region(&[]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        bucket(&r, "dst", VersioningState::Enabled).await;
        r.put_replication(SRC, &to("dst")).await.expect("put");
        let bytes = bytes::Bytes::from(vec![7u8; 300_000]);
        for (target, kept) in [(SRC, true), ("dst", false)] {
            let body = futures::stream::iter([Ok(bytes.clone())]).boxed();
            let stored = r.write_object_body(target, body, None, Some(bytes.len() as u64), None).await.expect("write");
            let crate::objects::BodyStorage::File(segment) = stored.storage else { panic!("300 kB went inline") };
            let (fanout, _) = segment.id.split_at(2);
            std::fs::remove_file(r.blobs().dir().join(fanout).join(&segment.id)).expect("remove the file");
            let blob = xregion_types::BlobRef { segments: vec![segment] };
            let read: std::io::Result<Vec<bytes::Bytes>> = r.blobs().read(&blob, 0, 300_000).try_collect().await;
            match read {
                Ok(chunks) => assert!(kept && chunks.concat() == bytes, "{target}: read without its file"),
                Err(e) => assert!(!kept, "{target}: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn val_3_destination_in_another_region() {
        let (_dir, r) = region(&[("far-on", VersioningState::Enabled), ("far-off", VersioningState::Suspended)]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        assert!(r.put_replication(SRC, &to("far-on")).await.is_ok());
        assert_val3(r.put_replication(SRC, &to("far-off")).await);
        assert_val3(r.put_replication(SRC, &to("nowhere")).await);
    }

    #[tokio::test]
    async fn val_3_disabled_rules_destinations_are_checked() {
        let (_dir, r) = region(&[("far-on", VersioningState::Enabled)]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        let mut d = to("far-on");
        let mut off = v2("b", 2);
        off.status = Some("Disabled".into());
        off.destination = Some(dest("does-not-exist"));
        d.rules.push(off);
        assert_val3(r.put_replication(SRC, &d).await);
    }

    #[tokio::test]
    async fn val_1_source_versioning_before_destination() {
        let (_dir, r) = region(&[]);
        bucket(&r, SRC, VersioningState::Unversioned).await;
        assert_err(r.put_replication(SRC, &to("missing")).await, "InvalidRequest", MSG_SOURCE_VERSIONING);
        assert!(matches!(r.put_replication("no-such-bucket", &to("dst")).await, Err(CoreError::NoSuchBucket)));
    }

    #[tokio::test]
    async fn ver_4_suspend_refused_while_replication_is_configured() {
        let (_dir, r) = region(&[("far-on", VersioningState::Enabled)]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        r.put_replication(SRC, &to("far-on")).await.expect("put");
        match r.set_versioning(SRC, VersioningState::Suspended).await {
            Err(CoreError::InvalidBucketState(m)) => {
                assert!(m.starts_with("A replication configuration is present on this bucket"), "{m}")
            }
            other => panic!("expected InvalidBucketState, got {other:?}"),
        }
        r.set_replication(SRC, None).await.expect("delete");
        r.set_versioning(SRC, VersioningState::Suspended).await.expect("suspend after delete");
        // VAL-2 also holds for a config set directly.
        let cfg = check(&to("far-on")).expect("valid");
        assert_err(
            r.set_replication(SRC, Some(cfg)).await.map(|()| ReplicationConfig { role: String::new(), rules: vec![] }),
            "InvalidRequest",
            MSG_SOURCE_VERSIONING,
        );
    }

    #[tokio::test]
    async fn cfg_1_put_replaces_and_cfg_3_delete_is_idempotent() {
        let (_dir, r) = region(&[("far-on", VersioningState::Enabled), ("far-two", VersioningState::Enabled)]);
        bucket(&r, SRC, VersioningState::Enabled).await;
        r.set_replication(SRC, None).await.expect("delete with nothing configured");
        r.put_replication(SRC, &to("far-on")).await.expect("put 1");
        let second = r.put_replication(SRC, &to("far-two")).await.expect("put 2");
        let got = r.replication_config(SRC).expect("read").expect("configured");
        assert_eq!(got, second);
        assert_eq!(got.rules.len(), 1);
        assert_eq!(got.rules[0].destination.bucket, "far-two");
        r.set_replication(SRC, None).await.expect("delete");
        r.set_replication(SRC, None).await.expect("delete again");
        assert!(r.replication_config(SRC).expect("read").is_none());
    }
}
