//! Batch replication as S3 Batch Operations jobs (BAT-2..BAT-8) over the S3 Control wire API
//! (`/v20180820/jobs`, signed like any S3 request, with `x-amz-account-id`): a generated
//! manifest with filters, confirmation, the lifecycle to `Complete`, the CSV completion
//! report, failures recorded per task, cancellation, and a job that survives a restart of
//! its region while its destination is down.

use aws_sdk_s3::types::BucketVersioningStatus;
use serde_json::Value;

use crate::common::*;
use crate::replication::{configure, eventually, status, wait_same_versions};

const ACCOUNT: &str = "123456789012";
const NS: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

/// A `CreateJobRequest` for batch replication: its report element and how it selects versions
/// (a `ManifestGenerator` or a `Manifest`).
fn job_request_xml(token: &str, confirm: bool, report: &str, selection: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><CreateJobRequest xmlns="{NS}"><AccountId>{ACCOUNT}</AccountId><ConfirmationRequired>{confirm}</ConfirmationRequired><Operation><S3ReplicateObject/></Operation>{report}<ClientRequestToken>{token}</ClientRequestToken><Priority>10</Priority><RoleArn>arn:aws:iam::{ACCOUNT}:role/batch</RoleArn>{selection}</CreateJobRequest>"#
    )
}

/// A report of all tasks into `bucket`, under `prefix` if given.
fn report_xml(bucket: &str, prefix: Option<&str>) -> String {
    let prefix = prefix.map(|p| format!("<Prefix>{p}</Prefix>")).unwrap_or_default();
    format!(
        "<Report><Bucket>arn:aws:s3:::{bucket}</Bucket><Format>Report_CSV_20180820</Format><Enabled>true</Enabled>\
         {prefix}<ReportScope>AllTasks</ReportScope></Report>"
    )
}

/// A `CreateJobRequest` for batch replication of `bucket` with a generated manifest.
fn create_job_xml(token: &str, bucket: &str, filter: &str, report_bucket: Option<&str>, confirm: bool) -> String {
    let report = match report_bucket {
        Some(b) => report_xml(b, Some("reports")),
        None => "<Report><Enabled>false</Enabled></Report>".to_owned(),
    };
    let generator = format!(
        "<ManifestGenerator><S3JobManifestGenerator><SourceBucket>arn:aws:s3:::{bucket}</SourceBucket>\
         <EnableManifestOutput>false</EnableManifestOutput><Filter>{filter}</Filter></S3JobManifestGenerator>\
         </ManifestGenerator>"
    );
    job_request_xml(token, confirm, &report, &generator)
}

async fn control(region: &TestRegion, method: &str, path: &str, body: &[u8]) -> RawResponse {
    region.signed(method, &format!("/v20180820/jobs{path}"), &[("x-amz-account-id", ACCOUNT)], body).await
}

async fn create_job(region: &TestRegion, xml: &str) -> String {
    let resp = control(region, "POST", "", xml.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    xml_element(&resp.text(), "JobId").expect("JobId")
}

/// `DescribeJob`'s `Status` and its XML.
async fn describe(region: &TestRegion, id: &str) -> (String, String) {
    let resp = control(region, "GET", &format!("/{id}"), b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    (xml_element(&text, "Status").expect("Status"), text)
}

async fn wait_status(region: &TestRegion, id: &str, wanted: &str) -> String {
    eventually(&format!("job {id} to be {wanted}"), || async {
        let (status, text) = describe(region, id).await;
        (status == wanted).then_some(text)
    })
    .await
}

fn number(xml: &str, name: &str) -> u64 {
    xml_element(xml, name).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{name} in {xml}"))
}

#[tokio::test]
async fn bat2_bat7_a_confirmed_job_replicates_what_its_filter_takes_and_reports_each_task() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "job-src").await;
    let dst = create_versioned_bucket(&dc, "job-dst").await;
    let reports = create_bucket(&sc, "job-reports").await;
    // Before the configuration: never replicated live (ELI-1).
    let a1 = put(&sc, &src, "docs/a", b"one").await.version_id.expect("vid");
    let a2 = put(&sc, &src, "docs/a", b"two").await.version_id.expect("vid");
    let b1 = put(&sc, &src, "docs/b,comma", b"bee").await.version_id.expect("vid");
    let skipped = put(&sc, &src, "tmp/x", b"not in the filter").await.version_id.expect("vid");
    configure(&sc, &src, &dst, true).await;

    // Bad requests change nothing.
    let other = create_versioned_bucket(&sc, "job-noconfig").await;
    let resp = control(&regions[0], "POST", "", create_job_xml("t0", &other, "", None, false).as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (404, Some("ReplicationConfigurationNotFoundError")));
    let copy = create_job_xml("t1", &src, "", None, false).replace(
        "<S3ReplicateObject/>",
        "<S3PutObjectCopy><TargetResource>arn:aws:s3:::x</TargetResource></S3PutObjectCopy>",
    );
    let resp = control(&regions[0], "POST", "", copy.as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", resp.text());
    let resp = control(&regions[0], "POST", "", b"<CreateJobRequest").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    let elsewhere = create_job_xml("t2", &src, "", Some("no-such-report-bucket"), false);
    let resp = control(&regions[0], "POST", "", elsewhere.as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", resp.text());
    // Jobs run in the source bucket's region (BAT-2): another region names it.
    let resp = control(&regions[1], "POST", "", create_job_xml("t3", &src, "", None, false).as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", resp.text());
    assert!(resp.text().contains("us-east-1"), "{}", resp.text());
    let resp = control(&regions[0], "GET", "/00000000-0000-0000-0000-000000000000", b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (404, Some("NotFoundException")));
    // A client's mistake is a complete error document (with the request id), not a server fault.
    assert!(resp.text().contains("<RequestId>") && resp.header("x-amz-request-id").is_some(), "{}", resp.text());
    assert_eq!(regions[0].anonymous("GET", "/v20180820/jobs").await.status, 403);
    // Other S3 Control operations are refused as such, not taken for objects of a bucket.
    let resp = control(&regions[0], "POST", "/00000000-0000-0000-0000-000000000000/tagging", b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (501, Some("NotImplemented")), "{}", resp.text());
    let resp = control(&regions[0], "GET", "/00000000-0000-0000-0000-000000000000/tagging", b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (404, Some("NotFoundException")), "{}", resp.text());
    let tagging =
        |tags: &str| format!("<PutJobTaggingRequest xmlns=\"{NS}\"><Tags>{tags}</Tags></PutJobTaggingRequest>");
    let list = control(&regions[0], "GET", "", b"").await;
    assert_eq!(list.status, 200);
    assert!(xml_element(&list.text(), "JobId").is_none(), "no job was created: {}", list.text());

    // NONE under docs/, confirmation required, report of all tasks.
    let filter = "<EligibleForReplication>true</EligibleForReplication><ObjectReplicationStatuses>\
                  <member>NONE</member></ObjectReplicationStatuses><KeyNameConstraint><MatchAnyPrefix>\
                  <member>docs/</member></MatchAnyPrefix></KeyNameConstraint>";
    let xml = create_job_xml("token-1", &src, filter, Some(&reports), true);
    let id = create_job(&regions[0], &xml).await;
    // BAT-2: the same ClientRequestToken is the same job.
    assert_eq!(create_job(&regions[0], &xml).await, id);
    // Job tags: replaced whole, read back; more than 50 is 400 TooManyTagsException.
    let two = "<member><Key>team</Key><Value>ops</Value></member><member><Key>empty</Key><Value></Value></member>";
    let resp = control(&regions[0], "PUT", &format!("/{id}/tagging"), tagging(two).as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = control(&regions[0], "GET", &format!("/{id}/tagging"), b"").await.text();
    assert!(got.contains(&format!("<Tags>{two}</Tags>")), "{got}");
    let many: String = (0..51).map(|i| format!("<member><Key>k{i}</Key><Value>v</Value></member>")).collect();
    let resp = control(&regions[0], "PUT", &format!("/{id}/tagging"), tagging(&many).as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("TooManyTagsException")), "{}", resp.text());
    let resp = control(&regions[0], "DELETE", &format!("/{id}/tagging"), b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = control(&regions[0], "GET", &format!("/{id}/tagging"), b"").await.text();
    assert!(xml_element(&got, "member").is_none(), "{got}");
    let suspended = wait_status(&regions[0], &id, "Suspended").await;
    assert_eq!(number(&suspended, "TotalNumberOfTasks"), 3, "{suspended}");
    assert_eq!(xml_element(&suspended, "SuspendedCause").as_deref(), Some("AwaitingConfirmation"));
    assert_eq!(status(&sc, &src, "docs/a", &a1).await, None, "nothing runs before confirmation");
    let listed = control(&regions[0], "GET", "?jobStatuses=Suspended", b"").await;
    assert_eq!(xml_element(&listed.text(), "JobId").as_deref(), Some(id.as_str()), "{}", listed.text());
    let resp = control(&regions[0], "GET", "?jobStatuses=Complete", b"").await;
    assert!(xml_element(&resp.text(), "JobId").is_none(), "{}", resp.text());
    // Another account does not see it.
    let resp =
        regions[0].signed("GET", &format!("/v20180820/jobs/{id}"), &[("x-amz-account-id", "999999999999")], b"").await;
    assert_eq!(resp.status, 404);

    let resp = control(&regions[0], "POST", &format!("/{id}/priority?priority=42"), b"").await;
    assert_eq!(xml_element(&resp.text(), "Priority").as_deref(), Some("42"), "{}", resp.text());
    let resp = control(&regions[0], "POST", &format!("/{id}/status?requestedJobStatus=Ready"), b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let done = wait_status(&regions[0], &id, "Complete").await;
    assert_eq!((number(&done, "NumberOfTasksSucceeded"), number(&done, "NumberOfTasksFailed")), (3, 0), "{done}");
    assert_eq!(xml_element(&done, "Priority").as_deref(), Some("42"));
    assert!(xml_element(&done, "TerminationDate").is_some(), "{done}");
    for (key, id) in [("docs/a", &a1), ("docs/a", &a2), ("docs/b,comma", &b1)] {
        assert_eq!(status(&sc, &src, key, id).await.as_deref(), Some("COMPLETED"));
        assert_eq!(status(&dc, &dst, key, id).await.as_deref(), Some("REPLICA"));
    }
    assert_eq!(get_body(&dc, &dst, "docs/a", Some(&a1)).await, b"one");
    assert_eq!(status(&sc, &src, "tmp/x", &skipped).await, None, "outside the key filter");
    // A finished job cannot be confirmed or cancelled.
    let resp = control(&regions[0], "POST", &format!("/{id}/status?requestedJobStatus=Cancelled"), b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (409, Some("JobStatusException")));

    // BAT-7: manifest.json lists the result CSV; one row per task.
    let base = format!("reports/job-{id}/");
    let manifest: Value =
        serde_json::from_slice(&get_body(&sc, &reports, &format!("{base}manifest.json"), None).await).expect("JSON");
    assert_eq!(manifest["Format"], "Report_CSV_20180820");
    assert_eq!(
        manifest["ReportSchema"],
        "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    );
    let results = manifest["Results"].as_array().expect("Results");
    assert_eq!(results.len(), 1, "{manifest}");
    assert_eq!(results[0]["TaskExecutionStatus"], "succeeded");
    let csv_key = results[0]["Key"].as_str().expect("Key");
    let csv = String::from_utf8(get_body(&sc, &reports, csv_key, None).await).expect("utf-8");
    assert_eq!(results[0]["MD5Checksum"].as_str(), Some(md5_hex(csv.as_bytes()).as_str()));
    let mut rows: Vec<&str> = csv.lines().collect();
    rows.sort();
    let mut expected = vec![
        format!("{src},docs%2Fa,{a1},succeeded,200,,Successful"),
        format!("{src},docs%2Fa,{a2},succeeded,200,,Successful"),
        format!("{src},docs%2Fb%2Ccomma,{b1},succeeded,200,,Successful"),
    ];
    expected.sort();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn bat6_failed_tasks_are_reported_and_a_job_survives_a_restart() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "jobf-src").await;
    let dst = create_versioned_bucket(&dc, "jobf-dst").await;
    let reports = create_bucket(&sc, "jobf-reports").await;
    let v1 = put(&sc, &src, "k1", b"1").await.version_id.expect("vid");
    configure(&sc, &src, &dst, true).await;

    // The destination refuses for good (versioning suspended): the task fails with the
    // replication failure reason (IAM-8).
    set_versioning(&dc, &dst, BucketVersioningStatus::Suspended).await;
    let id = create_job(&regions[0], &create_job_xml("fail-1", &src, "", Some(&reports), false)).await;
    let done = wait_status(&regions[0], &id, "Complete").await;
    assert_eq!((number(&done, "NumberOfTasksSucceeded"), number(&done, "NumberOfTasksFailed")), (0, 1), "{done}");
    let csv = String::from_utf8(get_body(&sc, &reports, &format!("reports/job-{id}/results/failed-1.csv"), None).await)
        .expect("utf-8");
    assert_eq!(
        csv.trim_end(),
        format!("{src},k1,{v1},failed,400,DstBucketUnversioned,Replication failed: DstBucketUnversioned")
    );
    assert_eq!(status(&sc, &src, "k1", &v1).await.as_deref(), Some("FAILED"));

    // Fixed, retried by a job taking FAILED versions, while the destination is down; the
    // source region restarts with the job Active; the job completes once the destination is
    // back.
    set_versioning(&dc, &dst, BucketVersioningStatus::Enabled).await;
    regions[1].kill();
    let filter = "<ObjectReplicationStatuses><member>FAILED</member></ObjectReplicationStatuses>";
    let id = create_job(&regions[0], &create_job_xml("retry-1", &src, filter, Some(&reports), false)).await;
    let active = wait_status(&regions[0], &id, "Active").await;
    assert_eq!(number(&active, "TotalNumberOfTasks"), 1, "{active}");
    // The operator report shows the job waiting, with its tasks (invariant 6).
    let report: Value =
        serde_json::from_slice(&regions[0].signed("GET", "/_xregion/replication", &[], b"").await.body).expect("JSON");
    let unfinished = &report["jobs"]["unfinished"];
    assert_eq!((unfinished[0]["id"].as_str(), unfinished[0]["status"].as_str()), (Some(id.as_str()), Some("Active")));
    assert_eq!(unfinished[0]["queued_tasks"].as_u64(), Some(1), "{report}");
    assert_eq!(report["jobs"]["by_status"]["Complete"].as_u64(), Some(1), "{report}");
    let metrics = regions[0].signed("GET", "/_xregion/metrics", &[], b"").await.text();
    assert!(metrics.contains("xregion_batch_jobs{region=\"us-east-1\",status=\"Active\"} 1"), "{metrics}");
    assert!(metrics.contains("xregion_batch_job_tasks_remaining{region=\"us-east-1\"} 1"), "{metrics}");
    regions[0].restart();
    let (status_now, _) = describe(&regions[0], &id).await;
    assert_eq!(status_now, "Active", "the job is on disk and still waits for its task");
    regions[1].restart();
    let done = wait_status(&regions[0], &id, "Complete").await;
    assert_eq!((number(&done, "NumberOfTasksSucceeded"), number(&done, "NumberOfTasksFailed")), (1, 0), "{done}");
    let sc = regions[0].client();
    let dc = regions[1].client();
    wait_same_versions(&sc, &src, &dc, &dst).await;
    assert_eq!(status(&sc, &src, "k1", &v1).await.as_deref(), Some("COMPLETED"));

    // Cancelling a job waiting for confirmation ends it without running anything.
    put(&sc, &src, "k2", b"2").await;
    let id = create_job(&regions[0], &create_job_xml("cancel-1", &src, "", None, true)).await;
    wait_status(&regions[0], &id, "Suspended").await;
    let resp =
        control(&regions[0], "POST", &format!("/{id}/status?requestedJobStatus=Cancelled&statusUpdateReason=no"), b"")
            .await;
    assert_eq!(xml_element(&resp.text(), "Status").as_deref(), Some("Cancelled"), "{}", resp.text());
    let (_, text) = describe(&regions[0], &id).await;
    assert_eq!(xml_element(&text, "StatusUpdateReason").as_deref(), Some("no"));
    let resp = control(&regions[0], "POST", &format!("/{id}/status?requestedJobStatus=Ready"), b"").await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (409, Some("JobStatusException")));

    // ListJobs pages, newest first: three jobs, two a page.
    let ids = |xml: &str| -> Vec<String> {
        xml.split("<JobId>").skip(1).filter_map(|s| s.split_once("</JobId>")).map(|(id, _)| id.to_owned()).collect()
    };
    let first = control(&regions[0], "GET", "?maxResults=2", b"").await.text();
    let token = xml_element(&first, "NextToken").expect("NextToken");
    assert_eq!(ids(&first).len(), 2, "{first}");
    assert_eq!(ids(&first)[0], id, "newest first: {first}");
    let rest = control(&regions[0], "GET", &format!("?maxResults=2&nextToken={token}"), b"").await.text();
    assert_eq!(ids(&rest).len(), 1, "{rest}");
    assert!(xml_element(&rest, "NextToken").is_none(), "{rest}");
    let resp = control(&regions[0], "GET", "?maxResults=0", b"").await;
    assert_eq!(resp.status, 400);
}

/// The same through boto3's own `s3control` client (`tests/python/batch_jobs_boto3.py`).
#[tokio::test]
async fn bat2_boto3_s3control_runs_a_batch_replication_job() {
    if !crate::boto3::boto3_or_skip("boto3 batch jobs test") {
        return;
    }
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "jobpy-src").await;
    let dst = create_versioned_bucket(&dc, "jobpy-dst").await;
    let reports = create_bucket(&sc, "jobpy-reports").await;
    put(&sc, &src, "a", b"one").await;
    put(&sc, &src, "a", b"two").await;
    put(&sc, &src, "dir/b", b"bee").await;
    configure(&sc, &src, &dst, true).await;
    let dest_endpoint = regions[1].endpoint();
    let env = [
        ("XREGION_DEST_ENDPOINT", dest_endpoint.as_str()),
        ("XREGION_DEST_REGION", regions[1].name()),
        ("XREGION_DEST_BUCKET", dst.as_str()),
        ("XREGION_REPORT_BUCKET", reports.as_str()),
    ];
    crate::boto3::run_boto3(&regions[0], "batch_jobs_boto3.py", &src, "batch jobs boto3 test passed", &env);
}

/// A `CreateJobRequest` whose manifest is a user's CSV object (`Bucket,Key,VersionId`).
fn csv_job_xml(token: &str, manifest_bucket: &str, manifest_key: &str, etag: &str, report_bucket: &str) -> String {
    let manifest = format!(
        "<Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format><Fields><member>Bucket</member>\
         <member>Key</member><member>VersionId</member></Fields></Spec><Location>\
         <ObjectArn>arn:aws:s3:::{manifest_bucket}/{manifest_key}</ObjectArn><ETag>\"{etag}\"</ETag></Location>\
         </Manifest>"
    );
    job_request_xml(token, false, &report_xml(report_bucket, None), &manifest)
}

/// BAT-2 with a user's CSV manifest: exactly the rows listed are replicated (a row without a
/// version id: the current version); rows that cannot be are failed tasks with their reason;
/// a manifest whose ETag is not the one given is refused at CreateJob.
#[tokio::test]
async fn bat2_a_csv_manifest_replicates_exactly_its_rows() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "jobcsv-src").await;
    let dst = create_versioned_bucket(&dc, "jobcsv-dst").await;
    let reports = create_bucket(&sc, "jobcsv-reports").await;
    let a1 = put(&sc, &src, "dir/a b", b"one").await.version_id.expect("vid");
    let a2 = put(&sc, &src, "dir/a b", b"two").await.version_id.expect("vid");
    let c1 = put(&sc, &src, "c", b"see").await.version_id.expect("vid");
    let c2 = put(&sc, &src, "c", b"sea").await.version_id.expect("vid");
    let unlisted = put(&sc, &src, "unlisted", b"x").await.version_id.expect("vid");
    configure(&sc, &src, &dst, true).await;
    let manifest = format!(
        "{src},dir%2Fa%20b,{a1}\n{src},c,\n{reports},elsewhere,\n{src},missing,\n{src},dir%2Fa%20b,not-a-version\n"
    );
    // In a versioned bucket, so that the job's pinned version outlives an overwrite.
    let manifests = create_versioned_bucket(&sc, "jobcsv-manifests").await;
    let etag = put(&sc, &manifests, "m.csv", manifest.as_bytes()).await.e_tag.expect("etag");
    let etag = unquote(&etag).to_owned();

    let wrong = csv_job_xml("csv-0", &manifests, "m.csv", "0123", &reports);
    let resp = control(&regions[0], "POST", "", wrong.as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", resp.text());
    assert!(resp.text().contains("ETag"), "{}", resp.text());
    let missing = csv_job_xml("csv-1", &manifests, "none.csv", &etag, &reports);
    let resp = control(&regions[0], "POST", "", missing.as_bytes()).await;
    assert_eq!((resp.status, resp.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", resp.text());

    let id = create_job(&regions[0], &csv_job_xml("csv-2", &manifests, "m.csv", &etag, &reports)).await;
    // The manifest is pinned at CreateJob to the version read: a new version changes nothing.
    put(&sc, &manifests, "m.csv", b"overwritten").await;
    let done = wait_status(&regions[0], &id, "Complete").await;
    assert_eq!(number(&done, "TotalNumberOfTasks"), 5, "{done}");
    assert_eq!((number(&done, "NumberOfTasksSucceeded"), number(&done, "NumberOfTasksFailed")), (2, 3), "{done}");
    assert!(done.contains("<ObjectArn>arn:aws:s3:::"), "DescribeJob echoes the manifest: {done}");
    assert_eq!(status(&sc, &src, "dir/a b", &a1).await.as_deref(), Some("COMPLETED"));
    assert_eq!(status(&sc, &src, "c", &c2).await.as_deref(), Some("COMPLETED"), "the current version");
    for (key, id) in [("dir/a b", &a2), ("c", &c1), ("unlisted", &unlisted)] {
        assert_eq!(status(&sc, &src, key, id).await, None, "{key} {id} was not in the manifest");
    }
    assert_eq!(get_body(&dc, &dst, "c", Some(&c2)).await, b"sea");

    let failed = String::from_utf8(get_body(&sc, &reports, &format!("job-{id}/results/failed-1.csv"), None).await)
        .expect("utf-8");
    let codes: Vec<&str> = failed.lines().filter_map(|l| l.split(',').nth(5)).collect();
    assert_eq!(codes, ["InvalidRequest", "NoSuchKey", "InvalidRequest"], "{failed}");
    let succeeded =
        String::from_utf8(get_body(&sc, &reports, &format!("job-{id}/results/succeeded-1.csv"), None).await)
            .expect("utf-8");
    assert_eq!(succeeded.lines().count(), 2, "{succeeded}");
    assert!(succeeded.contains(&format!("{src},dir%2Fa%20b,{a1},succeeded")), "{succeeded}");
}

/// BAT-6 and design invariant 1 under chaos: a job back-filling 3000 versions while its
/// source region (which runs the job) and its destination are SIGKILLed and restarted, again
/// and again, ends `Complete` with every task succeeded once: the report lists each version
/// exactly once and the destination holds exactly the source's versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_job_survives_repeated_kills_and_reports_every_task_once() {
    const WRITERS: usize = 6;
    const PER_WRITER: usize = 500;
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "jobc-src").await;
    let dst = create_versioned_bucket(&dc, "jobc-dst").await;
    let reports = create_bucket(&sc, "jobc-reports").await;
    // Written before the configuration: never replicated live (ELI-1), so the job has them all.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (sc, src) = (sc.clone(), src.clone());
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..PER_WRITER {
                let key = format!("w{w}/k{}", i % 25);
                let vid = put(&sc, &src, &key, format!("{w} {i}").as_bytes()).await.version_id.expect("vid");
                written.push((key, vid));
            }
            written
        }));
    }
    let mut written = std::collections::BTreeSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer"));
    }
    configure(&sc, &src, &dst, true).await;

    // The destination is down when the job starts, so it is still running when the kills come:
    // first of the source (the job's runner) alone, then of either.
    regions[1].kill();
    let filter = "<EligibleForReplication>true</EligibleForReplication>";
    let id = create_job(&regions[0], &create_job_xml("chaos-1", &src, filter, Some(&reports), false)).await;
    let mut seen = Vec::new();
    for round in 0..10 {
        let victim = if round < 3 { 0 } else { round % 2 };
        if round == 3 {
            regions[1].restart();
        }
        regions = kill_and_restart(regions, victim, 150, 600).await;
        seen.push(describe(&regions[0], &id).await.0);
    }
    eprintln!("job status after each kill: {seen:?}");
    assert!(seen.iter().any(|s| s == "Active"), "the kills found the job running: {seen:?}");
    let done = wait_status(&regions[0], &id, "Complete").await;
    let total = (WRITERS * PER_WRITER) as u64;
    assert_eq!(number(&done, "TotalNumberOfTasks"), total, "{done}");
    assert_eq!((number(&done, "NumberOfTasksSucceeded"), number(&done, "NumberOfTasksFailed")), (total, 0), "{done}");

    let sc = regions[0].client();
    let base = format!("reports/job-{id}/");
    let manifest: Value =
        serde_json::from_slice(&get_body(&sc, &reports, &format!("{base}manifest.json"), None).await).expect("JSON");
    let results = manifest["Results"].as_array().expect("Results");
    assert_eq!(results.len(), 1, "one results file of succeeded tasks: {manifest}");
    let csv = String::from_utf8(get_body(&sc, &reports, results[0]["Key"].as_str().expect("Key"), None).await)
        .expect("utf-8");
    let mut reported = std::collections::BTreeSet::new();
    for row in csv.lines() {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[3..], ["succeeded", "200", "", "Successful"], "{row}");
        let key = urlencoding::decode(fields[1]).expect("url-encoded key").into_owned();
        assert!(reported.insert((key, fields[2].to_owned())), "reported twice: {row}");
    }
    assert_eq!(reported, written, "the report lists exactly the versions written");
    let dc = regions[1].client();
    let want = all_versions_paged(&sc, &src).await;
    assert_eq!(want.len(), written.len());
    eventually("the destination to hold exactly the source's versions", || async {
        (all_versions_paged(&dc, &dst).await == want).then_some(())
    })
    .await;
}
