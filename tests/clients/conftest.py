"""Shared fixtures for the Coffre end-to-end client tests.

Each test drives a real `coffre serve` process through the clients users run
(boto3, awscli, rclone, s3cmd, curl, raw HTTP).  Nothing here talks to the
network beyond 127.0.0.1.

Binary: $COFFRE_BIN, else /root/.cache/coffre/target/debug/coffre.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import boto3
import botocore.config
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError

DEFAULT_BIN = "/root/.cache/coffre/target/debug/coffre"
REGION = "us-east-1"
ROOT_ACCESS_KEY = "COFFREROOTTESTKEY0001"
ROOT_SECRET_KEY = "coffre-root-test-secret-0123456789abcdefABCDEF"
ADMIN_TOKEN = "coffre-admin-test-token-0123456789abcdefABCDEF"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
MiB = 1024 * 1024

# Variables the sandbox sets for package registries; with them awscli,
# rclone and s3cmd try to do TLS things against our plain-http endpoint.
_SCRUBBED_ENV = (
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "NIX_SSL_CERT_FILE",
    "HTTPLIB2_CA_CERTS",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)

# The boto3 clients in this process must not pick up the CA bundle either.
for _name in _SCRUBBED_ENV:
    os.environ.pop(_name, None)
for _name in list(os.environ):
    if _name.startswith(("AWS_", "RCLONE_", "S3CMD")):
        os.environ.pop(_name, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
# ...nor a developer's ~/.aws/config (which could change checksum or
# addressing behaviour): the in-process boto3 clients use exactly the
# settings given in CoffreServer.client().
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def coffre_bin() -> Path:
    return Path(os.environ.get("COFFRE_BIN", DEFAULT_BIN))


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for client subprocesses: no CA/proxy variables, no stray
    AWS/rclone settings, and an isolated HOME for their config files."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED_ENV and not k.startswith(("AWS_", "RCLONE_", "COFFRE_"))
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(home / ".config")
        env["XDG_CACHE_HOME"] = str(home / ".cache")
    env.update(extra)
    return env


def awscli_env(home: Path) -> dict[str, str]:
    """Environment for the AWS CLI as root: path-style addressing, the test
    region, no retries, and nothing read from the user's own AWS files."""
    cfg = home / "aws-config"
    home.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
    return clean_env(
        home,
        AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=ROOT_SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(cfg),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        AWS_MAX_ATTEMPTS="1",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def quoted_md5(data: bytes) -> str:
    return '"' + md5_hex(data) + '"'


def multipart_etag(parts: Iterable[bytes]) -> str:
    digests = [hashlib.md5(p).digest() for p in parts]
    return '"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


def unique_bucket(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def deterministic_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible but reproducible payload."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest() * 64
        counter += 1
    return bytes(out[:size])


# --- checksums (base64 of the big-endian digest, as S3 reports them) -------

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksum_b64(algorithm: str, data: bytes) -> str:
    algorithm = algorithm.upper()
    if algorithm == "CRC32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crc32c(data).to_bytes(4, "big")
    elif algorithm == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


# --- error assertions --------------------------------------------------------


def client_error(fn: Callable, *args, **kwargs) -> ClientError:
    """Run a boto3 call that must fail and return the ClientError."""
    with pytest.raises(ClientError) as excinfo:
        fn(*args, **kwargs)
    return excinfo.value


def assert_error(err: ClientError, code: str, status: int) -> None:
    got_code = err.response.get("Error", {}).get("Code")
    got_status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert (got_code, got_status) == (code, status), (
        f"expected {code}/{status}, got {got_code}/{got_status}: {err.response.get('Error')}"
    )


def expect_error(code: str, status: int, fn: Callable, *args, **kwargs) -> ClientError:
    err = client_error(fn, *args, **kwargs)
    assert_error(err, code, status)
    return err


def parse_s3_error(body: bytes) -> dict[str, str]:
    """Parse an S3 XML error body; fails the test if it is not one."""
    assert body, "error response has an empty body (expected S3 XML <Error>)"
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:  # pragma: no cover - assertion path
        raise AssertionError(f"error body is not XML ({e}): {body[:500]!r}")
    tag = root.tag.split("}")[-1]
    assert tag == "Error", f"error body root is <{tag}>, expected <Error>: {body[:500]!r}"
    fields = {child.tag.split("}")[-1]: (child.text or "") for child in root}
    assert fields.get("Code"), f"<Error> without <Code>: {body[:500]!r}"
    return fields


# --- the server --------------------------------------------------------------


@dataclass
class CoffreServer:
    data_dir: Path
    work_dir: Path
    s3_port: int = 0
    admin_port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0
    # Extra `coffre serve` arguments (e.g. --config), and the CA that signed
    # the server's certificate: set, both listeners are reached over https.
    extra_args: list = field(default_factory=list)
    ca_file: Path | None = None
    _log_file: object = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.ca_file else "http"

    def ssl_context(self):
        """A client context trusting only the test CA (None over plain http)."""
        if not self.ca_file:
            return None
        import ssl

        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.s3_port}"

    @property
    def cwd(self) -> Path:
        """The server's working directory: empty, so that anything written
        relative to it is visible."""
        return self.work_dir / "cwd"

    @property
    def admin_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.admin_port}"

    # lifecycle ---------------------------------------------------------------

    def start(self, new_ports: bool = False) -> "CoffreServer":
        binary = coffre_bin()
        if not binary.exists():
            pytest.fail(f"coffre binary not found at {binary} (set COFFRE_BIN)")
        if new_ports or not self.s3_port:
            self.s3_port = free_port()
            self.admin_port = free_port()
            while self.admin_port == self.s3_port:
                self.admin_port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(exist_ok=True)
        self.starts += 1
        self.log_path = self.work_dir / f"coffre-{self.starts}.log"
        self._log_file = open(self.log_path, "wb")
        env = clean_env(
            None,
            COFFRE_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY,
            COFFRE_ROOT_SECRET_KEY=ROOT_SECRET_KEY,
            COFFRE_ADMIN_TOKEN=ADMIN_TOKEN,
            RUST_BACKTRACE="1",
        )
        self.proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--s3-listen",
                f"127.0.0.1:{self.s3_port}",
                "--admin-listen",
                f"127.0.0.1:{self.admin_port}",
                *self.extra_args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(self.cwd),
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"coffre exited with {self.proc.returncode} before becoming ready\n{self.log_tail()}"
                )
            try:
                status, _, _ = http_get(self.admin_endpoint + "/health/ready", timeout=2, context=self.ssl_context())
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"coffre not ready after {timeout}s (last: {last})\n{self.log_tail()}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait; SIGKILL if it hangs. Returns the exit code
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        proc = self.proc
        rc: int | None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = None
        else:
            rc = proc.returncode
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, n: int = 60) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "--- coffre log (tail) ---\n" + "\n".join(lines[-n:])

    # clients -----------------------------------------------------------------

    def client(
        self,
        access_key: str = ROOT_ACCESS_KEY,
        secret_key: str = ROOT_SECRET_KEY,
        **config_kwargs,
    ):
        cfg = dict(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        )
        cfg.update(config_kwargs)
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
            config=botocore.config.Config(**cfg),
            verify=str(self.ca_file) if self.ca_file else None,
        )
        client.meta.events.register("needs-retry.s3", _retry_stale_keepalive)
        return client

    def cli(
        self,
        *args: str,
        check: bool = True,
        root: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run `coffre <args> --endpoint <admin>` with the admin token."""
        extra = {}
        if root:
            extra = dict(COFFRE_ADMIN_TOKEN=ADMIN_TOKEN)
        home = self.work_dir / "cli-home"
        env = clean_env(home, **extra)
        cmd = [str(coffre_bin()), *args, "--endpoint", self.admin_endpoint]
        if self.ca_file:
            cmd += ["--ca-cert", str(self.ca_file)]
        # cwd is an empty dir: the CLI must not find a ./coffre-data to borrow credentials from.
        res = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, cwd=str(home))
        if check:
            assert res.returncode == 0, (
                f"{cmd} exited {res.returncode}\nstdout: {res.stdout.decode(errors='replace')}\n"
                f"stderr: {res.stderr.decode(errors='replace')}"
            )
        return res

    def cli_json(self, *args: str):
        res = self.cli(*args, "--json")
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"`coffre {' '.join(args)} --json` printed non-JSON: {res.stdout!r}") from e

    def create_key(self, name: str) -> dict:
        key = self.cli_json("key", "create", "--name", name)
        assert isinstance(key, dict), key
        for f in ("access_key_id", "secret_access_key", "name", "created"):
            assert f in key, f"key create output lacks {f!r}: {key}"
        assert key["name"] == name
        return key


def _retry_stale_keepalive(attempts=1, caught_exception=None, **_):
    """Retries are off (errors must show), except for one case every HTTP
    client retries: a pooled keep-alive connection that the server closed
    for idleness just as it was reused (the server closes idle connections
    after 30 s; urllib3 cannot see a FIN that is still in flight)."""
    if attempts == 1 and isinstance(caught_exception, ConnectionClosedError):
        return 0
    return None


def http_get(url: str, timeout: float = 10, headers: dict | None = None, context=None):
    """Plain unsigned GET (https with `context`); returns (status, headers, body)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# --- raw signed requests -----------------------------------------------------


class _FixedPayloadSigner(S3SigV4Auth):
    """SigV4 for S3 with a caller-chosen x-amz-content-sha256 value."""

    def __init__(self, credentials, payload_hash: str):
        super().__init__(credentials, "s3", REGION)
        self._payload_hash = payload_hash

    def payload(self, request):
        return self._payload_hash


def sign_headers(
    method: str,
    url: str,
    headers: dict | None = None,
    body: bytes = b"",
    payload_hash: str | None = None,
    access_key: str = ROOT_ACCESS_KEY,
    secret_key: str = ROOT_SECRET_KEY,
) -> dict[str, str]:
    """Return the headers (incl. Authorization) for a SigV4-signed request.
    `url` must already be percent-encoded the way it will be sent."""
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    _FixedPayloadSigner(Credentials(access_key, secret_key), payload_hash).add_auth(req)
    out = dict(req.headers.items())
    return out


@dataclass
class RawResponse:
    status: int
    headers: dict
    body: bytes

    def error(self) -> dict[str, str]:
        return parse_s3_error(self.body)


def raw_request(
    server: CoffreServer,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict | None = None,
    sign: bool = True,
    payload_hash: str | None = None,
    timeout: float = 30,
) -> RawResponse:
    """Send one request with http.client; `path` is the encoded path+query."""
    hdrs = dict(headers or {})
    if sign:
        hdrs = sign_headers(method, server.endpoint + path, hdrs, body, payload_hash)
    conn = http.client.HTTPConnection("127.0.0.1", server.s3_port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if not any(k.lower() == "host" for k in hdrs):
            conn.putheader("Host", f"127.0.0.1:{server.s3_port}")
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if method in ("PUT", "POST") or body:
            if not any(k.lower() == "content-length" for k in hdrs):
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by the whole session."""
    base = tmp_path_factory.mktemp("coffre-session")
    srv = CoffreServer(data_dir=base / "data", work_dir=base / "work")
    srv.start()
    yield srv
    alive = srv.is_running()
    tail = srv.log_tail()
    srv.stop()
    if not alive:
        pytest.fail(f"the session server died during the tests\n{tail}")


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own, for tests that restart it or inspect its disk."""
    srv = CoffreServer(data_dir=tmp_path / "data", work_dir=tmp_path / "work")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3(server):
    """boto3 client with the root credentials."""
    return server.client()


def empty_and_delete_bucket(client, name: str) -> None:
    with contextlib.suppress(ClientError):
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            with contextlib.suppress(ClientError):
                client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    with contextlib.suppress(ClientError):
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                with contextlib.suppress(ClientError):
                    client.delete_objects(Bucket=name, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    with contextlib.suppress(ClientError):
        client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(s3):
    """A fresh bucket owned by root, emptied and removed afterwards."""
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(s3, name)


@pytest.fixture
def client_home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def run(cmd: list[str], env: dict, timeout: float = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, **kw)
    if check:
        assert res.returncode == 0, (
            f"{cmd} exited {res.returncode}\nstdout: {res.stdout.decode(errors='replace')[-4000:]}\n"
            f"stderr: {res.stderr.decode(errors='replace')[-4000:]}"
        )
    return res


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random_file(path: Path, size: int, seed: int) -> str:
    """Write `size` pseudo-random bytes; returns the sha256 hex."""
    import random

    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 4 * MiB)
            chunk = rng.randbytes(n)
            f.write(chunk)
            h.update(chunk)
            remaining -= n
    return h.hexdigest()
