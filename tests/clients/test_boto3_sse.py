"""Server-side encryption as boto3 users meet it: SSE-S3 and SSE-KMS headers
reported back, bucket default encryption, and SSE-C with its errors."""

import base64
import hashlib
import os

import pytest

from conftest import CoffreServer, deterministic_bytes, expect_error, unique_bucket


def sse_c(key: bytes, prefix: str = "SSECustomer") -> dict:
    """SSE-C parameters; boto3 base64-encodes the key and adds its MD5 itself."""
    return {
        f"{prefix}Algorithm": "AES256",
        f"{prefix}Key": key,
    }


def test_every_object_reports_sse_s3_by_default(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="a", Body=b"hello")
    assert put["ServerSideEncryption"] == "AES256"
    head = s3.head_object(Bucket=bucket, Key="a")
    assert head["ServerSideEncryption"] == "AES256"
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_sse_kms_key_id_is_kept_and_bucket_default_applies(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="tenant-7")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == "tenant-7"
    assert s3.get_object(Bucket=bucket, Key="k")["SSEKMSKeyId"] == "tenant-7"
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "dflt"}}]
        },
    )
    assert s3.put_object(Bucket=bucket, Key="d", Body=b"y")["SSEKMSKeyId"] == "dflt"
    s3.delete_bucket_encryption(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="e", Body=b"z")["ServerSideEncryption"] == "AES256"
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="bad", Body=b"x", ServerSideEncryption="rot13")


@pytest.fixture(scope="module")
def ssec_s3(tmp_path_factory):
    """A server told that TLS ends in front of it (sse_c_over_http), so SSE-C
    keys are accepted on its plain-HTTP port."""
    base = tmp_path_factory.mktemp("coffre-ssec")
    config = base / "coffre.toml"
    config.write_text("sse_c_over_http = true\n")
    srv = CoffreServer(data_dir=base / "data", work_dir=base / "work", extra_args=["--config", str(config)])
    srv.start()
    yield srv.client()
    srv.stop()


def test_sse_c_over_plain_http_is_refused_by_default(s3, bucket):
    expect_error("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="c", Body=b"x", **sse_c(os.urandom(32)))


def test_sse_c_round_trip_ranges_multipart_and_errors(ssec_s3):
    s3 = ssec_s3
    bucket = unique_bucket("ssec")
    s3.create_bucket(Bucket=bucket)
    key, other = os.urandom(32), os.urandom(32)
    data = deterministic_bytes(700_000, seed=5)
    put = s3.put_object(Bucket=bucket, Key="c", Body=data, **sse_c(key))
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(key).digest()).decode()
    # As on AWS, an SSE-C object's ETag is not the MD5 of its plaintext.
    assert put["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'

    assert s3.get_object(Bucket=bucket, Key="c", **sse_c(key))["Body"].read() == data
    part = s3.get_object(Bucket=bucket, Key="c", Range="bytes=65530-65545", **sse_c(key))["Body"].read()
    assert part == data[65530:65546], "a range across a segment boundary"
    assert s3.head_object(Bucket=bucket, Key="c", **sse_c(key))["ContentLength"] == len(data)

    expect_error("InvalidRequest", 400, s3.get_object, Bucket=bucket, Key="c")
    expect_error("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="c", **sse_c(other))
    expect_error("403", 403, s3.head_object, Bucket=bucket, Key="c", **sse_c(other))
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    expect_error("InvalidRequest", 400, s3.get_object, Bucket=bucket, Key="plain", **sse_c(key))
    expect_error(
        "InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="short", Body=b"x",
        SSECustomerAlgorithm="AES256", SSECustomerKey=b"too-short",
    )

    # Multipart: every part brings the same key; the wrong one is refused.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse_c(key))
    uid = up["UploadId"]
    p1 = deterministic_bytes(5 * 1024 * 1024, seed=6)
    p2 = b"tail" * 100
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=p1, **sse_c(key))["ETag"]
    expect_error(
        "AccessDenied", 403, s3.upload_part, Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=p2,
        **sse_c(other),
    )
    expect_error("InvalidRequest", 400, s3.upload_part, Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=p2)
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=p2, **sse_c(key))["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket=bucket, Key="mp", **sse_c(key))["Body"].read() == p1 + p2

    # Copy out of SSE-C into SSE-S3 needs the source key, and then reads without one.
    s3.copy_object(
        Bucket=bucket, Key="decrypted-copy", CopySource={"Bucket": bucket, "Key": "c"},
        **sse_c(key, "CopySourceSSECustomer"),
    )
    assert s3.get_object(Bucket=bucket, Key="decrypted-copy")["Body"].read() == data
