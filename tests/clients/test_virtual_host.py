"""Virtual-host-style addressing (`BUCKET.localhost:PORT`), as SDKs use by
default. `*.localhost` does not resolve on every machine, so the test makes
the process resolve it to 127.0.0.1, as systemd-resolved would; the request
still carries `Host: BUCKET.localhost:PORT`, which is what the server routes on."""

from __future__ import annotations

import socket

import boto3
import botocore.config
import pytest

from conftest import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, unique_bucket


@pytest.fixture
def localhost_subdomains(monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_virtual_host_style_requests(server, localhost_subdomains):
    client = boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{server.s3_port}",
        aws_access_key_id=ROOT_ACCESS_KEY,
        aws_secret_access_key=ROOT_SECRET_KEY,
        region_name=REGION,
        config=botocore.config.Config(s3={"addressing_style": "virtual"}, retries={"total_max_attempts": 1}),
    )
    name = unique_bucket("vh")
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="dir/hello.txt", Body=b"bonjour")
    # The request really went to the bucket's host name.
    seen = []
    client.meta.events.register("before-send.s3.GetObject", lambda request, **_: seen.append(request.url))
    assert client.get_object(Bucket=name, Key="dir/hello.txt")["Body"].read() == b"bonjour"
    assert seen and seen[0].startswith(f"http://{name}.localhost:{server.s3_port}/"), seen
    listed = client.list_objects_v2(Bucket=name)["Contents"]
    assert [o["Key"] for o in listed] == ["dir/hello.txt"]
    # Path style reaches the same bucket.
    assert server.client().get_object(Bucket=name, Key="dir/hello.txt")["Body"].read() == b"bonjour"
    client.delete_object(Bucket=name, Key="dir/hello.txt")
    client.delete_bucket(Bucket=name)


def test_signature_v2_is_refused(server):
    """SigV2 (HMAC-SHA1) is deprecated: refused with a clear error, not half-supported."""
    import urllib.error
    import urllib.request

    v2 = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ROOT_ACCESS_KEY,
        aws_secret_access_key=ROOT_SECRET_KEY,
        region_name=REGION,
        config=botocore.config.Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    url = v2.generate_presigned_url("list_buckets")
    assert "AWSAccessKeyId=" in url
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code == 400
    assert b"<Code>InvalidRequest</Code>" in err.value.read()
