//! S3 Control `CreateJob` and `PutJobTagging` bodies (network input, BAT-2) must never make
//! the XML parser panic, and neither may CSV manifest rows (a user's object, read by the job
//! runner).
//! Whatever the parser accepts is a job it can describe: a bucket or a CSV manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xregion_core::jobs::parse_manifest_row;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = xregion_s3api::parse_create_job_request(data, "123456789012") {
        assert!(!spec.bucket.is_empty() || spec.manifest.is_some(), "{spec:?}");
        assert_eq!(spec.account_id, "123456789012");
    }
    let _ = xregion_s3api::parse_put_job_tagging_request(data);
    for with_version_ids in [false, true] {
        if let Ok(row) = parse_manifest_row(data, with_version_ids) {
            assert!(!row.bucket.is_empty() && !row.key.is_empty(), "{row:?}");
            assert!(with_version_ids || row.version_id.is_none());
        }
    }
});
