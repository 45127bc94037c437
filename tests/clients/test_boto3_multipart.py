"""Multipart uploads through boto3."""

import pytest

from conftest import (
    MiB,
    client_error,
    deterministic_bytes,
    expect_error,
    multipart_etag,
    quoted_md5,
)

PART = 5 * MiB


def upload_parts(s3, bucket, key, upload_id, parts):
    """Upload {part_number: bytes}; returns the CompleteMultipartUpload list."""
    out = []
    for number, data in parts.items():
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        assert resp["ETag"] == quoted_md5(data)
        out.append({"PartNumber": number, "ETag": resp["ETag"]})
    return out


def test_multipart_full_cycle(s3, bucket):
    key = "mp/full.bin"
    p1 = deterministic_bytes(PART, seed=11)
    p2 = deterministic_bytes(PART, seed=12)
    p3 = deterministic_bytes(1234, seed=13)

    create = s3.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata={"kind": "multipart"}, ContentType="application/x-mp"
    )
    upload_id = create["UploadId"]
    assert upload_id
    assert create["Bucket"] == bucket and create["Key"] == key

    uploads = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in uploads.get("Uploads", [])] == [(key, upload_id)]
    assert uploads["Uploads"][0]["Initiated"] is not None

    # Non-contiguous part numbers are allowed; a re-uploaded part replaces the old one.
    parts = upload_parts(s3, bucket, key, upload_id, {1: deterministic_bytes(PART, seed=99), 3: p2, 7: p3})
    parts = upload_parts(s3, bucket, key, upload_id, {1: p1}) + parts[1:]

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (1, quoted_md5(p1), PART),
        (3, quoted_md5(p2), PART),
        (7, quoted_md5(p3), 1234),
    ]
    assert listed["UploadId"] == upload_id
    assert listed["IsTruncated"] is False

    # list_parts pagination
    page = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 3]
    assert page["IsTruncated"] is True
    assert int(page["NextPartNumberMarker"]) == 3
    page = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=3)
    assert [p["PartNumber"] for p in page["Parts"]] == [7]

    # The object is not visible before completion.
    err = client_error(s3.head_object, Bucket=bucket, Key=key)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    expected_etag = multipart_etag([p1, p2, p3])
    assert done["ETag"] == expected_etag
    assert done["Key"] == key and done["Bucket"] == bucket

    get = s3.get_object(Bucket=bucket, Key=key)
    assert get["Body"].read() == p1 + p2 + p3
    assert get["ETag"] == expected_etag
    assert get["ContentLength"] == 2 * PART + 1234
    assert get["Metadata"] == {"kind": "multipart"}
    assert get["ContentType"] == "application/x-mp"

    # Ranges across part boundaries.
    rng = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={PART - 10}-{PART + 9}")
    assert rng["Body"].read() == (p1 + p2)[PART - 10 : PART + 10]

    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key=key, UploadId=upload_id)


def test_multipart_abort(s3, bucket):
    key = "mp/aborted"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    upload_parts(s3, bucket, key, upload_id, {1: b"a" * 1000})
    resp = s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key=key, UploadId=upload_id)
    expect_error(
        "NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"x"
    )
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    err = client_error(s3.head_object, Bucket=bucket, Key=key)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_multipart_does_not_replace_until_complete(s3, bucket):
    key = "mp/existing"
    s3.put_object(Bucket=bucket, Key=key, Body=b"old")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = upload_parts(s3, bucket, key, upload_id, {1: b"new"})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"old"
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"new"


def test_upload_part_copy_with_range(s3, bucket):
    src = deterministic_bytes(12 * MiB, seed=21)
    s3.put_object(Bucket=bucket, Key="mp/src", Body=src)
    key = "mp/assembled"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    first = src[6 * MiB : 12 * MiB]  # bytes 6291456-12582911
    r1 = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "mp/src"},
        CopySourceRange=f"bytes={6 * MiB}-{12 * MiB - 1}",
    )
    assert r1["CopyPartResult"]["ETag"] == quoted_md5(first)
    second = src[100 : 100 + PART]
    r2 = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "mp/src"},
        CopySourceRange=f"bytes=100-{100 + PART - 1}",
    )
    assert r2["CopyPartResult"]["ETag"] == quoted_md5(second)
    third = b"tail written directly"
    r3 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=third)

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 6 * MiB), (2, PART), (3, len(third))]

    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
                {"PartNumber": 3, "ETag": r3["ETag"]},
            ]
        },
    )
    assert done["ETag"] == multipart_etag([first, second, third])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == first + second + third


@pytest.mark.parametrize("rng", ["bytes=5-100", "bytes=20-30", "bytes=9-10"])
def test_upload_part_copy_range_out_of_bounds(s3, bucket, rng):
    """Unlike a GET Range, a copy-source range is never clamped: one that
    reaches past the end of the source is rejected with 416 InvalidRange, as
    ceph/s3-tests (test_multipart_copy_invalid_range) expects."""
    s3.put_object(Bucket=bucket, Key="mp/small-src", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp/oob")["UploadId"]
    err = client_error(
        s3.upload_part_copy,
        Bucket=bucket,
        Key="mp/oob",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "mp/small-src"},
        CopySourceRange=rng,
    )
    got = (err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"])
    assert got == ("InvalidRange", 416), got
    assert s3.list_parts(Bucket=bucket, Key="mp/oob", UploadId=upload_id).get("Parts", []) == []


@pytest.fixture
def two_parts(s3, bucket):
    """An upload with two valid 5 MiB parts; returns (key, upload_id, parts)."""
    key = "mp/errors"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = upload_parts(
        s3, bucket, key, upload_id, {1: deterministic_bytes(PART, seed=31), 2: deterministic_bytes(PART, seed=32)}
    )
    return key, upload_id, parts


def test_complete_wrong_part_order(s3, bucket, two_parts):
    key, upload_id, parts = two_parts
    expect_error(
        "InvalidPartOrder",
        400,
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": list(reversed(parts))},
    )
    # The upload survives a failed completion and can still be completed.
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert done["ETag"].endswith('-2"')


def test_complete_wrong_etag(s3, bucket, two_parts):
    key, upload_id, parts = two_parts
    bad = [parts[0], {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]
    expect_error(
        "InvalidPart", 400, s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": bad}
    )
    missing = parts + [{"PartNumber": 3, "ETag": parts[0]["ETag"]}]
    expect_error(
        "InvalidPart", 400, s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": missing}
    )
    err = client_error(s3.head_object, Bucket=bucket, Key=key)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_complete_part_too_small(s3, bucket):
    key = "mp/small"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = upload_parts(s3, bucket, key, upload_id, {1: b"a" * 1024, 2: b"b" * 1024})
    expect_error(
        "EntityTooSmall", 400, s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    # A single small part is fine (it is also the last one).
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts[:1]}
    )
    assert done["ETag"] == multipart_etag([b"a" * 1024])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"a" * 1024


def test_complete_with_no_parts(s3, bucket):
    key = "mp/noparts"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    expect_error(
        "MalformedXML", 400, s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": []}
    )


def test_unknown_upload_id(s3, bucket):
    bogus = "this-upload-does-not-exist"
    expect_error("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="k", UploadId=bogus, PartNumber=1, Body=b"x")
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key="k", UploadId=bogus)
    expect_error(
        "NoSuchUpload",
        404,
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key="k",
        UploadId=bogus,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]},
    )
    expect_error("NoSuchUpload", 404, s3.abort_multipart_upload, Bucket=bucket, Key="k", UploadId=bogus)


def test_upload_id_bound_to_key(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp/right-key")["UploadId"]
    expect_error("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="mp/other-key", UploadId=upload_id, PartNumber=1, Body=b"x")


@pytest.mark.parametrize("number", [0, 10001])
def test_invalid_part_number(s3, bucket, number):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp/pn")["UploadId"]
    expect_error("InvalidArgument", 400, s3.upload_part, Bucket=bucket, Key="mp/pn", UploadId=upload_id, PartNumber=number, Body=b"x")


def test_list_multipart_uploads_prefix(s3, bucket):
    ids = {}
    for key in ["up/a/1", "up/a/2", "up/b/1", "other"]:
        ids[key] = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="up/a/")
    assert sorted((u["Key"], u["UploadId"]) for u in resp.get("Uploads", [])) == [
        ("up/a/1", ids["up/a/1"]),
        ("up/a/2", ids["up/a/2"]),
    ]
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="up/", Delimiter="/")
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["up/a/", "up/b/"]
    assert resp.get("Uploads", []) == []


def test_multipart_with_sha256_checksums(s3, bucket):
    """Flexible checksums on a multipart upload: each part carries its SHA256,
    and the object reports the composite "<b64 sha256 of part digests>-N"."""
    import base64
    import hashlib

    key = "mp/checksummed"
    parts_data = [deterministic_bytes(PART, seed=41), deterministic_bytes(777, seed=42)]
    create = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    upload_id = create["UploadId"]
    assert create.get("ChecksumAlgorithm") == "SHA256"
    parts = []
    for i, data in enumerate(parts_data, start=1):
        resp = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=i, Body=data, ChecksumAlgorithm="SHA256"
        )
        expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert resp.get("ChecksumSHA256") == expected
        parts.append({"PartNumber": i, "ETag": resp["ETag"], "ChecksumSHA256": expected})

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [p.get("ChecksumSHA256") for p in listed] == [p["ChecksumSHA256"] for p in parts]

    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    composite = base64.b64encode(
        hashlib.sha256(b"".join(hashlib.sha256(d).digest() for d in parts_data)).digest()
    ).decode() + "-2"
    assert done.get("ChecksumSHA256") == composite
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256") == composite
    assert head["ETag"] == multipart_etag(parts_data)


def test_multipart_wrong_part_checksum_rejected(s3, bucket):
    import base64
    import hashlib

    key = "mp/badsum"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    wrong = base64.b64encode(hashlib.sha256(b"not this").digest()).decode()
    expect_error(
        "BadDigest", 400, s3.upload_part,
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"this", ChecksumSHA256=wrong,
    )
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", []) == []


def test_s3transfer_multipart_upload_download(s3, bucket):
    """boto3's managed transfer (upload_fileobj/download_fileobj) with small
    thresholds: concurrent parts, default CRC32 checksums, ranged GETs."""
    import io

    from boto3.s3.transfer import TransferConfig

    data = deterministic_bytes(17 * MiB + 3, seed=43)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), bucket, "mp/transfer.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="mp/transfer.bin")
    assert head["ContentLength"] == len(data)
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    assert head["ETag"] == multipart_etag(chunks)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "mp/transfer.bin", out, Config=cfg)
    assert out.getvalue() == data


def test_complete_again_answers_as_the_first_time(s3, bucket):
    """A CompleteMultipartUpload sent again (its answer lost) succeeds with
    the same ETag, as on AWS, while the object it made is current."""
    key = "mp/again"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = upload_parts(s3, bucket, key, upload_id, {1: b"only part"})
    first = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert again["ETag"] == first["ETag"]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"only part"
    # Once another write replaced it, the upload is no longer known.
    s3.put_object(Bucket=bucket, Key=key, Body=b"newer")
    expect_error(
        "NoSuchUpload",
        404,
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},
    )
