//! Validation of lifecycle configurations: what S3 refuses, with its codes and messages.

use super::*;

fn rule() -> RuleDraft {
    RuleDraft {
        id: Some("r".into()),
        status: "Enabled".into(),
        filter: Some(FilterDraft::default()),
        expiration: Some(ExpirationDraft { days: Some(30), ..ExpirationDraft::default() }),
        ..RuleDraft::default()
    }
}

fn config(rules: Vec<RuleDraft>) -> LifecycleDraft {
    LifecycleDraft { rules }
}

/// The AWS code and message of a refused configuration.
fn refused(draft: LifecycleDraft) -> (&'static str, String) {
    match validate(&draft) {
        Err(CoreError::Invalid(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_valid_configuration_is_stored_as_given() {
    let mut tagged = rule();
    tagged.id = None;
    tagged.filter = Some(FilterDraft {
        and: Some(AndDraft {
            prefix: Some("logs/".into()),
            tags: vec![("class".into(), "tmp".into())],
            size_greater_than: Some(10),
            size_less_than: Some(1000),
        }),
        ..FilterDraft::default()
    });
    tagged.noncurrent = Some(NoncurrentDraft { days: Some(7), newer_versions: Some(3) });
    let mut legacy = rule();
    legacy.id = Some("old".into());
    legacy.filter = None;
    legacy.prefix = Some("tmp/".into());
    legacy.status = "Disabled".into();
    legacy.expiration = None;
    legacy.abort_incomplete_upload = Some(Some(2));
    let stored = validate(&config(vec![tagged, legacy])).unwrap();
    assert_eq!(stored.rules.len(), 2);
    assert_eq!(stored.rules[0].id.len(), 48, "a generated ID");
    assert_eq!(stored.rules[0].noncurrent, Some(NoncurrentExpiration { days: 7, newer_versions: Some(3) }));
    assert!(matches!(stored.rules[0].filter, LifecycleFilter::And { .. }));
    assert_eq!(stored.rules[1].filter, LifecycleFilter::RulePrefix("tmp/".into()));
    assert!(!stored.rules[1].enabled);
    assert_eq!(stored.rules[1].abort_incomplete_upload_days, Some(2));
    assert_eq!(decode(&encode(&stored)).unwrap(), stored);
}

#[test]
fn s3_refusals() {
    let with = |f: fn(&mut RuleDraft)| {
        let mut r = rule();
        f(&mut r);
        refused(config(vec![r]))
    };
    assert_eq!(refused(config(Vec::new())).0, "MalformedXML");
    assert_eq!(with(|r| r.status = "On".into()).0, "MalformedXML");
    assert_eq!(with(|r| r.prefix = Some("p".into())).0, "MalformedXML", "Prefix and Filter");
    assert_eq!(with(|r| r.filter = None).0, "MalformedXML", "neither Prefix nor Filter");
    assert_eq!(
        with(|r| r.filter = Some(FilterDraft {
            prefix: Some("a".into()),
            tag: Some(("k".into(), "v".into())),
            ..FilterDraft::default()
        }))
        .0,
        "MalformedXML"
    );
    assert_eq!(
        with(|r| r.id = Some("x".repeat(256))),
        ("InvalidArgument", "ID length should not exceed allowed limit of 255".into())
    );
    assert_eq!(
        with(|r| r.expiration = Some(ExpirationDraft { days: Some(0), ..ExpirationDraft::default() })),
        ("InvalidArgument", "'Days' for Expiration action must be a positive integer".into())
    );
    assert_eq!(
        with(
            |r| r.expiration = Some(ExpirationDraft { date_ms: Some(1_767_225_600_001), ..ExpirationDraft::default() })
        ),
        ("InvalidArgument", "'Date' must be at midnight GMT".into())
    );
    assert_eq!(
        with(|r| r.expiration = Some(ExpirationDraft {
            days: Some(1),
            expired_object_delete_marker: Some(true),
            ..ExpirationDraft::default()
        }))
        .0,
        "InvalidRequest"
    );
    assert_eq!(
        with(|r| {
            r.expiration = None;
            r.noncurrent = Some(NoncurrentDraft { days: None, newer_versions: None });
        }),
        (
            "InvalidArgument",
            "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer".into()
        )
    );
    assert_eq!(
        with(|r| r.noncurrent = Some(NoncurrentDraft { days: Some(1), newer_versions: Some(101) })).0,
        "InvalidArgument"
    );
    assert_eq!(
        with(|r| r.abort_incomplete_upload = Some(Some(0))),
        (
            "InvalidArgument",
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer".into()
        )
    );
    assert_eq!(
        with(|r| {
            r.filter = Some(FilterDraft { tag: Some(("k".into(), "v".into())), ..FilterDraft::default() });
            r.abort_incomplete_upload = Some(Some(1));
        })
        .0,
        "InvalidRequest"
    );
    assert_eq!(
        with(|r| {
            r.filter = Some(FilterDraft { size_greater_than: Some(5), ..FilterDraft::default() });
            r.expiration =
                Some(ExpirationDraft { expired_object_delete_marker: Some(true), ..ExpirationDraft::default() });
        })
        .0,
        "InvalidRequest"
    );
    assert_eq!(
        with(|r| r.expiration = None),
        ("InvalidRequest", "At least one action needs to be specified in a rule".into())
    );
    assert_eq!(
        with(|r| r.filter = Some(FilterDraft {
            and: Some(AndDraft { size_greater_than: Some(10), size_less_than: Some(10), ..AndDraft::default() }),
            ..FilterDraft::default()
        }))
        .0,
        "InvalidArgument"
    );
    assert_eq!(
        refused(config(vec![rule(), rule()])),
        ("InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule".into())
    );
    assert_eq!(refused(config(vec![rule(); 1001])).0, "InvalidArgument");
}
