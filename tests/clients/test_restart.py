"""Data survives a graceful restart on the same data directory."""

import hashlib

from conftest import MiB, deterministic_bytes, multipart_etag, quoted_md5


def test_restart_preserves_everything(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    s3.create_bucket(Bucket="persist")
    s3.create_bucket(Bucket="persist-empty")

    objects = {
        "tiny": b"x",
        "text/hello.txt": b"hello, restart\n",
        "bin/1mib": deterministic_bytes(MiB, seed=61),
        "bin/odd": deterministic_bytes(3 * MiB + 17, seed=62),
        "unicode/é/日本": b"unicode key",
        # last: a PUT right after an empty PUT hits the Expect/100-continue
        # stall covered by test_empty_put_does_not_stall_the_connection.
        "empty": b"",
    }
    for key, body in objects.items():
        s3.put_object(Bucket="persist", Key=key, Body=body, Metadata={"sha": hashlib.sha256(body).hexdigest()[:16]},
                      ContentType="application/x-persist")

    p1, p2 = deterministic_bytes(5 * MiB, seed=63), deterministic_bytes(MiB + 5, seed=64)
    up = s3.create_multipart_upload(
        Bucket="persist", Key="mp/object", ContentType="application/x-persist", Metadata={"sha": "multipart"}
    )["UploadId"]
    e1 = s3.upload_part(Bucket="persist", Key="mp/object", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="persist", Key="mp/object", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    s3.complete_multipart_upload(
        Bucket="persist", Key="mp/object", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    objects["mp/object"] = p1 + p2

    # An upload left in progress across the restart.
    pending = s3.create_multipart_upload(Bucket="persist", Key="mp/pending")["UploadId"]
    pending_part = deterministic_bytes(5 * MiB, seed=65)
    pe = s3.upload_part(Bucket="persist", Key="mp/pending", UploadId=pending, PartNumber=1, Body=pending_part)["ETag"]

    # A deleted object stays deleted.
    s3.put_object(Bucket="persist", Key="deleted", Body=b"gone")
    s3.delete_object(Bucket="persist", Key="deleted")

    key = srv.create_key("survivor")
    user = srv.client(key["access_key_id"], key["secret_access_key"])
    user.create_bucket(Bucket="persist-user")
    user.put_object(Bucket="persist-user", Key="mine", Body=b"user data")

    heads = {k: s3.head_object(Bucket="persist", Key=k) for k in objects}

    rc = srv.stop()
    assert rc == 0, f"coffre did not exit cleanly on SIGTERM (exit code {rc})\n{srv.log_tail()}"

    srv.start()
    s3 = srv.client()

    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert {"persist", "persist-empty", "persist-user"} <= set(names)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="persist")["Contents"]]
    assert listed == sorted(objects)

    for k, body in objects.items():
        got = s3.get_object(Bucket="persist", Key=k)
        assert got["Body"].read() == body, k
        assert got["ETag"] == heads[k]["ETag"]
        assert got["Metadata"] == heads[k]["Metadata"]
        assert got.get("ContentType") == "application/x-persist", k
        assert got["LastModified"] == heads[k]["LastModified"]
    assert s3.head_object(Bucket="persist", Key="mp/object")["ETag"] == multipart_etag([p1, p2])
    assert s3.head_object(Bucket="persist", Key="bin/1mib")["ETag"] == quoted_md5(objects["bin/1mib"])

    # The pending upload can be finished after the restart.
    parts = s3.list_parts(Bucket="persist", Key="mp/pending", UploadId=pending)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, pe)]
    s3.complete_multipart_upload(
        Bucket="persist", Key="mp/pending", UploadId=pending,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": pe}]},
    )
    assert s3.get_object(Bucket="persist", Key="mp/pending")["Body"].read() == pending_part

    # Keys made with the admin CLI survive too, with their ownership.
    user = srv.client(key["access_key_id"], key["secret_access_key"])
    assert user.get_object(Bucket="persist-user", Key="mine")["Body"].read() == b"user data"
    assert [b["Name"] for b in user.list_buckets()["Buckets"]] == ["persist-user"]

    # And the restarted server keeps accepting writes.
    s3.put_object(Bucket="persist", Key="after", Body=b"after restart")
    assert s3.get_object(Bucket="persist", Key="after")["Body"].read() == b"after restart"


def test_restart_twice_same_ports(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    s3.create_bucket(Bucket="twice")
    s3.put_object(Bucket="twice", Key="k", Body=b"v1")
    for round_ in range(2):
        assert srv.stop() == 0
        srv.start()  # same ports: the old sockets must have been released
        s3 = srv.client()
        assert s3.get_object(Bucket="twice", Key="k")["Body"].read() == b"v1"


def test_acknowledged_writes_survive_sigkill(fresh_server):
    """The architecture promises that an acknowledged write survives a crash:
    kill -9 right after the last acknowledgement, restart, read everything."""
    srv = fresh_server
    s3 = srv.client()
    s3.create_bucket(Bucket="crash")
    bodies = {f"obj/{i:03d}": deterministic_bytes(100 + i * 997, seed=80 + i) for i in range(40)}
    bodies["obj/big"] = deterministic_bytes(6 * MiB, seed=79)
    for key, body in bodies.items():
        s3.put_object(Bucket="crash", Key=key, Body=body)
    s3.delete_object(Bucket="crash", Key="obj/000")
    del bodies["obj/000"]
    s3.put_object(Bucket="crash", Key="obj/001", Body=b"overwritten")
    bodies["obj/001"] = b"overwritten"

    srv.kill()  # SIGKILL, no chance to flush anything
    srv.start()
    s3 = srv.client()
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash"):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert listed == sorted(bodies)
    for key, body in bodies.items():
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == body, key
