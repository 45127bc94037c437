"""ListObjectsV2 / ListObjects through boto3, over one bucket filled once."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_plus

import pytest

from conftest import empty_and_delete_bucket, expect_error, unique_bucket

MANY = [f"many/{i:04d}" for i in range(1200)]
TREE = ["tree/a/1", "tree/a/2", "tree/a/b/3", "tree/b/4", "tree/c", "tree/d/e/f"]
ENC = ["enc/a b&c<d>é+f", "enc/plain"]
ALL_KEYS = sorted(MANY + TREE + ENC)


@pytest.fixture(scope="module")
def lb(server):
    """Bucket holding ALL_KEYS (each object's body is its key)."""
    client = server.client(max_pool_connections=16)
    name = unique_bucket("list")
    client.create_bucket(Bucket=name)

    def put(key):
        client.put_object(Bucket=name, Key=key, Body=key.encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, ALL_KEYS))
    yield name
    empty_and_delete_bucket(client, name)


def keys_of(resp):
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes_of(resp):
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


def test_v2_pagination_with_continuation_tokens(s3, lb):
    seen = []
    pages = []
    token = None
    while True:
        kwargs = dict(Bucket=lb, Prefix="many/", MaxKeys=250)
        if token:
            kwargs["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kwargs)
        page = keys_of(resp)
        pages.append(len(page))
        assert resp["KeyCount"] == len(page)
        assert resp["MaxKeys"] == 250
        assert resp["Prefix"] == "many/"
        if token:
            assert resp["ContinuationToken"] == token
        seen += page
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
        assert token
        assert len(pages) < 10, "pagination does not terminate"
    assert pages == [250, 250, 250, 250, 200]
    assert seen == MANY


def test_v2_default_max_keys_is_1000(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="many/")
    assert resp["MaxKeys"] == 1000
    assert resp["KeyCount"] == 1000
    assert resp["IsTruncated"] is True
    assert keys_of(resp) == MANY[:1000]
    rest = s3.list_objects_v2(Bucket=lb, Prefix="many/", ContinuationToken=resp["NextContinuationToken"])
    assert keys_of(rest) == MANY[1000:]
    assert rest["IsTruncated"] is False


def test_v2_paginator_whole_bucket(s3, lb):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=lb, PaginationConfig={"PageSize": 333}):
        keys += keys_of(page)
    assert keys == ALL_KEYS  # UTF-8 byte order == code point order


def test_v2_object_fields(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="tree/c", FetchOwner=True)
    (entry,) = resp["Contents"]
    assert entry["Key"] == "tree/c"
    assert entry["Size"] == len(b"tree/c")
    assert entry["ETag"] == '"%s"' % hashlib.md5(b"tree/c").hexdigest()
    assert entry["LastModified"] is not None
    assert entry.get("StorageClass") == "STANDARD"
    assert entry.get("Owner", {}).get("ID")


def test_v2_delimiter_and_common_prefixes(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="tree/", Delimiter="/")
    assert keys_of(resp) == ["tree/c"]
    assert prefixes_of(resp) == ["tree/a/", "tree/b/", "tree/d/"]
    assert resp["Delimiter"] == "/"
    assert resp["KeyCount"] == 4
    assert resp["IsTruncated"] is False

    resp = s3.list_objects_v2(Bucket=lb, Prefix="tree/a/", Delimiter="/")
    assert keys_of(resp) == ["tree/a/1", "tree/a/2"]
    assert prefixes_of(resp) == ["tree/a/b/"]

    root = s3.list_objects_v2(Bucket=lb, Delimiter="/")
    assert keys_of(root) == []
    assert prefixes_of(root) == ["enc/", "many/", "tree/"]


def test_v2_delimiter_pagination(s3, lb):
    first = s3.list_objects_v2(Bucket=lb, Prefix="tree/", Delimiter="/", MaxKeys=2)
    assert first["IsTruncated"] is True
    assert first["KeyCount"] == 2
    assert prefixes_of(first) == ["tree/a/", "tree/b/"]
    assert keys_of(first) == []
    second = s3.list_objects_v2(
        Bucket=lb, Prefix="tree/", Delimiter="/", MaxKeys=2, ContinuationToken=first["NextContinuationToken"]
    )
    assert keys_of(second) == ["tree/c"]
    assert prefixes_of(second) == ["tree/d/"]
    assert second["IsTruncated"] is False

    # A common prefix covering many keys counts once and is not repeated.
    root = s3.list_objects_v2(Bucket=lb, Delimiter="/", MaxKeys=1)
    collected = prefixes_of(root)
    while root["IsTruncated"]:
        root = s3.list_objects_v2(Bucket=lb, Delimiter="/", MaxKeys=1, ContinuationToken=root["NextContinuationToken"])
        collected += prefixes_of(root)
        assert len(collected) <= 3
    assert collected == ["enc/", "many/", "tree/"]


def test_v2_start_after(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="many/", StartAfter="many/1195")
    assert keys_of(resp) == ["many/1196", "many/1197", "many/1198", "many/1199"]
    assert resp["StartAfter"] == "many/1195"
    resp = s3.list_objects_v2(Bucket=lb, Prefix="tree/", StartAfter="tree/a/2")
    assert keys_of(resp) == ["tree/a/b/3", "tree/b/4", "tree/c", "tree/d/e/f"]
    # StartAfter that is not an existing key.
    resp = s3.list_objects_v2(Bucket=lb, Prefix="many/", StartAfter="many/0999x", MaxKeys=2)
    assert keys_of(resp) == ["many/1000", "many/1001"]


def test_v2_empty_result(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="nothing-here/")
    assert resp["KeyCount"] == 0
    assert "Contents" not in resp
    assert resp["IsTruncated"] is False


def test_v2_encoding_type_url(s3, lb):
    resp = s3.list_objects_v2(Bucket=lb, Prefix="enc/", EncodingType="url")
    assert resp.get("EncodingType") == "url"
    raw = keys_of(resp)
    assert len(raw) == 2
    decoded = [unquote_plus(k) for k in raw]
    assert decoded == ["enc/a b&c<d>é+f", "enc/plain"]
    # The special key really was encoded (no raw space, '<', '&' or non-ASCII).
    assert all(c not in raw[0] for c in " <&é")

    # Without an explicit EncodingType botocore asks for url encoding itself
    # and decodes; the keys must come back exactly.
    assert keys_of(s3.list_objects_v2(Bucket=lb, Prefix="enc/")) == ["enc/a b&c<d>é+f", "enc/plain"]



def test_encoding_type_url_keeps_slashes_in_every_listing(s3, bucket):
    """As S3: `/` stays readable in url-encoded keys, prefixes and delimiters,
    in ListObjects, ListObjectsV2, ListObjectVersions and ListMultipartUploads."""
    for key in ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    want_prefixes = ["foo%2B1/", "foo/", "quux%20ab/"]
    for listing in (s3.list_objects, s3.list_objects_v2, s3.list_object_versions, s3.list_multipart_uploads):
        resp = listing(Bucket=bucket, Delimiter="/", EncodingType="url")
        assert resp["Delimiter"] == "/", listing
        assert prefixes_of(resp) == want_prefixes, listing
    assert keys_of(s3.list_objects_v2(Bucket=bucket, Delimiter="/", EncodingType="url")) == ["asdf%2Bb"]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="foo/", EncodingType="url")["Uploads"]
    assert [u["Key"] for u in uploads] == ["foo/bar/xyzzy"]


def test_v1_names_an_empty_marker(s3, bucket):
    """As S3: ListObjects (v1) answers `<Marker>` even when none was given."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.list_objects(Bucket=bucket)["Marker"] == ""
    assert s3.list_objects(Bucket=bucket, Marker="a")["Marker"] == "a"


def test_an_empty_delimiter_is_not_echoed(s3, bucket):
    """As S3: `delimiter=` is no delimiter, and the answer names none."""
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    s3.create_multipart_upload(Bucket=bucket, Key="a/b")
    for listing in (s3.list_objects, s3.list_objects_v2, s3.list_object_versions, s3.list_multipart_uploads):
        resp = listing(Bucket=bucket, Delimiter="")
        assert "Delimiter" not in resp, (listing, resp)
        assert "CommonPrefixes" not in resp or resp["CommonPrefixes"] == [], (listing, resp)

def test_v1_marker_pagination(s3, lb):
    seen = []
    marker = ""
    rounds = 0
    while True:
        resp = s3.list_objects(Bucket=lb, Prefix="many/", MaxKeys=300, Marker=marker)
        page = keys_of(resp)
        assert resp.get("Marker", "") == marker
        assert resp["MaxKeys"] == 300
        seen += page
        rounds += 1
        if not resp["IsTruncated"]:
            break
        marker = resp.get("NextMarker") or page[-1]
        assert rounds < 10
    assert rounds == 4
    assert seen == MANY

    resp = s3.list_objects(Bucket=lb, Prefix="many/", Marker="many/0100", MaxKeys=5)
    assert keys_of(resp) == ["many/0101", "many/0102", "many/0103", "many/0104", "many/0105"]
    assert resp["IsTruncated"] is True


def test_v1_delimiter_next_marker(s3, lb):
    resp = s3.list_objects(Bucket=lb, Prefix="tree/", Delimiter="/", MaxKeys=2)
    assert prefixes_of(resp) == ["tree/a/", "tree/b/"]
    assert resp["IsTruncated"] is True
    # With a delimiter, a truncated V1 listing must say where to resume.
    assert resp["NextMarker"] == "tree/b/"
    rest = s3.list_objects(Bucket=lb, Prefix="tree/", Delimiter="/", Marker=resp["NextMarker"])
    assert keys_of(rest) == ["tree/c"]
    assert prefixes_of(rest) == ["tree/d/"]
    assert rest["IsTruncated"] is False


def test_invalid_max_keys_and_token(s3, lb):
    expect_error("InvalidArgument", 400, s3.list_objects_v2, Bucket=lb, ContinuationToken="not-a-real-token!!")
