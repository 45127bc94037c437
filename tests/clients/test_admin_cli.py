"""The `coffre key` / `coffre bucket` admin CLI, and per-key isolation."""

import json

import pytest

from conftest import ROOT_SECRET_KEY, client_error, empty_and_delete_bucket, expect_error, unique_bucket


def key_entries(listing):
    """`coffre key list --json`: a JSON array of keys (or {"keys": [...]})."""
    if isinstance(listing, dict) and "keys" in listing:
        listing = listing["keys"]
    assert isinstance(listing, list), f"unexpected key list shape: {listing!r}"
    return listing


def bucket_entries(listing):
    if isinstance(listing, dict) and "buckets" in listing:
        listing = listing["buckets"]
    assert isinstance(listing, list), f"unexpected bucket list shape: {listing!r}"
    return listing


def test_key_create_list_delete(server):
    key = server.create_key("cli-lifecycle")
    assert key["access_key_id"] and key["secret_access_key"]
    assert key["access_key_id"] != key["secret_access_key"]
    assert len(key["secret_access_key"]) >= 20

    other = server.create_key("cli-lifecycle-2")
    assert other["access_key_id"] != key["access_key_id"]
    assert other["secret_access_key"] != key["secret_access_key"]

    raw = server.cli("key", "list", "--json")
    entries = key_entries(json.loads(raw.stdout))
    by_id = {e["access_key_id"]: e for e in entries}
    assert key["access_key_id"] in by_id and other["access_key_id"] in by_id
    assert by_id[key["access_key_id"]]["name"] == "cli-lifecycle"
    # Listing keys never reveals a secret.
    assert key["secret_access_key"].encode() not in raw.stdout
    assert other["secret_access_key"].encode() not in raw.stdout
    assert ROOT_SECRET_KEY.encode() not in raw.stdout

    server.cli("key", "delete", key["access_key_id"])
    ids = {e["access_key_id"] for e in key_entries(server.cli_json("key", "list"))}
    assert key["access_key_id"] not in ids
    assert other["access_key_id"] in ids

    # Deleting an unknown key is an error, reported as such.
    res = server.cli("key", "delete", "AKNOSUCHKEY000000000", check=False)
    assert res.returncode != 0
    assert res.stderr.strip(), "a failing CLI command should explain itself on stderr"


def test_cli_requires_the_admin_token(server):
    res = server.cli("key", "list", "--json", check=False, root=False)
    assert res.returncode != 0


def test_created_key_works_with_boto3(server):
    key = server.create_key("boto-user")
    client = server.client(key["access_key_id"], key["secret_access_key"])
    name = unique_bucket("keyed")
    client.create_bucket(Bucket=name)
    try:
        client.put_object(Bucket=name, Key="hello", Body=b"world")
        assert client.get_object(Bucket=name, Key="hello")["Body"].read() == b"world"
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [name]
    finally:
        empty_and_delete_bucket(client, name)


@pytest.fixture
def two_tenants(server, s3):
    a = server.create_key("tenant-a")
    b = server.create_key("tenant-b")
    ca = server.client(a["access_key_id"], a["secret_access_key"])
    cb = server.client(b["access_key_id"], b["secret_access_key"])
    ba, bb = unique_bucket("ta"), unique_bucket("tb")
    ca.create_bucket(Bucket=ba)
    cb.create_bucket(Bucket=bb)
    ca.put_object(Bucket=ba, Key="a.txt", Body=b"from A")
    cb.put_object(Bucket=bb, Key="b.txt", Body=b"from B")
    yield a, b, ca, cb, ba, bb
    empty_and_delete_bucket(s3, ba)
    empty_and_delete_bucket(s3, bb)


def test_keys_are_isolated(server, s3, two_tenants):
    a, b, ca, cb, ba, bb = two_tenants

    assert [x["Name"] for x in ca.list_buckets()["Buckets"]] == [ba]
    assert [x["Name"] for x in cb.list_buckets()["Buckets"]] == [bb]

    err = client_error(ca.head_bucket, Bucket=bb)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    expect_error("AccessDenied", 403, ca.get_object, Bucket=bb, Key="b.txt")
    err = client_error(ca.head_object, Bucket=bb, Key="b.txt")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    expect_error("AccessDenied", 403, ca.list_objects_v2, Bucket=bb)
    expect_error("AccessDenied", 403, ca.put_object, Bucket=bb, Key="intrusion", Body=b"x")
    expect_error("AccessDenied", 403, ca.delete_object, Bucket=bb, Key="b.txt")
    expect_error("AccessDenied", 403, ca.delete_bucket, Bucket=bb)
    expect_error("AccessDenied", 403, ca.get_bucket_location, Bucket=bb)
    expect_error("AccessDenied", 403, ca.create_multipart_upload, Bucket=bb, Key="mp")
    expect_error("AccessDenied", 403, ca.list_multipart_uploads, Bucket=bb)
    expect_error(
        "AccessDenied", 403, ca.copy_object, Bucket=ba, Key="stolen", CopySource={"Bucket": bb, "Key": "b.txt"}
    )
    # Someone else's bucket name cannot be taken.
    expect_error("BucketAlreadyExists", 409, ca.create_bucket, Bucket=bb)
    # Batch delete on another key's bucket is refused as a whole.
    expect_error("AccessDenied", 403, ca.delete_objects, Bucket=bb, Delete={"Objects": [{"Key": "b.txt"}]})

    # B's data is intact, and the same holds the other way round.
    assert cb.get_object(Bucket=bb, Key="b.txt")["Body"].read() == b"from B"
    assert cb.list_objects_v2(Bucket=bb)["KeyCount"] == 1
    expect_error("AccessDenied", 403, cb.get_object, Bucket=ba, Key="a.txt")

    # Root sees and reads both.
    names = [x["Name"] for x in s3.list_buckets()["Buckets"]]
    assert ba in names and bb in names
    assert s3.get_object(Bucket=ba, Key="a.txt")["Body"].read() == b"from A"
    assert s3.get_object(Bucket=bb, Key="b.txt")["Body"].read() == b"from B"

    # The admin CLI shows both buckets with distinct owners.
    entries = {e["name"]: e for e in bucket_entries(server.cli_json("bucket", "list"))}
    assert ba in entries and bb in entries
    assert entries[ba]["owner"] != entries[bb]["owner"]
    assert entries[ba]["owner"] in (a["access_key_id"], a["name"])
    assert entries[bb]["owner"] in (b["access_key_id"], b["name"])
    info = server.cli_json("bucket", "info", ba)
    if isinstance(info, list):  # printed as a one-row table
        assert len(info) == 1, info
        info = info[0]
    assert isinstance(info, dict) and info["name"] == ba
    assert info.get("objects") in (None, 1)
    assert info.get("owner") == entries[ba]["owner"]

    res = server.cli("bucket", "info", unique_bucket("nope"), "--json", check=False)
    assert res.returncode != 0


def test_deleted_key_is_rejected(server, two_tenants):
    a, b, ca, cb, ba, bb = two_tenants
    # The key owns a bucket: deleting it alone is refused, erasing takes the data with it.
    refused = server.cli("key", "delete", a["access_key_id"], check=False)
    assert refused.returncode != 0 and b"owns buckets" in refused.stderr
    assert ca.get_object(Bucket=ba, Key="a.txt")["Body"].read() == b"from A"
    server.cli("key", "delete", a["access_key_id"], "--erase-buckets")
    expect_error("InvalidAccessKeyId", 403, ca.list_buckets)
    expect_error("InvalidAccessKeyId", 403, ca.get_object, Bucket=ba, Key="a.txt")
    expect_error("InvalidAccessKeyId", 403, ca.put_object, Bucket=ba, Key="after-delete", Body=b"x")
    # The other key is unaffected.
    assert cb.get_object(Bucket=bb, Key="b.txt")["Body"].read() == b"from B"
