"""Keys that try to escape the data directory or confuse encodings."""

import hashlib
import os
import unicodedata
import uuid
from pathlib import Path

import pytest

from conftest import CoffreServer, expect_error, unique_bucket

ESCAPE_MARKER = f"coffre-escape-{uuid.uuid4().hex}"

NFC = unicodedata.normalize("NFC", "caf\u00e9")
NFD = unicodedata.normalize("NFD", "caf\u00e9")
assert NFC != NFD and NFC.encode() != NFD.encode()

HOSTILE_KEYS = [
    "../../etc/passwd",
    "../" * 16 + f"tmp/{ESCAPE_MARKER}",
    f"a/../../../../{ESCAPE_MARKER}-2",
    "..\\..\\windows\\system32\\passwd",
    "/leading/slash",
    "dir//double//slash",
    "./dot/./segments",
    "ctrl-\x01\x02\x03\x1b[31m-\x7f-end",
    "tab\there\nnewline\rcarriage",
    "100% literal%2F not-decoded",
    "plus+sign and space",
    "question?mark#hash&amp=1",
    "日本語/ファイル",
    "emoji-🦀-crab",
    "é" * 512,  # exactly 1024 bytes of UTF-8
    NFC,
    NFD,
]


def body_for(key: str) -> bytes:
    # Larger than the server's inline threshold (4 KiB), so each object is a
    # blob on disk and the key/path mapping is really exercised.
    return hashlib.sha256(key.encode()).digest() * 200


def snapshot(root: Path, exclude: list[Path]) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n not in exclude]
        for n in filenames + dirnames:
            found.add(str((d / n).relative_to(root)))
    return found


@pytest.fixture
def deep_server(tmp_path):
    """Server whose data dir sits many levels below tmp_path, so that any
    '../' escape lands somewhere we can see."""
    data = tmp_path.joinpath(*[f"l{i}" for i in range(8)], "data")
    srv = CoffreServer(data_dir=data, work_dir=tmp_path / "work")
    srv.start()
    yield srv
    srv.stop()


def test_hostile_keys_stay_inside(deep_server, tmp_path):
    assert len(("é" * 512).encode()) == 1024
    etc_passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else None
    data_dir, work_dir = deep_server.data_dir, deep_server.work_dir
    before = snapshot(tmp_path, [data_dir, work_dir])

    s3 = deep_server.client()
    bucket = unique_bucket("hostile")
    s3.create_bucket(Bucket=bucket)

    for key in HOSTILE_KEYS:
        put = s3.put_object(Bucket=bucket, Key=key, Body=body_for(key))
        assert put["ETag"] == '"%s"' % hashlib.md5(body_for(key)).hexdigest(), repr(key)

    for key in HOSTILE_KEYS:
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body_for(key), f"wrong body for key {key!r}"
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body_for(key))

    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert sorted(listed) == sorted(HOSTILE_KEYS)
    assert listed == sorted(listed, key=lambda k: k.encode()), "listing is not in UTF-8 byte order"
    # The two normalisation forms are two distinct keys.
    assert NFC in listed and NFD in listed
    assert s3.get_object(Bucket=bucket, Key=NFC)["Body"].read() != s3.get_object(Bucket=bucket, Key=NFD)["Body"].read()

    # Prefix listing with a control character / unicode prefix works too.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="ctrl-\x01").get("Contents", [])] == [
        "ctrl-\x01\x02\x03\x1b[31m-\x7f-end"
    ]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=NFD).get("Contents", [])] == [NFD]

    # Nothing was written outside the data directory.
    after = snapshot(tmp_path, [data_dir, work_dir])
    assert after - before == set(), f"files created outside the data dir: {sorted(after - before)}"
    for dirpath, _, filenames in os.walk(tmp_path):
        if Path(dirpath).is_relative_to(data_dir):
            continue
        assert "passwd" not in filenames, f"passwd created in {dirpath}"
        assert not any(ESCAPE_MARKER in n for n in filenames), f"escape file in {dirpath}"
    assert list(deep_server.cwd.iterdir()) == [], "the server wrote into its working directory"
    assert not Path("/tmp", ESCAPE_MARKER).exists()
    assert not any(ESCAPE_MARKER in n for n in os.listdir(tmp_path.parent))
    if etc_passwd is not None:
        assert Path("/etc/passwd").read_bytes() == etc_passwd

    # Deleting them works and leaves the bucket empty.
    for key in HOSTILE_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    after = snapshot(tmp_path, [data_dir, work_dir])
    assert after - before == set()


def test_key_too_long(s3, bucket):
    key = "é" * 512 + "x"
    assert len(key.encode()) == 1025
    expect_error("KeyTooLongError", 400, s3.put_object, Bucket=bucket, Key=key, Body=b"x")
    upload = None
    try:
        expect_error("KeyTooLongError", 400, s3.create_multipart_upload, Bucket=bucket, Key=key)
    finally:
        for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            upload = u
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    assert upload is None
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # 1024 bytes of ASCII is still fine.
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"ok")
    assert s3.get_object(Bucket=bucket, Key="k" * 1024)["Body"].read() == b"ok"


def test_copy_with_hostile_source_key(s3, bucket):
    src = "../../etc/passwd"
    s3.put_object(Bucket=bucket, Key=src, Body=b"not the real passwd")
    s3.copy_object(Bucket=bucket, Key="copied/../../x", CopySource={"Bucket": bucket, "Key": src})
    assert s3.get_object(Bucket=bucket, Key="copied/../../x")["Body"].read() == b"not the real passwd"
    # A copy source that walks out of the bucket must not read the host file.
    expect_error(
        "NoSuchKey", 404, s3.copy_object, Bucket=bucket, Key="y", CopySource={"Bucket": bucket, "Key": "../../../../../../etc/hostname"}
    )
