"""TLS on both listeners: real clients over https with a throwaway test CA,
the ANSSI policy seen from the wire (versions, suites, groups), handshake
guards, the admin report, and certificate reload on SIGHUP."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    ADMIN_TOKEN,
    REGION,
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    CoffreServer,
    awscli_env,
    clean_env,
    coffre_bin,
    empty_and_delete_bucket,
    http_get,
    run,
    unique_bucket,
)

# The head timeout of the module's server: it also bounds TLS handshakes.
HEAD_TIMEOUT = 5

TLS13_SUITES = ["TLS13_AES_256_GCM_SHA384", "TLS13_AES_128_GCM_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"]
TLS12_SUITES = [
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
]


# --- a throwaway PKI, made with the openssl CLI -------------------------------


def openssl(*args: str, cwd: Path) -> None:
    run(["openssl", *args], env=clean_env(None), cwd=str(cwd), timeout=60)


@dataclass
class Leaf:
    cert: Path
    key: Path

    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())

    def fingerprint(self) -> str:
        return hashlib.sha256(self.der()).hexdigest()


@dataclass
class Pki:
    dir: Path
    ca: Path
    ca_key: Path

    def leaf(self, name: str, key: str = "ec") -> Leaf:
        """A server certificate for 127.0.0.1 and localhost, signed by the CA,
        with a random serial (so every leaf has its own fingerprint)."""
        d = self.dir
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", "rsa:3072"]
        openssl("req", "-new", *newkey, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", "/CN=localhost", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        serial = "0x%016x" % random.getrandbits(63)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                "-set_serial", serial, "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)  # fmt: skip
        (d / f"{name}.key").chmod(0o600)
        return Leaf(cert=d / f"{name}.pem", key=d / f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coffre test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)  # fmt: skip
    return Pki(dir=d, ca=d / "ca.pem", ca_key=d / "ca.key")


def tls_server_in(base: Path, pki: Pki, leaf: Leaf, header_timeout: int = 30) -> CoffreServer:
    """A server whose TLS files and head timeout come from its TOML config file."""
    base.mkdir(parents=True, exist_ok=True)
    config = base / "coffre.toml"
    config.write_text(
        f'tls_cert = "{leaf.cert}"\ntls_key = "{leaf.key}"\nheader_read_timeout_secs = {header_timeout}\n'
    )
    srv = CoffreServer(data_dir=base / "data", work_dir=base / "work", extra_args=["--config", str(config)],
                       ca_file=pki.ca)  # fmt: skip
    return srv.start()


@pytest.fixture(scope="module")
def leaf(pki) -> Leaf:
    return pki.leaf("server")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki, leaf):
    srv = tls_server_in(tmp_path_factory.mktemp("coffre-tls"), pki, leaf, header_timeout=HEAD_TIMEOUT)
    yield srv
    alive = srv.is_running()
    tail = srv.log_tail()
    srv.stop()
    if not alive:
        pytest.fail(f"the TLS server died during the tests\n{tail}")


# --- helpers -------------------------------------------------------------------


def handshake(port: int, ctx: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def peer_fingerprint(port: int, ca: Path) -> str:
    with handshake(port, ssl.create_default_context(cafile=str(ca))) as s:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def legacy_context(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    """A client pinned to one version, with OpenSSL's floor lowered so that
    old versions and weak suites are really offered: a refusal then comes
    from the server, not from this client's own defaults."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def s_client(port: int, *args: str, ca: Path) -> subprocess.CompletedProcess:
    """`openssl s_client -brief`: a handshake, then EOF on stdin."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", "-CAfile", str(ca), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=clean_env(None),
        timeout=30,
    )


def admin_get(srv: CoffreServer, path: str, token: str | None = ADMIN_TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http_get(srv.admin_endpoint + path, headers=headers, context=srv.ssl_context())


# --- clients over https ------------------------------------------------------------


def test_boto3_verifies_the_test_ca(tls_server):
    s3 = tls_server.client()
    name = unique_bucket("tls")
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="secret.txt", Body=b"over TLS")
        assert s3.get_object(Bucket=name, Key="secret.txt")["Body"].read() == b"over TLS"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["secret.txt"]
    finally:
        empty_and_delete_bucket(s3, name)

    # Trusting only its public CA list (certifi), boto3 refuses the server.
    import boto3
    import botocore.config
    from botocore.exceptions import SSLError

    strict = boto3.session.Session().client(
        "s3",
        endpoint_url=tls_server.endpoint,
        aws_access_key_id=ROOT_ACCESS_KEY,
        aws_secret_access_key=ROOT_SECRET_KEY,
        region_name=REGION,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
        verify=True,
    )
    with pytest.raises(SSLError):
        strict.list_buckets()


def test_awscli_cp_and_ls_over_https(tls_server, tmp_path, client_home):
    env = awscli_env(client_home)

    def aws(*args, check=True):
        cmd = [sys.executable, "-m", "awscli", *args, "--endpoint-url", tls_server.endpoint]
        return run([*cmd, "--ca-bundle", str(tls_server.ca_file)], env=env, timeout=300, check=check)

    name = unique_bucket("tls-cli")
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    aws("s3", "mb", f"s3://{name}")
    try:
        aws("s3", "cp", str(src), f"s3://{name}/dir/up.bin")
        listing = aws("s3", "ls", f"s3://{name}/dir/").stdout.decode()
        assert "up.bin" in listing and str(src.stat().st_size) in listing, listing
        back = tmp_path / "down.bin"
        aws("s3", "cp", f"s3://{name}/dir/up.bin", str(back))
        assert back.read_bytes() == src.read_bytes()
        # Without --ca-bundle the CLI falls back to its public CA list: refused.
        refused = run(
            [sys.executable, "-m", "awscli", "s3", "ls", f"s3://{name}/", "--endpoint-url", tls_server.endpoint],
            env=env,
            check=False,
        )
        assert refused.returncode != 0 and b"SSL" in refused.stderr, refused.stderr
    finally:
        empty_and_delete_bucket(tls_server.client(), name)


def test_curl_with_cacert(tls_server, tmp_path):
    s3 = tls_server.client()
    name = unique_bucket("tls-curl")
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="k", Body=b"presigned over TLS")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "k"}, ExpiresIn=300)
        assert url.startswith("https://")
        env = clean_env(None)
        curl = ["curl", "-sS", "--noproxy", "*", "--cacert", str(tls_server.ca_file)]
        got = run([*curl, "--fail", url], env=env)
        assert got.stdout == b"presigned over TLS"
        # `-w` shows what was negotiated: TLS 1.3 by default.
        health = run([*curl, "-o", "/dev/null", "-w", "%{http_code}", tls_server.admin_endpoint + "/health/ready"],
                     env=env)  # fmt: skip
        assert health.stdout == b"200"
        # Without the test CA curl refuses (60: peer certificate cannot be authenticated).
        refused = run(["curl", "-sS", "--noproxy", "*", "--cacert", "/dev/null", url], env=env, check=False)
        assert refused.returncode in (60, 77), refused
    finally:
        empty_and_delete_bucket(s3, name)


def test_cli_over_https(tls_server):
    keys = tls_server.cli_json("key", "list")
    assert isinstance(keys, list)
    created = tls_server.create_key("tls-cli-key")
    assert created["access_key_id"] in {k["access_key_id"] for k in tls_server.cli_json("key", "list")}
    tls_server.cli("key", "delete", created["access_key_id"])
    # Trusting only the system's CAs, the CLI refuses the test certificate.
    env = clean_env(None, COFFRE_ADMIN_TOKEN=ADMIN_TOKEN)
    res = subprocess.run([str(coffre_bin()), "key", "list", "--endpoint", tls_server.admin_endpoint],
                         capture_output=True, env=env, timeout=30)  # fmt: skip
    assert res.returncode != 0
    assert b"certificate" in res.stderr.lower(), res.stderr


# --- the policy, from the wire ---------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_before_1_2_is_refused(tls_server, version):
    for port in (tls_server.s3_port, tls_server.admin_port):
        with pytest.raises(ssl.SSLError):
            handshake(port, legacy_context(version)).close()
    # The same lax client gets through with TLS 1.2: the refusal was the version's.
    with handshake(tls_server.s3_port, legacy_context(ssl.TLSVersion.TLSv1_2)) as s:
        assert s.version() == "TLSv1.2"


def test_tls12_offers_only_aead_suites_with_ecdhe(tls_server):
    port = tls_server.s3_port
    cbc = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:" \
          "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384"  # fmt: skip
    static_rsa = "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA"
    finite_field_dhe = "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
    for offer in (cbc, static_rsa, finite_field_dhe, "ECDHE-ECDSA-DES-CBC3-SHA:ECDHE-ECDSA-RC4-SHA"):
        with pytest.raises(ssl.SSLError):
            handshake(port, legacy_context(ssl.TLSVersion.TLSv1_2, offer)).close()
    for suite in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        with handshake(port, legacy_context(ssl.TLSVersion.TLSv1_2, suite)) as s:
            assert s.cipher()[0] == suite
    # The server's order wins: offered last, AES-256-GCM is still chosen.
    both = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    with handshake(port, legacy_context(ssl.TLSVersion.TLSv1_2, both)) as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_tls13_suites_and_groups(tls_server):
    port, ca = tls_server.s3_port, tls_server.ca_file
    for suite in ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"):
        res = s_client(port, "-tls1_3", "-ciphersuites", suite, ca=ca)
        assert res.returncode == 0, res.stderr
        assert f"Ciphersuite: {suite}" in res.stderr.decode(), res.stderr
    for suite in ("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"):
        res = s_client(port, "-tls1_3", "-ciphersuites", suite, ca=ca)
        assert res.returncode != 0, f"{suite} was accepted: {res.stderr}"
    for group in ("X25519", "P-256", "P-384"):
        res = s_client(port, "-groups", group, ca=ca)
        assert res.returncode == 0, (group, res.stderr)
        assert "Verification: OK" in res.stderr.decode(), res.stderr
    for group in ("P-521", "X448", "ffdhe2048", "ffdhe3072"):
        res = s_client(port, "-groups", group, ca=ca)
        assert res.returncode != 0, f"group {group} was accepted: {res.stderr}"


def test_alpn_is_http11_only(tls_server):
    ctx = tls_server.ssl_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with handshake(tls_server.s3_port, ctx) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert s.version() == "TLSv1.3"


def test_plain_http_to_the_tls_port_gets_no_s3_answer(tls_server):
    for port in (tls_server.s3_port, tls_server.admin_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert not answer.startswith(b"HTTP/"), answer[:200]
        assert b"<Error>" not in answer and b"ListAllMyBuckets" not in answer


def test_a_silent_client_is_dropped_after_the_head_timeout(tls_server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_server.s3_port), timeout=HEAD_TIMEOUT + 20) as s:
        assert s.recv(1) == b"", "the server closes the connection without a handshake"
    took = time.monotonic() - started
    assert HEAD_TIMEOUT - 1 <= took <= HEAD_TIMEOUT + 10, took
    # Meanwhile the listener still serves others.
    assert peer_fingerprint(tls_server.s3_port, tls_server.ca_file)


# --- the admin report ------------------------------------------------------------


def test_admin_tls_report(tls_server, leaf):
    status, _, body = admin_get(tls_server, "/admin/v1/tls")
    assert status == 200, body
    report = json.loads(body)
    for name, port in (("s3", tls_server.s3_port), ("admin", tls_server.admin_port)):
        listener = report[name]
        assert listener["enabled"] is True
        assert listener["protocol_versions"] == ["TLSv1.3", "TLSv1.2"]
        assert listener["cipher_suites"] == TLS13_SUITES + TLS12_SUITES
        assert listener["key_exchange_groups"] == ["X25519", "secp256r1", "secp384r1"]
        assert listener["alpn"] == ["http/1.1"]
        cert = listener["certificate"]
        assert cert["sha256_fingerprint"] == leaf.fingerprint() == peer_fingerprint(port, tls_server.ca_file)
        assert cert["key_algorithm"] == "ECDSA" and cert["chain_length"] == 1
        assert cert["loaded_at"].endswith("Z")
    assert report["last_reload"] is None
    status, _, _ = admin_get(tls_server, "/admin/v1/tls", token=None)
    assert status == 401


def test_plain_server_reports_tls_off_and_warns(fresh_server):
    status, _, body = http_get(
        fresh_server.admin_endpoint + "/admin/v1/tls",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert status == 200, body
    report = json.loads(body)
    assert report["s3"]["enabled"] is False and report["admin"]["enabled"] is False
    assert "certificate" not in report["s3"]
    assert "TLS is off" in fresh_server.log_path.read_text(), fresh_server.log_tail()


# --- configuration errors --------------------------------------------------------


def serve_fails(tmp_path: Path, *args: str) -> str:
    env = clean_env(None, COFFRE_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY, COFFRE_ROOT_SECRET_KEY=ROOT_SECRET_KEY)
    res = subprocess.run(
        [str(coffre_bin()), "serve", "--data-dir", str(tmp_path / "data"),
         "--s3-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", *args],
        capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode != 0, f"coffre serve {args} started: {res.stderr[-2000:]!r}"
    return res.stderr.decode(errors="replace")


def test_tls_config_errors_stop_the_server(tmp_path, pki, leaf):
    err = serve_fails(tmp_path, "--tls-cert", str(leaf.cert))
    assert "tls_key is not" in err, err
    err = serve_fails(tmp_path, "--tls-key", str(leaf.key))
    assert "tls_cert is not" in err, err
    other = pki.leaf("other")
    err = serve_fails(tmp_path, "--tls-cert", str(leaf.cert), "--tls-key", str(other.key))
    assert "does not match the certificate" in err, err
    err = serve_fails(tmp_path, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(leaf.key))
    assert "missing.pem" in err, err


# --- reload on SIGHUP ------------------------------------------------------------


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def install(leaf: Leaf, cert: Path, key: Path) -> None:
    """Replaces the served files the way a renewal tool does: write aside, rename."""
    for src, dst in ((leaf.cert, cert), (leaf.key, key)):
        tmp = dst.with_suffix(".new")
        tmp.write_bytes(src.read_bytes())
        tmp.chmod(0o600)
        os.replace(tmp, dst)


def test_sighup_reloads_the_certificate(tmp_path, pki, leaf):
    cert, key = tmp_path / "live" / "cert.pem", tmp_path / "live" / "key.pem"
    cert.parent.mkdir()
    install(leaf, cert, key)
    srv = tls_server_in(tmp_path / "srv", pki, Leaf(cert, key))
    try:
        ca = srv.ca_file
        assert peer_fingerprint(srv.s3_port, ca) == leaf.fingerprint()

        # A keep-alive connection opened before the reload.
        import http.client

        old = http.client.HTTPSConnection("127.0.0.1", srv.s3_port, context=srv.ssl_context(), timeout=10)
        old.request("GET", "/")
        assert old.getresponse().read() and old.sock is not None
        old_sock = old.sock

        renewed = pki.leaf("renewed", key="rsa")
        install(renewed, cert, key)
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(lambda: peer_fingerprint(srv.s3_port, ca) == renewed.fingerprint(), what="the renewed certificate")
        assert peer_fingerprint(srv.admin_port, ca) == renewed.fingerprint()

        # The old connection carries on, on its old session.
        old.request("GET", "/")
        resp = old.getresponse()
        assert resp.status == 403 and b"AccessDenied" in resp.read()
        assert old.sock is old_sock
        assert hashlib.sha256(old.sock.getpeercert(binary_form=True)).hexdigest() == leaf.fingerprint()
        old.close()

        report = json.loads(admin_get(srv, "/admin/v1/tls")[2])
        assert report["last_reload"]["ok"] is True
        assert report["s3"]["certificate"]["sha256_fingerprint"] == renewed.fingerprint()
        assert report["s3"]["certificate"]["key_algorithm"] == "RSA"
        with handshake(srv.s3_port, legacy_context(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384")) as s:
            assert s.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"

        # A broken certificate file: the reload fails, the renewed pair keeps serving.
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        os.kill(srv.proc.pid, signal.SIGHUP)
        report = wait_for(
            lambda: (r := json.loads(admin_get(srv, "/admin/v1/tls")[2]))["last_reload"]["ok"] is False and r,
            what="the failed reload in the report",
        )
        assert str(cert) in report["last_reload"]["error"]
        assert report["s3"]["certificate"]["sha256_fingerprint"] == renewed.fingerprint()
        assert peer_fingerprint(srv.s3_port, ca) == renewed.fingerprint()
        assert "reload failed" in srv.log_path.read_text(), srv.log_tail()

        # A key that does not match the certificate is refused the same way.
        install(Leaf(leaf.cert, renewed.key), cert, key)
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(lambda: "does not match" in (json.loads(admin_get(srv, "/admin/v1/tls")[2])["last_reload"]
                                              .get("error") or ""), what="the mismatch in the report")  # fmt: skip
        assert peer_fingerprint(srv.s3_port, ca) == renewed.fingerprint()
        assert srv.is_running()
    finally:
        srv.stop()


def test_sse_c_is_accepted_over_tls_by_default(tls_server):
    """The default configuration takes SSE-C keys on a TLS listener only."""
    s3 = tls_server.client()
    name = unique_bucket("tls-ssec")
    s3.create_bucket(Bucket=name)
    key = os.urandom(32)
    try:
        s3.put_object(Bucket=name, Key="c", Body=b"customer data", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        got = s3.get_object(Bucket=name, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        assert got["Body"].read() == b"customer data"
    finally:
        empty_and_delete_bucket(s3, name)
