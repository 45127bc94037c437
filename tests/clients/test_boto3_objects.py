"""Single-object operations through boto3."""

import base64
import datetime as dt
import hashlib
import time
import urllib.error
import urllib.request

import pytest

from conftest import (
    MiB,
    checksum_b64,
    client_error,
    deterministic_bytes,
    expect_error,
    parse_s3_error,
    quoted_md5,
)

BODY = deterministic_bytes(100, seed=1)


@pytest.fixture
def obj(s3, bucket):
    """A 100-byte object; returns (bucket, key, head)."""
    s3.put_object(Bucket=bucket, Key="obj.bin", Body=BODY)
    return bucket, "obj.bin", s3.head_object(Bucket=bucket, Key="obj.bin")


def test_put_get_head_delete_with_metadata(s3, bucket):
    body = deterministic_bytes(4096, seed=2)
    put = s3.put_object(
        Bucket=bucket,
        Key="docs/report.txt.gz",
        Body=body,
        Metadata={"color": "blue", "Project-Name": "Coffre", "note": "hello, world"},
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report.txt.gz"',
        CacheControl="max-age=3600, private",
        ContentLanguage="fr-FR",
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put["ETag"] == quoted_md5(body)

    get = s3.get_object(Bucket=bucket, Key="docs/report.txt.gz")
    assert get["Body"].read() == body
    assert get["ETag"] == quoted_md5(body)
    assert get["ContentLength"] == len(body)
    # User metadata keys come back lower-cased, values untouched.
    assert get["Metadata"] == {"color": "blue", "project-name": "Coffre", "note": "hello, world"}
    assert get["ContentType"] == "text/plain; charset=utf-8"
    assert get["ContentEncoding"] == "gzip"
    assert get["ContentDisposition"] == 'attachment; filename="report.txt.gz"'
    assert get["CacheControl"] == "max-age=3600, private"
    assert get["ContentLanguage"] == "fr-FR"
    assert isinstance(get["LastModified"], dt.datetime)
    assert get["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges") == "bytes"

    head = s3.head_object(Bucket=bucket, Key="docs/report.txt.gz")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == quoted_md5(body)
    assert head["Metadata"] == get["Metadata"]
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert head["ContentEncoding"] == "gzip"
    assert head["ContentDisposition"] == 'attachment; filename="report.txt.gz"'
    assert head["CacheControl"] == "max-age=3600, private"
    assert head["LastModified"] == get["LastModified"]

    delete = s3.delete_object(Bucket=bucket, Key="docs/report.txt.gz")
    assert delete["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="docs/report.txt.gz")
    err = client_error(s3.head_object, Bucket=bucket, Key="docs/report.txt.gz")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Deleting a missing key succeeds (S3 semantics).
    again = s3.delete_object(Bucket=bucket, Key="docs/report.txt.gz")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="noctype", Body=b"abc")
    head = s3.head_object(Bucket=bucket, Key="noctype")
    # botocore sends no Content-Type; S3 then stores and returns binary/octet-stream.
    assert head.get("ContentType") in ("binary/octet-stream", "application/octet-stream"), head["ResponseMetadata"]["HTTPHeaders"]
    get = s3.get_object(Bucket=bucket, Key="noctype")
    assert get.get("ContentType") == head.get("ContentType")


def test_overwrite_replaces_body_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"v": "1"}, ContentType="text/a")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!", Metadata={"w": "2"})
    get = s3.get_object(Bucket=bucket, Key="k")
    assert get["Body"].read() == b"second!"
    assert get["Metadata"] == {"w": "2"}
    assert get.get("ContentType") != "text/a"


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    get = s3.get_object(Bucket=bucket, Key="empty")
    assert get["Body"].read() == b""
    assert get["ContentLength"] == 0
    expect_error("InvalidRange", 416, s3.get_object, Bucket=bucket, Key="empty", Range="bytes=0-0")


def test_large_single_put(s3, bucket):
    body = deterministic_bytes(24 * MiB + 7, seed=3)
    put = s3.put_object(Bucket=bucket, Key="large", Body=body)
    assert put["ETag"] == quoted_md5(body)
    got = s3.get_object(Bucket=bucket, Key="large")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "rng, start, end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 99),
        ("bytes=-5", 95, 99),
        ("bytes=50-50", 50, 50),
        ("bytes=95-1000", 95, 99),  # end clamped to the size
        ("bytes=-1000", 0, 99),  # suffix longer than the object
    ],
)
def test_range_get(s3, obj, rng, start, end):
    bucket, key, _ = obj
    resp = s3.get_object(Bucket=bucket, Key=key, Range=rng)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["Body"].read() == BODY[start : end + 1]
    assert resp["ContentLength"] == end - start + 1
    assert resp["ContentRange"] == f"bytes {start}-{end}/100"
    assert resp["ETag"] == quoted_md5(BODY)


@pytest.mark.parametrize("rng", ["bytes=100-", "bytes=100-200", "bytes=1000-2000"])
def test_range_beyond_end(s3, obj, rng):
    bucket, key, _ = obj
    expect_error("InvalidRange", 416, s3.get_object, Bucket=bucket, Key=key, Range=rng)


def test_conditional_get_etag(s3, obj):
    bucket, key, head = obj
    etag = head["ETag"]
    assert etag == quoted_md5(BODY)

    ok = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)
    assert ok["Body"].read() == BODY
    expect_error("PreconditionFailed", 412, s3.get_object, Bucket=bucket, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')

    # If-None-Match hit: 304 Not Modified (no body, botocore reports code "304").
    expect_error("304", 304, s3.get_object, Bucket=bucket, Key=key, IfNoneMatch=etag)
    expect_error("304", 304, s3.get_object, Bucket=bucket, Key=key, IfNoneMatch="*")
    ok = s3.get_object(Bucket=bucket, Key=key, IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert ok["Body"].read() == BODY

    # HEAD answers the same way (no body, so the code is the status).
    expect_error("412", 412, s3.head_object, Bucket=bucket, Key=key, IfMatch='"nope"')
    expect_error("304", 304, s3.head_object, Bucket=bucket, Key=key, IfNoneMatch=etag)
    assert s3.head_object(Bucket=bucket, Key=key, IfMatch=etag)["ETag"] == etag


def test_conditional_get_dates(s3, obj):
    bucket, key, head = obj
    lm = head["LastModified"]
    hour = dt.timedelta(hours=1)

    # Not modified since its own Last-Modified.
    expect_error("304", 304, s3.get_object, Bucket=bucket, Key=key, IfModifiedSince=lm)
    assert s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=lm - hour)["Body"].read() == BODY

    expect_error("PreconditionFailed", 412, s3.get_object, Bucket=bucket, Key=key, IfUnmodifiedSince=lm - hour)
    assert s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=lm)["Body"].read() == BODY
    assert s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=lm + hour)["Body"].read() == BODY

    expect_error("412", 412, s3.head_object, Bucket=bucket, Key=key, IfUnmodifiedSince=lm - hour)
    expect_error("304", 304, s3.head_object, Bucket=bucket, Key=key, IfModifiedSince=lm)


def test_conditional_precedence(s3, obj):
    """RFC 7232 / S3: If-Match wins over If-Unmodified-Since, If-None-Match
    over If-Modified-Since."""
    bucket, key, head = obj
    lm, etag = head["LastModified"], head["ETag"]
    hour = dt.timedelta(hours=1)
    resp = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag, IfUnmodifiedSince=lm - hour)
    assert resp["Body"].read() == BODY
    expect_error("304", 304, s3.get_object, Bucket=bucket, Key=key, IfNoneMatch=etag, IfModifiedSince=lm - hour)


def test_response_header_overrides(s3, obj):
    bucket, key, _ = obj
    resp = s3.get_object(
        Bucket=bucket,
        Key=key,
        ResponseContentType="text/x-override",
        ResponseContentDisposition='inline; filename="x.txt"',
        ResponseCacheControl="no-store",
        ResponseContentLanguage="de",
        ResponseContentEncoding="identity",
    )
    assert resp["Body"].read() == BODY
    assert resp["ContentType"] == "text/x-override"
    assert resp["ContentDisposition"] == 'inline; filename="x.txt"'
    assert resp["CacheControl"] == "no-store"
    assert resp["ContentLanguage"] == "de"
    assert resp["ContentEncoding"] == "identity"
    # The stored object is not changed by an override.
    assert s3.head_object(Bucket=bucket, Key=key).get("ContentType") != "text/x-override"


def test_put_if_none_match_star(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="once", Body=b"one", IfNoneMatch="*")
    assert first["ETag"] == quoted_md5(b"one")
    expect_error("PreconditionFailed", 412, s3.put_object, Bucket=bucket, Key="once", Body=b"two", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"one"


def test_wrong_content_md5(s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=wrong)
    err = client_error(s3.head_object, Bucket=bucket, Key="md5")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    right = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=right)
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"payload"


def test_malformed_content_md5(s3, bucket):
    expect_error("InvalidDigest", 400, s3.put_object, Bucket=bucket, Key="md5bad", Body=b"payload", ContentMD5="not-base64!")


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_checksum_roundtrip(s3, bucket, algorithm):
    body = deterministic_bytes(300_000, seed=4)
    expected = checksum_b64(algorithm, body)
    key = f"sum-{algorithm}"
    attr = "Checksum" + algorithm
    if algorithm == "CRC32C":
        # botocore computes CRC32C only with awscrt; send the value ourselves.
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumCRC32C=expected)
    else:
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=algorithm)
    assert put.get(attr) == expected, put

    get = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert get["Body"].read() == body
    assert get.get(attr) == expected, {k: v for k, v in get.items() if k.startswith("Checksum")}

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get(attr) == expected


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_checksum_mismatch_rejected(s3, bucket, algorithm):
    body = b"the real body"
    wrong = checksum_b64(algorithm, b"another body")
    key = f"badsum-{algorithm}"
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key=key, Body=body, **{"Checksum" + algorithm: wrong})
    err = client_error(s3.head_object, Bucket=bucket, Key=key)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- copy ----------------------------------------------------------------------


@pytest.fixture
def source(s3, bucket):
    body = deterministic_bytes(70_000, seed=5)
    s3.put_object(
        Bucket=bucket,
        Key="src/original",
        Body=body,
        Metadata={"origin": "source", "n": "1"},
        ContentType="application/x-source",
        CacheControl="no-cache",
    )
    return bucket, "src/original", body


def test_copy_object_metadata_copy(s3, source):
    bucket, key, body = source
    resp = s3.copy_object(
        Bucket=bucket, Key="dst/copy", CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="COPY"
    )
    assert resp["CopyObjectResult"]["ETag"] == quoted_md5(body)
    assert resp["CopyObjectResult"]["LastModified"] is not None
    get = s3.get_object(Bucket=bucket, Key="dst/copy")
    assert get["Body"].read() == body
    assert get["ETag"] == quoted_md5(body)
    assert get["Metadata"] == {"origin": "source", "n": "1"}
    assert get["ContentType"] == "application/x-source"
    assert get["CacheControl"] == "no-cache"


def test_copy_object_metadata_replace(s3, source):
    bucket, key, body = source
    s3.copy_object(
        Bucket=bucket,
        Key="dst/replaced",
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"fresh": "yes"},
        ContentType="text/x-replaced",
    )
    get = s3.get_object(Bucket=bucket, Key="dst/replaced")
    assert get["Body"].read() == body
    assert get["Metadata"] == {"fresh": "yes"}
    assert get["ContentType"] == "text/x-replaced"
    assert get.get("CacheControl") is None
    # The source is untouched.
    src = s3.head_object(Bucket=bucket, Key=key)
    assert src["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_object_across_buckets(s3, source):
    from conftest import empty_and_delete_bucket, unique_bucket

    bucket, key, body = source
    other = unique_bucket()
    s3.create_bucket(Bucket=other)
    try:
        s3.copy_object(Bucket=other, Key="x/y", CopySource=f"{bucket}/{key}")
        assert s3.get_object(Bucket=other, Key="x/y")["Body"].read() == body
    finally:
        empty_and_delete_bucket(s3, other)


def test_copy_object_preconditions(s3, source):
    bucket, key, body = source
    etag = quoted_md5(body)
    expect_error(
        "PreconditionFailed",
        412,
        s3.copy_object,
        Bucket=bucket,
        Key="dst/cond",
        CopySource={"Bucket": bucket, "Key": key},
        CopySourceIfMatch='"0123456789abcdef0123456789abcdef"',
    )
    expect_error(
        "PreconditionFailed",
        412,
        s3.copy_object,
        Bucket=bucket,
        Key="dst/cond",
        CopySource={"Bucket": bucket, "Key": key},
        CopySourceIfNoneMatch=etag,
    )
    err = client_error(s3.head_object, Bucket=bucket, Key="dst/cond")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    s3.copy_object(
        Bucket=bucket, Key="dst/cond", CopySource={"Bucket": bucket, "Key": key}, CopySourceIfMatch=etag
    )
    assert s3.get_object(Bucket=bucket, Key="dst/cond")["Body"].read() == body


def test_copy_object_errors(s3, source):
    bucket, key, _ = source
    expect_error("NoSuchKey", 404, s3.copy_object, Bucket=bucket, Key="dst/x", CopySource={"Bucket": bucket, "Key": "src/missing"})
    # Copying an object onto itself without changing anything is illegal.
    expect_error("InvalidRequest", 400, s3.copy_object, Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key})
    # ...but allowed with REPLACE.
    s3.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE", Metadata={"v": "2"}
    )
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"] == {"v": "2"}


# --- batch delete ----------------------------------------------------------------


def test_delete_objects(s3, bucket):
    keys = [f"batch/{i}" for i in range(6)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "batch/0"}, {"Key": "batch/1"}, {"Key": "batch/2"}, {"Key": "batch/never-existed"}]},
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    deleted = sorted(d["Key"] for d in resp.get("Deleted", []))
    assert deleted == ["batch/0", "batch/1", "batch/2", "batch/never-existed"]
    assert resp.get("Errors", []) == []

    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "batch/3"}, {"Key": "batch/4"}], "Quiet": True})
    assert quiet["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert quiet.get("Deleted", []) == []
    assert quiet.get("Errors", []) == []

    remaining = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["batch/5"]


def test_version_id_null_on_unversioned_bucket(s3, bucket):
    """rclone (and other SDK users) address objects of unversioned buckets
    with versionId=null; S3 treats that as the current object."""
    s3.put_object(Bucket=bucket, Key="v", Body=b"current")
    head = s3.head_object(Bucket=bucket, Key="v", VersionId="null")
    assert head["ContentLength"] == len(b"current")
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"current"
    put = s3.put_object(Bucket=bucket, Key="v2", Body=b"x")
    # An unversioned bucket reports no version id (or the literal "null").
    assert put.get("VersionId") in (None, "null")


def test_empty_put_does_not_stall_the_connection(server, bucket):
    """botocore sends `Expect: 100-continue` on every PutObject, even with an
    empty body. If the server answers that request without a `100 Continue`
    (allowed by RFC 9110 when there is no body), botocore keeps a stale status
    line on the pooled connection and misparses the *next* response on it,
    then waits for the connection to close. Whatever the server does, an
    empty PUT must not make the following request on the connection hang."""
    client = server.client(max_pool_connections=1, read_timeout=60)
    client.put_object(Bucket=bucket, Key="folder-marker/", Body=b"")
    start = time.monotonic()
    client.put_object(Bucket=bucket, Key="after-empty", Body=b"abc")
    assert client.get_object(Bucket=bucket, Key="after-empty")["Body"].read() == b"abc"
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"the request after an empty PUT took {elapsed:.1f}s on the same connection"


def test_error_bodies_carry_the_request_id(s3, bucket, server):
    """Every S3 error body names its request, as the x-amz-request-id header does."""
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "missing"})
    unsigned = f"{server.endpoint}/{bucket}/k"  # refused before any operation runs
    for url in (missing, unsigned):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        body = refused.value.read()
        assert refused.value.code in (403, 404), body
        fields = parse_s3_error(body)
        assert fields.get("RequestId") == refused.value.headers["x-amz-request-id"], body
