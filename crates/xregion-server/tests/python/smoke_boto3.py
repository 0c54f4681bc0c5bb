"""boto3 smoke test against a running xregion region.

Usage: XREGION_ENDPOINT=http://127.0.0.1:PORT XREGION_TEST_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python3 smoke_boto3.py BUCKET

Covers: create bucket, versioning, put/get, GetObjectAttributes, list object versions, delete
marker (VER-12, VER-15, VER-16). Exits non-zero (assertion) on any difference.
"""

import hashlib
import sys

from botocore.exceptions import ClientError

from xregion_client import s3_client


def main() -> None:
    bucket = sys.argv[1]
    s3 = s3_client()

    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)  # VER-3

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    v1 = s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello two", Metadata={"who": "boto3"})["VersionId"]
    assert v1 != v2
    got = s3.get_object(Bucket=bucket, Key="hello.txt")
    assert got["Body"].read() == b"hello two"
    assert got["VersionId"] == v2
    assert got["Metadata"] == {"who": "boto3"}
    assert s3.get_object(Bucket=bucket, Key="hello.txt", VersionId=v1)["Body"].read() == b"hello one"

    # GetObjectAttributes: botocore sends the names as one comma-separated header; the ETag
    # comes back unquoted, as S3 sends it in this answer only.
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="hello.txt", VersionId=v1, ObjectAttributes=["ETag", "ObjectSize", "StorageClass"]
    )
    assert attrs["ETag"] == hashlib.md5(b"hello one").hexdigest(), attrs
    assert (attrs["ObjectSize"], attrs["StorageClass"], attrs["VersionId"]) == (9, "STANDARD", v1), attrs

    listed = s3.list_object_versions(Bucket=bucket)
    versions = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]]
    assert versions == [("hello.txt", v2, True), ("hello.txt", v1, False)], versions
    assert "DeleteMarkers" not in listed or listed["DeleteMarkers"] == []

    deleted = s3.delete_object(Bucket=bucket, Key="hello.txt")
    assert deleted["DeleteMarker"] is True
    dm = deleted["VersionId"]
    try:
        s3.get_object(Bucket=bucket, Key="hello.txt")
        raise AssertionError("GET of a deleted key succeeded")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response
        headers = e.response["ResponseMetadata"]["HTTPHeaders"]
        assert headers.get("x-amz-delete-marker") == "true", headers
        assert headers.get("x-amz-version-id") == dm, headers

    listed = s3.list_object_versions(Bucket=bucket)
    markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]]
    assert markers == [("hello.txt", dm, True)], markers
    assert all(not v["IsLatest"] for v in listed["Versions"])
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # VER-19

    # VER-16: removing the marker undeletes.
    s3.delete_object(Bucket=bucket, Key="hello.txt", VersionId=dm)
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello two"

    # Empty the bucket and delete it.
    for v in s3.list_object_versions(Bucket=bucket)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket=bucket)
    print("boto3 smoke test passed")


if __name__ == "__main__":
    main()
