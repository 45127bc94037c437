"""Authentication: SigV4 headers, anonymous requests, presigned URLs."""

import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

from conftest import (
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    clean_env,
    expect_error,
    parse_s3_error,
    run,
)


def test_wrong_secret(server, bucket):
    bad = server.client(ROOT_ACCESS_KEY, ROOT_SECRET_KEY + "x")
    expect_error("SignatureDoesNotMatch", 403, bad.list_buckets)
    expect_error("SignatureDoesNotMatch", 403, bad.put_object, Bucket=bucket, Key="k", Body=b"x")
    expect_error("SignatureDoesNotMatch", 403, bad.get_object, Bucket=bucket, Key="k")


def test_unknown_access_key(server, bucket):
    bad = server.client("AKIDOESNOTEXIST00000", ROOT_SECRET_KEY)
    expect_error("InvalidAccessKeyId", 403, bad.list_buckets)
    expect_error("InvalidAccessKeyId", 403, bad.list_objects_v2, Bucket=bucket)


def urlopen(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_anonymous_requests_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"top secret")
    for method, path, data in [
        ("GET", f"/{bucket}/secret.txt", None),
        ("GET", f"/{bucket}", None),
        ("GET", "/", None),
        ("PUT", f"/{bucket}/anon-upload", b"intruder"),
        ("DELETE", f"/{bucket}/secret.txt", None),
    ]:
        status, _, body = urlopen(server.endpoint + path, method=method, data=data)
        assert status == 403, (method, path, status, body)
        assert parse_s3_error(body)["Code"] == "AccessDenied", (method, path, body)
        assert b"top secret" not in body
    assert s3.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"top secret"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="anon-upload")["KeyCount"] == 0


def curl(url, *args, env):
    """Run curl; returns (status, body bytes)."""
    res = run(
        ["curl", "-sS", "--path-as-is", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *args, url],
        env=env,
        timeout=60,
    )
    body, _, code = res.stdout.rpartition(b"\n")
    return int(code), body


def test_presigned_get_and_put_with_curl(server, s3, bucket, client_home, tmp_path):
    env = clean_env(client_home)
    s3.put_object(Bucket=bucket, Key="shared/report.bin", Body=b"presigned content \x00\xff")

    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared/report.bin"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url, "expected a SigV4 presigned URL"
    status, body = curl(url, env=env)
    assert status == 200, body
    assert body == b"presigned content \x00\xff"

    # Tampering with the signed URL is detected.
    tampered = url.replace("shared/report.bin", "shared/report.bim")
    status, body = curl(tampered, env=env)
    assert status == 403
    assert parse_s3_error(body)["Code"] == "SignatureDoesNotMatch"

    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"uploaded through a presigned PUT" * 1000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "incoming/file.bin"}, ExpiresIn=300)
    status, body = curl(put_url, "-T", str(upload), env=env)
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key="incoming/file.bin")["Body"].read()
    assert got == upload.read_bytes()

    # A presigned GET does not authorise a PUT to the same key.
    status, body = curl(url, "-X", "PUT", "--data-binary", "overwrite", env=env)
    assert status == 403
    assert parse_s3_error(body)["Code"] == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="shared/report.bin")["Body"].read() == b"presigned content \x00\xff"


def test_presigned_expiry_limit(server, s3, bucket, client_home):
    env = clean_env(client_home)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    ok = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604800)
    assert parse_qs(urlsplit(ok).query)["X-Amz-Expires"] == ["604800"]
    status, body = curl(ok, env=env)
    assert (status, body) == (200, b"v")

    too_long = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    status, body = curl(too_long, env=env)
    err = parse_s3_error(body)
    # AWS: 400 AuthorizationQueryParametersError "X-Amz-Expires must be less than a week".
    assert (status, err["Code"]) == (400, "AuthorizationQueryParametersError"), (status, err)


def test_presigned_url_expired(server, s3, bucket, client_home):
    env = clean_env(client_home)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.5)
    status, body = curl(url, env=env)
    err = parse_s3_error(body)
    assert (status, err["Code"]) == (403, "AccessDenied"), (status, err)
    assert b"v" != body


def test_presigned_with_wrong_secret(server, bucket, client_home):
    env = clean_env(client_home)
    bad = server.client(ROOT_ACCESS_KEY, "not-the-secret")
    url = bad.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    status, body = curl(url, env=env)
    assert status == 403
    assert parse_s3_error(body)["Code"] == "SignatureDoesNotMatch"


def test_curl_aws_sigv4(server, s3, bucket, client_home, tmp_path):
    """curl's built-in SigV4 signer (--aws-sigv4). curl 7.88 neither sends
    x-amz-content-sha256 (S3 requires it, so it is given explicitly) nor sorts
    query parameters (so the query is written in sorted order)."""
    env = clean_env(client_home)
    auth = [
        "--aws-sigv4", "aws:amz:us-east-1:s3",
        "--user", f"{ROOT_ACCESS_KEY}:{ROOT_SECRET_KEY}",
        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ]
    src = tmp_path / "via-curl.txt"
    src.write_bytes(b"uploaded by curl --aws-sigv4\n")
    status, body = curl(f"{server.endpoint}/{bucket}/curl/file.txt", *auth, "-T", str(src), env=env)
    assert status == 200, body
    assert s3.get_object(Bucket=bucket, Key="curl/file.txt")["Body"].read() == src.read_bytes()

    status, body = curl(f"{server.endpoint}/{bucket}/curl/file.txt", *auth, env=env)
    assert (status, body) == (200, src.read_bytes())

    status, body = curl(f"{server.endpoint}/{bucket}?delimiter=%2F&list-type=2&prefix=curl%2F", *auth, env=env)
    assert status == 200, body
    assert b"<Key>curl/file.txt</Key>" in body

    # Without any signature: refused.
    status, body = curl(f"{server.endpoint}/{bucket}/curl/file.txt", env=env)
    assert status == 403
    assert parse_s3_error(body)["Code"] == "AccessDenied"
