"""Bucket policies, Block Public Access and enforced ownership, through
boto3 and the AWS CLI as their users call them (docs/access-policies.md)."""

import json
import sys

from conftest import (
    REGION,
    assert_error,
    awscli_env,
    client_error,
    empty_and_delete_bucket,
    http_get,
    run,
    unique_bucket,
)


def _policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_boto3_bucket_policy_lets_another_key_read_one_prefix(server, s3):
    key = server.create_key("policy-reader")
    reader = server.client(key["access_key_id"], key["secret_access_key"])
    name = unique_bucket("pol")
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="shared/a.txt", Body=b"a")
        s3.put_object(Bucket=name, Key="private/b.txt", Body=b"b")
        assert_error(client_error(reader.get_object, Bucket=name, Key="shared/a.txt"), "AccessDenied", 403)
        grant = {
            "Sid": "ReaderShared",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{key['access_key_id']}:root"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{name}/shared/*",
        }
        s3.put_bucket_policy(Bucket=name, Policy=_policy(grant))
        assert json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"][0]["Sid"] == "ReaderShared"
        assert s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is False
        assert reader.get_object(Bucket=name, Key="shared/a.txt")["Body"].read() == b"a"
        assert_error(client_error(reader.get_object, Bucket=name, Key="private/b.txt"), "AccessDenied", 403)
        assert_error(client_error(reader.get_bucket_policy, Bucket=name), "AccessDenied", 403)
        s3.delete_bucket_policy(Bucket=name)
        assert_error(client_error(s3.get_bucket_policy, Bucket=name), "NoSuchBucketPolicy", 404)
        assert_error(client_error(reader.get_object, Bucket=name, Key="shared/a.txt"), "AccessDenied", 403)
    finally:
        empty_and_delete_bucket(s3, name)


def test_boto3_public_read_needs_the_block_opened(server, s3):
    name = unique_bucket("pub")
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="index.html", Body=b"<h1>hi</h1>")
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()), block
        public = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/*"}
        assert_error(client_error(s3.put_bucket_policy, Bucket=name, Policy=_policy(public)), "AccessDenied", 403)
        assert http_get(f"{server.endpoint}/{name}/index.html")[0] == 403
        s3.delete_public_access_block(Bucket=name)
        s3.put_bucket_policy(Bucket=name, Policy=_policy(public))
        assert s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is True
        status, _, body = http_get(f"{server.endpoint}/{name}/index.html")
        assert (status, body) == (200, b"<h1>hi</h1>")
        assert http_get(f"{server.endpoint}/{name}")[0] == 403, "listing was not granted"
        assert_error(
            client_error(s3.put_object, Bucket=name, Key="x", Body=b"x", ACL="public-read"),
            "AccessControlListNotSupported",
            400,
        )
        assert s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == (
            "BucketOwnerEnforced"
        )
    finally:
        s3.delete_bucket_policy(Bucket=name)
        empty_and_delete_bucket(s3, name)


def test_awscli_s3api_policy_commands(server, s3, client_home):
    env = awscli_env(client_home)
    name = unique_bucket("cli")
    s3.create_bucket(Bucket=name)
    deny = {
        "Sid": "NoDelete",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    policy_file = client_home / "policy.json"
    policy_file.write_text(_policy(deny))

    def aws(*args, check=True):
        return run(
            [sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint, "--region", REGION],
            env=env,
            check=check,
        )

    try:
        aws("s3api", "put-bucket-policy", "--bucket", name, "--policy", f"file://{policy_file}")
        got = json.loads(json.loads(aws("s3api", "get-bucket-policy", "--bucket", name).stdout)["Policy"])
        assert got["Statement"][0]["Sid"] == "NoDelete"
        s3.put_object(Bucket=name, Key="kept", Body=b"k")
        refused = aws("s3", "rm", f"s3://{name}/kept", check=False)
        assert refused.returncode != 0 and b"AccessDenied" in refused.stderr, refused.stderr
        assert s3.get_object(Bucket=name, Key="kept")["Body"].read() == b"k"
        bad = client_home / "bad.json"
        bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}')
        malformed = aws("s3api", "put-bucket-policy", "--bucket", name, "--policy", f"file://{bad}", check=False)
        assert malformed.returncode != 0 and b"MalformedPolicy" in malformed.stderr, malformed.stderr
        aws("s3api", "delete-bucket-policy", "--bucket", name)
    finally:
        empty_and_delete_bucket(s3, name)
