"""The boto3 client the test scripts use: the region under test from the environment the
Rust harness sets (XREGION_ENDPOINT, XREGION_TEST_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY), path-style, one attempt per request (a retry would hide an error)."""

import os

import boto3
from botocore.config import Config


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["XREGION_ENDPOINT"],
        region_name=os.environ.get("XREGION_TEST_REGION", "us-east-1"),
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
