"""Encryption at rest (SSE-S3) through boto3, as backup tools use it.

Usage: XREGION_ENDPOINT=http://127.0.0.1:PORT XREGION_TEST_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python3 encryption_boto3.py BUCKET

Covers: put_object with ServerSideEncryption="AES256", head/get/ranged get saying so,
upload_fileobj as a managed multipart transfer with ExtraArgs, copy_object asking for it,
PutBucketEncryption as botocore sends it (with its own body checksum), its echo, objects
encrypted by the bucket default, a KMS request refused with 501, DeleteBucketEncryption;
SSE-C as boto3 sends it (a raw key, which botocore encodes and digests): put/get/head,
upload_fileobj/download_fileobj of a multipart object with the key in ExtraArgs, a read
without the key refused with 400.
"""

import hashlib
import io
import sys

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from xregion_client import s3_client


def main() -> None:
    bucket = sys.argv[1]
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    data = bytes(range(256)) * 800  # 200 KiB: several 64 KiB chunks
    put = s3.put_object(Bucket=bucket, Key="a", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256", put
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert s3.head_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="a", Range="bytes=65530-131080")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == data[65530:131081]

    big = bytes(range(251)) * 50_000  # about 12 MB: three parts of 5 MiB
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(
        io.BytesIO(big), bucket, "big", ExtraArgs={"ServerSideEncryption": "AES256"}, Config=config
    )
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ServerSideEncryption"] == "AES256", head
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big

    copy = s3.copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "a"}, ServerSideEncryption="AES256"
    )
    assert copy["ServerSideEncryption"] == "AES256"
    plain = s3.copy_object(Bucket=bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "a"})
    assert "ServerSideEncryption" not in plain, plain

    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
    echoed = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert echoed == [rule], echoed
    by_default = s3.put_object(Bucket=bucket, Key="by-default", Body=b"default")
    assert by_default["ServerSideEncryption"] == "AES256"

    try:
        s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
        raise AssertionError("aws:kms was accepted")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 501, e.response
        assert e.response["Error"]["Code"] == "NotImplemented", e.response

    customer = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b"k" * 32}
    put = s3.put_object(Bucket=bucket, Key="ssec", Body=data, **customer)
    assert put["SSECustomerAlgorithm"] == "AES256" and "ServerSideEncryption" not in put, put
    assert s3.get_object(Bucket=bucket, Key="ssec", Range="bytes=100-199", **customer)["Body"].read() == data[100:200]
    assert s3.head_object(Bucket=bucket, Key="ssec", **customer)["ContentLength"] == len(data)
    try:
        s3.get_object(Bucket=bucket, Key="ssec")
        raise AssertionError("an SSE-C object was read without its key")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
    s3.upload_fileobj(io.BytesIO(big), bucket, "ssec-big", ExtraArgs=customer, Config=config)
    fetched = io.BytesIO()
    s3.download_fileobj(bucket, "ssec-big", fetched, ExtraArgs=customer, Config=config)
    assert fetched.getvalue() == big

    s3.delete_bucket_encryption(Bucket=bucket)
    try:
        s3.get_bucket_encryption(Bucket=bucket)
        raise AssertionError("the rule is still there")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ServerSideEncryptionConfigurationNotFoundError", e.response
    assert "ServerSideEncryption" not in s3.put_object(Bucket=bucket, Key="after", Body=b"plain")
    print("boto3 encryption test passed")


if __name__ == "__main__":
    main()
