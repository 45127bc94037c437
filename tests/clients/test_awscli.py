"""The AWS CLI (v1, from pip) against Coffre."""

import hashlib
import json
import sys

import pytest

from conftest import (
    MiB,
    awscli_env,
    empty_and_delete_bucket,
    run,
    sha256_file,
    unique_bucket,
    write_random_file,
)

SIZE = 100 * MiB + 12345
CHUNK = 8 * MiB  # s3transfer's default multipart_chunksize / threshold


@pytest.fixture
def aws(server, client_home):
    env = awscli_env(client_home)

    def aws_cmd(*args, check=True, timeout=600):
        return run(
            [sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint, "--output", "json"],
            env=env,
            timeout=timeout,
            check=check,
        )

    return aws_cmd


def expected_multipart_etag(path, chunk):
    digests = []
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digests.append(hashlib.md5(block).digest())
    return '"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


def test_awscli_large_roundtrip(aws, tmp_path, s3):
    bucket = unique_bucket("awscli")
    src = tmp_path / "big.bin"
    digest = write_random_file(src, SIZE, seed=42)

    aws("s3", "mb", f"s3://{bucket}")
    try:
        aws("s3", "cp", str(src), f"s3://{bucket}/dir/big.bin")

        listing = aws("s3", "ls", f"s3://{bucket}/dir/").stdout.decode()
        lines = [line.split() for line in listing.splitlines() if line.strip()]
        # "2026-01-01 12:00:00  104869945 big.bin"
        assert [(cols[-2], cols[-1]) for cols in lines] == [(str(SIZE), "big.bin")], listing

        top = aws("s3", "ls", f"s3://{bucket}/").stdout.decode()
        assert "PRE dir/" in top, top

        buckets = aws("s3", "ls").stdout.decode()
        assert any(line.split()[-1] == bucket for line in buckets.splitlines() if line.strip()), buckets

        head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "dir/big.bin").stdout)
        assert head["ContentLength"] == SIZE
        assert head["ETag"] == expected_multipart_etag(src, CHUNK)

        dst = tmp_path / "down.bin"
        aws("s3", "cp", f"s3://{bucket}/dir/big.bin", str(dst))
        assert dst.stat().st_size == SIZE
        assert sha256_file(dst) == digest

        # A small single-part file, and a removal through the CLI.
        small = tmp_path / "small.txt"
        small.write_text("hello from awscli\n")
        aws("s3", "cp", str(small), f"s3://{bucket}/small.txt", "--content-type", "text/plain")
        head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "small.txt").stdout)
        assert head["ContentType"] == "text/plain"
        assert head["ETag"] == '"%s"' % hashlib.md5(small.read_bytes()).hexdigest()

        missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
        assert missing.returncode != 0
        assert b"404" in missing.stderr

        aws("s3", "rm", f"s3://{bucket}/", "--recursive")
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        aws("s3", "rb", f"s3://{bucket}")
    finally:
        empty_and_delete_bucket(s3, bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# CRC32C and CRC64NVME need botocore[crt], which the CLI here has not; the
# e2e tests (full_object_checksums.rs) drive those with the Rust SDK.
@pytest.mark.parametrize("algorithm", [None, "CRC32"])
def test_awscli_multipart_checksums(aws, tmp_path, s3, algorithm):
    """A 20 MiB `aws s3 cp` (multipart) with the CLI's default checksums, or
    with the CRC it names: it completes and reads back identical."""
    bucket = unique_bucket("awsck")
    src = tmp_path / "mp.bin"
    size = 20 * MiB
    digest = write_random_file(src, size, seed=7)
    extra = ["--checksum-algorithm", algorithm] if algorithm else []
    aws("s3", "mb", f"s3://{bucket}")
    try:
        aws("s3", "cp", str(src), f"s3://{bucket}/mp.bin", *extra)
        head = s3.head_object(Bucket=bucket, Key="mp.bin", ChecksumMode="ENABLED")
        assert head["ContentLength"] == size
        assert head["ETag"] == expected_multipart_etag(src, CHUNK)
        if algorithm == "CRC32":
            assert head["ChecksumCRC32"].endswith("-3"), head
        dst = tmp_path / "down.bin"
        aws("s3", "cp", f"s3://{bucket}/mp.bin", str(dst))
        assert sha256_file(dst) == digest
    finally:
        empty_and_delete_bucket(s3, bucket)


def test_awscli_sync_with_empty_files(aws, tmp_path, s3):
    """`aws s3 sync` of a tree that holds empty files (empty PutObject bodies)."""
    import time

    src = tmp_path / "tree"
    for i in range(12):
        p = src / f"d{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"" if i % 2 == 0 else f"content {i}\n".encode() * (i + 1))
    bucket = unique_bucket("awssync")
    aws("s3", "mb", f"s3://{bucket}")
    try:
        start = time.monotonic()
        aws("s3", "sync", str(src), f"s3://{bucket}/tree", timeout=300)
        elapsed = time.monotonic() - start
        listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        expected = {f"tree/{p.relative_to(src)}": p.stat().st_size for p in src.rglob("*") if p.is_file()}
        assert listed == expected
        dst = tmp_path / "back"
        aws("s3", "sync", f"s3://{bucket}/tree", str(dst), timeout=300)
        for p in src.rglob("*"):
            if p.is_file():
                assert (dst / p.relative_to(src)).read_bytes() == p.read_bytes()
        assert elapsed < 20, f"aws s3 sync of 12 small files took {elapsed:.1f}s"
    finally:
        empty_and_delete_bucket(s3, bucket)
