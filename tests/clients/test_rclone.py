"""rclone sync / check of a tree of files, up and back down."""

import filecmp
import os
import random
from pathlib import Path

import pytest

from conftest import (
    MiB,
    REGION,
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    clean_env,
    empty_and_delete_bucket,
    run,
    unique_bucket,
)

N_FILES = 300
N_BIG = 3


def make_tree(root: Path, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    dirs = ["", "a", "a/b", "a/b/c", "a/b/c/d", "docs", "docs/2024", "docs/2025/q1", "img", "img/thumbs", "x y", "ünï/cödé"]
    files = {}
    for i in range(N_FILES):
        d = rng.choice(dirs)
        name = f"f{i:03d}" + rng.choice([".txt", ".bin", ".dat", "", " copy.txt"])
        rel = f"{d}/{name}" if d else name
        size = 0 if i % 50 == 0 else rng.randint(0, 200 * 1024)
        if i < N_BIG:
            size = 5 * MiB + rng.randint(1, 2 * MiB)
        files[rel] = size
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
    return files


def tree_files(root: Path) -> set[str]:
    out = set()
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            out.add(str((Path(dirpath) / n).relative_to(root)))
    return out


@pytest.fixture
def rclone(server, client_home):
    env = clean_env(
        client_home,
        RCLONE_CONFIG=str(client_home / "rclone.conf"),
        RCLONE_CONFIG_COFFRE_TYPE="s3",
        RCLONE_CONFIG_COFFRE_PROVIDER="Other",
        RCLONE_CONFIG_COFFRE_ENV_AUTH="false",
        RCLONE_CONFIG_COFFRE_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_COFFRE_ACCESS_KEY_ID=ROOT_ACCESS_KEY,
        RCLONE_CONFIG_COFFRE_SECRET_ACCESS_KEY=ROOT_SECRET_KEY,
        RCLONE_CONFIG_COFFRE_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG_COFFRE_REGION=REGION,
    )
    (client_home / "rclone.conf").write_text("")

    def rclone_cmd(*args, check=True):
        return run(
            [
                "rclone",
                *args,
                "--retries",
                "1",
                "--low-level-retries",
                "1",
                "--transfers",
                "4",
                "--checkers",
                "8",
                # make the > 5 MiB files go through multipart uploads
                "--s3-upload-cutoff",
                "5M",
                "--s3-chunk-size",
                "5M",
            ],
            env=env,
            timeout=600,
            check=check,
        )

    return rclone_cmd


def test_rclone_sync_check_roundtrip(rclone, s3, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    assert len(files) == N_FILES
    bucket = unique_bucket("rclone")
    try:
        rclone("mkdir", f"coffre:{bucket}")
        rclone("sync", str(src), f"coffre:{bucket}")

        # Every file is there with the right size.
        listed = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            listed.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        assert listed == files
        big = [k for k, sz in files.items() if sz > 5 * MiB]
        assert len(big) == N_BIG
        for k in big:
            assert s3.head_object(Bucket=bucket, Key=k)["ETag"].endswith('-2"'), k

        res = rclone("check", str(src), f"coffre:{bucket}")
        assert b"0 differences found" in res.stderr, res.stderr.decode()

        # A second sync has nothing to do.
        res = rclone("sync", str(src), f"coffre:{bucket}", "-v")
        assert b"Copied (new)" not in res.stderr and b"Copied (replaced" not in res.stderr

        dst = tmp_path / "dst"
        rclone("sync", f"coffre:{bucket}", str(dst))
        assert tree_files(dst) == set(files)
        mismatched = [rel for rel in files if not filecmp.cmp(src / rel, dst / rel, shallow=False)]
        assert mismatched == []

        # rclone check really compares content: change one object behind its back.
        victim = next(k for k, sz in sorted(files.items()) if 1000 < sz < 100_000)
        data = bytearray((src / victim).read_bytes())
        data[0] ^= 0xFF
        s3.put_object(Bucket=bucket, Key=victim, Body=bytes(data))
        res = rclone("check", str(src), f"coffre:{bucket}", check=False)
        assert res.returncode != 0
        assert b"1 differences found" in res.stderr, res.stderr.decode()
    finally:
        empty_and_delete_bucket(s3, bucket)
