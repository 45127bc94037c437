"""STS on the S3 endpoint, as `aws sts` and boto3's STS client call it
(docs/access-policies.md): GetCallerIdentity names the key that signed;
what Coffre does not serve is refused in STS's own error form; a disabled
key gets no answer about itself."""

import json
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError

from conftest import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, awscli_env, run


def _sts(server, access_key, secret_key):
    return boto3.session.Session().client(
        "sts",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_boto3_get_caller_identity_names_the_key_that_signed(server):
    key = server.create_key("sts-caller")
    who = _sts(server, key["access_key_id"], key["secret_access_key"]).get_caller_identity()
    assert who["UserId"] == key["access_key_id"]
    assert who["Account"] == key["access_key_id"], "until tenants exist, a key is its own account"
    assert who["Arn"] == f"arn:aws:iam::{key['access_key_id']}:root"

    forged = _sts(server, key["access_key_id"], "not-" + key["secret_access_key"])
    try:
        forged.get_caller_identity()
        raise AssertionError("a wrong secret was answered")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response


def test_boto3_unserved_actions_are_refused_in_stss_form(server):
    sts = _sts(server, ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    for call in (
        lambda: sts.get_session_token(DurationSeconds=900),
        lambda: sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/reader", RoleSessionName="job"),
    ):
        try:
            call()
            raise AssertionError("an STS action Coffre does not serve was answered")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidAction", e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_awscli_sts_get_caller_identity_and_a_disabled_key(server, client_home):
    key = server.create_key("sts-cli")
    env = awscli_env(client_home)
    env["AWS_ACCESS_KEY_ID"] = key["access_key_id"]
    env["AWS_SECRET_ACCESS_KEY"] = key["secret_access_key"]

    def aws(*args, check=True):
        command = [sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint, "--region", REGION]
        return run(command, env=env, check=check)

    who = json.loads(aws("sts", "get-caller-identity").stdout)
    assert who["Arn"] == f"arn:aws:iam::{key['access_key_id']}:root", who

    server.cli_json("key", "update", key["access_key_id"], "--status", "inactive")
    refused = aws("sts", "get-caller-identity", check=False)
    assert refused.returncode != 0 and b"InvalidAccessKeyId" in refused.stderr, refused.stderr
