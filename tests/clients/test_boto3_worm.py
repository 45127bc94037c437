"""Versioning, Object Lock (WORM), tagging, conditional writes and lifecycle
configuration through boto3.

Where the expected answer is AWS's own rather than the obvious one, a comment
says where it comes from. Buckets holding COMPLIANCE-retained versions cannot
be emptied before their date; the tests leave them behind on the session
server (its data lives under pytest's tmp_path).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from conftest import (
    MiB,
    assert_error,
    client_error,
    deterministic_bytes,
    expect_error,
    multipart_etag,
    quoted_md5,
    unique_bucket,
)

UTC = dt.timezone.utc


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def headers_of(resp_or_err) -> dict:
    resp = resp_or_err.response if isinstance(resp_or_err, ClientError) else resp_or_err
    return resp["ResponseMetadata"]["HTTPHeaders"]


def status_of(resp) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def purge_bucket(s3, name: str) -> None:
    """Best effort: remove every version, marker and upload, then the bucket
    (COMPLIANCE-retained versions stay, and so does their bucket)."""
    with contextlib.suppress(ClientError):
        for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            with contextlib.suppress(ClientError):
                s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    with contextlib.suppress(ClientError):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                try:
                    s3.delete_object(
                        Bucket=name, Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True
                    )
                except ClientError:
                    with contextlib.suppress(ClientError):
                        s3.put_object_legal_hold(
                            Bucket=name, Key=v["Key"], VersionId=v["VersionId"], LegalHold={"Status": "OFF"}
                        )
                        s3.delete_object(
                            Bucket=name, Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True
                        )
    with contextlib.suppress(ClientError):
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def vbucket(s3):
    """A fresh bucket with versioning Enabled."""
    name = unique_bucket("ver")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    purge_bucket(s3, name)


@pytest.fixture
def lbucket(s3):
    """A fresh bucket created with Object Lock enabled."""
    name = unique_bucket("lock")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    purge_bucket(s3, name)


@pytest.fixture
def plain_bucket(s3):
    """Like `bucket`, but emptied of versions too on the way out."""
    name = unique_bucket("plain")
    s3.create_bucket(Bucket=name)
    yield name
    purge_bucket(s3, name)


# =============================================================================
# Versioning
# =============================================================================


def test_versioning_status_transitions(s3, plain_bucket):
    b = plain_bucket
    got = s3.get_bucket_versioning(Bucket=b)
    # A bucket that never had versioning answers an empty configuration.
    assert "Status" not in got and "MFADelete" not in got, got
    put = s3.put_object(Bucket=b, Key="k", Body=b"x")
    assert "VersionId" not in put, "an unversioned bucket names no version"
    assert "x-amz-version-id" not in headers_of(put)

    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Suspended"
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"


def test_version_ids_from_put_copy_and_multipart(s3, vbucket):
    b = vbucket
    p1 = s3.put_object(Bucket=b, Key="k", Body=b"one")
    p2 = s3.put_object(Bucket=b, Key="k", Body=b"two!")
    v1, v2 = p1["VersionId"], p2["VersionId"]
    assert v1 and v2 and v1 != v2 and "null" not in (v1, v2)
    assert headers_of(p2)["x-amz-version-id"] == v2

    # Reads by version id, and the current one without.
    for vid, body in ((v1, b"one"), (v2, b"two!")):
        got = s3.get_object(Bucket=b, Key="k", VersionId=vid)
        assert got["Body"].read() == body
        assert got["VersionId"] == vid
        assert got["ETag"] == quoted_md5(body)
        head = s3.head_object(Bucket=b, Key="k", VersionId=vid)
        assert head["VersionId"] == vid and head["ContentLength"] == len(body)
    cur = s3.get_object(Bucket=b, Key="k")
    assert cur["Body"].read() == b"two!" and cur["VersionId"] == v2
    assert s3.head_object(Bucket=b, Key="k")["VersionId"] == v2

    # CopyObject of an old version: the new object has its own version id,
    # and the answer names the source version.
    cp = s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "k", "VersionId": v1})
    assert cp["CopySourceVersionId"] == v1
    v_copy = cp["VersionId"]
    assert v_copy not in (v1, v2, "null")
    got = s3.get_object(Bucket=b, Key="copy", VersionId=v_copy)
    assert got["Body"].read() == b"one"

    # Copying an old version onto its own key restores it as a new version.
    restore = s3.copy_object(Bucket=b, Key="k", CopySource={"Bucket": b, "Key": "k", "VersionId": v1})
    v_restored = restore["VersionId"]
    assert restore["CopySourceVersionId"] == v1 and v_restored not in (v1, v2, v_copy)
    got = s3.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"one" and got["VersionId"] == v_restored
    s3.delete_object(Bucket=b, Key="k", VersionId=v_restored)
    assert s3.get_object(Bucket=b, Key="k")["VersionId"] == v2

    # CompleteMultipartUpload answers the new version's id.
    part1, part2 = deterministic_bytes(5 * MiB, seed=901), b"tail"
    up = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=2, Body=part2)["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=b,
        Key="k",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    v3 = done["VersionId"]
    assert v3 not in (v1, v2, v_copy, "null")
    assert done["ETag"] == multipart_etag([part1, part2])
    head = s3.head_object(Bucket=b, Key="k")
    assert head["VersionId"] == v3 and head["ContentLength"] == len(part1) + len(part2)
    # The older versions are untouched.
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"

    listed = s3.list_object_versions(Bucket=b, Prefix="k")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("k", v3, True),
        ("k", v2, False),
        ("k", v1, False),
    ]
    assert listed.get("DeleteMarkers", []) == []


def test_delete_marker_semantics(s3, vbucket):
    b = vbucket
    v1 = s3.put_object(Bucket=b, Key="doc", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="doc", Body=b"second")["VersionId"]

    d = s3.delete_object(Bucket=b, Key="doc")
    assert status_of(d) == 204
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    assert marker not in (v1, v2, "null")

    # The key now reads as missing, and says why.
    err = expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="doc")
    assert headers_of(err).get("x-amz-delete-marker") == "true"
    assert headers_of(err).get("x-amz-version-id") == marker
    err = client_error(s3.head_object, Bucket=b, Key="doc")
    assert status_of(err.response) == 404
    assert headers_of(err).get("x-amz-delete-marker") == "true"
    assert s3.list_objects_v2(Bucket=b).get("KeyCount") == 0

    # The marker itself cannot be read: 405, with the marker headers.
    err = expect_error("MethodNotAllowed", 405, s3.get_object, Bucket=b, Key="doc", VersionId=marker)
    assert headers_of(err).get("x-amz-delete-marker") == "true"
    assert headers_of(err).get("x-amz-version-id") == marker
    err = client_error(s3.head_object, Bucket=b, Key="doc", VersionId=marker)
    assert status_of(err.response) == 405
    assert headers_of(err).get("x-amz-delete-marker") == "true"

    # Older versions stay readable by id.
    assert s3.get_object(Bucket=b, Key="doc", VersionId=v2)["Body"].read() == b"second"
    assert s3.get_object(Bucket=b, Key="doc", VersionId=v1)["Body"].read() == b"first"

    listed = s3.list_object_versions(Bucket=b)
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [("doc", marker, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v2, False), (v1, False)]

    # Deleting the marker by id brings the previous version back.
    undo = s3.delete_object(Bucket=b, Key="doc", VersionId=marker)
    assert status_of(undo) == 204
    assert undo["DeleteMarker"] is True and undo["VersionId"] == marker
    got = s3.get_object(Bucket=b, Key="doc")
    assert got["Body"].read() == b"second" and got["VersionId"] == v2
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["doc"]

    # A delete of a key that never existed still lays down a marker.
    ghost = s3.delete_object(Bucket=b, Key="never")
    assert ghost["DeleteMarker"] is True and ghost["VersionId"]


def test_delete_current_version_promotes_previous(s3, vbucket):
    b = vbucket
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"old")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"new")["VersionId"]
    d = s3.delete_object(Bucket=b, Key="k", VersionId=v2)
    assert status_of(d) == 204
    assert d["VersionId"] == v2 and "DeleteMarker" not in d
    got = s3.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"old" and got["VersionId"] == v1
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=b, Key="k", VersionId=v2)
    # Removing the last version leaves nothing: no marker is created.
    s3.delete_object(Bucket=b, Key="k", VersionId=v1)
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="k")
    listed = s3.list_object_versions(Bucket=b)
    assert listed.get("Versions", []) == [] and listed.get("DeleteMarkers", []) == []


def test_unknown_version_id(s3, vbucket):
    s3.put_object(Bucket=vbucket, Key="k", Body=b"x")
    missing = uuid.uuid4().hex
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=vbucket, Key="k", VersionId=missing)
    err = client_error(s3.head_object, Bucket=vbucket, Key="k", VersionId=missing)
    assert status_of(err.response) == 404


def test_null_version_before_and_while_suspended(s3, plain_bucket):
    b = plain_bucket
    s3.put_object(Bucket=b, Key="k", Body=b"pre-versioning")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"versioned")["VersionId"]

    old = s3.get_object(Bucket=b, Key="k", VersionId="null")
    assert old["Body"].read() == b"pre-versioning"
    assert old["VersionId"] == "null"
    listed = s3.list_object_versions(Bucket=b)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v1, True), ("null", False)]

    # While Suspended, writes make the null version; a new one replaces the old null one.
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    put = s3.put_object(Bucket=b, Key="k", Body=b"suspended-1")
    assert put.get("VersionId", "null") == "null"
    listed = s3.list_object_versions(Bucket=b)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [("null", True), (v1, False)]
    assert s3.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"suspended-1"

    s3.put_object(Bucket=b, Key="k", Body=b"suspended-2")
    listed = s3.list_object_versions(Bucket=b)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [("null", True), (v1, False)]
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"suspended-2"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"versioned"

    # A delete while Suspended lays down a null delete marker, which replaces the null version.
    d = s3.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True and d.get("VersionId", "null") == "null"
    listed = s3.list_object_versions(Bucket=b)
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [("null", True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v1, False)]
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="k")
    expect_error("MethodNotAllowed", 405, s3.get_object, Bucket=b, Key="k", VersionId="null")

    # Re-enabled: new versions get ids again; the null marker stays in history.
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v3 = s3.put_object(Bucket=b, Key="k", Body=b"again")["VersionId"]
    assert v3 not in ("null", v1)
    listed = s3.list_object_versions(Bucket=b)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v3, True), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [("null", False)]


def _raw_version_entries(body: bytes) -> list[tuple[str, str, str, bool]]:
    """(kind, key, version id, is latest) in XML document order. boto3 splits
    versions and delete markers into two lists and loses their interleaving;
    other SDKs (minio-go's ListVersionsResult.UnmarshalXML) keep it."""
    from urllib.parse import unquote

    root = ET.fromstring(body)
    url = any(c.tag.split("}")[-1] == "EncodingType" and (c.text or "") == "url" for c in root)
    out = []
    for child in root:
        kind = child.tag.split("}")[-1]
        if kind not in ("Version", "DeleteMarker"):
            continue
        fields = {c.tag.split("}")[-1]: (c.text or "") for c in child}
        key = unquote(fields["Key"]) if url else fields["Key"]
        out.append((kind, key, fields["VersionId"], fields["IsLatest"] == "true"))
    return out


def _entries(resp: dict) -> list[tuple[str, str, str, bool]]:
    """(kind, key, version id, is latest) of a boto3 ListObjectVersions page."""
    return [("Version", v["Key"], v["VersionId"], v["IsLatest"]) for v in resp.get("Versions", [])] + [
        ("DeleteMarker", m["Key"], m["VersionId"], m["IsLatest"]) for m in resp.get("DeleteMarkers", [])
    ]


def _expected_entries(history: dict) -> list[tuple[str, str, str, bool]]:
    """S3's listing order: keys in order, each key's versions newest first."""
    return [(kind, key, vid, i == 0) for key in sorted(history) for i, (kind, vid) in enumerate(history[key])]


@pytest.fixture
def version_history(s3, plain_bucket):
    """A bucket with several keys, each with versions and delete markers.
    Returns (bucket, {key: [(kind, version id), ...] newest first})."""
    b = plain_bucket
    s3.put_object(Bucket=b, Key="c", Body=b"c-null")  # the null version, from before versioning
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    history: dict[str, list[tuple[str, str]]] = {"c": [("Version", "null")]}

    def put(key):
        vid = s3.put_object(Bucket=b, Key=key, Body=f"{key}-{len(history.get(key, []))}".encode())["VersionId"]
        history.setdefault(key, []).append(("Version", vid))

    def delete(key):
        resp = s3.delete_object(Bucket=b, Key=key)
        assert resp["DeleteMarker"] is True
        history.setdefault(key, []).append(("DeleteMarker", resp["VersionId"]))

    for op, key in [
        (put, "a/1"), (put, "a/1"), (put, "a/1"),
        (put, "a/2"), (delete, "a/2"), (put, "a/2"),
        (put, "b/x"), (delete, "b/x"),
        (put, "c"),
        (put, "d"), (put, "d"), (delete, "d"), (delete, "d"),
    ]:  # fmt: skip
        op(key)
    return b, {k: list(reversed(v)) for k, v in history.items()}


def test_list_object_versions_order_and_is_latest(s3, version_history):
    b, history = version_history
    resp = s3.list_object_versions(Bucket=b)
    assert resp["IsTruncated"] is False
    expected = _expected_entries(history)
    # Within each of boto3's two lists the listing order holds...
    assert [e for e in _entries(resp) if e[0] == "Version"] == [e for e in expected if e[0] == "Version"]
    assert [e for e in _entries(resp) if e[0] == "DeleteMarker"] == [e for e in expected if e[0] == "DeleteMarker"]
    for v in resp["Versions"]:
        assert v["ETag"] and v["Size"] > 0 and v["StorageClass"] == "STANDARD"
    # ...and ListObjects agrees on which keys are live.
    live = [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]]
    assert live == [k for k in sorted(history) if history[k][0][0] == "Version"]


def test_list_object_versions_xml_interleaves_versions_and_markers(server, version_history):
    """S3 lists each key's versions and delete markers together, newest first
    ("Amazon S3 returns object versions in the order in which they were stored,
    with the most recently stored returned first"), so <Version> and
    <DeleteMarker> elements interleave in the document; clients that read the
    document in order (minio-go, hence mc) rely on it."""
    b, history = version_history
    client = server.client()
    bodies: list[bytes] = []
    client.meta.events.register(
        "after-call.s3.ListObjectVersions", lambda http_response, **_: bodies.append(http_response.content)
    )
    client.list_object_versions(Bucket=b)
    assert _raw_version_entries(bodies[-1]) == _expected_entries(history)


@pytest.mark.parametrize("page_size", [1, 3, 4])
def test_list_object_versions_pagination(s3, version_history, page_size):
    b, history = version_history
    expected = _expected_entries(history)
    position = {e: i for i, e in enumerate(expected)}
    done = 0
    kwargs: dict = {}
    for _ in range(len(expected) + 2):
        resp = s3.list_object_versions(Bucket=b, MaxKeys=page_size, **kwargs)
        assert resp["MaxKeys"] == page_size
        page = _entries(resp)
        assert all(e in position for e in page), f"unexpected entries (IsLatest wrong?): {page}"
        # Each page is the next slice of the listing: nothing skipped, nothing repeated.
        page.sort(key=position.__getitem__)
        assert page == expected[done : done + len(page)], f"page after {done} entries"
        done += len(page)
        if not resp["IsTruncated"]:
            assert "NextKeyMarker" not in resp and "NextVersionIdMarker" not in resp
            break
        assert len(page) == page_size
        # The next page resumes after the last entry of this one.
        assert (resp["NextKeyMarker"], resp["NextVersionIdMarker"]) == (page[-1][1], page[-1][2])
        kwargs = {"KeyMarker": resp["NextKeyMarker"], "VersionIdMarker": resp["NextVersionIdMarker"]}
    else:
        pytest.fail("the listing never ended")
    assert done == len(expected)

    # boto3's own paginator walks the same set.
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=b, PaginationConfig={"PageSize": page_size})
    assert sorted(e for p in pages for e in _entries(p)) == sorted(expected)


def test_list_object_versions_key_marker_alone_skips_the_whole_key(s3, version_history):
    b, history = version_history
    resp = s3.list_object_versions(Bucket=b, KeyMarker="a/2")
    keys = [v["Key"] for v in resp.get("Versions", []) + resp.get("DeleteMarkers", [])]
    assert set(keys) == {"b/x", "c", "d"}
    assert len(keys) == sum(len(history[k]) for k in ("b/x", "c", "d"))


def test_list_object_versions_pagination_with_delimiter(s3, version_history):
    b, history = version_history
    prefixes, versions = [], []
    kwargs: dict = {}
    for _ in range(20):
        resp = s3.list_object_versions(Bucket=b, Delimiter="/", MaxKeys=2, **kwargs)
        prefixes += [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        versions += [v["VersionId"] for v in resp.get("Versions", []) + resp.get("DeleteMarkers", [])]
        if not resp["IsTruncated"]:
            break
        kwargs = {"KeyMarker": resp["NextKeyMarker"]}
        if resp.get("NextVersionIdMarker"):
            kwargs["VersionIdMarker"] = resp["NextVersionIdMarker"]
    else:
        pytest.fail("the listing never ended")
    assert prefixes == ["a/", "b/"]
    assert sorted(versions) == sorted(vid for k in ("c", "d") for _, vid in history[k])


def test_delete_objects_with_version_ids(s3, vbucket):
    b = vbucket
    v1 = s3.put_object(Bucket=b, Key="x", Body=b"1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="x", Body=b"2")["VersionId"]
    y1 = s3.put_object(Bucket=b, Key="y", Body=b"y")["VersionId"]
    marker = s3.delete_object(Bucket=b, Key="z")["VersionId"]

    resp = s3.delete_objects(
        Bucket=b,
        Delete={
            "Objects": [
                {"Key": "x", "VersionId": v1},  # a noncurrent version: gone for good
                {"Key": "y"},  # no version: a delete marker is laid down
                {"Key": "z", "VersionId": marker},  # a delete marker, by id
            ]
        },
    )
    assert resp.get("Errors", []) == []
    by_key = {d["Key"]: d for d in resp["Deleted"]}
    assert set(by_key) == {"x", "y", "z"}
    assert by_key["x"]["VersionId"] == v1 and not by_key["x"].get("DeleteMarker")
    assert by_key["y"]["DeleteMarker"] is True
    y_marker = by_key["y"]["DeleteMarkerVersionId"]
    assert y_marker not in (y1, "null")
    assert by_key["z"]["VersionId"] == marker
    assert by_key["z"]["DeleteMarker"] is True and by_key["z"]["DeleteMarkerVersionId"] == marker

    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=b, Key="x", VersionId=v1)
    assert s3.get_object(Bucket=b, Key="x")["VersionId"] == v2
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="y")
    assert s3.get_object(Bucket=b, Key="y", VersionId=y1)["Body"].read() == b"y"
    listed = s3.list_object_versions(Bucket=b)
    assert [(m["Key"], m["VersionId"]) for m in listed["DeleteMarkers"]] == [("y", y_marker)]


def test_delete_bucket_with_versions_left_is_not_empty(s3):
    b = unique_bucket("ver-del")
    s3.create_bucket(Bucket=b)
    try:
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        vid = s3.put_object(Bucket=b, Key="k", Body=b"x")["VersionId"]
        marker = s3.delete_object(Bucket=b, Key="k")["VersionId"]
        assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
        expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=b)
        s3.delete_object(Bucket=b, Key="k", VersionId=vid)
        # Only a delete marker left: still not empty.
        expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=b)
        s3.delete_object(Bucket=b, Key="k", VersionId=marker)
        assert status_of(s3.delete_bucket(Bucket=b)) == 204
        err = client_error(s3.head_bucket, Bucket=b)
        assert status_of(err.response) == 404
    finally:
        purge_bucket(s3, b)


def test_copy_from_a_delete_marker(s3, vbucket):
    b = vbucket
    s3.put_object(Bucket=b, Key="src", Body=b"data")
    marker = s3.delete_object(Bucket=b, Key="src")["VersionId"]
    # The current version is a marker: the source is missing.
    expect_error("NoSuchKey", 404, s3.copy_object, Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"})
    # Named by version id: AWS's CopyObject reference says "If you specify versionId in the
    # x-amz-copy-source and the versionId is a delete marker, Amazon S3 returns an HTTP 400
    # error, because you are not allowed to specify a delete marker as a version for the
    # x-amz-copy-source"; the code S3 sends is InvalidRequest (versitygw PR #2417, checked
    # against AWS). Not GET's 405.
    expect_error(
        "InvalidRequest",
        400,
        s3.copy_object,
        Bucket=b,
        Key="dst",
        CopySource={"Bucket": b, "Key": "src", "VersionId": marker},
    )


# =============================================================================
# Object Lock
# =============================================================================


def test_lock_bucket_is_versioned_and_stays_so(s3, lbucket):
    assert s3.get_bucket_versioning(Bucket=lbucket)["Status"] == "Enabled"
    expect_error(
        "InvalidBucketState",
        409,
        s3.put_bucket_versioning,
        Bucket=lbucket,
        VersioningConfiguration={"Status": "Suspended"},
    )
    assert s3.get_bucket_versioning(Bucket=lbucket)["Status"] == "Enabled"
    # Enabling again is harmless.
    s3.put_bucket_versioning(Bucket=lbucket, VersioningConfiguration={"Status": "Enabled"})
    conf = s3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled"}
    v = s3.put_object(Bucket=lbucket, Key="k", Body=b"x")
    assert v["VersionId"] not in (None, "null")


def test_object_lock_on_a_plain_bucket(s3, plain_bucket):
    b = plain_bucket
    expect_error("ObjectLockConfigurationNotFoundError", 404, s3.get_object_lock_configuration, Bucket=b)
    # The bucket is unversioned: AWS answers InvalidBucketState ("Versioning must be 'Enabled'
    # on the bucket to apply a Object Lock configuration"). (Since 2023 AWS would accept it on a
    # versioned bucket; Coffre only offers Object Lock at creation.)
    expect_error(
        "InvalidBucketState",
        409,
        s3.put_object_lock_configuration,
        Bucket=b,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    until = now_utc() + dt.timedelta(days=1)
    # Lock headers on a bucket without Object Lock: 400 InvalidRequest
    # ("Bucket is missing Object Lock Configuration").
    expect_error(
        "InvalidRequest",
        400,
        s3.put_object,
        Bucket=b,
        Key="k",
        Body=b"x",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    expect_error("InvalidRequest", 400, s3.put_object, Bucket=b, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    expect_error(
        "InvalidRequest",
        400,
        s3.create_multipart_upload,
        Bucket=b,
        Key="k",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="k")
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    expect_error(
        "InvalidRequest",
        400,
        s3.put_object_retention,
        Bucket=b,
        Key="k",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    expect_error("InvalidRequest", 400, s3.put_object_legal_hold, Bucket=b, Key="k", LegalHold={"Status": "ON"})
    expect_error("InvalidRequest", 400, s3.get_object_retention, Bucket=b, Key="k")
    expect_error("InvalidRequest", 400, s3.get_object_legal_hold, Bucket=b, Key="k")
    head = s3.head_object(Bucket=b, Key="k")
    assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head


def test_default_retention_days(s3, lbucket):
    b = lbucket
    s3.put_object_lock_configuration(
        Bucket=b,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    conf = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}}

    # A plain PUT picks the default up.
    before = now_utc()
    vid = s3.put_object(Bucket=b, Key="d", Body=b"x")["VersionId"]
    head = s3.head_object(Bucket=b, Key="d")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + dt.timedelta(days=2) - dt.timedelta(seconds=5) <= until <= now_utc() + dt.timedelta(days=2, seconds=5)
    ret = s3.get_object_retention(Bucket=b, Key="d", VersionId=vid)["Retention"]
    assert ret == {"Mode": "GOVERNANCE", "RetainUntilDate": until}
    expect_error("AccessDenied", 403, s3.delete_object, Bucket=b, Key="d", VersionId=vid)

    # An explicit retention wins over the default.
    explicit = now_utc() + dt.timedelta(days=10)
    s3.put_object(Bucket=b, Key="e", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=explicit)
    assert s3.head_object(Bucket=b, Key="e")["ObjectLockRetainUntilDate"] == explicit

    # The default also reaches multipart uploads and copies.
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(
        Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3.head_object(Bucket=b, Key="mp")["ObjectLockMode"] == "GOVERNANCE"
    s3.copy_object(Bucket=b, Key="cp", CopySource={"Bucket": b, "Key": "e"})
    assert s3.head_object(Bucket=b, Key="cp")["ObjectLockMode"] == "GOVERNANCE"

    # Removing the rule: new writes carry no retention.
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}
    s3.put_object(Bucket=b, Key="free", Body=b"x")
    assert "ObjectLockMode" not in s3.head_object(Bucket=b, Key="free")
    expect_error("NoSuchObjectLockConfiguration", 404, s3.get_object_retention, Bucket=b, Key="free")


def test_default_retention_years_round_trips(s3, lbucket):
    s3.put_object_lock_configuration(
        Bucket=lbucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}},
        },
    )
    # S3 keeps the rule as written: GetObjectLockConfiguration answers <Years> for a Years
    # rule (Terraform's aws_s3_bucket_object_lock_configuration reads `years` back from it
    # without drift). 365 Days is not the same rule either: years are calendar years.
    conf = s3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}}


def test_default_retention_validation(s3, lbucket):
    both = {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}
    expect_error(
        "MalformedXML",
        400,
        s3.put_object_lock_configuration,
        Bucket=lbucket,
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": both}},
    )
    assert "Rule" not in s3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]


def test_lock_headers_validation(s3, lbucket):
    b = lbucket
    until = now_utc() + dt.timedelta(days=1)
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=b, Key="k", Body=b"x", ObjectLockRetainUntilDate=until)
    expect_error(
        "InvalidArgument",
        400,
        s3.put_object,
        Bucket=b,
        Key="k",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=now_utc() - dt.timedelta(days=1),
    )
    # Nothing was written by the refused requests.
    assert s3.list_object_versions(Bucket=b).get("Versions", []) == []


def test_compliance_retention(s3, lbucket):
    b = lbucket
    until = now_utc() + dt.timedelta(days=1)
    vid = s3.put_object(
        Bucket=b, Key="c", Body=b"keep me", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]

    head = s3.head_object(Bucket=b, Key="c")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    got = s3.get_object(Bucket=b, Key="c")
    assert got["ObjectLockMode"] == "COMPLIANCE" and got["ObjectLockRetainUntilDate"] == until
    assert s3.get_object_retention(Bucket=b, Key="c")["Retention"] == {"Mode": "COMPLIANCE", "RetainUntilDate": until}

    # Nobody deletes it, bypass or not.
    expect_error("AccessDenied", 403, s3.delete_object, Bucket=b, Key="c", VersionId=vid)
    expect_error(
        "AccessDenied", 403, s3.delete_object, Bucket=b, Key="c", VersionId=vid, BypassGovernanceRetention=True
    )
    for bypass in (False, True):
        resp = s3.delete_objects(
            Bucket=b, Delete={"Objects": [{"Key": "c", "VersionId": vid}]}, BypassGovernanceRetention=bypass
        )
        assert resp.get("Deleted", []) == []
        assert [(e["Key"], e["VersionId"], e["Code"]) for e in resp["Errors"]] == [("c", vid, "AccessDenied")]

    # It can be extended, never shortened nor weakened to GOVERNANCE.
    expect_error(
        "AccessDenied",
        403,
        s3.put_object_retention,
        Bucket=b,
        Key="c",
        VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(hours=1)},
    )
    expect_error(
        "AccessDenied",
        403,
        s3.put_object_retention,
        Bucket=b,
        Key="c",
        VersionId=vid,
        BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until + dt.timedelta(hours=1)},
    )
    longer = until + dt.timedelta(days=1)
    s3.put_object_retention(
        Bucket=b, Key="c", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer}
    )
    assert s3.get_object_retention(Bucket=b, Key="c", VersionId=vid)["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": longer,
    }

    # A delete without a version id only lays a marker over it: allowed.
    d = s3.delete_object(Bucket=b, Key="c")
    assert d["DeleteMarker"] is True
    assert s3.get_object(Bucket=b, Key="c", VersionId=vid)["Body"].read() == b"keep me"
    # The marker itself is not locked.
    s3.delete_object(Bucket=b, Key="c", VersionId=d["VersionId"])
    assert s3.get_object(Bucket=b, Key="c")["VersionId"] == vid


def test_lock_headers_on_multipart_and_copy(s3, lbucket):
    b = lbucket
    until = now_utc() + dt.timedelta(days=1)
    up = s3.create_multipart_upload(
        Bucket=b, Key="mp", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON"
    )["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    vid = s3.complete_multipart_upload(
        Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )["VersionId"]
    head = s3.head_object(Bucket=b, Key="mp", VersionId=vid)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    assert head["ObjectLockLegalHoldStatus"] == "ON"

    # A copy does not inherit the source's lock; it takes what the request names.
    plain = s3.copy_object(Bucket=b, Key="cp", CopySource={"Bucket": b, "Key": "mp"})["VersionId"]
    head = s3.head_object(Bucket=b, Key="cp", VersionId=plain)
    assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head
    s3.delete_object(Bucket=b, Key="cp", VersionId=plain)
    later = until + dt.timedelta(days=1)
    locked = s3.copy_object(
        Bucket=b,
        Key="cp",
        CopySource={"Bucket": b, "Key": "mp"},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=later,
    )["VersionId"]
    head = s3.head_object(Bucket=b, Key="cp", VersionId=locked)
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] == later
    expect_error("AccessDenied", 403, s3.delete_object, Bucket=b, Key="cp", VersionId=locked)
    s3.put_object_legal_hold(Bucket=b, Key="mp", VersionId=vid, LegalHold={"Status": "OFF"})


def test_governance_retention_and_bypass(s3, lbucket):
    b = lbucket
    until = now_utc() + dt.timedelta(days=1)
    v1 = s3.put_object(Bucket=b, Key="g", Body=b"1", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)[
        "VersionId"
    ]
    v2 = s3.put_object(Bucket=b, Key="g", Body=b"2", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)[
        "VersionId"
    ]
    assert s3.head_object(Bucket=b, Key="g", VersionId=v1)["ObjectLockMode"] == "GOVERNANCE"

    expect_error("AccessDenied", 403, s3.delete_object, Bucket=b, Key="g", VersionId=v1)
    resp = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "g", "VersionId": v2}]})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in resp["Errors"]] == [("g", v2, "AccessDenied")]

    # Shortening needs the bypass; extending does not.
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": until - dt.timedelta(hours=2)}
    expect_error("AccessDenied", 403, s3.put_object_retention, Bucket=b, Key="g", VersionId=v1, Retention=shorter)
    s3.put_object_retention(
        Bucket=b,
        Key="g",
        VersionId=v1,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until + dt.timedelta(hours=1)},
    )
    s3.put_object_retention(Bucket=b, Key="g", VersionId=v1, Retention=shorter, BypassGovernanceRetention=True)
    assert s3.get_object_retention(Bucket=b, Key="g", VersionId=v1)["Retention"] == shorter

    # Removing a GOVERNANCE retention also takes the bypass.
    expect_error("AccessDenied", 403, s3.put_object_retention, Bucket=b, Key="g", VersionId=v2, Retention={})
    s3.put_object_retention(Bucket=b, Key="g", VersionId=v2, Retention={}, BypassGovernanceRetention=True)
    expect_error("NoSuchObjectLockConfiguration", 404, s3.get_object_retention, Bucket=b, Key="g", VersionId=v2)
    assert "ObjectLockMode" not in s3.head_object(Bucket=b, Key="g", VersionId=v2)
    s3.put_object_retention(
        Bucket=b, Key="g", VersionId=v2, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )

    d = s3.delete_object(Bucket=b, Key="g", VersionId=v1, BypassGovernanceRetention=True)
    assert status_of(d) == 204 and d["VersionId"] == v1
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket=b, Key="g", VersionId=v1)
    resp = s3.delete_objects(
        Bucket=b, Delete={"Objects": [{"Key": "g", "VersionId": v2}]}, BypassGovernanceRetention=True
    )
    assert resp.get("Errors", []) == []
    assert [(x["Key"], x["VersionId"]) for x in resp["Deleted"]] == [("g", v2)]
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="g")


def test_legal_hold(s3, lbucket):
    b = lbucket
    until = now_utc() + dt.timedelta(days=1)
    gov = s3.put_object(Bucket=b, Key="h", Body=b"g", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)[
        "VersionId"
    ]
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=gov, LegalHold={"Status": "ON"})
    head = s3.head_object(Bucket=b, Key="h", VersionId=gov)
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert s3.get_object_legal_hold(Bucket=b, Key="h", VersionId=gov)["LegalHold"] == {"Status": "ON"}

    # A legal hold yields to no bypass.
    expect_error(
        "AccessDenied", 403, s3.delete_object, Bucket=b, Key="h", VersionId=gov, BypassGovernanceRetention=True
    )
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=gov, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=b, Key="h", VersionId=gov)["LegalHold"] == {"Status": "OFF"}
    assert s3.head_object(Bucket=b, Key="h", VersionId=gov).get("ObjectLockLegalHoldStatus", "OFF") == "OFF"
    s3.delete_object(Bucket=b, Key="h", VersionId=gov, BypassGovernanceRetention=True)

    # A hold alone (no retention), set by the PUT header.
    held = s3.put_object(Bucket=b, Key="only-hold", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    head = s3.head_object(Bucket=b, Key="only-hold")
    assert head["ObjectLockLegalHoldStatus"] == "ON" and "ObjectLockMode" not in head
    expect_error("NoSuchObjectLockConfiguration", 404, s3.get_object_retention, Bucket=b, Key="only-hold")
    expect_error("AccessDenied", 403, s3.delete_object, Bucket=b, Key="only-hold", VersionId=held)
    resp = s3.delete_objects(
        Bucket=b, Delete={"Objects": [{"Key": "only-hold", "VersionId": held}]}, BypassGovernanceRetention=True
    )
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("only-hold", "AccessDenied")]
    s3.put_object_legal_hold(Bucket=b, Key="only-hold", LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=b, Key="only-hold", VersionId=held)
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=b, Key="only-hold")


# =============================================================================
# Tagging
# =============================================================================


def test_object_tagging_round_trip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two%20words")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "two words"},
    ]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2

    s3.put_object_tagging(
        Bucket=bucket,
        Key="t",
        Tagging={"TagSet": [{"Key": "project", "Value": "coffre"}, {"Key": "empty", "Value": ""}, {"Key": "k/é", "Value": "v=1&2"}]},
    )
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("empty", ""), ("k/é", "v=1&2"), ("project", "coffre")]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 3

    d = s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert status_of(d) == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="t")

    # Ten tags are fine.
    ten = [{"Key": f"k{i}", "Value": "v" * 256} for i in range(10)]
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": ten})
    assert len(s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]) == 10

    # An overwrite starts with the new request's tags (none here).
    s3.put_object(Bucket=bucket, Key="t", Body=b"y")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []

    expect_error("NoSuchKey", 404, s3.get_object_tagging, Bucket=bucket, Key="missing")
    expect_error(
        "NoSuchKey", 404, s3.put_object_tagging, Bucket=bucket, Key="missing", Tagging={"TagSet": []}
    )


def test_head_object_reports_tag_count(s3, bucket):
    # HeadObject answers x-amz-tagging-count as GetObject does (botocore's HeadObject
    # output has TagCount; ceph s3-tests test_get_obj_head_tagging runs on AWS).
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=2")
    assert s3.head_object(Bucket=bucket, Key="t").get("TagCount") == 2


def test_object_tagging_by_version(s3, vbucket):
    b = vbucket
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"1", Tagging="gen=one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"2", Tagging="gen=two")["VersionId"]
    got = s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)
    assert got["TagSet"] == [{"Key": "gen", "Value": "one"}] and got["VersionId"] == v1
    got = s3.get_object_tagging(Bucket=b, Key="k")
    assert got["TagSet"] == [{"Key": "gen", "Value": "two"}] and got["VersionId"] == v2

    put = s3.put_object_tagging(Bucket=b, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "gen", "Value": "uno"}]})
    assert put["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)["TagSet"] == [{"Key": "gen", "Value": "uno"}]
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v2)["TagSet"] == [{"Key": "gen", "Value": "two"}]
    put = s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [{"Key": "gen", "Value": "dos"}]})
    assert put["VersionId"] == v2
    d = s3.delete_object_tagging(Bucket=b, Key="k", VersionId=v1)
    assert d["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)["TagSet"] == []
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [{"Key": "gen", "Value": "dos"}]
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1).get("TagCount") is None
    expect_error("NoSuchVersion", 404, s3.get_object_tagging, Bucket=b, Key="k", VersionId=uuid.uuid4().hex)


def test_too_many_object_tags(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="keep=1")
    eleven = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    # S3 answers 11 tags with "BadRequest: Object tags cannot be greater than 10", 400,
    # both on PutObjectTagging and on PutObject's x-amz-tagging (observed against AWS in
    # boto/boto3#1213 and hashicorp/terraform-provider-aws#19895).
    expect_error("BadRequest", 400, s3.put_object_tagging, Bucket=bucket, Key="t", Tagging={"TagSet": eleven})
    header = "&".join(f"k{i}=v" for i in range(11))
    expect_error("BadRequest", 400, s3.put_object, Bucket=bucket, Key="t2", Body=b"x", Tagging=header)
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "keep", "Value": "1"}]
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="t2")


def test_invalid_object_tags(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="keep=1")
    dup = [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]
    expect_error("InvalidTag", 400, s3.put_object_tagging, Bucket=bucket, Key="t", Tagging={"TagSet": dup})
    long_key = [{"Key": "k" * 129, "Value": "v"}]
    expect_error("InvalidTag", 400, s3.put_object_tagging, Bucket=bucket, Key="t", Tagging={"TagSet": long_key})
    long_value = [{"Key": "k", "Value": "v" * 257}]
    expect_error("InvalidTag", 400, s3.put_object_tagging, Bucket=bucket, Key="t", Tagging={"TagSet": long_value})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "keep", "Value": "1"}]

    # A repeated key in x-amz-tagging: AWS documents InvalidTag for duplicate keys, and has
    # been seen answering the header's malformations with InvalidArgument ("The header
    # 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without
    # tag name duplicates"): either is S3's, both are 400.
    err = client_error(s3.put_object, Bucket=bucket, Key="t2", Body=b"x", Tagging="a=1&a=2")
    assert status_of(err.response) == 400
    assert err.response["Error"]["Code"] in ("InvalidTag", "InvalidArgument"), err.response["Error"]
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="t2")


def test_reserved_aws_tag_prefix(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    # "The reserved prefix is aws:" - S3 answers InvalidTag "Your TagKey cannot be prefixed
    # with aws:" (moto reproduces it, PR #7112 checked against AWS).
    expect_error(
        "InvalidTag",
        400,
        s3.put_object_tagging,
        Bucket=bucket,
        Key="t",
        Tagging={"TagSet": [{"Key": "aws:created", "Value": "1"}]},
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []


def test_copy_object_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1&b=2")
    s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object_tagging(Bucket=bucket, Key="kept")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="c=3",
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="replaced")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.copy_object(
        Bucket=bucket, Key="cleared", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE"
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="cleared")["TagSet"] == []
    # The source is untouched.
    assert len(s3.get_object_tagging(Bucket=bucket, Key="src")["TagSet"]) == 2


def test_multipart_upload_tagging(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="x=1&y=hello%20world")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"abc")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="mp")["TagSet"] == [
        {"Key": "x", "Value": "1"},
        {"Key": "y", "Value": "hello world"},
    ]
    assert s3.get_object(Bucket=bucket, Key="mp")["TagCount"] == 2
    expect_error(
        "InvalidTag", 400, s3.create_multipart_upload, Bucket=bucket, Key="mp2", Tagging="k=" + "v" * 257
    )


def test_bucket_tagging(s3, bucket):
    expect_error("NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": "test"}]})
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in got) == [("env", "test"), ("team", "storage")]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "only", "Value": "one"}]
    # Buckets take up to 50 tags.
    fifty = [{"Key": f"k{i}", "Value": str(i)} for i in range(50)]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": fifty})
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    dup = [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]
    expect_error("InvalidTag", 400, s3.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": dup})
    d = s3.delete_bucket_tagging(Bucket=bucket)
    assert status_of(d) == 204
    expect_error("NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=bucket)
    expect_error("NoSuchBucket", 404, s3.get_bucket_tagging, Bucket=unique_bucket("absent"))


# =============================================================================
# Conditional writes
# =============================================================================


def test_concurrent_create_only_puts(server, bucket):
    n = 32
    clients = [server.client() for _ in range(n)]
    bodies = [f"writer-{i}".encode() for i in range(n)]
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def attempt(i):
        barrier.wait()
        try:
            results[i] = clients[i].put_object(Bucket=bucket, Key="once", Body=bodies[i], IfNoneMatch="*")
        except ClientError as e:
            results[i] = e

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [i for i, r in enumerate(results) if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, ClientError)]
    assert len(winners) == 1, f"{len(winners)} create-only PUTs succeeded: {winners}"
    assert len(losers) == n - 1
    # (AWS may also answer 409 ConditionalRequestConflict to requests that overlap an
    # in-flight write; Coffre serialises the check and the write, so every loser sees 412.)
    for err in losers:
        assert_error(err, "PreconditionFailed", 412)
    got = clients[0].get_object(Bucket=bucket, Key="once")
    assert got["Body"].read() == bodies[winners[0]]
    assert got["ETag"] == results[winners[0]]["ETag"]


def test_if_none_match_on_a_delete_marker(s3, vbucket):
    s3.put_object(Bucket=vbucket, Key="k", Body=b"1")
    expect_error("PreconditionFailed", 412, s3.put_object, Bucket=vbucket, Key="k", Body=b"2", IfNoneMatch="*")
    s3.delete_object(Bucket=vbucket, Key="k")
    # Behind a delete marker the key does not exist, so a create-only write goes through.
    put = s3.put_object(Bucket=vbucket, Key="k", Body=b"3", IfNoneMatch="*")
    assert s3.get_object(Bucket=vbucket, Key="k")["VersionId"] == put["VersionId"]


def test_complete_multipart_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="exists", Body=b"original")
    part = deterministic_bytes(1024, seed=902)
    up = s3.create_multipart_upload(Bucket=bucket, Key="exists")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="exists", UploadId=up, PartNumber=1, Body=part)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    expect_error(
        "PreconditionFailed",
        412,
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key="exists",
        UploadId=up,
        MultipartUpload=parts,
        IfNoneMatch="*",
    )
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == b"original"
    # The failed condition did not consume the upload.
    listed = s3.list_parts(Bucket=bucket, Key="exists", UploadId=up)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="exists", UploadId=up, MultipartUpload=parts)
    assert done["ETag"] == multipart_etag([part])
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == part

    # On a free key the condition holds.
    up = s3.create_multipart_upload(Bucket=bucket, Key="fresh")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="fresh", UploadId=up, PartNumber=1, Body=part)["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="fresh",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        IfNoneMatch="*",
    )
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == part


def test_put_if_match_compare_and_swap(s3, bucket):
    e1 = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    e2 = s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=e1)["ETag"]
    assert e2 == quoted_md5(b"v2")
    # The old ETag no longer matches.
    expect_error("PreconditionFailed", 412, s3.put_object, Bucket=bucket, Key="cas", Body=b"v3", IfMatch=e1)
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
    e3 = s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=e2)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="cas")["ETag"] == e3
    # If-Match on a missing key: S3 answers 404 NoSuchKey.
    expect_error("NoSuchKey", 404, s3.put_object, Bucket=bucket, Key="absent", Body=b"x", IfMatch=e1)
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="absent")


def test_copy_object_conditional_writes(s3, bucket):
    # "You can use conditional writes for PutObject, CompleteMultipartUpload, or CopyObject
    # requests" (S3 user guide, conditional requests); a failed condition is 412.
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    e_dst = s3.put_object(Bucket=bucket, Key="dst", Body=b"destination")["ETag"]
    src = {"Bucket": bucket, "Key": "src"}
    expect_error("PreconditionFailed", 412, s3.copy_object, Bucket=bucket, Key="dst", CopySource=src, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"destination"
    expect_error(
        "PreconditionFailed", 412, s3.copy_object, Bucket=bucket, Key="dst", CopySource=src, IfMatch=quoted_md5(b"nope")
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"destination"
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, IfMatch=e_dst)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"
    s3.copy_object(Bucket=bucket, Key="new", CopySource=src, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"source"


def test_conditional_delete(s3, bucket):
    # S3 honours If-Match on DeleteObject in general purpose buckets (user guide, "How to
    # perform conditional deletes"): a mismatch is 412 and nothing is deleted.
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"keep")["ETag"]
    expect_error("PreconditionFailed", 412, s3.delete_object, Bucket=bucket, Key="k", IfMatch=quoted_md5(b"other"))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"
    d = s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert status_of(d) == 204
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k")


# =============================================================================
# Lifecycle configuration
# =============================================================================


def _filter_substance(f: dict) -> tuple[str, list]:
    """(prefix, sorted tags) of a rule filter, whichever of its forms is used."""
    if "And" in f:
        tags = sorted((t["Key"], t["Value"]) for t in f["And"].get("Tags", []))
        return f["And"].get("Prefix", ""), tags
    if "Tag" in f:
        return "", [(f["Tag"]["Key"], f["Tag"]["Value"])]
    return f.get("Prefix", ""), []


def _rule_substance(r: dict) -> dict:
    out = {
        "ID": r["ID"],
        "Status": r["Status"],
        "Filter": _filter_substance(r.get("Filter", {"Prefix": r.get("Prefix", "")})),
    }
    for k in ("Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
        if k in r:
            out[k] = r[k]
    return out


def test_lifecycle_configuration_round_trip(s3, bucket):
    expect_error("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    rules = [
        {"ID": "logs-30d", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
        {
            "ID": "tagged-date",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "temp", "Value": "yes"}},
            "Expiration": {"Date": dt.datetime(2031, 1, 1, tzinfo=UTC)},
        },
        {
            "ID": "markers-and-noncurrent",
            "Status": "Disabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
        },
        {
            "ID": "and-filter",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}},
            "Expiration": {"Days": 7},
        },
        {
            # AWS refuses a tag filter on AbortIncompleteMultipartUpload: prefix only.
            "ID": "uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": "uploads/"},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
        },
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [_rule_substance(r) for r in got] == [_rule_substance(r) for r in rules]

    # A new configuration replaces the old one whole.
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules[:1]})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [_rule_substance(r) for r in got] == [_rule_substance(rules[0])]

    d = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert status_of(d) == 204
    expect_error("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration, Bucket=bucket)


def test_lifecycle_configuration_rejections(s3, bucket):
    def put(*rules):
        return s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})

    transition = {
        "ID": "to-glacier",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
    }
    # Coffre has one storage class: transitions are refused as not implemented.
    expect_error("NotImplemented", 501, put, transition)
    rule = {"ID": "same", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}
    # AWS: "Rule ID must be unique. Found same ID for more than one rule" (InvalidArgument).
    expect_error("InvalidArgument", 400, put, rule, rule)
    expect_error("InvalidArgument", 400, put, dict(rule, Expiration={"Days": 0}))
    expect_error("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration, Bucket=bucket)


@pytest.mark.parametrize(
    "rule, code, status",
    [
        # "The date value must conform to the ISO 8601 format. The time is always midnight UTC."
        # S3 answers other times with InvalidArgument "'Date' must be at midnight GMT".
        (
            {"Filter": {"Prefix": ""}, "Expiration": {"Date": dt.datetime(2031, 1, 1, 12, 30, tzinfo=UTC)}},
            "InvalidArgument",
            400,
        ),
        # Status is an enumeration (Enabled | Disabled): anything else does not match the schema.
        ({"Status": "Maybe", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}, "MalformedXML", 400),
        # "ID length should not exceed allowed limit of 255".
        ({"ID": "x" * 256, "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}, "InvalidArgument", 400),
        # Uploads have no tags, so S3 refuses "AbortIncompleteMultipartUpload cannot be specified with Tags."
        (
            {"Filter": {"Tag": {"Key": "a", "Value": "1"}}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            "InvalidRequest",
            400,
        ),
    ],
    ids=["date-not-midnight", "bad-status", "id-too-long", "abort-with-tag-filter"],
)
def test_lifecycle_rule_validation(s3, bucket, rule, code, status):
    full = {"ID": "r", "Status": "Enabled", **rule}
    expect_error(
        code, status, s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration={"Rules": [full]}
    )
    expect_error("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration, Bucket=bucket)
