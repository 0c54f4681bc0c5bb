"""boto3 round trip of the replication configuration API (CFG-1..3, CFG-11..13, VAL-5).

Usage: XREGION_ENDPOINT=http://127.0.0.1:PORT XREGION_TEST_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python3 replication_config_boto3.py STEM

Creates STEM-src and STEM-dst (versioned), puts a V2 configuration with an And filter and
an empty-filter rule without ID, reads it back, checks a validation error, replaces it with
a V1 rule, then deletes it twice. Exits non-zero (assertion) on any difference.
"""

import sys

from botocore.exceptions import ClientError

from xregion_client import s3_client

ROLE = "arn:aws:iam::123456789012:role/replication"


def main() -> None:
    stem = sys.argv[1]
    src, dst = f"{stem}-src", f"{stem}-dst"
    s3 = s3_client()
    for b in (src, dst):
        s3.create_bucket(Bucket=b)
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})

    # CFG-2: nothing configured yet.
    try:
        s3.get_bucket_replication(Bucket=src)
        raise AssertionError("expected ReplicationConfigurationNotFoundError")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ReplicationConfigurationNotFoundError", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    arn = f"arn:aws:s3:::{dst}"
    rules = [
        {
            "ID": "docs",
            "Priority": 2,
            "Status": "Enabled",
            "Filter": {
                "And": {"Prefix": "docs/", "Tags": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}]}
            },
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": arn, "StorageClass": "STANDARD_IA"},
        },
        {
            "Priority": 1,
            "Status": "Disabled",
            "Filter": {},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {"Bucket": arn},
        },
    ]
    s3.put_bucket_replication(Bucket=src, ReplicationConfiguration={"Role": ROLE, "Rules": rules})
    got = s3.get_bucket_replication(Bucket=src)["ReplicationConfiguration"]
    assert got["Role"] == ROLE, got
    r1, r2 = got["Rules"]
    assert r1["ID"] == "docs" and r1["Priority"] == 2 and r1["Status"] == "Enabled", r1
    assert r1["Filter"] == rules[0]["Filter"], r1
    assert r1["DeleteMarkerReplication"] == {"Status": "Disabled"}, r1
    assert r1["Destination"] == {"Bucket": arn, "StorageClass": "STANDARD_IA"}, r1
    assert r2["ID"] and len(r2["ID"]) <= 255, r2  # CFG-13
    assert r2["Filter"] == {} and r2["Priority"] == 1 and r2["Status"] == "Disabled", r2  # CFG-11

    # VAL-5: a V2 rule without DeleteMarkerReplication.
    bad = {"ID": "x", "Priority": 1, "Status": "Enabled", "Filter": {}, "Destination": {"Bucket": arn}}
    try:
        s3.put_bucket_replication(Bucket=src, ReplicationConfiguration={"Role": ROLE, "Rules": [bad]})
        raise AssertionError("expected InvalidRequest")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidRequest", e.response
        assert e.response["Error"]["Message"].startswith("DeleteMarkerReplication must be specified"), e.response

    # PRI-6 / CFG-8: replace with a V1 rule.
    v1 = {"ID": "legacy", "Prefix": "logs/", "Status": "Enabled", "Destination": {"Bucket": arn}}
    s3.put_bucket_replication(Bucket=src, ReplicationConfiguration={"Role": ROLE, "Rules": [v1]})
    got = s3.get_bucket_replication(Bucket=src)["ReplicationConfiguration"]
    assert got["Rules"] == [v1], got

    # CFG-3: 204, idempotent.
    for _ in range(2):
        out = s3.delete_bucket_replication(Bucket=src)
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 204, out
    print("boto3 replication config test passed")


if __name__ == "__main__":
    main()
