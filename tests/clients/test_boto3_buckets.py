"""Bucket operations through boto3."""

import pytest

from conftest import REGION, client_error, expect_error, unique_bucket


def test_create_head_list_delete(s3):
    name = unique_bucket()
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    try:
        head = s3.head_bucket(Bucket=name)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 200

        listed = s3.list_buckets()
        names = [b["Name"] for b in listed["Buckets"]]
        assert name in names
        assert names == sorted(names), "ListBuckets must be sorted by name"
        entry = next(b for b in listed["Buckets"] if b["Name"] == name)
        assert entry["CreationDate"] is not None
        assert "Owner" in listed and listed["Owner"].get("ID")
    finally:
        resp = s3.delete_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    err = client_error(s3.head_bucket, Bucket=name)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_recreate_owned_bucket(s3, bucket):
    expect_error("BucketAlreadyOwnedByYou", 409, s3.create_bucket, Bucket=bucket)
    # The bucket is still there and still usable.
    s3.head_bucket(Bucket=bucket)


def test_delete_non_empty_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/obj", Body=b"x")
    expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=bucket)
    # Nothing was lost.
    assert s3.get_object(Bucket=bucket, Key="dir/obj")["Body"].read() == b"x"
    s3.delete_object(Bucket=bucket, Key="dir/obj")
    s3.delete_bucket(Bucket=bucket)
    expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket=bucket)



def test_delete_bucket_aborts_unfinished_uploads(s3, bucket):
    """As on AWS: unfinished uploads do not keep a bucket; an object does."""
    first = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="big", UploadId=first, PartNumber=1, Body=b"p" * 1024)
    s3.create_multipart_upload(Bucket=bucket, Key="dir/other")
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x")
    expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=bucket)
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 2, "a refused delete aborts nothing"
    s3.delete_object(Bucket=bucket, Key="obj")
    resp = s3.delete_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket=bucket)
    # The name again: the old upload is not in the new bucket.
    s3.create_bucket(Bucket=bucket)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key="big", UploadId=first)

@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "x" * 64,  # too long
        "UpperCase",
        "under_score",
        "-leading-dash",
        "trailing-dash-",
        ".leading-dot",
        "trailing-dot.",
        "double..dot",
        "192.168.5.4",  # IP address form
        "dash-.dot",
    ],
)
def test_invalid_bucket_name(s3, name):
    expect_error("InvalidBucketName", 400, s3.create_bucket, Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["abc", "a" * 63, "with.dots.ok", "0-digits-9"])
def test_valid_edge_bucket_names(s3, name):
    # The session server is fresh, so these fixed names are free.
    s3.create_bucket(Bucket=name)
    try:
        s3.head_bucket(Bucket=name)
    finally:
        s3.delete_bucket(Bucket=name)


def test_no_such_bucket(s3):
    name = unique_bucket("missing")
    err = client_error(s3.head_bucket, Bucket=name)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket=name)
    expect_error("NoSuchBucket", 404, s3.list_objects, Bucket=name)
    expect_error("NoSuchBucket", 404, s3.delete_bucket, Bucket=name)
    expect_error("NoSuchBucket", 404, s3.get_bucket_location, Bucket=name)
    expect_error("NoSuchBucket", 404, s3.put_object, Bucket=name, Key="k", Body=b"x")
    expect_error("NoSuchBucket", 404, s3.get_object, Bucket=name, Key="k")
    expect_error("NoSuchBucket", 404, s3.create_multipart_upload, Bucket=name, Key="k")
    expect_error("NoSuchBucket", 404, s3.list_multipart_uploads, Bucket=name)


def test_get_bucket_location(s3, bucket):
    resp = s3.get_bucket_location(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # AWS reports us-east-1 as an empty LocationConstraint; an explicit
    # "us-east-1" is understood by every client as well.
    assert resp.get("LocationConstraint") in (None, REGION)
