"""Batch replication as an S3 Batch Operations job, driven by boto3's own s3control client.

Usage: batch_jobs_boto3.py SOURCE_BUCKET, with XREGION_ENDPOINT (the source region, of the
form http://127.0.0.1:PORT), XREGION_TEST_REGION, XREGION_DEST_ENDPOINT, XREGION_DEST_REGION,
XREGION_DEST_BUCKET and XREGION_REPORT_BUCKET in the environment. SOURCE_BUCKET has a
replication configuration to the destination bucket and versions written before it (ELI-1:
never replicated live). The script creates a job replicating them (`NONE`), follows it to
Complete with DescribeJob and ListJobs, checks the completion report and the replicas, and
prints a marker when all passed.

S3 Control clients put the account id in front of the endpoint's host name
(`123456789012.localhost`); the test harness resolves names under `.localhost` to loopback
(`localhost_resolver/sitecustomize.py`, on PYTHONPATH).
"""

import csv
import io
import json
import os
import sys
import time
import urllib.parse

import boto3

ACCOUNT = "123456789012"

source_bucket = sys.argv[1]
region = os.environ["XREGION_TEST_REGION"]
endpoint = os.environ["XREGION_ENDPOINT"]
port = urllib.parse.urlparse(endpoint).port
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
dest = boto3.client("s3", endpoint_url=os.environ["XREGION_DEST_ENDPOINT"],
                    region_name=os.environ["XREGION_DEST_REGION"])
dest_bucket = os.environ["XREGION_DEST_BUCKET"]
report_bucket = os.environ["XREGION_REPORT_BUCKET"]
control = boto3.client("s3control", endpoint_url=f"http://localhost:{port}", region_name=region)

before = s3.list_object_versions(Bucket=source_bucket)["Versions"]
assert len(before) == 3, before
for v in before:
    head = s3.head_object(Bucket=source_bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert "ReplicationStatus" not in head, head

request = dict(
    AccountId=ACCOUNT,
    ConfirmationRequired=False,
    Operation={"S3ReplicateObject": {}},
    Report={"Bucket": f"arn:aws:s3:::{report_bucket}", "Format": "Report_CSV_20180820", "Enabled": True,
            "Prefix": "batch", "ReportScope": "AllTasks"},
    ClientRequestToken="boto3-job-1",
    Priority=5,
    RoleArn=f"arn:aws:iam::{ACCOUNT}:role/batch-replication",
    Description="replicate what was there before",
    Tags=[{"Key": "team", "Value": "storage"}],
    ManifestGenerator={"S3JobManifestGenerator": {
        "SourceBucket": f"arn:aws:s3:::{source_bucket}",
        "EnableManifestOutput": True,
        "ManifestOutputLocation": {"Bucket": f"arn:aws:s3:::{report_bucket}", "ManifestPrefix": "manifests",
                                   "ManifestFormat": "S3InventoryReport_CSV_20211130"},
        "Filter": {"EligibleForReplication": True, "ObjectReplicationStatuses": ["NONE"]},
    }},
)
job_id = control.create_job(**request)["JobId"]

deadline = time.time() + 60
while True:
    job = control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]
    if job["Status"] in ("Complete", "Failed", "Cancelled"):
        break
    assert time.time() < deadline, job
    time.sleep(0.2)
assert job["Status"] == "Complete", job
assert job["JobArn"] == f"arn:aws:s3:{region}:{ACCOUNT}:job/{job_id}", job["JobArn"]
assert job["Description"] == "replicate what was there before"
assert job["Priority"] == 5
assert "S3ReplicateObject" in job["Operation"], job["Operation"]
progress = job["ProgressSummary"]
assert (progress["TotalNumberOfTasks"], progress["NumberOfTasksSucceeded"], progress["NumberOfTasksFailed"]) \
    == (3, 3, 0), progress
assert job["ManifestGenerator"]["S3JobManifestGenerator"]["SourceBucket"] == f"arn:aws:s3:::{source_bucket}"
assert job["Report"]["Enabled"] and job["Report"]["Bucket"] == f"arn:aws:s3:::{report_bucket}", job["Report"]
assert job["CreationTime"] <= job["TerminationDate"], job

listed = control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Complete"])["Jobs"]
assert [j["JobId"] for j in listed] == [job_id], listed
assert listed[0]["Operation"] == "S3ReplicateObject", listed
assert control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Active"])["Jobs"] == []

# The same request again is the same job (BAT-2); the token with other parameters is
# refused; a finished job cannot be cancelled.
assert control.create_job(**request)["JobId"] == job_id
try:
    control.create_job(**dict(request, Priority=6))
    raise AssertionError("a token was reused with other parameters")
except control.exceptions.IdempotencyException:
    pass
try:
    control.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Cancelled")
    raise AssertionError("a Complete job was cancelled")
except control.exceptions.JobStatusException:
    pass
try:
    control.describe_job(AccountId=ACCOUNT, JobId="00000000-0000-0000-0000-000000000000")
    raise AssertionError("an unknown job was described")
except control.exceptions.NotFoundException:
    pass

# Job tags: as CreateJob gave them; PutJobTagging replaces them, DeleteJobTagging empties them.
def job_tags():
    return control.get_job_tagging(AccountId=ACCOUNT, JobId=job_id).get("Tags", [])


assert job_tags() == [{"Key": "team", "Value": "storage"}], job_tags()
new_tags = [{"Key": "a & b", "Value": "1"}, {"Key": "empty", "Value": ""}]
control.put_job_tagging(AccountId=ACCOUNT, JobId=job_id, Tags=new_tags)
assert job_tags() == new_tags, job_tags()
try:
    control.put_job_tagging(AccountId=ACCOUNT, JobId=job_id,
                            Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    raise AssertionError("51 tags were taken")
except control.exceptions.TooManyTagsException:
    pass
assert job_tags() == new_tags, job_tags()
control.delete_job_tagging(AccountId=ACCOUNT, JobId=job_id)
assert job_tags() == [], job_tags()

# The priority can change, and a retried CreateJob (its parameters as first sent) is still
# the same job.
control.update_job_priority(AccountId=ACCOUNT, JobId=job_id, Priority=8)
assert control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]["Priority"] == 8
assert control.create_job(**request)["JobId"] == job_id

# Every version reached the destination with the same id and bytes.
for v in before:
    head = s3.head_object(Bucket=source_bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert head["ReplicationStatus"] == "COMPLETED", head
    replica = dest.get_object(Bucket=dest_bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert replica["ReplicationStatus"] == "REPLICA", replica
    original = s3.get_object(Bucket=source_bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
    assert replica["Body"].read() == original

# The completion report (BAT-7).
manifest = json.loads(s3.get_object(Bucket=report_bucket, Key=f"batch/job-{job_id}/manifest.json")["Body"].read())
assert manifest["Format"] == "Report_CSV_20180820", manifest
[result] = manifest["Results"]
assert result["TaskExecutionStatus"] == "succeeded", result
rows = list(csv.reader(io.StringIO(s3.get_object(Bucket=report_bucket, Key=result["Key"])["Body"].read().decode())))
assert sorted((urllib.parse.unquote(r[1]), r[2], r[3]) for r in rows) == \
    sorted((v["Key"], v["VersionId"], "succeeded") for v in before), rows

# The generated manifest, written out (EnableManifestOutput).
generated = s3.get_object(Bucket=report_bucket, Key=f"manifests/job-{job_id}/manifest-1.csv")["Body"].read().decode()
assert sorted(tuple(r) for r in csv.reader(io.StringIO(generated))) == \
    sorted((source_bucket, urllib.parse.quote(v["Key"], safe=""), v["VersionId"]) for v in before), generated

print("batch jobs boto3 test passed")
