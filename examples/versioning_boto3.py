import boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9000")  # credentials from the AWS_* variables
s3.create_bucket(Bucket="docs")
s3.put_bucket_versioning(Bucket="docs", VersioningConfiguration={"Status": "Enabled"})
v1 = s3.put_object(Bucket="docs", Key="report.txt", Body=b"draft")["VersionId"]
v2 = s3.put_object(Bucket="docs", Key="report.txt", Body=b"final")["VersionId"]
s3.delete_object(Bucket="docs", Key="report.txt")            # adds a delete marker
old = s3.get_object(Bucket="docs", Key="report.txt", VersionId=v1)["Body"].read()
print(old)                                                   # b'draft'
for v in s3.list_object_versions(Bucket="docs").get("Versions", []):
    print(v["VersionId"], v["IsLatest"], v["Size"])
