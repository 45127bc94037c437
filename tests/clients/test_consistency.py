"""Consistency under concurrency: racing writers, reads that overlap an
overwrite, and bucket names that are reused."""

import hashlib
from concurrent.futures import ThreadPoolExecutor

from conftest import MiB, client_error, deterministic_bytes, quoted_md5, unique_bucket


def test_concurrent_puts_same_key(server, bucket):
    """Eight writers race on one key: the result is exactly one of their
    bodies, never a mix, and its ETag matches it."""
    client = server.client(max_pool_connections=8)
    bodies = [deterministic_bytes(MiB + i, seed=100 + i) for i in range(8)]

    def put(body):
        return client.put_object(Bucket=bucket, Key="race", Body=body)["ETag"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        etags = list(pool.map(put, bodies))
    assert etags == [quoted_md5(b) for b in bodies]

    got = client.get_object(Bucket=bucket, Key="race")
    data = got["Body"].read()
    assert data in bodies, "the stored object is not any one writer's body"
    assert got["ETag"] == quoted_md5(data)
    assert got["ContentLength"] == len(data)


def test_read_overlapping_an_overwrite(server, s3, bucket):
    """A GET already streaming keeps returning the version it started on,
    even if the key is overwritten and then deleted meanwhile."""
    old = deterministic_bytes(16 * MiB, seed=110)
    s3.put_object(Bucket=bucket, Key="moving", Body=old)
    reader = server.client()
    resp = reader.get_object(Bucket=bucket, Key="moving")
    assert resp["ETag"] == quoted_md5(old)
    body = resp["Body"]
    first = body.read(MiB)

    new = deterministic_bytes(3 * MiB, seed=111)
    s3.put_object(Bucket=bucket, Key="moving", Body=new)
    s3.delete_object(Bucket=bucket, Key="moving")
    s3.put_object(Bucket=bucket, Key="moving", Body=new)

    rest = body.read()
    got = first + rest
    assert len(got) == len(old)
    assert hashlib.sha256(got).digest() == hashlib.sha256(old).digest()
    assert s3.get_object(Bucket=bucket, Key="moving")["Body"].read() == new


def test_recreated_bucket_starts_empty(s3):
    name = unique_bucket("reuse")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="small", Body=b"s")
    s3.put_object(Bucket=name, Key="large", Body=deterministic_bytes(MiB, seed=112))
    upload = s3.create_multipart_upload(Bucket=name, Key="pending")["UploadId"]
    s3.abort_multipart_upload(Bucket=name, Key="pending", UploadId=upload)
    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "small"}, {"Key": "large"}]})
    s3.delete_bucket(Bucket=name)

    s3.create_bucket(Bucket=name)
    try:
        assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
        assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
        for key in ("small", "large"):
            err = client_error(s3.head_object, Bucket=name, Key=key)
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404, key
    finally:
        s3.delete_bucket(Bucket=name)
