"""Requests as raw bytes on a socket: what HTTP clients, proxies and scanners really send.

Each case is bytes for one connection and what must come back: the statuses of the answers in
order, a word in the first answer, and headers it must carry. Run by test_wire_corpus.py.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import zlib
from dataclasses import dataclass, field

INFER = b"/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]
BODY = json.dumps(
    {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
).encode()
LAST = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def post(path: bytes, body: bytes, *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s" % (
        path,
        head,
        len(body),
        body,
    )


def get(path: bytes, method: bytes = b"GET", *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (method, path, head)


def _binary(shape: list[int]) -> bytes:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "X",
                    "shape": shape,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    return post(
        INFER,
        head + struct.pack("<4f", *ROW),
        b"Inference-Header-Content-Length: %d" % len(head),
    )


H2C = (b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQ")
# 8 MiB of spaces gzip to ~8 KiB: small on the wire, over the 64 KiB body limit decoded.
BOMB = gzip.compress(b" " * (8 << 20))


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    statuses: list[int]
    word: str = ""  # in the first answer's body
    headers: dict[bytes, bytes] = field(default_factory=dict)  # on the first answer
    no_body: bool = False  # the first answer has a Content-Length but no body (HEAD)


CASES = [
    Case("h2c upgrade is served as HTTP/1.1, with what follows", post(INFER, BODY, *H2C) * 2
         + LAST, [200, 200, 200], '"label"'),
    Case("h2c upgrade without a body", get(b"/v2/health/ready", b"GET", *H2C) + LAST,
         [200, 200], "ready"),
    Case("h2c upgrade with a chunked body", b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
         + b"\r\n".join(H2C) + b"\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}{}\r\n0\r\n\r\n",
         [400], "chunked"),
    Case("90 KB head in one read", get(b"/v2/health/live", b"GET", b"X-Big: " + b"a" * 90_000),
         [431], "too large"),
    Case("bad request line", b"GARBAGE\r\n\r\n", [400], "invalid HTTP request"),
    Case("bad Content-Length", b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
         b"Content-Length: 12abc\r\n\r\n", [400], "Content-Length"),
    Case("two Content-Lengths", b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
         b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", [400], "invalid HTTP request"),
    Case("Content-Length and chunked", b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
         b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [400],
         "invalid HTTP request"),
    Case("bad chunk size", b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", [400], "chunk size"),
    Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400], "invalid HTTP request"),
    Case("HEAD like GET without a body", get(b"/v2/health/live", b"HEAD") + LAST, [200, 200],
         no_body=True),
    Case("OPTIONS lists the methods", get(INFER, b"OPTIONS") + LAST, [204, 200],
         headers={b"allow": b"POST, OPTIONS"}),
    Case("OPTIONS on a GET endpoint", get(b"/metrics", b"OPTIONS") + LAST, [204, 200],
         headers={b"allow": b"GET, HEAD, OPTIONS"}),
    Case("405 carries Allow", get(INFER) + LAST, [405, 200], "use POST",
         headers={b"allow": b"POST, OPTIONS"}),
    Case("405 on a GET endpoint", post(b"/v2", b"{}") + LAST, [405, 200], "use GET",
         headers={b"allow": b"GET, HEAD, OPTIONS"}),
    Case("gzip body", post(INFER, gzip.compress(BODY), b"Content-Encoding: gzip") + LAST,
         [200, 200], '"label"'),
    Case("deflate body", post(INFER, zlib.compress(BODY), b"Content-Encoding: deflate") + LAST,
         [200, 200], '"label"'),
    Case("raw deflate body", post(INFER, zlib.compress(BODY, wbits=-15),
         b"Content-Encoding: deflate") + LAST, [200, 200], '"label"'),
    Case("compression bomb", post(INFER, BOMB, b"Content-Encoding: gzip"), [413], "decoded"),
    Case("brotli body", post(INFER, BODY, b"Content-Encoding: br") + LAST, [415, 200], "'br'"),
    Case("broken gzip", post(INFER, gzip.compress(BODY)[:-12], b"Content-Encoding: gzip")
         + LAST, [400, 200], "truncated"),
    Case("not gzip at all", post(INFER, BODY, b"Content-Encoding: gzip") + LAST, [400, 200],
         "not valid gzip"),
    Case("70-dimension binary shape", _binary([1] * 69 + [4]) + LAST, [400, 200], "dimensions"),
]  # fmt: skip


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send ``data`` on a fresh connection; read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # the server closed while unread bytes were still coming in
        return received


def answers(raw: bytes, *, head_only_first: bool = False) -> list[Answer]:
    """Split what came back into answers (every answer here has a Content-Length or none)."""
    result = []
    while raw:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        assert sep, f"incomplete answer: {head!r}"
        status_line, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if (head_only_first and not result) else int(headers.get(b"content-length", 0))
        result.append(Answer(int(status_line.split()[1]), headers, raw[:length]))
        raw = raw[length:]
    return result
