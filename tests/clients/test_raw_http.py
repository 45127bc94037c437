"""Bad input at the HTTP level: malformed XML, truncated bodies, huge headers,
and the shape of every error response."""

import base64
import hashlib
import socket
import time
from urllib.parse import quote

import pytest

from conftest import (
    MiB,
    ROOT_SECRET_KEY,
    client_error,
    deterministic_bytes,
    http_get,
    parse_s3_error,
    raw_request,
    sign_headers,
    unique_bucket,
)


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def assert_s3_error(resp, code: str, status: int):
    assert resp.status == status, (resp.status, resp.body[:500])
    err = parse_s3_error(resp.body)
    assert err["Code"] == code, err
    assert "xml" in resp.headers.get("content-type", ""), resp.headers
    return err


def assert_healthy(server):
    assert server.is_running(), server.log_tail()
    status, _, _ = http_get(server.admin_endpoint + "/health/ready")
    assert status == 200
    server.client().list_buckets()


# --- raw socket helpers ------------------------------------------------------


def read_response(sock: socket.socket, timeout: float = 10.0):
    """Read one HTTP/1.1 response; returns (status, headers, body), or None
    if the server closed the connection without answering."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            return None if not buf else _parse(buf)
        buf += chunk
        if time.monotonic() > deadline:
            break
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _parse(buf):
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), {}, body


def request_bytes(method, path, headers, port):
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- malformed XML -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part>",
        b"this is not xml at all",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>",
        b"",
    ],
    ids=["truncated", "not-xml", "bad-part-number", "empty"],
)
def test_complete_multipart_malformed_xml(server, s3, bucket, body):
    key = "raw/mp"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part")
    resp = raw_request(server, "POST", f"/{bucket}/{key}?uploadId={quote(upload_id, safe='')}", body=body)
    assert_s3_error(resp, "MalformedXML", 400)
    # The upload is still there.
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]] == [1]
    assert_healthy(server)


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",
        b"{\"not\": \"xml\"}",
        b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>junk<",
        b"<Delete>" + b"".join(b"<Object><Key>k%d</Key></Object>" % i for i in range(1001)) + b"</Delete>",
    ],
    ids=["truncated", "json", "trailing-garbage", "1001-keys"],
)
def test_delete_objects_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="a", Body=b"keep me")
    resp = raw_request(server, "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": content_md5(body)})
    assert_s3_error(resp, "MalformedXML", 400)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"keep me"


def test_delete_objects_valid_raw(server, s3, bucket):
    """Control for the test above: the same raw path works with good XML."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    body = b"<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet></Delete>"
    resp = raw_request(server, "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": content_md5(body)})
    assert resp.status == 200, resp.body
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# --- truncated bodies ----------------------------------------------------------


@pytest.mark.parametrize(
    "payload, size, sent_len",
    [("signed", MiB, 100 * 1024), ("unsigned", MiB, 100 * 1024), ("unsigned", 4000, 100), ("signed", 4000, 3999)],
    ids=["signed-1MiB", "unsigned-1MiB", "unsigned-small", "signed-small-one-byte-short"],
)
def test_put_shorter_than_content_length(server, s3, bucket, payload, size, sent_len):
    full = deterministic_bytes(size, seed=51)
    sent = full[:sent_len]
    original = b"the original content, which must survive"
    s3.put_object(Bucket=bucket, Key="short/victim", Body=original)

    for key in ["short/victim", "short/new"]:
        path = f"/{bucket}/{key}"
        payload_hash = hashlib.sha256(full).hexdigest() if payload == "signed" else "UNSIGNED-PAYLOAD"
        headers = sign_headers(
            "PUT", server.endpoint + path, {"Content-Length": str(len(full))}, payload_hash=payload_hash
        )
        with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
            sock.sendall(request_bytes("PUT", path, headers, server.s3_port))
            sock.sendall(sent)
            sock.shutdown(socket.SHUT_WR)
            resp = read_response(sock, timeout=10)
        # Either no answer (connection dropped) or an error -- never success.
        if resp is not None:
            assert resp[0] >= 400, f"truncated PUT of {key} answered {resp[0]}: {resp[2][:300]!r}"

    time.sleep(0.5)
    assert s3.get_object(Bucket=bucket, Key="short/victim")["Body"].read() == original
    err = client_error(s3.head_object, Bucket=bucket, Key="short/new")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["short/victim"]
    assert_healthy(server)


def test_put_body_hash_mismatch(server, s3, bucket):
    good = b"A" * 4096
    evil = b"B" * 4096
    s3.put_object(Bucket=bucket, Key="hash/victim", Body=b"original")
    responses = [
        raw_request(server, "PUT", f"/{bucket}/{key}", body=evil, payload_hash=hashlib.sha256(good).hexdigest())
        for key in ["hash/victim", "hash/new"]
    ]
    # First what matters most: nothing was stored...
    assert s3.get_object(Bucket=bucket, Key="hash/victim")["Body"].read() == b"original"
    err = client_error(s3.head_object, Bucket=bucket, Key="hash/new")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # ...then the precise S3 error.
    for resp in responses:
        assert_s3_error(resp, "XAmzContentSHA256Mismatch", 400)


# --- oversized headers --------------------------------------------------------------


def send_and_read(server, method, path, headers, body=b""):
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
        try:
            sock.sendall(request_bytes(method, path, headers, server.s3_port) + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock, timeout=10)


def check_rejected_header_section(server, resp):
    assert resp is not None, "server closed the connection without an HTTP response"
    status, headers, body = resp
    assert status in (400, 431), (status, body[:300])
    if status == 400:
        err = parse_s3_error(body)
        assert err["Code"] in ("RequestHeaderSectionTooLarge", "MetadataTooLarge", "InvalidRequest"), err
    assert_healthy(server)


def test_oversized_header(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    path = f"/{bucket}/k"
    headers = sign_headers("GET", server.endpoint + path, {"X-Padding": "a" * (100 * 1024)})
    check_rejected_header_section(server, send_and_read(server, "GET", path, headers))


def test_too_many_headers(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    path = f"/{bucket}/k"
    extra = {f"X-Pad-{i:04d}": "b" * 40 for i in range(2000)}
    headers = sign_headers("GET", server.endpoint + path, extra)
    check_rejected_header_section(server, send_and_read(server, "GET", path, headers))


def test_oversized_user_metadata(server, s3, bucket):
    """S3 caps user metadata at 2 KB: 8 KiB of x-amz-meta-* is MetadataTooLarge."""
    path = f"/{bucket}/meta-big"
    resp = raw_request(server, "PUT", path, body=b"x", headers={"x-amz-meta-big": "m" * 8192})
    assert_s3_error(resp, "MetadataTooLarge", 400)
    err = client_error(s3.head_object, Bucket=bucket, Key="meta-big")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- error responses are S3 XML -----------------------------------------------------


@pytest.fixture
def err_bucket(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
    return bucket


ERROR_CASES = [
    # (id, method, path template, kwargs, expected code, expected status)
    ("no-such-bucket", "GET", "/{missing}/k", {}, "NoSuchBucket", 404),
    ("no-such-key", "GET", "/{bucket}/missing", {}, "NoSuchKey", 404),
    ("invalid-bucket-name", "PUT", "/Bad_Bucket_Name", {}, "InvalidBucketName", 400),
    ("anonymous", "GET", "/{bucket}/ten", {"sign": False}, "AccessDenied", 403),
    ("anonymous-list", "GET", "/", {"sign": False}, "AccessDenied", 403),
    ("invalid-range", "GET", "/{bucket}/ten", {"headers": {"Range": "bytes=100-200"}}, "InvalidRange", 416),
    ("no-such-upload", "GET", "/{bucket}/ten?uploadId=bogus", {}, "NoSuchUpload", 404),
    (
        "copy-missing-source",
        "PUT",
        "/{bucket}/dst",
        {"headers": {"x-amz-copy-source": "/{bucket}/missing"}},
        "NoSuchKey",
        404,
    ),
    (
        "malformed-authorization",
        "GET",
        "/",
        {"sign": False, "headers": {"Authorization": "AWS4-HMAC-SHA256 garbage", "x-amz-date": "20250101T000000Z",
                                    "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}},
        "AuthorizationHeaderMalformed",
        400,
    ),
    ("bad-part-number", "PUT", "/{bucket}/ten?partNumber=abc&uploadId=bogus", {}, "InvalidArgument", 400),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_bodies_are_s3_xml(server, err_bucket, case):
    _, method, path, kwargs, code, status = case
    fill = {"bucket": err_bucket, "missing": unique_bucket("nobucket")}
    path = path.format(**fill)
    kwargs = dict(kwargs)
    if "headers" in kwargs:
        kwargs["headers"] = {k: v.format(**fill) for k, v in kwargs["headers"].items()}
    resp = raw_request(server, method, path, **kwargs)
    err = assert_s3_error(resp, code, status)
    assert err.get("Message"), err


def test_wrong_signature_error_body(server):
    headers = sign_headers("GET", server.endpoint + "/", secret_key=ROOT_SECRET_KEY + "-wrong")
    resp = raw_request(server, "GET", "/", headers=headers, sign=False)
    assert_s3_error(resp, "SignatureDoesNotMatch", 403)


def test_request_time_too_skewed(server, monkeypatch):
    import datetime as dt

    import botocore.auth

    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: real(*a, **k) - dt.timedelta(minutes=20))
    headers = sign_headers("GET", server.endpoint + "/")
    monkeypatch.undo()
    resp = raw_request(server, "GET", "/", headers=headers, sign=False)
    assert_s3_error(resp, "RequestTimeTooSkewed", 403)


@pytest.mark.parametrize("method", ["PATCH", "BREW"])
def test_unsupported_method(server, err_bucket, method):
    resp = raw_request(server, method, f"/{err_bucket}/ten")
    assert resp.status in (400, 405, 501), resp.status
    err = parse_s3_error(resp.body)
    assert err["Code"] in ("MethodNotAllowed", "NotImplemented", "InvalidRequest"), err
    assert_healthy(server)


# --- streaming SigV4 (aws-chunked), as the Java/Rust/Go v2 SDKs send it ----------


def _hmac(key: bytes, msg: str) -> bytes:
    import hmac

    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def chunked_signed_put(
    server, path, data: bytes, chunk_size: int, tamper_chunk: int | None = None, send_bytes: int | None = None
):
    """PUT `data` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD; returns RawResponse.
    With `send_bytes`, only that much of the body is sent before reading the answer."""
    import hmac

    from conftest import REGION, ROOT_SECRET_KEY, RawResponse

    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    encoded_len = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    headers = sign_headers(
        "PUT",
        server.endpoint + path,
        {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(encoded_len),
        },
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    amz_date = headers["X-Amz-Date"]
    day = amz_date[:8]
    scope = f"{day}/{REGION}/s3/aws4_request"
    prev = headers["Authorization"].rsplit("Signature=", 1)[1]
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + ROOT_SECRET_KEY).encode(), day), REGION), "s3"), "aws4_request")
    empty_hash = hashlib.sha256(b"").hexdigest()
    body = b""
    for i, c in enumerate(chunks):
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty_hash, hashlib.sha256(c).hexdigest()]
        )
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if tamper_chunk == i:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        body += f"{len(c):x};chunk-signature={sig}\r\n".encode() + c + b"\r\n"
    assert len(body) == encoded_len
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=30) as sock:
        sock.sendall(request_bytes("PUT", path, headers, server.s3_port) + body[:send_bytes])
        resp = read_response(sock, timeout=30)
    assert resp is not None, "no response to a streaming-signed PUT"
    return RawResponse(*resp)


def test_streaming_sigv4_upload(server, s3, bucket):
    data = deterministic_bytes(200_000, seed=71)
    resp = chunked_signed_put(server, f"/{bucket}/stream/ok", data, chunk_size=64 * 1024)
    assert resp.status == 200, resp.body[:500]
    got = s3.get_object(Bucket=bucket, Key="stream/ok")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    # The aws-chunked framing is not stored as a Content-Encoding.
    assert "aws-chunked" not in (got.get("ContentEncoding") or "")


@pytest.mark.parametrize("tamper", [0, 2, 4], ids=["first-chunk", "middle-chunk", "final-empty-chunk"])
def test_streaming_sigv4_bad_chunk_signature(server, s3, bucket, tamper):
    data = deterministic_bytes(200_000, seed=72)
    s3.put_object(Bucket=bucket, Key="stream/victim", Body=b"original")
    responses = [
        chunked_signed_put(server, f"/{bucket}/{key}", data, chunk_size=64 * 1024, tamper_chunk=tamper)
        for key in ["stream/victim", "stream/new"]
    ]
    assert s3.get_object(Bucket=bucket, Key="stream/victim")["Body"].read() == b"original"
    err = client_error(s3.head_object, Bucket=bucket, Key="stream/new")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # AWS answers a bad chunk signature with 403 SignatureDoesNotMatch.
    for resp in responses:
        assert_s3_error(resp, "SignatureDoesNotMatch", 403)


def test_query_canonicalisation(server, s3, bucket):
    """SigV4 signs the *decoded-then-encoded* query; a client may send the
    same parameters unencoded ('/') or in another order."""
    s3.put_object(Bucket=bucket, Key="q/a/1", Body=b"x")
    s3.put_object(Bucket=bucket, Key="q/b", Body=b"y")
    canonical = f"/{bucket}?delimiter=%2F&list-type=2&prefix=q%2F"
    headers = sign_headers("GET", server.endpoint + canonical)
    for sent in [canonical, f"/{bucket}?list-type=2&prefix=q/&delimiter=/", f"/{bucket}?prefix=q%2f&list-type=2&delimiter=%2f"]:
        resp = raw_request(server, "GET", sent, headers=headers, sign=False)
        assert resp.status == 200, (sent, resp.body[:300])
        assert b"<Key>q/b</Key>" in resp.body and b"<Prefix>q/a/</Prefix>" in resp.body, resp.body


def test_streaming_chunk_over_the_cap_is_refused_before_buffering(server, s3, bucket):
    """s3s 0.14 buffers a whole chunk of the size the client declares; the
    front refuses a chunk over 16 MiB as soon as its header arrives."""
    data = deterministic_bytes(17 * 1024 * 1024, seed=73)
    resp = chunked_signed_put(server, f"/{bucket}/stream/huge-chunk", data, chunk_size=len(data), send_bytes=256 * 1024)
    assert_s3_error(resp, "InvalidRequest", 400)
    assert b"exceeds the limit" in resp.body
    err = client_error(s3.head_object, Bucket=bucket, Key="stream/huge-chunk")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert_healthy(server)
