"""s3cmd (Debian package) against Coffre."""

import hashlib

import pytest

from conftest import (
    MiB,
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    clean_env,
    empty_and_delete_bucket,
    run,
    unique_bucket,
    write_random_file,
)


@pytest.fixture
def s3cmd(server, client_home):
    cfg = client_home / "s3cfg"
    hostport = f"127.0.0.1:{server.s3_port}"
    cfg.write_text(
        "[default]\n"
        f"access_key = {ROOT_ACCESS_KEY}\n"
        f"secret_key = {ROOT_SECRET_KEY}\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        "use_https = False\n"
        "check_ssl_certificate = False\n"
        "signature_v2 = False\n"
        "bucket_location = us-east-1\n"
        "proxy_host =\n"
        "proxy_port = 0\n"
        "progress_meter = False\n"
        "multipart_chunk_size_mb = 5\n"
    )
    env = clean_env(client_home)

    def s3cmd_cmd(*args, check=True):
        return run(["s3cmd", "-c", str(cfg), "--no-progress", *args], env=env, timeout=300, check=check)

    return s3cmd_cmd


def test_s3cmd_mb_put_get_ls_del(s3cmd, s3, tmp_path):
    bucket = unique_bucket("s3cmd")
    small = tmp_path / "hello.txt"
    small.write_bytes(b"hello from s3cmd\n")
    big = tmp_path / "big.bin"
    big_sha = write_random_file(big, 12 * MiB + 3, seed=9)
    try:
        s3cmd("mb", f"s3://{bucket}")
        s3.head_bucket(Bucket=bucket)

        s3cmd("put", str(small), f"s3://{bucket}/dir/hello.txt")
        s3cmd("put", str(big), f"s3://{bucket}/dir/big.bin")  # multipart (5 MiB chunks)
        assert s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == small.read_bytes()
        assert s3.head_object(Bucket=bucket, Key="dir/big.bin")["ETag"].endswith('-3"')

        out = s3cmd("ls", f"s3://{bucket}/dir/").stdout.decode()
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert sorted((r[-2], r[-1]) for r in rows) == [
            (str(12 * MiB + 3), f"s3://{bucket}/dir/big.bin"),
            (str(small.stat().st_size), f"s3://{bucket}/dir/hello.txt"),
        ], out
        top = s3cmd("ls", f"s3://{bucket}").stdout.decode()
        assert [line.split() for line in top.splitlines() if line.strip()] == [["DIR", f"s3://{bucket}/dir/"]], top
        buckets = s3cmd("ls").stdout.decode()
        assert f"s3://{bucket}" in buckets

        got_small = tmp_path / "got-hello.txt"
        got_big = tmp_path / "got-big.bin"
        s3cmd("get", f"s3://{bucket}/dir/hello.txt", str(got_small))
        s3cmd("get", f"s3://{bucket}/dir/big.bin", str(got_big))
        assert got_small.read_bytes() == small.read_bytes()
        assert hashlib.sha256(got_big.read_bytes()).hexdigest() == big_sha

        s3cmd("del", f"s3://{bucket}/dir/hello.txt")
        s3cmd("del", f"s3://{bucket}/dir/big.bin")
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        assert s3cmd("ls", f"s3://{bucket}/dir/").stdout.strip() == b""

        s3cmd("rb", f"s3://{bucket}")
        assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        empty_and_delete_bucket(s3, bucket)
