"""Graceful shutdown: a request in flight when SIGTERM arrives still
finishes and is stored; new connections are refused; the exit code is 0."""

from __future__ import annotations

import http.client
import signal
import socket
import time

from conftest import deterministic_bytes, sign_headers


def test_sigterm_lets_an_in_flight_upload_finish(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    s3.create_bucket(Bucket="drain")
    body = deterministic_bytes(4 * 1024 * 1024, seed=7)
    path = "/drain/in-flight"
    headers = sign_headers("PUT", srv.endpoint + path, {"Content-Length": str(len(body))},
                           payload_hash="UNSIGNED-PAYLOAD")

    conn = http.client.HTTPConnection("127.0.0.1", srv.s3_port, timeout=30)
    conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"127.0.0.1:{srv.s3_port}")
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    time.sleep(0.3)

    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # The listener is closed: a new connection is refused.
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", srv.s3_port)) != 0, "still accepting after SIGTERM"
    # The upload already under way completes.
    conn.send(body[half:])
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    conn.close()
    assert srv.proc.wait(timeout=30) == 0

    srv.start()
    got = srv.client().get_object(Bucket="drain", Key="in-flight")["Body"].read()
    assert got == body
