"""Bucket lifecycle through boto3 against a region whose lifecycle day lasts one second.

Usage: XREGION_ENDPOINT=http://127.0.0.1:PORT XREGION_TEST_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python3 lifecycle_boto3.py BUCKET

Covers: PutBucketLifecycleConfiguration as botocore sends it (with its own body checksum),
GetBucketLifecycleConfiguration echoing it, a refused configuration, noncurrent versions
expiring while the newest noncurrent ones are kept, DeleteBucketLifecycle.
"""

import sys
import time

from botocore.exceptions import ClientError

from xregion_client import s3_client


def main() -> None:
    bucket = sys.argv[1]
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(5):
        s3.put_object(Bucket=bucket, Key="db.dump", Body=f"backup {i}".encode())

    rules = [
        {
            "ID": "keep-two",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 2},
        }
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules

    bad = [{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}]
    try:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": bad})
        raise AssertionError("Days 0 was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidArgument", e.response
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules

    # The current version and the two newest noncurrent ones stay.
    deadline = time.time() + 60
    while True:
        versions = s3.list_object_versions(Bucket=bucket)["Versions"]
        if len(versions) == 3:
            break
        assert time.time() < deadline, versions
        time.sleep(0.2)
    assert s3.get_object(Bucket=bucket, Key="db.dump")["Body"].read() == b"backup 4"

    s3.delete_bucket_lifecycle(Bucket=bucket)
    try:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
        raise AssertionError("the configuration is still there")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchLifecycleConfiguration", e.response
    print("boto3 lifecycle test passed")


if __name__ == "__main__":
    main()
