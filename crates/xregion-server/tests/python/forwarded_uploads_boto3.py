"""Uploads with boto3 into a bucket of another region, through one region's endpoint.

Usage: forwarded_uploads_boto3.py BUCKET, with XREGION_ENDPOINT (the region the client talks
to), XREGION_OWNER_ENDPOINT and XREGION_OWNER_REGION (the region that has BUCKET, a versioned
bucket) in the environment. boto3 frames bodies its own way (aws-chunked with a trailing
checksum, multipart uploads on threads with s3transfer, presigned URLs); each upload must
reach the owner with the same bytes, checksum and version id. Prints a marker when all passed.
"""

import hashlib
import os
import sys
import tempfile
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

bucket = sys.argv[1]
here = boto3.client("s3", endpoint_url=os.environ["XREGION_ENDPOINT"], region_name="us-east-1",
                    config=Config(signature_version="s3v4"))
owner = boto3.client("s3", endpoint_url=os.environ["XREGION_OWNER_ENDPOINT"],
                     region_name=os.environ["XREGION_OWNER_REGION"])

# put_object with an additional checksum, and metadata.
put = here.put_object(Bucket=bucket, Key="small", Body=b"small body", ChecksumAlgorithm="SHA256",
                      Metadata={"colour": "blue"})
got = owner.get_object(Bucket=bucket, Key="small", VersionId=put["VersionId"], ChecksumMode="ENABLED")
assert got["Body"].read() == b"small body"
assert got["Metadata"] == {"colour": "blue"}, got["Metadata"]
assert got["ChecksumSHA256"] == put["ChecksumSHA256"], (got.get("ChecksumSHA256"), put)

# upload_file: a multipart upload (parts of 5 MiB, sent on threads), then download it back.
data = os.urandom(17 * 1024 * 1024 + 3)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "big.bin")
    with open(path, "wb") as f:
        f.write(data)
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    here.upload_file(path, bucket, "big.bin", Config=config)
head = owner.head_object(Bucket=bucket, Key="big.bin")
assert head["ContentLength"] == len(data), head
assert head["ETag"].strip('"').endswith("-4"), head["ETag"]
body = owner.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), "big.bin differs"

# A presigned PUT made for this region's endpoint.
url = here.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
request = urllib.request.Request(url, data=b"presigned body", method="PUT")
with urllib.request.urlopen(request) as resp:
    assert resp.status == 200, resp.status
assert owner.get_object(Bucket=bucket, Key="presigned")["Body"].read() == b"presigned body"

print("forwarded boto3 uploads passed")
