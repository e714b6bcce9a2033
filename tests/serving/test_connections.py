"""Connection bounds: a request that stalls gets 408, an oversized head 431, a silent connection
is closed, too many get 503; others go on."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from support.serving_harness import Models, Server, metric, running

BODY = json.dumps(
    {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()
HEAD = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(BODY)


@pytest.fixture(scope="module")
def bounded(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(
        tmp_path_factory.mktemp("bounded"),
        model_uri=str(models.iris),
        request_timeout_s="1",
        max_header_bytes="4096",
        idle_timeout_s="1",
        keepalive_timeout_s="1",
        max_connections="40",
    ) as server:
        yield server


def _exchange(server: Server, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send ``parts`` (pausing between them), then read until the server closes or 10 s pass."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            sock.sendall(part)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def test_a_stalled_head_gets_408(bounded: Server) -> None:
    reply = _exchange(bounded, b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n")
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b'"error"' in reply


def test_a_stalled_body_gets_408_and_is_counted(bounded: Server) -> None:
    reply = _exchange(bounded, HEAD + BODY[:10])
    assert reply.startswith(b"HTTP/1.1 408 ")
    # The handler that waited on the body gave up: the server answers others and counts it.
    assert httpx.post(bounded.url + "/v2/models/iris/infer", content=BODY).status_code == 200
    text = httpx.get(bounded.url + "/metrics").text
    assert metric(text, "onnxops_requests_total", endpoint="infer", code="408") >= 1
    assert metric(text, "onnxops_inflight_requests") == 1  # only this scrape


def test_an_oversized_head_gets_431(bounded: Server) -> None:
    reply = _exchange(bounded, b"GET /v2/health/live HTTP/1.1\r\nX-Big: " + b"a" * 50_000)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert httpx.get(bounded.url + "/v2/health/live").status_code == 200


def test_a_head_over_the_limit_in_two_reads_gets_431(bounded: Server) -> None:
    # 3000 bytes, then 2000 that end the head: neither read alone is over the 4096 limit.
    first = b"GET /v2/health/live HTTP/1.1\r\nX-A: " + b"a" * 2960 + b"\r\n"
    second = b"X-B: " + b"b" * 1990 + b"\r\n\r\n"
    reply = _exchange(bounded, first, second, pause=0.3)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]
    # Just under the limit in one read is served.
    reply = _exchange(
        bounded,
        b"GET /v2/health/live HTTP/1.1\r\nConnection: close\r\nX-A: " + b"a" * 3900 + b"\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]


def test_slow_but_timely_and_pipelined_requests_are_served(bounded: Server) -> None:
    reply = _exchange(bounded, HEAD, BODY, pause=0.3)
    assert reply.startswith(b"HTTP/1.1 200 ")
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"
    last = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    reply = _exchange(bounded, live + HEAD + BODY + last)
    assert reply.count(b"HTTP/1.1 200 ") == 3


def test_silent_connections_are_closed_and_bounded(bounded: Server) -> None:
    # 60 clients connect and send nothing: 40 are held until the idle timeout, the rest
    # refused at once with 503; then new clients are served again.
    socks = [socket.create_connection(("127.0.0.1", bounded.port), timeout=10) for _ in range(60)]
    try:
        firsts = []
        for sock in socks:
            try:
                firsts.append(sock.recv(65536))
            except ConnectionResetError:
                firsts.append(b"reset")
        refused = [f for f in firsts if f.startswith(b"HTTP/1.1 503 ")]
        closed = [f for f in firsts if f == b""]
        assert len(refused) >= 20 and len(refused) + len(closed) == 60, firsts
        assert b'"error"' in refused[0]
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(bounded.url + "/v2/health/live").status_code == 200
    text = httpx.get(bounded.url + "/metrics").text
    assert metric(text, "onnxops_requests_total", endpoint="other", code="503") >= 20


def test_a_kept_alive_connection_is_closed_when_idle(bounded: Server) -> None:
    with socket.create_connection(("127.0.0.1", bounded.port), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = b""
        while not reply.endswith(b'{"live":true}'):  # head and body may come apart
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in reply
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, not by the 10 s socket timeout
        assert time.monotonic() - started < 9


def test_bounds_are_settings() -> None:
    from onnxops_serving.settings import parse_settings

    settings = parse_settings(
        ["--request-timeout-s", "5", "--max-header-bytes", "8192", "--idle-timeout-s", "3",
         "--keepalive-timeout-s", "2", "--max-connections", "9"]
    )  # fmt: skip
    assert (settings.request_timeout_s, settings.max_header_bytes) == (5.0, 8192)
    assert (settings.idle_timeout_s, settings.keepalive_timeout_s) == (3.0, 2.0)
    assert settings.max_connections == 9
